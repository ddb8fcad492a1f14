"""Table-driven parser test: every case in tests/cases/parse.yaml against its fixture.

Each case runs what `mailbot parse FILE --json` prints (`parse(bytes).to_json()`),
validates it against the shared JSON contract, then compares every contract field
with the expectation written by hand in the YAML. One test per (fixture, field), so a
report shows exactly which field of which fixture is wrong.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import pytest
import yaml
from conftest import mailbot_main

from mailbot.read.parse import parse

TESTS = Path(__file__).resolve().parents[1]
MAIL_DIR = TESTS / "mail"
CASES_FILE = TESTS / "cases" / "parse.yaml"
# The shared contract beside the repo is authoritative; tests/contract/ holds a copy for
# clones that do not have it (CI). A drift between the two fails test_contract_copy_is_current.
_SHARED_SCHEMA = Path(__file__).resolve().parents[3] / "shared/contract/parse.schema.json"
SCHEMA_FILE = _SHARED_SCHEMA if _SHARED_SCHEMA.exists() else TESTS / "contract" / "parse.schema.json"

FIELDS = [
    "message_id", "key", "subject", "from", "to", "cc", "date", "in_reply_to", "references",
    "text", "html_only", "attachments", "forwarded_messages", "large_attachment_links",
    "unit_signature", "auto_reply", "bounce", "defects",
]
ATTACHMENT_KEYS = ["filename", "safe_name", "size", "sha256", "content_type", "declared_type",
                   "disposition", "in_forwarded_message"]
FORWARDED_KEYS = ["subject", "from", "message_id"]
LINK_KEYS = ["provider", "name", "size", "expires", "url"]

CASES = yaml.safe_load(CASES_FILE.read_text(encoding="utf-8"))
CASE_IDS = [c["fixture"].removesuffix(".eml") for c in CASES]


@lru_cache(maxsize=None)
def parsed_json(fixture: str) -> str:
    """The JSON text of one fixture (cached: each fixture is parsed once per session)."""
    return json.dumps(parse((MAIL_DIR / fixture).read_bytes()).to_json(), ensure_ascii=False)


def actual(fixture: str) -> dict:
    return json.loads(parsed_json(fixture))


def defect_codes(defects: list[str]) -> set[str]:
    return {d.split(":", 1)[0].strip() for d in defects}


def project(field: str, value, want=None):
    """The part of an actual value that the contract names (extra keys are allowed).
    For forwarded messages, keys beyond the contract's (date, text) are compared when
    the expectation gives them."""
    if field == "attachments":
        return [{k: a.get(k) for k in ATTACHMENT_KEYS} for a in value]
    if field == "forwarded_messages":
        wanted = want if isinstance(want, list) else []
        out = []
        for i, f in enumerate(value):
            extra = [k for k in (wanted[i] if i < len(wanted) else {}) if k not in FORWARDED_KEYS]
            out.append({k: f.get(k) for k in [*FORWARDED_KEYS, *extra]})
        return out
    if field == "large_attachment_links":
        return [{k: link.get(k) for k in LINK_KEYS} for link in value]
    if field == "defects":
        return defect_codes(value)
    return value


def expected(field: str, value):
    if field == "defects":
        return set(value)
    return value


def test_every_fixture_has_a_case():
    on_disk = sorted(p.name for p in MAIL_DIR.glob("*.eml"))
    in_yaml = sorted(c["fixture"] for c in CASES)
    assert on_disk == in_yaml


def test_every_case_lists_every_field():
    for case in CASES:
        missing = [f for f in FIELDS if f not in case["expect"]]
        assert not missing, f"{case['fixture']}: no expectation for {missing}"


@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_contract_schema(case):
    import jsonschema

    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.validate(actual(case["fixture"]), schema)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_field(case, field):
    want = expected(field, case["expect"][field])
    got = project(field, actual(case["fixture"])[field], want)
    assert got == want, f"{case['fixture']}: {field}"


# --- the CLI ---------------------------------------------------------------------------------

CLI_FIXTURES = ["0001-gb2312-label-gbk-only-chars.eml", "0003-raw-8bit-gbk-subject-and-filename.eml"]


@pytest.mark.parametrize("fixture", CLI_FIXTURES)
def test_cli_parse_json(fixture):
    proc = mailbot_main("parse", MAIL_DIR / fixture, "--json")  # main(), in this process
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    import jsonschema

    jsonschema.validate(out, json.loads(SCHEMA_FILE.read_text(encoding="utf-8")))
    # The CLI prints what parse() returns (the fields' correctness is test_field's job).
    mine = actual(fixture)
    for field in FIELDS:
        assert out[field] == mine[field], field


def test_contract_copy_is_current():
    if not _SHARED_SCHEMA.exists():
        pytest.skip("no shared/ beside the repo to compare the copy with")
    assert (TESTS / "contract" / "parse.schema.json").read_bytes() == _SHARED_SCHEMA.read_bytes()
