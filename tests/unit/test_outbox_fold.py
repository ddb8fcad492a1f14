"""outbox.fold.fold_words, the fast fold of a Chinese Subject: the stdlib's exact bytes for
every value it takes (tests/cases/outbox_fold.yaml, then random values), None otherwise."""

from __future__ import annotations

import random
from email.policy import SMTP
from pathlib import Path

import pytest
import yaml

from mailbot.outbox.fold import fold_words

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "outbox_fold.yaml").read_text("utf-8"))


def stdlib(name: str, value: str) -> bytes:
    return SMTP.fold_binary(*SMTP.header_store_parse(name, value))


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fold_words_gives_the_stdlib_bytes_or_declines(case):
    name = case.get("header", "Subject")
    got = fold_words(name, case["value"])
    assert (got is not None) == case["fast"]
    if got is not None:
        assert got == stdlib(name, case["value"])


CJK = [chr(c) for c in range(0x4E00, 0x4E00 + 2000)]
PUNCT = list("：《》【】（），。、！？“”‘’；—…·")
ASCII = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:/#()[]!*+=?\"'<>@,;&%$^~`{}|\\")
OTHER = ["😀", "👍", "é", "ü", "ß", "Ω", "€", " ", "\t", "\u3000"]


def test_fold_words_matches_the_stdlib_on_random_values():
    rnd = random.Random(20261206)  # fixed: the same values every run
    taken = 0
    for _ in range(3000):
        pool = rnd.choice([CJK, CJK + PUNCT, CJK + ASCII, CJK + ASCII + PUNCT + OTHER])
        head = " ".join("".join(rnd.choice(ASCII) for _ in range(rnd.randint(1, 14)))
                        for _ in range(rnd.randint(0, 3)))
        body = "".join(rnd.choice(pool) for _ in range(rnd.randint(0, rnd.choice([5, 30, 80, 200]))))
        value = f"{head} {body}" if head else body
        got = fold_words("Subject", value)
        if got is not None:
            taken += 1
            assert got == stdlib("Subject", value), value
    assert taken > 500  # the fast path is really exercised
