"""Campaigns, the side with effects: reminders to units that have not sent a valid form
(once per offset, even with several workers: a unique row is claimed before the mail is
queued, in the same transaction), the operator's missing list, and the tally export.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from . import deadlines, outbox
from .store import CampaignReminder, FormReturn, log_event

log = logging.getLogger("mailbot.collecting")


def returned_units(session: Session, campaign: str) -> set[str]:
    """Units whose latest form for the campaign is valid (and stamped when required)."""
    rows = session.exec(select(FormReturn).where(FormReturn.campaign == campaign)
                        .order_by(FormReturn.id)).all()
    latest: dict[str, FormReturn] = {}
    for row in rows:
        if row.unit:
            latest[row.unit] = row
    return {unit for unit, row in latest.items() if row.valid}


def _claim(session: Session, campaign: str, unit: str, offset: int, now: datetime) -> bool:
    try:
        with session.begin_nested():
            session.add(CampaignReminder(campaign=campaign, unit=unit, offset=offset, sent_at=now))
        return True
    except IntegrityError:  # another worker, or an earlier run, has it
        return False


def remind(session: Session, ctx) -> int:
    """Queue the reminders and missing lists due at ctx.now; return how many mails."""
    from . import workdays

    settings, review = ctx.settings, ctx.settings.review
    if not settings.campaigns or not workdays.in_office_hours(
            ctx.now, settings.tz, review.office_hours, frozenset(review.closed_days), frozenset(review.extra_workdays)):
        return 0  # mail to people goes out in office hours, on working days
    queued = 0
    for campaign in settings.campaigns:
        done = returned_units(session, campaign.key)
        sent = {(r.unit, r.offset) for r in session.exec(
            select(CampaignReminder).where(CampaignReminder.campaign == campaign.key)).all()}
        for due in deadlines.due_reminders(campaign, settings.units, done, sent, ctx.now, settings.tz):
            if _claim(session, campaign.key, due.unit, due.offset, ctx.now):
                queued += _remind_unit(session, ctx, campaign, due)
        missing = deadlines.missing_after_deadline(campaign, settings.units, done, sent, ctx.now, settings.tz)
        missing = [m for m in missing if _claim(session, campaign.key, m.unit, -1, ctx.now)]
        if missing:
            queued += _missing_list(session, ctx, campaign, missing)
    return queued


def _remind_unit(session, ctx, campaign, due) -> int:
    settings = ctx.settings
    unit = next(u for u in settings.units if u.name == due.unit)
    if not unit.addresses:
        log_event(session, "form-reminder-skipped", f"{campaign.key}: {unit.name} has no address on the roster")
        return 0
    dept = settings.department(campaign.department)
    box = settings.mailbox(dept.mailbox or settings.mailboxes[0].name)
    audience = next(a for a in campaign.audiences if a.name == due.audience)
    attachments = ()
    if campaign.attach_template and campaign.attach_template.exists():
        attachments = ((campaign.attach_template.name, campaign.attach_template.read_bytes(), "application/octet-stream"),)
    subject, text, _ = outbox.render(
        "form-reminder", unit=unit.name, campaign=campaign.name, form=campaign.template,
        deadline=f"{due.deadline.month}月{due.deadline.day}日", inclusive=audience.inclusive, days=due.offset,
        attached=bool(attachments), stamped=campaign.require_stamped, organisation=settings.organisation,
        department=dept.name)
    out = outbox.Outgoing(kind="form-reminder", mailbox=box.name, from_name=dept.sender_name or dept.name,
                          from_address=box.email, to_name=unit.name, to_address=unit.addresses[0], subject=subject,
                          text=text, html=None, date=ctx.now, attachments=attachments,
                          message_id=outbox.new_message_id("form", f"{campaign.key}.{due.offset}", settings.mail_domain))
    outbox.enqueue(session, out, settings.outbox, ctx.now)
    log_event(session, "form-reminder", f"{campaign.key}: {unit.name}, {due.offset} days before {due.deadline}")
    return 1


def _missing_list(session, ctx, campaign, missing) -> int:
    settings = ctx.settings
    dept = settings.department(campaign.department)
    box = settings.mailbox(dept.mailbox or settings.mailboxes[0].name)
    items = [{"unit": m.unit, "audience": m.audience, "deadline": m.deadline.isoformat()} for m in missing]
    subject, text, _ = outbox.render("form-missing", form=campaign.template, campaign=campaign.name, key=campaign.key,
                                     count=len(items), missing=items, department=dept.name)
    out = outbox.Outgoing(kind="form-missing", mailbox=box.name, from_name="mailbot", from_address=box.email,
                          to_name=dept.name, to_address=box.email, subject=subject, text=text, html=None, date=ctx.now,
                          message_id=outbox.new_message_id("missing", campaign.key, settings.mail_domain))
    outbox.enqueue(session, out, settings.outbox, ctx.now)
    log_event(session, "form-missing", f"{campaign.key}: {'、'.join(i['unit'] for i in items)}")
    return 1
