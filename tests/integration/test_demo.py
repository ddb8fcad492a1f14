"""`mailbot demo` end to end, and its statistics-form campaign: the replies, reminders only
to the units without a valid form, the operator's missing list, and the tally workbook."""

from __future__ import annotations

import io
from datetime import date

import pytest
from openpyxl import load_workbook
from rich.console import Console

from devtools import demo, demo_campaign

pytestmark = pytest.mark.integration


def test_deadline_is_the_coming_20_december():
    assert demo_campaign.deadline_for(date(2026, 11, 23)) == date(2026, 12, 20)
    assert demo_campaign.deadline_for(date(2026, 12, 11)) == date(2026, 12, 20)
    assert demo_campaign.deadline_for(date(2026, 12, 12)) == date(2027, 12, 20)  # reminders would be due now
    assert demo_campaign.deadline_for(date(2027, 1, 5)) == date(2027, 12, 20)


def test_demo_runs_the_campaign_and_writes_the_tally(tmp_path):
    buf = io.StringIO()
    outcome = demo.run(tmp_path / "demo-var", keep=True, console=Console(file=buf, width=200))
    text = buf.getvalue()
    assert outcome.errors == []
    assert "审核流程演示" in text and "报表收集演示" in text

    # one mistake, answered with the exact cell, then a corrected second version
    assert ["需要修改" in s for s in outcome.replies["兰山区科协"]] == [True, False]
    assert "第2次" in outcome.replies["兰山区科协"][1]
    assert "第2行 关注人数 “三百多” 不是数字" in text
    assert all("已收到" in outcome.replies[u][0] for u in ("沂水县科协", "临沂市农学会"))

    # reminders only to the units without a valid form at the time; then the missing list
    assert outcome.reminded == [["兰山区科协", "罗庄区科协", "临沂市科普作家协会"], ["罗庄区科协", "临沂市科普作家协会"]]
    assert "罗庄区科协" in outcome.missing_list and "临沂市科普作家协会" in outcome.missing_list
    assert "兰山区科协" not in outcome.missing_list and "沂水县科协" not in outcome.missing_list

    # the workbook: in the storage folder, totals per unit and per county
    assert outcome.workbook == (tmp_path / "demo-var" / "关注情况统计表-汇总.xlsx").resolve()
    assert outcome.counts == {"rows": 6, "units": 3, "missing": 2}
    book = load_workbook(outcome.workbook)
    totals = {r[0]: r[1:] for r in book["汇总"].iter_rows(values_only=True) if r[0]}
    assert totals["沂水县"] == (3, 315) and totals["兰山区"] == (2, 474) and totals["市直"] == (1, 1268)
    assert totals["兰山区银雀山街道科协"] == (1, 320)  # the corrected value, full-width digits read
    missing = sorted(r[0] for r in book["未报单位"].iter_rows(min_row=2, values_only=True))
    assert missing == ["临沂市科普作家协会", "罗庄区科协"]
    assert str(outcome.workbook) in text.replace("\n", "")
