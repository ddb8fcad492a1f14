"""Build the statistics-form fixtures in tests/forms/ with real office software (LibreOffice).

Sources are written as HTML (Word files: tables with column widths, merged cells, page
breaks), openpyxl workbooks (Excel files) or bytes (CSV in GBK, a scanned PDF, PNG), then
converted by `soffice --headless`; the text-layer PDFs are those Word files exported to PDF.
Run again after changing it; review the test expectations then.

    .venv/bin/python tests/forms/make_forms.py            # rebuild the fixtures
    .venv/bin/python tests/forms/make_forms.py --only 0015-guanzhu-text-layer.pdf  # just this one
    .venv/bin/python tests/forms/make_forms.py --bench D  # 2,000-row .xlsx and 500-row .docx in D
"""

from __future__ import annotations

import argparse
import io
import shutil
import struct
import subprocess
import sys
import tempfile
import zipfile
import zlib
from datetime import datetime
from pathlib import Path

from openpyxl import Workbook

HERE = Path(__file__).resolve().parent
GUANZHU_TITLE = "临沂科协微信公众号关注情况统计表"
BIJIE_TITLE = "毕节市科普宣传和信息管理员信息报送表"
BIJIE_HEADER = ["单位", "姓名", "政治<br>面貌", "职务", "职称", "微信号", "手机号", "备注"]


# ---- HTML sources ----------------------------------------------------------------------------

def cell(text, colspan=1, rowspan=1) -> dict:
    return {"text": text, "colspan": colspan, "rowspan": rowspan}


def table(rows: list[list], widths: list[int]) -> str:
    """An HTML table with explicit column widths (LibreOffice keeps the table through .doc)."""
    cols = "".join(f'<col width="{w}">' for w in widths)
    body = []
    for row in rows:
        tds = []
        for c in row:
            c = c if isinstance(c, dict) else cell(c)
            span = (f' colspan="{c["colspan"]}"' if c["colspan"] > 1 else "") + \
                   (f' rowspan="{c["rowspan"]}"' if c["rowspan"] > 1 else "")
            tds.append(f"<td{span}>{'' if c['text'] is None else c['text']}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    return (f'<table border="1" cellspacing="0" cellpadding="4" width="{sum(widths)}">{cols}'
            + "".join(body) + "</table>")


def page(*parts: str) -> str:
    return ('<html><head><meta charset="utf-8"><title>form</title></head><body>'
            + "".join(parts) + "</body></html>")


def para(text: str, page_break: bool = False) -> str:
    style = ' style="page-break-before: always"' if page_break else ""
    return f"<p{style}>{text}</p>"


GZ_HEADER = ["序号", "单位名称", "关注人数（人）"]
GZ_WIDTHS = [60, 260, 160]


def html_merged_header() -> str:
    """Title row across the table, a two-row header, full-width digits, blank row, 合计, a note."""
    rows = [
        [cell(GUANZHU_TITLE, colspan=3)],
        [cell("序号", rowspan=2), cell("单位名称", rowspan=2), "关注情况"],
        ["关注人数（人）"],
        ["1", "兰山区科协", "１２３"],
        ["2", "罗庄区　科协", "1,234"],
        [None, None, None],
        ["3", "河东区科协", "约300人"],
        ["4", "沂南县科协", "三百多"],
        [cell("合计", colspan=2), "1657"],
        [cell("注：关注人数以12月18日统计为准。", colspan=3)],
    ]
    return page(para("附件2"), f"<h2>{GUANZHU_TITLE}</h2>",
                para("填报单位：兰山区科协　　　填报时间：2026年12月18日"), table(rows, GZ_WIDTHS))


def html_page_break() -> str:
    """One form over two pages: the header repeated on page 2, then a continuation without header."""
    first = [GZ_HEADER, ["1", "临沂市农学会", "56"], ["2", "临沂市林学会", "48"], ["3", "临沂市水利学会", "１０２"]]
    second = [GZ_HEADER, ["4", "临沂市医学会", "２０５"], ["5", "临沂市药学会", "两千"]]
    third = [["6", "临沂市护理学会", "1，500"], ["7", "临沂市心理学会", "77名"], [cell("合计", colspan=2), "3988"]]
    return page(f"<h2>{GUANZHU_TITLE}</h2>", para("填报单位：临沂市科协学会部"), para("填报时间：2026.12.19"),
                table(first, GZ_WIDTHS), para("（第1页）"), para("续表", page_break=True),
                table(second, GZ_WIDTHS), para("（续）"), table(third, GZ_WIDTHS))


def html_doc() -> str:
    rows = [GZ_HEADER, ["1", "费县科协", "一千二百三十四"], ["2", "费县  第一中学", "80人"],
            ["3", "费县人民医院", "1，024"], ["4", "费县科技馆", ""]]
    return page(f"<h2>{GUANZHU_TITLE}</h2>", para("填报单位：费县科协　　填报时间：2026年12月20日"),
                table(rows, GZ_WIDTHS))


def html_wps() -> str:
    rows = [["序号", "单位名称", "关注数"], ["1", "郯城县科协", "310"], ["2", "郯城县农技协", "两千"],
            ["3", "郯城县老科协", "约 45 人"]]
    return page(para("附件2"), f"<h2>{GUANZHU_TITLE}</h2>", para("填报单位：郯城县科协"),
                para("填报时间：12月20日"), table(rows, GZ_WIDTHS))


def html_nested() -> str:
    """The form inside a one-cell layout table, as some offices lay out a page."""
    inner = table([GZ_HEADER, ["1", "兰陵县科协", "88"], ["2", "兰陵县科技馆", "66"]], GZ_WIDTHS)
    outer = ('<table border="0" width="560"><col width="560"><tr><td>'
             f"<p>填报单位：兰陵县科协</p><p>填报时间：2026/12/17</p>{inner}</td></tr></table>")
    return page(f"<h2>{GUANZHU_TITLE}</h2>", outer)


def html_unknown() -> str:
    rows = [["序号", "姓名", "性别", "年龄"], ["1", "张三", "男", "40"]]
    return page("<h2>参会人员名单</h2>", table(rows, [60, 120, 80, 80]))


YISHUI_TOWNS = ["沂城街道", "龙家圈街道", "许家湖镇", "黄山铺镇", "诸葛镇", "崔家峪镇", "四十里堡镇", "杨庄镇", "夏蔚镇",
                "沙沟镇", "高庄镇", "马站镇", "高桥镇", "富官庄镇", "院东头镇", "泉庄镇", "圈里乡", "道托镇"]
PDF_NOTES = ["关注人数以2026年12月18日公众号后台统计数据为准，请勿估算。",
             "县区科协汇总本辖区乡镇（街道）科协、学会和科普基地的数据后统一报送。",
             "单位名称请填写全称；没有开通关注统计的单位，关注人数填0。",
             "请于12月20日前将本表（Word 或 Excel 格式）发送至市科协调宣部邮箱，盖章扫描件一并发送。",
             "本表由各单位办公室负责填写，如有疑问请与市科协调宣部联系。",
             "报送后如需修改，请重新发送完整的表格，以最后一次报送为准。"]


def html_text_pdf() -> str:
    """A Word document exported to PDF: notes above a table that runs onto page 2, where
    Word repeats the header row (<thead>); a long name wraps in its cell; a blank row, 合计."""
    rows = [["1", "沂水县科协", "１２０"], ["2", "沂水县科技馆", "1,050"],
            ["3", "沂水县农村专业技术协会联合会（沂水县农技协联合会）", "约80人"], [None, None, None]]
    rows += [[str(i), f"沂水县{town}科协", str(10 + i)] for i, town in enumerate(YISHUI_TOWNS, 4)]
    body = table([GZ_HEADER, *rows, [cell("合计", colspan=2), "1655"]], GZ_WIDTHS)
    body = body.replace("<tr>", "<thead><tr>", 1).replace("</tr>", "</tr></thead>", 1)
    notes = [para(f"{i}. {note}") for i, note in enumerate(PDF_NOTES, 1)]
    return page(para("附件2"), f"<h2>{GUANZHU_TITLE}</h2>", para("填表说明："), *notes,
                para("填报单位：沂水县科协　　　填报时间：2026年12月19日"), body,
                para("填表人：张明　　联系电话：0539-2251234"))


def html_borderless_pdf() -> str:
    """A table without borders (the lines removed in Word): read from how the words line up."""
    rows = [GZ_HEADER, ["1", "沂南县科协", "210"], ["2", "沂南县　科技馆", "３５"], ["3", "沂南县老科协", "1,018"],
            ["4", "沂南县第二中学", "两千"], [cell("合计", colspan=2), "3263"]]
    return page(f"<h2>{GUANZHU_TITLE}</h2>", para("填报单位：沂南县科协　　　填报时间：2026年12月16日"),
                table(rows, GZ_WIDTHS).replace('border="1"', 'border="0"'), para("填表人：李华　　联系电话：0539-3221234"))


def html_bijie() -> str:
    """The 毕节 roster: a 单位 merged over two people, 政治面貌 variants, phones in many spellings."""
    rows = [
        BIJIE_HEADER,
        [cell("毕节市科协", rowspan=2), "孙 超", "党员", "科员", "助理工程师", "sunchao_wx", "139 8472 2959", None],
        ["黄坤", "中共预备党员", "副科长", "工程师", "hk2019", "+86 189-8445-4651", "兼职"],
        ["毕节市科技馆", "张　三", "团员", "讲解员", None, "zhangsan", "1898445465", None],
        ["七星关区科协", "李四", "民盟", "副主席", "高级教师", None, "13700000001", None],
        ["大方县科协", "王五", "团委", "干事", None, "wangwu", "１３６０００００００２", None],
        ["黔西市科协", "赵六", "无党派", "主席", "研究员", "zl", "", None],
        [None] * 8,
        [cell("注：请盖单位公章后报送。", colspan=8)],
    ]
    return page(para("附件"), f"<h2>{BIJIE_TITLE}</h2>",
                para("报送单位（盖章）：毕节市科协　　　　报送时间：2019年10月25日"),
                table(rows, [120, 70, 60, 70, 80, 90, 120, 60]))


def html_bench(n: int) -> str:
    rows = [GZ_HEADER] + [[str(i), f"测试单位{i}号科协", f"{i * 3}"] for i in range(1, n + 1)]
    total = sum(i * 3 for i in range(1, n + 1))
    return page(f"<h2>{GUANZHU_TITLE}</h2>", para("填报单位：测试县科协　填报时间：2026年12月18日"),
                table(rows + [[cell("合计", colspan=2), str(total)]], GZ_WIDTHS))


# ---- workbook sources ----------------------------------------------------------------------

def book_guanzhu() -> Workbook:
    """Title merged over A1:C1, header fields in cells, a date cell, a SUM formula as 合计."""
    book = Workbook()
    ws = book.active
    ws.title = "关注情况"
    ws.append([GUANZHU_TITLE])
    ws.merge_cells("A1:C1")
    ws.append(["填报单位", "平邑县科协"])
    ws.append(["填报时间", datetime(2026, 12, 18)])
    ws["B3"].number_format = "yyyy\"年\"m\"月\"d\"日\""
    ws.append(GZ_HEADER)
    for row in ([1, "平邑县科协", 120], [2, "平邑县农学会", "１２３"], [None, None, None],
                [3, "平邑县第一中学", 0], [4, "平邑县人民医院", None], [5, "平邑县科技馆", "1.2万"]):
        ws.append(row)
    ws.append(["合计", None, "=SUM(C5:C10)"])
    ws.merge_cells("A11:B11")
    return book


def book_wps_dimension() -> Workbook:
    book = Workbook()
    ws = book.active
    ws.title = "Sheet1"
    ws.append(["填报单位：沂南县科协", None, "填报时间：2026-12-16"])
    ws.append(["序号", "单位名称", "关注人数"])
    for i, (unit, count) in enumerate([("沂南县科协", 210), ("沂南县科技馆", 35), ("沂南县老科协", 18)], 1):
        ws.append([i, unit, count])
    book.create_sheet("Sheet2")
    return book


def book_xls() -> Workbook:
    book = Workbook()
    ws = book.active
    ws.title = "统计表"
    ws.append([GUANZHU_TITLE])
    ws.merge_cells("A1:C1")
    ws.append(["填报单位：蒙阴县科协", None, None])
    ws.append(["填报时间：", datetime(2026, 12, 15), None])
    ws["B3"].number_format = "yyyy-mm-dd"
    ws.append(["序号", "单位名称", "关注人数(人)"])
    for row in ([1, "蒙阴县科协", 150], [2, "蒙阴县科技馆", "  ９０ "], [3, "蒙阴县林业局", 12.5]):
        ws.append(row)
    ws.append(["总计", None, 252.5])
    return book


def book_bijie() -> Workbook:
    """The 毕节 roster as a spreadsheet: phone numbers typed as numbers, 单位 merged down."""
    book = Workbook()
    ws = book.active
    ws.title = "Sheet1"
    ws.append([BIJIE_TITLE])
    ws.merge_cells("A1:H1")
    ws.append(["报送单位(盖章)：织金县科协", None, None, None, None, "报送时间：", "2019-10-24"])
    ws.append([h.replace("<br>", "") for h in BIJIE_HEADER])
    ws.append(["织金县科协", "刘一", "中共党员", "主席", "高级农艺师", "liuyi", 13908570001, None])
    ws.append([None, "陈二", "群众", "干事", None, None, 15185700002, "新进"])
    ws.merge_cells("A4:A5")
    ws.append(["织金县第一中学", "周三", "九三学社", "教师", "一级教师", "zhou3", "151-8570-0003", None])
    return book


def bench_book(n: int) -> Workbook:
    book = Workbook()
    ws = book.active
    ws.append([GUANZHU_TITLE])
    ws.append(["填报单位：测试县科协", None, "填报时间：2026-12-18"])
    ws.append(GZ_HEADER)
    for i in range(1, n + 1):
        ws.append([i, f"测试单位{i}号科协", i * 3])
    ws.append(["合计", None, sum(i * 3 for i in range(1, n + 1))])
    return book


# ---- bytes made by hand ------------------------------------------------------------------------

def csv_gbk() -> bytes:
    """What Excel on a Chinese Windows saves as CSV: GBK, CRLF, quoted numbers with commas."""
    lines = [f"{GUANZHU_TITLE},,", "填报单位：莒南县科协,,填报时间：2026年12月17日", "序号,单位名称,关注人数（人）",
             '1,莒南县科协,"1,234"', "2,莒南县科技馆,１２３", ",,", "3,莒南县 农技协,约60人", "合计,,1417"]
    return ("\r\n".join(lines) + "\r\n").encode("gbk")


def png_photo() -> bytes:
    """A tiny grey PNG: stands in for a phone photo of a paper form."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\x00" + b"\x80" * 8 for _ in range(8))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def pdf_scan() -> bytes:
    """A one-page PDF holding only an image and no text layer: what a scanner produces."""
    image = zlib.compress(b"\x80" * 64)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im0 4 0 R >> >>"
        b" /Contents 5 0 R >>",
        b"<< /Type /XObject /Subtype /Image /Width 8 /Height 8 /ColorSpace /DeviceGray /BitsPerComponent 8"
        b" /Filter /FlateDecode /Length %d >>\nstream\n" % len(image) + image + b"\nendstream",
    ]
    content = b"q 500 0 0 700 50 70 cm /Im0 Do Q"
    objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out, offsets = io.BytesIO(), []
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % o for o in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


def patch_dimension(xlsx: bytes, ref: str = "A1:A1") -> bytes:
    """Rewrite every sheet's <dimension>, as WPS does, so read_only openpyxl sees one cell."""
    import re

    src, out = zipfile.ZipFile(io.BytesIO(xlsx)), io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.startswith("xl/worksheets/sheet"):
                body = re.sub(rb'<dimension ref="[^"]*"/>', b'<dimension ref="%s"/>' % ref.encode(), body)
            dst.writestr(info, body)
    return out.getvalue()


# ---- LibreOffice -------------------------------------------------------------------------------

class Office:
    """One soffice profile for this run; each call converts a batch of files."""

    def __init__(self, work: Path):
        self.work = work
        self.profile = (work / "profile").as_uri()
        self.soffice = shutil.which("soffice") or shutil.which("libreoffice")
        if not self.soffice:
            sys.exit("make_forms: LibreOffice (soffice) is needed: apt-get install libreoffice-writer-nogui "
                     "libreoffice-calc-nogui")

    def convert(self, sources: list[Path], target: str, infilter: str | None = None) -> dict[str, bytes]:
        out = self.work / ("out-" + target.split(":")[0] + ("-html" if infilter else ""))
        cmd = [self.soffice, f"-env:UserInstallation={self.profile}", "--headless", "--norestore"]
        if infilter:
            cmd.append(f"--infilter={infilter}")
        cmd += ["--convert-to", target, "--outdir", str(out), *map(str, sources)]
        subprocess.run(cmd, check=True, timeout=300, capture_output=True)
        ext = target.split(":")[0]
        return {src.stem: (out / f"{src.stem}.{ext}").read_bytes() for src in sources}


HTML_TO_DOCX = ("docx:MS Word 2007 XML", "HTML (StarWriter)")
HTML_TO_DOC = ("doc:MS Word 97", "HTML (StarWriter)")
DOCX_TO_PDF = "pdf:writer_pdf_Export"
# LibreOffice ≥ 7.4 takes export options as JSON: a PDF that asks for a password to open.
DOCX_TO_LOCKED_PDF = ('pdf:writer_pdf_Export:{"EncryptFile":{"type":"boolean","value":"true"},'
                      '"DocumentOpenPassword":{"type":"string","value":"1234"}}')


def write_sources(work: Path, html: dict[str, str], books: dict[str, Workbook]) -> tuple[dict, dict]:
    html_paths, book_paths = {}, {}
    for name, text in html.items():
        html_paths[name] = work / f"{name}.html"
        html_paths[name].write_text(text, encoding="utf-8")
    (work / "books").mkdir(exist_ok=True)
    for name, book in books.items():
        book_paths[name] = work / "books" / f"{name}.xlsx"
        book.save(book_paths[name])
    return html_paths, book_paths


def build(dest: Path, only: list[str] | None = None) -> list[str]:
    """Write the fixtures to `dest` (only those named in `only`, when given)."""
    with tempfile.TemporaryDirectory(prefix="make-forms-") as tmp:
        work = Path(tmp)
        office = Office(work)
        html, books = write_sources(work, {
            "merged": html_merged_header(), "pagebreak": html_page_break(), "doc": html_doc(),
            "wps": html_wps(), "nested": html_nested(), "unknown": html_unknown(), "bijie": html_bijie(),
            "textpdf": html_text_pdf(), "borderless": html_borderless_pdf(),
        }, {"guanzhu": book_guanzhu(), "dimension": book_wps_dimension(), "xls": book_xls(), "bijie": book_bijie()})
        docx = office.convert([html[k] for k in ("merged", "pagebreak", "nested", "unknown", "bijie", "textpdf",
                                                 "borderless")], *HTML_TO_DOCX)
        doc = office.convert([html["doc"], html["wps"]], *HTML_TO_DOC)
        # PDFs as a unit makes them: a Word document, exported (Word's 另存为 PDF)
        (work / "word").mkdir()
        for name in ("textpdf", "borderless", "merged", "bijie"):
            (work / "word" / f"{name}.docx").write_bytes(docx[name])
        pdf = office.convert([work / "word" / f"{name}.docx" for name in ("textpdf", "borderless", "merged", "bijie")],
                             DOCX_TO_PDF)
        locked = office.convert([work / "word" / "borderless.docx"], DOCX_TO_LOCKED_PDF)
        xlsx = office.convert([books["guanzhu"], books["dimension"]], "xlsx:Calc MS Excel 2007 XML")
        xls = office.convert([books["xls"], books["bijie"]], "xls:MS Excel 97")
        files = {
            "0001-guanzhu-merged-header.docx": docx["merged"],
            "0002-guanzhu-page-break.docx": docx["pagebreak"],
            "0003-guanzhu.doc": doc["doc"],
            "0004-guanzhu-doc-renamed.wps": doc["wps"],
            "0005-guanzhu.xlsx": xlsx["guanzhu"],
            "0006-guanzhu-wps-dimension.xlsx": patch_dimension(xlsx["dimension"]),
            "0007-guanzhu.xls": xls["xls"],
            "0008-guanzhu-gbk.csv": csv_gbk(),
            "0009-bijie-roster.docx": docx["bijie"],
            "0010-bijie-roster-xls-renamed.et": xls["bijie"],
            "0011-guanzhu-nested-table.docx": docx["nested"],
            "0012-unknown-table.docx": docx["unknown"],
            "0013-scan.pdf": pdf_scan(),
            "0014-photo.png": png_photo(),
            "0015-guanzhu-text-layer.pdf": pdf["textpdf"],
            "0016-guanzhu-webpage-saved-as.doc": html["doc"].read_bytes(),
            "0017-guanzhu-docx-renamed.wps": docx["nested"],
            "0018-guanzhu-text-layer-borderless.pdf": pdf["borderless"],
            "0019-guanzhu-password.pdf": locked["borderless"],
            "0020-guanzhu-merged-header.pdf": pdf["merged"],
            "0021-bijie-roster.pdf": pdf["bijie"],
        }
        unknown = set(only or ()) - set(files)
        if unknown:
            sys.exit(f"make_forms: no such fixture: {', '.join(sorted(unknown))}")
        written = [name for name in files if not only or name in only]
        for name in written:
            (dest / name).write_bytes(files[name])
        return written


def build_bench(dest: Path, xlsx_rows: int = 2000, docx_rows: int = 500) -> list[Path]:
    """Large forms for timing: an .xlsx and a .docx, both saved by LibreOffice."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="make-forms-") as tmp:
        work = Path(tmp)
        office = Office(work)
        html, books = write_sources(work, {f"bench-{docx_rows}": html_bench(docx_rows)},
                                    {f"bench-{xlsx_rows}": bench_book(xlsx_rows)})
        docx = office.convert(list(html.values()), *HTML_TO_DOCX)
        xlsx = office.convert(list(books.values()), "xlsx:Calc MS Excel 2007 XML")
        paths = []
        for name, data in (*docx.items(), *xlsx.items()):
            ext = "docx" if name in docx else "xlsx"
            paths.append(dest / f"{name}.{ext}")
            paths[-1].write_bytes(data)
        return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, help="write the large timing forms to this folder instead")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="rewrite only these fixtures (e.g. 0015-…pdf)")
    args = parser.parse_args()
    if args.bench:
        for path in build_bench(args.bench):
            print(path)
        return
    for name in build(HERE, args.only):
        print(HERE / name)


if __name__ == "__main__":
    main()
