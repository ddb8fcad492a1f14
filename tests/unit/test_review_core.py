"""The pure review core as tables: who may decide, what a decision does, which tokens a
reply carries, and which Authentication-Results are believed."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from mailbot import review
from mailbot.models import mail_from_json
from mailbot.read.parse import parse

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "review.yaml").read_text("utf-8"))
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=timezone.utc)


def task(state: str | None) -> review.TaskView | None:
    if state is None:
        return None
    expires = NOW - timedelta(seconds=1) if state == "expired" else NOW + timedelta(days=30)
    return review.TaskView("0" * 32, "zhang", frozenset({"zhang@ly.example", "12345@qq.example"}),
                           "open" if state == "expired" else state, expires)


@pytest.mark.parametrize("case", CASES["judge"], ids=[c["name"] for c in CASES["judge"]])
def test_judge(case):
    everyone = {"zhang@ly.example", "12345@qq.example", "li@ly.example"}
    verdict = review.judge(case["sender"], task(case["task"]), case["decision"], case["auth"], NOW,
                           case["sender"].lower() in everyone, case.get("sender_issue"))
    assert [verdict.action, verdict.code] == case["expect"]


@pytest.mark.parametrize("case", CASES["transition"])
def test_transition(case):
    out = review.transition(case["decision"], case["stage"], case["stages"], case["mode"], case["approvals"],
                            case["reviewers"])
    assert [out.kind, out.next_stage] == case["expect"]


@pytest.mark.parametrize("case", CASES["auth"], ids=[c["name"] for c in CASES["auth"]])
def test_auth_verdict(case):
    headers = [("Authentication-Results", h) for h in case["headers"]]
    assert review.auth_verdict(headers, case["id"]) is case["expect"]


def test_tokens_from_subject_references_and_plus_address():
    t1, t2, t3 = "a" * 32, "b" * 32, "c" * 32
    mail = mail_from_json({"subject": f"回复：RE: 回复：［KP-2026-0042／{t1}］ 请初审", "in_reply_to": None,
                           "references": [f"<mailbot.review.KP-2026-0042.{t2}@ly.example>", "<other@x>"],
                           "to": [{"name": "", "address": f"skxkpb+{t3}@ly.example"}], "cc": []})
    assert review.find_tokens(mail) == [t1, t2, t3]
    assert review.find_tokens(mail_from_json({"subject": "[KP-2026-0042] 回执", "references": []})) == []


def test_tokens_are_128_bit_hmacs_that_differ_per_stage_and_reviewer():
    a = review.make_token(b"k", "KP-2026-0042", 1, 0, "zhang", "n")
    assert len(a) == 32 and int(a, 16) >= 0
    assert a != review.make_token(b"k", "KP-2026-0042", 1, 1, "zhang", "n")
    assert a != review.make_token(b"k", "KP-2026-0042", 1, 0, "li", "n")
    assert a != review.make_token(b"other", "KP-2026-0042", 1, 0, "zhang", "n")


def test_attention_flags():
    assert review.attention_flags(["关于内部资料的说明", "附件：秘密.docx"]) == ["含“秘密”字样", "含“内部”字样"]


@pytest.mark.parametrize("case", CASES["senders"], ids=[c["name"] for c in CASES["senders"]])
def test_one_sender(case):
    head = "".join(f"{k}: {v}\r\n" for k, v in case["headers"].items())
    raw = f"{head}To: skxkpb@ly.example\r\nSubject: =?UTF-8?B?6YCa6L+H?=\r\nMessage-ID: <a@b>\r\n\r\n通过\r\n"
    mail = parse(raw.encode("utf-8"))
    assert review.sender_problem(mail) == case["expect"]
    assert review.sender_problem(mail_from_json(mail.to_json())) == case["expect"]  # as the handler sees it
