"""The console's routes: a Starlette app built once from the settings (`create_app`).

Every page needs a signed-in person; every form carries the session's CSRF token; a leader
may look but not act; a clerk sees their department only. Errors become a Chinese page,
never a stack trace. Mail that an action queues is sent by `on_mail` (the daemon's drainer
when it runs the console, else a send right after the response).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import mimetypes
import threading
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from markupsafe import Markup
from sqlalchemy import text
from sqlmodel import Session
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from mailbot import clock, config, outbox
from mailbot.config import Unit
from mailbot.models import aware
from mailbot.office import Office
from mailbot.routing import Directory
from mailbot.store import FormReturn, InboundMessage, OutboxMessage, WebUser
from mailbot.web import actions, views
from mailbot.web.security import (
    Denied,
    NotFound,
    Staff,
    Throttle,
    check_csrf,
    csrf_token,
    inside,
    read_secret,
    safe_next,
)
from mailbot.web.users import ROLES, check_password

log = logging.getLogger("mailbot.web")
HERE = Path(__file__).parent
INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf"}
STATUS_NAMES = {"received": "已登记", "reviewing": "审核中", "approved": "已通过", "returned": "已退回",
                "published": "已发布", "withdrawn": "已撤回"}


class Console:
    """What every request shares: settings, engine, the office, the throttle, the clock."""

    def __init__(self, settings, engine, office: Office, now=clock.now, on_mail=None, on_roster=None):
        self.settings, self.engine, self.office, self.now = settings, engine, office, now
        self.throttle = Throttle(settings.web.sign_in_attempts, timedelta(minutes=settings.web.sign_in_window_minutes))
        self.on_mail, self.on_roster = on_mail, on_roster
        self.boards: dict[tuple, Markup] = {}  # campaign boards' bodies by what they show (campaign_board)
        self.roster_seen: tuple | None = None  # the roster file's (mtime, inode, size) our units come from
        self.roster_lock = threading.Lock()  # one roster edit at a time (each reads, changes, writes the file)

    def refresh_roster(self) -> bool:
        """Read the roster file again if it changed since we last did (an edit here, `mailbot
        units`, a hand edit): one stat per request. The settings and the office's directory
        then hold the new units; a file the robot would refuse is logged and not taken."""
        path = self.settings.roster
        if path is None:
            return False
        try:
            st = Path(path).stat()
        except OSError:
            return False
        seen = (st.st_mtime_ns, st.st_ino, st.st_size)
        if seen == self.roster_seen:
            return False
        first = self.roster_seen is None
        self.roster_seen = seen
        units, problems = config.load_roster(Path(path))
        if problems:
            log.error("roster %s not reloaded: %s", path, "; ".join(str(p) for p in problems))
            return False
        fresh = [Unit.model_validate(u) for u in units]
        if first and fresh == list(self.settings.units):
            return False
        self.settings = self.settings.model_copy(update={"units": fresh})
        self.office = dataclasses.replace(self.office, settings=self.settings,
                                          directory=Directory.from_settings(self.settings))
        self.boards = {}
        if not first:
            log.info("roster reloaded: %d units", len(fresh))
        return True

    def context(self):
        return self.office.at(self.now())

    async def send_mail(self) -> None:
        """Send what an action queued: the daemon's drainer if it runs us, else now."""
        if self.on_mail is not None:
            self.on_mail()
            return
        try:
            await outbox.drain(self.engine, self.settings, self.now())
        except Exception:  # the drainer retries later; the page has already answered
            log.exception("sending after a console action failed")


def _templates(settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    env = templates.env
    env.autoescape = True
    tz = settings.tz
    env.filters["local"] = lambda v, fmt="%Y-%m-%d %H:%M": aware(v).astimezone(tz).strftime(fmt) if v else "—"
    env.globals.update(STATUS_NAMES=STATUS_NAMES, ROLES=ROLES, settings=settings,
                       dept_name=lambda key: next((d.name for d in settings.departments if d.key == key), key or "—"),
                       person=lambda key: next((r.name for r in settings.reviewers if r.key == key), key),
                       quote=quote)
    return templates


def staff_of(request: Request) -> Staff:
    """The signed-in person, read again from the database (a removed user is signed out)."""
    user_id = request.session.get("user")
    if not user_id:
        raise Denied("sign-in")
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        user = session.get(WebUser, user_id)
    if user is None or not user.active or request.session.get("role") != user.role:
        request.session.clear()
        raise Denied("sign-in")
    return Staff(user.id, user.name, user.role, user.department)


def page(write: bool = False):
    """A route that needs a signed-in person; `write` routes also need the CSRF token and a role that acts."""

    def wrap(handler):
        @functools.wraps(handler)
        async def run(request: Request):
            console: Console = request.app.state.console
            if console.refresh_roster():
                request.app.state.templates.env.globals["settings"] = console.settings
            try:
                staff = staff_of(request)
            except Denied:
                if request.method == "GET":
                    return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)
                return _error(request, 403, "sign-in")
            if write:
                form = await request.form()
                try:
                    check_csrf(request.session, form.get("csrf"))
                except Denied:
                    return _error(request, 403, "csrf", staff)
                if not staff.can_act:
                    return _error(request, 403, "read-only", staff)
            try:
                return await handler(request, staff)
            except NotFound:
                return _error(request, 404, "not-found", staff)

        return run

    return wrap


def render(request: Request, view: str, staff: Staff | None, status_code: int = 200, **values) -> Response:
    templates: Jinja2Templates = request.app.state.templates
    # The error page outside the session middleware (a crash reaches the outermost handler) has no session.
    session = request.scope.get("session")
    flash = session.pop("flash", None) if session is not None else None
    csrf = csrf_token(session) if session is not None else ""
    return templates.TemplateResponse(request, view, {"staff": staff, "csrf": csrf, "flash": flash, **values},
                                      status_code=status_code)


def _error(request: Request, status: int, code: str, staff: Staff | None = None) -> Response:
    return render(request, "error.html", staff, status_code=status, code=code)


def _back(request: Request, url: str, code: str, **args) -> RedirectResponse:
    request.session["flash"] = {"code": code, **args}
    return RedirectResponse(url, status_code=303)


# --- sign-in -----------------------------------------------------------------------------


async def login_form(request: Request) -> Response:
    return render(request, "login.html", None, next=safe_next(request.query_params.get("next")))


async def login(request: Request) -> Response:
    console: Console = request.app.state.console
    form = await request.form()
    try:
        check_csrf(request.session, form.get("csrf"))
    except Denied:
        return _error(request, 403, "csrf")
    name, password = str(form.get("name") or "").strip()[:100], str(form.get("password") or "")[:1000]
    address = request.client.host if request.client else "-"
    now = console.now()
    nxt = safe_next(form.get("next"))
    if console.throttle.blocked(name, address, now):
        return render(request, "login.html", None, status_code=429, error="throttled", next=nxt, name=name)
    with Session(console.engine) as session:
        user = await asyncio.to_thread(check_password, session, name, password)
        if user is None:
            console.throttle.failed(name, address, now)
            return render(request, "login.html", None, status_code=401, error="wrong", next=nxt, name=name)
        user.last_sign_in_at = now
        session.add(user)
        session.commit()
        request.session.clear()  # a fresh session (and CSRF token) at every sign-in
        request.session.update(user=user.id, role=user.role)
    console.throttle.cleared(name, address)
    return RedirectResponse(nxt, status_code=303)


async def logout(request: Request) -> Response:
    form = await request.form()
    try:
        check_csrf(request.session, form.get("csrf"))
    except Denied:
        return _error(request, 403, "csrf")
    request.session.clear()
    request.session["flash"] = {"code": "signed-out"}
    return RedirectResponse("/login", status_code=303)


# --- pages -------------------------------------------------------------------------------


@page()
async def home(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        data = views.home(session, console.settings, staff, console.now())
    return render(request, "home.html", staff, **data)


@page()
async def submission_list(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    query = views.ListQuery.from_params(request.query_params)
    with Session(console.engine) as session:
        data = views.submissions(session, console.settings, staff, query)
    return render(request, "list.html", staff, query=query, statuses=views.STATUSES, **data)


@page()
async def submission(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        data = views.submission_page(session, console.settings, staff, request.path_params["tracking"])
    return render(request, "submission.html", staff, **data, units=console.settings.units,
                  departments=[d for d in console.settings.departments if staff.sees(d.key)])


SUB_ACTIONS = {
    "move": lambda s, ctx, staff, sub, form: actions.move(s, ctx, staff, sub, str(form.get("unit") or ""),
                                                          str(form.get("department") or "")),
    "withdraw": lambda s, ctx, staff, sub, form: actions.withdraw(s, ctx, staff, sub, str(form.get("reason") or "")),
    "publish": lambda s, ctx, staff, sub, form: actions.mark_published(s, ctx, staff, sub),
    "resend-review": lambda s, ctx, staff, sub, form: actions.resend_review(s, ctx, staff, sub),
}


@page(write=True)
async def submission_action(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    action = SUB_ACTIONS.get(request.path_params["action"])
    if action is None:
        raise NotFound(request.path_params["action"])
    form = await request.form()
    with Session(console.engine) as session:
        sub = views.find_submission(session, staff, request.path_params["tracking"])
        code = action(session, console.context(), staff, sub, form)
        session.commit()
        tracking = sub.tracking
    response = _back(request, f"/subs/{quote(tracking)}", code)
    response.background = BackgroundTask(console.send_mail)
    return response


@page()
async def download(request: Request, staff: Staff) -> Response:
    """A 稿件's file: inline for images and PDF (preview), else as an attachment."""
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        f = views.find_file(session, staff, int(request.path_params["file_id"]))
    return _file(console.settings.storage, f.path, f.filename, f.content_type, request.query_params.get("inline") == "1")


def _file(storage, rel: str, filename: str, content_type: str | None, inline: bool) -> Response:
    path = inside(storage, rel)
    kind = content_type if content_type in INLINE_TYPES else (mimetypes.guess_type(path.name)[0] or "")
    show = inline and kind in INLINE_TYPES
    return FileResponse(path, media_type=kind if show else "application/octet-stream",
                        content_disposition_type="inline" if show else "attachment", filename=filename or path.name)


@page()
async def exception_list(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        data = views.exceptions(session, console.settings, staff)
    return render(request, "exceptions.html", staff, **data)


@page()
async def inbound(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        data = views.inbound_message(session, staff, int(request.path_params["inbound_id"]), console.settings.storage)
    return render(request, "message.html", staff, **data, units=console.settings.units)


@page(write=True)
async def inbound_action(request: Request, staff: Staff) -> Response:
    """Held replies (confirm / reject), quarantined and needs-a-person mail (replay / dismiss)."""
    console: Console = request.app.state.console
    inbound_id, action = int(request.path_params["inbound_id"]), request.path_params["action"]
    form = await request.form()
    with Session(console.engine) as session:
        views.inbound_message(session, staff, inbound_id, console.settings.storage)  # may they see it at all
        row = session.get(InboundMessage, inbound_id)
        if action in ("confirm", "reject"):
            message = actions.settle_held(session, console.context(), staff, inbound_id, action == "confirm",
                                          str(form.get("reason") or ""))
            session.commit()
            response = _back(request, "/exceptions", "held", message=message)
        elif action == "dismiss" and staff.role == "operator":
            code = actions.dismiss(session, staff, row, str(form.get("reason") or ""))
            session.commit()
            response = _back(request, f"/inbound/{inbound_id}" if code != "dismissed" else "/exceptions", code)
        elif action == "replay" and staff.role == "operator":
            return await _replay(request, console, staff, row)
        elif action == "file" and staff.role == "operator":
            templates: Jinja2Templates = request.app.state.templates
            reason = templates.get_template("assigned-reason.txt").render(who=staff.name).strip()
            code, tracking = actions.file_as_submission(session, console.context(), staff, row,
                                                        str(form.get("unit") or "").strip(),
                                                        str(form.get("department") or ""), reason)
            session.commit()
            response = _back(request, f"/subs/{tracking}" if tracking else f"/inbound/{inbound_id}", code)
        else:
            raise NotFound(action)
    response.background = BackgroundTask(console.send_mail)
    return response


async def _replay(request: Request, console: Console, staff: Staff, row: InboundMessage) -> Response:
    from mailbot import pipeline
    from mailbot.store import RawStore, log_event

    raws = RawStore(console.settings.storage)
    data = inside(console.settings.storage, row.raw_path).read_bytes()
    with Session(console.engine) as session:
        log_event(session, "inbound-replayed", f"by {staff.name}", inbound_id=row.id, actor=staff.name)
        session.commit()
    processor = pipeline.Processor(console.engine, raws, office=console.office)
    processor.clock = console.now
    fresh, outcome = await asyncio.to_thread(pipeline.replay, console.engine, raws, data, row.first_mailbox, processor)
    response = _back(request, f"/inbound/{row.id}", "replayed", outcome=outcome, status=fresh.status)
    response.background = BackgroundTask(console.send_mail)
    return response


@page(write=True)
async def mail_action(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    action = request.path_params["action"]
    with Session(console.engine) as session:
        mail = session.get(OutboxMessage, int(request.path_params["mail_id"]))
        if mail is None or action not in ("resend", "mark-sent"):
            raise NotFound(action)
        visible = views.exceptions(session, console.settings, staff)["mail"]
        if mail.id not in {m.id for m in visible} and mail.status in ("failed", "uncertain"):
            raise NotFound(mail.id)
        if staff.role == "clerk" and mail.status not in ("failed", "uncertain"):
            raise NotFound(mail.id)
        do = actions.resend_mail if action == "resend" else actions.mark_sent
        code = do(session, console.context(), staff, mail)
        session.commit()
    response = _back(request, "/exceptions", code)
    response.background = BackgroundTask(console.send_mail)
    return response


# --- campaigns ---------------------------------------------------------------------------


@page()
async def campaign_list(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    return render(request, "campaigns.html", staff,
                  deadlines=views.campaign_deadlines(console.settings, staff, console.now()))


@page()
async def campaign_board(request: Request, staff: Staff) -> Response:
    """The board; its 1,000-row body is rendered again only when a return or reminder changed
    it, or the day did (checked against the database on every request)."""
    console: Console = request.app.state.console
    campaign = views.find_campaign(console.settings, staff, request.path_params["key"])
    now = console.now()
    with Session(console.engine) as session:
        version = (campaign.key, views.board_version(session, campaign.key), now.astimezone(console.settings.tz).date())
        body = console.boards.get(version)
        if body is None:
            data = views.board(session, console.settings, staff, campaign.key, now)
            templates: Jinja2Templates = request.app.state.templates
            body = Markup(templates.get_template("_board_audiences.html").render(**data))
            console.boards = {k: v for k, v in console.boards.items() if k[0] != campaign.key}  # one per campaign
            console.boards[version] = body
    return render(request, "board.html", staff, campaign=campaign, audiences_html=body)


@page()
async def tally(request: Request, staff: Staff) -> Response:
    """The tally workbook, as `mailbot export` writes it."""
    import tempfile

    from mailbot.campaigns import collecting

    console: Console = request.app.state.console
    campaign = views.find_campaign(console.settings, staff, request.path_params["key"])
    template = console.office.at(console.now()).template(campaign.template)
    if template is None:
        raise NotFound(campaign.template)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tally.xlsx"
        await asyncio.to_thread(collecting.export, console.engine, console.settings, campaign.key, template, path,
                                console.now())
        data = path.read_bytes()
    name = f"{campaign.name}-汇总.xlsx"
    return Response(data, media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}"})


@page()
async def return_page(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        data = views.form_return(session, console.settings, staff, int(request.path_params["return_id"]))
    template = console.office.at(console.now()).template(data["campaign"].template)
    return render(request, "return.html", staff, **data, template=template, typed=data["prefill"], problems=None)


@page()
async def return_file(request: Request, staff: Staff) -> Response:
    console: Console = request.app.state.console
    with Session(console.engine) as session:
        data = views.form_return(session, console.settings, staff, int(request.path_params["return_id"]))
    ret = data["ret"]
    if not ret.path:
        raise NotFound(ret.id)
    return _file(console.settings.storage, ret.path, Path(ret.path).name, None, request.query_params.get("inline") == "1")


@page(write=True)
async def return_enter(request: Request, staff: Staff) -> Response:
    """Rows typed beside the scan: checked like an emailed form, recorded as a new version."""
    console: Console = request.app.state.console
    form = await request.form()
    with Session(console.engine) as session:
        data = views.form_return(session, console.settings, staff, int(request.path_params["return_id"]))
        ctx = console.context()
        template = ctx.template(data["campaign"].template)
        if template is None:
            raise NotFound(data["campaign"].template)
        typed = _typed_rows(form, template.column_names)
        code, result = actions.enter_rows(session, ctx, staff, session.get(FormReturn, data["ret"].id), typed)
        if code != "entered":
            session.rollback()
            return render(request, "return.html", staff, status_code=400, **data, template=template, typed=typed,
                          problems=result)
        session.commit()
    return _back(request, f"/returns/{result['id']}", code)


def _typed_rows(form, columns: list[str]) -> list[dict]:
    rows: dict[int, dict] = {}
    for key, value in form.multi_items():
        if key.startswith("r") and "-" in key:
            index, _, col = key[1:].partition("-")
            if index.isdigit() and col.isdigit() and int(col) < len(columns) and int(index) < 500:
                rows.setdefault(int(index), {})[columns[int(col)]] = str(value)[:500]
    return [rows[i] for i in sorted(rows)]


# --- units, digest, health ---------------------------------------------------------------


def _units_page(request: Request, staff: Staff, status_code: int = 200, problem: str | None = None,
                typed: dict | None = None, action: str | None = None, code: str | None = None) -> Response:
    """The roster; for an operator with a roster file also the add form, or the edit form of
    ?edit=NAME (or of what they typed, with the `problem` that sent it back)."""
    console: Console = request.app.state.console
    q = str(request.query_params.get("q") or "").strip()[:100]
    found = [u for u in console.settings.units if not q or q in u.name or any(q in a for a in u.aliases)]
    editable = staff.role == "operator" and console.settings.roster is not None
    editing = None
    if editable and action is None and request.query_params.get("edit"):
        editing = next((u for u in console.settings.units if u.name == request.query_params["edit"]), None)
        if editing is not None:
            typed, action = {"original": editing.name, **editing.model_dump()}, "edit"
    with Session(console.engine) as session:
        history = actions.unit_history(session) if staff.role == "operator" else []
    return render(request, "units.html", staff, status_code=status_code, units=found, q=q,
                  total=len(console.settings.units), editable=editable, inline_units=console.settings.roster is None,
                  problem=problem, code=code, typed=typed or {}, action=action, history=history,
                  categories=sorted({u.category for u in console.settings.units}))


@page()
async def units(request: Request, staff: Staff) -> Response:
    return _units_page(request, staff)


@page(write=True)
async def unit_action(request: Request, staff: Staff) -> Response:
    """Add, edit or remove a unit with mailbot.store.roster (as `mailbot units` does): the file
    keeps its comments; a refused edit comes back with the roster's reason, the file untouched."""
    from mailbot.store.roster import BreaksConfig, RosterError

    console: Console = request.app.state.console
    action = request.path_params["action"]
    if action not in ("add", "edit", "remove"):
        raise NotFound(action)
    if staff.role != "operator":
        return _error(request, 403, "read-only", staff)
    if console.settings.roster is None:
        return _units_page(request, staff, 400, code="inline")
    form = await request.form()
    typed = actions.typed_unit(form)
    if action == "remove" and form.get("confirm") != "yes":
        unit = next((u for u in console.settings.units if u.name == typed["original"]), None)
        typed = {"original": unit.name, **unit.model_dump()} if unit else typed  # the edit form as it was
        return _units_page(request, staff, 400, typed=typed, action="edit", code="confirm")

    def change():  # in a thread: a big roster's round trip takes a moment
        with console.roster_lock, Session(console.engine) as session:
            done = actions.change_unit(session, staff, console.settings, action, typed)
            session.commit()
            return done

    try:
        done = await asyncio.to_thread(change)
    except BreaksConfig as exc:
        return _units_page(request, staff, 400, problem=exc.message, typed=typed, action=action, code="config")
    except RosterError as exc:
        return _units_page(request, staff, 400, problem=exc.message, typed=typed, action=action)
    console.refresh_roster()
    request.app.state.templates.env.globals["settings"] = console.settings
    if console.on_roster is not None:
        console.on_roster()  # the daemon running us reloads now, not at its next file look
    code = {"added": "unit-added", "removed": "unit-removed"}.get(done.action, "unit-changed")
    return _back(request, "/units", code if done.action != "changed" or done.fields else "nothing-changed",
                 unit=done.unit)


@page()
async def digest_page(request: Request, staff: Staff) -> Response:
    from mailbot import digest

    console: Console = request.app.state.console
    week = str(request.query_params.get("week") or "").strip()[:10]
    try:
        period = (digest.period_by_key(week, console.settings.digest, console.settings.tz) if week
                  else digest.period_for(console.now(), console.settings.digest, console.settings.tz))
    except ValueError:
        return render(request, "digest.html", staff, status_code=400, week=week, period=None, bad=True)
    return render(request, "digest.html", staff, week=period.key, period=period, bad=False,
                  last_day=period.ends_at - timedelta(seconds=1))


@page()
async def digest_view(request: Request, staff: Staff) -> Response:
    """The digest's own HTML, shown in a sandboxed frame of the digest page."""
    from mailbot import digest
    from mailbot.digest import digesting

    console: Console = request.app.state.console
    try:
        period = digest.period_by_key(str(request.query_params.get("week") or ""), console.settings.digest,
                                      console.settings.tz)
    except ValueError:
        raise NotFound("week")
    with Session(console.engine) as session:
        rendered = await asyncio.to_thread(functools.partial(digesting.render, session, console.settings, period,
                                                             console.now(), staff.scope, inline_chart=True))
    return Response(rendered.html, media_type="text/html; charset=utf-8",
                    headers={"Content-Security-Policy": "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
                                                        "frame-ancestors 'self'"})


async def healthz(request: Request) -> Response:
    console: Console = request.app.state.console
    try:
        with console.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:
        return PlainTextResponse("database unreachable", status_code=503)
    return PlainTextResponse("ok")


# --- the app -----------------------------------------------------------------------------


async def _not_found(request: Request, exc: HTTPException) -> Response:
    code = {404: "not-found", 405: "not-found"}.get(exc.status_code, "error")
    return _error(request, exc.status_code, code)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("console page failed: %s", request.url.path)
    return _error(request, 500, "error")


class Headers:
    """Security headers on every response: no framing by others, no sniffing, local assets only."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                names = {k.lower() for k, _ in headers}
                extra = {b"x-content-type-options": b"nosniff", b"referrer-policy": b"same-origin",
                         b"x-frame-options": b"SAMEORIGIN", b"cache-control": b"no-store",
                         b"content-security-policy": b"default-src 'self'; img-src 'self' data:; "
                                                     b"frame-src 'self'; object-src 'self'; frame-ancestors 'self'"}
                headers += [(k, v) for k, v in extra.items() if k not in names]
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, sending)


def create_app(settings, engine=None, *, office: Office | None = None, now=clock.now, on_mail=None,
               on_roster=None) -> Starlette:
    """The console for these settings (the engine's schema must be current). `on_roster` is
    called after the console changed the roster file (the daemon: reload now)."""
    from mailbot.store import make_engine

    engine = engine or make_engine(settings.db_url)
    office = office or Office.load(settings)
    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/", home),
        Route("/subs", submission_list),
        Route("/subs/{tracking}", submission),
        Route("/subs/{tracking}/{action}", submission_action, methods=["POST"]),
        Route("/files/{file_id:int}", download),
        Route("/exceptions", exception_list),
        Route("/inbound/{inbound_id:int}", inbound),
        Route("/inbound/{inbound_id:int}/{action}", inbound_action, methods=["POST"]),
        Route("/mail/{mail_id:int}/{action}", mail_action, methods=["POST"]),
        Route("/campaigns", campaign_list),
        Route("/campaigns/{key}", campaign_board),
        Route("/campaigns/{key}/tally.xlsx", tally),
        Route("/returns/{return_id:int}", return_page),
        Route("/returns/{return_id:int}/file", return_file),
        Route("/returns/{return_id:int}/enter", return_enter, methods=["POST"]),
        Route("/units", units),
        Route("/units/{action}", unit_action, methods=["POST"]),
        Route("/digest", digest_page),
        Route("/digest/view", digest_view),
        Route("/healthz", healthz),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(Headers),
        Middleware(SessionMiddleware, secret_key=read_secret(settings), session_cookie="mailbot_console",
                   max_age=int(settings.web.session_hours * 3600), same_site="lax",
                   https_only=settings.web.secure_cookies),
    ]
    app = Starlette(routes=routes, middleware=middleware,
                    exception_handlers={HTTPException: _not_found, Exception: _server_error})
    app.state.console = Console(settings, engine, office, now, on_mail, on_roster)
    app.state.templates = _templates(settings)
    return app


def serve(settings, engine=None, on_mail=None) -> None:
    """Run the console with uvicorn until interrupted (`mailbot web`)."""
    import uvicorn

    app = create_app(settings, engine, on_mail=on_mail)
    uvicorn.run(app, host=settings.web.host, port=settings.web.port, log_level="info", proxy_headers=False)

