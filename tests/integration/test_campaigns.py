"""A statistics-form campaign end to end over the real servers, with a controllable clock:
two audiences with their own deadlines, a wrong form then a corrected one, reminders only
to the missing units at the right times, the operator's missing list, and the export."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
import pytest
from openpyxl import Workbook, load_workbook
from sqlmodel import Session, select

from mailbot.runtime import daemon
from mailbot.store import CampaignReminder, FormReturn, FormRow, Submission

pytestmark = pytest.mark.integration
CHINA = timezone(timedelta(hours=8))
FORMS = Path(__file__).parents[2] / "config" / "forms"
CAMPAIGN = {
    "forms_folder": str(FORMS),
    "campaigns": [{
        "key": "guanzhu", "name": "关于进一步推广应用临沂科协微信公众号的通知", "template": "关注情况统计表",
        "department": "diaoxuan", "reminder_offsets": [7, 3, 1],
        "audiences": [
            {"name": "县区科协", "categories": ["县区科协"], "deadline": "2026-12-20"},
            {"name": "市级学会", "units": ["临沂市农学会"], "deadline": "2026-12-25", "inclusive": True},
        ],
    }],
}
EXTRA_UNITS = [{"name": "兰山区科协", "category": "县区科协", "parent": "兰山区", "addresses": ["unit3@example.test"]}]


def xlsx(unit: str, rows: list[tuple]) -> bytes:
    """The 关注情况统计表 as an office would fill it in Excel: title, header fields, table."""
    book = Workbook()
    sheet = book.active
    sheet.append(["临沂科协微信公众号关注情况统计表"])
    sheet.append([f"填报单位：{unit}", None, "填报时间：2026年12月10日"])
    sheet.append(["序号", "单位名称", "关注人数（人）"])
    for i, (name, count) in enumerate(rows, 1):
        sheet.append([i, name, count])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def send_form(servers, user: str, unit: str, rows, subject="关注情况统计表") -> None:
    m = EmailMessage()
    m["From"], m["To"] = f"{unit} <{user}@example.test>", "skxdxb@example.test"
    m["Subject"], m["Message-ID"] = subject, make_msgid(domain="unit.example")
    m.set_content("附件是我单位的关注情况统计表，请查收。")
    m.add_attachment(xlsx(unit, rows), maintype="application", subtype="octet-stream", filename="关注情况统计表.xlsx")
    asyncio.run(aiosmtplib.send(m.as_bytes(), sender=f"{user}@example.test", recipients=["skxdxb@example.test"],
                                hostname=servers.host, port=servers.smtp_port, start_tls=False))


def inbox(servers, user: str) -> list:
    return [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]


@pytest.fixture
def robot(servers, make_settings):
    from conftest import TEST_UNITS

    servers.dovecot.add_user("unit3", "secret")
    rt = daemon.Runtime.build(make_settings(servers, units=TEST_UNITS + EXTRA_UNITS, **CAMPAIGN))
    rt.clock = lambda: datetime(2026, 11, 30, 10, 0, tzinfo=CHINA)  # forms arrive before any reminder is due
    yield rt
    rt.close()


def test_campaign_collects_checks_reminds_and_exports(servers, robot, tmp_path):
    # 沂水县科协 sends a form with a mistake, then the corrected one
    send_form(servers, "unit1", "沂水县科协", [("沂水县科协", 120), ("沂水县许家湖镇科协", "三百多")])
    daemon.run_once(robot)
    [reply] = inbox(servers, "unit1")
    text = reply.get_body(("plain",)).get_content()
    assert "需要修改" in reply["Subject"] and "“三百多” 不是数字" in text
    send_form(servers, "unit1", "沂水县科协", [("沂水县科协", 120), ("沂水县许家湖镇科协", "３００")])
    daemon.run_once(robot)
    second = inbox(servers, "unit1")[-1]
    assert "已收到" in second["Subject"] and "记录 2 行" in second["Subject"] and "第2次" in second["Subject"]
    assert "关注人数合计 420" in second.get_body(("plain",)).get_content()
    with Session(robot.engine) as s:
        returns = s.exec(select(FormReturn).order_by(FormReturn.id)).all()
        assert [(r.unit, r.version, r.valid) for r in returns] == [("沂水县科协", 1, False), ("沂水县科协", 2, True)]
        rows = s.exec(select(FormRow).where(FormRow.return_id == returns[1].id)).all()
        assert [r.row_unit for r in rows][0] == "沂水县科协"
        assert s.exec(select(Submission)).all() == []  # a form is not a 稿件

    # reminders by the clock: 7 days before the county deadline, only the missing county unit
    assert robot.chase(datetime(2026, 12, 13, 10, 0, tzinfo=CHINA)) == 0  # a Sunday: not sent
    assert robot.chase(datetime(2026, 12, 14, 10, 0, tzinfo=CHINA)) == 1  # 兰山区科协 (6 days before: the 7-day one)
    assert robot.chase(datetime(2026, 12, 14, 11, 0, tzinfo=CHINA)) == 0  # never twice
    # Friday 12-18: 兰山区's 1-day reminder (its day, Saturday 12-19, moves to the working day
    # before) rather than the 3-day one; 农学会's 7-day one
    assert robot.chase(datetime(2026, 12, 18, 10, 0, tzinfo=CHINA)) == 2
    robot.send_due(datetime(2026, 12, 18, 10, 0, tzinfo=CHINA))
    assert ["提醒" in m["Subject"] for m in inbox(servers, "unit3")] == [True, True]
    days = [re.search(r"距截止日还有 (\d+) 天", m.get_body(("plain",)).get_content()).group(1)
            for m in inbox(servers, "unit3")]
    assert days == ["6", "2"]  # the days really left, not the offsets (7, 1)
    with Session(robot.engine) as s:
        assert sorted(s.exec(select(CampaignReminder.offset).where(CampaignReminder.unit == "兰山区科协"))) == [1, 7]
    assert len([m for m in inbox(servers, "unit2") if "提醒" in m["Subject"]]) == 1
    assert [m for m in inbox(servers, "unit1") if "提醒" in m["Subject"]] == []  # it sent a valid form

    # after the county deadline the operator gets the missing list once
    assert robot.chase(datetime(2026, 12, 21, 10, 0, tzinfo=CHINA)) == 1
    assert robot.chase(datetime(2026, 12, 22, 10, 0, tzinfo=CHINA)) == 1  # 农学会's 3-day one; no 2nd list
    robot.send_due(datetime(2026, 12, 22, 10, 0, tzinfo=CHINA))
    missing = [m for m in inbox(servers, "skxdxb") if "仍未报送" in m["Subject"]]
    assert len(missing) == 1 and "兰山区科协" in missing[0].get_body(("plain",)).get_content()

    out = tmp_path / "tally.xlsx"
    from mailbot.campaigns.collecting import export
    from mailbot.forms import load_templates

    template = {t.name: t for t in load_templates(FORMS)}["关注情况统计表"]
    counts = export(robot.engine, robot.settings, "guanzhu", template, out, datetime(2026, 12, 22, tzinfo=CHINA))
    assert counts == {"rows": 2, "units": 1, "missing": 2}
    book = load_workbook(out)
    data = [list(r) for r in book["全部数据"].iter_rows(values_only=True)]
    assert data[0][4:] == [c.name for c in template.columns]
    assert [r[4:6] for r in data[1:]] == [["沂水县科协", 120], ["沂水县许家湖镇科协", 300]]
    missing_units = [r[0] for r in book["未报单位"].iter_rows(min_row=2, values_only=True)]
    assert sorted(missing_units) == ["临沂市农学会", "兰山区科协"]
    # a township not on the roster counts under the sending county's total
    sheet = [list(r) for r in book["汇总"].iter_rows(values_only=True)]
    counties = sheet[sheet.index(["县区（上级）", "行数", "关注人数"]) + 1:]
    assert counties == [["沂水县", 2, 420]]
