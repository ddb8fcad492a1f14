"""Reading statistics forms: the value table, the templates, and every fixture in tests/forms/
read to exact rows, totals, errors and warnings, checked against the JSON contract."""

from __future__ import annotations

import functools
import json
import os
import zipfile
from datetime import date
from io import BytesIO
from pathlib import Path

import jsonschema
import openpyxl
import pytest
import yaml
from conftest import mailbot_main

from mailbot.forms import (
    TemplateError,
    load_templates,
    normalise,
    parse_template,
    read_form,
    sniff_format,
)

ROOT = Path(__file__).resolve().parents[2]
FORMS = ROOT / "tests" / "forms"
TEMPLATES = load_templates(ROOT / "config" / "forms")
SCHEMA = json.loads((ROOT / "tests" / "contract" / "forms.schema.json").read_text("utf-8"))
CASES = yaml.safe_load((ROOT / "tests" / "cases" / "form_values.yaml").read_text("utf-8"))
TODAY = date(2026, 12, 21)
COLUMN_CHOICES = {c.name: c.choices for t in TEMPLATES for c in t.columns if c.choices}


@functools.cache
def read(name: str):
    return read_form((FORMS / name).read_bytes(), name, TEMPLATES, today=TODAY)


# ---- values -------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=[f"{c['type']}:{c['input']!r}" for c in CASES])
def test_normalise(case):
    choices = case.get("choices")
    choices = COLUMN_CHOICES[choices] if isinstance(choices, str) else choices
    got = normalise(case["input"], case["type"], choices, today=case.get("today"))
    assert got == (case.get("expect"), case.get("error"))


# ---- templates ----------------------------------------------------------------------------------

def test_templates_load():
    by_name = {t.name: t for t in TEMPLATES}
    guanzhu, bijie = by_name["关注情况统计表"], by_name["信息报送表"]
    assert guanzhu.title == "临沂科协微信公众号关注情况统计表" and guanzhu.unit_column == "单位名称"
    assert guanzhu.column_names == ["单位名称", "关注人数"] and guanzhu.sequence.name == "序号"
    assert [(h.name, h.type) for h in guanzhu.header] == [("填报单位", "text"), ("填报时间", "date")]
    for spelling in ("关注人数", "关注人数（人）", "关注数", "关注人数(人)", " 关注人数 (人) "):
        assert guanzhu.find_column(spelling) == "关注人数"
    assert bijie.column_names == ["单位", "姓名", "政治面貌", "职务", "职称", "微信号", "手机号", "备注"]
    assert bijie.find_column("政治\n面貌") == "政治面貌" and bijie.unit_column == "单位"
    # issue 6 and the 毕节 notice name them so; 填报单位/填报时间 belong to the 临沂 form
    assert [(h.name, h.type) for h in bijie.header] == [("报送单位", "text"), ("报送时间", "date")]


@pytest.mark.parametrize("text,message", [
    ("name: x\ntitle: y\n", "表单模板 bad.yaml：缺少“columns”"),
    ("name: x\ntitle: y\ncolumns: [{name: a, type: number}]\n",
     "表单模板 bad.yaml columns 第 1 项（a）：类型“number”不认识，可用：text、integer、phone、date、choice"),
    ("name: x\ntitle: y\ncolumns: [{name: a, type: choice}]\n",
     "表单模板 bad.yaml columns 第 1 项（a）：类型为 choice，但没有 choices（可选项）"),
    ("name: x\ntitle: y\nunit_column: 单位\ncolumns: [a, b]\n", "表单模板 bad.yaml：unit_column“单位”不是 columns 中的列名"),
    ("name: x\ntitle: y\ncolums: [a]\ncolumns: [a]\n", "表单模板 bad.yaml：不认识的键“colums”"),
    ("name: x\ntitle: y\ncolumns: [{name: a, aliases: [人数]}, {name: b, aliases: [人数]}]\n",
     "表单模板 bad.yaml：表头写法“人数”同时属于“a”和“b”"),
    ("name: x\n  title: [\n", "表单模板 bad.yaml：不是有效的 YAML"),
    ("- just a list\n", "表单模板 bad.yaml：内容应是一个映射"),
])
def test_bad_template_is_explained(tmp_path, text, message):
    (tmp_path / "bad.yaml").write_text(text, "utf-8")
    with pytest.raises(TemplateError) as caught:
        load_templates(tmp_path)
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_missing_template_folder(tmp_path):
    with pytest.raises(TemplateError, match="表单模板目录 .* 不存在"):
        load_templates(tmp_path / "nowhere")


# ---- fixtures -----------------------------------------------------------------------------------

GZ = "关注情况统计表"
BJ = "信息报送表"
GZ_HEADER = ("填报单位", "填报时间")
BJ_HEADER = ("报送单位", "报送时间")


def gz_rows(*pairs):
    return [{"单位名称": unit, "关注人数": count} for unit, count in pairs]


def bj_row(unit, name, politics, duty, title, wechat, phone, note=None):
    return {"单位": unit, "姓名": name, "政治面貌": politics, "职务": duty, "职称": title, "微信号": wechat,
            "手机号": phone, "备注": note}


def err(index, source_row, column, value, message):
    return {"row_index": index, "source_row": source_row, "column": column, "value": value, "message": message}


def header(unit, when, unit_raw=None, when_raw=None, fields=GZ_HEADER):
    unit_key, when_key = fields
    return {"header": {unit_key: unit, when_key: when},
            "header_raw": {unit_key: unit_raw or unit, when_key: when_raw}}


def table_rows(table, *rows):
    return [{"table": table, "row": r} for r in rows]


EXPECT = {
    "0001-guanzhu-merged-header.docx": dict(
        format="docx", template=GZ, **header("兰山区科协", "2026-12-18", when_raw="2026年12月18日"),
        rows=gz_rows(("兰山区科协", 123), ("罗庄区科协", 1234), ("河东区科协", 300), ("沂南县科协", None)),
        sources=table_rows(1, 4, 5, 7, 8), total={"关注人数": 1657},
        errors=[err(4, 8, "关注人数", "三百多", "第4行 关注人数 “三百多” 不是数字")], warnings=[]),
    "0002-guanzhu-page-break.docx": dict(
        format="docx", template=GZ, **header("临沂市科协学会部", "2026-12-19", when_raw="2026.12.19"),
        rows=gz_rows(("临沂市农学会", 56), ("临沂市林学会", 48), ("临沂市水利学会", 102), ("临沂市医学会", 205),
                     ("临沂市药学会", 2000), ("临沂市护理学会", 1500), ("临沂市心理学会", 77)),
        sources=table_rows(1, 2, 3, 4) + table_rows(2, 2, 3) + table_rows(3, 1, 2),
        total={"关注人数": 3988}, errors=[], warnings=[]),
    "0005-guanzhu.xlsx": dict(
        format="xlsx", template=GZ, **header("平邑县科协", "2026-12-18", when_raw="2026-12-18"),
        rows=gz_rows(("平邑县科协", 120), ("平邑县农学会", 123), ("平邑县第一中学", 0), ("平邑县人民医院", None),
                     ("平邑县科技馆", 12000)),
        sources=[{"sheet": "关注情况", "row": r} for r in (5, 6, 8, 9, 10)], total={"关注人数": 120},
        errors=[err(4, 9, "关注人数", None, "第4行 关注人数 未填写")],
        # The office's =SUM() skipped the cells typed as text: the file's total is wrong.
        warnings=["合计行 关注人数 写的是 120，各行相加是 12243"]),
    "0006-guanzhu-wps-dimension.xlsx": dict(
        format="xlsx", template=GZ, **header("沂南县科协", "2026-12-16", when_raw="2026-12-16"),
        rows=gz_rows(("沂南县科协", 210), ("沂南县科技馆", 35), ("沂南县老科协", 18)),
        sources=[{"sheet": "Sheet1", "row": r} for r in (3, 4, 5)], total=None, errors=[], warnings=[]),
    "0007-guanzhu.xls": dict(
        format="xls", template=GZ, **header("蒙阴县科协", "2026-12-15", when_raw="2026-12-15"),
        rows=gz_rows(("蒙阴县科协", 150), ("蒙阴县科技馆", 90), ("蒙阴县林业局", None)),
        sources=[{"sheet": "统计表", "row": r} for r in (5, 6, 7)], total={"关注人数": None},
        errors=[err(3, 7, "关注人数", "12.5", "第3行 关注人数 “12.5” 不是整数")],
        warnings=["合计行 关注人数 “252.5” 不是整数"]),
    "0008-guanzhu-gbk.csv": dict(
        format="csv", template=GZ, **header("莒南县科协", "2026-12-17", when_raw="2026年12月17日"),
        rows=gz_rows(("莒南县科协", 1234), ("莒南县科技馆", 123), ("莒南县农技协", 60)),
        sources=[{"line": n} for n in (4, 5, 7)], total={"关注人数": 1417}, errors=[], warnings=[]),
    "0009-bijie-roster.docx": dict(
        format="docx", template=BJ, **header("毕节市科协", "2019-10-25", when_raw="2019年10月25日", fields=BJ_HEADER),
        rows=[bj_row("毕节市科协", "孙超", "中共党员", "科员", "助理工程师", "sunchao_wx", "13984722959"),
              bj_row("毕节市科协", "黄坤", "中共预备党员", "副科长", "工程师", "hk2019", "18984454651", "兼职"),
              bj_row("毕节市科技馆", "张三", "共青团员", "讲解员", None, "zhangsan", None),
              bj_row("七星关区科协", "李四", "民盟盟员", "副主席", "高级教师", None, "13700000001"),
              bj_row("大方县科协", "王五", None, "干事", None, "wangwu", "13600000002"),
              bj_row("黔西市科协", "赵六", "无党派人士", "主席", "研究员", "zl", None)],
        sources=table_rows(1, 2, 3, 4, 5, 6, 7), total=None,
        errors=[err(3, 4, "手机号", "1898445465", "第3行 手机号 “1898445465” 不是11位手机号码"),
                err(5, 6, "政治面貌", "团委", "第5行 政治面貌 “团委” 不在可选项内（中共党员、中共预备党员、共青团员、"
                    "民革党员、民盟盟员、民建会员、民进会员、农工党党员、致公党党员、九三学社社员、台盟盟员、无党派人士、群众）"),
                err(6, 7, "手机号", None, "第6行 手机号 未填写")], warnings=[]),
    "0010-bijie-roster-xls-renamed.et": dict(
        format="xls", template=BJ, **header("织金县科协", "2019-10-24", when_raw="2019-10-24", fields=BJ_HEADER),
        rows=[bj_row("织金县科协", "刘一", "中共党员", "主席", "高级农艺师", "liuyi", "13908570001"),
              bj_row("织金县科协", "陈二", "群众", "干事", None, None, "15185700002", "新进"),
              bj_row("织金县第一中学", "周三", "九三学社社员", "教师", "一级教师", "zhou3", "15185700003")],
        sources=[{"sheet": "Sheet1", "row": r} for r in (4, 5, 6)], total=None, errors=[], warnings=[]),
    "0011-guanzhu-nested-table.docx": dict(
        format="docx", template=GZ, **header("兰陵县科协", "2026-12-17", when_raw="2026/12/17"),
        rows=gz_rows(("兰陵县科协", 88), ("兰陵县科技馆", 66)), sources=table_rows(2, 2, 3), total=None,
        errors=[], warnings=[]),
    "0012-unknown-table.docx": dict(
        format="docx", template=None, header={}, header_raw={}, rows=[], sources=[], total=None, errors=[],
        warnings=["没有认出是哪一种统计表（表头：序号、姓名、性别、年龄）；已有的模板：信息报送表、关注情况统计表"]),
    "0013-scan.pdf": dict(format="pdf", template=None, header={}, header_raw={}, rows=[], sources=[], total=None,
                          errors=[], warnings=["扫描件或照片，需要人工录入"]),
    "0014-photo.png": dict(format="image", template=None, header={}, header_raw={}, rows=[], sources=[],
                           total=None, errors=[], warnings=["扫描件或照片，需要人工录入"]),
}
EXPECT["0017-guanzhu-docx-renamed.wps"] = EXPECT["0011-guanzhu-nested-table.docx"]
YISHUI_TOWNS = ["沂城街道", "龙家圈街道", "许家湖镇", "黄山铺镇", "诸葛镇", "崔家峪镇", "四十里堡镇", "杨庄镇", "夏蔚镇", "沙沟镇",
                "高庄镇", "马站镇", "高桥镇", "富官庄镇", "院东头镇", "泉庄镇", "圈里乡", "道托镇"]


def pdf_rows(*pages):
    """Sources in a PDF: (page, table, rows…) for each page."""
    return [{"page": page, "table": table, "row": r} for page, table, *rows in pages for r in rows]


# PDFs exported from Word (LibreOffice), read through their text layer
EXPECT.update({
    "0015-guanzhu-text-layer.pdf": dict(  # two pages; Word repeats the header row on page 2
        format="pdf", template=GZ, **header("沂水县科协", "2026-12-19", when_raw="2026年12月19日"),
        rows=gz_rows(("沂水县科协", 120), ("沂水县科技馆", 1050), ("沂水县农村专业技术协会联合会(沂水县农技协联合会)", 80),
                     *((f"沂水县{town}科协", 10 + i) for i, town in enumerate(YISHUI_TOWNS, 4))),
        sources=pdf_rows((1, 1, 2, 3, 4, *range(6, 23)), (2, 1, 2)), total={"关注人数": 1655}, errors=[], warnings=[]),
    "0018-guanzhu-text-layer-borderless.pdf": dict(
        format="pdf", template=GZ, **header("沂南县科协", "2026-12-16", when_raw="2026年12月16日"),
        rows=gz_rows(("沂南县科协", 210), ("沂南县科技馆", 35), ("沂南县老科协", 1018), ("沂南县第二中学", 2000)),
        sources=pdf_rows((1, 1, 2, 3, 4, 5)), total={"关注人数": 3263}, errors=[], warnings=[]),
    "0019-guanzhu-password.pdf": dict(
        format="pdf", template=None, header={}, header_raw={}, rows=[], sources=[], total=None, errors=[],
        warnings=["PDF 设置了打开密码，无法读取；请对方去掉密码后重新发送，或发送 Word/Excel 文件"]),
    # the same Word files as 0001 and 0009, exported: merged cells read as in the .docx
    "0020-guanzhu-merged-header.pdf": {**EXPECT["0001-guanzhu-merged-header.docx"], "format": "pdf",
                                       "sources": pdf_rows((1, 1, 4, 5, 7, 8))},
    "0021-bijie-roster.pdf": {**EXPECT["0009-bijie-roster.docx"], "format": "pdf",
                              "sources": pdf_rows((1, 1, 2, 3, 4, 5, 6, 7))},
})
@pytest.mark.parametrize("name", list(EXPECT))
def test_fixture(name):
    got = read(name).to_dict()
    jsonschema.validate(got, SCHEMA)
    want = EXPECT[name]
    assert {k: got[k] for k in want} == want
    columns = {GZ: ["单位名称", "关注人数"], BJ: list(bj_row(*[None] * 7))}.get(want["template"], [])
    assert got["columns"] == columns
    assert got["form_type"] == {GZ: "临沂科协微信公众号关注情况统计表", BJ: "毕节市科普宣传和信息管理员信息报送表"}.get(
        want["template"])


# ---- header fields: each template's own names are the JSON keys (issue 11) ---------------------

@pytest.mark.parametrize("name,fields", [("0009-bijie-roster.docx", BJ_HEADER),
                                         ("0010-bijie-roster-xls-renamed.et", BJ_HEADER),
                                         ("0005-guanzhu.xlsx", GZ_HEADER)])
def test_forms_check_json_names_the_header_fields(tmp_path, name, fields):
    proc = mailbot_main("forms", "check", FORMS / name, "--json", "--forms", ROOT / "config" / "forms",
                        cwd=tmp_path)  # main(), in this process
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    jsonschema.validate(out, SCHEMA)
    assert list(out["header"]) == list(fields) and list(out["header_raw"]) == list(fields)
    assert all(out["header"].values()), out["header"]


BJ_TABLE = "序号,单位,姓名,政治面貌,职务,职称,微信号,手机号,备注\n"


@pytest.mark.parametrize("written,table,template,want", [
    ("填报单位：织金县科协,,填报时间：2019年10月24日", BJ_TABLE + "1,织金县科协,刘一,群众,主席,,,13908570001,\n", BJ,
     {"报送单位": "织金县科协", "报送时间": "2019-10-24"}),
    ("报送单位（盖章）：织金县科协,,报送日期：2019-10-24", BJ_TABLE + "1,织金县科协,刘一,群众,主席,,,13908570001,\n", BJ,
     {"报送单位": "织金县科协", "报送时间": "2019-10-24"}),
    ("报送单位：兰山区科协,,报送时间：2026年12月18日", "序号,单位名称,关注人数\n1,兰山区科协,5\n", GZ,
     {"填报单位": "兰山区科协", "填报时间": "2026-12-18"}),
], ids=["bijie-written-tianbao", "bijie-seal-and-riqi", "guanzhu-written-baosong"])
def test_header_spellings_are_read_under_the_templates_names(written, table, template, want):
    got = read_form(f"{written}\n{table}".encode("utf-8"), "x.csv", TEMPLATES, today=TODAY)
    assert (got.template, got.header, got.errors) == (template, want, [])


# ---- what people write in a text column stays what they wrote (issue 11) ------------------------

def test_text_answers_like_wu_are_kept_and_count_as_filled():
    text = (BJ_TABLE + "1,织金县科协,刘一,中共党员,主席,无,暂无,13908570001,—\n"
            "2,织金县科协,陈二,群众,/,没有,——,15185700002,无。\n"
            "3,织金县科协,周三,群众,-,暂无,N/A,15185700003,\n")
    got = read_form(text.encode("utf-8"), "x.csv", TEMPLATES, today=TODAY)
    assert (got.template, got.errors) == (BJ, [])
    assert got.rows == [bj_row("织金县科协", "刘一", "中共党员", "主席", "无", "暂无", "13908570001", "—"),
                        bj_row("织金县科协", "陈二", "群众", "/", "没有", "——", "15185700002", "无。"),
                        bj_row("织金县科协", "周三", "群众", "-", "暂无", "N/A", "15185700003")]


def test_a_required_text_column_answered_wu_is_valid():
    data = yaml.safe_load((ROOT / "config" / "forms" / "信息报送表.yaml").read_text("utf-8"))
    for column in data["columns"]:
        if column["name"] == "职称":
            column["required"] = True  # not required in the shipped template
    template, problems = parse_template(data)
    assert problems == []
    text = (BJ_TABLE + "1,织金县科协,刘一,群众,主席,无,,13908570001,\n2,织金县科协,陈二,群众,干事,暂无,,15185700002,\n"
            "3,织金县科协,周三,群众,干事,—,,15185700003,\n4,织金县科协,吴四,群众,干事,,,15185700004,\n")
    got = read_form(text.encode("utf-8"), "x.csv", [template], today=TODAY)
    assert [r["职称"] for r in got.rows] == ["无", "暂无", "—", None]
    assert [e.message for e in got.errors] == ["第4行 职称 未填写"]


def test_wu_in_a_required_integer_column_is_not_a_number():
    """关注人数 无 (or —) gives no count: the unit is asked to fill it in; the cell stays as written."""
    got = read_form("序号,单位名称,关注人数\n1,兰山区科协,无\n2,罗庄区科协,—\n".encode("utf-8"), "x.csv", TEMPLATES)
    assert got.rows == gz_rows(("兰山区科协", None), ("罗庄区科协", None))
    assert [it.raw["关注人数"] for it in got.items] == ["无", "—"]
    assert [asdict_error(e) for e in got.errors] == [err(1, 2, "关注人数", None, "第1行 关注人数 未填写"),
                                                     err(2, 3, "关注人数", None, "第2行 关注人数 未填写")]


def asdict_error(error) -> dict:
    return {"row_index": error.row_index, "source_row": error.source_row, "column": error.column,
            "value": error.value, "message": error.message}


# .doc, .wps and HTML-as-.doc go through LibreOffice (a child process): their expectations and
# tests are in tests/integration/test_forms_libreoffice.py.
THROUGH_LIBREOFFICE = {"0003-guanzhu.doc", "0004-guanzhu-doc-renamed.wps", "0016-guanzhu-webpage-saved-as.doc"}


def test_every_fixture_is_covered():
    on_disk = {p.name for p in FORMS.iterdir() if p.name[:4].isdigit()}
    assert on_disk == set(EXPECT) | THROUGH_LIBREOFFICE and not set(EXPECT) & THROUGH_LIBREOFFICE


def test_raw_cells_are_kept_for_storage():
    first = read("0001-guanzhu-merged-header.docx").items[0]
    assert (first.index, first.values, first.raw, first.source) == (
        1, {"单位名称": "兰山区科协", "关注人数": 123}, {"单位名称": "兰山区科协", "关注人数": "１２３"},
        {"table": 1, "row": 4})


def test_text_pdf_wrapped_cells_are_joined():
    long_name = read("0015-guanzhu-text-layer.pdf").items[2]
    assert long_name.raw["单位名称"] == "沂水县农村专业技术协会联合会（沂水县农技协联合会）"  # two lines in its cell
    assert read("0021-bijie-roster.pdf").items[0].raw["微信号"] == "sunchao_wx"  # wrapped inside the word


def test_text_pdf_without_pdfplumber_says_so(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_pdfplumber(name, *args, **kwargs):
        if name.startswith("pdfplumber"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pdfplumber)
    got = read_form((FORMS / "0015-guanzhu-text-layer.pdf").read_bytes(), "x.pdf", TEMPLATES)
    assert (got.format, got.rows, got.warnings) == (
        "pdf", [], ["这是带文字的 PDF，但本机没有安装 pdfplumber，无法读取表格；请对方发送 Word/Excel 文件，或人工录入"])


# ---- formats, sniffing and failures ------------------------------------------------------------

def test_wps_fixture_really_has_a_wrong_dimension():
    data = (FORMS / "0006-guanzhu-wps-dimension.xlsx").read_bytes()
    sheet = openpyxl.load_workbook(BytesIO(data), read_only=True).worksheets[0]
    assert [c.value for row in sheet.iter_rows() for c in row] == ["填报单位：沂南县科协"]


def test_renamed_files_are_sniffed_by_content():
    assert sniff_format((FORMS / "0004-guanzhu-doc-renamed.wps").read_bytes()) == "doc"
    assert sniff_format((FORMS / "0010-bijie-roster-xls-renamed.et").read_bytes()) == "xls"
    assert sniff_format((FORMS / "0017-guanzhu-docx-renamed.wps").read_bytes()) == "docx"
    data = (FORMS / "0005-guanzhu.xlsx").read_bytes()
    assert read_form(data, "看这个.doc", TEMPLATES).rows == read("0005-guanzhu.xlsx").rows


def test_doc_without_libreoffice_says_so():
    got = read_form((FORMS / "0003-guanzhu.doc").read_bytes(), "0003.doc", TEMPLATES, soffice=False)
    jsonschema.validate(got.to_dict(), SCHEMA)
    assert (got.format, got.template, got.rows) == ("doc", None, [])
    assert got.warnings == ["Word 97-2003 / WPS 文字（.doc/.wps） 格式需要 LibreOffice 才能读取，本机没有安装；"
                            "请安装 LibreOffice，或请对方另存为 .docx/.xlsx 后重新发送"]


def test_xls_is_read_without_libreoffice():
    got = read_form((FORMS / "0007-guanzhu.xls").read_bytes(), "x.xls", TEMPLATES, soffice=False)
    assert got.rows == read("0007-guanzhu.xls").rows


def _broken_docx() -> bytes:
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("word/document.xml", "<not-closed")
    return out.getvalue()


@pytest.mark.parametrize("data,fmt,warning", [
    (b"", "empty", "文件是空的"),
    (os.urandom(64) + b"\x00", "unknown", "无法识别的文件格式"),
    ((FORMS / "0001-guanzhu-merged-header.docx").read_bytes()[:2000], "zip", "无法识别的文件格式"),
    (_broken_docx(), "docx", "文件无法读取，可能已损坏"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "ole", "无法识别的文件格式"),
    (b"MIME-Version: 1.0\r\nContent-Type: multipart/related\r\n\r\n", "mhtml", "这是“单个文件网页”（MHTML）格式"),
])
def test_bad_files_give_warnings_not_exceptions(data, fmt, warning):
    got = read_form(data, "附件.docx", TEMPLATES)
    jsonschema.validate(got.to_dict(), SCHEMA)
    assert got.format == fmt and got.rows == [] and got.warnings[0].startswith(warning), got.warnings


# ---- hostile PDFs: a warning in the result, never an exception ----------------------------

HELVETICA = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"
# a CID font with no ToUnicode map: pdfminer can only give "(cid:18)"
NO_TOUNICODE = (b"<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H /DescendantFonts [<< /Type /Font"
                b" /Subtype /CIDFontType2 /BaseFont /SimSun /CIDSystemInfo << /Registry (Adobe) /Ordering (Identity)"
                b" /Supplement 0 >> >>] >>")
BAD_TYPE3 = (b"<< /Type /Font /Subtype /Type3 /FontMatrix [1 (a) 0 1 0 0] /FontBBox [0 0 1 1] /CharProcs << >>"
             b" /Encoding << /Differences [0 /a] >> /FirstChar 0 /LastChar 1 /Widths [1 1] >>")
HELLO = b"BT /F1 12 Tf 50 800 Td (hello) Tj ET"


def pdf_file(pages: list[bytes], fonts=(HELVETICA,), mediabox=b"[0 0 595 842]") -> bytes:
    """A hand-made PDF: one content stream per page; fonts F1, F2 … shared by all pages."""
    first_page = 3 + len(fonts)
    kids = b" ".join(b"%d 0 R" % (first_page + 2 * i) for i in range(len(pages)))
    names = b" ".join(b"/F%d %d 0 R" % (i, 2 + i) for i in range(1, len(fonts) + 1))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(pages)),
               *fonts]
    for i, content in enumerate(pages):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox %s /Resources << /Font << %s >> >> /Contents %d 0 R >>"
                       % (mediabox, names, first_page + 2 * i + 1))
        objects.append(b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream")
    out, offsets = BytesIO(), []
    out.write(b"%PDF-1.4\n")
    for n, body in enumerate(objects, 1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % n + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    out.writelines(b"%010d 00000 n \n" % o for o in offsets)
    out.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref))
    return out.getvalue()


PDF_BROKEN = "PDF 文件已损坏或格式不规范，无法读取；请对方重新导出后发送，或发送 Word/Excel 文件"
LINES = b"".join(b"%d %d m %d %d l S\n" % (10 + i % 500, 10 + i // 500, 20 + i % 500, 20 + i // 500) for i in range(3100))


@pytest.mark.parametrize("data,warning", [
    pytest.param(pdf_file([HELLO]), None, id="the-builder-makes-a-readable-pdf"),
    pytest.param(pdf_file([b"BT /F1 12 Tf 50 800 Td <00120034> Tj ET"], [NO_TOUNICODE]),
                 "PDF 中的文字无法提取（字体没有文字编码，常见于部分软件导出的 PDF），需要人工录入；如方便，请对方发送 Word/Excel 文件",
                 id="no-tounicode"),
    pytest.param(pdf_file([HELLO + b"\n" + LINES]), "PDF 第1页线条过多，未读取其中的表格", id="too-many-lines"),
    pytest.param(pdf_file([HELLO] * 51), "PDF 共 51 页，只读取了前 50 页", id="too-many-pages"),
    pytest.param(pdf_file([b"BT /F2 12 Tf 50 800 Td (a) Tj ET", HELLO], [HELVETICA, BAD_TYPE3]),
                 "PDF 第1页无法读取（PdfminerException）", id="one-bad-page"),
    pytest.param(pdf_file([HELLO], mediabox=b"[0 0 (a) 842]"), PDF_BROKEN, id="bad-mediabox"),
    pytest.param(b"%PDF-1.7\n" + bytes(range(256)) * 40, PDF_BROKEN, id="garbage"),
    pytest.param((FORMS / "0015-guanzhu-text-layer.pdf").read_bytes()[:4000], PDF_BROKEN, id="truncated"),
])
def test_hostile_pdfs_give_warnings(data, warning):
    got = read_form(data, "附件.pdf", TEMPLATES)
    jsonschema.validate(got.to_dict(), SCHEMA)
    assert (got.format, got.template, got.rows) == ("pdf", None, [])
    if warning is None:  # text but no table: the usual "no form found"
        assert got.warnings == ["文件中没有找到表格；已有的模板：信息报送表、关注情况统计表"]
    else:
        assert got.warnings[0] == warning, got.warnings


def test_csv_in_utf8_with_tabs():
    text = "填报单位\t测试科协\n序号\t单位名称\t关注人数\n1\t测试科协\t10\n合计\t\t10\n"
    got = read_form(text.encode("utf-8-sig"), "x.txt", TEMPLATES)
    assert (got.format, got.rows, got.total, got.header["填报单位"]) == (
        "csv", gz_rows(("测试科协", 10)), {"关注人数": 10}, "测试科协")


def test_header_missing_column_and_extra_column_are_warned():
    text = "序号,单位名称,关注人数,联系人\n1,甲科协,5,张三\n"
    got = read_form(text.encode(), "x.csv", TEMPLATES)
    assert got.warnings == ["表格中的“联系人”列不在模板“关注情况统计表”中，已忽略"]
    got = read_form("序号,单位,姓名,手机号,备注\n1,甲科协,张三,13900000000,\n".encode(), "x.csv", TEMPLATES)
    assert got.template == BJ and "表格中没有找到“政治面貌”列" in got.warnings


@pytest.mark.parametrize("text, warned", [
    ("序号,单位名称,关注人数\n1,沂水县科协,1,024\n2,兰山区科协,300\n", ["第1行在表头以外还有内容（024）"]),
    ("序号,单位名称,关注人数\n1,沂水县科协,\"1,024\"\n2,兰山区科协,300\n", []),
    ("序号,单位名称,关注人数,\n1,沂水县科协,1024,\n", []),
], ids=["unquoted thousands comma", "quoted thousands comma", "empty trailing column"])
def test_cells_beyond_the_header_are_not_dropped_silently(text, warned):
    from mailbot.forms import read_form

    result = read_form(text.encode("utf-8"), "关注情况统计表.csv", TEMPLATES, today=TODAY)
    assert result.template == "关注情况统计表"
    assert [w.split("：")[0] for w in result.warnings if "表头以外" in w] == warned
