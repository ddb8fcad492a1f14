"""Importing the office's Excel roster: header found by name, several addresses a cell,
merged into the roster YAML without losing what was there."""

from __future__ import annotations

import yaml
from conftest import mailbot_main
from openpyxl import Workbook

from mailbot.config import load
from mailbot.read.roster import merge, read_rows

ROWS = [
    ["临沂市科协 单位名册", None, None, None, None],  # a title row above the header, as offices do
    ["序号", "单位名称", "简称", "单位类别", "所属县区", "联系邮箱"],
    [1, "沂水县科协", "沂水科协、沂水县科学技术协会", "县区科协", "沂水县", "ysxkx@163.com；zhang@qq.com"],
    [2, "临沂市农学会", "市农学会", "学会", None, "LYNXH@QQ.COM, not-an-address"],
    [3, None, None, None, None, None],
    [4, "临沂大学　科协", None, "高校科协", None, None],
]


def test_read_rows_finds_the_header_and_splits_cells():
    result = read_rows(ROWS)
    assert [u["name"] for u in result.units] == ["沂水县科协", "临沂市农学会", "临沂大学科协"]
    yishui = result.units[0]
    assert yishui["aliases"] == ["沂水科协", "沂水县科学技术协会"]
    assert yishui["addresses"] == ["ysxkx@163.com", "zhang@qq.com"] and yishui["parent"] == "沂水县"
    assert result.units[1]["addresses"] == ["lynxh@qq.com"]
    assert result.problems == ["第 4 行 临沂市农学会：邮箱“not-an-address”格式不对，已跳过"]


def test_no_header_is_reported():
    assert read_rows([["a", "b"], [1, 2]]).problems[0].startswith("没有找到表头")


def test_merge_keeps_and_unions():
    existing = [{"name": "沂水县科协", "category": "县区科协", "addresses": ["old@163.com"]}]
    units, added, updated = merge(existing, read_rows(ROWS).units)
    assert (added, updated) == (2, 1)
    assert units[0]["addresses"] == ["old@163.com", "ysxkx@163.com", "zhang@qq.com"]


def test_cli_import_writes_a_roster_the_config_loads(tmp_path):
    book = Workbook()
    for row in ROWS:
        book.active.append(row)
    xlsx = tmp_path / "名册.xlsx"
    book.save(xlsx)
    roster = tmp_path / "units.yaml"
    proc = mailbot_main("units", "import", xlsx, "--roster", roster)  # main(), in this process
    assert proc.returncode == 0, proc.stderr
    assert "新增 3 个单位" in proc.stdout and "not-an-address" in proc.stderr
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(f"roster: {roster}\nmailboxes:\n  - {{name: a, host: h, user: u, password_env: P}}\n", "utf-8")
    assert [u.name for u in load(cfg).units] == ["沂水县科协", "临沂市农学会", "临沂大学科协"]
    assert yaml.safe_load(roster.read_text("utf-8"))["units"][1]["category"] == "学会"
