"""The console's guards over HTTP (Starlette's TestClient on the real database): nothing
without sign-in, CSRF, roles and departments, files that cannot leave storage, hostile
titles and HTML-only mail shown as text, throttled sign-in, and /healthz."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from mailbot.store import Event, Submission, SubmissionFile
from webkit import REVIEW, add_inbound, add_people, add_submission, client, raw_mail, sign_in, signed_in

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
