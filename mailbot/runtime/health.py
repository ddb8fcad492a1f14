"""Is the robot well? One check per thing an operator must know about: the database, each
mailbox's last successful contact, SMTP, the outbox backlog, the scheduler's heartbeat, the
storage's free space and the holiday calendar's coverage.

`check(settings, engine, now)` returns the problems (empty: healthy); `mailbot health`,
the container's HEALTHCHECK, systemd and the console's /healthz all use it. Thresholds come
from the `health:` section of the configuration. No check raises: a failure is a Problem.
"""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, text
from sqlmodel import Session, select

from mailbot.models import aware
from mailbot.store import MailboxState, OutboxMessage, SchedulerJob, schema


@dataclass(frozen=True)
class Problem:
    """One thing wrong: which check, the subject (a mailbox, a job …) and one Chinese line."""

    check: str  # database | mailbox | smtp | outbox | scheduler | disk | calendar
    subject: str
    message: str

    def to_json(self) -> dict:
        return asdict(self)


def check(settings, engine, now: datetime, smtp: bool = True) -> list[Problem]:
    """Every problem found now; the database's checks are skipped when it cannot be reached."""
    problems = check_database(engine)
    if not problems:
        for part in (check_mailboxes, check_outbox, check_scheduler):
            problems += _guarded(part, settings, engine, now)
    if smtp:
        problems += check_smtp(settings)
    problems += check_disk(settings)
    problems += check_calendar(settings, now)
    return problems


def _guarded(part, settings, engine, now) -> list[Problem]:
    try:
        return part(settings, engine, now)
    except Exception as exc:  # a table missing after a bad restore, a lost connection …
        return [Problem("database", part.__name__.removeprefix("check_"),
                        f"读取数据库时出错（{exc.__class__.__name__}），请检查数据库")]


def check_database(engine) -> list[Problem]:
    """Reachable, and its schema at the code's migration."""
    where = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        current, head = schema.current_revision(engine), schema.head_revision()
    except Exception as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return [Problem("database", where, f"无法连接数据库 {where}：{reason[0] if reason else exc.__class__.__name__}")]
    if current != head:
        return [Problem("database", where, f"数据库结构不是最新（当前 {current or '空'}，需要 {head}），"
                                            "请运行 mailbot db upgrade")]
    return []


def check_mailboxes(settings, engine, now: datetime) -> list[Problem]:
    """Each configured mailbox was read successfully within `mailbox_stale_minutes`."""
    limit = timedelta(minutes=settings.health.mailbox_stale_minutes)
    with Session(engine) as session:
        states = {s.mailbox: s for s in session.exec(select(MailboxState))}
    problems = []
    for box in settings.mailboxes:
        state = states.get(box.name)
        last = aware(state.last_contact_at) if state and state.last_contact_at else None
        error = f"；最近的错误：{state.last_error}" if state and state.last_error else ""
        if last is None:
            problems.append(Problem("mailbox", box.name, f"邮箱 {box.name} 还从未成功连接过{error}"))
        elif now - last > limit:
            problems.append(Problem("mailbox", box.name, f"邮箱 {box.name} 已经 {_minutes(now - last)}没有成功连接"
                                                         f"（上限 {settings.health.mailbox_stale_minutes:g} 分钟）{error}"))
    return problems


def check_outbox(settings, engine, now: datetime) -> list[Problem]:
    """Mail due but unsent: not too many, and none waiting too long."""
    cfg = settings.health
    with Session(engine) as session:
        count, oldest = session.exec(select(func.count(), func.min(OutboxMessage.created_at)).where(
            OutboxMessage.status.in_(("pending", "sending")), OutboxMessage.next_attempt_at <= now)).one()
    problems = []
    if count > cfg.outbox_max_pending:
        problems.append(Problem("outbox", "backlog", f"待发邮件积压 {count} 封（上限 {cfg.outbox_max_pending} 封）"))
    if oldest is not None and now - aware(oldest) > timedelta(minutes=cfg.outbox_max_age_minutes):
        problems.append(Problem("outbox", "age", f"最早的待发邮件已等了 {_minutes(now - aware(oldest))}"
                                                 f"（上限 {cfg.outbox_max_age_minutes:g} 分钟），请检查发信服务器"))
    return problems


def check_scheduler(settings, engine, now: datetime) -> list[Problem]:
    """The daemon's scheduler left a heartbeat within `heartbeat_stale_minutes`."""
    with Session(engine) as session:
        last = session.exec(select(func.max(SchedulerJob.updated_at))).one()
    if last is None:
        return [Problem("scheduler", "heartbeat", "守护进程（mailbot run）还没有在这个数据库上运行过")]
    age = now - aware(last)
    if age > timedelta(minutes=settings.health.heartbeat_stale_minutes):
        return [Problem("scheduler", "heartbeat", f"定时任务已经 {_minutes(age)}没有运行"
                                                  "，守护进程（mailbot run）可能已停止或卡住")]
    return []


def check_smtp(settings) -> list[Problem]:
    """Each SMTP server the mailboxes send through answers a greeting and EHLO (no login:
    a health check every minute must not look like a password attack to the provider)."""
    problems, seen = [], set()
    for box in settings.mailboxes:
        server = (box.smtp_server, box.smtp_port, box.smtp_tls)
        if server in seen:
            continue
        seen.add(server)
        try:
            _smtp_hello(*server, verify=box.verify_tls, timeout=settings.health.smtp_timeout)
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            problems.append(Problem("smtp", f"{server[0]}:{server[1]}", f"发信服务器 {server[0]}:{server[1]}"
                                                                        f"（邮箱 {box.name}）连接失败：{_reason(exc)}"))
    return problems


def _smtp_hello(host: str, port: int, tls: str, verify: bool, timeout: float) -> None:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if tls == "implicit":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    try:
        code, _ = client.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, "EHLO refused")
        if tls == "starttls":
            client.starttls(context=context)
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "超时"
    if isinstance(exc, ConnectionRefusedError):
        return "拒绝连接"
    if isinstance(exc, socket.gaierror):
        return "找不到服务器（域名解析失败）"
    return f"{exc.__class__.__name__}: {exc}"


def check_disk(settings) -> list[Problem]:
    """The storage's file system keeps at least `min_free_mb` free."""
    path = settings.storage
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        free = shutil.disk_usage(path).free // (1024 * 1024)
    except OSError as exc:
        return [Problem("disk", str(settings.storage), f"无法查看存储目录 {settings.storage} 的磁盘空间：{exc.strerror}")]
    if free < settings.health.min_free_mb:
        return [Problem("disk", str(settings.storage), f"存储目录 {settings.storage} 所在磁盘只剩 {free} MB"
                                                       f"（下限 {settings.health.min_free_mb} MB），请清理或扩容")]
    return []


def check_calendar(settings, now: datetime) -> list[Problem]:
    """Each year of the next 90 days has a holiday calendar."""
    from mailbot.campaigns import workdays

    return [Problem("calendar", str(gap["year"]), gap["message"]) for gap in workdays.calendar_gaps(settings, now)]


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 120:
        return f"{minutes} 分钟"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时"
    return f"{minutes // 1440} 天"
