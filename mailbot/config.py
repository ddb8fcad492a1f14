"""One typed configuration, loaded once from YAML in config/ and passed down.

Secrets (passwords, 授权码) never live in the YAML: each mailbox names an environment
variable or a file. `load()` collects every problem at once, each with the file, the
key and what is expected, in Chinese, for `mailbot check-config`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

DEFAULT_PATH = Path("config/mailbot.yaml")


_DATE_FORMS = (re.compile(r"^(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?$"),
               re.compile(r"^(\d{4})[-./](\d{1,2})[-./](\d{1,2})$"))
_DATE_NO_YEAR = re.compile(r"^(\d{1,2})\s*月\s*(\d{1,2})\s*[日号]?(前|之前|以前)?$")


def _read_date(value):
    """A date as offices write it: 2026-12-20, 2026年12月20日, 2026.12.20 (not 12月20日: which year?)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    for form in _DATE_FORMS:
        found = form.match(text)
        if found:
            try:
                return date(*(int(g) for g in found.groups()))
            except ValueError:
                raise ValueError(f"{text} 不是一个存在的日期（请写成 2026-12-20 或 2026年12月20日）") from None
    if _DATE_NO_YEAR.match(text):
        raise ValueError(f"{text} 没有写年份（请写成 2026-12-20 或 2026年12月20日）")
    raise ValueError(f"{text} 不是日期（请写成 2026-12-20 或 2026年12月20日）")


Day = Annotated[date, BeforeValidator(_read_date)]  # a date of the YAML, Chinese spellings accepted


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


class Contact(_Strict):
    """Who people may call about the robot's mail: shown as 联系人：… 电话：… in every mail
    to units and reviewers."""

    name: str = Field(min_length=1)
    phone: str | None = None


class OfficeInfo(_Strict):
    """The office itself, as its notices name it (nothing of it is written in the code)."""

    city: str | None = None  # the city or region named before unit names (stripped when matching)
    region_prefixes: list[str] = Field(default_factory=list)  # other such prefixes people write
    contact: Contact | None = None  # one per office; a department may name its own

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Prefixes of unit names that people leave out, longest first (the city, then 市)."""
        names = {p for p in [self.city, *self.region_prefixes] if p}
        names |= {p.removesuffix("市") for p in names if p.endswith("市") and len(p) > 2}
        return tuple(sorted(names, key=len, reverse=True)) + ("市",)


class Department(_Strict):
    """A 科室 that reviews 稿件; `mailbox` is the name of the mailbox that is its own."""

    key: str = Field(pattern=r"^[a-z0-9_-]+$")
    name: str
    prefix: str = Field(pattern=r"^[A-Z]{1,4}$")
    mailbox: str | None = None
    sender_name: str | None = None  # display name on its mail, e.g. the office and department name
    contact: Contact | None = None  # overrides office.contact on this department's mail


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
    default: str | None = None  # what no rule claims (其余由…负责初审); not given: the first department
    unknown: str | None = None  # unknown senders go here, marked as such; not given: the first department
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
    forward_attach_max_bytes: int = Field(default=25 * 1024 * 1024, ge=0)  # a forward attaches files up to this total
    office_hours: str = Field(default="08:30-17:30", pattern=r"^\d\d:\d\d-\d\d:\d\d$")
    closed_days: list[Day] = Field(default_factory=list)  # the office's own closed days (also: calendar.*)
    escalate_to: list[str] = Field(default_factory=list)  # default: the last stage's reviewers
    extra_workdays: list[Day] = Field(default_factory=list)
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
    closed_days: list[Day] = Field(default_factory=list)  # the office's own closed days
    extra_workdays: list[Day] = Field(default_factory=list)  # the office's own extra working days
    years: dict[int, HolidayNotice] = Field(default_factory=dict, exclude=True)  # filled from the folder


class Audience(_Strict):
    """A group of units asked for the form, with its own deadline (e.g. city units by one date, county offices by a later one)."""

    name: str
    units: list[str] = Field(default_factory=list)  # unit names from the roster
    categories: list[str] = Field(default_factory=list)  # or every unit of these categories
    deadline: Day  # 2026-12-20 or 2026年12月20日
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


class Web(_Strict):
    """The staff console (`mailbot web`; the daemon starts it too when `enabled`).

    The session-signing key comes from the environment variable `secret_env`, else a
    private file `web.secret` in storage, made once (never from this file)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    secret_env: str = "MAILBOT_WEB_SECRET"
    session_hours: float = Field(default=12.0, gt=0)
    secure_cookies: bool = False  # set when the console is served over HTTPS (a reverse proxy)
    sign_in_attempts: int = Field(default=5, ge=1)  # failed sign-ins per user and address …
    sign_in_window_minutes: float = Field(default=15.0, gt=0)  # … within this many minutes


class Health(_Strict):
    """Thresholds of `mailbot health` (and the console's /healthz): past them, a problem."""

    mailbox_stale_minutes: float = Field(default=15.0, gt=0)  # readers search at least every minute
    outbox_max_pending: int = Field(default=200, ge=1)  # mail due now but not sent
    outbox_max_age_minutes: float = Field(default=30.0, gt=0)  # the oldest mail due and not sent
    heartbeat_stale_minutes: float = Field(default=5.0, gt=0)  # jobs record a heartbeat every minute
    min_free_mb: int = Field(default=1024, ge=0)  # free space on the storage's file system
    smtp_timeout: float = Field(default=10.0, gt=0)


class Logging(_Strict):
    """How the daemon and the CLI log: plain text or one JSON object per line."""

    format: Literal["text", "json"] = "text"
    timezone: Literal["utc", "office"] = "utc"  # timestamps in UTC or the office's zone; the record says which
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


class Settings(_Strict):
    """Everything the robot needs to know; `load()` builds it."""

    timezone: str = "Asia/Shanghai"
    storage: Path = Path("var")
    database_url: str | None = None  # without its password: that comes from one of the two below
    database_password_env: str | None = None  # an environment variable holding the database password
    database_password_file: Path | None = None  # or a file holding it (e.g. /run/secrets/db)
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
    reload_check: float = Field(default=15.0, ge=0)  # seconds between looks at the config files (0: SIGHUP only)
    mailboxes: list[Mailbox] = Field(min_length=1)
    departments: list[Department] = Field(default_factory=list)
    organisation: str = "市科协"
    office: OfficeInfo = Field(default_factory=OfficeInfo)
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
    web: Web = Field(default_factory=Web)
    health: Health = Field(default_factory=Health)
    logging: Logging = Field(default_factory=Logging)

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

    @model_validator(mode="before")
    @classmethod
    def _first_department_by_default(cls, data):
        """routing.default and routing.unknown, when not given: the first department's key."""
        if not isinstance(data, dict):
            return data
        depts = data.get("departments")
        first = depts[0].get("key") if isinstance(depts, list) and depts and isinstance(depts[0], dict) else None
        routing = data.get("routing", {})
        if first is None or not isinstance(routing, dict):
            return data
        filled = {k: routing.get(k) or first for k in ("default", "unknown")}
        return {**data, "routing": {**routing, **filled}}

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
            password = self.database_password()
            if password is None:
                return self.database_url
            scheme, sep, rest = self.database_url.partition("://")
            creds, at, host = rest.rpartition("@")
            if not at:
                return self.database_url
            user = creds.split(":", 1)[0]
            return f"{scheme}{sep}{user}:{quote(password, safe='')}@{host}"
        return f"sqlite:///{(self.storage / 'mailbot.db').resolve()}"

    def database_password(self) -> str | None:
        """The database password from database_password_env or database_password_file, if set."""
        if self.database_password_env:
            value = os.environ.get(self.database_password_env)
            if value is None:
                raise ConfigError([Problem("", "database_password_env",
                                           f"环境变量 {self.database_password_env} 没有设置")])
            return value
        if self.database_password_file:
            try:
                return self.database_password_file.read_text(encoding="utf-8").strip()
            except OSError:
                raise ConfigError([Problem("", "database_password_file",
                                           f"无法读取文件 {self.database_password_file}")]) from None
        return None

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

    def contact_person(self, department: str | None = None) -> Contact | None:
        """The person named in a mail (联系人：… 电话：…): the department's own, else the office's."""
        for dept in self.departments:
            if dept.key == department and dept.contact:
                return dept.contact
        return self.office.contact

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
    "string_too_short": "太短（至少 {min_length} 个字）",
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
    return "取值不合法"


# PyYAML's problems, said in Chinese (the file and line are given beside).
_YAML_PROBLEMS = (
    ("found character '\\t'", "含有制表符（Tab）；请用空格缩进"),
    ("mapping values are not allowed", "这里不能有冒号；值里含冒号（：或 :）时请给整个值加引号"),
    ("could not find expected ':'", "缺少冒号；每一项应写成 键: 值"),
    ("expected <block end>", "缩进没有对齐；同一层的项应缩进相同的空格数"),
    ("expected ',' or ']'", "方括号 [ ] 没有闭合"),
    ("expected ',' or '}'", "花括号 { } 没有闭合"),
    ("found undefined alias", "出现了未定义的 * 引用；值以 * 开头时请加引号"),
    ("found unexpected end of stream", "引号没有闭合"),
    ("found duplicate anchor", "& 锚点重复"),
)


def _yaml_problem(exc: Exception) -> str:
    problem = str(getattr(exc, "problem", "") or "")
    for english, chinese in _YAML_PROBLEMS:
        if english in problem:
            return chinese
    return "格式不对；请检查这一行的缩进、冒号和引号"


def _key(loc: tuple, data: dict) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def load(path: Path | str = DEFAULT_PATH, check_secrets: bool = False) -> Settings:
    """Load and validate the YAML; raise ConfigError listing every problem.

    Relative paths in the file (storage, roster, forms_folder, password_file, attach_template,
    holidays_folder) are taken from the config file's folder, so the robot reads the same
    files whatever the working directory (a path that exists only from the working
    directory is still found, as older configs wrote them).
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
        data = yaml.load(text, Loader=_DatesAsText) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"第 {mark.line + 1} 行第 {mark.column + 1} 列" if mark else ""
        raise ConfigError([Problem(name, "", f"YAML 格式错误 {where}：{_yaml_problem(exc)}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([Problem(name, "", "顶层应为一组键值（映射）")])
    problems = _secret_in_yaml(name, data)
    _resolve_paths(data, path.parent)
    problems += _department_names_as_keys(data)
    roster_file = name
    if isinstance(data.get("roster"), str):
        roster_file = data["roster"]
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
        problems += _campaign_checks(name, settings)
        problems += _address_checks(name, roster_file, settings)
    if problems:
        raise ConfigError(problems)
    return settings


# Keys holding paths, resolved from the config file's folder: (list key or None, item key).
_PATH_KEYS = ((None, "storage"), (None, "roster"), (None, "forms_folder"), (None, "database_password_file"),
              ("mailboxes", "password_file"), ("campaigns", "attach_template"))


def _resolve_paths(data: dict, folder: Path) -> None:
    def resolve(value):
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            return value
        beside = Path(os.path.normpath(folder.absolute() / value))  # `..` taken as written, links kept
        if not beside.exists() and Path(value).exists():  # an older config, written from the CWD
            return os.path.normpath(Path(value).absolute())
        return str(beside)

    for group, key in _PATH_KEYS:
        items = [data] if group is None else [i for i in (data.get(group) or []) if isinstance(i, dict)]
        for item in items if isinstance(items, list) else []:
            if key in item:
                item[key] = resolve(item[key])
    if "forms_folder" not in data and (folder / "forms").is_dir():  # the templates beside the config
        data["forms_folder"] = str((folder / "forms").resolve())
    cal = data.get("calendar")
    if isinstance(cal, dict) and cal.get("holidays_folder"):
        cal["holidays_folder"] = resolve(cal["holidays_folder"])


def _department_names_as_keys(data: dict) -> list[Problem]:
    """A department may be named by its key or its name wherever one is
    expected: names become keys here, so the checks after see keys only."""
    depts = [d for d in (data.get("departments") or []) if isinstance(d, dict)]
    by_name = {str(d.get("name")): d.get("key") for d in depts if d.get("key") and d.get("name")}
    if not by_name:
        return []

    def key(value):
        return by_name.get(value, value) if isinstance(value, str) else value

    for section, field in (("routing", "default"), ("routing", "unknown"), ("review", "publisher")):
        part = data.get(section)
        if isinstance(part, dict) and field in part:
            part[field] = key(part[field])
    routing = data.get("routing")
    for rule in (routing.get("rules") or []) if isinstance(routing, dict) else []:
        if isinstance(rule, dict) and "department" in rule:
            rule["department"] = key(rule["department"])
    for campaign in data.get("campaigns") or []:
        if isinstance(campaign, dict) and "department" in campaign:
            campaign["department"] = key(campaign["department"])
    for section, field in (("review", "stages"), ("digest", "departments")):
        part = data.get(section)
        if isinstance(part, dict) and isinstance(part.get(field), dict):
            part[field] = {key(k): v for k, v in part[field].items()}
    return []


def form_template_names(folder: Path) -> set[str]:
    """The `name:` of every form template file in the folder (what campaigns refer to)."""
    names = set()
    for file in sorted(folder.glob("*.y*ml")) if folder.is_dir() else []:
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue  # the forms loader names the broken file
        if isinstance(data, dict) and data.get("name"):
            names.add(str(data["name"]))
    return names


def _campaign_checks(name: str, s: Settings) -> list[Problem]:
    """What makes a campaign silently do nothing: a template, department, audience category or
    unit that does not exist."""
    problems: list[Problem] = []
    if not s.campaigns:
        return problems
    templates = form_template_names(s.forms_folder)
    keys = {d.key for d in s.departments}
    categories = {u.category for u in s.units}
    units = {u.name for u in s.units}
    aliases = {alias: u.name for u in s.units for alias in u.aliases}
    for i, c in enumerate(s.campaigns):
        where = f"campaigns[{i}]"
        if c.template not in templates:
            known = "、".join(sorted(templates)) or "无"
            problems.append(Problem(name, f"{where}.template",
                                    f"找不到名为 {c.template} 的报表模板（{s.forms_folder} 中有：{known}）"))
        if s.departments and c.department not in keys:
            problems.append(Problem(name, f"{where}.department",
                                    f"没有键或名称为 {c.department} 的科室（可写 "
                                    f"{'、'.join(d.key + ' 或 ' + d.name for d in s.departments)}）"))
        for j, aud in enumerate(c.audiences):
            for k, cat in enumerate(aud.categories):
                if cat not in categories:
                    problems.append(Problem(name, f"{where}.audiences[{j}].categories[{k}]",
                                            f"单位名册中没有类别为 {cat} 的单位，这一类不会收到提醒"))
            for k, unit in enumerate(aud.units):
                if unit in aliases:
                    problems.append(Problem(name, f"{where}.audiences[{j}].units[{k}]",
                                            f"{unit} 是 {aliases[unit]} 的简称；这里请写名册中的全称"))
                elif unit not in units:
                    problems.append(Problem(name, f"{where}.audiences[{j}].units[{k}]",
                                            f"单位名册中没有 {unit}"))
            if not aud.categories and not aud.units:
                problems.append(Problem(name, f"{where}.audiences[{j}]", "没有写 categories 或 units，没有单位会收到通知"))
    return problems


def _address_checks(name: str, roster_file: str, s: Settings) -> list[Problem]:
    """E-mail addresses that cannot be addresses (no @)."""
    problems = []
    for i, unit in enumerate(s.units):
        for j, address in enumerate(unit.addresses):
            if "@" not in address:
                problems.append(Problem(roster_file, f"units[{i}].addresses[{j}]",
                                        f"{address} 不是邮件地址（缺少 @）"))
    for i, person in enumerate(s.reviewers):
        for j, address in enumerate(person.addresses):
            if "@" not in address:
                problems.append(Problem(name, f"reviewers[{i}].addresses[{j}]", f"{address} 不是邮件地址（缺少 @）"))
    for i, box in enumerate(s.mailboxes):
        if box.address is not None and "@" not in box.address:
            problems.append(Problem(name, f"mailboxes[{i}].address", f"{box.address} 不是邮件地址（缺少 @）"))
    return problems


def warnings(settings: Settings, now: datetime, file: str = "") -> list[Problem]:
    """What is allowed but probably a mistake: a deadline already past, a password in the
    database URL. `check-config` shows them; the robot still starts."""
    found = []
    today = now.astimezone(settings.tz).date()
    for i, c in enumerate(settings.campaigns):
        for j, aud in enumerate(c.audiences):
            if aud.deadline < today:
                found.append(Problem(file, f"campaigns[{i}].audiences[{j}].deadline",
                                     f"截止日期 {aud.deadline} 已经过去（{c.name}，{aud.name}），不会再发提醒"))
    for i, box in enumerate(settings.mailboxes):
        if box.address is None and "@" not in box.user:
            found.append(Problem(file, f"mailboxes[{i}].address",
                                 f"用户名 {box.user} 不是邮件地址；机器人发出的邮件会用它作发件地址，"
                                 "请在 address 中写明这个邮箱的地址"))
    url = settings.database_url or ""
    if re.match(r"^[^:/]+://[^/@:]*:[^/@]+@", url):
        found.append(Problem(file, "database_url",
                             "数据库密码写在了配置文件里；建议改用 database_password_env 或 database_password_file"))
    return found


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
            problems.append(Problem(file, "", f"YAML 格式错误 {where}：{_yaml_problem(exc)}"))
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
    if check_secrets and s.database_password_env and s.database_password_env not in os.environ:
        problems.append(Problem(name, "database_password_env", f"环境变量 {s.database_password_env} 没有设置"))
    if check_secrets and s.database_password_file and not s.database_password_file.is_file():
        problems.append(Problem(name, "database_password_file", f"文件 {s.database_password_file} 不存在"))
    for i, dept in enumerate(s.departments):
        if dept.mailbox and dept.mailbox not in names:
            problems.append(Problem(name, f"departments[{i}].mailbox", f"没有名为 {dept.mailbox} 的邮箱"))
    keys = {d.key for d in s.departments}
    if s.departments:
        for key_name, value in (("routing.default", s.routing.default), ("routing.unknown", s.routing.unknown)):
            if value is not None and value not in keys:
                problems.append(Problem(name, key_name, f"没有键或名称为 {value} 的科室"))
        for i, rule in enumerate(s.routing.rules):
            if rule.department not in keys:
                problems.append(Problem(name, f"routing.rules[{i}].department", f"没有键或名称为 {rule.department} 的科室"))
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


RESTART_KEYS = ("mailboxes", "storage", "database_url", "database_password_env", "database_password_file",
                "parse_workers", "timezone", "web", "logging")


def describe_changes(old: Settings, new: Settings) -> tuple[list[str], list[str]]:
    """What a reload changes, in words for the log: (applied, needing a restart). Units and
    campaigns by name; other sections by key."""
    applied: list[str] = []
    before = {u.name: u for u in old.units}
    after = {u.name: u for u in new.units}
    added = [n for n in after if n not in before]
    removed = [n for n in before if n not in after]
    changed = [f"{n} ({', '.join(k for k in Unit.model_fields if getattr(before[n], k) != getattr(after[n], k))})"
               for n in after if n in before and before[n] != after[n]]
    for label, names in (("units added", added), ("units removed", removed), ("units changed", changed)):
        if names:
            applied.append(f"{label}: {'、'.join(names)}")
    was = {c.key: c for c in old.campaigns}
    now = {c.key: c for c in new.campaigns}
    for key in now:
        if key not in was:
            applied.append(f"campaign added: {key} ({now[key].name})")
        elif was[key] != now[key]:
            fields = [k for k in Campaign.model_fields if getattr(was[key], k) != getattr(now[key], k)]
            applied.append(f"campaign {key} changed: {', '.join(fields)}")
    applied += [f"campaign removed: {key}" for key in was if key not in now]
    skip = {"units", "campaigns", "roster", *RESTART_KEYS}
    for key in Settings.model_fields:
        if key not in skip and getattr(old, key) != getattr(new, key):
            applied.append(f"{key} changed")
    restart = [f"{key} changed (takes a restart)" for key in RESTART_KEYS if getattr(old, key) != getattr(new, key)]
    return applied, restart
