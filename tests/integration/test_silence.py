"""No mail ends in silence (issue 14), over the real servers: every received message gets an
outcome a person can see (`status`, `list --needs-person`, `show`); units resubmit as they
do (a revision written in the body; a bare 收到 is an acknowledgement)."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from conftest import move_clock, write_config
from sqlmodel import Session, select
from test_review import REVIEW, deliver_reply, gaojian, latest, qq_reply, send
from typer.testing import CliRunner

from mailbot.runtime import daemon
from mailbot.runtime.cli import app
from mailbot.store import Event, InboundMessage, Submission, SubmissionFile

pytestmark = pytest.mark.integration


@pytest.fixture
def robot(servers, make_settings):
    servers.dovecot.add_user("zhao", "secret")
    rt = daemon.Runtime.build(make_settings(servers, **REVIEW))
    yield rt
    rt.close()


def cli(rt, tmp_path, *args):
    config = write_config(rt.settings, tmp_path / "c.yaml")
    result = CliRunner().invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.stdout


def text_reply(to_mail, sender: str, body: str, prefix: str = "回复：") -> bytes:
    """A reply as a unit's client writes it: Re: subject, threaded, the text only."""
    m = EmailMessage()
    m["From"], m["To"] = sender, to_mail["From"].addresses[0].addr_spec
    m["Subject"], m["Message-ID"] = f"{prefix}{to_mail['Subject']}", make_msgid(domain="163.example")
    m["In-Reply-To"] = m["References"] = to_mail["Message-ID"]
    m.set_content(body)
    return m.as_bytes()


def outcomes(rt) -> dict[str, tuple[str, str]]:
    with Session(rt.engine) as s:
        return {r.subject: (r.outcome, r.outcome_reason) for r in s.exec(select(InboundMessage))}


def test_every_message_ends_with_an_outcome_a_person_can_see(servers, robot, tmp_path):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    receipt = latest(servers, "unit1", "回执")
    send(servers, text_reply(receipt, "unit1@example.test", "收到，谢谢！"), "unit1@example.test",
         ["skxkpb@example.test"])
    question = text_reply(receipt, "unit1@example.test", "请问这篇稿件什么时候能在公众号发布？", prefix="答复：")
    send(servers, question, "unit1@example.test", ["skxkpb@example.test"])
    auto = EmailMessage()
    auto["From"], auto["To"], auto["Subject"] = "unit2@example.test", "skxkpb@example.test", "自动回复：休假中"
    auto["Auto-Submitted"], auto["Message-ID"] = "auto-replied", make_msgid(domain="qq.example")
    auto.set_content("您好，我正在休假，回来后回复您。")
    send(servers, auto.as_bytes(), "unit2@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)

    found = outcomes(robot)
    tracking = robot_tracking(robot)
    assert found["【沂水县科协】全国科普日活动信息"] == ("filed", f"登记为稿件 {tracking}")
    assert found[f"回复：{receipt['Subject']}"][0] == "ignored" and "确认收到" in found[f"回复：{receipt['Subject']}"][1]
    assert found["自动回复：休假中"][0] == "ignored" and "自动回复" in found["自动回复：休假中"][1]
    kind, why = found[f"答复：{receipt['Subject']}"]
    assert kind == "needs-person" and "人工" in why
    # nobody answered the acknowledgement or the auto-reply: the unit got the receipt only
    assert len(servers.fetch_all("unit1")) == 1 and servers.fetch_all("unit2") == []

    listed = json.loads(cli(robot, tmp_path, "list", "--needs-person", "--json"))
    assert listed["total"] == 1 and listed["items"][0]["subject"] == f"答复：{receipt['Subject']}"
    status = json.loads(cli(robot, tmp_path, "status", "--json"))
    assert status["needs_person_total"] == 1 and status["needs_person"][0]["sender"] == "unit1@example.test"
    shown = json.loads(cli(robot, tmp_path, "show", tracking, "--json"))
    kinds = [h["kind"] for h in shown["history"]]
    assert kinds.count("outcome-filed") == 1 and "outcome-ignored" in kinds and "outcome-needs-person" in kinds
    assert "需要人工处理" in cli(robot, tmp_path, "show", tracking)


def robot_tracking(rt) -> str:
    with Session(rt.engine) as s:
        return s.exec(select(Submission.tracking)).one()


REVISED = ("已修改，请审核。\n\n我县全国科普日活动于9月20日在县文化广场举办，共有二十余家单位参加，"
           "发放科普资料三千余份，现场咨询群众八百余人次。")


def test_a_revision_written_in_the_body_is_revision_two(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "退回 请写清活动的参加人数"),
                  "reviewer1@example.test")
    daemon.run_once(robot)
    returned = latest(servers, "unit1", "退回")
    send(servers, text_reply(returned, "unit1@example.test", REVISED), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    with Session(robot.engine) as s:
        sub = s.exec(select(Submission)).one()
        assert (sub.revision, sub.status) == (2, "reviewing")
        (text,) = s.exec(select(SubmissionFile).where(SubmissionFile.revision == 2)).all()
        assert text.filename == "第2版正文.txt"
        assert "八百余人次" in (robot.settings.storage / text.path).read_text(encoding="utf-8")
    assert "第2版" in latest(servers, "unit1", "修改稿")["Subject"]
    again = latest(servers, "reviewer1", "请初审")
    assert [p.get_filename() for p in again.iter_attachments()] == ["第2版正文.txt"]
    assert "八百余人次" in again.get_body(("plain",)).get_content()


def test_an_off_roster_sender_revises_in_the_body_and_a_bare_thanks_changes_nothing(servers, robot):
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "赵老师 <zhao@example.test>", "skxkpb@example.test", "科普讲座活动信息"
    m["Message-ID"] = make_msgid(domain="qq.example")
    m.set_content("各位老师好：附件是科普讲座的稿件。")
    m.add_attachment("稿件正文".encode(), maintype="application", subtype="octet-stream", filename="稿件.txt")
    send(servers, m.as_bytes(), "zhao@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    tracking = robot_tracking(robot)
    reviewer = "reviewer2" if tracking.startswith("XH") else "reviewer1"
    forward = latest(servers, reviewer, tracking)
    deliver_reply(servers, qq_reply(forward, f"{reviewer}@example.test", "退回 请补充活动人数"),
                  f"{reviewer}@example.test", mailbox=forward["From"].addresses[0].username)
    daemon.run_once(robot)
    returned = latest(servers, "zhao", "退回")
    box = returned["From"].addresses[0].addr_spec
    send(servers, text_reply(returned, "zhao@example.test", "好的，收到了，谢谢老师"), "zhao@example.test", [box])
    daemon.run_once(robot)
    with Session(robot.engine) as s:
        assert s.exec(select(Submission)).one().revision == 1
    send(servers, text_reply(returned, "zhao@example.test", REVISED), "zhao@example.test", [box])
    daemon.run_once(robot)
    with Session(robot.engine) as s:
        assert s.exec(select(Submission)).one().revision == 2
        assert s.exec(select(Event).where(Event.kind == "revision-hold")).all() == []
    assert any("第2版" in r["Subject"] for r in map(_msg, servers.fetch_all("zhao")))


def _msg(raw: bytes):
    from email import message_from_bytes, policy

    return message_from_bytes(raw, policy=policy.default)


# --- a 退回 needs its reason ----------------------------------------------------------------


def _return_without_reason(servers, robot, words: str):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", words), "reviewer1@example.test")
    daemon.run_once(robot)


def _subjects(servers, user: str) -> list[str]:
    return [_msg(r)["Subject"] for r in servers.fetch_all(user)]


def test_a_return_without_a_reason_asks_the_reviewer_once_and_passes_the_reason_on(servers, robot, tmp_path):
    _return_without_reason(servers, robot, "退回 （请写明原因）")  # the phone's 退回 button, sent unchanged
    assert robot_status(robot) == "returned"
    assert not any("退回" in s for s in _subjects(servers, "unit1"))  # the unit is not told "no reason"
    assert not any("已记录" in s for s in _subjects(servers, "reviewer1"))  # nor the reviewer "passed on"
    ask = latest(servers, "reviewer1", "请补充退回原因")
    assert "没有写明退回原因" in ask.get_body(("plain",)).get_content()

    deliver_reply(servers, qq_reply(ask, "reviewer1@example.test", "活动照片不够清楚，请补充两张现场照片"),
                  "reviewer1@example.test")
    daemon.run_once(robot)
    returned = latest(servers, "unit1", "退回")
    assert "活动照片不够清楚，请补充两张现场照片" in returned.get_body(("plain",)).get_content()
    confirm = latest(servers, "reviewer1", "已记录")
    assert "告知了退回原因" in confirm.get_body(("plain",)).get_content()
    assert sum("请补充退回原因" in s for s in _subjects(servers, "reviewer1")) == 1  # asked once
    assert robot.chase(robot.clock() + timedelta(days=3)) == 0  # told already: nothing more later
    shown = json.loads(cli(robot, tmp_path, "show", robot_tracking(robot), "--json"))
    assert [r["reason"] for r in shown["reviews"]] == ["活动照片不够清楚，请补充两张现场照片"]


def test_a_reason_that_never_comes_tells_the_unit_whom_to_ask(servers, robot, monkeypatch):
    _return_without_reason(servers, robot, "退回")
    assert latest(servers, "reviewer1", "请补充退回原因")
    asked = robot.clock()
    move_clock(monkeypatch, asked + timedelta(hours=2))  # within reason_wait_hours (24): the unit waits
    assert robot.chase() == 0
    move_clock(monkeypatch, _workday_morning(asked + timedelta(hours=25)))
    assert robot.chase() == 1
    daemon.run_once(robot)
    text = latest(servers, "unit1", "退回").get_body(("plain",)).get_content()
    assert "审核人暂未写明具体原因" in text and "调宣部" in text
    assert robot.chase() == 0  # once


def _workday_morning(moment):
    """The first working-day 10:00 at or after `moment` (Beijing time; Mon–Fri is enough here)."""
    moment = moment.astimezone(timezone(timedelta(hours=8)))
    day = moment.replace(hour=10, minute=0, second=0, microsecond=0)
    if day < moment:
        day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def robot_status(rt) -> str:
    with Session(rt.engine) as s:
        return s.exec(select(Submission.status)).one()


# --- the cap throttles only what nobody is owed --------------------------------------------


def test_the_daily_cap_never_holds_back_receipts_owed_to_a_roster_unit(servers, make_settings, tmp_path):
    servers.dovecot.add_user("stranger", "secret")
    rt = daemon.Runtime.build(make_settings(servers, outbox={"daily_cap_per_sender": 2}, **REVIEW))
    try:
        for i in range(4):  # a county on 科普日: four 稿件 in a day
            send(servers, gaojian(subject=f"【沂水县科协】科普日活动信息（{i + 1}）"), "unit1@example.test",
                 ["skxkpb@example.test"])
        for i in range(4):  # an unknown address (a loop, a flood): answered up to the cap
            m = EmailMessage()
            m["From"], m["To"], m["Subject"] = "stranger@example.test", "skxdxb@example.test", f"活动信息{i + 1}"
            m["Message-ID"] = make_msgid(domain="x.example")
            m.set_content("请查收附件。")
            m.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="a.txt")
            send(servers, m.as_bytes(), "stranger@example.test", ["skxdxb@example.test"])
        daemon.run_once(rt)
        assert sum("回执" in s for s in _subjects(servers, "unit1")) == 4
        assert sum("回执" in s for s in _subjects(servers, "stranger")) == 2
        status = json.loads(cli(rt, tmp_path, "status", "--json"))
        assert status["capped_total"] == 2 and all("stranger@example.test" in c["detail"] for c in status["capped"])
        with Session(rt.engine) as s:
            last = s.exec(select(Submission).where(Submission.sender == "stranger@example.test")
                          .order_by(Submission.id.desc())).first()
        shown = json.loads(cli(rt, tmp_path, "show", last.tracking, "--json"))
        assert "outbox-cap" in [h["kind"] for h in shown["history"]]
        assert "超过每日发送上限" in cli(rt, tmp_path, "show", last.tracking)
    finally:
        rt.close()
