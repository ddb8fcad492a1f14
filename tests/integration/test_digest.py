"""The weekly digest over the real database and mail servers: its numbers against the
database, its HTML in headless Chromium, sent exactly once across a restart and by two
workers, a late digest after downtime and an on-time one by the one clock, and replies to it."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import threading
import time
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from io import BytesIO
from zoneinfo import ZoneInfo

import pytest
from conftest import ROOT, TEST_UNITS, move_clock
from sqlmodel import Session, func, select
from test_daemon import daemon_factory  # noqa: F401  (the `mailbot run` child-process fixture)

from devtools import sample
from mailbot import digest
from mailbot.digest import digesting
from mailbot.runtime import daemon
from mailbot.store import DigestRun, FormReturn, FormRow, InboundMessage, OutboxMessage, ReviewTask, Submission

pytestmark = pytest.mark.integration
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 11, 23, 8, 0, 20, tzinfo=TZ)  # Monday, twenty seconds after the digest's minute
OUTPUT = ROOT / "test-output"
UNITS = TEST_UNITS + [{"name": f"{county}{kind}", "category": "乡镇科协", "parent": county,
                       "addresses": [f"town{c}{i}@example.test"]}
                      for c, county in enumerate(("兰山区", "罗庄区", "河东区"))
                      for i, kind in enumerate(("街道科协", "镇科协", "乡科协"))]
EXTRA = {
    "units": UNITS,
    "reviewers": [{"key": "zhang", "name": "张科长", "addresses": ["reviewer1@example.test"]},
                  {"key": "wang", "name": "王主席", "addresses": ["leader1@example.test"]}],
    "review": {"stages": {"kepu": [{"name": "初审", "reviewers": ["zhang"]}],
                          "xuehui": [{"name": "初审", "reviewers": ["zhang"]}],
                          "diaoxuan": [{"name": "初审", "reviewers": ["zhang"]}]}},
    "forms_folder": str(ROOT / "config" / "forms"),
    "campaigns": [{"key": "guanzhu", "name": "公众号关注情况统计", "template": "关注情况统计表", "department": "diaoxuan",
                   "audiences": [{"name": "乡镇", "categories": ["乡镇科协"], "deadline": "2026-12-20"},
                                 {"name": "县区", "categories": ["县区科协"], "deadline": "2026-12-10"}]}],
    "digest": {"leaders": ["wang"], "departments": {"kepu": ["zhang"]}},
}


def digests(servers, user: str) -> list:
    found = [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]
    return [m for m in found if "周报" in m["Subject"]]


# --- the numbers ------------------------------------------------------------------------


def expected(engine, settings, period) -> dict:
    """The digest's key figures, computed here straight from the tables."""
    starts, ends = period.starts_at, period.ends_at
    with Session(engine) as s:
        new = dict(s.exec(select(Submission.department, func.count()).where(
            Submission.created_at >= starts, Submission.created_at < ends).group_by(Submission.department)).all())
        decided = s.exec(select(ReviewTask.decision, ReviewTask.created_at, ReviewTask.decided_at).where(
            ReviewTask.status == "decided", ReviewTask.decided_at >= starts, ReviewTask.decided_at < ends)).all()
        waiting = s.exec(select(ReviewTask.created_at, Submission.tracking).join(
            Submission, Submission.id == ReviewTask.submission_id).where(
            ReviewTask.status == "open", ReviewTask.created_at < ends).order_by(ReviewTask.created_at)).all()
        failed = s.exec(select(func.count()).select_from(OutboxMessage).where(
            OutboxMessage.status.in_(("failed", "uncertain")), OutboxMessage.created_at >= starts,
            OutboxMessage.created_at < ends)).one()
        latest: dict[str, FormReturn] = {}
        for r in s.exec(select(FormReturn).where(FormReturn.received_at < ends).order_by(FormReturn.id)):
            if r.valid:
                latest[r.unit] = r
        follows = sum(json.loads(row.data_json)["关注人数"] for row in s.exec(
            select(FormRow).where(FormRow.return_id.in_([r.id for r in latest.values()]))))
    hours = [(b - a).total_seconds() / 3600 for _d, a, b in decided]
    return {"new": new, "new_total": sum(new.values()), "approve": sum(1 for d, *_ in decided if d == "approve"),
            "return": sum(1 for d, *_ in decided if d == "return"), "median_hours": statistics.median(hours),
            "waiting_total": len(waiting), "oldest": waiting[0][1], "failed": failed,
            "valid_units": set(latest), "follows": follows}


@pytest.fixture
def seeded(servers, make_settings, engine):
    settings = make_settings(servers, **EXTRA)
    period = digest.period_for(NOW, settings.digest, TZ)
    sample.seed(engine, settings, period.ends_at - timedelta(minutes=1), submissions=240, weeks=4, failures=3)
    return settings, period


def test_digest_numbers_match_the_database(seeded, engine):
    settings, period = seeded
    want = expected(engine, settings, period)
    assert want["new_total"] > 20 and want["approve"] and want["return"] and want["failed"] == 3  # a real week
    with Session(engine) as s:
        r = digesting.render(s, settings, period, NOW)
    c = r.content
    names = {d.key: d.name for d in settings.departments}
    assert {d["name"]: d["new"] for d in c["departments"]} == {names[k]: v for k, v in want["new"].items()}
    assert c["new_total"] == want["new_total"]
    assert {d["name"]: d["count"] for d in c["decisions"]} == {"通过": want["approve"], "退回": want["return"]}
    assert c["median"] == digest._duration(want["median_hours"])
    assert c["waiting_total"] == want["waiting_total"] and c["waiting"][0]["tracking"] == want["oldest"]
    assert [w["days"] for w in c["waiting"]] == sorted((w["days"] for w in c["waiting"]), reverse=True)
    assert c["failures_total"] == want["failed"]
    (campaign,) = c["campaigns"]
    assert sum(a["valid"] for a in campaign["audiences"]) == len(want["valid_units"])
    assert campaign["tallies"][0]["total"] == want["follows"]
    assert sum(a["units"] for a in campaign["audiences"]) == len(UNITS) - 2  # 乡镇 + 县区科协 (沂水县科协)
    # the attachment has every new 稿件 of the week, the text part the same figures
    from openpyxl import load_workbook

    book = load_workbook(BytesIO(r.workbook))
    assert book["本周新稿件"].max_row - 1 == want["new_total"]
    assert f"本周新稿件：{want['new_total']}" in r.text and f"关注人数合计 {want['follows']}" in r.text
    assert r.subject == f"临沂市科协稿件与报表周报（{period.label}）"


def test_department_digest_shows_only_its_department(seeded, engine):
    settings, period = seeded
    with Session(engine) as s:
        r = digesting.render(s, settings, period, NOW, department="kepu")
        kepu_new = s.exec(select(func.count()).select_from(Submission).where(
            Submission.department == "kepu", Submission.created_at >= period.starts_at,
            Submission.created_at < period.ends_at)).one()
    assert [d["name"] for d in r.content["departments"]] == ["科普部"]
    assert r.content["new_total"] == kepu_new
    assert not r.content["campaigns"] and not r.content["show_failures"]  # 调宣部's campaign, office-wide failures
    assert "科普部" in r.subject


@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is not installed (scripts/setup.sh installs it)")
def test_digest_html_renders_in_headless_chromium(seeded, engine, tmp_path, db_url):
    from PIL import Image

    settings, period = seeded
    want = expected(engine, settings, period)
    with Session(engine) as s:
        r = digesting.render(s, settings, period, NOW, inline_chart=True)
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / f"digest-{'postgresql' if db_url.startswith('postgresql') else 'sqlite'}.png"
    page = shot.with_suffix(".html")
    page.write_text(r.html, "utf-8")
    base = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'chromium'}"]
    run = subprocess.run([*base, "--window-size=680,2600", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, timeout=60)
    assert run.returncode == 0 and shot.exists(), run.stderr.decode(errors="replace")[-2000:]
    dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, timeout=60).stdout.decode()
    text = " ".join(dom.split())
    for figure in (want["new_total"], want["approve"], want["return"], want["waiting_total"], want["follows"]):
        assert f">{figure}<" in text.replace("> ", ">").replace(" <", "<")
    assert want["oldest"] in text
    assert "<script" not in r.html.lower()
    image = Image.open(shot).convert("RGB")
    assert image.size[0] == 680
    # the chart (an inline PNG) was drawn: its first department colour (#2f6fb3) is on the page
    small = image.resize((image.size[0] // 2, image.size[1] // 2))
    raw = small.tobytes()
    blue = sum(1 for i in range(0, len(raw), 3)
               if abs(raw[i] - 0x2F) < 12 and abs(raw[i + 1] - 0x6F) < 12 and abs(raw[i + 2] - 0xB3) < 12)
    assert blue > 200, f"no chart bars in {shot}"
    print(f"digest screenshot: {shot}")
    # On a phone (390 px wide) nothing is wider than the screen: no sideways scrolling. Headless
    # windows are at least 500 px, so a copy of the page gets a 390 px body and a probe script
    # (the mail itself has none) that writes how wide the content really is.
    probe = tmp_path / "phone.html"
    probe.write_text(r.html.replace("</body>", "<style>body{width:390px !important}</style><script>"
                                    "document.body.setAttribute('data-width', document.body.scrollWidth)"
                                    "</script></body>"), "utf-8")
    phone = subprocess.run([*base, "--window-size=500,2000", "--dump-dom", probe.as_uri()], capture_output=True,
                           timeout=60).stdout.decode()
    import re

    width = int(re.search(r'data-width="(\d+)"', phone).group(1))
    assert width <= 390, f"the digest is {width} px wide on a 390 px phone"


# --- sent once ----------------------------------------------------------------------------


def test_digest_is_sent_once_across_a_restart_at_the_scheduled_minute(servers, seeded, engine):
    settings, period = seeded
    first = daemon.Runtime.build(settings)
    outcome = first.digest(now=period.scheduled_at + timedelta(seconds=20))
    assert outcome.status == "sent" and not outcome.late and outcome.recipients == 2
    first.send_due()
    first.close()  # the robot restarts within the same minute
    again = daemon.Runtime.build(settings)
    assert again.digest(now=period.scheduled_at + timedelta(seconds=40)).status == "already-sent"
    assert again.catch_up(now=period.scheduled_at + timedelta(seconds=50)) is None
    again.send_due()
    again.close()
    (leader,) = digests(servers, "leader1")
    (dept,) = digests(servers, "reviewer1")
    assert leader["Subject"].startswith(settings.organisation) and "科普部" in dept["Subject"]
    assert "王主席：" in leader.get_body(("plain",)).get_content()
    html = leader.get_body(("html",))
    assert 'src="cid:chart@mailbot"' in html.get_content()
    (png,) = [p for p in leader.walk() if p.get_content_type() == "image/png"]
    assert png["Content-ID"] == "<chart@mailbot>" and png.get_content().startswith(b"\x89PNG")
    (xlsx,) = [p for p in leader.iter_attachments() if p.get_filename().endswith(".xlsx")]
    assert xlsx.get_filename() == f"周报明细-{period.key}.xlsx"
    with Session(engine) as s:
        runs = s.exec(select(DigestRun)).all()
    assert [(r.period, r.late, r.trigger) for r in runs] == [(period.key, False, "schedule")]


def test_two_workers_at_the_same_minute_send_one_digest(servers, seeded, engine):
    settings, period = seeded
    results, barrier = [], threading.Barrier(2)

    def worker():
        barrier.wait()
        results.append(digesting.send_digest(engine, settings, period.scheduled_at + timedelta(seconds=1)).status)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["already-sent", "sent"]
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "digest")).one() == 2


def test_catch_up_sends_a_missed_digest_late_but_not_on_a_fresh_install(servers, seeded, engine):
    settings, period = seeded
    later = period.scheduled_at + timedelta(hours=3, minutes=30)  # the robot was down at 08:00
    with Session(engine) as s:  # the seeded history is older than the minute, so the robot was in service
        assert s.exec(select(func.count()).select_from(InboundMessage)).one()
    rt = daemon.Runtime.build(settings)
    outcome = rt.catch_up(now=later)
    assert outcome.status == "sent" and outcome.late
    rt.send_due()
    rt.close()
    (leader,) = digests(servers, "leader1")
    assert leader["Subject"].startswith("【补发】")
    assert "补发" in leader.get_body(("plain",)).get_content()
    # nor again later; and a digest more than late_limit_days late is not sent at all
    assert digesting.send_digest(engine, settings, later + timedelta(hours=1), period=period).status == "already-sent"
    old = digest.period_by_key("2026-W40", settings.digest, TZ)
    assert digesting.send_digest(engine, settings, NOW, period=old).status == "too-late"


def test_fresh_install_does_not_open_with_last_weeks_digest(servers, make_settings, engine):
    settings = make_settings(servers, **EXTRA)
    assert digesting.catch_up(engine, settings, NOW + timedelta(hours=3)) is None


@pytest.mark.pinned_clock  # its moments are set before the robot starts
def test_daemon_sends_a_missed_digest_once_marked_late(servers, make_settings, engine, daemon_factory,  # noqa: F811
                                                     monkeypatch):
    """The robot ran before Monday 08:00, was down at the minute and comes back at 11:00: the
    digest goes out once, marked 【补发】; a further restart sends nothing. Every process reads
    the one clock (MAILBOT_NOW), moved here."""
    settings = make_settings(servers, boxes=("skxdxb",), **EXTRA)
    minute = datetime(2026, 11, 23, 8, 0, tzinfo=TZ)  # Monday, the default digest minute
    move_clock(monkeypatch, minute - timedelta(hours=2))
    first = daemon_factory(settings)  # in service before the minute (no mail came) …
    first.wait_log(": connected")
    assert first.stop() == 0 and not digests(servers, "leader1")
    move_clock(monkeypatch, minute + timedelta(hours=3))  # … down at 08:00, back at 11:00
    d = daemon_factory(settings)
    deadline = time.monotonic() + 30
    while not digests(servers, "leader1") and time.monotonic() < deadline:
        time.sleep(0.2)
    (leader,) = digests(servers, "leader1")
    assert leader["Subject"].startswith("【补发】")
    assert d.stop() == 0
    d2 = daemon_factory(settings)  # another restart: nothing is sent again
    d2.wait_log(": connected")  # serve() catches up before the readers connect: nothing was queued
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(OutboxMessage).where(OutboxMessage.kind == "digest")).one() == 2
    assert d2.stop() == 0
    assert len(digests(servers, "leader1")) == 1 and len(digests(servers, "reviewer1")) == 1
    with Session(engine) as s:
        (run,) = s.exec(select(DigestRun)).all()
    assert run.late and run.trigger == "catch-up" and run.period == "2026-W47"


@pytest.mark.pinned_clock  # its moments are set before the robot starts
def test_daemon_sends_the_digest_at_its_minute_by_the_one_clock(servers, make_settings, engine, daemon_factory,  # noqa: F811
                                                                monkeypatch):
    """Sunday 23:59 → Monday 08:00 on the test clock (never the wall clock): nothing before the
    minute, the digest on time within the scheduler's half-minute check after it."""
    settings = make_settings(servers, boxes=("skxdxb",), **EXTRA)
    move_clock(monkeypatch, datetime(2026, 11, 23, 7, 59, 45, tzinfo=TZ))
    d = daemon_factory(settings)
    d.wait_log(": connected")
    with Session(engine) as s:
        assert s.exec(select(DigestRun).where(DigestRun.period == "2026-W47")).first() is None
    deadline = time.monotonic() + 60
    while not digests(servers, "leader1") and time.monotonic() < deadline:
        time.sleep(0.2)
    (leader,) = digests(servers, "leader1")
    assert not leader["Subject"].startswith("【补发】")
    assert d.stop() == 0
    with Session(engine) as s:
        (run,) = s.exec(select(DigestRun)).all()
    assert run.period == "2026-W47" and not run.late and run.trigger == "schedule"


def test_a_reply_to_the_digest_gets_a_pointer_and_changes_nothing(servers, seeded, engine, test_clock):
    settings, period = seeded
    test_clock.set(period.scheduled_at + timedelta(seconds=5))  # before office hours: no chaser goes out
    rt = daemon.Runtime.build(settings)
    rt.digest()
    rt.send_due()
    (sent,) = digests(servers, "leader1")
    reply = EmailMessage()
    reply["From"] = "王主席 <leader1@example.test>"
    reply["To"] = sent["From"].addresses[0].addr_spec
    reply["Subject"] = f"回复：{sent['Subject']}"
    reply["Message-ID"] = make_msgid(domain="qq.example")
    reply["In-Reply-To"] = sent["Message-ID"]
    reply["References"] = sent["Message-ID"]
    reply.set_content("通过\n\n------------------ 原始邮件 ------------------\n（周报内容）")
    servers.append("skxkpb", reply.as_bytes())
    with Session(engine) as s:
        decided_before = s.exec(select(func.count()).select_from(ReviewTask).where(ReviewTask.status == "decided")).one()
    daemon.run_once(rt)
    rt.close()
    answers = [m for m in (message_from_bytes(r, policy=policy.default) for r in servers.fetch_all("leader1"))
               if not m["Message-ID"].startswith("<mailbot.digest.")]  # not a digest, whichever week
    assert len(answers) == 1 and answers[0]["Subject"] == "这是周报，不能在这里审核"
    assert "回复每篇稿件各自的审核通知邮件" in answers[0].get_body(("plain",)).get_content()
    with Session(engine) as s:
        assert s.exec(select(func.count()).select_from(ReviewTask).where(ReviewTask.status == "decided")).one() == decided_before


def test_wrong_digest_config_is_reported_in_chinese(tmp_path):
    from conftest import PASSWORD_ENV, mailbot_main

    bad = tmp_path / "bad.yaml"
    bad.write_text("mailboxes:\n  - {name: x, host: 127.0.0.1, user: u, password_env: P, tls: plain}\n"
                   "departments: [{key: kepu, name: 科普部, prefix: KP}]\n"
                   "digest: {day: monday, time: '8点', mailbox: y, leaders: [nobody], departments: {xx: [a@b.c]}}\n",
                   "utf-8")
    proc = mailbot_main("check-config", "--config", bad, env={PASSWORD_ENV: "x", "P": "x"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    for key in ("digest.day", "digest.time"):
        assert key in proc.stderr
    proc_ok = bad.read_text("utf-8").replace("day: monday, time: '8点', ", "")
    bad.write_text(proc_ok, "utf-8")
    proc = mailbot_main("check-config", "--config", bad, env={"P": "x"})
    assert proc.returncode == 2
    for words in ("digest.mailbox：没有名为 y 的邮箱", "digest.leaders：nobody 既不是邮件地址",
                  "digest.departments.xx：没有键为 xx 的科室"):
        assert words in proc.stderr.replace("\n", "")


def test_check_config_says_when_and_to_whom_the_digest_goes(servers, make_settings, tmp_path):
    from conftest import PASSWORD_ENV, mailbot_main, write_config

    path = write_config(make_settings(servers, **EXTRA), tmp_path / "ok.yaml")
    proc = mailbot_main("check-config", "--config", path, env={PASSWORD_ENV: "secret"})
    assert proc.returncode == 0, proc.stderr
    assert "领导周报：每周一 08:00 发给 2 位（全局 1 位，科室 1 位）" in proc.stdout
    assert "报表活动 1 个：公众号关注情况统计" in proc.stdout


def test_a_chart_that_cannot_be_drawn_does_not_stop_the_digest(servers, seeded, engine, monkeypatch):
    settings, period = seeded

    def broken(content):
        raise RuntimeError("no usable font")

    monkeypatch.setattr(digest, "chart_png", broken)
    outcome = digesting.send_digest(engine, settings, period.scheduled_at + timedelta(seconds=3))
    assert outcome.status == "sent"
    rt = daemon.Runtime.build(settings)
    rt.send_due()
    rt.close()
    (leader,) = digests(servers, "leader1")
    assert "cid:" not in leader.get_body(("html",)).get_content()
    assert [p for p in leader.walk() if p.get_content_type() == "image/png"] == []
    assert [p.get_filename() for p in leader.iter_attachments()] == [f"周报明细-{period.key}.xlsx"]
