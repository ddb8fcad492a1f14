"""The operator's everyday questions: `mailbot status`, `mailbot list`, `mailbot digest`.

Readable tables by default (colours when the terminal has them), one JSON object with
--json. Times are shown in the office's time zone; JSON times are ISO 8601 with offset.
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import datetime
from pathlib import Path

import typer
from rich.table import Table

from mailbot import clock
from mailbot.models import aware as _aware
from mailbot.runtime.clikit import ConfigOpt, JsonOpt, database, err, out
from mailbot.runtime.clikit import settings as load_settings

ops = typer.Typer()

STATUS_WORDS = {"待审": ("received", "reviewing"), "审核中": ("reviewing",), "已登记": ("received",),
                "已通过": ("approved",), "通过": ("approved",), "已退回": ("returned",), "退回": ("returned",),
                "received": ("received",), "reviewing": ("reviewing",), "approved": ("approved",),
                "returned": ("returned",)}
STATUS_NAMES = {"received": "已登记", "reviewing": "审核中", "approved": "已通过", "returned": "已退回"}


def _local(value: datetime | None, tz, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return _aware(value).astimezone(tz).strftime(fmt) if value else "—"


def _iso(value: datetime | None, tz) -> str | None:
    return _aware(value).astimezone(tz).isoformat(timespec="seconds") if value else None


def _ago(value: datetime | None, now: datetime) -> str:
    if value is None:
        return "从未"
    minutes = int((now - _aware(value)).total_seconds() // 60)
    if minutes < 1:
        return "刚刚"
    if minutes < 60:
        return f"{minutes} 分钟前"
    if minutes < 48 * 60:
        return f"{minutes // 60} 小时前"
    return f"{minutes // 1440} 天前"


def _dump(data: dict) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")


# --- status -----------------------------------------------------------------------------


@ops.command()
def status(as_json: bool = JsonOpt, config: Path | None = ConfigOpt) -> None:
    """机器人现在的情况：各邮箱最近联系、队列、发送失败、下次定时任务、上期周报、节假日是否已录入。"""
    from sqlmodel import Session, select

    from mailbot import digest, held, outbox
    from mailbot.digest import stats
    from mailbot.runtime import scheduler
    from mailbot.store import DigestRun

    settings = load_settings(config)
    engine, now, tz = database(settings), clock.now(), settings.tz
    with Session(engine) as session:
        data = stats.status(session, settings, now)
        data["held_replies"] = len(held.held(session))
        data["sending"] = outbox.sending_state(session)
        last = session.exec(select(DigestRun).order_by(DigestRun.id.desc())).first()
    data["jobs"] = scheduler.upcoming(engine)
    data["next_digest_at"] = digest.next_run(now, settings.digest, tz) if settings.digest.enabled else None
    data["last_digest"] = None if last is None else {"period": last.period, "sent_at": last.created_at,
                                                     "late": last.late, "recipients": last.recipients}
    if as_json:
        _dump(_status_json(data, tz))
    else:
        _status_tables(data, now, tz)


def _status_json(data: dict, tz) -> dict:
    """Times as ISO 8601 in the office's zone."""
    last = data["last_digest"]
    return {**data,
            "mailboxes": [dict(m, last_contact_at=_iso(m["last_contact_at"], tz)) for m in data["mailboxes"]],
            "failures": [dict(f, created_at=_iso(f["created_at"], tz)) for f in data["failures"]],
            "needs_person": [dict(n, received_at=_iso(n["received_at"], tz)) for n in data["needs_person"]],
            "capped": [dict(c, at=_iso(c["at"], tz)) for c in data["capped"]],
            "jobs": [dict(j, next_run_at=_iso(j["next_run_at"], tz), last_run_at=_iso(j["last_run_at"], tz))
                     for j in data["jobs"]],
            "next_digest_at": _iso(data["next_digest_at"], tz),
            "sending": dict(data["sending"], failing_since=_iso(data["sending"]["failing_since"], tz)),
            "last_digest": None if last is None else dict(last, sent_at=_iso(last["sent_at"], tz))}


def _status_tables(data: dict, now: datetime, tz) -> None:
    boxes = Table(title="邮箱")
    for col in ("邮箱", "地址", "最近联系", "最近错误"):
        boxes.add_column(col, overflow="fold")
    for m in data["mailboxes"]:
        boxes.add_row(m["name"], m["address"], _ago(m["last_contact_at"], now),
                      f"[red]{m['last_error']}[/red]" if m["last_error"] else "")
    out.print(boxes)
    ob = data["outbox"]
    queues = Table(title="队列", show_header=False)
    queues.add_row("待解析的来信", str(data["inbound"].get("stored", 0)))
    queues.add_row("已隔离的来信", _warn(data["inbound"].get("quarantined", 0)))
    queues.add_row("待发邮件（现在该发）", f"{ob.get('pending', 0)}（{data['outbox_due']}）")
    queues.add_row("发送失败 / 不确定是否已发出", f"{_warn(ob.get('failed', 0))} / {_warn(ob.get('uncertain', 0))}")
    sending = data["sending"]
    if not sending["ok"]:
        queues.add_row("发信出错", f"[red]{sending['failing']} 封自 {_local(sending['failing_since'], tz)} 起发送失败，"
                                   f"正在重试：{sending['last_error']}[/red]")
    queues.add_row("等待审核", str(data["open_reviews"]))
    queues.add_row("待管理员确认的回复", _warn(data["held_replies"]))
    queues.add_row("需要人工处理的来信", _warn(data["needs_person_total"]))
    queues.add_row("24 小时内因发送上限未发出的邮件", _warn(data["capped_total"]))
    out.print(queues)
    if data["needs_person"]:
        waiting = Table(title="需要人工处理的来信（mailbot list --needs-person 查看全部）")
        for col in ("编号", "收到", "发件人", "主题", "原因"):
            waiting.add_column(col, overflow="fold")
        for n in data["needs_person"]:
            waiting.add_row(str(n["inbound_id"]), _local(n["received_at"], tz), n["sender"] or "", n["subject"] or "",
                            n["reason"] or "")
        out.print(waiting)
    if data["capped"]:
        capped = Table(title="因每日发送上限未发出的邮件（24 小时内）")
        for col in ("时间", "说明"):
            capped.add_column(col, overflow="fold")
        for c in data["capped"]:
            capped.add_row(_local(c["at"], tz), c["detail"] or "")
        out.print(capped)
    if data["failures"]:
        fails = Table(title="最近发送失败的邮件")
        for col in ("时间", "类别", "收件人", "原因"):
            fails.add_column(col, overflow="fold")
        for f in data["failures"]:
            fails.add_row(_local(f["created_at"], tz), f["kind"], f["to"], f["error"] or f["status"])
        out.print(fails)
    table = Table(title="定时任务")
    for col in ("任务", "上次运行", "下次运行"):
        table.add_column(col)
    for j in data["jobs"]:
        last = _local(j["last_run_at"], tz, "%Y-%m-%d %H:%M:%S") if j["last_run_at"] else "尚未运行"
        if j["last_error"]:
            last += f"（出错：{j['last_error']}）"
        table.add_row(j["name"], last, _local(j["next_run_at"], tz, "%Y-%m-%d %H:%M:%S"))
    if not data["jobs"]:
        table.add_row("（守护进程还没有在这个数据库上运行过）", "", "")
        if data["next_digest_at"]:
            table.add_row("领导周报（按配置）", "", _local(data["next_digest_at"], tz))
    out.print(table)
    last = data["last_digest"]
    if last is not None:
        out.print(f"上期周报：{last['period']}，{_local(last['sent_at'], tz)} 发给 {last['recipients']} 人"
                  + ("（补发）" if last["late"] else ""))
    for gap in data["calendar_gaps"]:  # the next 90 days reach a year without a holiday calendar
        out.print(f"[yellow]注意[/yellow]：{gap['message']}")


def _warn(count: int) -> str:
    return f"[red]{count}[/red]" if count else "0"


# --- list -------------------------------------------------------------------------------


@ops.command("list")
def list_(state: str | None = typer.Option(None, "--status", "-s", help="待审 / 审核中 / 已登记 / 已通过 / 已退回"),
          dept: str | None = typer.Option(None, "--dept", "-d", help="科室名称、键或编号前缀，例如 kp"),
          unit: str | None = typer.Option(None, "--unit", "-u", help="单位名称（包含即可）"),
          since: str | None = typer.Option(None, "--since", help="只看这一天以后收到的，例如 2026-11-01"),
          limit: int = typer.Option(50, "--limit", "-n", help="最多显示多少篇"),
          needs_person: bool = typer.Option(False, "--needs-person", help="列出需要人工处理的来信（不是稿件）"),
          as_json: bool = JsonOpt, config: Path | None = ConfigOpt) -> None:
    """按状态、科室、单位列出稿件；待审的最久的在前，并显示在等谁。"""
    from sqlmodel import Session, func, select

    from mailbot.store import ReviewTask, Submission

    if limit < 1:
        err.print(f"--limit 应为正整数（收到 {limit}）")
        raise typer.Exit(2)
    settings = load_settings(config)
    if needs_person:
        _list_needs_person(settings, limit, as_json)
        return
    filters = _list_filters(settings, state, dept, unit, since)
    engine, now, tz = database(settings), clock.now(), settings.tz
    waiting = state is not None and set(STATUS_WORDS[state]) <= {"received", "reviewing"}
    order = Submission.created_at.asc() if waiting else Submission.created_at.desc()
    names = {d.key: d.name for d in settings.departments}
    people = {r.key: r.name for r in settings.reviewers}
    with Session(engine) as session:
        total = session.exec(select(func.count()).select_from(Submission).where(*filters)).one()
        subs = session.exec(select(Submission).where(*filters).order_by(order, Submission.id).limit(limit)).all()
        tasks = session.exec(select(ReviewTask).where(ReviewTask.status == "open",
                                                      ReviewTask.submission_id.in_([s.id for s in subs]))).all()
    open_by = {}
    for t in tasks:
        open_by.setdefault(t.submission_id, []).append(t)
    items = []
    for s in subs:
        mine = open_by.get(s.id, [])
        since_at = min((_aware(t.created_at) for t in mine), default=None)
        items.append({"tracking": s.tracking, "title": s.title, "unit": s.unit, "department": s.department,
                      "department_name": names.get(s.department, s.department), "status": s.status,
                      "status_name": STATUS_NAMES.get(s.status, s.status), "revision": s.revision,
                      "received_at": _iso(s.created_at, tz),
                      "waiting_on": [{"stage": t.stage_name, "reviewer": people.get(t.reviewer, t.reviewer)} for t in mine],
                      "waiting_days": (now - since_at).days if since_at else None})
    if as_json:
        _dump({"total": total, "shown": len(items), "items": items})
        return
    if not items:
        out.print("没有符合条件的稿件。")
        return
    table = Table(title=f"稿件（共 {total} 篇" + (f"，显示前 {len(items)} 篇）" if total > len(items) else "）"))
    for col in ("编号", "标题", "单位", "科室", "状态", "收到", "等谁", "已等"):
        table.add_column(col, overflow="fold", no_wrap=col in ("编号", "收到", "已等"))
    for i in items:
        who = "、".join(f"{w['stage']}：{w['reviewer']}" for w in i["waiting_on"])
        days = i["waiting_days"]
        table.add_row(i["tracking"], i["title"], i["unit"] or "（未识别）", i["department_name"], i["status_name"],
                      i["received_at"][:16].replace("T", " "), who,
                      "" if days is None else (f"[red]{days} 天[/red]" if days >= 3 else f"{days} 天"))
    out.print(table)


def _list_needs_person(settings, limit: int, as_json: bool) -> None:
    from sqlmodel import Session

    from mailbot.digest import stats

    engine, tz = database(settings), settings.tz
    with Session(engine) as session:
        total, items = stats.needs_person(session, limit)
    items = [dict(i, received_at=_iso(i["received_at"], tz)) for i in items]
    if as_json:
        _dump({"total": total, "shown": len(items), "items": items})
        return
    if not items:
        out.print("没有需要人工处理的来信。")
        return
    table = Table(title=f"需要人工处理的来信（共 {total} 封" + (f"，显示前 {len(items)} 封）" if total > len(items) else "）"))
    for col in ("编号", "收到", "邮箱", "发件人", "主题", "原因"):
        table.add_column(col, overflow="fold", no_wrap=col in ("编号", "收到"))
    for i in items:
        table.add_row(str(i["inbound_id"]), i["received_at"][:16].replace("T", " "), i["mailbox"], i["sender"] or "",
                      i["subject"] or "", i["reason"] or "")
    out.print(table)


def find_department(settings, text: str):
    """A department by its key, name or tracking prefix (any case), or None."""
    wanted = text.strip()
    return next((d for d in settings.departments
                 if wanted in (d.key, d.name) or wanted.upper() == d.prefix or wanted.lower() == d.key.lower()), None)


def _list_filters(settings, state, dept, unit, since) -> list:
    from datetime import date, time

    from mailbot.store import Submission

    filters = []
    if state is not None:
        if state not in STATUS_WORDS:
            err.print(f"不认识的状态 {state}；可用：待审、审核中、已登记、已通过、已退回")
            raise typer.Exit(2)
        filters.append(Submission.status.in_(STATUS_WORDS[state]))
    if dept is not None:
        found = find_department(settings, dept)
        if found is None:
            err.print(f"没有名为 {dept} 的科室；配置中有：{'、'.join(d.name for d in settings.departments)}")
            raise typer.Exit(2)
        filters.append(Submission.department == found.key)
    if unit:
        filters.append(Submission.unit.contains(unit.strip(), autoescape=True))  # % and _ are letters here
    if since:
        try:
            day = date.fromisoformat(since)
        except ValueError:
            err.print(f"日期 {since} 看不懂；请写成 2026-11-01 这样")
            raise typer.Exit(2)
        filters.append(Submission.created_at >= datetime.combine(day, time(0, 0), tzinfo=settings.tz))
    return filters


# --- digest -----------------------------------------------------------------------------


@ops.command()
def digest(preview: bool = typer.Option(False, "--preview", help="生成周报 HTML 文件（不发送）"),
           send: bool = typer.Option(False, "--send", help="现在发送周报（每期只发一次）"),
           week: str | None = typer.Option(None, "--week", "-w", help="哪一期，例如 2026-W47（默认最近一期）"),
           dept: str | None = typer.Option(None, "--dept", "-d", help="只看一个科室（预览用）"),
           output: Path | None = typer.Option(None, "-o", "--output", help="预览写入的 HTML 文件"),
           as_json: bool = JsonOpt, config: Path | None = ConfigOpt) -> None:
    """领导周报：--preview 生成 HTML 预览（附 Excel 明细），--send 立即发送本期周报。"""
    from mailbot import digest as digest_mod

    if preview == send:
        err.print("请指定 --preview（只生成文件）或 --send（发送）其中之一")
        raise typer.Exit(2)
    if output is not None and output.suffix.lower() == ".xlsx":  # the workbook would overwrite the page
        err.print(f"-o 请写周报 HTML 文件的名字（例如 周报.html），不是 {output.name}；Excel 明细会写在它旁边")
        raise typer.Exit(2)
    settings = load_settings(config)
    now = clock.now()
    try:
        period = (digest_mod.period_by_key(week, settings.digest, settings.tz) if week
                  else digest_mod.period_for(now, settings.digest, settings.tz))
    except ValueError:
        err.print(f"看不懂 {week}；请写成 2026-W47 这样（年份-W周数）")
        raise typer.Exit(2)
    engine = database(settings)
    if send:
        _send(engine, settings, period, now, as_json)
    else:
        _preview(engine, settings, period, now, dept, output, as_json)


def _preview(engine, settings, period, now, dept, output, as_json) -> None:
    from sqlmodel import Session

    from mailbot.digest import digesting

    key = None
    if dept is not None:
        found = find_department(settings, dept)
        if found is None:
            err.print(f"没有名为 {dept} 的科室")
            raise typer.Exit(2)
        key = found.key
    with err.status("正在生成周报…"), Session(engine) as session:
        r = digesting.render(session, settings, period, now, key, inline_chart=True)
    html = output or Path(f"周报-{period.key}" + (f"-{r.content['scope']}" if r.content["scope"] else "") + ".html")
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(r.html, encoding="utf-8")
    book = html.with_suffix(".xlsx")
    book.write_bytes(r.workbook)
    if as_json:
        _dump({"period": period.key, "subject": r.subject, "html": str(html), "workbook": str(book),
               "content": {k: v for k, v in r.content.items() if k not in ("dept_lines", "unit_lines")}})
        return
    c = r.content
    out.print(f"已生成 {html}（明细 {book}）")
    out.print(f"主题：{r.subject}")
    out.print("；".join(f"{card['label']} {card['value']}" for card in c["cards"]))


def _send(engine, settings, period, now, as_json) -> None:
    from mailbot import outbox
    from mailbot.digest import digesting

    with err.status("正在生成并发送周报…"):
        outcome = digesting.send_digest(engine, settings, now, trigger="operator", period=period)
        counts = asyncio.run(outbox.drain(engine, settings)) if outcome.status == "sent" else None
    if as_json:
        _dump({"status": outcome.status, "period": period.key, "recipients": outcome.recipients,
               "message": outcome.message, "sent": counts.sent if counts else 0,
               "failed": counts.failed if counts else 0, "retry": counts.retry if counts else 0})
    else:
        out.print(outcome.message)
        if counts is not None:
            out.print(f"已发出 {counts.sent} 封" + (f"，{counts.retry} 封稍后重试" if counts.retry else "")
                      + (f"，[red]{counts.failed} 封失败[/red]" if counts.failed else "") + "。")
    if outcome.status != "sent":
        raise typer.Exit(1)
