"""What the console's buttons do, each in the caller's transaction and recorded as an event
with who did it: move, withdraw, mark published and re-send the review of a 稿件; settle
held replies and quarantined or needs-a-person messages; re-send or mark sent an outbox
mail; enter a return's rows by hand; add, edit and remove units of the roster file. Each
returns a flash code for the page (its sentence lives in templates/_flash.html)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import timedelta

from sqlmodel import Session, select

from mailbot import held, reviewing
from mailbot.campaigns import deadlines
from mailbot.models import aware
from mailbot.office import Context
from mailbot.store import (Event, FormReturn, FormRow, InboundMessage, OutboxMessage, ReviewTask, Submission, log_event,
                           roster)
from mailbot.web.security import NotFound, Staff

FINISHED = ("approved", "withdrawn")


def _close_open_tasks(session: Session, sub: Submission) -> int:
    tasks = session.exec(select(ReviewTask).where(ReviewTask.submission_id == sub.id, ReviewTask.status == "open")).all()
    for t in tasks:
        t.status = "closed"
        session.add(t)
    return len(tasks)


def move(session: Session, ctx: Context, staff: Staff, sub: Submission, unit: str, department: str) -> str:
    """Another unit and/or department; with a new department the review starts again there."""
    settings = ctx.settings
    unit = unit.strip()
    if department not in {d.key for d in settings.departments} or not staff.sees(department):
        return "move-bad-department"
    if unit and unit not in {u.name for u in settings.units}:
        return "move-bad-unit"
    changes = []
    if unit and unit != sub.unit:
        changes.append(f"unit {sub.unit or '?'} → {unit}")
        sub.unit, sub.unit_known = unit, True
    if department != sub.department:
        changes.append(f"department {sub.department} → {department}")
    if not changes:
        return "nothing-changed"
    log_event(session, "moved", "; ".join(changes), submission_id=sub.id, actor=staff.name)
    if department != sub.department:
        _close_open_tasks(session, sub)
        sub.department = department
        if sub.status not in FINISHED:
            reviewing.start_stage(session, ctx, sub, 0, reviewing._body(session, sub))
    sub.updated_at = ctx.now
    session.add(sub)
    return "moved"


def withdraw(session: Session, ctx: Context, staff: Staff, sub: Submission, reason: str) -> str:
    if sub.status == "withdrawn":
        return "nothing-changed"
    closed = _close_open_tasks(session, sub)
    sub.status, sub.updated_at = "withdrawn", ctx.now
    session.add(sub)
    log_event(session, "withdrawn", f"{reason.strip()[:500] or '-'} ({closed} open review task(s) closed)",
              submission_id=sub.id, actor=staff.name)
    return "withdrawn"


def mark_published(session: Session, ctx: Context, staff: Staff, sub: Submission) -> str:
    """Record publication as the publisher's 已发布 reply does (reviewing.record_published): the
    status stays 已通过, `published_at` is set."""
    if sub.status != "approved":
        return "publish-not-approved"
    if sub.published_at is not None:
        return "nothing-changed"
    sub.published_at, sub.updated_at = ctx.now, ctx.now
    session.add(sub)
    log_event(session, "published", f"{sub.tracking} 已发布 (marked in the console)", submission_id=sub.id,
              actor=staff.name)
    return "published"


def resend_review(session: Session, ctx: Context, staff: Staff, sub: Submission) -> str:
    """The current stage's request again, with fresh tokens (the old ones are closed)."""
    if sub.status not in ("received", "reviewing"):
        return "resend-not-waiting"
    if not ctx.settings.review.stages.get(sub.department):
        return "resend-no-stages"
    _close_open_tasks(session, sub)
    log_event(session, "review-resent", f"stage {sub.stage + 1} requested again", submission_id=sub.id,
              actor=staff.name)
    reviewing.start_stage(session, ctx, sub, sub.stage, reviewing._body(session, sub))
    session.add(sub)
    return "review-resent"


# --- exceptions --------------------------------------------------------------------------


def settle_held(session: Session, ctx: Context, staff: Staff, inbound_id: int, confirm: bool, reason: str) -> str:
    """Confirm or reject a held reply (mailbot/held.py); returns its own sentence."""
    if confirm:
        return held.confirm(session, ctx, inbound_id, staff.name)
    return held.reject(session, ctx, inbound_id, staff.name, reason.strip()[:500])


def dismiss(session: Session, staff: Staff, row: InboundMessage, reason: str) -> str:
    if not reason.strip():
        return "dismiss-needs-reason"
    log_event(session, "inbound-dismissed", reason.strip()[:500], inbound_id=row.id, actor=staff.name)
    return "dismissed"


def file_as_submission(session: Session, ctx: Context, staff: Staff, row: InboundMessage, unit: str, department: str,
                       reason: str) -> tuple[str, str | None]:
    """A needs-a-person or quarantined message that is a 稿件 after all: filed for the unit and
    department the operator names, with receipt and review as if routed so (filing.file_submission)."""
    from pathlib import Path

    from mailbot import filing
    from mailbot.models import Route
    from mailbot.read.parse import parse
    from mailbot.store import stage_attachments
    from mailbot.web.security import inside

    settings = ctx.settings
    if department not in {d.key for d in settings.departments}:
        return "move-bad-department", None
    if unit and unit not in {u.name for u in settings.units}:
        return "move-bad-unit", None
    if session.exec(select(Submission).where(Submission.inbound_id == row.id)).first() is not None:
        return "nothing-changed", None
    mail = parse(inside(ctx.storage, row.raw_path).read_bytes(), sha256=row.sha256)
    staged = stage_attachments(mail, ctx.storage / "staging" / f"{row.id}-assigned")
    route = Route("submission", unit or None, bool(unit), department, settings.department(department).name, reason)
    try:
        sub = filing.file_submission(session, ctx, row, mail, route, staged)
    finally:
        for item in staged:  # what filing did not take
            Path(item.path).unlink(missing_ok=True)
    row.status, row.kind = "parsed", "submission"
    session.add(row)
    log_event(session, "inbound-assigned", f"filed as {sub.tracking}", inbound_id=row.id, submission_id=sub.id,
              actor=staff.name)
    return "assigned", sub.tracking


def resend_mail(session: Session, ctx: Context, staff: Staff, mail: OutboxMessage) -> str:
    """A failed or uncertain mail back in the queue, once."""
    if mail.status not in ("failed", "uncertain"):
        return "mail-not-failed"
    tag = f"outbox #{mail.id}"
    again = session.exec(select(Event).where(Event.kind == "outbox-resent", Event.detail == tag)).first()
    if again is not None:
        return "mail-resent-before"
    mail.status, mail.attempts, mail.last_error = "pending", 0, None
    mail.next_attempt_at, mail.sending_at = ctx.now, None
    mail.give_up_at = ctx.now + timedelta(hours=ctx.settings.outbox.give_up_after_hours)
    session.add(mail)
    log_event(session, "outbox-resent", tag, submission_id=mail.submission_id, actor=staff.name)
    return "mail-resent"


def mark_sent(session: Session, ctx: Context, staff: Staff, mail: OutboxMessage) -> str:
    if mail.status not in ("failed", "uncertain"):
        return "mail-not-failed"
    mail.status, mail.sent_at = "sent", ctx.now
    session.add(mail)
    log_event(session, "outbox-marked-sent", f"outbox #{mail.id}", submission_id=mail.submission_id,
              actor=staff.name)
    return "mail-marked-sent"


# --- a return entered by hand ------------------------------------------------------------


def read_typed_rows(template, typed: list[dict], today) -> dict:
    """Typed rows as a CSV through the forms reader: the same checks as an emailed form."""
    from mailbot.forms import read_form

    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(template.column_names)
    for row in typed:
        writer.writerow([row.get(c, "") for c in template.column_names])
    return read_form(buf.getvalue().encode("utf-8"), "手工录入.csv", [template], today=today).to_dict()


def enter_rows(session: Session, ctx: Context, staff: Staff, base: FormReturn, typed: list[dict]) -> tuple[str, dict]:
    """A new version of a unit's return from rows typed beside its scan or photo."""
    from mailbot.campaigns.collecting import _county, _source
    from mailbot.routing import find_unit_by_name

    settings = ctx.settings
    campaign = settings.campaign(base.campaign)
    template = ctx.template(campaign.template)
    if template is None:
        raise NotFound(campaign.template)
    typed = [r for r in typed if any(str(v).strip() for v in r.values())]
    result = read_typed_rows(template, typed, ctx.now.astimezone(settings.tz).date())
    if not typed or not result["rows"] or result["errors"] or not result["template"]:
        return "entry-invalid", result
    versions = session.exec(select(FormReturn).where(FormReturn.campaign == base.campaign,
                                                     FormReturn.unit == base.unit)).all() if base.unit else [base]
    stamped = any(v.stamped for v in versions)
    audience = next((a for a in campaign.audiences if base.unit in deadlines.audience_units(a, settings.units)),
                    campaign.audiences[0])
    ret = FormReturn(campaign=base.campaign, unit=base.unit, sender=base.sender, version=max(v.version for v in versions) + 1,
                     inbound_id=base.inbound_id, filename=f"手工录入（{staff.name}）", path=base.path, format="manual",
                     valid=stamped or not campaign.require_stamped, stamped=stamped,
                     on_time=deadlines.on_time(aware(base.received_at), audience.deadline, audience.inclusive, settings.tz),
                     result_json=json.dumps(result, ensure_ascii=False, default=str), received_at=ctx.now)
    session.add(ret)
    session.flush()
    sender_unit = next((u for u in ctx.directory.units if u.name == base.unit), None)
    for index, values in enumerate(result["rows"], 1):
        named = values.get(result.get("unit_column") or "") if result.get("unit_column") else None
        matched = find_unit_by_name(str(named), ctx.directory) if named else None
        session.add(FormRow(return_id=ret.id, row_index=index, source=_source(result["sources"][index - 1]),
                            row_unit=matched.name if matched else named,
                            parent=_county(matched) if matched else (_county(sender_unit) if sender_unit else None),
                            data_json=json.dumps(values, ensure_ascii=False, default=str)))
    log_event(session, "form-entered", f"{base.campaign} {base.unit or base.sender} v{ret.version}: "
              f"{len(result['rows'])} rows typed by {staff.name}", inbound_id=base.inbound_id, actor=staff.name)
    return "entered", {"id": ret.id}


# --- the unit roster: the same functions as `mailbot units` (mailbot.store.roster) -----------

UNIT_EVENTS = {"added": "unit-added", "changed": "unit-changed", "removed": "unit-removed"}
_SEPARATORS = re.compile(r"[\s,，、;；]+")


def unit_values(text: str) -> list[str]:
    """A form field's list (简称, 邮箱, 域名): values separated by spaces, commas, 、 or ；."""
    return [v for v in _SEPARATORS.split(str(text or "")[:5000]) if v]


def typed_unit(form) -> dict:
    """The unit form's fields as typed (kept when a problem sends the form back)."""
    text = {k: str(form.get(k) or "").strip()[:500] for k in ("original", "name", "category", "parent")}
    return {**text, **{k: unit_values(form.get(k)) for k in roster.LIST_FIELDS}}


def change_unit(session: Session, staff: Staff, settings, action: str, typed: dict) -> roster.Change:
    """Add, edit (the form holds the unit's whole new state: lists are diffed against the file)
    or remove a unit of the settings' roster file, and record who did it. Raises
    roster.RosterError (a Chinese message) when the roster refuses, roster.BreaksConfig when
    the rest of the configuration would; the file is then unchanged."""
    path, check = settings.roster, roster.config_check(settings)
    if action == "add":
        change = roster.add_unit(path, typed["name"], category=typed["category"] or None,
                                 parent=typed["parent"] or None, aliases=typed["aliases"],
                                 addresses=typed["addresses"], domains=typed["domains"], check=check)
    elif action == "edit":
        current = next((u for u in roster.list_units(path) if u["name"] == typed["original"]), None) or {}
        add = {f: [v for v in typed[f] if v not in current.get(f, [])] for f in roster.LIST_FIELDS}
        remove = {f: [v for v in current.get(f, []) if v not in typed[f]] for f in roster.LIST_FIELDS}
        rename = typed["name"] if typed["name"] and typed["name"] != typed["original"] else None
        parent = typed["parent"] if typed["parent"] != (current.get("parent") or "") else None
        change = roster.edit_unit(path, typed["original"], rename=rename, category=typed["category"] or None,
                                  parent=parent, add={f: v for f, v in add.items() if v},
                                  remove={f: v for f, v in remove.items() if v}, check=check)
    elif action == "remove":
        change = roster.remove_unit(path, typed["original"], check=check)
    else:
        raise NotFound(action)
    if action != "edit" or change.fields:
        detail = change.unit + (f" ({', '.join(change.fields)})" if change.fields and action == "edit" else "")
        if action == "edit" and typed["original"] != change.unit:
            detail = f"{typed['original']} → {detail}"
        log_event(session, UNIT_EVENTS[change.action], detail, actor=staff.name)
    return change


def unit_history(session: Session, limit: int = 10) -> list[Event]:
    """The latest roster changes made in the console, newest first."""
    return list(session.exec(select(Event).where(Event.kind.in_(list(UNIT_EVENTS.values())))
                             .order_by(Event.id.desc()).limit(limit)))
