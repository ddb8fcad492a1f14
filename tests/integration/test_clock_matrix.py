"""The date-sensitive behaviour at the moments where time bombs hide, over the real servers:
Sunday 23:59 and Monday 00:01, 07:59 and 08:01 China time; New Year's Eve 23:59 and New
Year's Day 00:01; a 调休 Saturday that is a working day; the Spring Festival week; a day past
the calendar package's data. Every process reads the one clock, which the tests set.

The pure parts (digest periods, deadlines, working days) have their own case tables; here
the same moments go through the robot: tracking numbers, the digest, late forms, chasers."""

from __future__ import annotations

import asyncio
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from zoneinfo import ZoneInfo

import aiosmtplib
import pytest
from conftest import ROOT
from sqlmodel import Session, select

from mailbot import pipeline
from mailbot.models import RawMail
from mailbot.runtime import daemon
from mailbot.store import DigestRun, FormReturn, ReviewTask, Submission

pytestmark = pytest.mark.integration
CHINA = ZoneInfo("Asia/Shanghai")


def at(*args) -> datetime:
    return datetime(*args, tzinfo=CHINA)


def gaojian(n: int) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = "沂水县科协 <unit1@example.test>", "skxkpb@example.test"
    m["Subject"], m["Message-ID"] = f"【沂水县科协】科普活动信息（{n}）", make_msgid(domain="163.example")
    m.set_content("各位老师好：我县科普活动顺利举办。")
    m.add_attachment("稿件正文".encode(), maintype="application", subtype="octet-stream", filename="稿件.txt")
    return m.as_bytes()


def send(servers, raw: bytes, sender="unit1@example.test", to="skxkpb@example.test") -> None:
    asyncio.run(aiosmtplib.send(raw, sender=sender, recipients=[to], hostname=servers.host,
                                port=servers.smtp_port, start_tls=False))


def trackings(rt) -> list[str]:
    with Session(rt.engine) as s:
        return list(s.exec(select(Submission.tracking).order_by(Submission.id)))


# --- tracking numbers across the new year ----------------------------------------------


def test_tracking_numbers_start_the_new_year_and_a_new_years_eve_one_keeps_its_year(servers, make_settings,
                                                                                    test_clock):
    rt = daemon.Runtime.build(make_settings(servers))
    try:
        test_clock.set(at(2026, 12, 31, 23, 59), frozen=True)
        send(servers, gaojian(1))
        daemon.run_once(rt)
        assert trackings(rt) == ["KP-2026-0001"]

        # kept at 23:59:50 (raw bytes and row committed), filed after midnight: still a 2026 稿件
        test_clock.set(at(2026, 12, 31, 23, 59, 50), frozen=True)
        with Session(rt.engine) as s:
            pipeline.keep(s, rt.raws, RawMail(data=gaojian(2), mailbox="skxkpb"))
            s.commit()
        test_clock.set(at(2027, 1, 1, 0, 0, 10), frozen=True)
        rt.processor.drain()
        assert trackings(rt) == ["KP-2026-0001", "KP-2026-0002"]

        test_clock.set(at(2027, 1, 1, 0, 1), frozen=True)  # the new year's sequence starts at 1
        send(servers, gaojian(3))
        daemon.run_once(rt)
        assert trackings(rt) == ["KP-2026-0001", "KP-2026-0002", "KP-2027-0001"]
        with Session(rt.engine) as s:
            folders = list(s.exec(select(Submission.folder).order_by(Submission.id)))
        assert [f.split("/")[0] for f in folders] == ["2026", "2026", "2027"]
        receipts = [message_from_bytes(r, policy=policy.default)["Subject"] for r in servers.fetch_all("unit1")]
        assert sum("KP-2026-0002" in s for s in receipts) == 1 and sum("KP-2027-0001" in s for s in receipts) == 1
    finally:
        rt.close()


# --- the digest at the turn of the week ------------------------------------------------

DIGEST = {"reviewers": [{"key": "wang", "name": "王主席", "addresses": ["leader1@example.test"]}],
          "digest": {"leaders": ["wang"]}}


@pytest.mark.parametrize("moment, sent", [
    (at(2026, 11, 22, 23, 59), None),  # Sunday 23:59: last week's digest was due a week ago, none now
    (at(2026, 11, 23, 0, 1), None),  # Monday 00:01: the week has ended, its digest is not due yet
    (at(2026, 11, 23, 7, 59), None),  # 07:59: one minute early
    (at(2026, 11, 23, 8, 1), "2026-W47"),  # 08:01: on time, for the week 11-16 … 11-22
])
def test_the_digest_goes_out_at_its_minute_and_not_before(servers, make_settings, test_clock, moment, sent):
    rt = daemon.Runtime.build(make_settings(servers, **DIGEST))
    try:
        test_clock.set(moment, frozen=True)
        send(servers, gaojian(1))  # the robot is in service (it has mail)
        daemon.run_once(rt)
        rt.digest_due()
        with Session(rt.engine) as s:
            runs = [(r.period, r.late) for r in s.exec(select(DigestRun))]
        assert runs == ([] if sent is None else [(sent, False)])
    finally:
        rt.close()


def test_a_robot_in_service_before_the_minute_sends_late_after_downtime(servers, make_settings, test_clock):
    rt = daemon.Runtime.build(make_settings(servers, **DIGEST))
    try:
        test_clock.set(at(2026, 11, 22, 23, 59), frozen=True)  # Sunday night: in service
        send(servers, gaojian(1))
        daemon.run_once(rt)
        test_clock.set(at(2026, 11, 23, 9, 30), frozen=True)  # down at 08:00, back at 09:30
        assert rt.digest_due().status == "sent"
        assert rt.digest_due() is None  # claimed: never twice
        with Session(rt.engine) as s:
            assert [(r.period, r.late, r.trigger) for r in s.exec(select(DigestRun))] == [("2026-W47", True, "catch-up")]
    finally:
        rt.close()


# --- a form at the deadline's midnight -------------------------------------------------

CAMPAIGN = {
    "forms_folder": str(ROOT / "config" / "forms"),
    "campaigns": [{"key": "guanzhu", "name": "关注情况统计", "template": "关注情况统计表", "department": "diaoxuan",
                   "reminder_offsets": [1],
                   "audiences": [{"name": "县区科协", "categories": ["县区科协"], "deadline": "2026-12-21"},  # 前
                                 {"name": "市级学会", "units": ["临沂市农学会"], "deadline": "2026-12-21",
                                  "inclusive": True}]}],  # 当日
}


def form(user: str, unit: str) -> bytes:
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append([f"填报单位：{unit}"])
    sheet.append(["序号", "单位名称", "关注人数"])
    sheet.append([1, unit, 100])
    buf = io.BytesIO()
    book.save(buf)
    m = EmailMessage()
    m["From"], m["To"] = f"{unit} <{user}@example.test>", "skxdxb@example.test"
    m["Subject"], m["Message-ID"] = "关注情况统计表", make_msgid(domain="unit.example")
    m.set_content("附件是我单位的关注情况统计表。")
    m.add_attachment(buf.getvalue(), maintype="application", subtype="octet-stream", filename="关注情况统计表.xlsx")
    return m.as_bytes()


@pytest.mark.parametrize("moment, county_on_time, society_on_time", [
    (at(2026, 12, 20, 23, 59), True, True),  # Sunday 23:59: before 12-21 (前) and on it (当日)
    (at(2026, 12, 21, 0, 1), False, True),  # Monday 00:01: 12月21日前 has passed; 当日 runs all day
    (at(2026, 12, 21, 23, 59), False, True),
    (at(2026, 12, 22, 0, 1), False, False),
])
def test_a_form_at_midnight_is_on_time_or_late_by_the_deadline_kind(servers, make_settings, test_clock, moment,
                                                                    county_on_time, society_on_time):
    rt = daemon.Runtime.build(make_settings(servers, **CAMPAIGN))
    try:
        test_clock.set(moment, frozen=True)
        send(servers, form("unit1", "沂水县科协"), sender="unit1@example.test", to="skxdxb@example.test")
        send(servers, form("unit2", "临沂市农学会"), sender="unit2@example.test", to="skxdxb@example.test")
        daemon.run_once(rt)
        with Session(rt.engine) as s:
            on_time = dict(s.exec(select(FormReturn.unit, FormReturn.on_time)).all())
        assert on_time == {"沂水县科协": county_on_time, "临沂市农学会": society_on_time}
    finally:
        rt.close()


# --- review chasers by China's working days --------------------------------------------

REVIEW = {"reviewers": [{"key": "zhang", "name": "张科长", "addresses": ["reviewer1@example.test"]},
                        {"key": "wang", "name": "王主席", "addresses": ["leader1@example.test"]}],
          "review": {"office_hours": "08:00-17:30", "chase_after_days": 2, "escalate_after_days": 2,
                     "stages": {k: [{"name": "初审", "reviewers": ["zhang"]}] for k in ("kepu", "xuehui", "diaoxuan")}}}


def _waiting_since(rt, servers, test_clock, moment: datetime) -> None:
    test_clock.set(moment, frozen=True)
    send(servers, gaojian(1))
    daemon.run_once(rt)
    with Session(rt.engine) as s:
        (task,) = s.exec(select(ReviewTask)).all()
        assert task.status == "open"


@pytest.mark.parametrize("forwarded, moment, expect", [
    # forwarded Thursday: two working days later is Monday; not before office hours open
    (at(2026, 11, 19, 10, 0), at(2026, 11, 22, 23, 59), 0),  # Sunday 23:59
    (at(2026, 11, 19, 10, 0), at(2026, 11, 23, 0, 1), 0),  # Monday 00:01: outside office hours
    (at(2026, 11, 19, 10, 0), at(2026, 11, 23, 7, 59), 0),
    (at(2026, 11, 19, 10, 0), at(2026, 11, 23, 8, 1), 1),  # 08:01: the reminder goes
    # the 调休 Saturday 2026-02-14 is a working day: Thursday + Friday + Saturday
    (at(2026, 2, 12, 10, 0), at(2026, 2, 14, 10, 0), 1),
    # Spring Festival 02-15 … 02-23: nothing during the holiday, though 02-16 … 02-20 are weekdays
    (at(2026, 2, 13, 10, 0), at(2026, 2, 20, 10, 0), 0),
    (at(2026, 2, 13, 10, 0), at(2026, 2, 23, 10, 0), 0),  # only 02-14 (the 调休 Saturday) counted so far
    (at(2026, 2, 13, 10, 0), at(2026, 2, 24, 10, 0), 1),  # 02-14 and 02-24: two working days
])
def test_review_chasers_follow_office_hours_and_chinas_working_days(servers, make_settings, test_clock,
                                                                     forwarded, moment, expect):
    rt = daemon.Runtime.build(make_settings(servers, **REVIEW))
    try:
        _waiting_since(rt, servers, test_clock, forwarded)
        test_clock.set(moment, frozen=True)
        assert rt.chase() == expect
    finally:
        rt.close()


def test_past_the_calendar_package_the_office_days_still_hold(servers, make_settings, test_clock):
    """2027: chinesecalendar 1.11 has no data. Without the office's notice Monday–Friday is assumed
    and the reminder says so; a year the office entered in configuration is followed instead."""
    rt = daemon.Runtime.build(make_settings(servers, **REVIEW))
    try:
        _waiting_since(rt, servers, test_clock, at(2027, 1, 6, 10, 0))  # Wednesday
        test_clock.set(at(2027, 1, 8, 10, 0), frozen=True)  # Friday: two working days
        assert rt.chase() == 1
        rt.send_due()
        reminder = [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all("reviewer1")][-1]
        assert "提醒" in reminder["Subject"]
        assert "按周一至周五计算" in reminder.get_body(("plain",)).get_content()
    finally:
        rt.close()
