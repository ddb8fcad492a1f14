"""`mailbot demo --office bijie`: the second office, from its configuration alone.

config/bijie.example.yaml is loaded as an office would write it; only what a demo must change
is changed: the mailbox points at the private Dovecot/SMTP servers, the units' addresses at
their users there, and the two deadlines (2019-10-25 and 11-05 in the notice) move to dates
relative to today, 11 days apart. Then the 信息报送表 campaign plays: 市级单位 send their
forms (one without the stamped copy, sent later in answer), a county's 科协 sends its own form,
the county office sends its 县区汇总 listing people of many units (one person also on the
科协's own form), the clock is moved to the reminder days and past each deadline, and the
tally is exported: the person reported twice counts once, both sources shown.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
import yaml
from rich.console import Console
from rich.table import Table

from devtools.devservers import MailServers
from mailbot import clock, config
from mailbot.campaigns import workdays
from mailbot.runtime import daemon

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "config" / "bijie.example.yaml"
PASSWORD_ENV = "MAILBOT_DEMO_PASSWORD"
ROBOT = "bjkx"
OFFSETS = [5, 2, 1, -1]
# Roster unit → its user on the demo mail server (units without one never write).
USERS = {
    "毕节市科学技术局": "kjj", "毕节市教育局": "jyj", "毕节市农学会": "nxh", "毕节医学高等专科学校": "yz",
    "毕节市第一人民医院": "syy", "毕节市水务投资有限公司": "swtz", "毕节市科技馆": "kjg",
    "七星关区全民科学素质工作领导小组办公室": "qxgqkb", "大方县全民科学素质工作领导小组办公室": "dfxqkb",
    "七星关区科学技术协会": "qxgkx",
}
COLUMNS = ("序号", "单位", "姓名", "政治面貌", "职务", "职称", "微信号", "手机号", "备注")
TITLE = "毕节市科普宣传和信息管理员信息报送表"
KEY = "xinxiyuan-2019"
# The person both the county's 科协 and the county summary report.
TWICE = ("张伟", "13908570001")


@dataclass
class Outcome:
    replies: dict[str, list[str]] = field(default_factory=dict)  # unit -> subjects of the robot's answers
    reminded: list[list[str]] = field(default_factory=list)  # per round: units that got a reminder
    reminder_files: list[str] = field(default_factory=list)  # attachments of the first reminder
    missing_lists: list[str] = field(default_factory=list)
    workbook: Path | None = None
    counts: dict = field(default_factory=dict)
    sheets: dict[str, list[list]] = field(default_factory=dict)
    robot_mail: list[str] = field(default_factory=list)  # every mail the robot sent: headers and text
    errors: list = field(default_factory=list)


def deadlines(today: date, settings) -> tuple[date, date]:
    """市级单位 two weeks from today (a working day), 县区办 11 days later, as in the notice."""
    cal = workdays.office_calendar(settings)
    first = today + timedelta(days=14)
    while not workdays.is_workday(first, calendar=cal)[0]:
        first += timedelta(days=1)
    return first, first + timedelta(days=11)


def settings_for(servers: MailServers, storage: Path, today: date, database_url: str | None = None):
    """The example office pointed at the demo servers; written beside the data and loaded
    (and so checked) as `mailbot check-config` would."""
    base = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    example = config.load(EXAMPLE)
    roster = yaml.safe_load(Path(example.roster).read_text(encoding="utf-8"))["units"]
    for unit in roster:
        unit.pop("domains", None)
        unit["addresses"] = [servers.address(USERS[unit["name"]])] if unit["name"] in USERS else []
    first, second = deadlines(today, example)
    [campaign] = base["campaigns"]
    campaign["audiences"][0]["deadline"] = first.isoformat()
    campaign["audiences"][1]["deadline"] = second.isoformat()
    campaign["reminder_offsets"] = OFFSETS
    campaign["attach_template"] = str(example.campaigns[0].attach_template)
    [box] = base["mailboxes"]
    box.update(host=servers.host, port=servers.imap_port, tls="plain", user=ROBOT, password_env=PASSWORD_ENV,
               address=servers.address(ROBOT), smtp_host=servers.host, smtp_port=servers.smtp_port,
               smtp_tls="plain", smtp_auth=False)
    base.update(storage=str(storage), roster=str(storage / "units.yaml"), forms_folder=str(example.forms_folder),
                parse_workers=0)
    if database_url:
        base["database_url"] = database_url
    base.setdefault("calendar", {})["holidays_folder"] = str(example.calendar.holidays_folder or
                                                               ROOT / "config" / "holidays")
    storage.mkdir(parents=True, exist_ok=True)
    (storage / "units.yaml").write_text(yaml.safe_dump({"units": roster}, allow_unicode=True), encoding="utf-8")
    path = storage / "bijie.yaml"
    path.write_text(yaml.safe_dump(base, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return config.load(path)


# --- the files units send --------------------------------------------------------------

def docx_form(unit: str, when: str, people: list[tuple]) -> bytes:
    from docx import Document

    doc = Document()
    doc.add_paragraph("附件")
    doc.add_heading(TITLE, level=1)
    doc.add_paragraph(f"报送单位（盖章）：{unit}　　　　报送时间：{when}")
    table = doc.add_table(rows=1 + len(people), cols=len(COLUMNS))
    table.style = "Table Grid"
    for r, values in enumerate([COLUMNS, *[(str(i), *p) for i, p in enumerate(people, 1)]]):
        for c, value in enumerate(values):
            table.cell(r, c).text = str(value)
    buf = io.BytesIO()
    doc.save(buf)
    return buf.getvalue()


def xlsx_form(unit: str, when: str, people: list[tuple]) -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append([TITLE])
    sheet.append([f"报送单位：{unit}", None, None, None, None, None, f"报送时间：{when}"])
    sheet.append(list(COLUMNS))
    for i, person in enumerate(people, 1):
        sheet.append([i, *person])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def scan(kind: str = "PDF") -> bytes:
    """A scanner's page with a red seal: an image PDF (or a JPEG photo), no text."""
    from PIL import Image, ImageDraw

    page = Image.new("RGB", (600, 800), "white")
    draw = ImageDraw.Draw(page)
    for y in range(120, 520, 40):
        draw.line((60, y, 540, y), fill="black", width=2)
    draw.ellipse((360, 560, 520, 720), outline="red", width=8)
    buf = io.BytesIO()
    page.save(buf, format=kind)
    return buf.getvalue()


def _mail(servers, user: str, unit: str, subject: str, text: str, files: list[tuple[str, bytes, str]],
          answer=None) -> EmailMessage:
    m = EmailMessage()
    m["From"], m["To"] = f"{unit} <{servers.address(user)}>", servers.address(ROBOT)
    m["Subject"], m["Message-ID"] = subject, make_msgid(domain=f"{user}.example")
    if answer is not None:
        m["In-Reply-To"] = m["References"] = answer["Message-ID"]
    m.set_content(text)
    for name, data, mime in files:
        maintype, subtype = mime.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m


def _deliver(servers, user: str, mail: EmailMessage) -> None:
    asyncio.run(aiosmtplib.send(mail.as_bytes(), sender=servers.address(user), recipients=[servers.address(ROBOT)],
                                hostname=servers.host, port=servers.smtp_port, start_tls=False))


def _inbox(servers, user: str) -> list:
    return [message_from_bytes(raw, policy=policy.default) for raw in servers.fetch_all(user)]


def _text(msg) -> str:
    return msg.get_body(("plain",)).get_content().strip()


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def first_returns(servers, today: date) -> list[tuple[str, str, EmailMessage]]:
    """(user, unit, mail) of the returns that come in before any reminder."""
    when = f"{today.year}年{today.month}月{today.day}日"
    qxg_kx = [("七星关区科协", TWICE[0], "中共党员", "副主席", "", "zw_qxg", TWICE[1], ""),
              ("七星关区科协", "刘洋", "群众", "干事", "", "", "13908570002", "")]
    county = [("七星关区科协", TWICE[0], "党员", "副主席", "", "zw_qxg", "139 0857 0001", "区科协已另报"),
              ("七星关一中", "王芳", "团员", "教师", "中学一级", "wf_yz", "13908570003", ""),
              ("七星关区碧阳街道办事处", "赵磊", "群众", "宣传干事", "", "", "13908570004", "")]
    return [
        ("kjj", "毕节市科学技术局", _mail(servers, "kjj", "毕节市科学技术局", "市科技局报送科普宣传和信息管理员",
                                  "您好，附件是我局的信息报送表和盖章件，请查收。",
                                  [("信息报送表（市科技局）.docx", docx_form("毕节市科学技术局", when, [
                                      ("毕节市科学技术局", "陈静", "中共党员", "科员", "工程师", "cj_kjj", "13885700011", ""),
                                      ("毕节市科学技术局", "杨帆", "群众", "科员", "", "", "13885700012", "")]), DOCX),
                                   ("信息报送表（盖章）.pdf", scan(), "application/pdf")])),
        ("nxh", "毕节市农学会", _mail(servers, "nxh", "毕节市农学会", "市农学会 信息管理员名单", "名单见附件。",
                                [("信息报送表-农学会.xlsx", xlsx_form("毕节市农学会", when, [
                                    ("毕节市农学会", "周敏", "九三学社", "秘书长", "高级农艺师", "", "13885700021", "")]),
                                  XLSX)])),
        ("qxgkx", "七星关区科学技术协会", _mail(servers, "qxgkx", "七星关区科学技术协会", "七星关区科协信息报送表",
                                        "附件是我会的信息报送表（含盖章件），请查收。",
                                        [("七星关区科协信息报送表.docx", docx_form("七星关区科学技术协会", when, qxg_kx), DOCX),
                                         ("盖章页.jpg", scan("JPEG"), "image/jpeg")])),
        ("qxgqkb", "七星关区全民科学素质工作领导小组办公室",
         _mail(servers, "qxgqkb", "七星关区全科办", "七星关区县级科普宣传和信息管理员名册（汇总）",
               "各位领导：附件是我区汇总的县级科普宣传和信息管理员名册及盖章件。",
               [("七星关区汇总名册.xlsx", xlsx_form("七星关区全民科学素质工作领导小组办公室", when, county), XLSX),
                ("七星关区汇总名册（盖章）.pdf", scan(), "application/pdf")])),
    ]


# --- the story -----------------------------------------------------------------------------

WEEKDAYS = "一二三四五六日"


def office_morning(day: date, settings) -> datetime:
    cal = workdays.office_calendar(settings)
    while not workdays.is_workday(day, calendar=cal)[0]:
        day += timedelta(days=1)
    return datetime.combine(day, time(10, 0), tzinfo=settings.tz)


def _when(at: datetime) -> str:
    return f"{at.year}年{at.month}月{at.day}日（周{WEEKDAYS[at.weekday()]}）{at:%H:%M}"


def play(servers, rt, console: Console, today: date) -> Outcome:
    out = Outcome()
    settings = rt.settings
    [campaign] = settings.campaigns
    first, second = (a.deadline for a in campaign.audiences)
    console.print(f"\n[bold]毕节演示：《{campaign.name}》[/bold]（配置 config/bijie.example.yaml，一个 163 邮箱，无稿件审核）")
    console.print(f"市级单位 {first.month}月{first.day}日前、县区办 {second.month}月{second.day}日前报送《{TITLE}》，"
                  "并附盖章件（require_stamped）。")
    returns = first_returns(servers, today)
    for user, _, mail in returns:
        _deliver(servers, user, mail)
    out.errors += daemon.run_once(rt)
    table = Table(title="报来的信息报送表和机器人的答复")
    for col in ("单位", "附件", "机器人答复"):
        table.add_column(col, overflow="fold")
    for user, unit, mail in returns:
        answers = [m["Subject"] for m in _inbox(servers, user)]
        out.replies[unit] = answers
        table.add_row(unit, "、".join(a.get_filename() for a in mail.iter_attachments()), answers[-1] if answers else "（无）")
    console.print(table)

    ask = _inbox(servers, "nxh")[-1]  # the stamped copy is missing: 农学会 answers with a photo of it
    _deliver(servers, "nxh", _mail(servers, "nxh", "毕节市农学会", f"回复：{ask['Subject']}", "盖章件见附件。",
                                   [("盖章件.pdf", scan(), "application/pdf")], answer=ask))
    out.errors += daemon.run_once(rt)
    out.replies["毕节市农学会"] = [m["Subject"] for m in _inbox(servers, "nxh")]
    console.print(f"• 毕节市农学会回复补交盖章件，收到答复：{out.replies['毕节市农学会'][-1]}")

    for label, at in (("市级单位截止前 5 天", office_morning(first - timedelta(days=5), settings)),
                      ("市级单位截止后", office_morning(first + timedelta(days=1), settings)),
                      ("县区办截止前 5 天", office_morning(second - timedelta(days=5), settings)),
                      ("县区办截止后", office_morning(second + timedelta(days=1), settings))):
        before = {u: len(_inbox(servers, user)) for u, user in USERS.items()}
        robot_before = len(_inbox(servers, ROBOT))
        rt.chase(at)
        rt.send_due(at)
        got = [u for u, user in USERS.items() if len(_inbox(servers, user)) > before[u]]
        out.reminded.append(got)
        console.print(f"• 时钟拨到 {_when(at)}（{label}）：提醒了 {'、'.join(got) or '（无）'}")
        if got and not out.reminder_files:
            mail = _inbox(servers, USERS[got[0]])[-1]
            out.reminder_files = [a.get_filename() for a in mail.iter_attachments()]
            console.print(f"  {got[0]}收到：{mail['Subject']}（附件：{'、'.join(out.reminder_files)}）")
        for mail in _inbox(servers, ROBOT)[robot_before:]:
            if "仍未报送" in str(mail["Subject"]):
                out.missing_lists.append(_text(mail))
                console.print(f"  全科办邮箱收到：{mail['Subject']}")
    _export(rt, console, out, office_morning(second + timedelta(days=1), settings))
    for user in [ROBOT, *USERS.values()]:
        for mail in _inbox(servers, user):
            if "mailbot." in str(mail["Message-ID"]):
                parts = [_text(mail)] + [p.get_content() for p in mail.walk() if p.get_content_type() == "text/html"]
                out.robot_mail.append(f"From: {mail['From']}\nTo: {mail['To']}\nSubject: {mail['Subject']}\n\n"
                                      + "\n".join(parts))
    console.print(f"机器人共发出 {len(out.robot_mail)} 封邮件，署名均来自毕节的配置。")
    return out


def _export(rt, console: Console, out: Outcome, now: datetime) -> None:
    from openpyxl import load_workbook

    from mailbot.campaigns import collecting
    from mailbot.forms import load_templates

    [campaign] = rt.settings.campaigns
    template = {t.name: t for t in load_templates(rt.settings.forms_folder)}[campaign.template]
    path = rt.settings.storage / f"{TITLE}-汇总.xlsx"
    out.counts = collecting.export(rt.engine, rt.settings, campaign.key, template, path, now)
    out.workbook = path
    book = load_workbook(path, read_only=True)
    out.sheets = {s.title: [list(r) for r in s.iter_rows(values_only=True)] for s in book.worksheets}
    console.print(f"• 导出汇总表：{path.name}：{out.counts['rows']} 行，{out.counts['units']} 个单位已报，"
                  f"{out.counts['missing']} 个未报，重复 {out.counts.get('duplicates', 0)} 行（同一人只算一次）。")
    for title in ("汇总", "重复人员"):
        rows = out.sheets.get(title) or []
        table = Table(title=title)
        width = max((len(r) for r in rows), default=0)
        for i in range(width):
            table.add_column(str(rows[0][i]) if rows and rows[0][i] is not None else "", overflow="fold")
        for row in rows[1:]:
            table.add_row(*["" if v is None else str(v) for v in row] + [""] * (width - len(row)))
        console.print(table)


def run(storage: Path, keep: bool, console: Console, database_url: str | None = None) -> Outcome:
    import os

    storage = storage.resolve()
    if storage.exists():
        shutil.rmtree(storage)
    users = {name: "secret" for name in (ROBOT, *USERS.values())}
    console.print("启动本机测试邮件服务器（Dovecot IMAP + SMTP 转发）……")
    with MailServers(users=users) as servers:
        os.environ[PASSWORD_ENV] = "secret"
        today = clock.CLOCK.today(config.load(EXAMPLE).tz)
        settings = settings_for(servers, storage, today, database_url)
        rt = daemon.Runtime.build(settings)
        try:
            outcome = play(servers, rt, console, today)
        finally:
            rt.close()
        for exc in outcome.errors:
            console.print(f"[red]错误[/red]：{exc.message}")
    console.print(f"数据保存在 {storage}。")
    if not keep:
        shutil.rmtree(storage, ignore_errors=True)
        console.print("演示结束，已清理演示数据（加 --keep 可保留）。")
    return outcome
