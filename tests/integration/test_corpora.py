"""Every raw message of the public corpora (tests/corpora/) goes through ingestion over a
real Dovecot: each is parsed or quarantined with a reason, none is lost, and the Chinese
samples decode to the right text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from imapclient.exceptions import IMAPClientError
from sqlmodel import Session, select

from mailbot import pipeline
from mailbot.read.parse import read_key
from mailbot.runtime import daemon
from mailbot.store import InboundMessage, MessageCopy

pytestmark = pytest.mark.integration
CORPORA = Path(__file__).parents[1] / "corpora"
CHINESE = yaml.safe_load((Path(__file__).parents[1] / "cases" / "corpora_chinese.yaml").read_text("utf-8"))


def corpus_files() -> list[Path]:
    rows = [line.split("\t") for line in (CORPORA / "MANIFEST.tsv").read_text("utf-8").splitlines()[1:]]
    return [CORPORA / r[0] / r[1] for r in rows if r[3] == "raw-message"]


def test_every_corpus_message_is_parsed_or_quarantined_none_lost(servers, make_settings):
    files = corpus_files()
    assert len(files) == 211
    appended, replayed = {}, []
    with servers.imap("skxdxb") as imap:
        for path in files:
            try:
                uid = imap.append("INBOX", path.read_bytes())
            except IMAPClientError:  # the server refuses it (e.g. NUL bytes): replay the file instead
                replayed.append(path)
                continue
            appended[path] = uid
    rt = daemon.Runtime.build(make_settings(servers, boxes=("skxdxb",)))
    assert daemon.run_once(rt) == []
    for path in replayed:
        row, outcome = pipeline.replay(rt.engine, rt.raws, path.read_bytes(), "skxdxb")
        assert outcome in ("parsed", "quarantined", "duplicate"), (path, outcome)

    with Session(rt.engine) as s:
        copies = s.exec(select(MessageCopy)).all()
        inbound = {r.id: r for r in s.exec(select(InboundMessage)).all()}
    assert len(copies) == len(appended)  # every message on the server is accounted for
    assert all(c.inbound_id in inbound for c in copies)
    assert {r.status for r in inbound.values()} <= {"parsed", "quarantined"}
    # the content fingerprint of each stored message (the robot computes it only for a clash)
    by_fingerprint = {read_key(rt.raws.read(r.raw_path))[2]: r for r in inbound.values()}
    by_message_id = {r.message_id: r for r in inbound.values() if r.message_id}
    for path in files:  # each file is a stored message (or a copy of one with the same content)
        # Dovecot turns NUL bytes into 0x80 on APPEND: compare with what the server holds
        message_id, _key, fingerprint = read_key(path.read_bytes().replace(b"\x00", b"\x80"))
        assert fingerprint in by_fingerprint or message_id in by_message_id, path
    quarantined = {Path(r.raw_path).name: r for r in inbound.values() if r.status == "quarantined"}
    assert all("不是一封可读的邮件" in r.reason for r in quarantined.values())
    not_mail = {p for p in files if p.parent.name == "input" and p.suffix == ".txt"}  # plain text, no header
    assert {by_fingerprint[read_key(p.read_bytes())[2]].id for p in not_mail} == \
        {r.id for r in quarantined.values()}
    for case in CHINESE:
        check_chinese(case, by_fingerprint)


def check_chinese(case, by_fingerprint) -> None:
    path = CORPORA / case["file"]
    row = by_fingerprint[read_key(path.read_bytes().replace(b"\x00", b"\x80"))[2]]
    got = json.loads(row.parsed_json)
    name = case["file"]
    if "subject" in case:
        assert got["subject"] == case["subject"], name
    if "subject_contains" in case:
        assert case["subject_contains"] in got["subject"], name
    if "from_name" in case:
        assert got["from"]["name"] == case["from_name"], name
    if "to_names" in case:
        assert [a["name"] for a in got["to"]][: len(case["to_names"])] == case["to_names"], name
    if "text_contains" in case:
        assert case["text_contains"] in got["text"], name
    if "attachments" in case:
        assert [a["filename"] for a in got["attachments"]] == case["attachments"], name
    assert "\ufffd" not in got["subject"] + got["from"]["name"], name
