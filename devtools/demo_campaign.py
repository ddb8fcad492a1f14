"""The statistics-form part of `mailbot demo`: the 关注情况统计表 campaign of seed 000.

Units email the form as .docx, .xlsx and a GBK .csv (one with a mistake, later corrected by
a reply); the robot answers each; then the clock is moved (Runtime.chase(now) and
send_due(now), no sleeping) to the reminder days and past the deadline, so reminders reach
only the units without a valid form and the operator gets the missing list; finally the
tally workbook is written with collecting.export, as `mailbot export` does.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
from rich.console import Console
from rich.table import Table

from devtools import demo_forms
from mailbot.campaigns import workdays
from mailbot.runtime import daemon

KEY = "guanzhu"
TEMPLATE = "关注情况统计表"
NOTICE = "关于进一步推广应用临沂科协微信公众号的通知"
FORM_FILE = "临沂科协微信公众号关注情况统计表"
OFFSETS = [7, 3, 1]
# Mail server users the campaign needs beyond the review story's.
USERS = ("unit5", "unit6")
# Roster entries for the campaign: two units that will not answer, and the townships the
# county forms list (no address: they never write, but their rows count for their county).
UNITS = [
    {"name": "罗庄区科协", "aliases": ["罗庄科协"], "category": "县区科协", "parent": "罗庄区",
     "addresses": ["unit5@example.test"]},
    {"name": "临沂市科普作家协会", "aliases": ["市科普作协"], "category": "协会", "parent": "市直",
     "addresses": ["unit6@example.test"]},
    {"name": "沂水县许家湖镇科协", "category": "镇街科协", "parent": "沂水县"},
    {"name": "沂水县马站镇科协", "category": "镇街科协", "parent": "沂水县"},
    {"name": "兰山区银雀山街道科协", "category": "镇街科协", "parent": "兰山区"},
]
# Who is asked for the form: (unit, mailbox user). Order is the order of the tables.
AUDIENCE = [("沂水县科协", "unit1"), ("兰山区科协", "unit3"), ("罗庄区科协", "unit5"),
            ("临沂市农学会", "unit2"), ("临沂市科普作家协会", "unit6")]


def forms_folder() -> Path:
    """The shipped form templates (config/forms beside the package), else ./config/forms."""
    shipped = Path(__file__).resolve().parents[1] / "config" / "forms"
    return shipped if shipped.is_dir() else Path("config/forms")


def deadline_for(today: date) -> date:
    """12月20日 as in the notice; next year's once this year's reminders have begun, so the
    forms the units send 'now' are on time and no reminder is due on the real clock."""
    this_year = date(today.year, 12, 20)
    return this_year if today < this_year - timedelta(days=max(OFFSETS) + 1) else date(today.year + 1, 12, 20)


def settings_part(storage: Path, deadline: date) -> dict:
    """The campaign's configuration, as an office would write it in mailbot.yaml."""
    return {"forms_folder": str(forms_folder()), "campaigns": [{
        "key": KEY, "name": NOTICE, "template": TEMPLATE, "department": "diaoxuan",
        "reminder_offsets": OFFSETS, "attach_template": str(storage / "模板" / f"{FORM_FILE}.docx"),
        "audiences": [
            {"name": "县区科协", "categories": ["县区科协"], "deadline": deadline.isoformat()},
            {"name": "市级学会、协会", "categories": ["学会", "协会"], "deadline": deadline.isoformat()},
        ],
    }]}


@dataclass
class Outcome:
    """What the campaign part showed, for the caller (and the demo's test)."""

    replies: dict[str, list[str]] = field(default_factory=dict)  # unit -> subjects of the robot's answers
    reminded: list[list[str]] = field(default_factory=list)  # per reminder round: units whose inbox got one
    missing_list: str = ""  # the operator's mail after the deadline
    workbook: Path | None = None
    counts: dict = field(default_factory=dict)  # what export returned
    totals: list[list] = field(default_factory=list)  # the workbook's 汇总 sheet
    errors: list = field(default_factory=list)


# --- mail ----------------------------------------------------------------------------


def _form_mail(domain: str, user: str, unit: str, to: str, subject: str, text: str,
               attachment: tuple[str, bytes]) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"] = f"{unit} <{user}@{domain}>", f"{to}@{domain}"
    m["Subject"], m["Message-ID"] = subject, make_msgid(domain=f"{user}.example")
    m.set_content(text)
    name, data = attachment
    m.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return m


def first_forms(domain: str, year: int) -> list[tuple[str, EmailMessage]]:
    """(user, mail) of the first three returns: Word, Excel with a mistake, a GBK CSV sent
    to the wrong department's mailbox."""
    docx = demo_forms.docx_form("沂水县科协", f"{year}年12月8日", [
        ("沂水县科协", 86), ("沂水县许家湖镇科协", 132), ("沂水县马站镇科协", 97)])
    xlsx = demo_forms.xlsx_form("兰山区科协", f"{year}年12月9日", [("兰山区科协", 154), ("兰山区银雀山街道科协", "三百多")])
    csv = demo_forms.csv_form("临沂市农学会", f"{year}/12/10", [("临沂市农学会", "1,268")])
    return [
        ("unit1", _form_mail(domain, "unit1", "沂水县科协", "skxdxb", "沂水县科协报送关注情况统计表",
                             "您好，附件是我县的关注情况统计表，请查收。", (f"{FORM_FILE}（沂水县）.docx", docx))),
        ("unit3", _form_mail(domain, "unit3", "兰山区科协", "skxdxb", "兰山区关注情况统计表",
                             "统计表见附件。", ("关注情况统计表-兰山区.xlsx", xlsx))),
        ("unit2", _form_mail(domain, "unit2", "临沂市农学会", "skxxhb", "市农学会 微信公众号关注情况",
                             "各位老师好，报表已导出为 CSV，请查收。", ("关注情况.csv", csv))),
    ]


def corrected_form(domain: str, error_reply, year: int) -> EmailMessage:
    """兰山区科协 answers the robot's question with the corrected workbook (full-width digits)."""
    xlsx = demo_forms.xlsx_form("兰山区科协", f"{year}年12月15日", [("兰山区科协", 154), ("兰山区银雀山街道科协", "３２０")])
    m = _form_mail(domain, "unit3", "兰山区科协", "skxdxb", f"回复：{error_reply['Subject']}",
                   "已改正，请查收。", ("关注情况统计表-兰山区（修改）.xlsx", xlsx))
    m["In-Reply-To"] = m["References"] = error_reply["Message-ID"]
    return m


def _deliver(servers, user: str, mail: EmailMessage) -> None:
    rcpts = [a.addr_spec for a in mail["To"].addresses]
    asyncio.run(aiosmtplib.send(mail.as_bytes(), sender=servers.address(user), recipients=rcpts,
                                hostname=servers.host, port=servers.smtp_port, start_tls=False))


def _inbox(servers, user: str, needle: str) -> list:
    found = [message_from_bytes(raw, policy=policy.default) for raw in servers.fetch_all(user)]
    return [m for m in found if needle in m["Subject"]]


def _answers(servers, user: str) -> list:
    """The robot's answers to a unit's forms (not the reminders)."""
    return [m for m in _inbox(servers, user, "统计表》") if not m["Subject"].startswith("提醒")]


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content().strip()


# --- the story -----------------------------------------------------------------------

WEEKDAYS = "一二三四五六日"


def office_morning(day: date, settings) -> datetime:
    """10:00 on the first working day on or after `day`: when the office's robot would mail."""
    cal = workdays.office_calendar(settings)
    while not workdays.is_workday(day, calendar=cal)[0]:
        day += timedelta(days=1)
    return datetime.combine(day, time(10, 0), tzinfo=settings.tz)


def _when(at: datetime) -> str:
    return f"{at.year}年{at.month}月{at.day}日（周{WEEKDAYS[at.weekday()]}）{at:%H:%M}"


def run(servers, rt, console: Console, deadline: date) -> Outcome:
    """Play the campaign against the running servers and robot; return what happened."""
    out = Outcome()
    blank = rt.settings.campaign(KEY).attach_template
    blank.parent.mkdir(parents=True, exist_ok=True)
    blank.write_bytes(demo_forms.blank_docx())
    console.print("\n[bold]报表收集演示：《临沂科协微信公众号关注情况统计表》（附件2）[/bold]")
    console.print(f"通知要求各单位于 {deadline.year}年{deadline.month}月{deadline.day}日前 把统计表报送市科协调宣部"
                  f"（skxdxb）。应报单位 {len(AUDIENCE)} 个：{'、'.join(u for u, _ in AUDIENCE)}。")
    _first_returns(servers, rt, console, out, deadline.year)
    _remind(servers, rt, console, out, deadline, OFFSETS[0])
    _correction(servers, rt, console, out, deadline.year)
    _remind(servers, rt, console, out, deadline, OFFSETS[1])
    _after_deadline(servers, rt, console, out, deadline)
    _export(rt, console, out)
    _status(rt, console, out)
    return out


def _first_returns(servers, rt, console: Console, out: Outcome, year: int) -> None:
    mails = first_forms(servers.domain, year)
    for user, mail in mails:
        _deliver(servers, user, mail)
    out.errors += daemon.run_once(rt)
    table = Table(title="单位报来的统计表和机器人的答复")
    for col in ("单位", "发到", "附件", "机器人答复"):
        table.add_column(col, overflow="fold")
    for user, mail in mails:
        unit = mail["From"].addresses[0].display_name
        [attachment] = list(mail.iter_attachments())
        answers = [m["Subject"] for m in _answers(servers, user)]
        out.replies[unit] = answers
        table.add_row(unit, mail["To"].addresses[0].username, attachment.get_filename(),
                      answers[-1] if answers else "（无）")
    console.print(table)
    console.print("临沂市农学会把表发到了学会部邮箱：表是按内容认出来的，照样登记到调宣部的这次收集里。")
    wrong = _inbox(servers, "unit3", "需要修改")[-1]
    console.print(f"[bold]兰山区科协收到[/bold]：{wrong['Subject']}")
    console.print("    " + "\n    ".join(_text(wrong).splitlines()[:8]))


def _correction(servers, rt, console: Console, out: Outcome, year: int) -> None:
    wrong = _inbox(servers, "unit3", "需要修改")[-1]
    _deliver(servers, "unit3", corrected_form(servers.domain, wrong, year))
    out.errors += daemon.run_once(rt)
    answer = _answers(servers, "unit3")[-1]
    out.replies["兰山区科协"].append(answer["Subject"])
    console.print(f"• 兰山区科协直接回复那封邮件，附上改好的表（“３２０”是全角数字）。收到答复：{answer['Subject']}")
    console.print("    " + "\n    ".join(line for line in _text(answer).splitlines()[2:5] if line.strip()))


def _remind(servers, rt, console: Console, out: Outcome, deadline: date, offset: int) -> None:
    at = office_morning(deadline - timedelta(days=offset), rt.settings)
    queued = rt.chase(at)
    rt.send_due(at)
    seen = sum(out.reminded, [])
    got = [unit for unit, user in AUDIENCE if len(_inbox(servers, user, "提醒")) > seen.count(unit)]
    out.reminded.append(got)
    quiet = [unit for unit, _ in AUDIENCE if unit not in got]
    console.print(f"• 时钟拨到 {_when(at)}，离截止还有 {(deadline - at.date()).days} 天（{offset} 天提醒）："
                  f"提醒了 {'、'.join(got) or '（无）'}；{'、'.join(quiet) or '（无）'} 已报送有效报表，不打扰。")
    wrong = [unit for unit in got if out.replies.get(unit)]
    if wrong:
        console.print(f"  {'、'.join(wrong)}报来的表有误，还不算有效报表，所以也提醒。")
    if queued > len(got):
        console.print(f"  同一时刻机器人还发出了 {queued - len(got)} 封其他到期邮件（如等待已久的稿件审核催办）。")
    if len(out.reminded) == 1 and got:
        mail = _inbox(servers, dict(AUDIENCE)[got[0]], "提醒")[-1]
        files = [a.get_filename() for a in mail.iter_attachments()]
        console.print(f"  {got[0]}收到：{mail['Subject']}（附件：{'、'.join(files) or '无'}）")
        console.print("    " + "\n    ".join(line for line in _text(mail).splitlines()[2:4] if line.strip()))


def _after_deadline(servers, rt, console: Console, out: Outcome, deadline: date) -> None:
    at = office_morning(deadline, rt.settings)
    rt.chase(at)
    rt.send_due(at)
    mail = _inbox(servers, "skxdxb", "仍未报送")[-1]
    out.missing_list = _text(mail)
    console.print(f"• 时钟拨到 {_when(at)}，已过截止时间。调宣部邮箱收到：{mail['Subject']}")
    console.print("    " + "\n    ".join(line for line in out.missing_list.splitlines()[2:] if line.strip())[:400])


def _export(rt, console: Console, out: Outcome) -> None:
    from openpyxl import load_workbook

    from mailbot.campaigns import collecting
    from mailbot.forms import load_templates

    template = {t.name: t for t in load_templates(rt.settings.forms_folder)}[TEMPLATE]
    path = rt.settings.storage / f"{TEMPLATE}-汇总.xlsx"
    out.counts = collecting.export(rt.engine, rt.settings, KEY, template, path, office_morning(
        rt.settings.campaign(KEY).audiences[0].deadline, rt.settings))
    out.workbook = path
    out.totals = [list(r) for r in load_workbook(path, read_only=True)["汇总"].iter_rows(values_only=True)]
    console.print(f"• 导出汇总表（同 mailbot export {KEY} -o …）：{path}")
    console.print(f"  共 {out.counts['rows']} 行数据，{out.counts['units']} 个单位已报，"
                  f"{out.counts['missing']} 个单位未报；工作表：全部数据、汇总、未报单位。")
    blank = next(i for i, r in enumerate(out.totals) if not any(v is not None for v in r))
    for title, rows in (("汇总：按单位", out.totals[:blank]), ("汇总：按县区（上级）", out.totals[blank + 1:])):
        table = Table(title=title)
        for col in rows[0]:
            table.add_column(str(col), justify="left" if col in ("单位", "县区（上级）") else "right")
        for row in rows[1:]:
            table.add_row(*[str(v) for v in row])
        console.print(table)


def _status(rt, console: Console, out: Outcome) -> None:
    from sqlmodel import Session, select

    from mailbot.store import FormReturn

    with Session(rt.engine) as session:
        returns = session.exec(select(FormReturn).where(FormReturn.campaign == KEY).order_by(FormReturn.id)).all()
    table = Table(title=f"mailbot 报表收集情况：{TEMPLATE}")
    for col in ("单位", "报送（格式、次数）", "结果", "收到提醒"):
        table.add_column(col)
    reminders = sum(out.reminded, [])
    for unit, _ in AUDIENCE:
        mine = [r for r in returns if r.unit == unit]
        sent = "、".join(f"第{r.version}次 {r.format}" for r in mine) or "—"
        result = ("有效" if mine[-1].valid else "有误，待改正") if mine else "[red]未报送[/red]"
        table.add_row(unit, sent, result, f"{reminders.count(unit)} 次")
    console.print(table)
