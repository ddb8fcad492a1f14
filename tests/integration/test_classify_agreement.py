"""One classification: `mailbot parse --json` and the pipeline (store, parse worker, record)
give every fixture mail the same kind, unit and department, on the database under test.

The fixtures are every mail in tests/mail/, plus the two cases only a campaign can make:
a filled 关注情况统计表 (a form, not a 稿件) and a scan answering a campaign's reminder
(the stamped copy). Both go through the same `routing.classify`."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from conftest import MAIL, ROOT, write_config
from mailbot.pipeline import Processor, replay
from mailbot.runtime.cli import app
from mailbot.store import RawStore

pytestmark = pytest.mark.integration
MAILBOX = "skxkpb"
CAMPAIGN = {"forms_folder": str(ROOT / "config" / "forms"),
            "campaigns": [{"key": "guanzhu", "name": "关注情况统计", "template": "关注情况统计表", "department": "diaoxuan",
                           "audiences": [{"name": "县区科协", "categories": ["县区科协"], "deadline": "2027-06-30"}]}]}
NOWHERE = SimpleNamespace(host="127.0.0.1", imap_port=9, smtp_port=9, address=lambda n: f"{n}@example.test")


def campaign_mails(domain: str) -> dict[str, bytes]:
    form = EmailMessage()
    form["From"], form["To"] = "沂水县科协 <unit1@example.test>", "skxdxb@example.test"
    form["Subject"], form["Message-ID"] = "关注情况统计表", make_msgid(domain="unit.example")
    form.set_content("附件是我单位的关注情况统计表，请查收。")
    form.add_attachment((ROOT / "tests" / "forms" / "0005-guanzhu.xlsx").read_bytes(), maintype="application",
                        subtype="vnd.openxmlformats-officedocument.spreadsheetml.sheet", filename="关注情况统计表.xlsx")
    scan = EmailMessage()
    reminder = f"<mailbot.form.guanzhu.0123456789abcdef@{domain}>"
    scan["From"], scan["To"] = "沂水县科协 <unit1@example.test>", "skxdxb@example.test"
    scan["Subject"], scan["Message-ID"] = "回复：关注情况统计表 报送提醒", make_msgid(domain="unit.example")
    scan["In-Reply-To"], scan["References"] = reminder, reminder
    scan.set_content("盖章件见附件。")
    scan.add_attachment(b"%PDF-1.4\n%stamped\n", maintype="application", subtype="pdf", filename="盖章件.pdf")
    return {"form.eml": form.as_bytes(), "scan-reply.eml": scan.as_bytes()}


def test_parse_and_the_pipeline_classify_every_fixture_alike(make_settings, engine, tmp_path):
    settings = make_settings(NOWHERE, **CAMPAIGN)
    cfg = write_config(settings, tmp_path / "mailbot.yaml")
    mails = {p.name: p.read_bytes() for p in sorted(MAIL.glob("*.eml"))}
    mails.update(campaign_mails(settings.mail_domain))
    raws = RawStore(settings.storage)
    processor = Processor(engine, raws, settings=settings)
    runner = CliRunner()
    kinds = set()
    for name, data in mails.items():
        path = tmp_path / name
        path.write_bytes(data)
        result = runner.invoke(app, ["parse", str(path), "--json", "--mailbox", MAILBOX, "--config", str(cfg)])
        assert result.exit_code == 0, (name, result.output)
        cli = json.loads(result.stdout)["classification"]
        row, outcome = replay(engine, raws, data, MAILBOX, processor)
        assert row.status == "parsed", (name, outcome, row.reason)
        piped = json.loads(row.route_json)
        assert (cli["kind"], cli["unit"], cli["department"]) == (row.kind, piped["unit"], piped["department"]), name
        assert cli["reason"] == piped["reason"], name
        kinds.add(row.kind)
        if name in ("form.eml", "scan-reply.eml"):
            assert row.kind == "form", (name, piped["reason"])
    assert {"submission", "form", "auto_reply", "bounce"} <= kinds, kinds  # the cases really vary
    assert len(mails) >= 33
    processor.close()
