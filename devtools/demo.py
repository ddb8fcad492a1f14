"""`mailbot demo`: the robot's main job on its embedded default, end to end.

Starts a private Dovecot and SMTP relay on loopback, mails a handful of realistic
messages to the three department mailboxes (a 稿件 sent to two of them at once, a
GBK-encoded one, a forwarded one, an auto-reply, a broken one), runs the robot once on
SQLite, shows what it stored, then runs again to show that nothing is done twice; then
plays the review of one 稿件 and the 关注情况统计表 campaign (demo_campaign.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
from datetime import date, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

import aiosmtplib
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

from devtools import demo_campaign
from devtools.devservers import MailServers, default_users
from mailbot import clock
from mailbot.config import Settings
from mailbot.runtime import daemon
from mailbot.store import InboundMessage, MessageCopy

CHINA = timezone(timedelta(hours=8))
PASSWORD_ENV = "MAILBOT_DEMO_PASSWORD"


def samples(domain: str) -> list[tuple[list[str], bytes]]:
    """(recipients, raw bytes) of the demo's incoming mail."""
    at = lambda user: f"{user}@{domain}"  # noqa: E731
    now = datetime(2026, 11, 20, 9, 30, tzinfo=CHINA)
    out = []

    m = EmailMessage()
    m["From"] = f"沂水县科协 <{at('unit1')}>"
    m["To"] = f"{at('skxkpb')}, {at('skxdxb')}"  # one 稿件, two mailboxes
    m["Subject"] = "【沂水县科协】科普日活动信息"
    m["Date"] = format_datetime(now)
    m["Message-ID"] = make_msgid(domain="yishui.example")
    m.set_content("各位老师好：\n\n附件是我县全国科普日活动信息，请审核。\n\n沂水县科协\n2026年11月20日")
    m.add_attachment("（稿件正文）沂水县全国科普日活动顺利举办".encode("utf-8"), maintype="application",
                     subtype="octet-stream", filename="科普日活动信息.txt")
    out.append(([at("skxkpb"), at("skxdxb")], m.as_bytes()))

    subject = base64.b64encode("临沂市农学会李喆：学会年会稿件".encode("gbk")).decode()
    body = "年会于11月18日召开，稿件见正文。\n\n报送单位：临沂市农学会\n联系人：李喆".encode("gbk")
    gbk = (f"From: =?gb2312?B?{base64.b64encode('李喆'.encode('gbk')).decode()}?= <{at('unit2')}>\r\n"
           f"To: {at('skxxhb')}\r\nSubject: =?gb2312?B?{subject}?=\r\n"
           f"Date: {format_datetime(now + timedelta(minutes=5))}\r\n"
           f"Message-ID: <gbk-demo-1@nongxue.example>\r\nMIME-Version: 1.0\r\n"
           "Content-Type: text/plain; charset=gb2312\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode() + body
    out.append(([at("skxxhb")], gbk))

    inner = EmailMessage()
    inner["From"] = f"兰山区科协 <{at('unit3')}>"
    inner["Subject"] = "兰山区科普进社区活动"
    inner["Message-ID"] = make_msgid(domain="lanshan.example")
    inner.set_content("科普进社区活动稿件见附件。")
    inner.add_attachment(b"%PDF-1.4\n%demo\n", maintype="application", subtype="pdf", filename="科普进社区.pdf")
    fwd = EmailMessage()
    fwd["From"] = f"兰山区科协办公室 <{at('unit3')}>"
    fwd["To"] = at("skxkpb")
    fwd["Subject"] = "转发：兰山区科普进社区活动"
    fwd["Date"] = format_datetime(now + timedelta(minutes=10))
    fwd["Message-ID"] = make_msgid(domain="lanshan.example")
    fwd.set_content("转发一份稿件，请查收。")
    fwd.add_attachment(inner)
    out.append(([at("skxkpb")], fwd.as_bytes()))

    auto = EmailMessage()
    auto["From"] = at("reviewer1")
    auto["To"] = at("skxdxb")
    auto["Subject"] = "自动回复: 稿件"
    auto["Auto-Submitted"] = "auto-replied"
    auto["Message-ID"] = make_msgid(domain="qq.example")
    auto.set_content("这是来自QQ邮箱的假期自动回复邮件。您好，我最近正在休假中，无法亲自回复您的邮件。")
    out.append(([at("skxdxb")], auto.as_bytes()))

    broken = (f"From: =?x-gbk?B?{base64.b64encode('王堃'.encode('gbk')).decode()}?= <{at('unit4')}>\r\n"
              f"To: {at('skxdxb')}\r\nSubject: \xb9\xd8\xd7\xa2\xc7\xe9\xbf\xf6\r\n"
              "Content-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n"
              "--never-closed\r\nContent-Type: text/plain; charset=\"charset=\"GB2312\"\"\r\n\r\n")
    out.append(([at("skxdxb")], broken.encode("latin-1") + "统计表已填好".encode("gbk")))
    return out


async def _send(servers: MailServers, mails: list[tuple[list[str], bytes]]) -> None:
    for rcpts, data in mails:
        await aiosmtplib.send(data, sender=servers.address("unit1"), recipients=rcpts,
                              hostname=servers.host, port=servers.smtp_port, start_tls=False)


DEMO_UNITS = [
    {"name": "沂水县科协", "aliases": ["沂水科协"], "category": "县区科协", "parent": "沂水县",
     "addresses": ["unit1@example.test"]},
    {"name": "临沂市农学会", "aliases": ["市农学会"], "category": "学会", "parent": "市直",
     "addresses": ["unit2@example.test"]},
    {"name": "兰山区科协", "aliases": ["兰山科协"], "category": "县区科协", "parent": "兰山区",
     "addresses": ["unit3@example.test"]},
]
DEMO_ROUTING = {"default": "diaoxuan", "unknown": "diaoxuan", "rules": [
    {"name": "科普基地、农技协", "categories": ["科普基地", "农技协"], "department": "kepu"},
    {"name": "学会、协会、研究会、企事业科协", "categories": ["学会", "协会", "研究会", "企事业科协"], "department": "xuehui"},
    {"name": "各级科协科普活动信息", "categories": ["县区科协", "高校科协", "老科协"],
     "keywords": ["科普活动", "科普日", "科普进", "科普宣传"], "department": "kepu"},
]}


DEMO_REVIEWERS = [
    {"key": "zhang", "name": "张科长", "addresses": ["reviewer1@example.test"]},
    {"key": "li", "name": "李科长", "addresses": ["reviewer2@example.test"]},
    {"key": "wang", "name": "王主席", "addresses": ["leader1@example.test"]},
]
DEMO_REVIEW = {"publisher": "diaoxuan", "stages": {
    "kepu": [{"name": "初审", "reviewers": ["zhang"]}, {"name": "审核", "reviewers": ["wang"]}],
    "xuehui": [{"name": "初审", "reviewers": ["li"]}, {"name": "审核", "reviewers": ["wang"]}],
    "diaoxuan": [{"name": "初审", "reviewers": ["li"]}, {"name": "审核", "reviewers": ["wang"]}],
}}


def settings_for(servers: MailServers, storage: Path, deadline: date | None = None) -> Settings:
    """The demo office: three mailboxes, departments, roster, review and the 关注情况统计表 campaign
    (deadline 12月20日 of the coming season unless given)."""
    deadline = deadline or demo_campaign.deadline_for(clock.CLOCK.today(CHINA))
    boxes = [{"name": n, "host": servers.host, "port": servers.imap_port, "tls": "plain", "user": n,
              "password_env": PASSWORD_ENV, "address": servers.address(n), "smtp_host": servers.host,
              "smtp_port": servers.smtp_port, "smtp_tls": "plain", "smtp_auth": False}
             for n in ("skxkpb", "skxxhb", "skxdxb")]
    depts = [{"key": "kepu", "name": "科普部", "prefix": "KP", "mailbox": "skxkpb", "sender_name": "临沂市科协科普部"},
             {"key": "xuehui", "name": "学会部", "prefix": "XH", "mailbox": "skxxhb", "sender_name": "临沂市科协学会部"},
             {"key": "diaoxuan", "name": "调宣部", "prefix": "DX", "mailbox": "skxdxb", "sender_name": "临沂市科协调宣部"}]
    return Settings.model_validate({"storage": storage, "mailboxes": boxes, "departments": depts,
                                    "organisation": "临沂市科协", "mail_domain": "ly.example.test",
                                    "units": DEMO_UNITS + demo_campaign.UNITS, "routing": DEMO_ROUTING,
                                    "parse_workers": 0, "reviewers": DEMO_REVIEWERS, "review": DEMO_REVIEW,
                                    **demo_campaign.settings_part(storage, deadline)})


def run(storage: Path, keep: bool, console: Console) -> demo_campaign.Outcome:
    """Play the whole demo; return what the campaign part produced (for tests)."""
    storage = storage.resolve()
    if storage.exists():
        shutil.rmtree(storage)
    console.print("启动本机测试邮件服务器（Dovecot IMAP + SMTP 转发）……")
    users = {**default_users(), **{u: "secret" for u in ("unit3", "unit4", *demo_campaign.USERS)}}
    with MailServers(users=users) as servers:
        os.environ[PASSWORD_ENV] = "secret"
        mails = samples(servers.domain)
        asyncio.run(_send(servers, mails))
        console.print(f"已向三个科室邮箱投递 {len(mails)} 封样例邮件（其中一封同时发给两个邮箱）。")
        deadline = demo_campaign.deadline_for(clock.CLOCK.today(CHINA))
        rt = daemon.Runtime.build(settings_for(servers, storage, deadline))
        errors = daemon.run_once(rt)
        t = rt.totals
        console.print(f"第一轮：取回 {t.fetched} 份，新存 {t.stored} 封，识别重复 {t.duplicates} 份，"
                      f"解析 {t.parsed} 封，隔离 {t.quarantined} 封。")
        _show(rt, console)
        _show_filed(rt, console)
        _show_receipts(servers, console)
        rt.totals = type(t)()
        errors += daemon.run_once(rt)
        console.print(f"第二轮：取回 {rt.totals.fetched} 份，新存 {rt.totals.stored} 封（没有新邮件，不会重复处理）。")
        _show_server(servers, console)
        errors += review_story(servers, rt, console)
        outcome = demo_campaign.run(servers, rt, console, deadline)
        errors += outcome.errors
        _digest_preview(rt, console)
        for exc in errors:
            console.print(f"[red]错误[/red]：{exc.message}")
        rt.close()
    console.print(f"数据保存在 {storage}（原始邮件在 raw/，数据库 mailbot.db，报表在 forms/，汇总表 "
                  f"{outcome.workbook.name if outcome.workbook else '未生成'}）。")
    if not keep:
        shutil.rmtree(storage, ignore_errors=True)
        console.print("演示结束，已清理演示数据（加 --keep 可保留）。")
    return outcome


def _digest_preview(rt, console: Console) -> None:
    """What `mailbot digest --preview` shows, for the week so far (the demo's mail is today's)."""
    from mailbot import digest
    from mailbot.digest import digesting

    now = clock.now()
    period = digest.current_period(now, rt.settings.digest, rt.settings.tz)
    with Session(rt.engine) as session:
        r = digesting.render(session, rt.settings, period, now, inline_chart=True)
    page = rt.settings.storage / f"周报预览-{period.key}.html"
    page.write_text(r.html, encoding="utf-8")
    page.with_suffix(".xlsx").write_bytes(r.workbook)
    table = Table(title=f"领导周报预览（本周至今，{period.label}）：{page.name}")
    for card in r.content["cards"]:
        table.add_column(card["label"], justify="right")
    table.add_row(*[str(card["value"]) for card in r.content["cards"]])
    console.print(table)
    console.print("每周一 08:00 守护进程把上一周的周报发给领导（mailbot digest --preview 可随时预览）。")


def _show_server(servers: MailServers, console: Console) -> None:
    with servers.imap("skxdxb") as imap:
        quarantined = imap.select_folder("mailbot/quarantine")[b"EXISTS"] if imap.folder_exists(
            "mailbot/quarantine") else 0
    if quarantined:
        console.print(f"服务器上：无法处理的邮件已移入 skxdxb 的 mailbot/quarantine 文件夹（{quarantined} 封）。")
    console.print("服务器上：稿件已移入各科室邮箱的“稿件/单位名”文件夹，其余邮件加上 $MailbotStored 标记，没有删除任何邮件。")


def _show(rt, console: Console) -> None:
    table = Table(title="收到的邮件")
    for col in ("编号", "邮箱", "发件人", "主题", "附件", "状态"):
        table.add_column(col)
    with Session(rt.engine) as session:
        for row in session.exec(select(InboundMessage).order_by(InboundMessage.id)):
            boxes = sorted({c.mailbox for c in session.exec(
                select(MessageCopy).where(MessageCopy.inbound_id == row.id))})
            status = {"parsed": "已解析", "quarantined": f"已隔离：{row.reason}", "stored": "待处理"}[row.status]
            if row.auto_reply:
                status += "（自动回复）"
            defects = len(json.loads(row.parsed_json)["defects"]) if row.parsed_json else 0
            if defects:
                status += f"（修复 {defects} 处）"
            table.add_row(str(row.id), "、".join(boxes), row.from_name or row.from_address or "",
                          row.subject or "", str(row.attachment_count), status)
    console.print(table)


def _show_filed(rt, console: Console) -> None:
    from mailbot.store import Submission, SubmissionFile

    table = Table(title="稿件登记（按单位归档）")
    for col in ("编号", "单位", "科室", "附件", "存放位置", "理由"):
        table.add_column(col, overflow="fold")
    with Session(rt.engine) as session:
        for sub in session.exec(select(Submission).order_by(Submission.id)):
            files = session.exec(select(SubmissionFile).where(SubmissionFile.submission_id == sub.id)).all()
            dept = rt.settings.department(sub.department).name
            table.add_row(sub.tracking, sub.unit or "（未知单位）", dept, "、".join(f.filename for f in files) or "—",
                          sub.folder, sub.route_reason)
    console.print(table)


def _show_receipts(servers: MailServers, console: Console) -> None:
    from email import message_from_bytes, policy

    for user in ("unit1", "unit2", "unit3", "unit4"):
        for raw in servers.fetch_all(user):
            msg = message_from_bytes(raw, policy=policy.default)
            text = msg.get_body(("plain",)).get_content()
            console.print(f"[bold]{servers.address(user)} 收到回执[/bold]：{msg['Subject']}（发件人 {msg['From']}）")
            console.print("    " + "\n    ".join(text.strip().splitlines()[:8]))


# --- the life of one 稿件 ------------------------------------------------------------


def _inbox(servers: MailServers, user: str, *needles: str):
    """The newest mail in a user's INBOX whose subject has every needle."""
    from email import message_from_bytes, policy

    found = [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]
    return [m for m in found if all(n in m["Subject"] for n in needles)][-1]


def qq_reply(original, sender: str, command: str) -> bytes:
    """A reply as QQ Mail writes it: 回复： prefix, 原始邮件 quote, no In-Reply-To."""
    quoted = original.get_body(("plain",)).get_content()
    m = EmailMessage()
    m["From"], m["To"] = sender, original["From"].addresses[0].addr_spec
    m["Subject"], m["Message-ID"] = f"回复：{original['Subject']}", make_msgid(domain="qq.example")
    m.set_content(f"{command}\n\n------------------&nbsp;原始邮件&nbsp;------------------\n"
                  f"发件人: \"科普部\" <{m['To']}>;\n主题:&nbsp;{original['Subject']}\n\n{quoted}")
    return m.as_bytes()


def outlook_reply(original, sender: str, command: str) -> bytes:
    """A reply as Outlook zh-CN writes it: 答复: prefix, rule and 发件人 block, threaded."""
    quoted = original.get_body(("plain",)).get_content()
    m = EmailMessage()
    m["From"], m["To"] = sender, original["From"].addresses[0].addr_spec
    m["Subject"], m["Message-ID"] = f"答复: {original['Subject']}", make_msgid(domain="outlook.example")
    m["In-Reply-To"] = m["References"] = original["Message-ID"]
    m.set_content(f"{command}\n\n________________________________\n发件人: 科普部 <{m['To']}>\n"
                  f"发送时间: 2026年11月23日 10:00\n主题: {original['Subject']}\n\n{quoted}")
    return m.as_bytes()


def review_story(servers: MailServers, rt, console: Console) -> list:
    """KP-2026-0001 from 沂水县科协: 初审 通过 (QQ), 审核 退回 (Outlook), a revised version,
    then 通过 twice; each step as the robot handles it."""
    from mailbot.reviewing.history import EVENTS, submission_history

    errors = []
    console.print("\n[bold]审核流程演示：沂水县科协的稿件[/bold]")

    def step(title: str, user: str, raw: bytes) -> None:
        asyncio.run(aiosmtplib.send(raw, sender=servers.address(user), recipients=["skxkpb@example.test"],
                                    hostname=servers.host, port=servers.smtp_port, start_tls=False))
        errors.extend(daemon.run_once(rt))
        console.print(f"• {title}")

    t = "KP-2026-0001"
    forward = _inbox(servers, "reviewer1", t, "请初审")
    console.print(f"• 张科长收到送审邮件：{forward['Subject']}（附件已附上，可点按 通过/退回/转 按钮）")
    step("张科长在 QQ 邮箱回复“通过”（引文里有“通过”和“退回”，只读新写的一行）", "reviewer1",
         qq_reply(forward, "reviewer1@example.test", "通过，写得很好"))
    console.print(f"  张科长收到确认：{_inbox(servers, 'reviewer1', t, '已记录')['Subject']}")
    leader = _inbox(servers, "leader1", t, "请审核")
    console.print(f"• 王主席收到送审邮件：{leader['Subject']}")
    step("王主席在 Outlook 回复“退回：请补充活动现场照片”", "leader1",
         outlook_reply(leader, "leader1@example.test", "退回：请补充活动现场照片"))
    notice = _inbox(servers, "unit1", t, "退回")
    console.print(f"  沂水县科协收到：{notice['Subject']}")
    revised = qq_reply(notice, "unit1@example.test", "已补充照片，请审核。")
    m = __import__("email").message_from_bytes(revised, policy=__import__("email").policy.default)
    m.add_attachment(b"\xff\xd8\xff\xe0 photo", maintype="image", subtype="jpeg", filename="现场照片.jpg")
    step("沂水县科协回复退回通知并附上照片：登记为第2版，编号不变，重新送审", "unit1", m.as_bytes())
    step("张科长再次“通过”", "reviewer1", qq_reply(_inbox(servers, "reviewer1", t, "请初审"), "reviewer1@example.test", "通过"))
    step("王主席“同意”", "leader1", outlook_reply(_inbox(servers, "leader1", t, "请审核"), "leader1@example.test", "同意"))
    console.print(f"  沂水县科协收到：{_inbox(servers, 'unit1', t, '审核通过')['Subject']}")
    console.print(f"  调宣部收到：{_inbox(servers, 'skxdxb', t, '可以发布')['Subject']}")
    story = submission_history(rt.engine, rt.settings, t)
    table = Table(title="mailbot show KP-2026-0001")
    for col in ("事件", "人", "说明"):
        table.add_column(col, overflow="fold")
    for item in story["history"]:
        table.add_row(EVENTS.get(item["kind"], item["kind"]), item["actor"] or "", item["detail"] or "")
    console.print(table)
    return errors
