"""check-config names every campaign and office mistake (issue 15 item 4): the table in
tests/cases/config_mistakes.yaml, each problem with its exact Chinese message, key and file."""

from __future__ import annotations

import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml

from mailbot.config import ConfigError, load, warnings

ROOT = Path(__file__).parents[2]
DATA = yaml.safe_load((Path(__file__).parents[1] / "cases" / "config_mistakes.yaml").read_text(encoding="utf-8"))
NOW = datetime(2026, 12, 6, 9, 0, tzinfo=timezone(timedelta(hours=8)))


def _write(case, tmp_path: Path) -> Path:
    folder = tmp_path / "office"
    folder.mkdir(parents=True)
    shutil.copytree(ROOT / "config" / "forms", folder / "forms")
    (folder / "units.yaml").write_text(case.get("roster", DATA["roster"]), encoding="utf-8")
    # the text as an operator writes it (a later key replaces the base's: YAML keeps the last)
    (folder / "mailbot.yaml").write_text(DATA["base"] + case["yaml"], encoding="utf-8")
    return folder


def _expected(rows, folder: Path) -> list[tuple[str, str, str]]:
    files = {"config": str(folder / "mailbot.yaml"), "roster": str(folder / "units.yaml")}
    fill = {"FORMS": str(folder / "forms"), "CONFIGDIR": str(folder)}

    def sub(text: str) -> str:
        for k, v in fill.items():
            text = text.replace(k, v)
        return text

    return sorted((files.get(f, sub(f)), key, sub(message)) for f, key, message in rows)


@pytest.mark.parametrize("case", DATA["cases"], ids=[c["name"] for c in DATA["cases"]])
def test_config_mistake_is_named(case, tmp_path, monkeypatch):
    folder = _write(case, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths must not depend on the working directory
    monkeypatch.delenv("MAILBOT_TEST_UNSET_DB_PASSWORD", raising=False)
    monkeypatch.setenv("P", "secret")
    path = folder / "mailbot.yaml"
    if case.get("expect"):
        with pytest.raises(ConfigError) as info:
            load(path, check_secrets=bool(case.get("secrets")))
        found = sorted((p.file, p.key, p.message) for p in info.value.problems)
        assert found == _expected(case["expect"], folder)
        assert not any(w in p.message for p in info.value.problems for w in ("Input should", "valid", "Value error"))
        return
    settings = load(path, check_secrets=bool(case.get("secrets")))
    found = sorted((p.file, p.key, p.message) for p in warnings(settings, NOW, str(path)))
    assert found == _expected(case.get("warnings", []), folder)


def test_a_department_named_by_name_becomes_its_key(tmp_path, monkeypatch):
    case = next(c for c in DATA["cases"] if c["name"] == "a department by its name is accepted everywhere")
    settings = load(_write(case, tmp_path) / "mailbot.yaml")
    assert (settings.routing.default, settings.routing.rules[0].department, settings.review.publisher,
            settings.campaigns[0].department) == ("diaoxuan", "kepu", "diaoxuan", "diaoxuan")


def test_chinese_dates_are_read(tmp_path):
    case = {"yaml": "calendar: {closed_days: [2026年12月31日], extra_workdays: ['2026.12.26']}\n"}
    settings = load(_write(case, tmp_path) / "mailbot.yaml")
    assert [str(d) for d in settings.calendar.closed_days + settings.calendar.extra_workdays] == \
        ["2026-12-31", "2026-12-26"]


def test_the_database_password_comes_from_a_file(tmp_path, monkeypatch):
    case = {"yaml": "database_url: postgresql+psycopg://mailbot@db.example.cn:5432/mailbot\n"
                    "database_password_file: db.secret\n"}
    monkeypatch.setenv("P", "secret")
    folder = _write(case, tmp_path)
    (folder / "db.secret").write_text("p@ss:word\n", encoding="utf-8")
    settings = load(folder / "mailbot.yaml", check_secrets=True)
    assert settings.db_url == "postgresql+psycopg://mailbot:p%40ss%3Aword@db.example.cn:5432/mailbot"
    monkeypatch.setenv("MAILBOT_DB_PW", "env-secret")
    case = {"yaml": "database_url: postgresql+psycopg://mailbot@db/mailbot\ndatabase_password_env: MAILBOT_DB_PW\n"}
    settings = load(_write(case, tmp_path / "b") / "mailbot.yaml", check_secrets=True)
    assert settings.db_url == "postgresql+psycopg://mailbot:env-secret@db/mailbot"


def test_without_routing_the_first_department_takes_everything(tmp_path, monkeypatch):
    monkeypatch.setenv("P", "secret")
    folder = _write({"yaml": ""}, tmp_path)
    text = (folder / "mailbot.yaml").read_text(encoding="utf-8").replace(
        "routing: {default: diaoxuan, unknown: diaoxuan}\n", "")
    (folder / "mailbot.yaml").write_text(text, encoding="utf-8")
    settings = load(folder / "mailbot.yaml")
    assert (settings.routing.default, settings.routing.unknown) == ("kepu", "kepu")
