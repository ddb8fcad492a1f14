"""How the robot logs: plain text or one JSON object per line (python-json-logger), on stderr
for journald or the container runtime to collect.

Every timestamp is ISO 8601 with its offset (`+00:00` for UTC, `+08:00` for China time), and a
JSON record names its zone in `tz` too, so nobody has to guess. The steady state is quiet at
INFO: APScheduler's "Running job … executed successfully" lines (thousands a day) go to DEBUG,
and a job run leaves a heartbeat row instead; WARNING and above is what an operator must act on.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from pythonjsonlogger.json import JsonFormatter

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that speak per run or per connection: only a DEBUG run wants them.
CHATTY = ("apscheduler", "alembic", "aiosmtpd", "mail.log", "asyncio")


class _Zoned:
    """formatTime: ISO 8601 with milliseconds and the offset of the chosen zone."""

    zone: ZoneInfo | timezone = timezone.utc

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 (logging's name)
        moment = datetime.fromtimestamp(record.created, self.zone)
        return moment.isoformat(timespec="milliseconds")


class TextFormatter(_Zoned, logging.Formatter):
    """`2026-12-09T10:00:00.123+08:00 WARNING mailbot.daemon: skxkpb: connection lost …`"""


class JsonLineFormatter(_Zoned, JsonFormatter):
    """`{"time": "…+08:00", "tz": "Asia/Shanghai", "level": "WARNING", "logger": "…", "message": "…"}`"""

    def __init__(self, zone_name: str):
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s",
                         rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                         static_fields={"tz": zone_name}, json_ensure_ascii=False)


def setup(cfg, office_tz: str, fmt: str | None = None, level: str | None = None) -> logging.Handler:
    """Configure the root logger from the `logging:` section; `fmt`/`level` override it
    (the command line's --log-format). Returns the handler (tests read its formatter)."""
    fmt = fmt or cfg.format
    zone_name = office_tz if cfg.timezone == "office" else "UTC"
    zone = ZoneInfo(office_tz) if cfg.timezone == "office" else timezone.utc
    formatter = JsonLineFormatter(zone_name) if fmt == "json" else TextFormatter(TEXT)
    formatter.zone = zone
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    level = level or cfg.level
    root.setLevel(level)
    for name in CHATTY:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)
    return handler
