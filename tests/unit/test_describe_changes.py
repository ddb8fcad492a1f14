"""What a reload says it changed (config.describe_changes): units and campaigns by name,
other sections by key, mailboxes and storage as needing a restart."""

from __future__ import annotations

import pytest

from mailbot.config import Settings, describe_changes

BASE = {
    "mailboxes": [{"name": "box", "host": "imap.example.cn", "user": "a@example.cn", "password_env": "P"}],
    "units": [{"name": "沂水县科协", "category": "县区科协"}, {"name": "兰山区科协", "category": "县区科协"}],
    "campaigns": [{"key": "c1", "name": "关注", "template": "t", "department": "d",
                   "audiences": [{"name": "县区", "categories": ["县区科协"], "deadline": "2026-12-20"}]}],
}


def changed(**over) -> Settings:
    return Settings.model_validate({**BASE, **over})


CASES = [
    ("nothing", {}, [], []),
    ("a unit added and one edited",
     {"units": [{"name": "沂水县科协", "category": "县区科协", "addresses": ["a@qq.com"]},
                {"name": "兰山区科协", "category": "县区科协"}, {"name": "罗庄区科协"}]},
     ["units added: 罗庄区科协", "units changed: 沂水县科协 (addresses)"], []),
    ("a unit removed", {"units": [{"name": "沂水县科协", "category": "县区科协"}]},
     ["units removed: 兰山区科协"], []),
    ("a deadline moved",
     {"campaigns": [{**BASE["campaigns"][0],
                     "audiences": [{"name": "县区", "categories": ["县区科协"], "deadline": "2026-12-25"}]}]},
     ["campaign c1 changed: audiences"], []),
    ("a campaign added", {"campaigns": [*BASE["campaigns"], {**BASE["campaigns"][0], "key": "c2", "name": "二"}]},
     ["campaign added: c2 (二)"], []),
    ("a mailbox changed: restart",
     {"mailboxes": [{"name": "box", "host": "imap.163.com", "user": "a@example.cn", "password_env": "P"}]},
     [], ["mailboxes changed (takes a restart)"]),
    ("the office contact", {"office": {"contact": {"name": "王老师"}}}, ["office changed"], []),
]


@pytest.mark.parametrize("name, over, applied, restart", CASES, ids=[c[0] for c in CASES])
def test_describe_changes(name, over, applied, restart):
    assert describe_changes(changed(), changed(**over)) == (applied, restart)
