"""`mailbot parse FILE --json --config …` carries `classification` per the contract."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import yaml
from conftest import mailbot_main

TESTS = Path(__file__).parents[1]
SHARED = TESTS.parents[1] / "shared/contract/parse.schema.json"
SCHEMA = json.loads((SHARED if SHARED.exists() else TESTS / "contract/parse.schema.json").read_text("utf-8"))


def test_parse_json_classifies_with_the_configured_roster(tmp_path):
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(yaml.safe_dump({
        "mailboxes": [{"name": "skxdxb", "host": "127.0.0.1", "tls": "plain", "user": "u", "password_env": "P"}],
        "departments": [{"key": "kepu", "name": "科普部", "prefix": "KP"},
                        {"key": "diaoxuan", "name": "调宣部", "prefix": "DX", "mailbox": "skxdxb"}],
        "units": [{"name": "兰山区科协", "category": "县区科协", "aliases": ["兰山科协"]}],
        "routing": {"rules": [{"name": "科普活动", "categories": ["县区科协"], "keywords": ["科普"],
                               "department": "kepu"}]},
    }, allow_unicode=True), "utf-8")
    fixture = TESTS / "mail" / "0025-signature-reporting-unit.eml"
    proc = mailbot_main("parse", fixture, "--json", "--config", cfg, "--mailbox", "skxdxb")  # main(), in this process
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    required = {**SCHEMA, "required": [*SCHEMA["required"], "classification"]}
    jsonschema.validate(out, required)
    c = out["classification"]
    assert c["unit"] == "兰山区科协" and c["kind"] == "submission"
    assert "主题中写有单位名称" in c["reason"] and c["department"] == "科普部" and "规则“科普活动”" in c["reason"]
