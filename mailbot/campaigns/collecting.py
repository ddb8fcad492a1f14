"""Campaigns, the side with effects: reminders to units that have not sent a valid form
(once per offset, even with several workers: a unique row is claimed before the mail is
queued, in the same transaction), the operator's missing list, and the tally export.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mailbot import outbox
from mailbot.campaigns import deadlines
from mailbot.digest import stats
from mailbot.models import Mail, Route, Staged
from mailbot.store import CampaignReminder, FormReturn, log_event

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
    from mailbot.campaigns import workdays

    settings, review = ctx.settings, ctx.settings.review
    cal = workdays.office_calendar(settings)
    if not settings.campaigns or not workdays.in_office_hours(ctx.now, settings.tz, review.office_hours, calendar=cal):
        return 0  # mail to people goes out in office hours, on working days
    queued = 0

    def workday(day) -> bool:
        return workdays.is_workday(day, calendar=cal)[0]

    for campaign in settings.campaigns:
        done = returned_units(session, campaign.key)
        sent = {(r.unit, r.offset) for r in session.exec(
            select(CampaignReminder).where(CampaignReminder.campaign == campaign.key)).all()}
        for due in deadlines.due_reminders(campaign, settings.units, done, sent, ctx.now, settings.tz, workday):
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
    audience = next(a for a in campaign.audiences if a.name == due.audience)
    attachments = ()
    blank = campaign.attach_template  # the blank form; its existence is checked when the config is loaded
    if blank and blank.is_file():
        import mimetypes

        mime = mimetypes.guess_type(blank.name)[0] or "application/octet-stream"
        attachments = ((blank.name, blank.read_bytes(), mime),)
    elif blank:
        log_event(session, "form-template-missing", f"{campaign.key}: {blank} is gone; reminder sent without it")
    out = outbox.letter(
        "form-reminder", settings=settings, from_department=campaign.department, to=unit.addresses[0],
        to_name=unit.name, now=ctx.now, tag=f"{campaign.key}.{due.offset}", attachments=attachments,
        unit=unit.name, campaign=campaign.name, form=form_title(ctx, campaign.template), deadline=due.deadline,
        inclusive=audience.inclusive,
        days=(due.deadline - ctx.now.astimezone(settings.tz).date()).days,  # the offset's day may have moved
        attached=bool(attachments), stamped=campaign.require_stamped, department=dept.name)
    outbox.enqueue(session, out, settings.outbox, ctx.now)
    log_event(session, "form-reminder", f"{campaign.key}: {unit.name}, {due.offset} days before {due.deadline}")
    return 1


def _missing_list(session, ctx, campaign, missing) -> int:
    settings = ctx.settings
    dept = settings.department(campaign.department)
    items = [{"unit": m.unit, "audience": m.audience, "deadline": m.deadline.isoformat()} for m in missing]
    box = settings.mailbox(dept.mailbox or settings.mailboxes[0].name)  # to the department's own mailbox
    out = outbox.letter("form-missing", settings=settings, from_department=campaign.department, to=box.email,
                        to_name=dept.name, now=ctx.now, tag=campaign.key, form=form_title(ctx, campaign.template),
                        campaign=campaign.name, key=campaign.key, count=len(items), missing=items,
                        department=dept.name)
    outbox.enqueue(session, out, settings.outbox, ctx.now)
    log_event(session, "form-missing", f"{campaign.key}: {'、'.join(i['unit'] for i in items)}")
    return 1


def form_title(ctx, template: str) -> str:
    """The form's own title, as units know it; else the template name."""
    found = ctx.template(template)
    return found.title if found and found.title else template


def latest_valid_returns(session: Session, campaign: str) -> list[FormReturn]:
    latest: dict[str, FormReturn] = {}
    for row in session.exec(select(FormReturn).where(FormReturn.campaign == campaign).order_by(FormReturn.id)):
        if row.valid:
            latest[row.unit or row.sender] = row
    return list(latest.values())


def person_of(data: dict, key: tuple[str, ...]) -> tuple[str, ...] | None:
    """The person a row names (姓名 + 手机号, as the template's person_key says), spaces
    left out; None when the template has no key or a key column is empty."""
    if not key:
        return None
    values = tuple("".join(str(data.get(c) or "").split()) for c in key)
    return values if all(values) else None


def count_once(entries: list[dict], key: tuple[str, ...]) -> None:
    """Mark each entry (dicts with ret, unit, data) counted or a duplicate of another: a person
    reported by their own unit counts there; else where first received. Sets entry["counted"]
    and, on each, entry["others"]: the other entries naming the same person."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for entry in entries:
        entry["counted"], entry["others"] = True, []
        person = person_of(entry["data"], key)
        if person is not None:
            groups.setdefault(person, []).append(entry)
    for same in groups.values():
        if len(same) < 2:
            continue
        own = [e for e in same if e["unit"] and e["unit"] == e["ret"].unit]
        keep = (own or same)[0]
        for entry in same:
            entry["counted"] = entry is keep
            entry["others"] = [e for e in same if e is not entry]


def _where(entry: dict) -> str:
    ret = entry["ret"]
    return f"{ret.unit or ret.sender} 第{ret.version}版《{ret.filename}》{entry['source']}"


def export(engine, settings, campaign_key: str, template, path, now: datetime) -> dict:
    """The tally workbook: all rows with their source, totals per unit and county (a person
    in several returns, by the template's person_key, counted once), the duplicates with
    both sources, missing units; columns in the template's names and order. Returns counts
    for the CLI."""
    import json

    from openpyxl import Workbook
    from openpyxl.styles import Font

    from mailbot.store import FormRow

    campaign = settings.campaign(campaign_key)
    columns = [c.name for c in template.columns]
    numeric = [c.name for c in template.columns if c.type == "integer"]
    key = tuple(getattr(template, "person_key", ()) or ())
    book = Workbook()
    rows_sheet = book.active
    rows_sheet.title = "全部数据"
    rows_sheet.append(["报送单位", "版本", "文件", "位置", *columns, *(["重复", "同一人也见于"] if key else [])])
    per_unit: dict[str, list] = {}
    per_parent: dict[str, list] = {}
    entries = []
    with Session(engine) as session:
        returns = latest_valid_returns(session, campaign_key)
        done = {r.unit for r in returns if r.unit}
        for ret in returns:
            for row in session.exec(select(FormRow).where(FormRow.return_id == ret.id).order_by(FormRow.row_index)):
                entries.append({"ret": ret, "unit": row.row_unit, "parent": row.parent, "source": row.source,
                                "data": json.loads(row.data_json)})
    count_once(entries, key)
    for entry in entries:
        ret, data = entry["ret"], entry["data"]
        extra = (["重复，不计入" if not entry["counted"] else ("计入" if entry["others"] else ""),
                  "；".join(_where(o) for o in entry["others"])] if key else [])
        rows_sheet.append([ret.unit or ret.sender, ret.version, ret.filename, entry["source"],
                           *[data.get(c) for c in columns], *extra])
        if not entry["counted"]:
            continue
        county = entry["parent"] or stats.UNMATCHED
        for name, table in ((entry["unit"] or ret.unit or "（未识别）", per_unit), (county, per_parent)):
            sums = table.setdefault(name, [0] + [0] * len(numeric))
            sums[0] += 1
            for i, c in enumerate(numeric, 1):
                sums[i] += data.get(c) or 0
    totals = book.create_sheet("汇总")
    totals.append(["单位", "行数", *numeric])
    for name, sums in sorted(per_unit.items()):
        totals.append([name, *sums])
    totals.append([])
    totals.append(["县区（上级）", "行数", *numeric])
    for name, sums in sorted(per_parent.items()):
        totals.append([name, *sums])
    duplicates = [e for e in entries if not e["counted"]]
    if key:
        dup = book.create_sheet("重复人员")
        dup.append([*key, "计入", "重复出现于"])
        for entry in duplicates:
            kept = next(o for o in entry["others"] if o["counted"])
            dup.append([*(entry["data"].get(c) for c in key), _where(kept), _where(entry)])
    missing = book.create_sheet("未报单位")
    missing.append(["单位", "范围", "截止日期", "截止后"])
    count_missing = 0
    for audience in campaign.audiences:
        for unit in deadlines.audience_units(audience, settings.units):
            if unit not in done:
                count_missing += 1
                late = now >= deadlines.closes_at(audience.deadline, audience.inclusive, settings.tz)
                missing.append([unit, audience.name, audience.deadline.isoformat(), "是" if late else "否"])
    for sheet in book.worksheets:
        for cell in sheet[1]:
            cell.font = Font(bold=True)
    book.save(path)
    counts = {"rows": rows_sheet.max_row - 1, "units": len(done), "missing": count_missing}
    return {**counts, "duplicates": len(duplicates)} if key else counts


SCAN_TYPES = ("application/pdf", "image/jpeg", "image/png", "image/heic", "image/tiff", "image/bmp")


def _campaign_for(settings, template: str, mailbox: str):
    """The campaign a form belongs to: by template; the arrival mailbox's department breaks ties."""
    matches = [c for c in settings.campaigns if c.template == template]
    dept = next((d.key for d in settings.departments if d.mailbox == mailbox), None)
    return next((c for c in matches if c.department == dept), matches[0] if matches else None)


def handle_form(session: Session, ctx, row, mail: Mail, route: Route, staged: tuple[Staged, ...],
                vouched_by: str | None = None) -> None:
    """Record each form of a message (a new version per unit), its rows with their source,
    and answer the sender with what was recorded or exactly what is wrong. A form that would
    replace a unit's return from someone the unit's earlier returns do not vouch for is held
    (`return_problem`) unless an operator vouched for it (`vouched_by`)."""
    from pathlib import Path

    from mailbot.read.parse import safe_name
    from mailbot.routing import find_unit_by_name
    from mailbot.store import FormRow

    settings = ctx.settings
    forms = list(route.forms)
    forms = [f for f in forms if f["result"]["format"] != "pdf"] or forms  # a PDF beside Word/Excel: the stamped copy
    form_indexes = {f["index"] for f in forms}
    scans = [s for i, s in enumerate(staged) if i not in form_indexes and s.content_type in SCAN_TYPES]
    if not forms:
        _stamped_copy(session, ctx, row, mail, route, scans)
        return
    # Files that are neither a form nor its stamped copy (a 稿件 sent in the same mail): kept
    # beside the form, and the unit is asked to send a 稿件 on its own so it is filed and reviewed.
    others = [s for i, s in enumerate(staged) if i not in form_indexes and s not in scans
              and not s.in_forwarded_message]
    for item in forms:
        result = item["result"]
        campaign = _campaign_for(settings, result["template"], row.first_mailbox)
        if campaign is None:
            continue
        unit = route.unit or _header_unit(result, settings, find_unit_by_name, ctx.directory)
        previous = session.exec(select(FormReturn).where(FormReturn.campaign == campaign.key,
                                                         FormReturn.unit == unit)).all() if unit else []
        problem = None if vouched_by else return_problem(ctx, unit, previous, mail)
        if problem is not None:
            _hold_form(session, ctx, row, campaign, unit, mail, problem)
            continue
        version = len(previous) + 1
        stamped = bool(scans) or any(p.stamped for p in previous)
        file = staged[item["index"]]
        folder = Path("forms") / campaign.key / safe_name(unit or "未知单位", 1, "")
        (ctx.storage / folder).mkdir(parents=True, exist_ok=True)
        rel = folder / f"v{version}-{file.safe_name}"
        Path(file.path).replace(ctx.storage / rel)
        for scan in scans:
            Path(scan.path).replace(ctx.storage / folder / f"v{version}-盖章件-{scan.safe_name}")
        for other in others:
            Path(other.path).replace(ctx.storage / folder / f"v{version}-其他附件-{other.safe_name}")
        if others:
            log_event(session, "form-other-files", "、".join(o.filename or o.safe_name for o in others),
                      inbound_id=row.id)
        audience = next((a for a in campaign.audiences if unit in deadlines.audience_units(a, settings.units)),
                        campaign.audiences[0])
        on_time = deadlines.on_time(ctx.now, audience.deadline, audience.inclusive, settings.tz)
        complete = bool(result["template"] and result["rows"] and not result["errors"])
        valid = complete and (stamped or not campaign.require_stamped)
        ret = FormReturn(campaign=campaign.key, unit=unit, sender=mail.from_.address, version=version,
                         inbound_id=row.id, filename=file.filename or file.safe_name, path=str(rel),
                         format=result["format"], valid=valid, stamped=stamped, on_time=on_time,
                         result_json=__import__("json").dumps(result, ensure_ascii=False), received_at=ctx.now)
        session.add(ret)
        session.flush()
        sender_county = _county(next((u for u in ctx.directory.units if u.name == unit), None)) if unit else None
        for values, source, index in zip(result["rows"], result["sources"], range(1, len(result["rows"]) + 1)):
            named = values.get(result.get("unit_column") or "") if result.get("unit_column") else None
            matched = find_unit_by_name(str(named), ctx.directory) if named else None
            session.add(FormRow(return_id=ret.id, row_index=index, source=_source(source),
                                row_unit=matched.name if matched else named,
                                parent=_county(matched) if matched else sender_county,
                                data_json=__import__("json").dumps(values, ensure_ascii=False, default=str)))
        log_event(session, "form-received", f"{campaign.key} {unit or '?'} v{version}: {len(result['rows'])} rows, "
                                            f"{len(result['errors'])} errors", inbound_id=row.id)
        _form_reply(session, ctx, campaign, result, ret, audience, complete,
                    others=[o.filename or o.safe_name for o in others], mail=mail)
        others = []  # moved with the first form


def return_problem(ctx, unit: str | None, previous: list, mail: Mail) -> str | None:
    """Why this message may not replace `unit`'s return, or None. The first return may come
    from anyone (units send from personal addresses); a later one only from an address or
    domain the roster gives the unit, or an address that sent one of its returns before: a
    unit named in the subject, the signature or the form's header authorises nothing. A
    message not from exactly one sender, or failing DMARC/DKIM at the trusted server, never
    replaces a return."""
    from mailbot import review

    if unit is None or not previous:
        return None
    if problem := review.sender_problem(mail):
        return problem
    if review.auth_verdict(mail.headers, ctx.settings.review.authserv_id) is False:
        return "auth-failed"
    sender = mail.from_.address.strip().lower()
    entry = next((u for u in ctx.directory.units if u.name == unit), None)
    if entry is not None and (sender in entry.addresses or sender.rpartition("@")[2] in entry.domains):
        return None
    if sender in {(p.sender or "").strip().lower() for p in previous}:
        return None
    return "not-the-unit"


def _hold_form(session, ctx, row, campaign, unit: str, mail: Mail, problem: str) -> None:
    """Nothing is recorded; the operator decides (`mailbot review held` / `confirm` /
    `reject`), and the sender is told politely that the office will look at it."""
    sender = mail.from_.address.strip().lower()
    log_event(session, "form-hold", f"{problem}: {sender} sent {campaign.key} for {unit}", inbound_id=row.id,
              actor=sender)
    if "@" in sender:
        out = outbox.letter("form-reply", "form-held", settings=ctx.settings, from_department=campaign.department, to=sender,
                            now=ctx.now, tag=campaign.key, code=problem, unit=unit,
                            form=form_title(ctx, campaign.template))
        outbox.enqueue(session, out, ctx.settings.outbox, ctx.now)


def _stamped_copy(session, ctx, row, mail: Mail, route: Route, scans: list[Staged]) -> None:
    """A reply to a campaign's mail with only a scan or photo: the stamped copy of the form
    the unit sent before, which may now be complete; with no form yet, kept for the form."""
    import json
    from pathlib import Path

    from mailbot.read.parse import safe_name

    settings = ctx.settings
    campaign = next((c for c in settings.campaigns if c.key == route.campaign), None)
    if campaign is None or not scans:
        log_event(session, "form-scan-ignored", f"{route.campaign}: no such campaign or no scan",
                  inbound_id=row.id)
        return
    unit, sender = route.unit, mail.from_.address
    query = select(FormReturn).where(FormReturn.campaign == campaign.key)
    query = query.where(FormReturn.unit == unit) if unit else query.where(FormReturn.sender == sender)
    latest = session.exec(query.order_by(FormReturn.id.desc())).first()
    folder = Path("forms") / campaign.key / safe_name(unit or "未知单位", 1, "")
    (ctx.storage / folder).mkdir(parents=True, exist_ok=True)
    version = latest.version if latest else 1
    paths = []
    for scan in scans:
        target, n = folder / f"v{version}-盖章件-{scan.safe_name}", 1
        while (ctx.storage / target).exists():  # a second scan for the same version keeps the first
            n += 1
            target = folder / f"v{version}-盖章件{n}-{scan.safe_name}"
        Path(scan.path).replace(ctx.storage / target)
        paths.append(target)
    names = "、".join(s.filename or s.safe_name for s in scans)
    audience = next((a for a in campaign.audiences if unit in deadlines.audience_units(a, settings.units)),
                    campaign.audiences[0])
    if latest is not None:
        result = json.loads(latest.result_json)
        complete = bool(result["template"] and result["rows"] and not result["errors"])
        latest.stamped, latest.valid = True, complete
        session.add(latest)
        ret = latest
    else:
        result = {"template": campaign.template, "form_type": None, "columns": [], "rows": [], "sources": [],
                  "errors": [], "warnings": []}
        complete = False
        ret = FormReturn(campaign=campaign.key, unit=unit, sender=sender, version=1, inbound_id=row.id,
                         filename=names, path=str(paths[0]), format="scan", valid=False, stamped=True,
                         on_time=deadlines.on_time(ctx.now, audience.deadline, audience.inclusive, settings.tz),
                         result_json=json.dumps(result, ensure_ascii=False), received_at=ctx.now)
        session.add(ret)
        session.flush()
    kind = "form-stamped" if campaign.require_stamped else "form-scan"  # form-scan: to be entered by hand
    log_event(session, kind, f"{campaign.key} {unit or sender} v{ret.version}: {names}", inbound_id=row.id)
    _form_reply(session, ctx, campaign, result, ret, audience, complete, filename=names, missing_form=latest is None,
                mail=mail)


def _header_unit(result, settings, find, directory) -> str | None:
    for value in (result.get("header") or {}).values():
        if isinstance(value, str):
            unit = find(value, directory)
            if unit:
                return unit.name
    return None


def _county(unit) -> str:
    """Where a row counts in the per-county tally: its unit's parent (沂水县), or 市直单位 for a
    roster unit without one; rows naming no roster unit count under the sender's county."""
    from mailbot.digest.stats import CITY_LEVEL

    return unit.parent or CITY_LEVEL


def _source(source: dict) -> str:
    return "，".join(f"{k}={v}" for k, v in source.items())[:200]


def _form_reply(session, ctx, campaign, result, ret, audience, complete: bool, filename: str | None = None,
                missing_form: bool = False, others: list[str] = (), mail: Mail | None = None) -> None:
    """The answer to a form (or to a scan, `filename`): what was recorded, what is wrong or
    still missing (`missing_form`: only a scan or photo has come so far)."""
    settings = ctx.settings
    dept = settings.department(campaign.department)
    totals = []
    for name in result["columns"]:
        numbers = [r.get(name) for r in result["rows"] if isinstance(r.get(name), int)]
        if numbers and len(numbers) == len([r for r in result["rows"] if r.get(name) is not None]):
            totals.append((name, sum(numbers)))
    errors = [e["message"] for e in result["errors"]]
    missing_stamp = campaign.require_stamped and not ret.stamped
    out = outbox.letter(
        "form-reply", settings=settings, from_department=campaign.department, to=ret.sender, now=ctx.now,
        tag=campaign.key, answering=mail.message_id if mail else None, answering_refs=mail.references if mail else (),
        answering_subject=mail.subject if mail else None, valid=ret.valid, form=result["form_type"] or form_title(ctx, campaign.template),
        rows=len(result["rows"]), version=ret.version, unit=ret.unit, filename=filename or ret.filename,
        errors=errors, no_rows=not result["rows"] and not errors and not missing_form, totals=totals,
        warnings=result["warnings"], missing_stamp=missing_stamp, missing_form=missing_form,
        stamp_required=campaign.require_stamped, on_time=ret.on_time, deadline=audience.deadline.isoformat(),
        department=dept.name, others=list(others))
    from mailbot.routing import roster_unit

    outbox.enqueue(session, out, settings.outbox, ctx.now,
                   capped=not outbox.owed("form-reply", roster_unit(ret.sender, ctx.directory) is not None))
