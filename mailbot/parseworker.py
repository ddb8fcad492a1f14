"""Parsing a stored message, in a separate worker process when so configured.

This is the CPU-heavy half of ingestion; running it in its own process lets fetching and
storing go on meanwhile on the other core, and a message that crashes or hangs the
parser takes down a worker, never the robot. Results travel back as JSON text.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from . import parse as parser

log = logging.getLogger("mailbot.parseworker")
MAX_TEXT = 200_000  # characters of body text kept in the database summary


def parse_file(path: str, sha256: str) -> tuple[str, str, dict | None]:
    """('parsed', summary JSON, columns) or ('quarantined', reason for the operator, None).

    Never raises. The columns are the summary's fields the database indexes, sent apart
    so the receiving side need not decode the JSON again.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return "quarantined", f"原始邮件文件无法读取（{exc.strerror or exc}）", None
    try:
        mail = parser.parse(data, sha256=sha256)
    except parser.UnreadableMessage as exc:
        return "quarantined", f"无法解析：不是一封可读的邮件（{exc}）", None
    except Exception as exc:  # a parser bug must not stop the loop: keep the message, say why
        log.exception("parse failed for %s", path)
        return "quarantined", f"解析时出错（{type(exc).__name__}: {str(exc)[:200]}）", None
    summary = mail.to_json()
    if len(summary["text"]) > MAX_TEXT:
        summary["text"] = summary["text"][:MAX_TEXT]
    columns = {
        "subject": mail.subject[:2000], "from_address": mail.from_.address[:320],
        "from_name": mail.from_.name[:300], "sent_at": summary["date"], "auto_reply": mail.auto_reply,
        "bounce": mail.bounce, "attachment_count": len(mail.attachments),
    }
    return "parsed", json.dumps(summary, ensure_ascii=False), columns
