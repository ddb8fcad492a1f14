"""The operator's command line: run, check-config, parse, replay, show, forms, export, db, demo
(status, list and digest are in opscli.py; web and users in webcli.py).

Messages to people are Chinese; a failure prints what went wrong and what to do, and
exits non-zero, never with a traceback (set MAILBOT_DEBUG=1 to see one).
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mailbot import clock
from mailbot.runtime.clikit import ConfigOpt, database, err, out
from mailbot.runtime.clikit import config_path as _config_path
from mailbot.runtime.clikit import settings as _settings
from mailbot.runtime import webcli
from mailbot.runtime.opscli import ops

app = typer.Typer(add_completion=False, no_args_is_help=True, help="mailbot：科协稿件与报表邮件机器人")
db_app = typer.Typer(no_args_is_help=True, help="数据库结构（迁移）")
app.add_typer(db_app, name="db")
units_app = typer.Typer(no_args_is_help=True, help="单位名册")
app.add_typer(units_app, name="units")
review_app = typer.Typer(no_args_is_help=True, help="审核：待管理员确认的回复")
app.add_typer(review_app, name="review")
forms_app = typer.Typer(no_args_is_help=True, help="统计报表")
app.add_typer(forms_app, name="forms")
app.add_typer(ops)  # status, list, digest


def _logging(verbose: bool = True) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


@app.command()
def run(once: bool = typer.Option(False, "--once", help="处理完当前所有待办后退出（测试和 cron 用）"),
        log_format: str | None = typer.Option(None, "--log-format", help="日志格式：text 或 json（默认按配置 logging.format）"),
        config: Path | None = ConfigOpt) -> None:
    """运行机器人（守护进程）；--once 只运行一轮。"""
    from mailbot.runtime import daemon, logs

    if log_format not in (None, "text", "json"):
        err.print(f"--log-format 只能是 text 或 json，不能是 {log_format}")
        raise typer.Exit(2)
    settings = _settings(config)
    logs.setup(settings.logging, settings.timezone, fmt=log_format)
    rt = daemon.Runtime.build(settings)
    rt.config_path = _config_path(config)  # reloaded on SIGHUP or when a file changes
    if not once:
        daemon.run_forever(rt)
        return
    errors = daemon.run_once(rt)
    t = rt.totals
    out.print(f"本轮完成：取回 {t.fetched} 封，新存 {t.stored} 封，重复 {t.duplicates} 封，"
              f"解析 {t.parsed} 封，隔离 {t.quarantined} 封。")
    for exc in errors:
        err.print(f"[red]错误[/red]：{exc.message}")
    if errors:
        raise typer.Exit(2)
    if rt.sent.retry:  # mail still owed (the server was down or answered 4xx); refused mail shows in status
        err.print(f"[red]错误[/red]：本轮有 {rt.sent.retry} 封邮件未能发出，会在下次运行时重试；"
                  "请运行 mailbot status 查看原因")
        raise typer.Exit(3)


@app.command()
def health(as_json: bool = typer.Option(False, "--json", help="输出 JSON（UTF-8），供其他程序读取"),
           no_smtp: bool = typer.Option(False, "--no-smtp", help="不检查发信服务器"),
           config: Path | None = ConfigOpt) -> None:
    """检查机器人是否正常：数据库、各邮箱、发信服务器、待发邮件、定时任务、磁盘、节假日；有问题时退出码为 1。"""
    from mailbot.config import ConfigError
    from mailbot.runtime import health as health_mod
    from mailbot.store import make_engine

    now = clock.now()
    try:
        settings = _settings(config)
    except ConfigError as exc:  # unhealthy, not "cannot check": container health checks reserve exit 2
        problems = [health_mod.Problem("config", p.key, f"配置有问题：{p}")
                    for p in exc.problems]
        _report_health(problems, now, as_json)
        raise typer.Exit(1)
    engine = make_engine(settings.db_url)
    try:
        problems = health_mod.check(settings, engine, now, smtp=not no_smtp)
    finally:
        engine.dispose()
    _report_health(problems, now, as_json)
    if problems:
        raise typer.Exit(1)


def _report_health(problems, now, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"healthy": not problems, "checked_at": now.isoformat(timespec="seconds"),
                                     "problems": [p.to_json() for p in problems]}, ensure_ascii=False) + "\n")
    elif problems:
        for problem in problems:
            out.print(problem.message, markup=False)
    else:
        out.print("一切正常。")


@app.command()
def backup(folder: Path = typer.Argument(..., help="备份目录（新建或空目录）"),
           config: Path | None = ConfigOpt) -> None:
    """备份数据库、存储目录（原始邮件、附件）和配置文件，附 sha256 清单；机器人运行时也可以备份。"""
    from mailbot.runtime import backup as backup_mod
    from mailbot.store import make_engine

    settings = _settings(config)
    engine = make_engine(settings.db_url)
    try:
        summary = backup_mod.backup(settings, _config_path(config), engine, folder, clock.now())
    except backup_mod.BackupError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2)
    finally:
        engine.dispose()
    out.print(f"备份完成：{folder}（{summary.backend} 数据库，结构版本 {summary.revision}，"
              f"共 {summary.files} 个文件，{summary.bytes / 1048576:.1f} MB）", markup=False)


@app.command()
def restore(folder: Path = typer.Argument(..., help="mailbot backup 做的备份目录"),
            force: bool = typer.Option(False, "--force", help="目标数据库或存储目录已有内容时也覆盖"),
            config: Path | None = ConfigOpt) -> None:
    """从备份恢复数据库和存储目录（先核对 sha256）；恢复前请先停止机器人。配置文件在备份的 config/ 里，需手工放回。"""
    from mailbot.runtime import backup as backup_mod
    from mailbot.store import make_engine

    settings = _settings(config)
    engine = make_engine(settings.db_url)
    try:
        summary = backup_mod.restore(settings, engine, folder, force=force)
    except backup_mod.BackupError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2)
    finally:
        engine.dispose()
    out.print(f"恢复完成：数据库（备份时结构版本 {summary.revision}，已升级到最新）和存储目录 {settings.storage}"
              f"（{summary.files} 个文件）。配置文件的备份在 {folder / 'config'}。", markup=False)


@app.command("check-config")
def check_config(connect: bool = typer.Option(False, "--connect", help="再逐个登录每个邮箱的收信（IMAP）和发信（SMTP）服务器"),
                 config: Path | None = ConfigOpt) -> None:
    """检查配置文件，一次列出所有问题；--connect 再试着登录每个邮箱。"""
    from mailbot.config import warnings

    settings = _settings(config, check_secrets=True)
    if settings.campaigns:  # the form templates, read as the robot reads them at start
        from mailbot.forms import TemplateError, load_templates

        try:
            load_templates(settings.forms_folder)
        except TemplateError as exc:
            err.print(f"表单模板有 {len(exc.problems)} 处问题（{settings.forms_folder}）：")
            for problem in exc.problems:
                err.print(f"  - {problem}")
            raise typer.Exit(2) from None
    out.print(f"配置检查通过：{_config_path(config)}")
    out.print(f"  邮箱 {len(settings.mailboxes)} 个：" + "、".join(b.name for b in settings.mailboxes))
    out.print(f"  科室 {len(settings.departments)} 个：" + "、".join(d.name for d in settings.departments))
    out.print(f"  存储目录：{settings.storage}；数据库：{_redact(settings.db_url)}；时区：{settings.timezone}")
    if settings.campaigns:
        out.print(f"  报表活动 {len(settings.campaigns)} 个：" + "、".join(c.name for c in settings.campaigns))
    out.print("  领导周报：" + _digest_line(settings))
    for line in _calendar_lines(settings, clock.now()):
        out.print(line)
    for problem in warnings(settings, clock.now(), str(_config_path(config))):
        out.print(f"[yellow]注意[/yellow]：{problem}")
    if connect:
        _connect(settings)


def _connect(settings) -> None:
    from mailbot.runtime.connect import check_all

    out.print("连接检查：")
    checks = check_all(settings)
    for c in checks:
        mark = "[green]成功[/green]" if c.ok else "[red]失败[/red]"
        out.print(f"  {' '.join(x for x in (c.mailbox, c.service, c.where) if x)}：{mark} {c.message}")
    failed = [c for c in checks if not c.ok]
    if failed:
        err.print(f"有 {len(failed)} 项连接失败，机器人无法正常收发这些邮箱的邮件；请按上面的提示修改后再检查。")
        raise typer.Exit(2)
    out.print("全部连接成功。")


def _calendar_lines(settings, now) -> list[str]:
    """The holiday notices entered, and a warning for each year of the next 90 days without one."""
    from mailbot.campaigns import workdays

    cal = settings.calendar
    years = "、".join(str(y) for y in sorted(cal.years))
    folder = cal.holidays_folder or "config/holidays"
    lines = [f"  节假日：{folder} 中录入了 {years} 年的国务院通知，其余年份用 chinesecalendar 包的数据"
             if years else f"  节假日：{folder} 中没有录入通知，用 chinesecalendar 包的数据"]
    return lines + ["[yellow]注意[/yellow]：" + gap["message"] for gap in workdays.calendar_gaps(settings, now)]


def _digest_line(settings) -> str:
    from mailbot.digest.digesting import recipients

    cfg = settings.digest
    if not cfg.enabled:
        return "已关闭"
    from mailbot.config import WEEKDAYS

    days = dict(zip(WEEKDAYS, "一二三四五六日"))
    people = recipients(settings)
    if not people:
        return "未设收件人（digest.leaders / digest.departments），不会发送"
    leaders = sum(1 for p in people if p.department is None)
    return f"每周{days[cfg.day]} {cfg.time} 发给 {len(people)} 位（全局 {leaders} 位，科室 {len(people) - leaders} 位）"


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "（无法显示）"


@app.command()
def parse(file: Path = typer.Argument(..., help=".eml 文件"),
          as_json: bool = typer.Option(False, "--json", help="输出一个 JSON 对象（UTF-8）"),
          mailbox: str = typer.Option("", "--mailbox", "-m", help="当作收到这封邮件的邮箱（影响科室判断）"),
          config: Path | None = ConfigOpt) -> None:
    """读取一封邮件并显示机器人读到的内容和分类；不连接邮箱，也不写数据库。"""
    from mailbot.read.parse import UnreadableMessage
    from mailbot.read.parse import parse as parse_mail
    from mailbot.routing import Directory

    data = _read_file(file)
    try:
        mail = parse_mail(data)
    except UnreadableMessage as exc:
        err.print(f"无法读取：{file} 不是一封邮件（{exc}）")
        raise typer.Exit(3)
    summary = mail.to_json()
    path = _config_path(config)
    if config is not None or path.exists():  # classification needs the configured roster and rules
        from mailbot.forms import load_templates
        from mailbot.pipeline.parseworker import classify, make_job, reply_info

        settings = _settings(config)
        templates = load_templates(settings.forms_folder) if settings.campaigns else []
        job = make_job(settings, Directory.from_settings(settings), templates, mailbox, clock.CLOCK.today(settings.tz))
        route = classify(mail, job)
        summary["classification"] = route.to_json()
        summary["reply"] = reply_info(mail, route, [d.name for d in settings.departments])
    if as_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False, indent=2) + "\n")
        return
    _print_mail(mail, summary.get("classification"))


def _read_file(file: Path) -> bytes:
    try:
        return file.read_bytes()
    except FileNotFoundError:
        err.print(f"找不到文件：{file}")
        raise typer.Exit(2)
    except OSError as exc:
        err.print(f"无法读取文件 {file}：{exc.strerror}")
        raise typer.Exit(2)


def _print_mail(mail, classification: dict | None = None) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("主题", mail.subject or "（无）")
    table.add_row("发件人", f"{mail.from_.name} <{mail.from_.address}>")
    table.add_row("收件人", "、".join(a.address for a in mail.to) or "（无）")
    table.add_row("日期", mail.date.isoformat() if mail.date else "（无或无法识别）")
    table.add_row("Message-ID", mail.message_id or "（无，按内容哈希识别）")
    table.add_row("正文", (mail.text[:300] + ("…" if len(mail.text) > 300 else "")) or "（空）")
    table.add_row("署名单位", mail.unit_signature or "（未识别）")
    table.add_row("自动回复/退信", f"{'是' if mail.auto_reply else '否'} / {'是' if mail.bounce else '否'}")
    out.print(table)
    if mail.attachments:
        att = Table(title="附件")
        for col in ("文件名", "保存为", "大小", "实际类型", "转发邮件内"):
            att.add_column(col)
        for a in mail.attachments:
            att.add_row(a.filename or "（无名）", a.safe_name, f"{a.size:,}", a.content_type,
                        "是" if a.in_forwarded_message else "")
        out.print(att)
    for link in mail.large_attachment_links:
        out.print(f"超大附件：{link.name}（{link.size}，{link.expires} 到期）{link.url or ''}")
    for fwd in mail.forwarded_messages:
        out.print(f"转发的邮件：{fwd.subject}（{fwd.from_.address if fwd.from_ else '发件人未知'}）")
    for defect in mail.defects:
        out.print(f"[yellow]修复[/yellow]：{defect}")
    if classification:
        kinds = {"submission": "新稿件", "reply": "回复", "resubmission": "修改稿", "form": "报表",
                 "auto_reply": "自动回复", "bounce": "退信", "other": "其他"}
        out.print(f"分类：{kinds.get(classification['kind'], classification['kind'])}；"
                  f"单位：{classification['unit'] or '未知'}；科室：{classification['department'] or '—'}")
        out.print(f"理由：{classification['reason']}")


@app.command()
def replay(file: Path = typer.Argument(..., help=".eml 文件"),
           mailbox: str = typer.Option(..., "--mailbox", "-m", help="当作收到这封邮件的邮箱名"),
           config: Path | None = ConfigOpt) -> None:
    """把一封 .eml 当作刚收到的邮件走一遍流程（也用于修复后重新处理被隔离的邮件）。"""
    from mailbot import pipeline
    from mailbot.runtime import daemon

    settings = _settings(config)
    names = [b.name for b in settings.mailboxes]
    if mailbox not in names:
        err.print(f"没有名为 {mailbox} 的邮箱；配置中的邮箱有：{'、'.join(names)}")
        raise typer.Exit(2)
    data = _read_file(file)
    rt = daemon.Runtime.build(settings)
    row, outcome = pipeline.replay(rt.engine, rt.raws, data, mailbox, rt.processor)
    rt.send_due()
    words = {"parsed": "已存储并解析", "quarantined": "已存储，但无法处理，已隔离",
             "duplicate": "这封邮件以前已收到并处理过，未重复处理", "retried+parsed": "被隔离的邮件已重新处理成功",
             "retried+quarantined": "被隔离的邮件重新处理后仍然失败", "skipped": "正在由其他进程处理"}
    out.print(f"{words.get(outcome, outcome)}（编号 {row.id}，状态 {row.status}）")
    if row.reason:
        out.print(f"原因：{row.reason}")
    if row.status == "quarantined":
        raise typer.Exit(1)


@app.command()
def show(tracking: str = typer.Argument(..., help="稿件编号，例如 KP-2026-0042"),
         as_json: bool = typer.Option(False, "--json", help="输出 JSON"),
         config: Path | None = ConfigOpt) -> None:
    """显示一篇稿件的全部经过：登记、审核、决定、通知。"""
    from mailbot.reviewing import history
    from mailbot.runtime import daemon

    rt = daemon.Runtime.build(_settings(config))
    data = history.submission_history(rt.engine, rt.settings, tracking.strip().upper())
    if data is None:
        err.print(f"没有编号为 {tracking} 的稿件")
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2, default=str) + "\n")
        return
    sub = data["submission"]
    out.print(f"[bold]{sub['tracking']}[/bold]《{sub['title']}》 {sub['unit'] or '未知单位'} · {sub['department_name']} · "
              f"状态：{history.STATUS.get(sub['status'], sub['status'])} · 第{sub['revision']}版")
    out.print(f"分派理由：{sub['route_reason']}")
    table = Table(title="经过")
    for col in ("时间", "事件", "人", "说明"):
        table.add_column(col, overflow="fold")
    for item in data["history"]:
        table.add_row(item["at"], history.EVENTS.get(item["kind"], item["kind"]), item["actor"] or "", item["detail"] or "")
    out.print(table)
    mails = Table(title="发出的邮件")
    for col in ("时间", "类别", "收件人", "状态"):
        mails.add_column(col)
    for m in data["mail"]:
        mails.add_row(m["created_at"], m["kind"], m["to"], m["status"] + (f"（{m['error']}）" if m["error"] else ""))
    out.print(mails)


@forms_app.command("check")
def forms_check(file: Path = typer.Argument(..., help="报表文件（.docx .doc .xlsx .xls .wps .et .csv .pdf）"),
                template: str | None = typer.Option(None, "--template", "-t", help="只按这个模板读取"),
                as_json: bool = typer.Option(False, "--json", help="输出一个 JSON 对象（UTF-8）"),
                folder: Path | None = typer.Option(None, "--forms", help="表单模板目录（默认配置中的 forms_folder）"),
                config: Path | None = ConfigOpt) -> None:
    """显示机器人从一个报表文件读到的内容（与邮件附件走同一段代码）。"""
    from zoneinfo import ZoneInfo

    from mailbot.config import Settings
    from mailbot.forms import TemplateError, load_templates, read_form

    tz = ZoneInfo(Settings.model_fields["timezone"].default)
    if folder is None:
        path = _config_path(config)
        if config is not None or path.exists():
            settings = _settings(config)
            folder, tz = settings.forms_folder, settings.tz
        else:
            folder = Path("config/forms")
    try:
        templates = load_templates(folder)
    except TemplateError as exc:
        err.print(f"表单模板有问题：{exc}")
        raise typer.Exit(2)
    if template:
        templates = [t for t in templates if t.name == template]
        if not templates:
            err.print(f"没有名为 {template} 的表单模板（{folder}）")
            raise typer.Exit(2)
    result = read_form(_read_file(file), file.name, templates, today=clock.CLOCK.today(tz))
    if as_json:
        sys.stdout.write(result.to_json() + "\n")
        return
    out.print(f"模板：{result.template or '未识别'}（{result.form_type or '—'}）；格式：{result.format}；"
              f"数据 {len(result.items)} 行；问题 {len(result.errors)} 处")
    for key, value in result.header.items():
        out.print(f"  {key}：{value if value is not None else '（未填）'}")
    if result.items:
        table = Table()
        for col in result.columns:
            table.add_column(col)
        for row in result.rows[:50]:
            table.add_row(*[("" if row.get(c) is None else str(row.get(c))) for c in result.columns])
        out.print(table)
    for e in result.errors:
        out.print(f"[red]问题[/red]：{e.message}")
    for w in result.warnings:
        out.print(f"[yellow]注意[/yellow]：{w}")


@app.command()
def export(campaign: str = typer.Argument(..., help="活动（campaign）的 key"),
           output: Path = typer.Option(..., "-o", "--output", help="写入的 Excel 文件"),
           as_json: bool = typer.Option(False, "--json", help="输出 JSON（文件路径和行数、单位数、未报单位数）"),
           config: Path | None = ConfigOpt) -> None:
    """导出一个报表活动的汇总 Excel：全部数据（含来源）、按单位和县区的合计、未报单位。"""
    from mailbot.campaigns import collecting
    from mailbot.forms import load_templates
    from mailbot.runtime import daemon

    settings = _settings(config)
    keys = [c.key for c in settings.campaigns]
    if campaign not in keys:
        err.print(f"没有名为 {campaign} 的报表活动；配置中有：{'、'.join(keys) or '（无）'}")
        raise typer.Exit(2)
    template = {t.name: t for t in load_templates(settings.forms_folder)}.get(settings.campaign(campaign).template)
    if template is None:
        err.print(f"找不到活动使用的表单模板 {settings.campaign(campaign).template}（{settings.forms_folder}）")
        raise typer.Exit(2)
    rt = daemon.Runtime.build(settings)
    with err.status(f"正在导出 {campaign}……"):
        counts = collecting.export(rt.engine, settings, campaign, template, output, clock.now())
    if as_json:
        sys.stdout.write(json.dumps({"campaign": campaign, "path": str(output), **counts}, ensure_ascii=False) + "\n")
        return
    out.print(f"已导出 {output}：{counts['units']} 个单位的 {counts['rows']} 行数据，未报单位 {counts['missing']} 个。")
    if counts.get("duplicates"):
        out.print(f"  其中 {counts['duplicates']} 行与其他报表中的同一人重复（姓名和手机号相同），汇总只算一次，"
                  "见工作表“重复人员”。")


@review_app.command("held")
def review_held(as_json: bool = typer.Option(False, "--json", help="输出 JSON（UTF-8）"),
                config: Path | None = ConfigOpt) -> None:
    """列出等待管理员确认的邮件：发件地址未登记或验证失败的审核回复、非本单位发来的修改稿。"""
    from sqlmodel import Session

    from mailbot import held

    settings = _settings(config)
    with Session(database(settings)) as session:
        rows = held.held(session)
    if as_json:
        from mailbot.models import aware

        sys.stdout.write(json.dumps([dict(r, at=aware(r["at"]).astimezone(settings.tz).isoformat(timespec="seconds"))
                                     for r in rows], ensure_ascii=False, indent=2) + "\n")
        return
    if not rows:
        out.print("没有待确认的邮件。")
        return
    from mailbot.models import aware

    out.print(f"待管理员确认的邮件（{len(rows)} 封）：")
    for r in rows:  # a block each: addresses stay whole on a narrow terminal
        when = aware(r["at"]).astimezone(settings.tz).strftime("%Y-%m-%d %H:%M")
        out.print(f"\n│ {r['inbound_id']}  {r['what']}  {r['tracking'] or '（无稿件编号）'}  {when}")
        out.print(f"  发件人：{r['actor'] or '未知'}")
        out.print(f"  说明：{r['detail'] or ''}")
    out.print("核实后执行：mailbot review confirm 编号（照此执行）或 mailbot review reject 编号 --reason 原因（不予采用）")


def _settle(action, inbound_id: int, config: Path | None, *args) -> None:
    import asyncio

    from sqlmodel import Session

    from mailbot import outbox
    from mailbot.office import Office

    settings = _settings(config)
    engine = database(settings)  # the database and the office alone: no readers, no parse workers
    with Session(engine) as session:
        message = action(session, Office.load(settings).at(clock.now()), inbound_id, *args)
        session.commit()
    asyncio.run(outbox.drain(engine, settings, clock.now()))
    out.print(message)
    if not message.startswith(("已执行", "已拒绝")):
        raise typer.Exit(1)


@review_app.command("confirm")
def review_confirm(inbound_id: int = typer.Argument(..., help="mailbot review held 列出的编号"),
                   operator: str = typer.Option(os.environ.get("USER", "operator"), "--by", help="确认人"),
                   config: Path | None = ConfigOpt) -> None:
    """确认一封暂缓的邮件并照此执行（审核意见生效，或登记为修改稿）。"""
    from mailbot import held

    _settle(held.confirm, inbound_id, config, operator)


@review_app.command("reject")
def review_reject(inbound_id: int = typer.Argument(..., help="mailbot review held 列出的编号"),
                  reason: str = typer.Option("", "--reason", help="告知发件人的原因"),
                  operator: str = typer.Option(os.environ.get("USER", "operator"), "--by", help="处理人"),
                  config: Path | None = ConfigOpt) -> None:
    """不予采用一封暂缓的邮件：稿件不变，并礼貌告知发件人。"""
    from mailbot import held

    _settle(held.reject, inbound_id, config, operator, reason)


@units_app.command("import")
def units_import(file: Path = typer.Argument(..., help="Excel 名册（.xlsx）或 .csv"),
                 roster: Path | None = typer.Option(None, "--roster", help="写入的名册文件（默认配置中的 roster）"),
                 config: Path | None = ConfigOpt) -> None:
    """从办公室现有的 Excel 名册导入单位（按单位名称合并，已有的不会丢）。"""
    from mailbot.read import roster as roster_mod

    target = roster
    if target is None:
        target = _settings(config).roster
        if target is None:
            err.print("配置中没有 roster（单位名册文件）；请用 --roster 指定写入哪个文件")
            raise typer.Exit(2)
    if not file.exists():
        err.print(f"找不到文件：{file}")
        raise typer.Exit(2)
    try:
        result = roster_mod.read_workbook(file)
    except Exception as exc:  # not a workbook, encrypted, damaged
        err.print(f"无法读取 {file}：不是可读的 Excel/CSV 文件（{exc.__class__.__name__}）")
        raise typer.Exit(2)
    for problem in result.problems:
        err.print(f"[yellow]注意[/yellow]：{problem}")
    if not result.units:
        err.print("没有导入任何单位。")
        raise typer.Exit(1)
    units, added, updated = roster_mod.merge(roster_mod.load_units(target), result.units)
    roster_mod.write_roster(target, units)
    out.print(f"已导入 {file.name}：新增 {added} 个单位，更新 {updated} 个，名册共 {len(units)} 个单位（{target}）。")


RosterOpt = typer.Option(None, "--roster", help="单位名册文件（默认配置中的 roster）")
RELOAD_HINT = "运行中的机器人会在一分钟内自动读入新名册（向它发送 SIGHUP 可立即读入，例如 systemctl reload mailbot）。"


def _roster_file(roster: Path | None, config: Path | None) -> Path:
    if roster is not None:
        return roster
    target = _settings(config).roster
    if target is None:
        err.print("配置中没有 roster（单位名册文件）；请用 --roster 指定名册文件")
        raise typer.Exit(2)
    return target


def _roster_call(fn, *args, **kwargs):
    from mailbot.store.roster import BreaksConfig, RosterError

    try:
        return fn(*args, **kwargs)
    except BreaksConfig as exc:
        err.print(f"名册没有修改：配置中的报表活动用到了这个单位或类别，这样修改后机器人将无法读入配置（{exc.message}）。")
        raise typer.Exit(2) from None
    except RosterError as exc:
        err.print(exc.message)
        raise typer.Exit(2) from None


def _roster_check(roster: Path | None, config: Path | None):
    """With the configuration's own roster, refuse a change the configuration would fail on."""
    from mailbot.store.roster import config_check

    return config_check(_settings(config)) if roster is None else None


FIELD_NAMES = {"name": "名称", "category": "类别", "parent": "上级", "aliases": "简称", "addresses": "邮箱",
               "domains": "域名"}


@units_app.command("list")
def units_list(category: str | None = typer.Option(None, "--category", help="只列这一类别的单位"),
               as_json: bool = typer.Option(False, "--json", help="输出 JSON（UTF-8）"),
               roster: Path | None = RosterOpt, config: Path | None = ConfigOpt) -> None:
    """列出名册中的单位。"""
    from mailbot.store import roster as roster_mod

    target = _roster_file(roster, config)
    units = [u for u in _roster_call(roster_mod.list_units, target) if category in (None, u["category"])]
    if as_json:
        print(json.dumps(units, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"单位名册：{target}（{len(units)} 个）")
    for col in ("名称", "类别", "上级", "简称", "邮箱", "域名"):
        table.add_column(col, overflow="fold")
    for u in units:
        table.add_row(u["name"], u["category"], u["parent"] or "", "、".join(u["aliases"]),
                      "、".join(u["addresses"]), "、".join(u["domains"]))
    out.print(table)


@units_app.command("add")
def units_add(name: str = typer.Argument(..., help="单位全称"),
              category: str = typer.Option(..., "--category", help="类别，例如 县区科协、学会"),
              parent: str | None = typer.Option(None, "--parent", help="上级（所在县区），例如 沂水县"),
              alias: list[str] = typer.Option([], "--alias", help="简称（可写多次）"),
              address: list[str] = typer.Option([], "--address", help="报送邮箱（可写多次）"),
              domain: list[str] = typer.Option([], "--domain", help="单位自己的邮件域名（可写多次）"),
              roster: Path | None = RosterOpt, config: Path | None = ConfigOpt) -> None:
    """在名册末尾添加一个单位（文件中的注释保持不变）。"""
    from mailbot.store import roster as roster_mod

    target = _roster_file(roster, config)
    _roster_call(roster_mod.add_unit, target, name, category=category, parent=parent, aliases=alias,
                 addresses=address, domains=domain, check=_roster_check(roster, config))
    out.print(f"已添加单位 {name}（{target}）。{RELOAD_HINT}")


@units_app.command("edit")
def units_edit(name: str = typer.Argument(..., help="单位名称或简称"),
               rename: str | None = typer.Option(None, "--name", help="新的单位全称"),
               category: str | None = typer.Option(None, "--category", help="新的类别"),
               parent: str | None = typer.Option(None, "--parent", help="新的上级"),
               add_alias: list[str] = typer.Option([], "--add-alias", help="增加简称"),
               remove_alias: list[str] = typer.Option([], "--remove-alias", help="去掉简称"),
               add_address: list[str] = typer.Option([], "--add-address", help="增加邮箱"),
               remove_address: list[str] = typer.Option([], "--remove-address", help="去掉邮箱"),
               add_domain: list[str] = typer.Option([], "--add-domain", help="增加域名"),
               remove_domain: list[str] = typer.Option([], "--remove-domain", help="去掉域名"),
               roster: Path | None = RosterOpt, config: Path | None = ConfigOpt) -> None:
    """修改一个单位：名称、类别、上级，增减简称、邮箱、域名（注释保持不变）。"""
    from mailbot.store import roster as roster_mod

    target = _roster_file(roster, config)
    add = {k: v for k, v in (("aliases", add_alias), ("addresses", add_address), ("domains", add_domain)) if v}
    remove = {k: v for k, v in (("aliases", remove_alias), ("addresses", remove_address),
                                ("domains", remove_domain)) if v}
    change = _roster_call(roster_mod.edit_unit, target, name, rename=rename, category=category, parent=parent,
                          add=add, remove=remove, check=_roster_check(roster, config))
    if not change.fields:
        out.print(f"{change.unit} 没有变化。")
        return
    out.print(f"已修改单位 {change.unit}：{'、'.join(FIELD_NAMES[f] for f in change.fields)}。{RELOAD_HINT}")


@units_app.command("remove")
def units_remove(name: str = typer.Argument(..., help="单位名称或简称"),
                 roster: Path | None = RosterOpt, config: Path | None = ConfigOpt) -> None:
    """从名册中删除一个单位（它以前的邮件和报表仍保留在数据库中）。"""
    from mailbot.store import roster as roster_mod

    target = _roster_file(roster, config)
    change = _roster_call(roster_mod.remove_unit, target, name, check=_roster_check(roster, config))
    out.print(f"已从名册删除 {change.unit}（以前的稿件和报表仍保留）。{RELOAD_HINT}")


@db_app.command("upgrade")
def db_upgrade(config: Path | None = ConfigOpt) -> None:
    """把数据库结构升级到最新。"""
    from mailbot.store import make_engine, schema

    settings = _settings(config)
    settings.storage.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.db_url)
    before = schema.current_revision(engine)
    schema.upgrade(engine)
    out.print(f"数据库结构已是最新：{before or '空'} → {schema.head_revision()}")


@db_app.command("current")
def db_current(config: Path | None = ConfigOpt) -> None:
    """显示数据库结构的当前版本。"""
    from mailbot.store import make_engine, schema

    engine = make_engine(_settings(config).db_url)
    current, head = schema.current_revision(engine), schema.head_revision()
    out.print(f"当前 {current or '空'}，最新 {head}" + ("" if current == head else "（请运行 mailbot db upgrade）"))


@app.command()
def demo(keep: bool = typer.Option(False, "--keep", help="结束后保留演示数据目录"),
         storage: Path = typer.Option(Path("demo-var"), help="演示数据目录（每次重新创建）"),
         office: str = typer.Option("linyi", "--office", help="演示哪个单位的配置：linyi（默认）或 bijie")) -> None:
    """演示：启动本机邮件服务器，投递样例邮件，运行机器人一轮并显示结果。"""
    if office not in ("linyi", "bijie"):
        err.print(f"没有名为 {office} 的演示；可用：linyi、bijie")
        raise typer.Exit(2)
    try:  # the demo and its mail servers live in the checkout (devtools/), not in the installed package
        if office == "bijie":
            from devtools import demo_bijie as demo_mod
        else:
            from devtools import demo as demo_mod
    except ImportError:
        err.print("演示只能在源代码目录中运行：请在 mailbot 的代码目录下执行 bash scripts/demo.sh")
        raise typer.Exit(2)

    _logging(verbose=False)
    console = out if out.is_terminal else Console(highlight=False, width=140)
    demo_mod.run(storage, keep=keep, console=console)


app.command("web")(webcli.web)
app.add_typer(webcli.users_app, name="users")


def main() -> None:
    """Entry point: every known failure becomes one Chinese line and an exit code."""
    from sqlalchemy.exc import OperationalError

    from mailbot.config import ConfigError
    from mailbot.ingest import MailboxError
    from mailbot.store.schema import SchemaOutOfDate

    try:
        clock.CLOCK.load_env()
    except clock.ClockError as exc:
        err.print(f"环境变量 {exc} 不是一个时间，请写成 2026-12-20T09:00:00+08:00 的形式，或删去它")
        sys.exit(2)
    try:
        # Without standalone mode click returns an Exit's code instead of raising it.
        code = app(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        err.print(f"配置有 {len(exc.problems)} 处问题：")
        for problem in exc.problems:
            err.print(f"  - {problem}")
        sys.exit(2)
    except MailboxError as exc:
        err.print(exc.message)
        sys.exit(2)
    except SchemaOutOfDate as exc:
        err.print(str(exc))
        sys.exit(2)
    except OperationalError as exc:
        err.print(f"无法使用数据库：{str(exc.orig).strip().splitlines()[0] if exc.orig else exc}")
        _debug()
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:  # the last line of defence: a sentence, not a traceback
        # typer vendors click: recognise its usage errors by shape, not by import
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if type(exc).__name__ == "Abort":
            sys.exit(1)
        err.print(f"出现了意外错误（{exc.__class__.__name__}）。请把这条信息和日志发给维护人员。")
        _debug()
        sys.exit(1)


def _debug() -> None:
    if os.environ.get("MAILBOT_DEBUG"):
        import traceback

        traceback.print_exc()
