"""The console's guards over HTTP (Starlette's TestClient on the real database): nothing
without sign-in, CSRF, roles and departments, files that cannot leave storage, hostile
titles and HTML-only mail shown as text, throttled sign-in, and /healthz."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from mailbot.store import Event, Submission, SubmissionFile
from webkit import REVIEW, TestClient, add_inbound, add_people, add_submission, client, raw_mail, sign_in, signed_in

pytestmark = pytest.mark.integration

PAGES = ["/", "/subs", "/subs/KP-2026-0001", "/exceptions", "/campaigns", "/units", "/digest", "/files/1"]


class _NoServers:
    host, imap_port, smtp_port = "127.0.0.1", 1, 1

    @staticmethod
    def address(name: str) -> str:
        return f"{name}@example.test"


@pytest.fixture
def console(make_settings, engine):
    settings = make_settings(_NoServers(), **REVIEW)
    storage = settings.storage
    storage.mkdir(parents=True, exist_ok=True)
    add_people(engine)
    add_submission(engine, storage, "KP-2026-0001", "kepu", files={
        "照片.png": (b"\x89PNG\r\n\x1a\n" + b"0" * 64, "image/png"), "说明.html": (b"<script>x</script>", "text/html")})
    add_submission(engine, storage, "XH-2026-0001", "xuehui", title="学会年会")
    return settings


def test_no_page_or_file_without_sign_in(console, engine):
    c = client(console, engine)
    for path in PAGES:
        r = c.get(path)
        assert r.status_code == 303 and r.headers["location"].startswith("/login"), path
    for path in ("/subs/KP-2026-0001/withdraw", "/mail/1/resend", "/inbound/1/dismiss"):
        assert c.post(path, data={"csrf": "x"}).status_code == 403, path
    with Session(engine) as s:
        assert s.get(Submission, 1).status == "received"


def test_sign_in_with_a_wrong_password_fails_and_sign_out_ends_the_session(console, engine):
    c = client(console, engine)
    assert sign_in(c, "op", "wrong password").status_code == 401
    assert c.get("/").status_code == 303
    c, token = signed_in(console, engine, "op")
    assert c.get("/").status_code == 200
    assert c.post("/logout", data={"csrf": token}).status_code == 303
    assert c.get("/").status_code == 303


def test_a_form_without_the_sessions_csrf_token_is_rejected(console, engine):
    c, token = signed_in(console, engine, "op")
    for data in ({}, {"csrf": "forged"}, {"csrf": token[:-1]}):
        r = c.post("/subs/KP-2026-0001/withdraw", data={**data, "reason": "x"})
        assert r.status_code == 403 and "页面已过期" in r.text
    with Session(engine) as s:
        assert s.exec(select(Submission).where(Submission.tracking == "KP-2026-0001")).one().status == "received"
    other = client(console, engine)  # a sign-in form needs its token too
    assert other.post("/login", data={"name": "op", "password": "correct horse 42"}).status_code == 403
    r = c.post("/subs/KP-2026-0001/withdraw", data={"csrf": token, "reason": "单位要求"})
    assert r.status_code == 303


def test_a_clerk_sees_and_acts_on_their_own_department_only(console, engine):
    c, token = signed_in(console, engine, "kp")
    listing = c.get("/subs").text
    assert "KP-2026-0001" in listing and "XH-2026-0001" not in listing
    assert c.get("/subs?department=xuehui").text.count("XH-2026-0001") == 0
    assert c.get("/subs/XH-2026-0001").status_code == 404
    with Session(engine) as s:
        other_file = s.exec(select(SubmissionFile).where(SubmissionFile.filename == "稿件.txt")).first().id
    assert c.get(f"/files/{other_file}").status_code == 404
    assert c.post("/subs/XH-2026-0001/withdraw", data={"csrf": token}).status_code == 404
    r = c.post("/subs/KP-2026-0001/move", data={"csrf": token, "department": "xuehui", "unit": ""})
    assert r.status_code == 303
    with Session(engine) as s:
        assert {x.tracking: x.department for x in s.exec(select(Submission))} == {
            "KP-2026-0001": "kepu", "XH-2026-0001": "xuehui"}
        assert s.exec(select(Submission).where(Submission.tracking == "XH-2026-0001")).one().status == "received"


def test_a_leader_reads_everything_and_changes_nothing(console, engine):
    c, token = signed_in(console, engine, "boss")
    assert "XH-2026-0001" in c.get("/subs").text and "KP-2026-0001" in c.get("/subs").text
    r = c.post("/subs/KP-2026-0001/withdraw", data={"csrf": token, "reason": "x"})
    assert r.status_code == 403 and "只能查看" in r.text
    with Session(engine) as s:
        assert s.exec(select(Event).where(Event.kind == "withdrawn")).first() is None


def test_downloads_cannot_leave_the_storage_folder(console, engine, tmp_path):
    (tmp_path / "secret.txt").write_text("top secret")
    with Session(engine) as s:
        sub = s.exec(select(Submission).where(Submission.tracking == "KP-2026-0001")).one()
        for path in ("../secret.txt", str(tmp_path / "secret.txt"), "稿件/../../secret.txt"):
            s.add(SubmissionFile(submission_id=sub.id, filename="x.txt", path=path, size=1, sha256="0",
                                 content_type="text/plain"))
        (console.storage / "link.txt").symlink_to(tmp_path / "secret.txt")
        s.add(SubmissionFile(submission_id=sub.id, filename="x.txt", path="link.txt", size=1, sha256="0",
                             content_type="text/plain"))
        s.commit()
        bad = [f.id for f in s.exec(select(SubmissionFile).where(SubmissionFile.filename == "x.txt"))]
    c, _ = signed_in(console, engine, "op")
    for file_id in bad:
        r = c.get(f"/files/{file_id}")
        assert r.status_code == 404 and "top secret" not in r.text
    assert c.get("/files/1/../../../etc/passwd").status_code == 404


def test_files_are_previewed_only_when_safe_and_otherwise_downloaded(console, engine):
    c, _ = signed_in(console, engine, "op")
    with Session(engine) as s:
        ids = {f.filename: f.id for f in s.exec(select(SubmissionFile))}
    png = c.get(f"/files/{ids['照片.png']}?inline=1")
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    assert png.headers["content-disposition"].startswith("inline")
    html = c.get(f"/files/{ids['说明.html']}?inline=1")  # never rendered by the browser as our page
    assert html.headers["content-type"] == "application/octet-stream"
    assert html.headers["content-disposition"].startswith("attachment")
    assert html.headers["x-content-type-options"] == "nosniff"


def test_a_script_title_and_an_html_only_mail_show_as_text(console, engine):
    evil = "<script>alert(1)</script>"
    add_submission(engine, console.storage, "KP-2026-0002", "kepu", title=evil, unit="沂水县科协")
    with Session(engine) as s:
        row = add_inbound(s, console.storage, raw_mail("网页邮件", html=f"<p>你好</p>{evil}<img src=x onerror=alert(2)>"),
                          kind="other")
        s.commit()
        inbound_id = row.id
    c, _ = signed_in(console, engine, "op")
    for page in (c.get("/subs").text, c.get("/subs/KP-2026-0002").text, c.get("/").text):
        assert evil not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    page = c.get(f"/inbound/{inbound_id}").text
    assert "<script>alert(1)" not in page and "<img src=x" not in page and "onerror=alert(2)&gt;" in page
    assert "你好" in page
    assert "script-src" not in c.get("/").headers["content-security-policy"]  # default-src 'self': no inline script


def test_sign_in_is_throttled_per_user_and_address(console, engine):
    c = client(console, engine)
    limit = console.web.sign_in_attempts
    for _ in range(limit):
        assert sign_in(c, "op", "wrong password").status_code == 401
    r = sign_in(c, "op")  # even the right password waits now
    assert r.status_code == 429 and "次数太多" in r.text
    assert sign_in(c, "kp").status_code == 303  # another user from the same address is not held up


def test_healthz_answers_without_sign_in_when_the_database_is_reachable(console, engine):
    c = client(console, engine)
    r = c.get("/healthz")
    assert r.status_code == 200 and r.text == "ok"
    assert "mailbot_console" not in r.headers.get("set-cookie", "")


def test_the_operator_replays_a_quarantined_message_and_dismisses_another_with_a_reason(console, engine):
    from mailbot.store import InboundMessage

    with Session(engine) as s:
        stuck = add_inbound(s, console.storage, raw_mail("你好", sender="someone@elsewhere.example"), status="quarantined",
                            kind=None, reason="worker crashed")
        other = add_inbound(s, console.storage, raw_mail("请问报表什么时候交"), kind="other")
        s.commit()
        stuck_id, other_id = stuck.id, other.id
    clerk, clerk_token = signed_in(console, engine, "kp")  # messages no 稿件 owns are the operator's
    assert clerk.get(f"/inbound/{stuck_id}").status_code == 404
    assert clerk.post(f"/inbound/{stuck_id}/replay", data={"csrf": clerk_token}).status_code == 404
    c, token = signed_in(console, engine, "op")
    page = c.get("/exceptions").text
    assert "无法处理的来信（1）" in page and "需要人看的来信（1）" in page
    r = c.post(f"/inbound/{stuck_id}/replay", data={"csrf": token})
    assert r.status_code == 303
    with Session(engine) as s:
        assert s.get(InboundMessage, stuck_id).status == "parsed"
        assert s.exec(select(Event).where(Event.kind == "inbound-replayed")).one().actor == "op"
    assert "已重新处理" in c.get(f"/inbound/{stuck_id}").text
    assert "请写明" in c.get(c.post(f"/inbound/{other_id}/dismiss", data={"csrf": token, "reason": " "})
                            .headers["location"]).text
    c.post(f"/inbound/{other_id}/dismiss", data={"csrf": token, "reason": "已电话答复"})
    with Session(engine) as s:
        dismissed = s.exec(select(Event).where(Event.kind == "inbound-dismissed")).one()
        assert (dismissed.inbound_id, dismissed.actor, dismissed.detail) == (other_id, "op", "已电话答复")
    page = c.get("/exceptions").text
    assert "无法处理的来信（0）" in page and "需要人看的来信（0）" in page


def test_the_board_shows_a_return_made_valid_in_place(make_settings, engine):
    """A stamped scan arriving later turns the latest return valid without a new row: the
    board (whose body is kept between requests) shows it at once."""
    from mailbot.store import FormReturn
    from test_campaigns import CAMPAIGN

    settings = make_settings(_NoServers(), **REVIEW, **CAMPAIGN)
    add_people(engine)
    with Session(engine) as s:
        row = add_inbound(s, settings.storage, raw_mail("关注情况统计表"), kind="form")
        s.add(FormReturn(campaign="guanzhu", unit="沂水县科协", sender="unit1@example.test", inbound_id=row.id,
                         filename="表.xlsx", format="xlsx", valid=False, result_json="{}"))
        s.commit()
    c, _ = signed_in(settings, engine, "op")
    assert "有效 <b>0</b> · 有问题 <b>1</b>" in c.get("/campaigns/guanzhu").text
    with Session(engine) as s:
        ret = s.exec(select(FormReturn)).one()
        ret.valid, ret.stamped = True, True
        s.add(ret)
        s.commit()
    assert "有效 <b>1</b> · 有问题 <b>0</b>" in c.get("/campaigns/guanzhu").text
    kp, _ = signed_in(settings, engine, "kp")  # the campaign is 调宣部's
    assert kp.get("/campaigns/guanzhu").status_code == 404


def test_the_operator_files_a_needs_a_person_message_as_a_submission(console, engine):
    from mailbot.store import OutboxMessage, ReviewTask

    with Session(engine) as s:
        row = add_inbound(s, console.storage, raw_mail("科普活动简讯", sender="someone@elsewhere.example"), kind="other")
        s.commit()
        inbound_id = row.id
    c, token = signed_in(console, engine, "op")
    assert "这是稿件，登记并送审" in c.get(f"/inbound/{inbound_id}").text
    bad = c.post(f"/inbound/{inbound_id}/file", data={"csrf": token, "unit": "不存在的单位", "department": "kepu"})
    assert "名册中没有这个单位" in c.get(bad.headers["location"]).text
    r = c.post(f"/inbound/{inbound_id}/file", data={"csrf": token, "unit": "沂水县科协", "department": "kepu"})
    assert r.status_code == 303 and r.headers["location"] == "/subs/KP-2026-0002"
    with Session(engine) as s:
        sub = s.exec(select(Submission).where(Submission.tracking == "KP-2026-0002")).one()
        assert (sub.unit, sub.department, sub.status, sub.inbound_id) == ("沂水县科协", "kepu", "reviewing", inbound_id)
        assert "由op在管理台指定" in sub.route_reason
        assert [t.reviewer for t in s.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id))] == ["zhang"]
        assert {m.kind for m in s.exec(select(OutboxMessage).where(OutboxMessage.submission_id == sub.id))} == {
            "receipt", "review-request"}
        assert s.exec(select(Event).where(Event.kind == "inbound-assigned")).one().actor == "op"
    assert "需要人看的来信（0）" in c.get("/exceptions").text
    assert "这是稿件，登记并送审" not in c.get(f"/inbound/{inbound_id}").text
    again = c.post(f"/inbound/{inbound_id}/file", data={"csrf": token, "unit": "", "department": "kepu"})
    assert "没有需要改动" in c.get(again.headers["location"]).text


def test_a_crash_is_a_polite_page_not_a_stack_trace(console, engine, monkeypatch):
    from mailbot.web import views

    def broken(*_args, **_kwargs):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(views, "submissions", broken)
    c, _ = signed_in(console, engine, "op")
    quiet = TestClient(c.app, base_url="http://testserver", raise_server_exceptions=False, cookies=c.cookies)
    r = quiet.get("/subs")
    assert r.status_code == 500 and "出现了意外错误" in r.text
    assert "Traceback" not in r.text and "database on fire" not in r.text
