"""What every use case shares, loaded once when the robot starts: the typed settings, the
roster and routing rules as a `Directory`, the form templates and the review secret. A use
case runs in a `Context`: the office at one moment (`office.at(now)`).

Nothing here is read again while the robot runs; a changed template or roster takes a
restart (as `check-config` then `systemctl restart` in the README).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from mailbot.config import Settings
from mailbot.forms import FormTemplate, load_templates
from mailbot.routing import Directory


def read_secret(settings: Settings) -> bytes:
    """The HMAC key for review tokens: from the environment, else a private file in storage
    (made once, readable by the robot alone)."""
    value = os.environ.get(settings.review.secret_env)
    if value:
        return value.encode()
    path = Path(settings.storage) / "review.secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another worker made it first
            return path.read_text().strip().encode()
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


@dataclass(frozen=True)
class Office:
    settings: Settings
    directory: Directory
    templates: tuple[FormTemplate, ...] = ()
    secret: bytes = field(default=b"", repr=False)

    @classmethod
    def load(cls, settings: Settings) -> "Office":
        templates = tuple(load_templates(settings.forms_folder)) if settings.campaigns else ()
        return cls(settings, Directory.from_settings(settings), templates, read_secret(settings))

    def at(self, now: datetime) -> "Context":
        return Context(self.settings, self.directory, Path(self.settings.storage), now, self.templates, self.secret)


@dataclass
class Context:
    """The office at one moment: what filing, review and campaigns act with."""

    settings: Settings
    directory: Directory
    storage: Path
    now: datetime
    templates: tuple[FormTemplate, ...] = ()
    secret: bytes = field(default=b"", repr=False)

    def template(self, name: str) -> FormTemplate | None:
        return next((t for t in self.templates if t.name == name), None)
