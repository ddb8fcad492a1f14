"""Working days from the State Council's notices the office enters in config/holidays/:
they beat the chinesecalendar package, bad files are named in Chinese, and the next 90
days without a calendar are warned of (tests/cases/holidays.yaml)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import chinese_calendar
import pytest
import yaml

from mailbot import digest, outbox
from mailbot.campaigns.workdays import (
    calendar_gaps,
    is_workday,
    office_calendar,
    uncovered,
    uncovered_message,
    working_days_between,
)
from mailbot.config import (
    Calendar,
    ConfigError,
    HolidayNotice,
    Review,
    Settings,
    load,
    load_holidays,
)
from mailbot.digest.stats import Snapshot

ROOT = Path(__file__).parents[2]
CASES = yaml.safe_load((ROOT / "tests" / "cases" / "holidays.yaml").read_text("utf-8"))
TZ = ZoneInfo("Asia/Shanghai")
MAILBOX = "mailboxes: [{name: a, host: imap.example.com, user: a@example.com, password_env: MAILBOT_TEST_PW}]\n"


def days(values) -> list[date]:
    return [date.fromisoformat(str(v)) for v in values or []]


def calendar_for(case: dict):
    notices = [HolidayNotice.model_validate(CASES["notices"][n]) for n in case.get("notices", [])]
    cal = Calendar(years={n.year: n for n in notices}, closed_days=days(case.get("closed")),
                   extra_workdays=days(case.get("extra")))
    return office_calendar(SimpleNamespace(calendar=cal, review=Review(closed_days=days(case.get("review_closed")))))


@pytest.mark.parametrize("case", CASES["workday"], ids=[c["name"] for c in CASES["workday"]])
def test_workday(case):
    assert list(is_workday(date.fromisoformat(str(case["day"])), calendar=calendar_for(case))) == case["expect"]


@pytest.mark.parametrize("case", CASES["between"], ids=[c["name"] for c in CASES["between"]])
def test_working_days_between(case):
    got = working_days_between(datetime.fromisoformat(case["start"]), datetime.fromisoformat(case["end"]), TZ,
                               calendar=calendar_for(case))
    assert got == (case["days"], case["known"])


@pytest.mark.parametrize("case", CASES["coverage"], ids=[c["name"] for c in CASES["coverage"]])
def test_coverage(case):
    assert uncovered(datetime.fromisoformat(case["now"]), TZ, calendar_for(case)) == case["expect"]


@pytest.mark.parametrize("case", CASES["bad_files"], ids=[c["name"] for c in CASES["bad_files"]])
def test_bad_holiday_file(case, tmp_path):
    path = tmp_path / case["file"]
    path.write_text(case["text"], "utf-8")
    notices, problems = load_holidays(tmp_path)
    assert notices == {}
    got = [(p.key, p.message) for p in problems]
    for key, fragment in case["expect"]:
        assert any(k == key and fragment in m for k, m in got), (key, fragment, got)
    assert len(got) == len(case["expect"]), got
    assert all(p.file == str(path) for p in problems)


def test_shipped_2026_notice_matches_the_package_on_every_day():
    notices, problems = load_holidays(ROOT / "config" / "holidays")
    assert problems == []
    notice = notices[2026]
    assert notice.source == "国务院办公厅关于2026年部分节假日安排的通知" and notice.url.startswith("https://www.gov.cn/")
    cal = office_calendar(SimpleNamespace(calendar=Calendar(years={2026: notice}), review=Review()))
    day = date(2026, 1, 1)
    while day.year == 2026:
        assert is_workday(day, calendar=cal) == (chinese_calendar.is_workday(day), True), day
        if chinese_calendar.is_holiday(day) and day.weekday() < 5:
            assert day in cal.holidays, day  # each weekday off is written in the file, not guessed
        day += timedelta(days=1)


def test_every_shipped_notice_cites_its_source():
    notices, problems = load_holidays(ROOT / "config" / "holidays")
    assert problems == [] and notices
    for year, notice in notices.items():
        assert str(year) in notice.source and "节假日安排的通知" in notice.source
        assert notice.url and notice.published


# --- through load(): the folder, its errors, old keys -------------------------------------


def made_up_2027(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "2027.yaml").write_text(yaml.safe_dump(CASES["notices"]["made-up-2027"], allow_unicode=True), "utf-8")
    return folder


def test_load_reads_the_folder_once_and_the_year_wins(tmp_path):
    folder = made_up_2027(tmp_path / "holidays")
    (folder / "README.md").write_text("说明", "utf-8")  # not a notice: ignored
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(MAILBOX + f"calendar: {{holidays_folder: {folder}, closed_days: [2027-03-08]}}\n"
                   "review: {extra_workdays: [2027-03-06]}\n", "utf-8")
    settings = load(cfg)
    assert sorted(settings.calendar.years) == [2027]
    cal = office_calendar(settings)
    assert is_workday(date(2027, 2, 8), calendar=cal) == (False, True)
    assert is_workday(date(2027, 3, 8), calendar=cal) == (False, True)  # calendar.closed_days
    assert is_workday(date(2027, 3, 6), calendar=cal) == (True, True)  # review.extra_workdays (older key)
    assert calendar_gaps(settings, datetime.fromisoformat("2026-12-20T10:00:00+08:00")) == []
    # the notices are not written back into a dumped config: load() reads them from the folder again
    assert "years" not in settings.model_dump(mode="json")["calendar"]
    again = tmp_path / "again.yaml"
    again.write_text(yaml.safe_dump(settings.model_dump(mode="json", exclude_none=True), allow_unicode=True), "utf-8")
    assert sorted(load(again).calendar.years) == [2027]


def test_a_bad_file_is_named_with_its_key(tmp_path):
    folder = tmp_path / "holidays"
    folder.mkdir()
    (folder / "2027.yaml").write_text("source: 测试\nholidays: [{name: 春节, start: 2027-02-06}]\n"
                                      "workdays: [2027-02-15]\n", "utf-8")
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(MAILBOX + f"calendar: {{holidays_folder: {folder}}}\n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load(cfg)
    assert [str(p) for p in info.value.problems] == [
        f"{folder / '2027.yaml'}: workdays[0]：2027-02-15 是周一；调休上班日应为周六或周日"]


def test_a_named_folder_must_exist_the_default_need_not(tmp_path, monkeypatch):
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(MAILBOX + f"calendar: {{holidays_folder: {tmp_path / 'nope'}}}\n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load(cfg)
    assert [(p.key, p.message) for p in info.value.problems] == [
        ("calendar.holidays_folder", f"找不到节假日文件夹 {tmp_path / 'nope'}")]
    monkeypatch.chdir(tmp_path)  # no config/holidays here
    cfg.write_text(MAILBOX, "utf-8")
    assert load(cfg).calendar.years == {}


def test_notices_written_in_the_config_itself_are_refused(tmp_path):
    folder = made_up_2027(tmp_path / "holidays")
    cfg = tmp_path / "mailbot.yaml"
    cfg.write_text(MAILBOX + f"calendar:\n  holidays_folder: {folder}\n  years:\n    2027: "
                   "{source: 测试, holidays: [{name: 元旦, start: 2027-01-01}]}\n", "utf-8")
    with pytest.raises(ConfigError) as info:
        load(cfg)
    assert [(p.key, p.message) for p in info.value.problems] == [
        ("calendar.years", "节假日请写在 holidays_folder 文件夹里，每年一个 <年份>.yaml")]


# --- the warning in words, and in the digest ----------------------------------------------


def settings_without_2027(**over) -> Settings:
    return Settings.model_validate({"mailboxes": [{"name": "a", "host": "imap.example.com", "user": "a@example.com",
                                                   "password_env": "X"}], "organisation": "临沂市科协", **over})


def test_the_warning_names_the_year_and_the_file():
    settings = settings_without_2027()
    assert uncovered_message(2027, Path("config/holidays")) == (
        "2027年的节假日安排尚未录入，提醒按周一至周五计算；请按国务院通知在 config/holidays/2027.yaml 中录入。")
    assert calendar_gaps(settings, datetime.fromisoformat("2026-12-20T10:00:00+08:00")) == [
        {"year": 2027, "file": "config/holidays/2027.yaml", "message": uncovered_message(2027, "config/holidays")}]
    assert calendar_gaps(settings, datetime.fromisoformat("2026-09-01T10:00:00+08:00")) == []


@pytest.mark.parametrize("now,department,shown", [
    ("2026-12-20T10:00:00+08:00", None, True),
    ("2026-12-20T10:00:00+08:00", "kepu", False),  # a department's digest is not the place
    ("2026-09-01T10:00:00+08:00", None, False),
])
def test_the_office_digest_carries_the_warning(now, department, shown):
    settings = settings_without_2027(departments=[{"key": "kepu", "name": "科普部", "prefix": "KP"}])
    moment = datetime.fromisoformat(now)
    period = digest.period_for(moment, settings.digest, settings.tz)
    content = digest.build(Snapshot(department=department), period, settings, moment)
    _subject, text, html = outbox.render("digest", **content, greeting="王主席", chart_src=None,
                                         attachment_name="周报明细.xlsx")
    line = "2027年的节假日安排尚未录入，该年的催办和报表提醒将按周一至周五计算；请管理员按国务院通知在 config/holidays/2027.yaml 中录入。"
    assert (line in text) is shown and (line in html) is shown
