"""Forms read through LibreOffice (`soffice --headless`, a child process): Word 97-2003 .doc,
a .doc renamed .wps, and a web page saved as .doc, read to exact rows, errors and warnings
against the JSON contract; and a LibreOffice that hangs or cannot start. The other fixtures
in tests/forms/ are read in tests/unit/test_forms.py."""

from __future__ import annotations

import functools
import json
import shutil
from datetime import date
from pathlib import Path

import jsonschema
import pytest

from mailbot.forms import load_templates, read_form

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
FORMS = ROOT / "tests" / "forms"
TEMPLATES = load_templates(ROOT / "config" / "forms")
SCHEMA = json.loads((ROOT / "tests" / "contract" / "forms.schema.json").read_text("utf-8"))
TODAY = date(2026, 12, 21)
HAS_SOFFICE = bool(shutil.which("soffice") or shutil.which("libreoffice"))
needs_soffice = pytest.mark.skipif(not HAS_SOFFICE, reason="LibreOffice (soffice) is not installed: "
                                   "scripts/setup.sh installs it; .doc/.wps/HTML forms are read through it")
GZ = "关注情况统计表"


def gz_rows(*pairs):
    return [{"单位名称": unit, "关注人数": count} for unit, count in pairs]


def err(index, source_row, column, value, message):
    return {"row_index": index, "source_row": source_row, "column": column, "value": value, "message": message}


def header(unit, when, when_raw):
    return {"header": {"填报单位": unit, "填报时间": when}, "header_raw": {"填报单位": unit, "填报时间": when_raw}}


def table_rows(table, *rows):
    return [{"table": table, "row": r} for r in rows]


EXPECT = {
    "0003-guanzhu.doc": dict(
        format="doc", template=GZ, **header("费县科协", "2026-12-20", when_raw="2026年12月20日"),
        rows=gz_rows(("费县科协", 1234), ("费县第一中学", 80), ("费县人民医院", 1024), ("费县科技馆", None)),
        sources=table_rows(1, 2, 3, 4, 5), total=None,
        errors=[err(4, 5, "关注人数", None, "第4行 关注人数 未填写")], warnings=[]),
    "0004-guanzhu-doc-renamed.wps": dict(
        format="doc", template=GZ, **header("郯城县科协", "2026-12-20", when_raw="12月20日"),
        rows=gz_rows(("郯城县科协", 310), ("郯城县农技协", 2000), ("郯城县老科协", 45)),
        sources=table_rows(1, 2, 3, 4), total=None, errors=[], warnings=[]),
    "0016-guanzhu-webpage-saved-as.doc": dict(
        format="html", template=GZ, **header("费县科协", "2026-12-20", when_raw="2026年12月20日"),
        rows=gz_rows(("费县科协", 1234), ("费县第一中学", 80), ("费县人民医院", 1024), ("费县科技馆", None)),
        sources=table_rows(1, 2, 3, 4, 5), total=None,
        errors=[err(4, 5, "关注人数", None, "第4行 关注人数 未填写")], warnings=[]),
}


@functools.cache
def read(name: str):
    return read_form((FORMS / name).read_bytes(), name, TEMPLATES, today=TODAY)


@needs_soffice
@pytest.mark.parametrize("name", list(EXPECT))
def test_fixture(name):
    got = read(name).to_dict()
    jsonschema.validate(got, SCHEMA)
    want = EXPECT[name]
    assert {k: got[k] for k in want} == want
    assert got["columns"] == ["单位名称", "关注人数"]
    assert got["form_type"] == "临沂科协微信公众号关注情况统计表"


def test_libreoffice_that_hangs_is_stopped(tmp_path):
    fake = tmp_path / "soffice"
    fake.write_text("#!/bin/sh\nsleep 30\n")
    fake.chmod(0o755)
    got = read_form((FORMS / "0003-guanzhu.doc").read_bytes(), "x.doc", TEMPLATES, soffice=str(fake), timeout=0.5)
    assert got.warnings == ["LibreOffice 转换超时（超过 0.5 秒）"]


def test_libreoffice_that_cannot_start(tmp_path):
    got = read_form((FORMS / "0003-guanzhu.doc").read_bytes(), "x.doc", TEMPLATES,
                    soffice=str(tmp_path / "no-soffice"))
    assert got.warnings[0].startswith("无法启动 LibreOffice")
