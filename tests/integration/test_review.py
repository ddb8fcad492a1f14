"""Review by e-mail over the real servers: reviewers answer from their own IMAP mailboxes
by replying to the forward the robot sent them, as a QQ or Outlook user would."""

from __future__ import annotations

import asyncio
import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid

import aiosmtplib
import pytest
from sqlmodel import Session, select

from mailbot.runtime import daemon
from mailbot.store import Event, OutboxMessage, ReviewTask, Submission

pytestmark = pytest.mark.integration

REVIEW = {
    "reviewers": [
        {"key": "zhang", "name": "张科长", "addresses": ["reviewer1@example.test", "zhang.personal@example.test"]},
        {"key": "li", "name": "李科长", "addresses": ["reviewer2@example.test"]},
        {"key": "wang", "name": "王主席", "addresses": ["leader1@example.test"]},
    ],
    "review": {"publisher": "diaoxuan", "stages": {
        "kepu": [{"name": "初审", "reviewers": ["zhang"]}, {"name": "审核", "reviewers": ["wang"]}],
        "xuehui": [{"name": "初审", "reviewers": ["li"]}, {"name": "审核", "reviewers": ["wang"]}],
        "diaoxuan": [{"name": "初审", "reviewers": ["zhang", "li"], "mode": "all"},
                     {"name": "审核", "reviewers": ["wang"]}],
    }},
}


def send(servers, raw: bytes, sender: str, rcpts: list[str]) -> None:
    asyncio.run(aiosmtplib.send(raw, sender=sender, recipients=rcpts, hostname=servers.host,
                                port=servers.smtp_port, start_tls=False))


def gaojian(subject="【沂水县科协】全国科普日活动信息", body="各位老师好：我县全国科普日活动顺利举办。", files=True,
            extra=()) -> bytes:
    m = EmailMessage()
    m["From"] = "沂水县科协 <unit1@example.test>"
    m["To"] = "skxkpb@example.test"
    m["Subject"] = subject
    m["Message-ID"] = make_msgid(domain="163.example")
    for k, v in extra:
        m[k] = v
    m.set_content(body)
    if files:
        m.add_attachment("稿件正文".encode(), maintype="application", subtype="octet-stream", filename="稿件.txt")
    return m.as_bytes()


def latest(servers, user: str, needle: str):
    found = [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]
    found = [m for m in found if needle in m["Subject"]]
    assert found, f"no mail with {needle!r} for {user}"
    return found[-1]


def qq_reply(forward, sender: str, command: str, keep_refs: bool = False) -> bytes:
    """How QQ Mail answers: 回复： prefix, the quoted original below a 原始邮件 line, and no
    In-Reply-To/References (QQ drops them)."""
    quoted = forward.get_body(("plain",)).get_content()
    body = (f"{command}\n\n------------------&nbsp;原始邮件&nbsp;------------------\n"
            f"发件人: \"科普部\" <{forward['From'].addresses[0].addr_spec}>;\n发送时间:&nbsp;2026年3月9日(星期一) 晚上7:00\n"
            f"主题:&nbsp;{forward['Subject']}\n\n{quoted}")
    m = EmailMessage()
    m["From"] = sender
    m["To"] = forward["From"].addresses[0].addr_spec
    m["Subject"] = f"回复：{forward['Subject']}"
    m["Message-ID"] = make_msgid(domain="qq.example")
    if keep_refs:
        m["In-Reply-To"] = forward["Message-ID"]
    m.set_content(body)
    return m.as_bytes()


def outlook_reply(forward, sender: str, command: str) -> bytes:
    """Outlook zh-CN: 答复: prefix, rule + 发件人/发送时间 block, In-Reply-To kept, subject edited."""
    quoted = forward.get_body(("plain",)).get_content()
    body = (f"{command}\n\n________________________________\n发件人: 科普部 <x@example.test>\n"
            f"发送时间: 2026年3月9日 19:00\n收件人: 王主席\n主题: {forward['Subject']}\n\n{quoted}")
    m = EmailMessage()
    m["From"] = sender
    m["To"] = forward["From"].addresses[0].addr_spec
    m["Subject"] = "答复: 关于科普日的稿件"  # the user rewrote the subject: the token comes back in References
    m["Message-ID"] = make_msgid(domain="outlook.example")
    m["In-Reply-To"] = forward["Message-ID"]
    m["References"] = forward["Message-ID"]
    m.set_content(body)
    return m.as_bytes()


def deliver_reply(servers, raw: bytes, sender: str, mailbox="skxkpb") -> None:
    send(servers, raw, sender, [f"{mailbox}@example.test"])


def state(rt) -> Submission:
    with Session(rt.engine) as s:
        return s.exec(select(Submission)).one()


def events(rt) -> list[str]:
    with Session(rt.engine) as s:
        return [e.kind for e in s.exec(select(Event).order_by(Event.id))]


@pytest.fixture
def robot(servers, make_settings):
    rt = daemon.Runtime.build(make_settings(servers, **REVIEW))
    yield rt
    rt.close()


def test_submission_through_first_review_and_approval_to_published(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    sub = state(robot)
    assert (sub.status, sub.stage) == ("reviewing", 0)
    forward = latest(servers, "reviewer1", "请初审")
    assert sub.tracking in forward["Subject"] and re.search(r"/[0-9a-f]{32}\]", forward["Subject"])
    assert [p.get_filename() for p in forward.iter_attachments()] == ["稿件.txt"]
    html = forward.get_body(("html",)).get_content()
    assert "mailto:skxkpb@example.test?subject=" in html and "body=%E9%80%9A%E8%BF%87" in html  # 通过

    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "通过，写得不错"), "reviewer1@example.test")
    daemon.run_once(robot)
    assert (state(robot).status, state(robot).stage) == ("reviewing", 1)
    assert "已记录" in latest(servers, "reviewer1", "已记录")["Subject"]
    leader_forward = latest(servers, "leader1", "请审核")

    deliver_reply(servers, outlook_reply(leader_forward, "leader1@example.test", "同意"), "leader1@example.test")
    daemon.run_once(robot)
    assert state(robot).status == "approved"
    result = latest(servers, "unit1", "审核通过")
    assert sub.tracking in result["Subject"]
    assert "可以发布" in latest(servers, "skxdxb", "可以发布")["Subject"]
    assert events(robot).count("decision") == 2


def test_returned_then_resubmitted_as_revision_two_then_approved(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "退回：活动照片需要补充\n标题请再短一些"),
                  "reviewer1@example.test")
    daemon.run_once(robot)
    sub = state(robot)
    assert sub.status == "returned"
    notice = latest(servers, "unit1", "退回")
    text = notice.get_body(("plain",)).get_content()
    assert "活动照片需要补充" in text and "标题请再短一些" in text and "第2版" in text

    revised = gaojian(subject=f"回复：{notice['Subject']}", body="已按要求修改，附件为修改稿。")
    send(servers, revised, "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    sub = state(robot)
    assert (sub.revision, sub.status, sub.stage) == (2, "reviewing", 0)
    second = [m for m in (message_from_bytes(r, policy=policy.default) for r in servers.fetch_all("reviewer1"))
              if "请初审" in m["Subject"]]
    assert len(second) == 2 and "第2版" in second[-1].get_body(("plain",)).get_content()
    assert "未变：稿件.txt" in second[-1].get_body(("plain",)).get_content()  # same file sent again
    deliver_reply(servers, qq_reply(second[-1], "reviewer1@example.test", "通过"), "reviewer1@example.test")
    daemon.run_once(robot)
    deliver_reply(servers, qq_reply(latest(servers, "leader1", "请审核"), "leader1@example.test", "通过"),
                  "leader1@example.test")
    daemon.run_once(robot)
    assert state(robot).status == "approved" and state(robot).revision == 2


def test_forged_stale_foreign_and_automatic_replies_change_nothing(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    tag = re.search(r"\[[^\]]+\]", forward["Subject"]).group(0)
    tracking = tag.strip("[]").split("/")[0]

    forged = EmailMessage()  # the reviewer's own From, the tracking number, but no token
    forged["From"], forged["To"] = "reviewer1@example.test", "skxkpb@example.test"
    forged["Subject"], forged["Message-ID"] = f"回复：[{tracking}] 稿件", make_msgid(domain="evil.example")
    forged.set_content("通过")
    deliver_reply(servers, forged.as_bytes(), "reviewer1@example.test")
    deliver_reply(servers, qq_reply(forward, "unit2@example.test", "通过"), "unit2@example.test")  # not a reviewer
    ooo = qq_reply(forward, "reviewer1@example.test", "我正在休假").replace(
        b"Subject:", b"Auto-Submitted: auto-replied\nSubject:", 1)
    deliver_reply(servers, ooo, "reviewer1@example.test")
    spoof = qq_reply(forward, "reviewer1@example.test", "通过").replace(
        b"Subject:", b"X-Mailbot-Decision: approve\nX-Mailbot-Token: ignored\nSubject:", 1)
    daemon.run_once(robot)
    assert (state(robot).status, state(robot).stage) == ("reviewing", 0)
    kinds = events(robot)
    assert "review-refuse" in kinds and "review-hold" in kinds and "decision" not in kinds
    assert "冒用" in latest(servers, "reviewer1", "未能确认审核身份").get_body(("plain",)).get_content()
    assert "管理员确认" in latest(servers, "unit2", "管理员确认")["Subject"]

    deliver_reply(servers, spoof, "reviewer1@example.test")  # the real reviewer, with the token: accepted once
    daemon.run_once(robot)
    assert state(robot).stage == 1
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "退回 再想想"), "reviewer1@example.test")
    daemon.run_once(robot)  # a second decision on the decided review changes nothing
    assert (state(robot).status, state(robot).stage) == ("reviewing", 1)
    assert "本环节已经审核过" in latest(servers, "reviewer1", "已经审核过")["Subject"]
    with Session(robot.engine) as s:
        decided = s.exec(select(ReviewTask).where(ReviewTask.status == "decided")).all()
    assert [(t.reviewer, t.decision) for t in decided] == [("zhang", "approve")]


def test_unclear_reply_gets_a_question_and_acknowledgement_gets_nothing(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "通过吧，不过退回标题要改"), "reviewer1@example.test")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "收到，我看一下"), "reviewer1@example.test")
    daemon.run_once(robot)
    assert (state(robot).status, state(robot).stage) == ("reviewing", 0)
    assert len([m for m in servers.fetch_all("reviewer1") if "没能确定".encode() in m or b"=?utf-8?" in m]) >= 1
    latest(servers, "reviewer1", "没能确定您的审核意见")
    with Session(robot.engine) as s:
        notices = s.exec(select(OutboxMessage).where(OutboxMessage.to_address == "reviewer1@example.test")).all()
    assert sorted(n.kind for n in notices) == ["review-notice", "review-request"]  # one question, nothing for 收到


def test_waiting_review_is_chased_once_then_escalated_once_in_office_hours(servers, robot):
    from datetime import datetime, timedelta, timezone

    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    china = timezone(timedelta(hours=8))
    with Session(robot.engine) as s:  # the forward went out on Monday 2026-11-23, 09:00
        [task] = s.exec(select(ReviewTask)).all()
        task.created_at = datetime(2026, 11, 23, 9, 0, tzinfo=china)
        s.commit()
    assert robot.chase(datetime(2026, 11, 24, 10, 0, tzinfo=china)) == 0  # one working day: not yet
    assert robot.chase(datetime(2026, 11, 25, 20, 0, tzinfo=china)) == 0  # due, but after office hours
    assert robot.chase(datetime(2026, 11, 26, 9, 0, tzinfo=china)) == 1  # three working days: remind
    assert robot.chase(datetime(2026, 11, 26, 11, 0, tzinfo=china)) == 0  # once only
    assert robot.chase(datetime(2026, 11, 28, 10, 0, tzinfo=china)) == 0  # Saturday
    assert robot.chase(datetime(2026, 11, 30, 10, 0, tzinfo=china)) == 1  # two more working days: the leader
    assert robot.chase(datetime(2026, 12, 3, 10, 0, tzinfo=china)) == 0
    robot.send_due(datetime(2026, 12, 3, 10, 0, tzinfo=china))
    reminder = latest(servers, "reviewer1", "提醒")
    assert "3 个工作日" in reminder.get_body(("plain",)).get_content()
    escalation = latest(servers, "leader1", "催办")
    assert "张科长" in escalation.get_body(("plain",)).get_content()
    deliver_reply(servers, qq_reply(reminder, "reviewer1@example.test", "通过"), "reviewer1@example.test")
    daemon.run_once(robot)  # answering the reminder itself works: it carries the token
    assert state(robot).stage == 1


def test_reroute_keeps_the_tracking_number_and_goes_to_the_other_department(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "转 学会部"), "reviewer1@example.test")
    daemon.run_once(robot)
    sub = state(robot)
    assert (sub.department, sub.status, sub.stage) == ("xuehui", "reviewing", 0)
    moved = latest(servers, "reviewer2", "请初审")
    assert sub.tracking in moved["Subject"] and sub.tracking.startswith("KP-")
    assert "已转 学会部" in latest(servers, "reviewer1", "已记录").get_body(("plain",)).get_content()


def test_show_json_tells_the_whole_story(servers, robot, tmp_path, make_settings):
    import json

    from conftest import PASSWORD_ENV, mailbot_main, write_config

    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "退回 标题太长"), "reviewer1@example.test")
    daemon.run_once(robot)
    cfg = write_config(robot.settings, tmp_path / "c.yaml")
    env = {PASSWORD_ENV: "secret"}
    tracking = state(robot).tracking
    proc = mailbot_main("show", tracking, "--json", "--config", cfg, env=env)
    assert proc.returncode == 0, proc.stderr
    story = json.loads(proc.stdout)
    assert story["submission"]["status"] == "returned"
    assert [(r["stage"], r["decision"], r["reason"]) for r in story["reviews"]] == [("初审", "return", "标题太长")]
    kinds = [h["kind"] for h in story["history"]]
    assert kinds[:2] == ["filed", "review-started"] and "decision" in kinds
    assert {m["kind"] for m in story["mail"]} >= {"receipt", "review-request", "review-confirm", "result"}
    proc = mailbot_main("show", "KP-1999-0001", "--config", cfg, env=env)
    assert proc.returncode == 1 and "没有编号为" in proc.stderr

    reply = qq_reply(forward, "reviewer1@example.test", "不通过，数据需要核实")
    (tmp_path / "reply.eml").write_bytes(reply)
    proc = mailbot_main("parse", tmp_path / "reply.eml", "--json", "--config", cfg, env=env)
    out = json.loads(proc.stdout)
    schema_path = __import__("pathlib").Path(__file__).parents[1] / "contract" / "parse.schema.json"
    schema = json.loads(schema_path.read_text("utf-8"))
    import jsonschema

    jsonschema.validate(out, {**schema, "required": [*schema["required"], "classification", "reply"]})
    assert out["reply"]["tracking"] == tracking and out["reply"]["decision"] == "return"
    assert out["reply"]["reason"] == "数据需要核实" and out["reply"]["new_text"] == "不通过，数据需要核实"


def test_operator_confirms_a_held_reply(servers, robot, tmp_path):
    from conftest import PASSWORD_ENV, mailbot_main, write_config

    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    # the reviewer answers from a new personal address the office has not listed yet
    deliver_reply(servers, qq_reply(forward, "unit2@example.test", "通过"), "unit2@example.test")
    daemon.run_once(robot)
    assert state(robot).stage == 0
    cfg = write_config(robot.settings, tmp_path / "c.yaml")
    run = lambda *a: mailbot_main("review", *a, "--config", cfg, env={PASSWORD_ENV: "secret"})  # noqa: E731
    listing = run("held")
    assert listing.returncode == 0 and "unit2@example.test" in listing.stdout
    inbound_id = int(re.search(r"│ (\d+)\s", listing.stdout).group(1))
    done = run("confirm", str(inbound_id), "--by", "调宣部王")
    assert done.returncode == 0 and "已执行：通过" in done.stdout, done.stderr
    assert state(robot).stage == 1
    again = run("confirm", str(inbound_id))
    assert again.returncode == 1 and "不在待确认列表中" in again.stdout
    assert "没有待确认" in run("held").stdout


@pytest.mark.parametrize("name, headers", [
    ("the reviewer first and a stranger second", {"From": "reviewer1@example.test, x@evil.example",
                                                  "Sender": "x@evil.example"}),
    ("sent on behalf of the reviewer", {"From": "张科长 <reviewer1@example.test>", "Sender": "x@evil.example"}),
    ("the reviewer's address as a display name", {"From": '"reviewer1@example.test" <x@evil.example>'}),
])
def test_a_reply_not_from_exactly_one_sender_is_held(servers, robot, name, headers):
    """A valid token is not enough when the message does not come from one person: nothing
    changes, the reply waits for the operator, and the From address is told."""
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    msg = message_from_bytes(qq_reply(forward, "reviewer1@example.test", "通过", keep_refs=True), policy=policy.default)
    for key, value in headers.items():
        del msg[key]
        msg[key] = value
    deliver_reply(servers, msg.as_bytes(), "x@evil.example")
    daemon.run_once(robot)
    assert (state(robot).status, state(robot).stage) == ("reviewing", 0), name
    with Session(robot.engine) as s:
        assert s.exec(select(ReviewTask).where(ReviewTask.status == "decided")).all() == []
        holds = s.exec(select(Event).where(Event.kind == "review-hold")).all()
    assert len(holds) == 1 and holds[0].detail.split(":")[0] in ("several-from", "sender-differs", "address-in-name")
    if "reviewer1" in headers["From"].split("<")[-1]:  # the From address is the reviewer's: they are told
        assert "管理员确认" in latest(servers, "reviewer1", "管理员确认")["Subject"]
