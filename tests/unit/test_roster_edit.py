"""Roster edits keep the file's comments and are checked as the robot loads the roster: the
table tests/cases/roster_edits.yaml through mailbot.store.roster."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailbot.config import load_roster
from mailbot.store import roster

DATA = yaml.safe_load((Path(__file__).parents[1] / "cases" / "roster_edits.yaml").read_text(encoding="utf-8"))
CALLS = {"add": roster.add_unit, "edit": roster.edit_unit, "remove": roster.remove_unit}
COMMENTS = ("# 单位名册（示例）：每个单位的报送邮箱", "# 县区科协", "# 简称")


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_roster_edit(case, tmp_path):
    path = tmp_path / "units.yaml"
    path.write_text(DATA["roster"], encoding="utf-8")
    args = dict(case["args"])
    name = args.pop("name")
    if "error" in case:
        with pytest.raises(roster.RosterError) as info:
            CALLS[case["call"]](path, name, **args)
        assert info.value.message == case["error"]
        assert path.read_text(encoding="utf-8") == DATA["roster"]  # nothing written
        return
    CALLS[case["call"]](path, name, **args)
    text = path.read_text(encoding="utf-8")
    units, problems = load_roster(path)
    assert problems == []
    assert len(units) == case["count"]
    by_name = {u["name"]: u for u in units}
    for unit, fields in (case.get("expect") or {}).items():
        assert {k: by_name[unit][k] for k in fields} == fields
    kept = [c for c in COMMENTS if c in DATA["roster"]]
    if case["call"] != "remove":
        assert all(c in text for c in kept), text
    else:
        assert COMMENTS[0] in text and COMMENTS[1] in text


def test_untouched_lines_stay_byte_for_byte(tmp_path):
    path = tmp_path / "units.yaml"
    path.write_text(DATA["roster"], encoding="utf-8")
    roster.add_unit(path, "罗庄区科协", category="县区科协")
    assert path.read_text(encoding="utf-8").startswith(DATA["roster"])
    assert [u["name"] for u in roster.list_units(path)] == ["沂水县科协", "临沂市农学会", "罗庄区科协"]
