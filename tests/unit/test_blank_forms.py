"""The blank forms shipped with the example offices (made by LibreOffice, devtools/blank_forms.py)
are the robot's own templates: empty, each is recognised with no rows; filled in as a clerk
would, each is read row by row."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from docx import Document

from mailbot.forms import load_templates, read_form

CONFIG = Path(__file__).parents[2] / "config"
CASES = [
    (CONFIG / "forms" / "临沂科协微信公众号关注情况统计表.docx", CONFIG / "forms", "关注情况统计表",
     ["沂水县科协", "86"], {"单位名称": "沂水县科协", "关注人数": 86}),
    (CONFIG / "bijie-forms" / "毕节市科普宣传和信息管理员信息报送表.docx", CONFIG / "bijie-forms", "信息报送表",
     ["毕节市科技馆", "张三", "党员", "馆长", "", "zs123", "138 0000 0001", ""],
     {"单位": "毕节市科技馆", "姓名": "张三", "政治面貌": "中共党员", "手机号": "13800000001"}),
]


@pytest.mark.parametrize("path, folder, template, filled, expect", CASES, ids=[c[2] for c in CASES])
def test_blank_form_is_read_empty_and_filled(path, folder, template, filled, expect):
    templates = load_templates(folder)
    empty = read_form(path.read_bytes(), path.name, templates)
    assert (empty.template, empty.rows, empty.errors) == (template, [], [])
    doc = Document(io.BytesIO(path.read_bytes()))
    for i, value in enumerate(filled, 1):
        doc.tables[0].rows[1].cells[i].text = value
    buf = io.BytesIO()
    doc.save(buf)
    result = read_form(buf.getvalue(), path.name, templates)
    assert result.template == template and not result.errors
    [row] = result.rows
    assert {k: row[k] for k in expect} == expect
