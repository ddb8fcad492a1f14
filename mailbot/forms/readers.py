"""File bytes → a Document: text lines and grids (tables, sheets) in reading order.

A cell merged across columns fills its first grid column and marks the rest MERGED (Word's
repeated text is not used); a cell merged down repeats its value in the rows below.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, field

SCAN_WARNING = "扫描件或照片，需要人工录入"
PDF_NEEDS_PDFPLUMBER = "这是带文字的 PDF，但本机没有安装 pdfplumber，无法读取表格；请对方发送 Word/Excel 文件，或人工录入"


class _Merged:
    def __repr__(self) -> str:
        return "MERGED"


MERGED = _Merged()  # a cell covered by a merge from its left


@dataclass
class Grid:
    """One table or sheet: rows of cell values, with the row numbers a person would see."""

    place: dict
    rows: list[list]
    numbers: list[int]
    row_key: str = "row"
    continuable: bool = False  # a Word/PDF table: may continue the previous one without a header

    @property
    def width(self) -> int:
        return max((len(r) for r in self.rows), default=0)

    def source(self, i: int) -> dict:
        return {**self.place, self.row_key: self.numbers[i]}


@dataclass
class Document:
    blocks: list = field(default_factory=list)  # str lines and Grids, in reading order
    warnings: list[str] = field(default_factory=list)


# ---- Word (.docx) ----------------------------------------------------------------------

def read_docx(data: bytes) -> Document:
    """Paragraphs and tables in order; tables nested in cells follow their outer table."""
    import docx

    body = docx.Document(io.BytesIO(data)).element.body
    blocks: list = []
    _walk_docx(body, blocks, itertools.count(1))
    return Document(blocks)


def _qn(tag: str) -> str:
    return "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}" + tag


W_P, W_TBL, W_TR, W_TC, W_SDT, W_SDTCONTENT = (_qn(t) for t in ("p", "tbl", "tr", "tc", "sdt", "sdtContent"))
W_T, W_TAB, W_BR, W_CR = (_qn(t) for t in ("t", "tab", "br", "cr"))


def _walk_docx(parent, blocks: list, counter) -> None:
    for child in parent.iterchildren():
        if child.tag == W_P:
            text = _para_text(child).strip()
            if text:
                blocks.append(text)
        elif child.tag == W_TBL:
            _add_docx_table(child, blocks, counter)
        elif child.tag == W_SDT:
            for content in child.iterchildren(W_SDTCONTENT):
                _walk_docx(content, blocks, counter)


def _add_docx_table(tbl, blocks: list, counter) -> None:
    blocks.append(_docx_grid(tbl, next(counter)))
    for tr in tbl.iterchildren(W_TR):
        for tc in tr.iterchildren(W_TC):
            for nested in tc.iterchildren(W_TBL):
                _add_docx_table(nested, blocks, counter)


def _para_text(p) -> str:
    parts = []
    for node in p.iter(W_T, W_TAB, W_BR, W_CR):
        if node.tag == W_T:
            parts.append(node.text or "")
        else:
            parts.append("\t" if node.tag == W_TAB else "\n")
    return "".join(parts)


def _cell_text(tc) -> str | None:
    text = "\n".join(_para_text(p) for p in tc.iterchildren(W_P)).strip()
    return text or None


def _docx_grid(tbl, number: int) -> Grid:
    rows: list[list] = []
    previous: list = []
    for tr in tbl.iterchildren(W_TR):
        row: list = [None] * (getattr(tr, "grid_before", 0) or 0)
        for tc in tr.iterchildren(W_TC):
            col, span = len(row), max(1, getattr(tc, "grid_span", 1) or 1)
            if getattr(tc, "vMerge", None) == "continue":
                value = previous[col] if col < len(previous) else None
            else:
                value = _cell_text(tc)
            row.append(value)
            row.extend([MERGED] * (span - 1))
        rows.append(row)
        previous = row
    return Grid({"table": number}, rows, list(range(1, len(rows) + 1)), continuable=True)


# ---- spreadsheets (.xlsx, .xls) ----------------------------------------------------------

def read_xlsx(data: bytes) -> Document:
    """Every sheet; not read_only, since WPS writes a wrong <dimension> that read_only trusts."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), data_only=True)
    grids = []
    for ws in book.worksheets:
        rows = _sheet_values(ws)
        merges = [(m.min_row - 1, m.max_row, m.min_col - 1, m.max_col) for m in ws.merged_cells.ranges]
        grids.append(_sheet_grid(ws.title, rows, merges))
    return Document(grids)


def _sheet_values(ws) -> list[list]:
    """Dense rows up to the last cell holding a value: a sheet styled down to row 1048576
    (WPS does that) must not become a million empty rows."""
    cells = getattr(ws, "_cells", None)
    if cells is None:
        return [list(r) for r in ws.iter_rows(values_only=True)]
    filled = {pos: c.value for pos, c in cells.items() if c.value is not None}
    if not filled:
        return []
    height = max(r for r, _ in filled)
    width = max(c for _, c in filled)
    rows = [[None] * width for _ in range(height)]
    for (r, c), value in filled.items():
        rows[r - 1][c - 1] = value
    return rows


def read_xls(data: bytes) -> Document:
    """Every sheet of a BIFF .xls (also .et), dates as datetimes."""
    import xlrd

    try:
        book = xlrd.open_workbook(file_contents=data, formatting_info=True)
    except NotImplementedError:  # formatting_info is not available for every BIFF version
        book = xlrd.open_workbook(file_contents=data)
    grids = []
    for sheet in book.sheets():
        rows = [[_xls_value(cell, book.datemode) for cell in sheet.row(r)] for r in range(sheet.nrows)]
        grids.append(_sheet_grid(sheet.name, rows, list(getattr(sheet, "merged_cells", []))))
    return Document(grids)


def _xls_value(cell, datemode: int):
    import xlrd

    if cell.ctype in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK, xlrd.XL_CELL_ERROR):
        return None
    if cell.ctype == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate.xldate_as_datetime(cell.value, datemode)
        except (ValueError, OverflowError, xlrd.xldate.XLDateError):
            return cell.value
    if cell.ctype == xlrd.XL_CELL_BOOLEAN:
        return bool(cell.value)
    return cell.value


def _sheet_grid(name: str, rows: list[list], merges: list[tuple[int, int, int, int]]) -> Grid:
    """Merged ranges (0-based, ends exclusive) applied as in Word tables, empty edges trimmed."""
    for r0, r1, c0, c1 in merges:
        if r0 >= len(rows):
            continue
        top = rows[r0][c0] if c0 < len(rows[r0]) else None
        for r in range(r0, min(r1, len(rows))):
            row = rows[r]
            row.extend([None] * (c1 - len(row)))
            for c in range(c0, c1):
                if (r, c) != (r0, c0):
                    row[c] = top if c == c0 else MERGED
    rows = [_trim(r) for r in rows]
    while rows and not rows[-1]:
        rows.pop()
    return Grid({"sheet": name}, rows, list(range(1, len(rows) + 1)))


def _trim(row: list) -> list:
    row = [None if isinstance(v, str) and not v.strip() else v for v in row]
    while row and (row[-1] is None or row[-1] is MERGED):
        row.pop()
    return row


# ---- CSV and plain text --------------------------------------------------------------------

def decode_text(data: bytes) -> tuple[str, str]:
    """Text of a CSV: UTF-8 (with or without BOM) if it decodes, else GB18030 (a superset of GBK)."""
    for codec in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(codec), codec.removesuffix("-sig")
        except UnicodeDecodeError:
            continue
    return data.decode("utf-8", "replace"), "utf-8?"


def read_csv(data: bytes) -> Document:
    """One grid; the delimiter is the one that splits the first lines most consistently."""
    text, codec = decode_text(data)
    warnings = ["文件编码无法识别，部分文字可能显示为乱码"] if codec == "utf-8?" else []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    rows, numbers, line = [], [], 1
    for record in reader:
        rows.append(_trim([cell.strip() or None for cell in record]))
        numbers.append(line)
        line = reader.line_num + 1
    return Document([Grid({}, rows, numbers, row_key="line")], warnings)


def _delimiter(text: str) -> str:
    lines = [ln for ln in text.splitlines()[:20] if ln.strip()]
    best, best_score = ",", 0
    for delimiter in (",", "\t", ";", "|"):
        counts = [ln.count(delimiter) for ln in lines]
        score = sorted(counts)[len(counts) // 2] if counts else 0  # the median line's count
        if score > best_score:
            best, best_score = delimiter, score
    return best


# ---- PDF and images ---------------------------------------------------------------------

def read_pdf(data: bytes) -> Document:
    """Tables of a PDF with a text layer (pdfplumber, when installed); a scan gets a warning."""
    try:
        import pdfplumber
    except ImportError:
        return Document([], [PDF_NEEDS_PDFPLUMBER if b"/Font" in data else SCAN_WARNING])
    blocks: list = []
    chars = 0
    with pdfplumber.open(io.BytesIO(data)) as pdf:
        for n, page in enumerate(pdf.pages, 1):
            text = page.extract_text() or ""
            chars += len(text.strip())
            blocks += [ln for ln in text.splitlines() if ln.strip()]
            for k, table in enumerate(page.extract_tables(), 1):
                rows = [[cell or None for cell in row] for row in table]
                blocks.append(Grid({"page": n, "table": k}, rows, list(range(1, len(rows) + 1)), continuable=True))
    return Document(blocks) if chars else Document([], [SCAN_WARNING])
