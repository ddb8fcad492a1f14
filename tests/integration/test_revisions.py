"""Who may change a 稿件, over the real servers: a revision comes only from the 稿件's own
unit (roster addresses or domains) or whoever sent revision 1; anything else changes nothing
and waits for the operator, who confirms or rejects it; a reviewer's file never becomes a
revision. Each case asserts the 稿件's state (revision, stage, open tasks), what was held and
every mail sent."""

from __future__ import annotations

import re
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path

import pytest
from conftest import write_config
from sqlmodel import Session, select
from test_review import REVIEW, deliver_reply, gaojian, latest, qq_reply, send
from typer.testing import CliRunner

from mailbot.runtime import daemon
from mailbot.runtime.cli import app
from mailbot.store import Event, ReviewTask, Submission, SubmissionFile

pytestmark = pytest.mark.integration
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def robot(servers, make_settings):
    for user in ("stranger", "zhao"):
        servers.dovecot.add_user(user, "secret")
    rt = daemon.Runtime.build(make_settings(servers, **REVIEW))
    yield rt
    rt.close()


def revision_mail(sender: str, subject: str, body: str, refs: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = sender, "skxkpb@example.test"
    m["Subject"], m["Message-ID"] = subject, make_msgid(domain="mail.example")
    if refs:
        m["In-Reply-To"], m["References"] = refs, refs
    m.set_content(body)
    m.add_attachment("修改后的稿件".encode(), maintype="application", subtype=DOCX.split("/")[1], filename="修改稿.docx")
    return m.as_bytes()


def snapshot(rt) -> tuple:
    with Session(rt.engine) as s:
        (sub,) = s.exec(select(Submission)).all()
        open_tasks = s.exec(select(ReviewTask).where(ReviewTask.status == "open")).all()
        return sub.tracking, sub.revision, sub.stage, sub.status, sorted((t.revision, t.stage) for t in open_tasks)


def subjects(servers, user: str) -> list[str]:
    from email import message_from_bytes, policy

    return [message_from_bytes(r, policy=policy.default)["Subject"] for r in servers.fetch_all(user)]


def cli(rt, tmp_path, *args):
    result = CliRunner().invoke(app, ["review", *args, "--config", str(write_config(rt.settings, tmp_path / "c.yaml"))])
    return result


def test_a_stranger_with_the_tracking_number_and_the_units_name_changes_nothing(servers, robot, tmp_path):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    before = snapshot(robot)
    tracking = before[0]
    unit_mail, reviewer_mail = len(subjects(servers, "unit1")), len(subjects(servers, "reviewer1"))

    forged = revision_mail("沂水县科协 <stranger@example.test>", f"回复：[{tracking}] 【沂水县科协】修改稿",
                           "报送单位：沂水县科协\n已修改，请审核。")
    send(servers, forged, "stranger@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    assert snapshot(robot) == before  # same revision, stage and open review
    assert len(subjects(servers, "unit1")) == unit_mail  # the unit got no receipt for a 第2版 it never sent
    assert len(subjects(servers, "reviewer1")) == reviewer_mail  # and the reviewer no new 请初审
    told = latest(servers, "stranger", "管理员确认")
    assert tracking in told["Subject"] or tracking in told.get_body(("plain",)).get_content()

    listing = cli(robot, tmp_path, "held", "--json")
    assert listing.exit_code == 0, listing.output
    import json

    (hold,) = json.loads(listing.stdout)
    assert (hold["kind"], hold["tracking"], hold["reason"], hold["actor"]) == (
        "revision-hold", tracking, "not-the-unit", "stranger@example.test")
    rejected = cli(robot, tmp_path, "reject", str(hold["inbound_id"]), "--reason", "不是本单位发来的", "--by", "调宣部王")
    assert rejected.exit_code == 0 and "已拒绝" in rejected.stdout, rejected.output
    assert "不是本单位发来的" in latest(servers, "stranger", "未被采用").get_body(("plain",)).get_content()
    assert snapshot(robot) == before
    assert json.loads(cli(robot, tmp_path, "held", "--json").stdout) == []


def test_the_operator_may_vouch_for_a_held_revision(servers, robot, tmp_path):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    tracking = snapshot(robot)[0]
    # the unit's colleague sends the revision from a personal address the roster does not know
    send(servers, revision_mail("stranger@example.test", f"回复：[{tracking}] 修改稿", "我是沂水县科协的小李，修改稿见附件。"),
         "stranger@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    assert snapshot(robot)[1] == 1
    with Session(robot.engine) as s:
        (hold,) = s.exec(select(Event).where(Event.kind == "revision-hold")).all()
    done = cli(robot, tmp_path, "confirm", str(hold.inbound_id), "--by", "调宣部王")
    assert done.exit_code == 0 and f"稿件 {tracking} 的第2版" in done.stdout, done.output
    tracking_, revision, stage, status, open_tasks = snapshot(robot)
    assert (revision, stage, open_tasks) == (2, 0, [(2, 0)])  # reviewed again from 初审
    assert sum("请初审" in s for s in subjects(servers, "reviewer1")) == 2, subjects(servers, "reviewer1")
    again = cli(robot, tmp_path, "confirm", str(hold.inbound_id))
    assert again.exit_code == 1 and "不在待确认列表中" in again.stdout


def test_a_sender_off_the_roster_revises_their_own_gaojian(servers, robot):
    """zhao123@qq.com-style: no unit, 退回, then the revised file in reply to the 退回 notice."""
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = "赵老师 <zhao@example.test>", "skxkpb@example.test", "科普讲座活动信息"
    m["Message-ID"] = make_msgid(domain="qq.example")
    m.set_content("各位老师好：附件是科普讲座的稿件。")
    m.add_attachment("稿件正文".encode(), maintype="application", subtype="octet-stream", filename="稿件.txt")
    send(servers, m.as_bytes(), "zhao@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    with Session(robot.engine) as s:
        sub = s.exec(select(Submission).where(Submission.sender == "zhao@example.test")).one()
        tracking = sub.tracking
        assert not sub.unit_known
    reviewer = "reviewer2" if tracking.startswith("XH") else "reviewer1"
    forward = latest(servers, reviewer, tracking)
    deliver_reply(servers, qq_reply(forward, f"{reviewer}@example.test", "退回 请补充活动照片"),
                  f"{reviewer}@example.test", mailbox=forward["From"].addresses[0].username)
    daemon.run_once(robot)
    returned = latest(servers, "zhao", "退回")
    refs = returned["Message-ID"]
    send(servers, revision_mail("赵老师 <zhao@example.test>", f"回复：{returned['Subject']}", "已补充照片，请再审。", refs),
         "zhao@example.test", [returned["From"].addresses[0].addr_spec])
    daemon.run_once(robot)
    with Session(robot.engine) as s:
        sub = s.exec(select(Submission).where(Submission.tracking == tracking)).one()
        assert (sub.revision, sub.status) == (2, "reviewing")
        assert s.exec(select(Event).where(Event.kind == "revision-hold")).all() == []
    assert any("第2版" in s for s in subjects(servers, "zhao")), subjects(servers, "zhao")


def test_a_reviewers_file_belongs_to_the_decision_never_a_revision(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    reply = EmailMessage()
    reply["From"], reply["To"] = "张科长 <reviewer1@example.test>", forward["From"].addresses[0].addr_spec
    reply["Subject"] = f"回复：{forward['Subject']}"
    reply["Message-ID"], reply["In-Reply-To"] = make_msgid(domain="qq.example"), forward["Message-ID"]
    reply.set_content("退回，修改意见见附件。")
    reply.add_attachment("修改意见".encode(), maintype="application", subtype=DOCX.split("/")[1], filename="修改意见.docx")
    requests_before = sum("请初审" in s for s in subjects(servers, "reviewer1"))
    deliver_reply(servers, reply.as_bytes(), "reviewer1@example.test")
    daemon.run_once(robot)
    tracking, revision, stage, status, open_tasks = snapshot(robot)
    assert (revision, status, open_tasks) == (1, "returned", [])
    assert sum("请初审" in s for s in subjects(servers, "reviewer1")) == requests_before  # no own file back
    returned = latest(servers, "unit1", "退回")
    (sent,) = [p for p in returned.iter_attachments()]
    assert sent.get_filename() == "修改意见.docx" and sent.get_payload(decode=True) == "修改意见".encode()
    assert "修改意见.docx" in returned.get_body(("plain",)).get_content()
    with Session(robot.engine) as s:
        files = s.exec(select(SubmissionFile).order_by(SubmissionFile.id)).all()
    assert [(f.filename, f.source, f.revision) for f in files] == [("稿件.txt", "unit", 1), ("修改意见.docx", "reviewer", 1)]
    assert (robot.settings.storage / files[1].path).read_bytes() == "修改意见".encode()


def test_a_reviewers_file_with_approval_is_kept_in_the_history(servers, robot):
    send(servers, gaojian(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    forward = latest(servers, "reviewer1", "请初审")
    reply = EmailMessage()
    reply["From"], reply["To"] = "张科长 <reviewer1@example.test>", forward["From"].addresses[0].addr_spec
    reply["Subject"], reply["Message-ID"] = f"回复：{forward['Subject']}", make_msgid(domain="qq.example")
    reply.set_content("通过，标题我改了一下，见附件。")
    reply.add_attachment("改过标题的稿件".encode(), maintype="application", subtype=DOCX.split("/")[1],
                         filename="定稿.docx")
    deliver_reply(servers, reply.as_bytes(), "reviewer1@example.test")
    daemon.run_once(robot)
    tracking, revision, stage, status, open_tasks = snapshot(robot)
    assert (revision, stage, status) == (1, 1, "reviewing")  # on to 审核, still revision 1
    with Session(robot.engine) as s:
        kept = s.exec(select(SubmissionFile).where(SubmissionFile.source == "reviewer")).all()
    assert [(f.filename, f.revision) for f in kept] == [("定稿.docx", 1)]


HOSTILE = Path(__file__).parents[1] / "mail" / "hostile"


def test_unusable_attachments_are_named_and_nothing_is_written_outside_storage(servers, robot):
    """A unit's new 稿件 with a password-protected .docx, a zip bomb and a file named with a path
    and a NUL: filed, every file kept under its 稿件's folder, the receipt names each file that
    cannot be opened (by its clean name) and the reviewer's forward marks it."""
    m = EmailMessage()
    m["From"], m["To"] = "沂水县科协 <unit1@example.test>", "skxkpb@example.test"
    m["Subject"], m["Message-ID"] = "【沂水县科协】科普活动材料", make_msgid(domain="163.example")
    m.set_content("各位老师好：材料见附件。")
    m.add_attachment((HOSTILE / "0001-encrypted-docx.docx").read_bytes(), maintype="application",
                     subtype=DOCX.split("/")[1], filename="活动总结.docx")
    m.add_attachment((HOSTILE / "0011-zip-bomb-256mib-of-zeros.zip").read_bytes(), maintype="application",
                     subtype="zip", filename="照片.zip")
    m.add_attachment("正文".encode(), maintype="text", subtype="plain", filename="../../../../tmp/x\x00.txt")
    send(servers, m.as_bytes(), "unit1@example.test", ["skxkpb@example.test"])
    daemon.run_once(robot)
    storage = robot.settings.storage.resolve()
    with Session(robot.engine) as s:
        (sub,) = s.exec(select(Submission)).all()
        files = s.exec(select(SubmissionFile).order_by(SubmissionFile.id)).all()
    assert len(files) == 3 and all((storage / f.path).resolve().is_relative_to(storage / sub.folder) for f in files)
    assert [bool(f.problem) for f in files] == [True, True, False]
    assert not Path("/tmp/x.txt").exists() or Path("/tmp/x.txt").read_bytes() != "正文".encode()
    receipt = latest(servers, "unit1", "回执").get_body(("plain",)).get_content()
    assert "活动总结.docx" in receipt and "打开密码" in receipt
    assert "照片.zip" in receipt and receipt.count("这个文件") == 2
    # the path is gone; the NUL reaches us as Dovecot's replacement byte, shown as one character
    assert "../" not in receipt and "\x00" not in receipt and re.search(r"3\. x.?\.txt", receipt), receipt
    forward = latest(servers, "reviewer1", "请初审").get_body(("plain",)).get_content()
    assert "活动总结.docx（无法打开：" in forward and "../" not in forward
