"""A person in several returns counts once: the table tests/cases/count_once.yaml through
collecting.count_once (the tally export counts only the rows it marks counted)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from mailbot.campaigns.collecting import count_once

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "count_once.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_a_person_counts_once(case):
    entries = [{"ret": SimpleNamespace(unit=ret_unit), "unit": unit, "data": {"姓名": name, "手机号": phone}}
               for ret_unit, unit, name, phone in case["rows"]]
    count_once(entries, ("姓名", "手机号"))
    assert [i for i, e in enumerate(entries, 1) if e["counted"]] == case["counted"]
    same_person = len(case["counted"]) < len(entries)  # each case holds two rows
    assert all(bool(e["others"]) == same_person for e in entries)  # each names the other source


def test_no_key_counts_every_row():
    entries = [{"ret": SimpleNamespace(unit="a"), "unit": "a", "data": {"姓名": "张三"}} for _ in range(2)]
    count_once(entries, ())
    assert all(e["counted"] for e in entries)
