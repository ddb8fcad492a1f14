"""`mailbot backup DIR` and `mailbot restore DIR` round trip on the backend under test: a robot
with a filed 稿件 and a collected form is backed up, restored into an empty instance (another
storage folder, another database), and there `show`, `export` and a new mail still work."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from conftest import PG_URL, TEST_UNITS, mailbot_main, write_config
from openpyxl import load_workbook
from sqlalchemy import func, text
from sqlalchemy.engine import make_url
from sqlmodel import Session, select
from test_campaigns import CAMPAIGN, EXTRA_UNITS, send_form

from mailbot.runtime import daemon
from mailbot.store import Submission, SubmissionFile, make_engine

pytestmark = pytest.mark.integration
CHINA = timezone(timedelta(hours=8))
BEFORE_REMINDERS = datetime(2026, 11, 30, 10, 0, tzinfo=CHINA)


@pytest.fixture
def empty_db_url(tmp_path, db_url):
    """A second, empty database of the same backend: the instance restored into."""
    if not PG_URL:
        yield f"sqlite:///{tmp_path / 'restored' / 'mailbot.db'}"
        return
    name = f"mbr_{secrets.token_hex(6)}"
    admin = make_engine(PG_URL)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    yield make_url(db_url).set(database=name).render_as_string(hide_password=False)  # same search_path schema
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def submission(subject: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"] = "沂水县科协 <unit1@example.test>", "skxkpb@example.test"
    m["Subject"], m["Message-ID"] = subject, make_msgid(domain="unit.example")
    m.set_content("请审核附件中的稿件。\n沂水县科协")
    m.add_attachment(f"{subject}的正文".encode() * 200, maintype="application", subtype="pdf",
                     filename=f"{subject}.pdf")
    return m.as_bytes()


def build(servers, make_settings, storage, db_url):
    settings = make_settings(servers, units=TEST_UNITS + EXTRA_UNITS, storage=str(storage), database_url=db_url,
                             **CAMPAIGN)
    rt = daemon.Runtime.build(settings)
    rt.clock = lambda: BEFORE_REMINDERS
    return rt


def test_backup_and_restore_round_trip(servers, make_settings, tmp_path, db_url, empty_db_url, engine):
    servers.dovecot.add_user("unit3", "secret")
    source = build(servers, make_settings, tmp_path / "storage", db_url)
    servers.append("skxkpb", submission("科普日活动"))
    send_form(servers, "unit1", "沂水县科协", [("沂水县科协", 120)])
    assert daemon.run_once(source) == []
    with Session(source.engine) as s:
        (tracking,) = s.exec(select(Submission.tracking)).all()
        stored = s.exec(select(SubmissionFile)).one()
    original = (source.settings.storage / stored.path).read_bytes()
    source.close()

    folder = tmp_path / "backup"
    config = write_config(source.settings, tmp_path / "mailbot.yaml")
    done = mailbot_main("backup", folder, "--config", config)
    assert done.returncode == 0 and "备份完成" in done.stdout, done.stderr
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert manifest["backend"] == ("postgresql" if PG_URL else "sqlite")
    assert manifest["files"][f"storage/{stored.path}"]["sha256"] == hashlib.sha256(original).hexdigest()
    assert "config/mailbot.yaml" in manifest["files"] and any(f.startswith("config/forms/") for f in manifest["files"])
    assert mailbot_main("backup", folder, "--config", config).returncode == 2  # never over a backup

    # the empty instance: its own storage and database, the same mail servers
    target_settings = make_settings(servers, units=TEST_UNITS + EXTRA_UNITS, storage=str(tmp_path / "restored"),
                                    database_url=empty_db_url, **CAMPAIGN)
    target_config = write_config(target_settings, tmp_path / "restored.yaml")
    (folder / "storage" / stored.path).write_bytes(b"damaged")  # a damaged backup restores nothing
    refused = mailbot_main("restore", folder, "--config", target_config, "--force")
    assert refused.returncode == 2 and "备份已损坏" in refused.stderr and "sha256" in refused.stderr
    (folder / "storage" / stored.path).write_bytes(original)
    used = mailbot_main("restore", folder, "--config", config)
    assert used.returncode == 2 and "已经有数据" in used.stderr  # never over a working robot unless --force
    done = mailbot_main("restore", folder, "--config", target_config)
    assert done.returncode == 0 and "恢复完成" in done.stdout, done.stderr
    assert (target_settings.storage / stored.path).read_bytes() == original

    shown = json.loads(mailbot_main("show", tracking, "--json", "--config", target_config).stdout)
    assert shown["submission"]["tracking"] == tracking and shown["mail"]  # its receipt is in the history
    exported = mailbot_main("export", "guanzhu", "-o", tmp_path / "tally.xlsx", "--config", target_config)
    assert exported.returncode == 0, exported.stderr
    rows = list(load_workbook(tmp_path / "tally.xlsx")["全部数据"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == 1 and rows[0][0] == "沂水县科协" and 120 in rows[0]

    restored = daemon.Runtime.build(target_settings)  # and a new mail is filed after the restored ones
    restored.clock = lambda: BEFORE_REMINDERS
    servers.append("skxkpb", submission("科普周活动"))
    assert daemon.run_once(restored) == []
    with Session(restored.engine) as s:
        numbers = sorted(s.exec(select(Submission.tracking)).all())
        files = s.exec(select(func.count(SubmissionFile.id))).one()
    restored.close()
    assert numbers == sorted([tracking, tracking[:-4] + f"{int(tracking[-4:]) + 1:04d}"]) and files == 2

