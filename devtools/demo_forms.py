"""The statistics forms the demo's units send back, produced at demo time from small data:
the 关注情况统计表 (seed 000, 附件2) as Word (.docx), Excel (.xlsx) and a GBK .csv, the way
an office fills them in. No test fixtures are needed.
"""

from __future__ import annotations

import io

TITLE = "临沂科协微信公众号关注情况统计表"
COLUMNS = ("序号", "单位名称", "关注人数（人）")


def docx_form(unit: str, filled: str, rows: list[tuple[str, object]], total: bool = True) -> bytes:
    """A Word form: title, header fields above the table, a 合计 row at the end."""
    from docx import Document

    doc = Document()
    doc.add_paragraph("附件2")
    doc.add_heading(TITLE, level=1)
    doc.add_paragraph(f"填报单位：{unit}")
    doc.add_paragraph(f"填报时间：{filled}")
    body = [[str(i), name, str(count)] for i, (name, count) in enumerate(rows, 1)]
    if total:
        body.append(["合计", "", str(sum(c for _, c in rows if isinstance(c, int)))])
    table = doc.add_table(rows=1 + len(body), cols=len(COLUMNS))
    table.style = "Table Grid"
    for r, values in enumerate([list(COLUMNS), *body]):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    return _saved(doc)


def blank_docx() -> bytes:
    """The empty form attached to reminders: what the notice's 附件2 looks like."""
    from docx import Document

    doc = Document()
    doc.add_paragraph("附件2")
    doc.add_heading(TITLE, level=1)
    doc.add_paragraph("填报单位：")
    doc.add_paragraph("填报时间：")
    table = doc.add_table(rows=4, cols=len(COLUMNS))
    table.style = "Table Grid"
    for c, value in enumerate(COLUMNS):
        table.cell(0, c).text = value
    return _saved(doc)


def _saved(doc) -> bytes:
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def xlsx_form(unit: str, filled: str, rows: list[tuple[str, object]]) -> bytes:
    """An Excel form: merged title row, header fields in row 2, the table from row 3."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "关注情况统计表"
    sheet.append([TITLE])
    sheet.merge_cells("A1:C1")
    sheet.append([f"填报单位：{unit}", None, f"填报时间：{filled}"])
    sheet.append(list(COLUMNS))
    for i, (name, count) in enumerate(rows, 1):
        sheet.append([i, name, count])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def csv_form(unit: str, filled: str, rows: list[tuple[str, object]]) -> bytes:
    """A CSV as Excel on a Chinese Windows saves it: GBK, CRLF, header fields on top."""
    import csv

    buf = io.StringIO(newline="")
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow([f"填报单位：{unit}", "", f"填报时间：{filled}"])
    out.writerow(["序号", "单位名称", "关注人数"])
    out.writerows([i, name, count] for i, (name, count) in enumerate(rows, 1))
    return buf.getvalue().encode("gbk")
