"""Table test: a unit's reply without a file or token is an acknowledgement, a revision
written in the body, or a question for a person (tests/cases/unit_replies.yaml)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailbot.read.quotes import new_text, reply_intent

CASES = yaml.safe_load((Path(__file__).resolve().parents[1] / "cases" / "unit_replies.yaml").read_text(encoding="utf-8"))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_reply_intent(case):
    assert reply_intent(new_text(case["text"])) == case["expect"]
