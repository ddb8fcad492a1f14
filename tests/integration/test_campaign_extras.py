"""Campaign extras end to end over the real servers: a campaign that requires the stamped
copy (a scan or photo beside the editable form, in one message or as a reply later, or
first), and reminders that carry the blank form named in the configuration."""

from __future__ import annotations

import asyncio
import mimetypes
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import aiosmtplib
import pytest
import yaml
from sqlmodel import Session, select

from mailbot import config
from mailbot.campaigns.collecting import returned_units
from mailbot.runtime import daemon
from mailbot.store import FormReturn, FormRow, Submission

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[2]
FIXTURES = ROOT / "tests" / "forms"
FORM = FIXTURES / "0006-guanzhu-wps-dimension.xlsx"  # a valid 关注情况统计表, 3 rows, saved by LibreOffice
SCAN = FIXTURES / "0013-scan.pdf"  # a scanner's PDF: an image, no text
PHOTO = FIXTURES / "0014-photo.png"
TEXT_PDF = FIXTURES / "0015-guanzhu-text-layer.pdf"  # the form exported from Word: readable
CHINA = timezone(timedelta(hours=8))
BEFORE = datetime(2026, 11, 30, 10, 0, tzinfo=CHINA)  # a Monday in office hours, before the first reminder
MONDAY = datetime(2026, 12, 14, 10, 0, tzinfo=CHINA)  # 6 days before the county deadline: the 7-day reminder
EXTRA_UNITS = [{"name": "兰山区科协", "category": "县区科协", "parent": "兰山区", "addresses": ["unit3@example.test"]}]
STILL_MISSING = "按通知要求，还需要盖章后的扫描件或照片（PDF 或 JPG），请回复本邮件补充。"
RECORDED = "报表已登记，感谢支持！"


def campaign(**options) -> dict:
    return {"forms_folder": str(ROOT / "config" / "forms"), "campaigns": [{
        "key": "guanzhu", "name": "关于进一步推广应用临沂科协微信公众号的通知", "template": "关注情况统计表",
        "department": "diaoxuan", "reminder_offsets": [7, 3, 1],
        "audiences": [{"name": "县区科协", "categories": ["县区科协"], "deadline": "2026-12-20"},
                      {"name": "市级学会", "units": ["临沂市农学会"], "deadline": "2026-12-25", "inclusive": True}],
        **options}]}


@pytest.fixture
def start(servers, make_settings):
    """start(**campaign options) → a Runtime for the test servers with that campaign."""
    from conftest import TEST_UNITS

    servers.dovecot.add_user("unit3", "secret")
    made = []

    def build(**options):
        made.append(daemon.Runtime.build(make_settings(servers, units=TEST_UNITS + EXTRA_UNITS, **campaign(**options))))
        made[-1].clock = lambda: BEFORE  # forms arrive before any reminder is due, whatever today is
        return made[-1]

    yield build
    for rt in made:
        rt.close()


def send(servers, user: str, files: list[tuple[str, Path]], answer=None) -> None:
    """A unit's mail to 调宣部 with attachments (Chinese file names); `answer`: the mail it replies to."""
    m = EmailMessage()
    m["From"], m["To"] = f"{user}@example.test", "skxdxb@example.test"
    m["Subject"] = f"回复：{answer['Subject']}" if answer is not None else "关注情况统计表"
    m["Message-ID"] = make_msgid(domain="unit.example")
    if answer is not None:
        m["In-Reply-To"] = m["References"] = answer["Message-ID"]
    m.set_content("附件请查收。")
    for name, path in files:
        maintype, subtype = mimetypes.guess_type(name)[0].split("/")
        m.add_attachment(path.read_bytes(), maintype=maintype, subtype=subtype, filename=name)
    asyncio.run(aiosmtplib.send(m.as_bytes(), sender=f"{user}@example.test", recipients=["skxdxb@example.test"],
                                hostname=servers.host, port=servers.smtp_port, start_tls=False))


def inbox(servers, user: str) -> list:
    return [message_from_bytes(r, policy=policy.default) for r in servers.fetch_all(user)]


def text(mail) -> str:
    return mail.get_body(("plain",)).get_content()


def returns(robot, unit: str) -> list[tuple]:
    with Session(robot.engine) as s:
        rows = s.exec(select(FormReturn).where(FormReturn.unit == unit).order_by(FormReturn.id)).all()
        return [(r.version, r.format, r.valid, r.stamped) for r in rows]


def test_stamped_copy_is_required_beside_the_form(servers, start):
    robot = start(require_stamped=True)

    # 沂水县科协 sends only the editable form: recorded, not complete, told what is missing
    send(servers, "unit1", [("关注情况统计表.xlsx", FORM)])
    daemon.run_once(robot)
    [reply] = inbox(servers, "unit1")
    # the answer keeps the unit's own subject (threaded under its mail), ours in 【】
    assert reply["Subject"] == "回复：关注情况统计表【已收到《临沂科协微信公众号关注情况统计表》：记录 3 行，还需盖章件】"
    assert "已读取 3 行数据，关注人数合计 263。" in text(reply)
    assert STILL_MISSING in text(reply) and RECORDED not in text(reply)
    assert returns(robot, "沂水县科协") == [(1, "xlsx", False, False)]

    # … then answers that mail with the scan alone: the same return is now stamped and complete
    send(servers, "unit1", [("关注情况统计表（盖章）.pdf", SCAN)], answer=reply)
    daemon.run_once(robot)
    replies = inbox(servers, "unit1")
    assert len(replies) == 2 and replies[1]["Subject"] == "回复：关注情况统计表【已收到《临沂科协微信公众号关注情况统计表》：记录 3 行】"
    assert "（文件：关注情况统计表（盖章）.pdf）" in text(replies[1]) and RECORDED in text(replies[1])
    assert STILL_MISSING not in text(replies[1])
    assert returns(robot, "沂水县科协") == [(1, "xlsx", True, True)]
    kept = robot.settings.storage / "forms" / "guanzhu" / "沂水县科协"
    assert (kept / "v1-盖章件-关注情况统计表（盖章）.pdf").read_bytes() == SCAN.read_bytes()
    assert (kept / "v1-关注情况统计表.xlsx").read_bytes() == FORM.read_bytes()

    # 临沂市农学会 sends the form and, beside it, the stamped copy as a PDF with a text layer (an
    # electronic seal on Word's export): the PDF is the stamped copy, not a second form; complete at once
    send(servers, "unit2", [("关注情况统计表.xlsx", FORM), ("关注情况统计表（电子章）.pdf", TEXT_PDF)])
    daemon.run_once(robot)
    [reply] = inbox(servers, "unit2")
    assert RECORDED in text(reply) and STILL_MISSING not in text(reply)
    assert returns(robot, "临沂市农学会") == [(1, "xlsx", True, True)]

    # 兰山区科协 answers its reminder with the scan first: kept, and the form it sends later completes it
    assert robot.chase(MONDAY) == 1
    robot.send_due(MONDAY)
    [reminder] = inbox(servers, "unit3")
    assert "请同时附上盖章后的扫描件或照片" in text(reminder)
    send(servers, "unit3", [("盖章件.pdf", SCAN)], answer=reminder)
    daemon.run_once(robot)
    reply = inbox(servers, "unit3")[-1]
    assert reply["Subject"].endswith("【已收到《临沂科协微信公众号关注情况统计表》盖章件，还需可编辑的报表文件】")
    assert "盖章件已收到，还需要可编辑的报表文件（Word、Excel 或 WPS 格式），请回复本邮件补充。" in text(reply)
    assert "表中有以下问题" not in text(reply) and RECORDED not in text(reply)
    assert returns(robot, "兰山区科协") == [(1, "scan", False, True)]
    send(servers, "unit3", [("关注情况统计表.xlsx", FORM)])
    daemon.run_once(robot)
    reply = inbox(servers, "unit3")[-1]
    assert RECORDED in text(reply) and STILL_MISSING not in text(reply)
    assert returns(robot, "兰山区科协") == [(1, "scan", False, True), (2, "xlsx", True, True)]

    with Session(robot.engine) as s:
        assert returned_units(s, "guanzhu") == {"沂水县科协", "临沂市农学会", "兰山区科协"}
        assert s.exec(select(Submission)).all() == []  # no scan became a 稿件
        assert len(s.exec(select(FormRow)).all()) == 9  # 3 rows for each of the three forms


def blank_form(path: Path) -> Path:
    """The blank 关注情况统计表 an office attaches to its notice, as a Word file."""
    import docx

    document = docx.Document()
    document.add_heading("临沂科协微信公众号关注情况统计表", level=1)
    document.add_paragraph("填报单位：　　　　　　　填报时间：")
    table = document.add_table(rows=4, cols=3)
    for cell, label in zip(table.rows[0].cells, ["序号", "单位名称", "关注人数（人）"]):
        cell.text = label
    document.save(path)
    return path


def test_reminder_carries_the_blank_form(servers, start, tmp_path):
    blank = blank_form(tmp_path / "附件2：临沂科协微信公众号关注情况统计表.docx")
    robot = start(attach_template=str(blank))
    assert robot.chase(MONDAY) == 2  # 沂水县科协 and 兰山区科协; 农学会's deadline is later
    robot.send_due(MONDAY)
    [reminder] = inbox(servers, "unit1")
    assert reminder["Subject"] == "提醒：请于12月20日前报送《临沂科协微信公众号关注情况统计表》"
    assert "报表模板已附在本邮件中" in text(reminder)
    [part] = list(reminder.iter_attachments())
    assert part.get_filename() == "附件2：临沂科协微信公众号关注情况统计表.docx"
    assert part.get_content_type() == "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    assert part.get_content() == blank.read_bytes()

    # a photo of the paper form in answer (no stamp asked for here): kept for manual entry, not a 稿件
    send(servers, "unit1", [("关注情况统计表.png", PHOTO)], answer=reminder)
    daemon.run_once(robot)
    reply = inbox(servers, "unit1")[-1]
    assert reply["Subject"].endswith("【已收到《临沂科协微信公众号关注情况统计表》扫描件或照片，还需可编辑的报表文件】")
    assert "扫描件或照片中的表格需要人工录入。如方便，请回复本邮件发送 Word、Excel 或 WPS 格式的报表" in text(reply)
    assert returns(robot, "沂水县科协") == [(1, "scan", False, True)]
    with Session(robot.engine) as s:
        assert s.exec(select(Submission)).all() == []


def test_missing_blank_form_is_a_config_error(servers, make_settings, tmp_path):
    from conftest import write_config

    blank = blank_form(tmp_path / "关注情况统计表.docx")
    path = write_config(make_settings(servers, **campaign(attach_template=str(blank))), tmp_path / "mailbot.yaml")
    assert config.load(path).campaigns[0].attach_template == blank
    data = yaml.safe_load(path.read_text("utf-8"))
    data["campaigns"][0]["attach_template"] = str(tmp_path / "没有这个文件.docx")
    path.write_text(yaml.safe_dump(data, allow_unicode=True), "utf-8")
    with pytest.raises(config.ConfigError) as caught:
        config.load(path)
    assert [(p.key, p.message) for p in caught.value.problems] == [
        ("campaigns[0].attach_template", f"找不到文件 {tmp_path / '没有这个文件.docx'}（提醒邮件所附的空白报表）")]


def test_a_form_after_the_deadline_is_recorded_as_late(servers, start):
    robot = start()
    robot.clock = lambda: datetime(2026, 12, 21, 10, 0, tzinfo=CHINA)  # the county deadline was 12月20日前
    send(servers, "unit1", [("关注情况统计表.xlsx", FORM)])
    daemon.run_once(robot)
    [reply] = inbox(servers, "unit1")
    with Session(robot.engine) as s:
        (ret,) = s.exec(select(FormReturn)).all()
    assert ret.valid and not ret.on_time
    assert "本次报送已过截止时间（2026-12-20），我们仍会登记。" in text(reply)


def test_a_gaojian_beside_the_form_is_kept_and_the_unit_is_asked_to_send_it_alone(servers, start, tmp_path):
    from docx import Document

    article = tmp_path / "科普日活动信息.docx"
    doc = Document()
    doc.add_paragraph("沂水县全国科普日活动顺利举办，吸引群众两千余人参加。")
    doc.save(article)
    robot = start()
    send(servers, "unit1", [("关注情况统计表.xlsx", FORM), ("科普日活动信息.docx", article)])
    daemon.run_once(robot)
    [reply] = inbox(servers, "unit1")
    assert "其他附件（科普日活动信息.docx）不是这份报表" in text(reply) and "另发一封邮件" in text(reply)
    kept = list((robot.settings.storage / "forms").rglob("*其他附件-*"))
    assert [p.read_bytes() for p in kept] == [article.read_bytes()]
    with Session(robot.engine) as s:
        assert s.exec(select(Submission)).all() == []
        assert [r.valid for r in s.exec(select(FormReturn))] == [True]
