"""Outgoing mail pinned byte for byte: every template in mailbot/outbox/templates has at least
one case below, and each case a golden file tests/golden/<case>.eml holding the exact message
that leaves, Date and Message-ID fixed (the receipt for KP-2026-0042 among them).

A template or letter-builder change fails here until the golden files are rewritten on
purpose, and the diff is then reviewed like code (a failing case also prints its headers and
parts decoded, since the bodies are base64):

    MAILBOT_REGENERATE_GOLDEN=1 PYTHONPATH=. .venv/bin/python -m pytest -q tests/unit/test_golden.py

A new template needs a case in CASES; the same command writes its golden file.
"""

from __future__ import annotations

import os
import re
from datetime import date, datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path
from typing import Callable, NamedTuple

import pytest

from mailbot import digest, outbox
from mailbot.config import Settings
from mailbot.digest.stats import Snapshot
from mailbot.filing import plan_receipt
from mailbot.models import mail_from_json
from mailbot.outbox import TEMPLATES, build
from mailbot.store import Submission

GOLDEN = Path(__file__).parents[1] / "golden"
REGENERATE = bool(os.environ.get("MAILBOT_REGENERATE_GOLDEN"))
CHINA = timezone(timedelta(hours=8))
NOW = datetime(2026, 9, 20, 9, 30, tzinfo=CHINA)
ID_TOKEN = "0123456789abcdef"
REVIEW_TOKEN = "0123456789abcdef0123456789abcdef"


def settings(**over) -> Settings:
    boxes = ("skxkpb", "skxxhb", "skxdxb")
    return Settings.model_validate({
        "organisation": "临沂市科协", "mail_domain": "ly.shandong.cn",
        "office": {"city": "临沂市", "contact": {"name": "陈伟秋", "phone": "0539-8727025"}},
        "mailboxes": [{"name": n, "host": "imap.ly.shandong.cn", "user": f"{n}@ly.shandong.cn", "password_env": "X"}
                      for n in boxes],
        "departments": [{"key": "kepu", "name": "科普部", "prefix": "KP", "mailbox": "skxkpb",
                         "sender_name": "临沂市科协科普部"},
                        {"key": "xuehui", "name": "学会部", "prefix": "XH", "mailbox": "skxxhb",
                         "sender_name": "临沂市科协学会部", "contact": {"name": "刘昌亮"}},
                        {"key": "diaoxuan", "name": "调宣部", "prefix": "DX", "mailbox": "skxdxb",
                         "sender_name": "临沂市科协调宣部"}],
        "reviewers": [{"key": "zhang", "name": "张科长", "addresses": ["zhangke@ly.shandong.cn"]},
                      {"key": "wang", "name": "王主席", "addresses": ["wangzx@ly.shandong.cn"]}],
        "review": {"publisher": "diaoxuan", "stages": {"kepu": [{"name": "初审", "reviewers": ["zhang"]},
                                                                {"name": "审核", "reviewers": ["wang"]}]}},
        **over,
    })


SETTINGS = settings()


def mail(kind: str, template: str | None = None, **values) -> outbox.Outgoing:
    """A letter as the use cases build it, at NOW with a fixed Message-ID token."""
    values = {"from_department": "kepu", "tag": "KP-2026-0042", "id_token": ID_TOKEN, **values}
    return outbox.letter(kind, template, settings=SETTINGS, now=NOW, **values)


def receipt(revision: int = 1, unit: str | None = "沂水县科协", links=(), oversized=False,
            problem: str | None = None, department: str = "kepu") -> outbox.Outgoing:
    """The receipt; `department` xuehui has no review stages (an office that only files 稿件)."""
    box = SETTINGS.department(department).mailbox
    sub = Submission(tracking="KP-2026-0042", department=department, unit=unit, title="全国科普日活动信息",
                     revision=revision, sender="ysxkx@163.com", mailbox=box, route_reason="", inbound_id=1,
                     folder="", oversized=oversized)
    mail = mail_from_json({"from": {"name": "张喆", "address": "ysxkx@163.com"}, "message_id": "<abc.123@163.com>",
                           "references": ["<abc.100@163.com>"] if revision > 1 else [],
                           "large_attachment_links": list(links)})
    files = [{"name": "关于全国科普日活动的总结.docx", "size": 24_576, "problem": problem},
             {"name": "现场照片.jpg", "size": 1_258_291}]
    return plan_receipt(SETTINGS, sub, box, 1_300_000 if not oversized else 61_000_000, mail, files, NOW,
                        token=ID_TOKEN)


SUBMISSION = {"tracking": "KP-2026-0042", "title": "全国科普日活动信息", "unit": "沂水县科协"}


def review_request() -> outbox.Outgoing:
    reply = f"skxkpb+{REVIEW_TOKEN}@ly.shandong.cn"
    return mail("review-request", from_address=reply, to="zhangke@ly.shandong.cn", to_name="张科长",
                id_token=REVIEW_TOKEN, attachments=(("活动总结.docx", b"docx bytes", "application/octet-stream"),),
                **SUBMISSION, token=REVIEW_TOKEN, reply_address=reply, stage_name="初审", department="科普部",
                route_reason="发件域名 ysxkx@163.com → 沂水县科协（县区科协）→ 科普部", revision=2,
                files=["活动总结.docx", "现场照片.jpg"], flags=["含“内部”字样"],
                previous={"new": ["现场照片.jpg"], "changed": ["活动总结.docx"], "same": [], "gone": ["旧稿.doc"]},
                body="各位老师好：\n我县全国科普日活动顺利举办，详见附件。", reviewer="张科长")


def confirm(outcome: str, decision: str = "通过", **values) -> outbox.Outgoing:
    return mail("review-confirm", to="zhangke@ly.shandong.cn", tracking="KP-2026-0042", title="全国科普日活动信息",
                reviewer="张科长", decision=decision, target=values.pop("target", None),
                reason=values.pop("reason", None), outcome=outcome, **values)


def notice(template: str, **values) -> outbox.Outgoing:
    return mail("review-notice", template, to="zhangke@ly.shandong.cn", **{"tracking": "KP-2026-0042", **values})


def digest_mail() -> outbox.Outgoing:
    """The office's digest from a snapshot with something in every section; the chart and
    workbook are stand-in bytes (the real ones carry the library's version and the time)."""
    monday = datetime(2026, 11, 23, 8, 0, tzinfo=CHINA)
    period = digest.period_for(monday, SETTINGS.digest, SETTINGS.tz)
    weeks = [period.starts_at - timedelta(days=7 * i) for i in (2, 1, 0)]
    snap = Snapshot(
        department=None, new_by_dept={"kepu": 5, "diaoxuan": 2}, prev_by_dept={"kepu": 3, "xuehui": 1},
        new_by_unit=[("沂水县科协", "kepu", 3), ("兰山区科协", "kepu", 2), ("临沂市农学会", "diaoxuan", 2)],
        decisions={"approve": 4, "return": 1},
        decision_items=[{"created_at": monday - timedelta(days=3, hours=5), "decided_at": monday - timedelta(days=2)}],
        waiting_total=2, returned_open=1,
        waiting=[{"tracking": "KP-2026-0040", "unit": "沂水县科协", "title": "科技活动周总结", "stage": "初审",
                  "reviewer": "张科长", "department": "kepu", "since": monday - timedelta(days=4)},
                 {"tracking": "DX-2026-0007", "unit": None, "title": "来稿", "stage": "审核", "reviewer": "王主席",
                  "department": "diaoxuan", "since": monday - timedelta(days=1)}],
        weekly={"kepu": [2, 3, 5], "diaoxuan": [1, 0, 2]}, week_starts=weeks,
        campaigns=[{"name": "临沂科协微信公众号关注情况统计", "key": "guanzhu", "returns_this_period": 2,
                    "audiences": [{"name": "县区科协", "units": 3, "sent": 2, "valid": 1, "missing": ["兰山区科协"],
                                   "deadline": date(2026, 12, 20), "days_left": 27}],
                    "tally": {"关注人数": [{"county": "沂水县", "value": 420, "previous": 300}]}}],
        failures_total=1,
        failures=[{"created_at": monday - timedelta(days=2), "kind": "receipt", "to": "nobody@163.com",
                   "error": "收件人被拒绝（550 no such user）", "status": "failed"}])
    content = digest.build(snap, period, SETTINGS, monday)
    content["calendar_gaps"] = [{"year": 2027, "file": "config/holidays/2027.yaml"}]  # not the package's year
    return mail("digest", mailbox="skxdxb", from_department=None, to="wangzx@ly.shandong.cn", to_name="王主席",
                tag=period.key, attachments=(("周报明细-2026-W47.xlsx", b"workbook bytes",
                                              "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),),
                related=(("chart@mailbot", b"\x89PNG chart bytes", "image/png"),),
                **content, greeting="王主席", chart_src="cid:chart@mailbot", attachment_name="周报明细-2026-W47.xlsx")


FORM = {"form": "临沂科协微信公众号关注情况统计表", "department": "调宣部"}


def form_reply(**values) -> outbox.Outgoing:
    base = {"valid": False, "rows": 0, "version": 1, "unit": "沂水县科协", "filename": "关注情况统计表.xlsx",
            "errors": [], "no_rows": False, "totals": [], "warnings": [], "missing_stamp": False,
            "missing_form": False, "stamp_required": False, "on_time": True, "deadline": "2026-12-20", "others": []}
    return mail("form-reply", from_department="diaoxuan", tag="guanzhu", to="ysxkx@163.com",
                **FORM, **{**base, **values})


class Case(NamedTuple):
    template: str
    make: Callable[[], outbox.Outgoing]


CASES: dict[str, Case] = {
    "receipt-KP-2026-0042": Case("receipt", receipt),
    "receipt-not-reviewed": Case("receipt", lambda: receipt(department="xuehui")),
    "receipt-unusable-file": Case("receipt", lambda: receipt(problem="设置了打开密码，我们无法打开。请取消密码后重新发送。")),
    "receipt-revision-unknown-unit": Case("receipt", lambda: receipt(
        2, None, [{"name": "活动视频.mp4", "size": "1.5 GB", "expires": "2026-10-20"}], oversized=True)),
    "review-request": Case("review-request", review_request),
    "review-confirm-advance": Case("review-confirm", lambda: confirm(
        "advance", reason="写得不错", next_reviewers=["王主席"], next_stage="审核")),
    "review-confirm-rerouted": Case("review-confirm", lambda: confirm("rerouted", "转", target="学会部")),
    "review-confirm-approved": Case("review-confirm", lambda: confirm("approved", publisher="调宣部")),
    "review-returned": Case("review-returned", lambda: mail(
        "result", "review-returned", to="ysxkx@163.com", **SUBMISSION, greeting="沂水县科协", stage="初审",
        reason="活动照片需要补充\n标题请再短一些", revision=1)),
    "review-returned-with-reviewer-file": Case("review-returned", lambda: mail(
        "result", "review-returned", to="ysxkx@163.com", **SUBMISSION, greeting="沂水县科协", stage="初审",
        reason="修改意见见附件", revision=1, files=["修改意见.docx"],
        attachments=(("修改意见.docx", b"PK\x03\x04 review notes", "application/vnd.openxmlformats-officedocument"
                      ".wordprocessingml.document"),))),
    "review-returned-no-reason": Case("review-returned", lambda: mail(
        "result", "review-returned", to="ysxkx@163.com", **SUBMISSION, greeting="沂水县科协", stage="初审",
        reason=None, revision=1)),
    "review-reason": Case("review-reason", lambda: mail(
        "review-reason", to="zhangke@ly.shandong.cn", to_name="张科长", id_token=REVIEW_TOKEN, **SUBMISSION,
        stage="初审", token=REVIEW_TOKEN, reviewer="张科长", wait_hours="24")),
    "review-approved": Case("review-approved", lambda: mail(
        "result", "review-approved", to="ysxkx@163.com", **SUBMISSION, greeting=None, publisher="调宣部")),
    "review-publish": Case("review-publish", lambda: mail(
        "publish-ready", "review-publish", to="skxdxb@ly.shandong.cn", **SUBMISSION,
        folder="2026/科普部/沂水县科协/KP-2026-0042", publisher="调宣部")),
    "review-refused-no-token": Case("review-refused", lambda: notice(
        "review-refused", tracking=None, code="no-token", tag="notice")),
    "review-refused-already-decided": Case("review-refused", lambda: notice("review-refused", code="already-decided")),
    "review-refused-expired": Case("review-refused", lambda: notice("review-refused", code="expired")),
    "review-held": Case("review-held", lambda: notice("review-held", code="unknown-address", decision="通过")),
    "review-held-unverified": Case("review-held", lambda: notice("review-held", code="auth-failed", decision=None)),
    "review-held-several-from": Case("review-held", lambda: notice("review-held", code="several-from", decision="通过")),
    "revision-held": Case("revision-held", lambda: notice("revision-held", code="not-the-unit")),
    "revision-held-sender-differs": Case("revision-held", lambda: notice("revision-held", code="sender-differs")),
    "held-rejected-revision": Case("held-rejected", lambda: notice("held-rejected", what="修改稿",
                                                                   reason="不是本单位发来的")),
    "held-rejected-reply": Case("held-rejected", lambda: notice("held-rejected", what="审核意见", reason="")),
    "review-unclear": Case("review-unclear", lambda: notice("review-unclear")),
    "digest-reply": Case("digest-reply", lambda: notice("digest-reply", tracking=None, tag="notice",
                                                        from_department="diaoxuan")),
    "review-reminder": Case("review-reminder", lambda: mail(
        "review-reminder", to="zhangke@ly.shandong.cn", to_name="张科长", id_token=REVIEW_TOKEN, **SUBMISSION,
        stage="初审", waited=3, calendar_known=False, token=REVIEW_TOKEN, reviewer="张科长")),
    "review-escalation": Case("review-escalation", lambda: mail(
        "review-escalation", to="wangzx@ly.shandong.cn", **SUBMISSION, stage="初审", waited=5,
        calendar_known=True, leader="王主席", reviewer="张科长")),
    "form-reminder": Case("form-reminder", lambda: mail(
        "form-reminder", from_department="diaoxuan", tag="guanzhu.3", to="ysxkx@163.com", to_name="沂水县科协",
        attachments=(("关注情况统计表.docx", b"blank form", "application/octet-stream"),), **FORM,
        unit="沂水县科协", campaign="关于开展临沂科协微信公众号关注情况统计的通知", deadline=date(2026, 12, 20),
        inclusive=False, days=3, attached=True, stamped=True)),
    "form-missing": Case("form-missing", lambda: mail(
        "form-missing", from_department="diaoxuan", tag="guanzhu", to="skxdxb@ly.shandong.cn", to_name="调宣部",
        **FORM, campaign="临沂科协微信公众号关注情况统计", key="guanzhu", count=2,
        missing=[{"unit": "兰山区科协", "audience": "县区科协", "deadline": "2026-12-20"},
                 {"unit": "临沂市农学会", "audience": "市级学会及其他", "deadline": "2026-12-20"}])),
    "form-reply-recorded": Case("form-reply", lambda: form_reply(
        valid=True, rows=3, version=2, totals=[("关注人数", 263)], warnings=["第3行的手机号少一位"])),
    "form-reply-errors": Case("form-reply", lambda: form_reply(
        errors=["第2行“关注人数”：“三百多” 不是数字"], rows=2, on_time=False, others=["科普日活动信息.docx"])),
    "form-reply-no-rows": Case("form-reply", lambda: form_reply(no_rows=True)),
    "form-reply-scan-only": Case("form-reply", lambda: form_reply(
        unit=None, filename="关注情况统计表（盖章）.pdf", missing_form=True, stamp_required=True)),
    "digest": Case("digest", digest_mail),
    "alert-mailbox-down": Case("alert", lambda: mail(
        "alert", to="admin@ly.shandong.cn", tag="mailbox-down", from_department="diaoxuan", kind_name="mailbox-down",
        detail="邮箱 skxkpb：登录失败（授权码错误）", first_at="2026-09-20 09:10", count=3, mailbox_name="skxkpb",
        minutes=20, inbound_id=None, tracking=None, expires=None)),
    "alert-needs-person": Case("alert", lambda: mail(
        "alert", to="admin@ly.shandong.cn", tag="needs-person", from_department="diaoxuan", kind_name="needs-person",
        detail="主题中的编号 KP-2026-0042：对已有稿件的回复；内容不是审核决定也不是修改稿，请人工查看并答复",
        first_at="2026-09-20 09:30", count=1, inbound_id=42, tracking="KP-2026-0042", expires=None,
        sender="ysxkx@163.com", subject="回复：[KP-2026-0042] 回执")),
    "alert-link-failed": Case("alert", lambda: mail(
        "alert", to="admin@ly.shandong.cn", tag="link-failed", from_department="diaoxuan", kind_name="link-failed",
        detail="活动视频.mp4：下载页面上没有找到文件（链接可能已过期，或需要登录）（2026年10月20日 21:59 到期）",
        first_at="2026-09-20 09:30", count=1, inbound_id=42, tracking="KP-2026-0042", expires="2026年10月20日 21:59")),
    "alert-summary": Case("alert-summary", lambda: mail(
        "alert-summary", to="admin@ly.shandong.cn", tag="2026-09-20", from_department="diaoxuan",
        date="2026年09月20日", total=1, pending=2, problems=["邮箱 skxkpb：登录失败（授权码错误）"],
        waiting=[{"inbound_id": 42, "received_at": "2026-09-19 16:02", "sender": "ysxkx@163.com",
                  "subject": "回复：[KP-2026-0042] 回执", "reason": "内容不是审核决定也不是修改稿，请人工查看并答复"}],
        failed=[{"created_at": "2026-09-19 10:00", "kind": "receipt", "to": "a@qq.com", "error": "收件人被拒绝",
                 "status": "failed"}])),
}


def templates() -> set[str]:
    """Every letter template: the name before the first dot, partials (_name) left out."""
    return {p.name.split(".")[0] for p in TEMPLATES.glob("*.j2") if not p.name.startswith("_")}


def readable(data: bytes) -> str:
    """Headers and decoded parts, for a diff a person can read."""
    msg = message_from_bytes(data, policy=policy.default)
    lines = [f"{k}: {v}" for k, v in msg.items()]
    for part in msg.walk():
        if part.get_content_maintype() == "text":
            lines += ["", f"--- {part.get_content_type()}", part.get_content()]
        elif not part.is_multipart():
            lines += ["", f"--- {part.get_content_type()} {part.get_filename()} ({len(part.get_payload(decode=True))} bytes)"]
    return "\n".join(lines)


@pytest.mark.parametrize("name", sorted(CASES))
def test_letter_matches_its_golden_file(name):
    data = build(CASES[name].make())
    path = GOLDEN / f"{name}.eml"
    if REGENERATE:
        path.write_bytes(data)
    if not path.exists():
        pytest.fail(f"no golden file {path.name}: write it with MAILBOT_REGENERATE_GOLDEN=1 and review it")
    golden = path.read_bytes()
    assert readable(data) == readable(golden)
    assert data == golden


def test_every_template_has_a_case_and_every_golden_file_a_case():
    assert templates() - {c.template for c in CASES.values()} == set(), "a template without a golden case"
    assert {c.template for c in CASES.values()} <= templates()
    assert {p.stem for p in GOLDEN.glob("*.eml")} <= set(CASES), "a golden file no case writes"


def test_every_template_has_a_subject_and_a_text():
    for name in templates():
        assert (TEMPLATES / f"{name}.subject.j2").exists() and (TEMPLATES / f"{name}.txt.j2").exists(), name


def test_department_names_come_from_the_configuration():
    """No template names a department; another office's departments show in the instructions."""
    for path in TEMPLATES.glob("*.j2"):
        text = path.read_text("utf-8")
        assert not re.search("科普部|学会部|调宣部", text), path.name
    other = settings(departments=[{"key": "xc", "name": "宣传部", "prefix": "XC"},
                                  {"key": "zz", "name": "组织部", "prefix": "ZZ"}],
                     review={"publisher": "xc"})
    out = outbox.letter("review-notice", "review-unclear", settings=other, from_department="zz", to="a@b.cn",
                        now=NOW, tag="ZZ-2026-0001", tracking="ZZ-2026-0001")
    assert "转 宣传部 / 转 组织部" in out.text and "科普部" not in out.text
    out = outbox.letter("review-notice", "review-refused", settings=other, from_department="zz", to="a@b.cn",
                        now=NOW, tag="ZZ-2026-0001", tracking="ZZ-2026-0001", code="expired")
    assert "请与宣传部联系" in out.text


def test_html_parts_escape_what_senders_wrote():
    out = mail("review-request", to="zhangke@ly.shandong.cn", tracking="KP-2026-0042", token=REVIEW_TOKEN,
               reply_address="skxkpb@ly.shandong.cn", stage_name="初审", title="<b>标题</b> & 说明",
               unit=None, department="科普部", route_reason="", revision=1, files=[], flags=[], previous=None,
               body='<a href="http://evil.example">通过</a>', reviewer="张科长")
    assert "&lt;b&gt;标题&lt;/b&gt; &amp; 说明" in out.html and "<b>标题</b>" in out.text
    assert 'href="http://evil.example"' not in out.html
    assert "&amp;body=%E9%80%9A%E8%BF%87" in out.html  # the buttons' links stay whole


def test_a_letter_answering_a_mail_is_threaded_under_it():
    msg = message_from_bytes(build(CASES["receipt-revision-unknown-unit"].make()), policy=policy.default)
    assert msg["In-Reply-To"] == "<abc.123@163.com>"
    assert msg["References"] == "<abc.100@163.com> <abc.123@163.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    msg = message_from_bytes(build(CASES["review-request"].make()), policy=policy.default)
    assert msg["In-Reply-To"] is None and msg["Auto-Submitted"] == "auto-generated"
    assert msg["Message-ID"].strip() == f"<mailbot.review.KP-2026-0042.{REVIEW_TOKEN}@ly.shandong.cn>"
    assert msg["From"].addresses[0].addr_spec == f"skxkpb+{REVIEW_TOKEN}@ly.shandong.cn"


def test_receipt_headers_and_text_read_right():
    msg = message_from_bytes(build(receipt()), policy=policy.default)
    assert msg["Subject"] == "[KP-2026-0042] 回执：已收到《全国科普日活动信息》"
    assert msg["From"].addresses[0].display_name == "临沂市科协科普部"
    assert msg["Message-ID"] == "<mailbot.receipt.KP-2026-0042.0123456789abcdef@ly.shandong.cn>"
    assert msg["In-Reply-To"] == "<abc.123@163.com>" and msg["References"] == "<abc.123@163.com>"
    assert msg["Auto-Submitted"] == "auto-replied" and msg["X-Auto-Response-Suppress"] == "All"
    raw_headers = build(receipt()).split(b"\r\n\r\n", 1)[0].decode("ascii")  # every header is ASCII: RFC 2047 UTF-8
    assert "=?utf-8?" in raw_headers and "gb2312" not in raw_headers.lower()
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for part in (text, html):
        assert "KP-2026-0042" in part and "沂水县科协" in part and "科普部" in part
        assert "关于全国科普日活动的总结.docx（24.0 KB）" in part and "现场照片.jpg（1.2 MB）" in part
        assert "2026年09月20日 09:30" in part
    assert not re.search(r"[A-Za-z_]+\(|Traceback|None", text)  # nothing internal shows
