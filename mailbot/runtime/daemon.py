"""The runtime: one asyncio loop owning a reader per mailbox (IDLE, or polling), with
reconnect-and-backoff, and the run-once mode used by tests and cron.

Blocking IMAP work runs in threads (`asyncio.to_thread`); a shared Event stops them.
"Now" comes from the one clock (mailbot.clock), which tests move.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path

from imapclient.exceptions import IMAPClientError

from mailbot import clock, ingest, memory, outbox, pipeline
from mailbot import config as config_mod
from mailbot.config import Mailbox, Settings
from mailbot.office import Office
from mailbot.pipeline import Counts, sync
from mailbot.runtime import leases, notify
from mailbot.store import RawStore, make_engine, schema

log = logging.getLogger("mailbot.daemon")


@dataclass
class Runtime:
    """What every part of the robot shares, built once from the settings."""

    settings: Settings
    engine: object
    raws: RawStore
    office: Office | None = None  # settings, directory, form templates, review secret: loaded once
    processor: pipeline.Processor | None = None
    totals: Counts = field(default_factory=Counts)
    lock: threading.Lock = field(default_factory=threading.Lock)
    mail_due: threading.Event = field(default_factory=threading.Event)  # the outbox has new rows
    sent: outbox.DrainCounts = field(default_factory=outbox.DrainCounts)
    pokes: dict[str, threading.Event] = field(default_factory=dict)  # per mailbox: poll now
    clock: object = clock.now  # "now" for processing, reminders, the digest and sending; tests move it
    config_path: Path | None = None  # where the settings came from: reloaded on SIGHUP or when it changes
    reload_requested: threading.Event = field(default_factory=threading.Event)
    leases: object = None  # several workers: who reads which mailbox, who runs the shared jobs (serve())

    @classmethod
    def build(cls, settings: Settings, upgrade_sqlite: bool = True) -> "Runtime":
        memory.tune_malloc()  # large messages come and go: their memory goes back to the system
        settings.storage.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.db_url)
        schema.ensure_current(engine, auto_upgrade_sqlite=upgrade_sqlite)
        raws = RawStore(settings.storage)
        rt = cls(settings=settings, engine=engine, raws=raws, office=Office.load(settings))
        rt.processor = pipeline.Processor(engine, raws, settings.parse_workers, settings.parse_timeout,
                                          on_outbox=rt.mail_due.set, office=rt.office)
        rt.processor.clock = lambda: rt.clock()
        return rt

    def chase(self, now=None) -> int:
        """Queue what the clock makes due: review reminders and campaign reminders."""
        from sqlmodel import Session

        from mailbot import reviewing
        from mailbot.campaigns import collecting

        with Session(self.engine) as session:
            ctx = self.office.at(now or self.clock())
            queued = reviewing.chase_reviews(session, ctx) + collecting.remind(session, ctx)
            session.commit()
        if queued:
            self.mail_due.set()
        return queued

    def watch(self, now=None) -> int:
        """Operator alerts the clock makes due: mailboxes down, sending failing, the daily summary."""
        from sqlmodel import Session

        from mailbot import alerts

        with Session(self.engine) as session:
            ctx = self.office.at(now or self.clock())
            queued = alerts.check(session, ctx) + alerts.summary_due(session, ctx)
            session.commit()
        if queued:
            self.mail_due.set()
        return queued

    def digest(self, now=None, trigger: str = "schedule"):
        """Send the weekly digest if its minute has come and nobody sent it yet."""
        from mailbot.digest import digesting

        outcome = digesting.send_digest(self.engine, self.settings, now or self.clock(), trigger)
        if outcome.status == "sent":
            self.mail_due.set()
        return outcome

    def digest_due(self, now=None):
        """The scheduler's check: the digest at its minute, or late after downtime."""
        from mailbot.digest import digesting

        outcome = digesting.send_if_due(self.engine, self.settings, now or self.clock())
        if outcome is not None and outcome.status == "sent":
            self.mail_due.set()
        return outcome

    def catch_up(self, now=None):
        """At start: a digest whose minute passed while the robot was down is sent now, marked late."""
        from mailbot.digest import digesting

        outcome = digesting.catch_up(self.engine, self.settings, now or self.clock())
        if outcome is not None and outcome.status == "sent":
            log.info("weekly digest %s was missed while the robot was down; sent now (late)", outcome.period.key)
            self.mail_due.set()
        return outcome

    def poke(self) -> None:
        """Wake every polling mailbox reader (the scheduler's mailbox-poll job)."""
        for event in self.pokes.values():
            event.set()

    def send_due(self, now=None) -> outbox.DrainCounts:
        """Send what the outbox owes now (blocking; for run --once and tests)."""
        counts = asyncio.run(outbox.drain(self.engine, self.settings, now or self.clock()))
        self._add_sent(counts)
        return counts

    def _add_sent(self, counts: outbox.DrainCounts) -> None:
        with self.lock:
            self.sent.add(counts)

    def close(self) -> None:
        self.processor.close()

    def reload(self) -> bool:
        """Read the configuration again (roster, campaigns, forms, rules …) and use it from the
        next message on; log what changed. Mailboxes, storage and the database keep their
        running values until a restart. A configuration with problems is not taken (logged)."""
        from mailbot.forms import TemplateError

        outbox.forget_templates()  # letters' wording: read again from the template files
        if self.config_path is None:
            return False
        try:
            new = config_mod.load(self.config_path)
        except config_mod.ConfigError as exc:
            log.error("configuration not reloaded: %d problem(s): %s", len(exc.problems),
                      "; ".join(str(p) for p in exc.problems))
            return False
        applied, restart = config_mod.describe_changes(self.settings, new)
        for line in restart:
            log.warning("reload: %s", line)
        if restart:
            new = new.model_copy(update={k: getattr(self.settings, k) for k in config_mod.RESTART_KEYS})
        if not applied:
            log.info("reload: nothing to change")
            return False
        try:
            office = Office.load(new)
        except TemplateError as exc:
            log.error("configuration not reloaded: form templates: %s", "; ".join(exc.problems))
            return False
        self.settings, self.office = new, office
        if self.processor is not None:
            self.processor.office, self.processor.settings, self.processor.directory = office, new, office.directory
        for line in applied:
            log.info("reload: %s", line)
        return True

    def watched(self) -> dict[Path, int]:
        """The files a reload reads, with their modification times (the file watch)."""
        if self.config_path is None:
            return {}
        s = self.settings
        paths = [Path(self.config_path), *([Path(s.roster)] if s.roster else [])]
        for folder in (s.forms_folder, s.calendar.holidays_folder):
            if folder and Path(folder).is_dir():
                paths += sorted(Path(folder).glob("*.y*ml"))
        out = {}
        for path in paths:
            try:
                out[path] = path.stat().st_mtime_ns
            except OSError:
                out[path] = -1
        return out

    def count(self, counts: Counts) -> None:
        with self.lock:
            self.totals.add(counts)


def run_once(rt: Runtime) -> list[ingest.MailboxError]:
    """Process everything pending in every mailbox once, then return the mailboxes' errors.

    What the run queued (receipts, forwards, replies) and what the clock makes due
    (reminders, alerts, the digest) is sent at its end. (Sending from a thread while later
    batches were read, as the daemon's drainer does, made the reading 1–2 s slower for
    2,000 messages and the whole run no shorter: bench/README.md, 2026-12-07.)"""
    errors: list[ingest.MailboxError] = []
    _read_all(rt, errors)
    rt.processor.close()  # workers end with the run; the next run starts fresh ones
    rt.chase()
    rt.watch()
    rt.catch_up()  # run from cron: the digest goes out on the first run after its minute
    rt.send_due()
    return errors


def _read_all(rt: Runtime, errors: list[ingest.MailboxError]) -> None:
    rt.count(rt.processor.drain())  # left from an earlier crash
    for box in rt.settings.mailboxes:
        try:
            client = ingest.connect(box, box.password())
        except ingest.MailboxError as exc:
            sync.record_error(rt.engine, box, exc.message)
            errors.append(exc)
            continue
        try:
            rt.count(sync.sync(client, box, rt.settings, rt.engine, rt.raws, rt.processor))
        except ingest.MailboxError as exc:
            sync.record_error(rt.engine, box, exc.message)
            errors.append(exc)
        except (IMAPClientError, *ingest.NETWORK_ERRORS) as exc:
            message = f"邮箱 {box.name}：读取邮件时连接出错（{exc.__class__.__name__}: {exc}），下次运行会从中断处继续"
            sync.record_error(rt.engine, box, message)
            errors.append(ingest.MailboxError("network", message))
        finally:
            ingest.close(client)


def mailbox_loop(rt: Runtime, box: Mailbox, stop: threading.Event) -> None:
    """Read one mailbox until stopped: sync, wait (IDLE or poll), sync; reconnect with backoff."""
    delay = rt.settings.reconnect_initial
    lease = f"mailbox:{box.name}"
    while not stop.is_set():
        if rt.leases is not None and not rt.leases.take(lease):
            stop.wait(leases.RETRY * random.uniform(0.8, 1.2))  # another worker reads it; take over when it goes
            continue
        client = None
        try:
            client = ingest.connect(box, box.password())
            log.info("%s: connected", box.name)
            delay = rt.settings.reconnect_initial
            while not stop.is_set():
                counts = sync.sync(client, box, rt.settings, rt.engine, rt.raws, rt.processor)
                if counts.fetched:
                    log.info("%s: fetched %d, stored %d, duplicates %d, parsed %d, quarantined %d", box.name,
                             counts.fetched, counts.stored, counts.duplicates, counts.parsed, counts.quarantined)
                rt.count(counts)
                ingest.wait_for_news(client, box, rt.settings, lambda: sync.last_uid(rt.engine, box), stop,
                                    rt.pokes.get(box.name))
        except ingest.MailboxError as exc:
            log.error("%s: %s", box.name, exc.message)
            sync.record_error(rt.engine, box, exc.message)
        except (IMAPClientError, *ingest.NETWORK_ERRORS) as exc:
            log.warning("%s: connection lost (%s: %s); reconnecting in %.1fs", box.name,
                        exc.__class__.__name__, exc, delay)
            sync.record_error(rt.engine, box, f"连接中断：{exc.__class__.__name__}")
        except Exception as exc:  # e.g. the database is down: keep the reader alive, retry
            log.exception("%s: unexpected error; retrying in %.1fs", box.name, delay)
            sync.record_error(rt.engine, box, f"内部错误：{exc.__class__.__name__}")
        finally:
            if client is not None:
                ingest.close(client)
        stop.wait(delay * random.uniform(0.8, 1.2))
        delay = min(delay * 2, rt.settings.reconnect_max)


async def send_loop(rt: Runtime, stop: threading.Event) -> None:
    """The outbox drainer: sends as soon as a commit queued mail; the scheduler's
    outbox-retry job wakes it when a retry falls due."""
    while not stop.is_set():
        rt.mail_due.clear()
        try:
            rt._add_sent(await outbox.drain(rt.engine, rt.settings))
        except Exception:  # the database or the disk: keep the drainer alive, try again
            log.exception("outbox drain failed; retrying")
            await asyncio.to_thread(stop.wait, 5)
        await asyncio.to_thread(rt.mail_due.wait, 60)


def watch_loop(rt: Runtime, stop: threading.Event) -> None:
    """Reload the configuration on SIGHUP (rt.reload_requested) or when one of its files
    changes (looked at every `reload_check` seconds; 0: on SIGHUP only)."""
    seen = rt.watched()
    while not stop.is_set():
        rt.reload_requested.wait(rt.settings.reload_check or None)
        if stop.is_set():
            return
        asked = rt.reload_requested.is_set()
        rt.reload_requested.clear()
        now = rt.watched()
        if asked or now != seen:
            log.info("reloading the configuration (%s)", "SIGHUP" if asked else "a file changed")
            try:
                rt.reload()
            except Exception:  # a reload must never stop the robot
                log.exception("reload failed; the running configuration is kept")
            seen = rt.watched()


async def serve(rt: Runtime, stop: threading.Event) -> None:
    """Run every mailbox reader and the outbox drainer until `stop` is set."""
    from mailbot.runtime import scheduler

    if rt.leases is None:
        rt.leases = leases.Leases(rt.engine, rt.settings.storage)
    rt.processor.warm()  # a daemon waits for mail: its parse workers start now, not with the first message
    await asyncio.to_thread(rt.processor.drain)
    rt.pokes = {box.name: threading.Event() for box in rt.settings.mailboxes}
    jobs = scheduler.start(rt)
    try:  # what fell due while the robot was down: a missed digest, reminders
        if await asyncio.to_thread(rt.leases.take, "scheduler"):  # one worker catches up for all
            await asyncio.to_thread(rt.catch_up)
            await asyncio.to_thread(rt.chase)
    except Exception:
        log.exception("catching up after the start failed; the scheduler's jobs will retry")
    readers = [asyncio.create_task(asyncio.to_thread(mailbox_loop, rt, box, stop)) for box in rt.settings.mailboxes]
    sender = asyncio.create_task(send_loop(rt, stop))
    # its own thread, not one of the loop's few to_thread workers (the readers and the drainer use those)
    watcher = threading.Thread(target=watch_loop, args=(rt, stop), name="config-watch", daemon=True)
    watcher.start()
    console = start_console(rt) if rt.settings.web.enabled else None
    systemd = notify.Notifier()  # Type=notify: ready now; the watchdog pings come from this loop
    systemd.ready(f"{len(readers)} mailbox(es)")
    watchdog = asyncio.create_task(systemd.watchdog_loop(lambda: not stop.is_set()))
    try:
        await asyncio.gather(*readers)
    finally:
        watchdog.cancel()
        systemd.stopping()
        if console is not None:
            console.should_exit = True
        jobs.shutdown(wait=False)
        rt.mail_due.set()  # let the drainer see `stop`
        rt.reload_requested.set()  # and the watcher
        await sender
        watcher.join(timeout=10)


def start_console(rt: Runtime):
    """The staff console (mailbot.web) in a thread of its own, on the robot's database; the
    mail its actions queue wakes this drainer, a roster edit wakes the reload watcher.
    Returns the uvicorn server (set should_exit)."""
    import uvicorn

    from mailbot.web.app import create_app

    app = create_app(rt.settings, rt.engine, office=rt.office, now=lambda: rt.clock(), on_mail=rt.mail_due.set,
                     on_roster=rt.reload_requested.set)
    server = uvicorn.Server(uvicorn.Config(app, host=rt.settings.web.host, port=rt.settings.web.port,
                                           log_level="warning"))
    threading.Thread(target=server.run, name="web-console", daemon=True).start()
    log.info("staff console on http://%s:%d/", rt.settings.web.host, rt.settings.web.port)
    return server


def run_forever(rt: Runtime) -> None:
    """The daemon: stops cleanly on SIGTERM/SIGINT and logs one line of counts."""
    stop = threading.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        loop.add_signal_handler(signal.SIGHUP, rt.reload_requested.set)
        await serve(rt, stop)

    log.info("mailbot started: %d mailbox(es), database %s", len(rt.settings.mailboxes),
             rt.engine.url.render_as_string(hide_password=True))
    try:
        asyncio.run(main())
    finally:
        rt.close()
        if rt.leases is not None:
            rt.leases.close()
    t = rt.totals
    log.info("mailbot stopped: fetched %d, stored %d, duplicates %d, parsed %d, quarantined %d, "
             "mail sent %d, failed %d", t.fetched, t.stored, t.duplicates, t.parsed, t.quarantined,
             rt.sent.sent, rt.sent.failed)
