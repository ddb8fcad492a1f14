"""The console's pure checks as tables (tests/cases/web.yaml): where sign-in may send a
person next, and sign-in throttling per user and address."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from mailbot.web.security import NotFound, Throttle, inside, safe_next

CASES = yaml.safe_load((Path(__file__).parents[1] / "cases" / "web.yaml").read_text(encoding="utf-8"))
START = datetime(2026, 12, 9, 2, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("case", CASES["safe_next"], ids=lambda c: repr(c["given"]))
def test_safe_next(case):
    assert safe_next(case["given"]) == case["expect"]


@pytest.mark.parametrize("case", CASES["throttle"], ids=lambda c: c["why"])
def test_throttle(case):
    throttle = Throttle(3, timedelta(minutes=15))
    for name, address, minute in case["fails"]:
        throttle.failed(name, address, START + timedelta(minutes=minute))
    assert throttle.blocked(*case["who"], START + timedelta(minutes=case["at"])) is case["expect"]


def test_a_success_clears_the_count():
    throttle = Throttle(1, timedelta(minutes=15))
    throttle.failed("op", "1.1.1.1", START)
    assert throttle.blocked("op", "1.1.1.1", START)
    throttle.cleared("op", "1.1.1.1")
    assert not throttle.blocked("op", "1.1.1.1", START)


@pytest.mark.parametrize("rel", ["../outside.txt", "/etc/passwd", "a/../../outside.txt", "link", "a", "missing"])
def test_paths_outside_storage_or_not_files_are_not_found(tmp_path, rel):
    storage = tmp_path / "storage"
    (storage / "a").mkdir(parents=True)
    (tmp_path / "outside.txt").write_text("x")
    (storage / "link").symlink_to(tmp_path / "outside.txt")
    with pytest.raises(NotFound):
        inside(storage, rel)


def test_a_file_inside_storage_is_found(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b.txt").write_text("x")
    assert inside(tmp_path, "a/b.txt") == (tmp_path / "a" / "b.txt").resolve()
