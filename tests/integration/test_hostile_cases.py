"""Forged and hostile mail as a table of cases (tests/cases/hostile.yaml), each run end to end
against the real Dovecot and SMTP servers: a 稿件 is set up (filed by its unit, perhaps
decided on once), the case's mail is delivered into the department mailbox, the robot runs
once, and the case's data says what must follow: the 稿件's state (revision, stage, status,
open review tasks), its files, what waits for the operator (`mailbot review held --json`),
and every mail the robot sent (read back from the SMTP server: recipients and a key phrase,
nothing more). A case may then have the operator confirm or reject what was held.

One server set serves the module (emptied between cases); each case has its own database
(a fresh SQLite file, or a PostgreSQL schema) and storage."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from conftest import PASSWORD_ENV, mailbot_main, write_config
from mailrig import build_mail, deliver, empty_mailboxes, module_servers, robot_mail, robot_sent  # noqa: F401
from sqlmodel import Session, select
from test_review import REVIEW

from mailbot.runtime import daemon
from mailbot.store import OutboxMessage, ReviewTask, Submission, SubmissionFile

pytestmark = pytest.mark.integration
CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "hostile.yaml").read_text("utf-8"))
AUTHSERV = "mx.ly.example.test"
# Which of the robot's mails a case answers: (outbox kind, recipient).
ANSWERS = {
    "receipt": ("receipt", "unit1@example.test"),
    "forward": ("review-request", "reviewer1@example.test"),
    "leader-forward": ("review-request", "leader1@example.test"),
    "returned": ("result", "unit1@example.test"),
}
UNIT1 = "沂水县科协 <unit1@example.test>"


def _ids(cases):
    return [c["name"] for c in cases]


@pytest.fixture
def robot(module_servers, make_settings):  # noqa: F811
    empty_mailboxes(module_servers)
    review = {**REVIEW["review"], "authserv_id": AUTHSERV}
    # Parsing in this process (parse_workers 0): a worker process per run costs a second of
    # CPU, and the cases are about what the robot decides, not how it spreads the parsing.
    rt = daemon.Runtime.build(make_settings(module_servers, reviewers=REVIEW["reviewers"], review=review,
                                            parse_workers=0))
    yield rt
    rt.close()


def _answering(rt, spec: dict):
    target = spec.get("reply_to")
    if target is None:
        return None
    kind, to = ANSWERS[target] if isinstance(target, str) else (target["kind"], target["to"])
    return robot_mail(rt.engine, kind, to)


def _send_case_mail(servers, rt, spec: dict, values: dict) -> tuple[bytes, str, str]:
    answering = _answering(rt, spec)
    raw, envelope = build_mail(spec, answering, values)
    to = spec.get("deliver_to") or (answering["From"].addresses[0].addr_spec if answering is not None
                                    else "skxkpb@example.test")
    local, _, domain = to.partition("@")
    to = f"{local.split('+')[0]}@{domain}"
    deliver(servers, raw, envelope, to)
    return raw, envelope, to


def _set_up(servers, rt, setup: dict | None) -> dict:
    """File the case's 稿件 (unless `setup: none`), then play the setup's steps; return the
    values a case's subject and body may use."""
    if setup == "none":
        return {}
    setup = setup or {}
    first = {"from": setup.get("by", UNIT1), "subject": setup.get("subject", "【沂水县科协】全国科普日活动信息"),
             "body": "各位老师好：我县全国科普日活动顺利举办。",
             "files": [{"name": "稿件.txt", "text": "稿件正文", "type": "application/octet-stream"}]}
    _send_case_mail(servers, rt, first, {})
    daemon.run_once(rt)
    for step in setup.get("steps", ()):
        _send_case_mail(servers, rt, step, {})
        daemon.run_once(rt)
    with Session(rt.engine) as s:
        sub = s.exec(select(Submission).order_by(Submission.id)).first()
        return {"tracking": sub.tracking}


def _state(rt) -> dict:
    with Session(rt.engine) as s:
        subs = s.exec(select(Submission).order_by(Submission.id)).all()
        first = subs[0] if subs else None
        tasks = s.exec(select(ReviewTask).where(ReviewTask.status == "open")).all()
        files = s.exec(select(SubmissionFile).order_by(SubmissionFile.id)).all()
        outbox = s.exec(select(OutboxMessage).order_by(OutboxMessage.id)).all()
        return {
            "count": len(subs),
            "submission": first and {
                "revision": first.revision, "stage": first.stage, "status": first.status,
                "open": sorted([t.revision, t.stage] for t in tasks if t.submission_id == first.id)},
            "folders": {sub.id: sub.folder for sub in subs},
            "files": [{"name": f.filename, "source": f.source, "revision": f.revision, "problem": bool(f.problem),
                       "path": f.path, "submission": f.submission_id} for f in files if f.submission_id == first.id],
            "all_files": [(f.submission_id, f.path) for f in files],
            "outbox": [(o.message_id, o.kind, o.to_address, o.status) for o in outbox],
        }


def _held(rt, tmp_path) -> list[dict]:
    cfg = write_config(rt.settings, tmp_path / "mailbot.yaml")
    proc = mailbot_main("review", "held", "--json", "--config", cfg, env={PASSWORD_ENV: "secret"})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _check(rt, servers, tmp_path, expect: dict, before: dict, relayed: int, values: dict) -> None:
    after = _state(rt)
    name = expect.get("_name", "")
    if "submissions" in expect:
        assert after["count"] == expect["submissions"], name
    if "submission" in expect:
        assert after["submission"] == expect["submission"], name
    if "files" in expect:
        got = [{k: f[k] for k in ("name", "source", "revision", "problem")} for f in after["files"]]
        want = [{"source": "unit", "revision": 1, "problem": False, **f} for f in expect["files"]]
        assert got == want, name
    held = _held(rt, tmp_path)
    want_held = [{k: str(v).replace("{tracking}", values.get("tracking", "")) for k, v in h.items()}
                 for h in expect.get("held", [])]
    assert [{k: str(h[k]) for k in w} for h, w in zip(held, want_held)] == want_held and len(held) == len(want_held), \
        (name, held)
    # Every mail the robot sent, as the SMTP server saw it: one per expected line, nothing else.
    sent = robot_sent(servers, relayed)
    new_rows = [o for o in after["outbox"] if o[0] not in {b[0] for b in before["outbox"]}]
    assert all(status == "sent" for *_, status in new_rows), new_rows  # none failed or waits
    assert sorted(o[0] for o in new_rows) == sorted(s.message_id for s in sent)
    wanted = expect.get("sent", [])
    unmatched = list(sent)
    for line in wanted:
        phrase = line["says"].replace("{tracking}", values.get("tracking", ""))
        match = next((s for s in unmatched if line["to"] in s.to and s.says(phrase)
                      and all(a in s.attachments for a in line.get("attachments", ()))), None)
        assert match is not None, (name, line, [(s.to, s.subject) for s in unmatched])
        for absent in line.get("not", ()):
            assert absent not in match.subject + match.text, (name, absent, match.text)
        unmatched.remove(match)
    assert unmatched == [], (name, [(s.to, s.subject) for s in unmatched])


def _no_file_outside(root: Path, storage: Path, before: set[Path]) -> None:
    """Nothing new next to storage (the test's own folder), and nothing at the classic targets."""
    new = {p for p in root.rglob("*") if not p.resolve().is_relative_to(storage.resolve())} - before
    assert {p for p in new if p.suffix not in (".db", ".db-wal", ".db-shm", ".yaml", ".db-journal")} == set(), new


def _no_orphans(storage: Path, state: dict) -> None:
    """Each 稿件's folder holds exactly the files its rows name: nothing stored twice or unrecorded."""
    for sub_id, folder in state["folders"].items():
        on_disk = sorted(str(p.relative_to(storage)) for p in (storage / folder).rglob("*") if p.is_file())
        assert on_disk == sorted(rel for owner, rel in state["all_files"] if owner == sub_id), on_disk


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_hostile_case(case, module_servers, robot, tmp_path):  # noqa: F811
    servers = module_servers
    values = _set_up(servers, robot, case.get("setup"))
    if case.get("expire_tokens"):
        with Session(robot.engine) as s:
            for task in s.exec(select(ReviewTask).where(ReviewTask.status == "open")).all():
                task.expires_at = robot.clock() - timedelta(minutes=1)
            s.commit()
    for step in case.get("before", ()):
        _send_case_mail(servers, robot, step, values)
        daemon.run_once(robot)
    before, relayed = _state(robot), len(servers.smtp.received)
    outside = {p for p in tmp_path.rglob("*")}
    started = time.time() - 1
    sent_once = _send_case_mail(servers, robot, case["mail"], values)
    if case.get("twice"):  # the very same message again (a replay): stored once, acted on once
        deliver(servers, *sent_once)
    daemon.run_once(robot)
    _check(robot, servers, tmp_path, {**case["expect"], "_name": case["name"]}, before, relayed, values)
    storage = robot.settings.storage
    _no_file_outside(tmp_path, storage, outside)
    state = _state(robot)
    for sub_id, rel in state["all_files"]:  # every file of a 稿件 lies inside its own folder
        path = (storage / rel).resolve()
        assert path.is_relative_to((storage / state["folders"][sub_id]).resolve()) and path.is_file(), rel
    assert [p for p in (storage / "staging").rglob("*") if p.is_file()] == []  # nothing left half-placed
    _no_orphans(storage, state)
    for name in case.get("absent", ()):  # a path the file's name pointed at: not written by this case
        assert not Path(name).exists() or Path(name).stat().st_mtime < started, name

    if "operator" in case:
        op = case["operator"]
        (hold,) = _held(robot, tmp_path)
        before, relayed = _state(robot), len(servers.smtp.received)
        cfg = write_config(robot.settings, tmp_path / "mailbot.yaml")
        args = [op["action"], str(hold["inbound_id"]), "--by", "调宣部王", *(["--reason", op["reason"]] if "reason" in op else [])]
        proc = mailbot_main("review", *args, "--config", cfg, env={PASSWORD_ENV: "secret"})
        assert proc.returncode == 0 and op["says"] in proc.stdout, proc.stdout + proc.stderr
        daemon.run_once(robot)  # sends what the operator's act queued
        _check(robot, servers, tmp_path, {**op["expect"], "_name": case["name"] + " (operator)"}, before, relayed,
               values)
        _no_orphans(robot.settings.storage, _state(robot))
        assert [p for p in (storage / "staging").rglob("*") if p.is_file()] == []
        again = mailbot_main("review", *args, "--config", cfg, env={PASSWORD_ENV: "secret"})
        assert again.returncode != 0 and "不在待确认列表中" in again.stdout, again.stdout


def test_every_case_names_what_it_guards():
    names = _ids(CASES)
    assert len(names) == len(set(names)) >= 25
    assert all(c.get("guards", "").strip() and "\n" not in c["guards"].strip() for c in CASES)
