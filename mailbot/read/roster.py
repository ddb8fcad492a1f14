"""Importing the unit roster from the Excel sheet an office already keeps.

Columns are found by their header names (单位名称, 简称, 类别, 上级, 邮箱, 域名 and the usual
variants), wherever the header row is; addresses may be several to a cell. The result is
merged into the roster YAML: existing units keep what they had and gain what is new.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

import yaml

COLUMNS = {
    "name": ("单位名称", "单位", "名称", "单位全称"),
    "aliases": ("简称", "别名", "单位简称", "简称/别名"),
    "category": ("类别", "单位类别", "类型", "单位类型"),
    "parent": ("上级", "所属", "上级单位", "所属县区", "县区"),
    "addresses": ("邮箱", "电子邮箱", "联系邮箱", "邮箱地址", "e-mail", "email"),
    "domains": ("域名", "邮箱域名"),
}
_SPLIT = re.compile(r"[;；,，、/\s]+")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+$")


@dataclass
class ImportResult:
    units: list[dict] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _clean(value) -> str:
    return unicodedata.normalize("NFKC", str(value or "")).strip()


def _header_map(row: list) -> dict[str, int]:
    found = {}
    for i, cell in enumerate(row):
        label = _clean(cell).replace(" ", "").lower()
        for key, names in COLUMNS.items():
            if key not in found and label in {n.lower() for n in names}:
                found[key] = i
    return found


def read_rows(rows: list[list]) -> ImportResult:
    """Units from sheet rows (pure): header row found by its names, one unit per row."""
    result = ImportResult()
    header, start = None, 0
    for i, row in enumerate(rows[:20]):
        cols = _header_map(row)
        if "name" in cols:
            header, start = cols, i + 1
            break
    if header is None:
        result.problems.append("没有找到表头：需要一列“单位名称”（可选：简称、类别、上级、邮箱、域名）")
        return result
    for n, row in enumerate(rows[start:], start=start + 1):
        get = lambda key: _clean(row[header[key]]) if key in header and header[key] < len(row) else ""  # noqa: E731
        name = get("name").replace(" ", "")
        if not name:
            continue
        unit = {"name": name, "category": get("category") or "其他"}
        if get("parent"):
            unit["parent"] = get("parent")
        for key in ("aliases", "addresses", "domains"):
            values = [v for v in _SPLIT.split(get(key)) if v]
            if key == "addresses":
                bad = [v for v in values if not _EMAIL.match(v)]
                for v in bad:
                    result.problems.append(f"第 {n} 行 {name}：邮箱“{v}”格式不对，已跳过")
                values = [v.lower() for v in values if v not in bad]
            if key == "domains":
                values = [v.lower().lstrip("@") for v in values]
            if values:
                unit[key] = values
        result.units.append(unit)
    return result


def read_workbook(path: Path) -> ImportResult:
    """Rows of the first sheet of an .xlsx (or .csv) file."""
    if path.suffix.lower() == ".csv":
        import csv

        raw = path.read_bytes()
        text = raw.decode("utf-8-sig") if _utf8(raw) else raw.decode("gb18030")
        return read_rows(list(csv.reader(text.splitlines())))
    from openpyxl import load_workbook

    book = load_workbook(path, read_only=False, data_only=True)  # not read_only: WPS writes a wrong dimension
    sheet = book.worksheets[0]
    return read_rows([list(r) for r in sheet.iter_rows(values_only=True)])


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def merge(existing: list[dict], incoming: list[dict]) -> tuple[list[dict], int, int]:
    """Existing units updated with incoming ones (lists unioned), new ones appended."""
    by_name = {u["name"]: dict(u) for u in existing}
    added = updated = 0
    for unit in incoming:
        old = by_name.get(unit["name"])
        if old is None:
            by_name[unit["name"]] = unit
            added += 1
            continue
        before = dict(old)
        for key in ("aliases", "addresses", "domains"):
            old[key] = list(dict.fromkeys([*old.get(key, []), *unit.get(key, [])]))
            if not old[key]:
                old.pop(key)
        for key in ("category", "parent"):
            if unit.get(key) and (key != "category" or unit[key] != "其他"):
                old[key] = unit[key]
        updated += old != before
    return list(by_name.values()), added, updated


def write_roster(path: Path, units: list[dict]) -> None:
    header = ("# The unit roster (单位名册), written by `mailbot units import`; edit freely.\n"
              "# Each unit: name, aliases (short names), category, parent, addresses, domains.\n")
    body = yaml.safe_dump({"units": units}, allow_unicode=True, sort_keys=False, width=120)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(header + body, encoding="utf-8")
    tmp.replace(path)


def load_units(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("units", [])
