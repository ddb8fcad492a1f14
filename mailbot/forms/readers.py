"""File bytes → a Document: text lines and grids (tables, sheets) in reading order.

A cell merged across columns fills its first grid column and marks the rest MERGED (Word's
repeated text is not used); a cell merged down repeats its value in the rows below.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
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

PDF_MAX_PAGES = 50  # a form is a few pages; a 500-page PDF is not read to the end
PDF_MAX_EDGES = 3000  # ruling lines on one page beyond which finding tables is too slow
PDF_PASSWORD = "PDF 设置了打开密码，无法读取；请对方去掉密码后重新发送，或发送 Word/Excel 文件"
PDF_BROKEN = "PDF 文件已损坏或格式不规范，无法读取；请对方重新导出后发送，或发送 Word/Excel 文件"
PDF_NO_UNICODE = ("PDF 中的文字无法提取（字体没有文字编码，常见于部分软件导出的 PDF），需要人工录入；"
                  "如方便，请对方发送 Word/Excel 文件")
# Borderless tables: columns and rows from how the words line up (pdfplumber's text strategy).
_TEXT_TABLES = {"vertical_strategy": "text", "horizontal_strategy": "text", "min_words_vertical": 2,
                "min_words_horizontal": 1}
_CJK = r"\u2e80-\u9fff\uf900-\ufaff\uff00-\uffef"
_WRAP_TIGHT = re.compile(rf"[{_CJK}_\-./@:]")  # a line ending so was wrapped inside a word or name


def read_pdf(data: bytes) -> Document:
    """A PDF exported from Word/WPS, through its text layer: each page's text lines and
    tables in reading order (top to bottom). Ruled tables come first; only when a file has
    none are borderless tables read from how the words line up. A scan or photo (no text)
    gets SCAN_WARNING; an unreadable, locked or unextractable file a warning, never an error."""
    try:
        import pdfplumber
        from pdfminer.pdfdocument import PDFPasswordIncorrect
        from pdfplumber.utils.exceptions import PdfminerException
    except ImportError:
        return Document([], [PDF_NEEDS_PDFPLUMBER if b"/Font" in data else SCAN_WARNING])
    try:
        pdf = pdfplumber.open(io.BytesIO(data))
    except PdfminerException as exc:
        cause = exc.args[0] if exc.args else exc
        return Document([], [PDF_PASSWORD if isinstance(cause, PDFPasswordIncorrect) else PDF_BROKEN])
    try:
        return _read_pdf(pdf)
    finally:
        try:
            pdf.close()
        except Exception:  # noqa: BLE001 - closing builds the pages again, and a bad page raises
            pass


def _read_pdf(pdf) -> Document:
    try:
        pages = list(pdf.pages)
    except Exception:  # noqa: BLE001 - a broken page tree or page: pdfminer raises many kinds
        return Document([], [PDF_BROKEN])
    warnings = []
    if len(pages) > PDF_MAX_PAGES:
        warnings.append(f"PDF 共 {len(pages)} 页，只读取了前 {PDF_MAX_PAGES} 页")
        pages = pages[:PDF_MAX_PAGES]
    blocks, counts = _pdf_blocks(pages, None, warnings)
    if counts["text"] and not counts["tables"]:
        blocks, counts = _pdf_blocks(pages, _TEXT_TABLES, [])
    if not counts["text"]:  # a scan or photo, unless its pages could not be read at all
        return Document([], warnings if counts["failed"] else warnings + [SCAN_WARNING])
    if counts["cid"] * 2 > counts["text"]:
        return Document([], warnings + [PDF_NO_UNICODE])
    return Document(blocks, warnings)


def _pdf_blocks(pages: list, settings: dict | None, warnings: list[str]) -> tuple[list, dict]:
    blocks: list = []
    counts = {"text": 0, "cid": 0, "tables": 0, "failed": 0}
    for n, page in enumerate(pages, 1):
        try:
            blocks += _pdf_page(page, n, settings, counts, warnings)
        except Exception as exc:  # noqa: BLE001 - one damaged page must not lose the others
            counts["failed"] += 1
            warnings.append(f"PDF 第{n}页无法读取（{type(exc).__name__}）")
    return blocks, counts


def _pdf_page(page, n: int, settings: dict | None, counts: dict, warnings: list[str]) -> list:
    chars = [c for c in page.chars if c["text"].strip()]
    if not chars:
        return []
    counts["text"] += len(chars)
    counts["cid"] += sum(1 for c in chars if c["text"].startswith("(cid:"))
    if settings is None and len(page.edges) > PDF_MAX_EDGES:
        warnings.append(f"PDF 第{n}页线条过多，未读取其中的表格")
        tables = []
    else:
        tables = page.find_tables(settings) if settings else page.find_tables()
    counts["tables"] += len(tables)
    rest = page
    for table in tables:
        rest = rest.outside_bbox(table.bbox)
    items = [(line["top"], line["text"].strip()) for line in rest.extract_text_lines() if line["text"].strip()]
    for k, table in enumerate(tables, 1):
        items.append((table.bbox[1], _pdf_grid(table, {"page": n, "table": k}, dense=settings is not None)))
    items.sort(key=lambda item: item[0])
    return [block for _, block in items]


def _pdf_grid(table, place: dict, dense: bool) -> Grid:
    """A pdfplumber table as a Grid. A cell merged across columns leaves MERGED to its right;
    one merged down repeats its value below (as in Word tables). `dense`: a table found from
    word positions, whose empty rows are only the gaps between lines, dropped."""
    rows: list[list] = []
    bottoms: dict[int, float] = {}  # column → bottom of the last real cell starting there
    previous: list = []
    for row, texts in zip(table.rows, table.extract()):
        top = row.bbox[1]
        out: list = []
        for c, (box, text) in enumerate(zip(row.cells, texts)):
            if box is not None:
                out.append(_pdf_cell(text))
                bottoms[c] = box[3]
            elif bottoms.get(c, top) > top + 1:
                out.append(previous[c] if c < len(previous) else None)
            else:
                out.append(MERGED if c else None)
        previous = out
        rows.append(out)
    if dense:
        rows = [r for r in rows if any(v is not None and v is not MERGED for v in r)]
    return Grid(place, rows, list(range(1, len(rows) + 1)), continuable=True)


def _pdf_cell(text: str | None) -> str | None:
    """Text of one cell: the lines a narrow column wrapped are joined, with no space next to
    a Chinese character or after a break inside a word (sunchao_ / wx), else one space."""
    if not text or not text.strip():
        return None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    out = lines[0]
    for line in lines[1:]:
        tight = _WRAP_TIGHT.match(out[-1]) or re.match(f"[{_CJK}]", line[0])
        out += ("" if tight else " ") + line
    return out
