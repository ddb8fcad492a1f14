"""No office in the code (issue 15): the city, the office and its departments come from the
configuration, so another city's 科协 runs on its own files. Code and templates under
mailbot/ may name them only in comments and docstrings; a test fails naming each place."""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "mailbot"
NAMES = ("临沂", "毕节", "科普部", "学会部", "调宣部")
FOUND = re.compile("|".join(NAMES))


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            for stmt in body:  # docstrings and bare strings used as comments
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
                        and isinstance(stmt.value.value, str):
                    lines |= set(range(stmt.lineno, stmt.end_lineno + 1))
    return lines


def python_code(text: str) -> list[tuple[int, str]]:
    """(line, token) of every token that is code: comments and docstrings left out."""
    skip = _docstring_lines(ast.parse(text))
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE) or tok.start[0] in skip:
            continue
        out.append((tok.start[0], tok.string))
    return out


def template_code(text: str) -> list[tuple[int, str]]:
    """(line, text) of a Jinja template with its {# comments #} blanked (line numbers kept)."""
    text = re.sub(r"\{#.*?#\}", lambda m: "\n" * m.group(0).count("\n"), text, flags=re.S)
    return list(enumerate(text.splitlines(), 1))


def offences(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    parts = python_code(text) if path.suffix == ".py" else template_code(text)
    return [f"{path.relative_to(PACKAGE.parent)}:{line}: {FOUND.search(s).group(0)}"
            for line, s in parts if FOUND.search(s)]


FILES = sorted(p for p in PACKAGE.rglob("*") if p.suffix in (".py", ".j2") and "__pycache__" not in p.parts)


def test_the_scan_sees_code_and_templates():
    assert any(p.suffix == ".j2" for p in FILES) and any(p.name == "routing.py" for p in FILES)


@pytest.mark.parametrize("source, found", [
    ('x = "临沂市"\n', ["临沂"]),
    ('# 临沂市 in a comment\nx = 1\n', []),
    ('def f():\n    """转 科普部"""\n    return "学会部"\n', ["学会部"]),
    ('y = f("毕节")  # 调宣部\n', ["毕节"]),
])
def test_the_scan_tells_code_from_comments(source, found):
    assert [FOUND.search(s).group(0) for _, s in python_code(source) if FOUND.search(s)] == found


@pytest.mark.parametrize("source, found", [
    ("{# 调宣部 #}\n您好", []),
    ("请与调宣部联系", ["调宣部"]),
])
def test_the_scan_tells_templates_from_their_comments(source, found):
    assert [FOUND.search(s).group(0) for _, s in template_code(source) if FOUND.search(s)] == found


def test_no_office_named_in_code_or_templates():
    found = [o for path in FILES for o in offences(path)]
    assert not found, "office names belong in the configuration:\n" + "\n".join(found)


@pytest.mark.parametrize("office, written, unit", [
    ({"city": "临沂市"}, "农业技术学会的稿件", "临沂市农业技术学会"),
    ({"city": "毕节市"}, "农业技术学会的稿件", "毕节市农业技术学会"),
    ({"city": "毕节市"}, "毕节农业技术学会的稿件", "毕节市农业技术学会"),
    ({}, "农业技术学会的稿件", None),  # no city configured: nothing is stripped but 市
])
def test_the_configured_city_is_left_out_of_unit_names(office, written, unit):
    from mailbot.config import Settings
    from mailbot.routing import Directory, find_unit_by_name

    city = office.get("city", "某某市")
    settings = Settings.model_validate({
        "mailboxes": [{"name": "box", "host": "imap.example.cn", "user": "a@example.cn", "password_env": "P"}],
        "office": office, "units": [{"name": f"{city}农业技术学会", "category": "学会"}]})
    found = find_unit_by_name(written, Directory.from_settings(settings))
    assert (found.name if found else None) == unit


def test_a_department_contact_overrides_the_office_contact():
    from mailbot.config import Settings

    settings = Settings.model_validate({
        "mailboxes": [{"name": "box", "host": "imap.example.cn", "user": "a@example.cn", "password_env": "P"}],
        "office": {"contact": {"name": "甲", "phone": "1"}},
        "departments": [{"key": "a", "name": "一科", "prefix": "A", "contact": {"name": "乙"}},
                        {"key": "b", "name": "二科", "prefix": "B"}]})
    assert [settings.contact_person(k).name for k in ("a", "b", None)] == ["乙", "甲", "甲"]
