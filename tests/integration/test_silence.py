"""No mail ends in silence (issue 14), over the real servers: every received message gets an
outcome a person can see (`status`, `list --needs-person`, `show`); units resubmit as they
do (a revision written in the body; a bare 收到 is an acknowledgement)."""

from __future__ import annotations

import json
import re
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


# --- 超大附件 links are fetched -----------------------------------------------------------

VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"v" * 300_000


class _Provider:
    """A loopback HTTP server standing in for the providers' download hosts: the robot reaches
    it as its proxy (`large_attachments.proxy`), so the mail keeps the providers' real link
    shapes. Pages are shaped like each provider's download page (tests/cases/download_pages.yaml)."""

    PAGES = {
        "http://mail.qq.com/cgi-bin/ftnExs_download": (
            "text/html", '<div class="ft_name">活动视频.mp4</div><a class="btn_blue" '
            'href="http://xdbh1.ftn.qq.com/ftn_handler/6b1f2e/?fname=video.mp4&amp;k=ok">下载</a>'),
        "http://xdbh1.ftn.qq.com/ftn_handler/6b1f2e/": ("video/mp4", VIDEO),
        "http://mail.163.com/large-attachment-download/index.html": (
            "text/html", '<a class="normal-download" href="/large-attachment-download/api/download?file=Zm9v">普通下载</a>'),
        "http://mail.163.com/large-attachment-download/api/download": ("application/octet-stream", b"PK\x03\x04photos"),
        "http://exmail.qq.com/cgi-bin/ftnExs_download": (
            "text/html", '<div class="ft_err">该文件已过期或已被删除</div><a href="/cgi-bin/loginpage">返回</a>'),
    }

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import urlsplit

        pages, hits = self.PAGES, []
        self.hits = hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                parts = urlsplit(self.path)
                key = f"{parts.scheme}://{parts.netloc}{parts.path}"
                hits.append(key)
                if key not in pages:
                    self.send_response(404)
                    self.end_headers()
                    return
                ctype, body = pages[key]
                data = body.encode() if isinstance(body, str) else body
                self.send_response(200)
                self.send_header("Content-Type", ctype + ("; charset=utf-8" if ctype == "text/html" else ""))
                if ctype != "text/html":
                    self.send_header("Content-Disposition", "attachment; filename*=UTF-8''%E6%B4%BB%E5%8A%A8.bin")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def large_attachment_mail(links: list[tuple[str, str, str]]) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = "沂水县科协 <unit1@example.test>", "skxkpb@example.test"
    m["Subject"], m["Message-ID"] = "【沂水县科协】科普日活动视频", make_msgid(domain="qq.example")
    lines = ["各位老师好：活动视频较大，用超大附件发送。", "", "从QQ邮箱发来的超大附件", ""]
    lines += [f"{name} ({size}, 2026年12月30日 21:59 到期)进入下载页面：{url}" for name, size, url in links]
    m.set_content("\n".join(lines))
    return m.as_bytes()


@pytest.fixture
def provider():
    srv = _Provider()
    yield srv
    srv.close()


def test_large_attachment_links_are_fetched_filed_and_forwarded_and_a_dead_one_alerts(servers, make_settings,
                                                                                      provider):
    servers.dovecot.add_user("admin", "secret")
    rt = daemon.Runtime.build(make_settings(
        servers, operators=["admin@example.test"], **REVIEW,
        large_attachments={"proxy": provider.url, "retries": 2, "retry_delay": 0, "timeout": 5}))
    try:
        send(servers, large_attachment_mail([
            ("活动视频.mp4", "300K", "http://mail.qq.com/cgi-bin/ftnExs_download?t=exs_ftn_download&k=ok&code=1"),
            ("现场照片.zip", "1K", "http://mail.163.com/large-attachment-download/index.html?file=Zm9v"),
            ("花絮.mp4", "2G", "http://exmail.qq.com/cgi-bin/ftnExs_download?k=gone"),
        ]), "unit1@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)
        with Session(rt.engine) as s:
            sub = s.exec(select(Submission)).one()
            files = s.exec(select(SubmissionFile).order_by(SubmissionFile.id)).all()
            assert [f.size for f in files] == [len(VIDEO), len(b"PK\x03\x04photos")]
            assert (rt.settings.storage / files[0].path).read_bytes() == VIDEO
            failed = s.exec(select(Event).where(Event.kind == "link-failed")).all()
            assert len(failed) == 1 and "花絮.mp4" in failed[0].detail and "没有找到文件" in failed[0].detail
        forward = latest(servers, "reviewer1", "请初审")
        sizes = sorted(len(p.get_payload(decode=True)) for p in forward.iter_attachments())
        assert sizes == sorted([len(VIDEO), len(b"PK\x03\x04photos")])  # forwarded like attachments
        receipt = latest(servers, "unit1", "回执").get_body(("plain",)).get_content()
        assert "花絮.mp4" in receipt and "活动视频.mp4" not in receipt.split("超大附件：")[-1]
        alert = latest(servers, "admin", "超大附件未能下载")
        body = alert.get_body(("plain",)).get_content()
        assert sub.tracking in body and "2026年12月30日 21:59" in body
        assert provider.hits.count("http://exmail.qq.com/cgi-bin/ftnExs_download") == 1  # no retry of a dead page
    finally:
        rt.close()


# --- operator alerts ------------------------------------------------------------------------


def test_operators_are_alerted_once_per_problem_and_get_a_daily_summary(servers, make_settings, monkeypatch):
    servers.dovecot.add_user("admin", "secret")
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb", "skxxhb", "skxdxb", "broken"),
                                            operators=["admin@example.test"], **REVIEW))
    try:
        start = rt.clock()
        send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)  # "broken" cannot log in: not yet an alert (under mailbox_down_minutes)
        receipt = latest(servers, "unit1", "回执")
        send(servers, text_reply(receipt, "unit1@example.test", "请问照片要几张？文字需要多少字？"),
             "unit1@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)
        assert [m["Subject"] for m in map(_msg, servers.fetch_all("admin"))] == [
            "【临沂市科协邮件机器人】有一封来信需要人工处理"]
        move_clock(monkeypatch, start + timedelta(minutes=20))
        daemon.run_once(rt)
        move_clock(monkeypatch, start + timedelta(minutes=40))
        daemon.run_once(rt)  # still down: no second alert
        subjects = _subjects(servers, "admin")
        assert sum("邮箱 broken 无法登录或连接" in s for s in subjects) == 1, subjects
        assert "有一封来信需要人工处理" in subjects[0] and len(subjects) == 2

        local = start.astimezone(timezone(timedelta(hours=8)))
        morning = local.replace(hour=8, minute=31) + timedelta(days=1)
        move_clock(monkeypatch, morning)
        daemon.run_once(rt)
        move_clock(monkeypatch, morning + timedelta(hours=1))
        daemon.run_once(rt)
        summaries = [m for m in map(_msg, servers.fetch_all("admin")) if "待处理事项" in m["Subject"]]
        assert len(summaries) == 1
        text = summaries[0].get_body(("plain",)).get_content()
        assert "请问照片要几张" not in text and "需要人工处理的来信：1 封" in text and "broken" in text
    finally:
        rt.close()


# --- every mail threads ---------------------------------------------------------------------


def _thread_ok(mails, first_ids: tuple[str, ...] = ()) -> None:
    """Each mail answers the one before it in the same mailbox (In-Reply-To) and carries the
    whole conversation (References), starting with the person's own message when there is one."""
    seen = list(first_ids)
    for m in mails:
        assert m["In-Reply-To"].strip() == seen[-1], (m["Subject"], m["In-Reply-To"], seen[-1])
        refs = re.findall(r"<[^<>]+>", m["References"])
        assert refs == seen[-20:], (m["Subject"], refs, seen)
        seen.append(m["Message-ID"].strip())


def test_every_mail_about_a_gaojian_threads_for_the_unit_and_the_reviewers(servers, robot):
    unit_mail = gaojian()
    first_id = _msg(unit_mail)["Message-ID"]
    send(servers, unit_mail, "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "退回 请写清活动的参加人数"),
                  "reviewer1@example.test")
    daemon.run_once(robot)
    returned = latest(servers, "unit1", "退回")
    revised = text_reply(returned, "unit1@example.test", REVISED)
    send(servers, revised, "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward2 = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward2, "reviewer1@example.test", "通过"), "reviewer1@example.test")
    daemon.run_once(robot)
    leader = latest(servers, "leader1", "请审核")
    deliver_reply(servers, qq_reply(leader, "leader1@example.test", "同意"), "leader1@example.test")
    daemon.run_once(robot)

    tracking = robot_tracking(robot)
    to_unit = [_msg(r) for r in servers.fetch_all("unit1")]
    assert [m["Subject"].startswith(f"[{tracking}]") for m in to_unit] == [True] * len(to_unit) and len(to_unit) == 4
    # receipt, 退回, receipt of 第2版 (answers the unit's revision), 通过
    assert to_unit[0]["In-Reply-To"] == first_id
    assert to_unit[1]["In-Reply-To"] == to_unit[0]["Message-ID"] and first_id in to_unit[1]["References"]
    assert to_unit[2]["In-Reply-To"] == _msg(revised)["Message-ID"]
    assert to_unit[3]["In-Reply-To"] == to_unit[2]["Message-ID"] and first_id in to_unit[3]["References"]
    to_reviewer = [_msg(r) for r in servers.fetch_all("reviewer1")]
    assert all(tracking in m["Subject"] for m in to_reviewer) and len(to_reviewer) == 4  # 请初审, 已记录 ×2 …
    _thread_ok(to_reviewer[1:], (to_reviewer[0]["Message-ID"].strip(),))
    assert to_reviewer[0]["In-Reply-To"] is None  # the first forward starts the reviewer's thread


# --- review carries its history -------------------------------------------------------------


def test_the_leader_sees_the_first_review_and_the_publisher_gets_the_files_and_records_publication(servers, robot,
                                                                                                   tmp_path):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    deliver_reply(servers, qq_reply(forward, "reviewer1@example.test", "通过，标题可以再短一些"), "reviewer1@example.test")
    daemon.run_once(robot)
    leader = latest(servers, "leader1", "请审核").get_body(("plain",)).get_content()
    from mailbot.store import ReviewTask as _RT
    with Session(robot.engine) as _s:
        print("TASKS", [(t.stage, t.status, t.decision, t.revision) for t in _s.exec(select(_RT))])
    assert "此前的审核意见" in leader and "初审（张科长" in leader and "通过——标题可以再短一些" in leader
    deliver_reply(servers, qq_reply(latest(servers, "leader1", "请审核"), "leader1@example.test", "同意"),
                  "leader1@example.test")
    daemon.run_once(robot)
    publish = latest(servers, "skxdxb", "可以发布")
    assert [(p.get_filename(), p.get_payload(decode=True)) for p in publish.iter_attachments()] == [
        ("稿件.txt", "稿件正文".encode())]
    text = publish.get_body(("plain",)).get_content()
    assert "审核（王主席" in text and "storage" not in text

    answer = EmailMessage()
    answer["From"], answer["To"] = "skxdxb@example.test", "skxdxb@example.test"
    answer["Subject"], answer["Message-ID"] = f"回复：{publish['Subject']}", make_msgid(domain="ly.example")
    answer["In-Reply-To"] = publish["Message-ID"]
    answer.set_content("已在公众号发布。")
    send(servers, answer.as_bytes(), "skxdxb@example.test", ["skxdxb@example.test"])
    daemon.run_once(robot)
    tracking = robot_tracking(robot)
    shown = json.loads(cli(robot, tmp_path, "show", tracking, "--json"))
    assert shown["submission"]["published_at"] and "published" in [h["kind"] for h in shown["history"]]

    from mailbot.digest import build, stats

    now = robot.clock()
    with Session(robot.engine) as s:
        snap = stats.snapshot(s, robot.settings, now - timedelta(days=7), now + timedelta(minutes=1))
    assert snap.published == 1
    from mailbot.digest import Period

    del Period, build


# --- two workers never copy a message twice into a server folder ----------------------------


def test_two_robots_file_each_message_once_into_the_units_server_folder(servers, make_settings, tmp_path):
    """Two `mailbot run --once` on one database (PostgreSQL with MAILBOT_TEST_DATABASE_URL) and
    300 messages: each message ends in 稿件/<unit> exactly once, none is left in INBOX."""
    import os
    import subprocess

    from conftest import PASSWORD_ENV, mailbot_cmd

    total = 300
    with servers.imap("skxkpb") as imap:
        for i in range(total):
            m = EmailMessage()
            m["From"], m["To"] = "沂水县科协 <unit1@example.test>", "skxkpb@example.test"
            m["Subject"], m["Message-ID"] = f"科普活动稿件 {i}", f"<copy-{i}@unit.example>"
            m.set_content("请审核。")
            imap.append("INBOX", m.as_bytes())
    settings = make_settings(servers, boxes=("skxkpb",), parse_workers=0, batch_size=10,
                             outbox={"daily_cap_per_sender": 1000})
    cfg = write_config(settings, tmp_path / "two.yaml")
    env = {**os.environ, PASSWORD_ENV: "secret"}
    procs = [subprocess.Popen([*mailbot_cmd(), "run", "--once", "--config", str(cfg)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with servers.imap("skxkpb") as imap:
        imap.select_folder("稿件/沂水县科协", readonly=True)
        found = imap.fetch(imap.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
        ids = [re.search(rb"<[^>]+>", v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).group(0) for v in found.values()]
        imap.select_folder("INBOX", readonly=True)
        left = imap.search("ALL")
    assert len(ids) == len(set(ids)) == total, f"{len(ids) - len(set(ids))} copied twice"
    assert left == []


def test_two_workers_applying_server_actions_at_the_same_moment_move_each_copy_once(servers, make_settings):
    """The race itself, made to happen: two workers with their own IMAP sessions take the same
    processed copies' server actions at the same instant (a barrier); each copy is claimed by
    one of them, so 稿件/<unit> holds every message once."""
    import threading

    from mailbot import ingest, pipeline
    from mailbot.pipeline import sync

    total = 60
    with servers.imap("skxkpb") as imap:
        for i in range(total):
            m = EmailMessage()
            m["From"], m["To"] = "unit1@example.test", "skxkpb@example.test"
            m["Subject"], m["Message-ID"] = f"同时移动 {i}", f"<race-{i}@unit.example>"
            m.set_content("请审核。")
            imap.append("INBOX", m.as_bytes())
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb",), parse_workers=0))
    try:
        box = rt.settings.mailbox("skxkpb")
        client = ingest.connect(box, box.password())
        folder = ingest.open_folder(client, box)
        got = ingest.fetch(client, box, folder.uidvalidity, ingest.new_uids(client, 0), [])
        pipeline.keep_batch(rt.engine, rt.raws, got, box.folder, lambda session: None)
        rt.processor.drain()  # stored and filed: the server actions are all pending
        ingest.close(client)
        # a worker that has claimed the copies (and is moving them) is never joined by a second
        held = sync._claim_copies(rt.engine, box, folder)
        assert len(held) == total and sync._claim_copies(rt.engine, box, folder) == []
        with Session(rt.engine) as s:  # …until its claim is older than the lease (it died)
            from mailbot.store import MessageCopy

            for copy in s.exec(select(MessageCopy)):
                copy.claimed_at = robot_now(rt) - sync.CLAIM_LEASE - timedelta(seconds=1)
            s.commit()
        barrier, errors = threading.Barrier(2), []

        def worker():
            conn = ingest.connect(box, box.password())
            try:
                opened = ingest.open_folder(conn, box)
                barrier.wait()
                sync.apply_server_actions(conn, box, opened, rt.engine)
            except Exception as exc:  # reported below
                errors.append(exc)
            finally:
                ingest.close(conn)

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        with servers.imap("skxkpb") as imap:
            imap.select_folder("稿件/沂水县科协", readonly=True)
            found = imap.fetch(imap.search("ALL"), ["BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"])
            ids = [re.search(rb"<[^>]+>", v[b"BODY[HEADER.FIELDS (MESSAGE-ID)]"]).group(0) for v in found.values()]
        assert len(ids) == len(set(ids)) == total, f"{len(ids) - len(set(ids))} copied twice"
    finally:
        rt.close()


def robot_now(rt):
    return rt.clock()


def test_sending_that_keeps_failing_alerts_the_operators_from_another_mailbox(servers, make_settings, monkeypatch):
    servers.dovecot.add_user("admin", "secret")
    # no daily summary (it would list the letter waiting for its retry): this is about the alert
    settings = make_settings(servers, operators=["admin@example.test"], alerts={"summary_time": None}, **REVIEW)
    broken = settings.mailboxes[0].model_copy(update={"smtp_port": 1})  # skxkpb's SMTP refuses connections
    rt = daemon.Runtime.build(settings.model_copy(update={"mailboxes": [broken, *settings.mailboxes[1:]]}))
    try:
        start = rt.clock()
        send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)  # the receipt cannot leave skxkpb: retried, not yet an alert
        assert servers.fetch_all("unit1") == [] and servers.fetch_all("admin") == []
        move_clock(monkeypatch, start + timedelta(minutes=20))
        daemon.run_once(rt)
        alert = latest(servers, "admin", "邮箱 skxkpb 发信失败")
        assert alert["From"].addresses[0].addr_spec != "skxkpb@example.test"
        assert "无法连接 SMTP 服务器" in alert.get_body(("plain",)).get_content()
        move_clock(monkeypatch, start + timedelta(minutes=40))
        daemon.run_once(rt)
        assert sum("发信失败" in s for s in _subjects(servers, "admin")) == 1  # once per problem
    finally:
        rt.close()


def test_a_review_result_reaches_the_original_sender_whatever_the_cap(servers, make_settings):
    """An off-roster sender at the cap still gets the 退回 of their own 稿件 (owed), while a
    notice to them (not owed) is held back and recorded."""
    servers.dovecot.add_user("zhao", "secret")
    rt = daemon.Runtime.build(make_settings(servers, outbox={"daily_cap_per_sender": 1}, **REVIEW))
    try:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "zhao@example.test", "skxkpb@example.test", "科普讲座活动信息"
        m["Message-ID"] = make_msgid(domain="qq.example")
        m.set_content("附件是稿件。")
        m.add_attachment(b"x", maintype="application", subtype="octet-stream", filename="稿件.txt")
        send(servers, m.as_bytes(), "zhao@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)  # the receipt: the one mail of the day the cap allows an unknown sender
        tracking = robot_tracking(rt)
        reviewer = "reviewer2" if tracking.startswith("XH") else "reviewer1"
        forward = latest(servers, reviewer, tracking)
        deliver_reply(servers, qq_reply(forward, f"{reviewer}@example.test", "退回 请补充活动人数"),
                      f"{reviewer}@example.test", mailbox=forward["From"].addresses[0].username)
        daemon.run_once(rt)
        assert any("退回" in s for s in _subjects(servers, "zhao"))  # owed: not capped
        digest_reply = EmailMessage()  # a notice to the same address is not owed: capped, recorded
        digest_reply["From"], digest_reply["To"] = "zhao@example.test", "skxkpb@example.test"
        digest_reply["Subject"], digest_reply["Message-ID"] = "回复：周报", make_msgid(domain="qq.example")
        digest_reply["In-Reply-To"] = "<mailbot.digest.2026-W50.0123456789abcdef@ly.example.test>"
        digest_reply.set_content("通过")
        send(servers, digest_reply.as_bytes(), "zhao@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)
        assert len(_subjects(servers, "zhao")) == 2
        with Session(rt.engine) as s:
            assert [e.detail.split(" ")[0] for e in s.exec(select(Event).where(Event.kind == "outbox-cap"))] == [
                "review-notice"]
    finally:
        rt.close()


def test_a_fetched_file_too_large_to_mail_is_listed_in_the_forward_not_attached(servers, make_settings, provider):
    rt = daemon.Runtime.build(make_settings(
        servers, **{**REVIEW, "review": {**REVIEW["review"], "forward_attach_max_bytes": 100_000}},
        large_attachments={"proxy": provider.url, "retries": 1, "timeout": 5}))
    try:
        send(servers, large_attachment_mail([
            ("活动视频.mp4", "300K", "http://mail.qq.com/cgi-bin/ftnExs_download?t=exs_ftn_download&k=ok&code=1"),
            ("现场照片.zip", "1K", "http://mail.163.com/large-attachment-download/index.html?file=Zm9v")]),
            "unit1@example.test", ["skxkpb@example.test"])
        daemon.run_once(rt)
        forward = latest(servers, "reviewer1", "请初审")
        assert [len(p.get_payload(decode=True)) for p in forward.iter_attachments()] == [len(b"PK\x03\x04photos")]
        assert "文件较大，未随信附上" in forward.get_body(("plain",)).get_content()
        with Session(rt.engine) as s:  # kept all the same
            assert sorted(f.size for f in s.exec(select(SubmissionFile))) == [len(b"PK\x03\x04photos"), len(VIDEO)]
    finally:
        rt.close()
