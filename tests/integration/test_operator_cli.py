"""The operator's commands (status, list, show, digest, export) run as typed, against a
database seeded with a few hundred 稿件 (devtools.sample.seed), readable and with --json.

Every expected number is counted here with our own SQL on the seeded tables, never taken
from the code under test."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import subprocess
import time
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import PASSWORD_ENV, TEST_UNITS, mailbot_cmd, mailbot_main, write_config
from openpyxl import load_workbook
from sqlalchemy import delete, update
from sqlmodel import Session, func, select

from devtools import sample
from mailbot import digest as digest_mod
from mailbot.clock import now as utcnow
from mailbot.store import DigestRun, FormReturn, FormRow, MailboxState, OutboxMessage, ReviewTask, Submission

pytestmark = pytest.mark.integration
CHINA = ZoneInfo("Asia/Shanghai")
FORMS = Path(__file__).parents[2] / "config" / "forms"
COUNTIES = ["兰山区", "罗庄区", "河东区", "郯城县", "兰陵县", "费县"]
EXTRA_UNITS = [{"name": f"{c}科协", "category": "县区科协", "parent": c, "domains": [f"c{i}.example.test"]}
               for i, c in enumerate(COUNTIES)]
REVIEWERS = {"zhang": "张科长", "li": "李科长"}
WAITING = ("received", "reviewing")


def mailbot(*args, cwd=None) -> subprocess.CompletedProcess:
    """The command as typed, in this process (conftest.mailbot_main: the real main())."""
    return mailbot_main(*args, env={PASSWORD_ENV: "secret"}, cwd=cwd)


def as_json(proc) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def utc(value: datetime) -> datetime:
    return value.astimezone(timezone.utc)


def aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.exec(select(func.count()).select_from(model).where(*where)).one()


class World:
    def __init__(self, settings, cfg: Path, engine, now: datetime):
        self.settings, self.cfg, self.engine, self.now = settings, cfg, engine, now

    def run(self, *args, **kw):
        return mailbot(*args, "--config", self.cfg, **kw)


@pytest.fixture
def world(servers, make_settings, engine, tmp_path) -> World:
    """Three mailboxes, two reviewers, a campaign, the digest to leader1 and (科普部) reviewer1,
    and 300 seeded 稿件 over 12 weeks; four 科普部 ones are still only registered (已登记)."""
    today = utcnow().astimezone(CHINA).date()
    settings = make_settings(
        servers, units=TEST_UNITS + EXTRA_UNITS,
        reviewers=[{"key": "zhang", "name": REVIEWERS["zhang"], "addresses": [servers.address("reviewer1")]},
                   {"key": "li", "name": REVIEWERS["li"], "addresses": [servers.address("reviewer2")]}],
        digest={"leaders": [servers.address("leader1")], "departments": {"kepu": ["zhang"]}},
        forms_folder=str(FORMS),
        campaigns=[{"key": "guanzhu", "name": "关于进一步推广应用临沂科协微信公众号的通知", "template": "关注情况统计表",
                    "department": "diaoxuan",
                    "audiences": [{"name": "县区科协", "categories": ["县区科协"],
                                   "deadline": (today + timedelta(days=25)).isoformat()},
                                  {"name": "市级学会", "units": ["临沂市农学会"],
                                   "deadline": (today + timedelta(days=30)).isoformat(), "inclusive": True}]}])
    now = utcnow()
    sample.seed(engine, settings, now, submissions=300, weeks=12, failures=3)
    with Session(engine) as s:  # a few 稿件 registered but not yet sent to review
        ids = s.exec(select(Submission.id).where(Submission.department == "kepu", Submission.status == "reviewing")
                     .order_by(Submission.id).limit(4)).all()
        assert len(ids) == 4
        s.exec(delete(ReviewTask).where(ReviewTask.submission_id.in_(ids)))
        s.exec(update(Submission).where(Submission.id.in_(ids)).values(status="received"))
        s.commit()
    return World(settings, write_config(settings, tmp_path / "mailbot.yaml"), engine, now)


# --- list -------------------------------------------------------------------------------


def test_list_waiting_in_a_department_oldest_first_with_who_it_waits_on(world):
    engine = world.engine
    kepu_waiting = (Submission.department == "kepu", Submission.status.in_(WAITING))
    with Session(engine) as s:
        expected = s.exec(select(Submission.tracking).where(*kepu_waiting)
                          .order_by(Submission.created_at, Submission.id)).all()
        open_tasks = {t: (stage, reviewer, created) for t, stage, reviewer, created in s.exec(
            select(Submission.tracking, ReviewTask.stage_name, ReviewTask.reviewer, ReviewTask.created_at)
            .join(ReviewTask, ReviewTask.submission_id == Submission.id)
            .where(ReviewTask.status == "open", *kepu_waiting))}
        statuses = dict(s.exec(select(Submission.tracking, Submission.status).where(*kepu_waiting)).all())
    assert len(expected) > 10 and len(open_tasks) < len(expected)  # some wait on nobody yet (已登记)

    before = utcnow()
    data = as_json(world.run("list", "--status", "待审", "--dept", "科普部", "--limit", "1000", "--json"))
    after = utcnow()
    assert data["total"] == count(engine, Submission, *kepu_waiting) == len(expected)
    assert data["shown"] == len(data["items"]) == len(expected)
    assert [i["tracking"] for i in data["items"]] == expected  # oldest first
    received = [datetime.fromisoformat(i["received_at"]) for i in data["items"]]
    assert received == sorted(received) and all(r.utcoffset() == timedelta(hours=8) for r in received)
    for item in data["items"]:
        assert item["department"] == "kepu" and item["department_name"] == "科普部"
        assert item["status"] == statuses[item["tracking"]]
        assert item["status_name"] == {"received": "已登记", "reviewing": "审核中"}[item["status"]]
        task = open_tasks.get(item["tracking"])
        if task is None:
            assert item["waiting_on"] == [] and item["waiting_days"] is None
            continue
        stage, reviewer, created = task
        assert item["waiting_on"] == [{"stage": stage, "reviewer": REVIEWERS[reviewer]}]
        assert (before - aware(created)).days <= item["waiting_days"] <= (after - aware(created)).days

    # the same department by key and by tracking prefix; --limit keeps the total
    for spelling in ("kepu", "KP", "kp"):
        again = as_json(world.run("list", "-s", "待审", "-d", spelling, "--json"))
        assert again["total"] == len(expected) and [i["tracking"] for i in again["items"]] == expected[:50]
    limited = as_json(world.run("list", "--status", "待审", "--dept", "科普部", "--limit", "5", "--json"))
    assert limited["total"] == len(expected) and limited["shown"] == 5
    assert [i["tracking"] for i in limited["items"]] == expected[:5]

    # the readable table says how many there are and shows the waiting ones
    proc = world.run("list", "--status", "待审", "--dept", "科普部", "--limit", "3")
    assert proc.returncode == 0, proc.stderr
    assert f"共 {len(expected)} 篇" in proc.stdout and "显示前 3 篇" in proc.stdout
    assert expected[0] in proc.stdout and expected[3] not in proc.stdout


def test_list_each_status_word_unit_and_since(world):
    engine = world.engine
    words = (("审核中", ("reviewing",)), ("已登记", ("received",)), ("已通过", ("approved",)), ("已退回", ("returned",)),
             ("待审", WAITING))
    for word, statuses in words:
        data = as_json(world.run("list", "--status", word, "--limit", "1000", "--json"))
        assert data["total"] == count(engine, Submission, Submission.status.in_(statuses)) > 0, word
        assert {i["status"] for i in data["items"]} <= set(statuses)
        if word in ("已通过", "已退回"):  # decided: the newest first
            got = [datetime.fromisoformat(i["received_at"]) for i in data["items"]]
            assert got == sorted(got, reverse=True)

    everything = as_json(world.run("list", "--json"))
    assert everything["total"] == count(engine, Submission) == 300 and everything["shown"] == 50
    with Session(engine) as s:
        newest = s.exec(select(Submission.tracking).order_by(Submission.created_at.desc(), Submission.id)
                        .limit(50)).all()
    assert [i["tracking"] for i in everything["items"]] == newest

    data = as_json(world.run("list", "--unit", "农学会", "--status", "已通过", "--limit", "1000", "--json"))
    assert data["total"] == count(engine, Submission, Submission.unit == "临沂市农学会",
                                  Submission.status == "approved") > 0
    assert {i["unit"] for i in data["items"]} == {"临沂市农学会"}
    for literal in ("%", "_"):  # letters in a unit's name, not SQL wildcards
        data = as_json(world.run("list", "--unit", literal, "--json"))
        assert data["total"] == count(engine, Submission, Submission.unit.contains(literal, autoescape=True)) == 0

    # --since is a day in the office's time zone: 00:00 Beijing time, 16:00 UTC the day before.
    # Take a day on which a 稿件 arrived before 08:00 Beijing time, so the boundary matters.
    with Session(engine) as s:
        times = s.exec(select(Submission.created_at).order_by(Submission.created_at)).all()
    early = [aware(t).astimezone(CHINA) for t in times if aware(t).astimezone(CHINA).hour < 8]
    day = next(t.date() for t in early if t < aware(times[-1]) - timedelta(days=14))
    start = datetime(day.year, day.month, day.day, tzinfo=CHINA)
    expected = count(engine, Submission, Submission.created_at >= utc(start))
    data = as_json(world.run("list", "--since", day.isoformat(), "--limit", "1000", "--json"))
    assert data["total"] == expected
    assert min(datetime.fromisoformat(i["received_at"]) for i in data["items"]).date() == day


def test_bad_filters_and_arguments_are_refused_in_chinese(world):
    cases = [(("list", "--status", "待定", "--json"), "不认识的状态 待定"),
             (("list", "--dept", "财务部", "--json"), "没有名为 财务部 的科室；配置中有：科普部、学会部、调宣部"),
             (("list", "--since", "11月1日", "--json"), "日期 11月1日 看不懂"),
             (("list", "--since", "2026-13-01", "--json"), "看不懂"),
             (("digest", "--preview", "--week", "47"), "看不懂 47"), (("digest", "--preview", "--week", "2026-W60"), "看不懂"),
             (("digest", "--preview", "--dept", "财务部"), "没有名为 财务部 的科室"),
             (("digest",), "--preview"), (("digest", "--preview", "--send"), "其中之一"),
             (("digest", "--preview", "-o", "周报.xlsx"), "例如 周报.html"),
             (("list", "--limit", "0"), "--limit 应为正整数（收到 0）")]
    for args, needle in cases:
        proc = world.run(*args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert needle in proc.stderr and proc.stdout == "", (args, proc.stderr)


# --- status -----------------------------------------------------------------------------


def test_status_before_and_after_the_daemon_ran(world, tmp_path):
    engine, settings = world.engine, world.settings
    with Session(engine) as s:
        by_status = dict(s.exec(select(Submission.status, func.count()).group_by(Submission.status)).all())
    data = as_json(world.run("status", "--json"))
    assert [(m["name"], m["address"], m["last_contact_at"]) for m in data["mailboxes"]] == [
        (b.name, b.email, None) for b in settings.mailboxes]
    assert data["outbox"].get("failed", 0) == count(engine, OutboxMessage, OutboxMessage.status == "failed") == 3
    assert data["open_reviews"] == count(engine, ReviewTask, ReviewTask.status == "open") > 0
    assert data["submissions"] == by_status
    assert len(data["failures"]) == 3 and {f["error"] for f in data["failures"]} == {"550 mailbox unavailable"}
    assert data["held_replies"] == 0 and data["last_digest"] is None
    assert data["jobs"] == []  # the daemon never ran on this database
    next_digest = datetime.fromisoformat(data["next_digest_at"]).astimezone(CHINA)
    assert (next_digest.weekday(), next_digest.strftime("%H:%M")) == (0, "08:00")  # Monday 08:00 by default
    assert utcnow() < next_digest <= utcnow() + timedelta(days=7)

    proc = world.run("status")
    assert proc.returncode == 0, proc.stderr
    for needle in ("邮箱", "skxkpb", "从未", "定时任务", "守护进程还没有在这个数据库上运行过", "领导周报", "550 mailbox unavailable"):
        assert needle in proc.stdout, needle

    log = run_daemon_until(world.cfg, tmp_path / "daemon.log", ": connected", len(settings.mailboxes))
    assert "Traceback" not in log and "mailbot stopped" in log

    data = as_json(world.run("status", "--json"))
    with Session(engine) as s:
        contact = {b.mailbox: b.last_contact_at for b in s.exec(select(MailboxState))}
        run = s.exec(select(DigestRun).order_by(DigestRun.id.desc())).first()
    for m in data["mailboxes"]:
        assert contact[m["name"]] is not None
        assert datetime.fromisoformat(m["last_contact_at"]) == aware(contact[m["name"]]).replace(microsecond=0)
    jobs = {j["id"]: j for j in data["jobs"]}
    assert set(jobs) == {"mailbox-poll", "outbox-retry", "reminders", "weekly-digest", "leases"}
    assert jobs["weekly-digest"]["name"] == "领导周报"
    now = utcnow()
    for job in ("weekly-digest", "reminders"):
        assert datetime.fromisoformat(jobs[job]["next_run_at"]) > now, job
    assert jobs["weekly-digest"]["next_run_at"] == data["next_digest_at"]  # the scheduler agrees with the config
    assert data["outbox"].get("failed", 0) == count(engine, OutboxMessage, OutboxMessage.status == "failed")
    assert data["open_reviews"] == count(engine, ReviewTask, ReviewTask.status == "open")
    if run is None:
        assert data["last_digest"] is None
    else:  # the daemon caught up on last week's digest at start
        assert data["last_digest"]["period"] == run.period and data["last_digest"]["recipients"] == run.recipients

    proc = world.run("status")
    assert proc.returncode == 0 and "守护进程还没有" not in proc.stdout and "轮询邮箱" in proc.stdout


def run_daemon_until(cfg: Path, log_path: Path, needle: str, times: int, timeout: float = 30) -> str:
    """`mailbot run` in its own process until `needle` was logged `times` times, then SIGTERM."""
    env = {**os.environ, PASSWORD_ENV: "secret"}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([*mailbot_cmd(), "run", "--config", str(cfg)], stdout=log, stderr=subprocess.STDOUT,
                                env=env)
        try:
            deadline = time.monotonic() + timeout
            while log_path.read_text(errors="replace").count(needle) < times:
                assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0, log_path.read_text(errors="replace")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return log_path.read_text(errors="replace")


# --- show -------------------------------------------------------------------------------


def test_show_a_seeded_submission(world):
    with Session(world.engine) as s:
        sub = s.exec(select(Submission).where(Submission.status == "returned").order_by(Submission.id)).first()
        tasks = s.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id)).all()
    data = as_json(world.run("show", sub.tracking.lower(), "--json"))
    assert data["submission"]["tracking"] == sub.tracking
    assert data["submission"]["status"] == "returned" and data["submission"]["title"] == sub.title
    assert data["submission"]["unit"] == sub.unit and data["submission"]["department"] == sub.department
    assert [(r["stage"], r["reviewer"], r["decision"], r["reason"]) for r in data["reviews"]] == [
        (t.stage_name, t.reviewer, t.decision, t.reason) for t in tasks]
    proc = world.run("show", sub.tracking)
    assert proc.returncode == 0 and sub.tracking in proc.stdout and "已退回" in proc.stdout
    proc = world.run("show", "KP-1999-00001-1")
    assert proc.returncode == 1 and "没有编号为" in proc.stderr


# --- digest -----------------------------------------------------------------------------


def expected_digest(engine, period, department: str | None = None) -> dict:
    """The digest's key figures for a period, counted on the tables."""
    starts, ends = utc(period.starts_at), utc(period.ends_at)
    scope = [Submission.department == department] if department else []
    with Session(engine) as s:
        new = s.exec(select(Submission.tracking).where(Submission.created_at >= starts, Submission.created_at < ends,
                                                       *scope)).all()
        prev = count(engine, Submission, Submission.created_at >= starts - (ends - starts),
                     Submission.created_at < starts, *scope)
        by_dept = dict(s.exec(select(Submission.department, func.count()).where(
            Submission.created_at >= starts, Submission.created_at < ends, *scope).group_by(Submission.department)).all())
        decided = dict(s.exec(select(ReviewTask.decision, func.count())
                              .join(Submission, Submission.id == ReviewTask.submission_id)
                              .where(ReviewTask.status == "decided", ReviewTask.decided_at >= starts,
                                     ReviewTask.decided_at < ends, *scope).group_by(ReviewTask.decision)).all())
        waiting = s.exec(select(func.count()).select_from(ReviewTask)
                         .join(Submission, Submission.id == ReviewTask.submission_id)
                         .where(ReviewTask.status == "open", ReviewTask.created_at < ends, *scope)).one()
    failures = count(engine, OutboxMessage, OutboxMessage.status.in_(("failed", "uncertain")),
                     OutboxMessage.created_at >= starts, OutboxMessage.created_at < ends)
    return dict(new=len(new), trackings=sorted(new), prev=prev, by_dept=by_dept, approve=decided.get("approve", 0),
                ret=decided.get("return", 0), waiting=waiting, failures=failures)


def cards(html: str) -> dict[str, int]:
    """The figures at the top of the digest: label → number."""
    found = re.findall(r'<div style="font-size:12px;color:#555;">([^<]+)</div>\s*<div class="figure"[^>]*>(\d+)</div>',
                       html)
    return {label: int(value) for label, value in found}


def new_sheet(book) -> list[tuple]:
    rows = list(book["本周新稿件"].iter_rows(values_only=True))
    assert rows[0][0] == "编号"
    return rows[1:]


def _county_without_a_return(engine) -> str:
    with Session(engine) as s:
        done = set(s.exec(select(FormReturn.unit).where(FormReturn.campaign == "guanzhu")).all())
    return next(f"{c}科协" for c in COUNTIES if f"{c}科协" not in done)


def campaign_expected(engine, settings, period) -> dict[str, tuple[int, int]]:
    """Per audience: (units asked, units with a valid return by the end of the period). A
    digest is a picture of its week: returns received after the period (say, on the Sunday
    night a preview of last week's digest is made) belong to the next digest."""
    with Session(engine) as s:
        done = set(s.exec(select(FormReturn.unit).where(FormReturn.campaign == "guanzhu", FormReturn.valid,
                                                        FormReturn.received_at < period.ends_at)).all())
    counties = [u.name for u in settings.units if u.category == "县区科协"]
    return {"县区科协": (len(counties), len([u for u in counties if u in done])),
            "市级学会": (1, int("临沂市农学会" in done))}


def test_digest_preview_writes_html_and_workbook_with_the_database_numbers(world, tmp_path):
    engine, settings = world.engine, world.settings
    period = digest_mod.period_for(utcnow(), settings.digest, settings.tz)
    want = expected_digest(engine, period)
    assert want["new"] > 5 and want["approve"] > 0 and want["waiting"] > 0
    # A county sends its form after the period ended (now is always past its end): it belongs to
    # the next digest, not this one.
    late_unit = _county_without_a_return(engine)
    with Session(engine) as s:
        s.add(FormReturn(campaign="guanzhu", unit=late_unit, sender="late@example.test", version=1, inbound_id=1,
                         filename="关注情况统计表.xlsx", format="xlsx", valid=True, stamped=False, on_time=True,
                         result_json="{}", received_at=utcnow() - timedelta(minutes=1)))
        s.commit()
    assert utcnow() - timedelta(minutes=1) >= period.ends_at

    html = tmp_path / "preview" / "周报.html"  # a folder not made yet
    data = as_json(world.run("digest", "--preview", "-o", html, "--json"))
    assert data["period"] == period.key and data["html"] == str(html)
    assert data["workbook"] == str(html.with_suffix(".xlsx"))
    c = data["content"]
    assert c["new_total"] == want["new"] and c["prev_total"] == want["prev"]
    assert {d["name"]: d["new"] for d in c["departments"]} == {
        d.name: want["by_dept"].get(d.key, 0) for d in settings.departments}
    assert c["waiting_total"] == want["waiting"] and c["failures_total"] == want["failures"]
    assert {card["label"]: card["value"] for card in c["cards"]} == {
        "本周新稿件": want["new"], "通过": want["approve"], "退回": want["ret"], "等待审核": want["waiting"],
        "发送失败": want["failures"]}
    progress = {a["name"]: (a["units"], a["valid"]) for a in c["campaigns"][0]["audiences"]}
    assert progress == campaign_expected(engine, settings, period)

    page = html.read_text("utf-8")
    assert cards(page) == {"本周新稿件": want["new"], "通过": want["approve"], "退回": want["ret"],
                           "等待审核": want["waiting"], "发送失败": want["failures"]}
    assert period.key in page and "data:image/png;base64," in page  # the chart inside the file
    assert f"等待中的稿件（共 {want['waiting']} 篇" in page
    book = load_workbook(html.with_suffix(".xlsx"))
    rows = new_sheet(book)
    assert len(rows) == want["new"] and sorted(r[0] for r in rows) == want["trackings"]

    # one department, an earlier week, readable output, the default file name in the current directory
    earlier = digest_mod.period_by_key((period.first_day - timedelta(days=7)).strftime("%G-W%V"),
                                       settings.digest, settings.tz)
    assert earlier.ends_at == period.starts_at
    want = expected_digest(engine, earlier, "kepu")
    proc = world.run("digest", "--preview", "--week", earlier.key, "--dept", "科普部", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    page_path = tmp_path / f"周报-{earlier.key}-科普部.html"
    assert f"已生成 {page_path.name}" in proc.stdout and f"本周新稿件 {want['new']}" in proc.stdout
    page = page_path.read_text("utf-8")
    assert cards(page) == {"本周新稿件": want["new"], "通过": want["approve"], "退回": want["ret"],
                           "等待审核": want["waiting"]}  # a department's digest has no outbox failures
    assert "科普部稿件与报表周报" in page and "学会部" not in page
    assert sorted(r[0] for r in new_sheet(load_workbook(page_path.with_suffix(".xlsx")))) == want["trackings"]
    assert count(engine, DigestRun) == 0  # a preview sends nothing and claims nothing
    assert count(engine, OutboxMessage, OutboxMessage.kind == "digest") == 0


def inbox(servers, user: str) -> list:
    return [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]


def wait_for_mail(servers, user: str, n: int, timeout: float = 10) -> list:
    deadline = time.monotonic() + timeout
    while True:
        found = inbox(servers, user)
        if len(found) >= n or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_digest_send_delivers_once_to_leader_and_department(world, servers):
    engine, settings = world.engine, world.settings
    period = digest_mod.period_for(utcnow(), settings.digest, settings.tz)
    whole, kepu = expected_digest(engine, period), expected_digest(engine, period, "kepu")

    data = as_json(world.run("digest", "--send", "--json"))
    assert data == {"status": "sent", "period": period.key, "recipients": 2, "message": data["message"],
                    "sent": 2, "failed": 0, "retry": 0}
    assert "共 2 位收件人" in data["message"]
    with Session(engine) as s:
        [run] = s.exec(select(DigestRun)).all()
    assert (run.period, run.recipients, run.trigger, run.late) == (period.key, 2, "operator", False)

    for user, want in (("leader1", whole), ("reviewer1", kepu)):
        [mail] = wait_for_mail(servers, user, 1)
        assert period.label in mail["Subject"] and mail["Auto-Submitted"] == "auto-generated"
        html = mail.get_body(("html",)).get_content()
        cid = re.search(r'src="cid:([^"]+)"', html).group(1)
        [png] = [p for p in mail.walk() if p.get_content_type() == "image/png"]
        assert png["Content-ID"].strip("<>") == cid and png.get_content().startswith(b"\x89PNG")
        assert mail.get_body(("plain",)) is not None
        [xlsx] = [p for p in mail.iter_attachments() if p.get_filename().endswith(".xlsx")]
        rows = new_sheet(load_workbook(io.BytesIO(xlsx.get_content())))
        assert sorted(r[0] for r in rows) == want["trackings"]
        figures = cards(html)
        assert figures["本周新稿件"] == want["new"] and figures["等待审核"] == want["waiting"]
        assert figures["通过"] == want["approve"] and figures["退回"] == want["ret"]
    assert "张科长：" in inbox(servers, "reviewer1")[0].get_body(("plain",)).get_content()
    assert inbox(servers, "reviewer2") == []

    proc = world.run("digest", "--send")
    assert proc.returncode == 1 and f"{period.key} 的周报已经发送过" in proc.stdout
    again = as_json_exit(world.run("digest", "--send", "--week", period.key, "--json"), 1)
    assert again["status"] == "already-sent" and again["sent"] == 0
    time.sleep(0.5)
    assert len(inbox(servers, "leader1")) == 1 and len(inbox(servers, "reviewer1")) == 1
    assert count(engine, OutboxMessage, OutboxMessage.kind == "digest") == 2
    assert count(engine, DigestRun) == 1

    status = as_json(world.run("status", "--json"))
    assert status["last_digest"]["period"] == period.key and status["last_digest"]["recipients"] == 2


def as_json_exit(proc, code: int) -> dict:
    assert proc.returncode == code, proc.stderr
    return json.loads(proc.stdout)


# --- export -----------------------------------------------------------------------------


def test_export_writes_the_campaign_tally(world, tmp_path):
    engine, settings = world.engine, world.settings
    with Session(engine) as s:
        rows = s.exec(select(func.count()).select_from(FormRow).join(FormReturn, FormReturn.id == FormRow.return_id)
                      .where(FormReturn.campaign == "guanzhu", FormReturn.valid)).one()
        units = set(s.exec(select(FormReturn.unit).where(FormReturn.campaign == "guanzhu", FormReturn.valid)).all())
    asked = [u.name for u in settings.units if u.category == "县区科协"] + ["临沂市农学会"]
    missing = sorted(u for u in asked if u not in units)
    assert rows > 0 and missing

    out = tmp_path / "tally.xlsx"
    proc = world.run("export", "guanzhu", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert f"{len(units)} 个单位的 {rows} 行数据，未报单位 {len(missing)} 个" in proc.stdout
    book = load_workbook(out)
    data = list(book["全部数据"].iter_rows(min_row=2, values_only=True))
    assert len(data) == rows and {r[0] for r in data} == units
    assert sorted(r[0] for r in book["未报单位"].iter_rows(min_row=2, values_only=True)) == missing
    data = as_json(world.run("export", "guanzhu", "-o", tmp_path / "again.xlsx", "--json"))
    assert (data["path"], data["rows"], data["units"], data["missing"]) == (
        str(tmp_path / "again.xlsx"), rows, len(units), len(missing))
    proc = world.run("export", "nosuch", "-o", out)
    assert proc.returncode == 2 and "没有名为 nosuch 的报表活动" in proc.stderr
