"""One typed configuration, loaded once from YAML in config/ and passed down.

Secrets (passwords, 授权码) never live in the YAML: each mailbox names an environment
variable or a file. `load()` collects every problem at once, each with the file, the
key and what is expected, in Chinese, for `mailbot check-config`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PATH = Path("config/mailbot.yaml")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mailbox(_Strict):
    """One IMAP mailbox the robot reads."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    host: str
    port: int = Field(default=993, ge=1, le=65535)
    tls: Literal["implicit", "starttls", "plain"] = "implicit"
    user: str
    password_env: str | None = None
    password_file: Path | None = None
    folder: str = "INBOX"
    quarantine_folder: str = "mailbot/quarantine"
    verify_tls: bool = True
    timeout: float = Field(default=60.0, gt=0)
    address: str | None = None  # the mailbox's e-mail address; default: user when it has an @
    smtp_host: str | None = None  # default: host with imap. replaced by smtp.
    smtp_port: int = Field(default=465, ge=1, le=65535)
    smtp_tls: Literal["implicit", "starttls", "plain"] = "implicit"
    smtp_auth: bool = True

    @property
    def email(self) -> str:
        return self.address or self.user

    @property
    def smtp_server(self) -> str:
        if self.smtp_host:
            return self.smtp_host
        return "smtp." + self.host.removeprefix("imap.") if self.host.startswith("imap.") else self.host

    @model_validator(mode="after")
    def _has_secret_source(self) -> "Mailbox":
        if not self.password_env and not self.password_file:
            raise ValueError("需要 password_env 或 password_file 之一")
        return self

    def password(self) -> str:
        """Read the password or 授权码 from the environment or the file."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise ConfigError([Problem("", f"mailboxes[{self.name}].password_env",
                                           f"环境变量 {self.password_env} 没有设置")])
            return value
        if self.password_file:
            return self.password_file.read_text(encoding="utf-8").strip()
        raise ConfigError([Problem("", f"mailboxes[{self.name}]", "没有配置 password_env 或 password_file")])


class Department(_Strict):
    """A 科室 that reviews 稿件; `mailbox` is the name of the mailbox that is its own."""

    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str
    prefix: str = Field(pattern=r"^[A-Z]{1,4}$")
    mailbox: str | None = None
    sender_name: str | None = None  # display name on its mail, e.g. 临沂市科协科普部


class Unit(_Strict):
    """A sender unit (单位) of the roster."""

    name: str = Field(min_length=2)
    aliases: list[str] = Field(default_factory=list)
    category: str = "其他"
    parent: str | None = None
    addresses: list[str] = Field(default_factory=list)
    domains: list[str] = Field(default_factory=list)


class Roster(_Strict):
    units: list[Unit] = Field(default_factory=list)


class Rule(_Strict):
    """A routing rule: a unit category or a keyword in the subject/text sends to a department."""

    name: str
    department: str
    categories: list[str] = Field(default_factory=list)
    keywords: list[str] = Field(default_factory=list)


class Routing(_Strict):
    default: str = "diaoxuan"  # 其余由调宣部负责初审
    unknown: str = "diaoxuan"  # unknown senders go here, marked as such
    rules: list[Rule] = Field(default_factory=list)


class Reviewer(_Strict):
    """A person who decides by e-mail; every address they may answer from is listed."""

    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str
    addresses: list[str] = Field(min_length=1)


class Stage(_Strict):
    """One review stage of a department: 初审 by its reviewers, 审核 by a leader …"""

    name: str
    reviewers: list[str] = Field(min_length=1)
    mode: Literal["first", "all"] = "first"  # first decision wins, or all must approve


class Review(_Strict):
    secret_env: str = "MAILBOT_REVIEW_SECRET"  # HMAC key for review tokens; else a file in storage
    token_days: float = Field(default=30.0, gt=0)
    authserv_id: str | None = None  # trust Authentication-Results only from this server
    plus_addressing: bool = False  # carry the token in skxkpb+TOKEN@… (where the provider allows)
    publisher: str | None = None  # department told what is ready for the WeChat account
    chase_after_days: int = Field(default=2, ge=1)  # working days a review may wait before a reminder
    escalate_after_days: int = Field(default=2, ge=1)  # further working days before the leader is told
    reason_wait_hours: float = Field(default=24.0, gt=0)  # a 退回 without a reason: the unit is told after this
    publish_attach_max_bytes: int = Field(default=20 * 1024 * 1024, ge=0)  # larger: the publish mail lists the files
    office_hours: str = Field(default="08:30-17:30", pattern=r"^\d\d:\d\d-\d\d:\d\d$")
    closed_days: list[date] = Field(default_factory=list)  # the office's own closed days (also: calendar.*)
    escalate_to: list[str] = Field(default_factory=list)  # default: the last stage's reviewers
    extra_workdays: list[date] = Field(default_factory=list)
    stages: dict[str, list[Stage]] = Field(default_factory=dict)  # department key -> stages


class HolidayPeriod(_Strict):
    """One holiday of a notice: 春节 2月6日至12日放假 → {name: 春节, start: …-02-06, end: …-02-12}."""

    name: str = Field(min_length=1)
    start: date
    end: date | None = None  # a one-day holiday may leave it out


class HolidayNotice(_Strict):
    """One year's 国务院办公厅关于…年部分节假日安排的通知 as the office typed it, in
    <holidays_folder>/<year>.yaml: the days off, and the weekend days worked instead (调休上班)."""

    year: int = Field(ge=2000, le=2100)  # default: the file's name
    source: str = Field(min_length=1)  # the notice's title, where the dates come from
    number: str | None = None  # 发文字号
    url: str | None = None
    published: date | None = None
    holidays: list[HolidayPeriod] = Field(min_length=1)
    workdays: list[date] = Field(default_factory=list)  # 调休上班的周六、周日


class Calendar(_Strict):
    """The office's calendar. A year with a notice in holidays_folder is read from it alone
    (chinesecalendar is not asked); review.closed_days / review.extra_workdays still count."""

    # One <year>.yaml per notice, read once by load(); not given: the folder `holidays` beside
    # the config file (config/holidays for config/mailbot.yaml), when there is one.
    holidays_folder: Path | None = None
    closed_days: list[date] = Field(default_factory=list)  # the office's own closed days
    extra_workdays: list[date] = Field(default_factory=list)  # the office's own extra working days
    years: dict[int, HolidayNotice] = Field(default_factory=dict, exclude=True)  # filled from the folder


class Audience(_Strict):
    """A group of units asked for the form, with its own deadline (毕节: 市直 10月25日, 县区 11月5日)."""

    name: str
    units: list[str] = Field(default_factory=list)  # unit names from the roster
    categories: list[str] = Field(default_factory=list)  # or every unit of these categories
    deadline: date
    inclusive: bool = False  # True: the deadline day itself counts (当日); False: "12月20日前"


class Campaign(_Strict):
    """A notice asking units for a form by a deadline."""

    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str
    template: str  # form template name (config/forms/<name>.yaml)
    department: str  # whose mailbox collects it and who is told
    audiences: list[Audience] = Field(min_length=1)
    reminder_offsets: list[int] = Field(default_factory=lambda: [7, 3, 1, -1])  # days before (−: after)
    require_stamped: bool = False  # a scan/photo (PDF/JPEG) of the stamped form beside the editable file
    attach_template: Path | None = None  # the blank form attached to reminders (checked by load())


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class Digest(_Strict):
    """The weekly digest for leaders: when, from which mailbox, to whom.

    A recipient is an e-mail address or a reviewer key. `leaders` (主要领导) get the whole
    office; `departments` maps a department key to the people who get that department's part.
    """

    enabled: bool = True
    day: Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"] = "mon"
    time: str = Field(default="08:00", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    mailbox: str | None = None  # whose SMTP account sends it; default: the first mailbox
    leaders: list[str] = Field(default_factory=list)
    departments: dict[str, list[str]] = Field(default_factory=dict)
    late_limit_days: int = Field(default=6, ge=0, le=6)  # a missed digest is still sent this long after
    weeks_in_chart: int = Field(default=12, ge=2, le=52)


class Filing(_Strict):
    move_to_unit_folder: bool = True
    folder_prefix: str = "稿件"
    unknown_unit_folder: str = "未知单位"
    max_message_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)


class LargeAttachments(_Strict):
    """超大附件 links (QQ, Exmail, 163/126, Aliyun, DingTalk) followed to the file when filed."""

    fetch: bool = True
    max_bytes: int = Field(default=1 << 30, ge=1024)  # a larger file is not downloaded (the operator is told)
    timeout: float = Field(default=60.0, gt=0)  # seconds per request
    retries: int = Field(default=3, ge=1, le=10)
    retry_delay: float = Field(default=2.0, ge=0)  # seconds, growing with each attempt
    proxy: str | None = None  # e.g. http://proxy.office.example:3128


class Alerts(_Strict):
    """When the operators (`operators:`) are mailed at once, and the daily 待处理 summary."""

    mailbox_down_minutes: float = Field(default=15.0, gt=0)  # a mailbox that cannot log in or connect
    sending_failed_minutes: float = Field(default=15.0, gt=0)  # mail that could not be sent
    repeat_hours: float = Field(default=24.0, gt=0)  # the same alert again at most this often
    max_per_hour: int = Field(default=10, ge=1)  # alert mails per hour at most (a storm is summarised)
    summary_time: str | None = Field(default="08:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")  # None: no summary
    mailbox: str | None = None  # whose SMTP account sends alerts; default: the first one not failing


class Outbox(_Strict):
    retry_initial: float = Field(default=30.0, gt=0)
    retry_max: float = Field(default=1800.0, gt=0)
    give_up_after_hours: float = Field(default=48.0, gt=0)
    daily_cap_per_sender: int = Field(default=10, ge=1)
    sending_lease: float = Field(default=600.0, gt=0)  # a row "sending" longer than this is uncertain
    timeout: float = Field(default=60.0, gt=0)


class Settings(_Strict):
    """Everything the robot needs to know; `load()` builds it."""

    timezone: str = "Asia/Shanghai"
    storage: Path = Path("var")
    database_url: str | None = None
    poll_interval: float = Field(default=60.0, gt=0)
    idle: bool = True
    idle_timeout: float = Field(default=25 * 60, gt=0)
    batch_size: int = Field(default=100, ge=1, le=1000)
    batch_bytes: int = Field(default=32 * 1024 * 1024, ge=1024 * 1024)
    reconnect_initial: float = Field(default=1.0, gt=0)
    reconnect_max: float = Field(default=300.0, gt=0)
    mark_processed: bool = True
    parse_workers: int = Field(default=1, ge=0, le=16)
    parse_timeout: float = Field(default=300.0, gt=0)
    mailboxes: list[Mailbox] = Field(min_length=1)
    departments: list[Department] = Field(default_factory=list)
    organisation: str = "市科协"
    mail_domain: str = "mailbot.local"  # right-hand side of our own Message-IDs
    roster: Path | None = None  # the unit roster (YAML); `units` below is filled from it
    units: list[Unit] = Field(default_factory=list)
    routing: Routing = Field(default_factory=Routing)
    filing: Filing = Field(default_factory=Filing)
    outbox: Outbox = Field(default_factory=Outbox)
    large_attachments: LargeAttachments = Field(default_factory=LargeAttachments)
    operators: list[str] = Field(default_factory=list)  # addresses told at once when something needs a person
    alerts: Alerts = Field(default_factory=Alerts)
    reviewers: list[Reviewer] = Field(default_factory=list)
    review: Review = Field(default_factory=Review)
    calendar: Calendar = Field(default_factory=Calendar)
    forms_folder: Path = Path("config/forms")
    campaigns: list[Campaign] = Field(default_factory=list)
    digest: Digest = Field(default_factory=Digest)

    def campaign(self, key: str) -> Campaign:
        for item in self.campaigns:
            if item.key == key:
                return item
        raise KeyError(key)

    def reviewer(self, key: str) -> Reviewer:
        for person in self.reviewers:
            if person.key == key:
                return person
        raise KeyError(key)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"不认识的时区 {value!r}，例如 Asia/Shanghai") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def db_url(self) -> str:
        """The database URL; the default is a SQLite file under the storage folder."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.storage / 'mailbot.db').resolve()}"

    def department(self, key: str) -> Department:
        for dept in self.departments:
            if dept.key == key:
                return dept
        raise KeyError(key)

    def mailbox(self, name: str) -> Mailbox:
        for box in self.mailboxes:
            if box.name == name:
                return box
        raise KeyError(name)

    def contact(self) -> Department | None:
        """The department people are told to ask (请与…联系): the publisher, else the one that
        takes what no rule claims (routing.default); None when neither is configured."""
        for key in (self.review.publisher, self.routing.default):
            for dept in self.departments:
                if dept.key == key:
                    return dept
        return None


@dataclass(frozen=True)
class Problem:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: " if self.file else ""
        return f"{where}{self.key or '（顶层）'}：{self.message}"


class ConfigError(Exception):
    """The configuration has problems; `problems` lists every one of them."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


_MESSAGES = {
    "missing": "缺少必填项",
    "extra_forbidden": "不认识这个配置项（拼写错误？）",
    "int_parsing": "应为整数",
    "int_type": "应为整数",
    "float_parsing": "应为数字",
    "float_type": "应为数字",
    "bool_parsing": "应为 true 或 false",
    "bool_type": "应为 true 或 false",
    "string_type": "应为文字",
    "list_type": "应为列表",
    "model_type": "应为一组键值（映射）",
    "dict_type": "应为一组键值（映射）",
    "too_short": "至少需要一项",
    "string_pattern_mismatch": "格式不对",
    "greater_than": "应大于 {gt}",
    "greater_than_equal": "应不小于 {ge}",
    "less_than_equal": "应不大于 {le}",
    "path_type": "应为文件路径",
    "date_type": "应为日期，例如 2027-02-06",
    "date_parsing": "应为日期，例如 2027-02-06",
    "date_from_datetime_parsing": "不是一个存在的日期（应写成 2027-02-06 的形式）",
}


def _translate(err: dict) -> str:
    kind = err.get("type", "")
    ctx = err.get("ctx") or {}
    if kind == "literal_error":
        return f"应为以下之一：{ctx.get('expected', '')}"
    if kind == "value_error":
        return str(ctx.get("error", err.get("msg", ""))).removeprefix("Value error, ")
    if kind == "string_pattern_mismatch":
        return f"格式不对（应匹配 {ctx.get('pattern', '')}）"
    template = _MESSAGES.get(kind)
    if template:
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            return template
    return f"取值不合法（{err.get('msg', '')}）"


def _key(loc: tuple, data: dict) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(path: Path | str = DEFAULT_PATH, check_secrets: bool = False) -> Settings:
    """Load and validate the YAML; raise ConfigError listing every problem.

    Relative paths in the file (storage, password_file) are taken from the working
    directory, as an operator types them.
    """
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(name, "", "找不到配置文件；可复制 config/mailbot.example.yaml 后修改")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Problem(name, "", f"无法读取配置文件（{exc.__class__.__name__}）")]) from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        raise ConfigError([Problem(name, "", f"YAML 格式错误 {where}：{getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, "", "顶层应为一组键值（映射）")])
    problems = _secret_in_yaml(name, data)
    if isinstance(data.get("roster"), str):
        units, found = load_roster(Path(data["roster"]))
        problems += found
        data.setdefault("units", units)
    problems += _add_holidays(name, data, path.parent / "holidays")
    settings = None
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems += [Problem(name, _key(e["loc"], data), _translate(e)) for e in exc.errors()]
    if settings is not None:
        problems += _cross_checks(name, settings, check_secrets)
    if problems:
        raise ConfigError(problems)
    return settings


def load_roster(path: Path) -> tuple[list, list[Problem]]:
    """The units of a roster file, and its problems (with that file's name)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return [], [Problem(str(path), "", "找不到单位名册文件（roster）")]
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return [], [Problem(str(path), "", f"单位名册无法读取（{exc.__class__.__name__}）")]
    try:
        return Roster.model_validate(data).model_dump()["units"], []
    except ValidationError as exc:
        return [], [Problem(str(path), _key(e["loc"], data), _translate(e)) for e in exc.errors()]


def _add_holidays(name: str, data: dict, default: Path) -> list[Problem]:
    """Read calendar.holidays_folder (else `default`, if it exists) into data's calendar.years."""
    cal = data.get("calendar")
    if cal is None:
        cal = data["calendar"] = {}
    if not isinstance(cal, dict) or not isinstance(cal.get("holidays_folder", ""), str):
        return []  # validation names the bad value
    problems = []
    if cal.pop("years", None) is not None:  # only files get the checks of load_holidays
        problems.append(Problem(name, "calendar.years", "节假日请写在 holidays_folder 文件夹里，每年一个 <年份>.yaml"))
    named = cal.get("holidays_folder")
    folder = Path(named) if named else default
    if not folder.is_dir():
        return problems + ([Problem(name, "calendar.holidays_folder", f"找不到节假日文件夹 {folder}")] if named else [])
    cal["holidays_folder"] = str(folder)
    cal["years"], found = load_holidays(folder)
    return problems + found


class _DatesAsText(yaml.SafeLoader):
    """Dates stay text for pydantic to read, so 2027-02-30 is named by its key instead of
    failing the whole file."""


_DatesAsText.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}


def load_holidays(folder: Path) -> tuple[dict[int, HolidayNotice], list[Problem]]:
    """The notices in a holidays folder (one <year>.yaml each), and their problems (with each file's name)."""
    notices, problems = {}, []
    for path in sorted(folder.iterdir()):
        if path.suffix not in (".yaml", ".yml"):
            continue  # a README beside the files is fine
        file = str(path)
        if not (path.stem.isdigit() and len(path.stem) == 4):
            problems.append(Problem(file, "", "文件名应为年份，例如 2027.yaml"))
            continue
        try:
            data = yaml.load(path.read_text(encoding="utf-8"), Loader=_DatesAsText) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
            problems.append(Problem(file, "", f"YAML 格式错误 {where}：{getattr(exc, 'problem', exc)}"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(file, "", f"节假日文件无法读取（{exc.__class__.__name__}）"))
            continue
        if not isinstance(data, dict):
            problems.append(Problem(file, "", "顶层应为一组键值（映射）"))
            continue
        data.setdefault("year", int(path.stem))
        try:
            notice = HolidayNotice.model_validate(data)
        except ValidationError as exc:
            problems += [Problem(file, _key(e["loc"], data), _translate(e)) for e in exc.errors()]
            continue
        found = _holiday_checks(file, notice, int(path.stem))
        problems += found
        if not found:
            notices[notice.year] = notice
    return notices, problems


def _holiday_checks(file: str, notice: HolidayNotice, year: int) -> list[Problem]:
    """Dates that cannot be what the notice said: typing mistakes, caught before they silence reminders."""
    if notice.year != year:
        return [Problem(file, "year", f"应为 {year}（与文件名一致）")]
    first, last = date(year - 1, 12, 1), date(year, 12, 31)  # 元旦 may start in December

    def outside(day: date) -> str | None:
        return None if first <= day <= last else f"{day} 不在 {year} 年（只有元旦假期可从上一年 12 月开始）"

    problems, off = [], set()
    for i, period in enumerate(notice.holidays):
        end = period.end or period.start
        for key, day in (("start", period.start), ("end", end)):
            if outside(day):
                problems.append(Problem(file, f"holidays[{i}].{key}", outside(day)))
        if end < period.start:
            problems.append(Problem(file, f"holidays[{i}].end", f"{end} 早于开始日期 {period.start}"))
        off |= {period.start + timedelta(days=n) for n in range((end - period.start).days + 1)}
    for i, day in enumerate(notice.workdays):
        if outside(day):
            problems.append(Problem(file, f"workdays[{i}]", outside(day)))
        elif day.weekday() < 5:
            problems.append(Problem(file, f"workdays[{i}]", f"{day} 是周{'一二三四五'[day.weekday()]}；"
                                                            "调休上班日应为周六或周日"))
        elif day in off:
            problems.append(Problem(file, f"workdays[{i}]", f"{day} 同时写在放假日期里"))
    return problems


def _secret_in_yaml(name: str, data: dict) -> list[Problem]:
    problems = []
    for i, box in enumerate(data.get("mailboxes") or []):
        if isinstance(box, dict) and "password" in box:
            box.pop("password")
            problems.append(Problem(name, f"mailboxes[{i}].password",
                                    "密码或授权码不能写在配置文件里；请改用 password_env（环境变量名）或 password_file（文件路径）"))
    return problems


def _cross_checks(name: str, s: Settings, check_secrets: bool) -> list[Problem]:
    problems = []
    names = [b.name for b in s.mailboxes]
    for i, box in enumerate(s.mailboxes):
        if names.index(box.name) != i:
            problems.append(Problem(name, f"mailboxes[{i}].name", f"邮箱名 {box.name} 重复"))
        if check_secrets and box.password_env and box.password_env not in os.environ:
            problems.append(Problem(name, f"mailboxes[{i}].password_env", f"环境变量 {box.password_env} 没有设置"))
        if check_secrets and box.password_file and not box.password_file.is_file():
            problems.append(Problem(name, f"mailboxes[{i}].password_file", f"文件 {box.password_file} 不存在"))
        if box.tls == "plain" and box.host not in ("127.0.0.1", "localhost", "::1"):
            problems.append(Problem(name, f"mailboxes[{i}].tls",
                                    "明文连接（plain）只允许用于本机测试；外部服务器请用 implicit 或 starttls"))
        if box.smtp_tls == "plain" and box.smtp_server not in ("127.0.0.1", "localhost", "::1"):
            problems.append(Problem(name, f"mailboxes[{i}].smtp_tls",
                                    "明文连接（plain）只允许用于本机测试；外部服务器请用 implicit 或 starttls"))
    for i, dept in enumerate(s.departments):
        if dept.mailbox and dept.mailbox not in names:
            problems.append(Problem(name, f"departments[{i}].mailbox", f"没有名为 {dept.mailbox} 的邮箱"))
    keys = {d.key for d in s.departments}
    if s.departments:
        for key_name, value in (("routing.default", s.routing.default), ("routing.unknown", s.routing.unknown)):
            if value not in keys:
                problems.append(Problem(name, key_name, f"没有键为 {value} 的科室"))
        for i, rule in enumerate(s.routing.rules):
            if rule.department not in keys:
                problems.append(Problem(name, f"routing.rules[{i}].department", f"没有键为 {rule.department} 的科室"))
    people = {r.key for r in s.reviewers}
    for dept, stages in s.review.stages.items():
        if s.departments and dept not in keys:
            problems.append(Problem(name, f"review.stages.{dept}", f"没有键为 {dept} 的科室"))
        for j, stage in enumerate(stages):
            for who in stage.reviewers:
                if who not in people:
                    problems.append(Problem(name, f"review.stages.{dept}[{j}].reviewers", f"reviewers 中没有 {who}"))
    if s.review.publisher and s.departments and s.review.publisher not in keys:
        problems.append(Problem(name, "review.publisher", f"没有键为 {s.review.publisher} 的科室"))
    problems += _digest_checks(name, s, keys, people)
    for i, campaign in enumerate(s.campaigns):
        if campaign.attach_template and not campaign.attach_template.is_file():
            problems.append(Problem(name, f"campaigns[{i}].attach_template",
                                    f"找不到文件 {campaign.attach_template}（提醒邮件所附的空白报表）"))
    seen_names: dict[str, str] = {}
    for i, unit in enumerate(s.units):
        for label in [unit.name, *unit.aliases]:
            if seen_names.setdefault(label, unit.name) != unit.name:
                problems.append(Problem(str(s.roster or name), f"units[{i}]", f"名称或简称 {label} 与 {seen_names[label]} 重复"))
    for field in ("key", "prefix", "name"):
        values = [getattr(d, field) for d in s.departments]
        for i, value in enumerate(values):
            if values.index(value) != i:
                problems.append(Problem(name, f"departments[{i}].{field}", f"{value} 重复"))
    return problems


def _digest_checks(name: str, s: Settings, keys: set[str], people: set[str]) -> list[Problem]:
    problems = []
    if s.digest.mailbox and s.digest.mailbox not in [b.name for b in s.mailboxes]:
        problems.append(Problem(name, "digest.mailbox", f"没有名为 {s.digest.mailbox} 的邮箱"))
    lists = [("digest.leaders", s.digest.leaders)]
    for dept, who in s.digest.departments.items():
        if s.departments and dept not in keys:
            problems.append(Problem(name, f"digest.departments.{dept}", f"没有键为 {dept} 的科室"))
        lists.append((f"digest.departments.{dept}", who))
    for key, who in lists:
        for item in who:
            if "@" not in item and item not in people:
                problems.append(Problem(name, key, f"{item} 既不是邮件地址，也不是 reviewers 中的人"))
    return problems
