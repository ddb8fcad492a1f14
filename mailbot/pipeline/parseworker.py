"""Parsing a stored message, in a separate worker process when so configured.

This is the CPU-heavy half of ingestion; running it in its own process lets fetching and
storing go on meanwhile on the other core, and a message that crashes or hangs the
parser takes down a worker, never the robot. Results travel back as JSON text.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from mailbot import routing
from mailbot.models import Parsed, Route
from mailbot.read import parse as parser
from mailbot.store import stage_attachments

log = logging.getLogger("mailbot.parseworker")
MAX_TEXT = 200_000  # characters of body text kept in the database summary


def start(robot: int | None = None) -> None:
    """Pool initializer: the allocator set to give memory back (`mailbot.memory`), and the
    robot watched (`watch_parent`)."""
    from mailbot import memory

    memory.tune_malloc()
    watch_parent(robot)


def watch_parent(robot: int | None = None) -> None:
    """Pool initializer: a worker ends when the robot that started it is gone (even after
    SIGKILL, when the pool's own shutdown never runs). `robot` is the robot's pid, passed by
    the robot: a worker that starts slowly (an import under load) and finds its robot already
    dead ends at once, instead of taking its new parent (init) for the robot and living on."""
    import os
    import threading
    import time

    parent = os.getppid() if robot is None else robot
    if os.getppid() != parent:
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()


def warm() -> None:
    """Import what parsing a first message would (the robot starts its workers early)."""
    from mailbot import review  # noqa: F401
    from mailbot.read import quotes  # noqa: F401


def parse_file(path: str, sha256: str, job: dict | None = None) -> Parsed:
    """Parse, classify (with a job) and stage one stored message. Never raises: a message
    that cannot be read comes back quarantined, with the reason for the operator."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return Parsed.quarantined(f"原始邮件文件无法读取（{exc.strerror or exc}）")
    try:
        mail = parser.parse(data, sha256=sha256)
    except parser.UnreadableMessage as exc:
        return Parsed.quarantined(f"无法解析：不是一封可读的邮件（{exc}）")
    except Exception as exc:  # a parser bug must not stop the loop: keep the message, say why
        log.exception("parse failed for %s", path)
        return Parsed.quarantined(f"解析时出错（{type(exc).__name__}: {str(exc)[:200]}）")
    summary = mail.to_json()
    route, staged = None, ()
    if job is not None:  # classify (on the whole text), and stage the attachments a 稿件 will keep
        route = classify(mail, job, summary)
    if len(summary["text"]) > MAX_TEXT:
        summary["text"] = summary["text"][:MAX_TEXT]
    if route is not None:
        summary["classification"] = route.to_json()
        summary["reply"] = reply_info(mail, route, list(job["directory"].departments.values()))
        reviewer_files = route.kind == "reply" and any(
            not (a.disposition == "inline" and a.content_id) for a in mail.attachments)
        if route.kind in ("submission", "resubmission", "form") or reviewer_files:
            try:
                staged = stage_attachments(mail, Path(job["staging"]))
            except OSError as exc:
                return Parsed.quarantined(f"附件无法写入暂存目录（{exc.strerror or exc}）")
        if route.kind in ("submission", "resubmission") and job.get("links") and mail.large_attachment_links:
            staged += fetch_links(mail, job, summary)
    columns = {
        "subject": mail.subject[:2000], "from_address": mail.from_.address[:320],
        "from_name": mail.from_.name[:300], "sent_at": summary["date"], "auto_reply": mail.auto_reply,
        "bounce": mail.bounce, "attachment_count": len(mail.attachments), "kind": route.kind if route else None,
    }
    return Parsed("parsed", summary=json.dumps(summary, ensure_ascii=False), columns=columns, route=route,
                  staged=staged)


def fetch_links(mail, job: dict, summary: dict) -> tuple:
    """The 超大附件 links followed to their files (staged like attachments); each link's
    outcome is kept in the summary (`large_attachments`) for the receipt and the alert."""
    from mailbot import largefiles

    fetched = largefiles.fetch_all(mail.large_attachment_links, Path(job["staging"]), job["links"])
    by_url = {f.url: f for f in fetched}
    summary["large_attachments"] = [
        {"url": link.url, "name": link.name, "provider": link.provider, "expires": link.expires,
         "fetched": bool(by_url.get(link.url) and by_url[link.url].staged),
         "error": by_url[link.url].error if link.url in by_url else "邮件中没有下载链接"}
        for link in mail.large_attachment_links]
    return tuple(f.staged for f in fetched if f.staged)


def reply_info(mail, route: Route, targets: list[str]) -> dict:
    """The `reply` object of `mailbot parse --json`: what the robot reads as a reply's decision."""
    from mailbot import review
    from mailbot.read import quotes

    kind, tracking = route.kind, route.tracking
    if kind in ("auto_reply", "bounce"):
        return {"tracking": tracking, "new_text": None, "decision": "auto" if kind == "auto_reply" else "bounce",
                "reason": None, "target": None}
    if kind != "reply" and not review.find_tokens(mail):
        return {"tracking": tracking, "new_text": None, "decision": None, "reason": None, "target": None}
    text = quotes.new_text(mail.text[:MAX_TEXT], mail.html[:200_000] if mail.html else None)
    command = quotes.read_command(text, targets)
    return {"tracking": tracking, "new_text": text, "decision": command.decision, "reason": command.reason,
            "target": command.target}


OFFICE_TYPES = ("application/", "text/")


def classify(mail, job: dict, summary: dict | None = None) -> Route:
    """routing.classify with what only the worker can find: the campaign forms among the
    attachments (read by their columns) and a scan answering a campaign's mail. The same
    function serves `mailbot parse`, so the command line and the pipeline never disagree.
    `summary`: the message's `to_json()` when the caller has it (made once, not per step)."""
    directory = job["directory"]
    summary = mail.to_json() if summary is None else summary
    base = routing.route(summary, directory, job["mailbox"])
    forms = read_forms(mail, job) if base.kind not in ("auto_reply", "bounce", "other") else []
    campaign = None
    if not forms and base.kind in ("reply", "resubmission"):
        campaign = routing.find_campaign_scan(mail, directory)
    return routing.classify(summary, directory, job["mailbox"], forms, campaign, routed=base)


def make_job(settings, directory, templates: list, mailbox: str, today, staging: str | None = None) -> dict:
    """What the worker needs besides the bytes (all picklable)."""
    links = settings.large_attachments
    return {"directory": directory, "mailbox": mailbox, "templates": templates,
            "form_templates": {c.template for c in settings.campaigns}, "today": today, "staging": staging,
            "links": links.model_dump() if links.fetch else None}


def read_forms(mail, job: dict) -> list[dict]:
    """Attachments that are a campaign's form, recognised by their columns (not names)."""
    from mailbot.forms import read_form

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
