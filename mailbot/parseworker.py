"""Parsing a stored message, in a separate worker process when so configured.

This is the CPU-heavy half of ingestion; running it in its own process lets fetching and
storing go on meanwhile on the other core, and a message that crashes or hangs the
parser takes down a worker, never the robot. Results travel back as JSON text.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

from . import parse as parser
from . import routing

log = logging.getLogger("mailbot.parseworker")
MAX_TEXT = 200_000  # characters of body text kept in the database summary


def watch_parent() -> None:
    """Pool initializer: a worker ends when the robot that started it is gone (even after
    SIGKILL, when the pool's own shutdown never runs)."""
    import os
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def parse_file(path: str, sha256: str, job: dict | None = None) -> tuple[str, str, dict | None]:
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
    extra = {}
    if job is not None:  # classify, and stage the attachments a 稿件 will keep
        route = routing.route(mail, job["directory"], job["mailbox"])
        summary["classification"] = route.to_json()
        summary["reply"] = reply_info(summary, summary["classification"], list(job["directory"].departments.values()))
        extra = {"kind": route.kind, "_route": route.to_json(), "_staged": []}
        forms = read_forms(mail, job) if route.kind not in ("auto_reply", "bounce", "other") else []
        if forms:  # a statistics form for a campaign: handled as a form, not as a 稿件
            route = routing.Route("form", route.unit, route.unit_known, route.department, route.department_name,
                                  f"附件是报表《{forms[0]['result']['form_type']}》；{route.reason}",
                                  route.tracking, route.category, route.claimed_unit)
            summary["classification"] = route.to_json()
            extra = {"kind": "form", "_route": {**route.to_json(), "forms": forms}, "_staged": []}
        elif route.kind in ("reply", "resubmission") and (campaign := scan_for_campaign(summary, job)):
            # a reply to a campaign's mail with only a scan or photo: the stamped copy of a form
            route = routing.Route("form", route.unit, route.unit_known, route.department, route.department_name,
                                  f"回复报表邮件，附有盖章件或扫描件；{route.reason}", route.tracking, route.category,
                                  route.claimed_unit)
            summary["classification"] = route.to_json()
            extra = {"kind": "form", "_route": {**route.to_json(), "forms": [], "campaign": campaign}, "_staged": []}
        if route.kind in ("submission", "resubmission", "form"):
            try:
                extra["_staged"] = stage(mail, Path(job["staging"]))
            except OSError as exc:
                return "quarantined", f"附件无法写入暂存目录（{exc.strerror or exc}）", None
    columns = {
        "subject": mail.subject[:2000], "from_address": mail.from_.address[:320],
        "from_name": mail.from_.name[:300], "sent_at": summary["date"], "auto_reply": mail.auto_reply,
        "bounce": mail.bounce, "attachment_count": len(mail.attachments), **extra,
    }
    return "parsed", json.dumps(summary, ensure_ascii=False), columns


def stage(mail, folder: Path) -> list[dict]:
    """Write the attachments to a staging folder; filing moves them into place."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, att in enumerate(mail.attachments, 1):
        path = folder / f"{i:03d}"
        path.write_bytes(att.data)
        out.append({"staged": str(path), "filename": att.filename, "safe_name": att.safe_name,
                    "size": att.size, "sha256": att.sha256, "content_type": att.content_type})
    return out


def reply_info(summary: dict, route: dict, targets: list[str]) -> dict:
    """The `reply` object of `mailbot parse --json`: what the robot reads as a reply's decision."""
    from . import quotes, review

    kind = route["kind"]
    tracking = route.get("tracking")
    if kind in ("auto_reply", "bounce"):
        return {"tracking": tracking, "new_text": None, "decision": "auto" if kind == "auto_reply" else "bounce",
                "reason": None, "target": None}
    if kind != "reply" and not review.find_tokens(summary):
        return {"tracking": tracking, "new_text": None, "decision": None, "reason": None, "target": None}
    text = quotes.new_text(summary["text"], summary.get("html"))
    command = quotes.read_command(text, targets)
    return {"tracking": tracking, "new_text": text, "decision": command.decision, "reason": command.reason,
            "target": command.target}


OFFICE_TYPES = ("application/", "text/")
_CAMPAIGN_MAIL = re.compile(r"^<mailbot\.(?:form|formreply)\.([a-z0-9_-]+)\.")  # reminders and form replies


def scan_for_campaign(summary: dict, job: dict) -> str | None:
    """The campaign key, when the message answers one of its mails (a reminder or a form
    reply) with a scan or photo attached (PDF or image; not an inline signature picture)."""
    scans = [a for a in summary["attachments"] if (a["content_type"] == "application/pdf" or a["content_type"]
             .startswith("image/")) and not (a["disposition"] == "inline" and a.get("content_id"))]
    if not scans:
        return None
    domain = "@" + job["directory"].mail_domain + ">"
    for ref in [summary.get("in_reply_to") or "", *reversed(summary.get("references") or [])]:
        found = _CAMPAIGN_MAIL.match(ref)
        if found and ref.endswith(domain):
            return found.group(1)
    return None


def read_forms(mail, job: dict) -> list[dict]:
    """Attachments that are a campaign's form, recognised by their columns (not names)."""
    from .forms import read_form

    templates = job.get("templates") or []
    wanted = job.get("form_templates") or set()
    if not templates or not wanted:
        return []
    out = []
    for i, att in enumerate(mail.attachments):
        if not att.content_type.startswith(OFFICE_TYPES) or att.size > 20 * 1024 * 1024:
            continue
        # LibreOffice (for .doc/.wps/.et) only where the message looks like a form: it costs a second
        likely = "表" in att.filename or "表" in mail.subject
        result = read_form(att.data, att.filename, templates, today=job.get("today"), soffice=None if likely else False)
        if result.template in wanted:
            out.append({"index": i, "result": result.to_dict()})
    return out
