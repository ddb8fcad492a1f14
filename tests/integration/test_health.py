"""`mailbot health` against the real mail servers and database: healthy after a run and a
scheduler heartbeat; a mailbox not read for too long, an old outbox backlog, a full disk
(threshold from the config) and an unreachable SMTP server each give one line and exit 1."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from conftest import mailbot_main, move_clock, write_config
from sqlmodel import Session

from mailbot import outbox
from mailbot.config import load_holidays
from mailbot.runtime import daemon, health, scheduler

pytestmark = pytest.mark.integration



NOTICE_2027 = """year: 2027
source: 测试用的 2027 年节假日通知
holidays:
  - {name: 元旦, start: 2027-01-01}
"""


def calendar(tmp_path, next_year: bool = True) -> dict:
    """A holidays folder with this year's notice, and next year's unless told otherwise."""
    folder = tmp_path / "holidays"
    folder.mkdir(exist_ok=True)
    (folder / "2026.yaml").write_text(open("config/holidays/2026.yaml", encoding="utf-8").read(), "utf-8")
    if next_year:
        (folder / "2027.yaml").write_text(NOTICE_2027, "utf-8")
    years, problems = load_holidays(folder)
    assert problems == []
    return {"holidays_folder": str(folder), "years": years}


def healthy_runtime(servers, make_settings, next_year: bool = True, **over):
    """A runtime whose mailboxes were read and whose scheduler left its heartbeat."""
    tmp = make_settings(servers).storage.parent
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxkpb", "skxxhb"),
                                            calendar=calendar(tmp, next_year), **over))
    assert daemon.run_once(rt) == []
    beat = scheduler.Heartbeat(rt)
    for spec in scheduler.specs(rt):
        beat.beat(spec)
    return rt


def queue_mail(rt, now, count: int) -> None:
    with Session(rt.engine) as session:
        for i in range(count):
            outbox.enqueue(session, outbox.Outgoing(
                kind="receipt", mailbox="skxkpb", from_name="科普部", from_address="skxkpb@example.test",
                to_name="", to_address=f"unit{i}@example.test", subject="回执", text="正文", html=None,
                message_id=f"<health.{i}@example.test>", date=now), rt.settings.outbox, now)
        session.commit()


def test_healthy_after_a_run(servers, make_settings, tmp_path, test_clock):
    rt = healthy_runtime(servers, make_settings)
    assert health.check(rt.settings, rt.engine, test_clock.now()) == []
    config = write_config(rt.settings, tmp_path / "mailbot.yaml")
    result = mailbot_main("health", "--config", config)
    assert (result.returncode, result.stdout.strip()) == (0, "一切正常。"), result.stderr
    data = json.loads(mailbot_main("health", "--json", "--config", config).stdout)
    assert data["healthy"] is True and data["problems"] == []


def test_stale_mailbox_and_stopped_scheduler(servers, make_settings, tmp_path, monkeypatch, test_clock):
    rt = healthy_runtime(servers, make_settings)
    later = test_clock.now() + timedelta(minutes=20)
    problems = health.check(rt.settings, rt.engine, later)
    assert sorted((p.check, p.subject) for p in problems) == [
        ("mailbox", "skxkpb"), ("mailbox", "skxxhb"), ("scheduler", "heartbeat")]
    assert "邮箱 skxkpb 已经 20 分钟没有成功连接" in problems[0].message
    move_clock(monkeypatch, later)
    result = mailbot_main("health", "--config", write_config(rt.settings, tmp_path / "mailbot.yaml"))
    assert result.returncode == 1
    assert len(result.stdout.strip().splitlines()) == 3  # one line per problem


def test_old_outbox_backlog(servers, make_settings, test_clock):
    rt = healthy_runtime(servers, make_settings, health={"outbox_max_pending": 3, "outbox_max_age_minutes": 30})
    now = test_clock.now()
    queue_mail(rt, now - timedelta(minutes=45), 4)
    problems = health.check(rt.settings, rt.engine, now, smtp=False)
    assert [(p.check, p.subject) for p in problems] == [("outbox", "backlog"), ("outbox", "age")]
    assert problems[0].message == "待发邮件积压 4 封（上限 3 封）"
    assert "最早的待发邮件已等了 45 分钟" in problems[1].message
    rt.send_due(now)  # the relay takes them: the backlog is gone
    assert health.check(rt.settings, rt.engine, now, smtp=False) == []


def test_disk_threshold_from_config(servers, make_settings, test_clock):
    rt = healthy_runtime(servers, make_settings, health={"min_free_mb": 10 ** 9})  # a petabyte
    problems = health.check(rt.settings, rt.engine, test_clock.now(), smtp=False)
    assert [p.check for p in problems] == ["disk"]
    assert "所在磁盘只剩" in problems[0].message and "下限 1000000000 MB" in problems[0].message


def test_smtp_and_database_down(servers, make_settings, tmp_path, test_clock):
    rt = healthy_runtime(servers, make_settings)
    servers.stop()
    problems = health.check(rt.settings, rt.engine, test_clock.now())
    assert [p.check for p in problems] == ["smtp"] and "连接失败：拒绝连接" in problems[0].message
    gone = rt.settings.model_copy(update={"database_url": f"sqlite:///{tmp_path}/no/such/dir/x.db"})
    from mailbot.store import make_engine

    problems = health.check(gone, make_engine(gone.db_url), test_clock.now(), smtp=False)
    assert [p.check for p in problems] == ["database"] and "无法连接数据库" in problems[0].message


def test_calendar_without_next_years_notice(servers, make_settings, test_clock):
    rt = healthy_runtime(servers, make_settings, next_year=False)
    problems = health.check(rt.settings, rt.engine, test_clock.now(), smtp=False)
    assert [(p.check, p.subject) for p in problems] == [("calendar", "2027")]
    assert "2027年的节假日安排尚未录入" in problems[0].message


def test_a_broken_config_is_unhealthy_not_a_crash(tmp_path):
    config = tmp_path / "mailbot.yaml"
    config.write_text("storage: x\nmailboxes: []\n", "utf-8")
    result = mailbot_main("health", "--json", "--config", config)
    data = json.loads(result.stdout)
    assert result.returncode == 1 and data["healthy"] is False  # exit 2 is reserved by container health checks
    assert data["problems"][0]["check"] == "config" and "mailboxes" in data["problems"][0]["message"]
