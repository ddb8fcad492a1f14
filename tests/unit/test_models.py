"""Typed values across the parse worker's boundary: every fixture mail's `Mail` survives
to_json → mail_from_json → to_json unchanged (the handlers act on the value the worker saw),
and a Route survives its JSON."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mailbot.models import Parsed, Route, Staged, mail_from_json
from mailbot.read.parse import parse

MAIL = Path(__file__).parents[1] / "mail"
FIXTURES = sorted(MAIL.glob("*.eml"))


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_a_mail_survives_its_json(path):
    mail = parse(path.read_bytes())
    again = mail_from_json(mail.to_json())
    assert again.to_json() == mail.to_json()
    assert again.from_ == mail.from_ and again.references == mail.references
    assert [a.safe_name for a in again.attachments] == [a.safe_name for a in mail.attachments]


ROUTES = [
    Route("submission", "沂水县科协", True, "kepu", "科普部", "地址 unit1@example.test → 沂水县科协", category="县区科协"),
    Route("resubmission", None, False, "diaoxuan", "调宣部", "回复 KP-2026-0042", tracking="KP-2026-0042",
          claimed_unit="某某协会"),
    Route("auto_reply", None, False, None, None, "自动回复（X-Autoreply）"),
]


@pytest.mark.parametrize("route", ROUTES, ids=[r.kind for r in ROUTES])
def test_a_route_survives_its_json(route):
    assert Route.from_json(route.to_json()) == route


def test_what_the_worker_returns_crosses_a_process_boundary():
    parsed = Parsed("parsed", summary="{}", columns={"kind": "form"},
                    route=Route("form", "沂水县科协", True, "diaoxuan", "调宣部", "附件是报表", forms=({"index": 0},)),
                    staged=(Staged("/tmp/x/001", "表.xlsx", "表.xlsx", 10, "ab" * 32, "application/vnd.ms-excel"),))
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    assert Parsed.quarantined("无法解析").status == "quarantined"
