"""Latency benchmark: from a unit's 稿件 leaving its mail client to the robot's 回执 in that
unit's INBOX, with `mailbot run` (the IDLE daemon) running as operators run it.

1. Start MailServers (Dovecot + SMTP relay on loopback, maildirs on /dev/shm) with N extra
   unit users u01..uNN, each on the roster of the robot's config (SQLite under a temp dir
   on the normal disk, parse_workers 1, idle true, the three department mailboxes).
2. Start `python -m mailbot run --config FILE` as a child process; wait for ": connected"
   three times in its log.
3. For each unit in turn, every --gap seconds (a fixed schedule, not waiting for the
   receipt): send a small 稿件 (Chinese subject, a small .docx attachment) with aiosmtplib
   to skxkpb / skxxhb / skxdxb in rotation; t0 = just before the send. A separate thread
   polls the INBOX of every unit still waiting with `STATUS INBOX (MESSAGES)` every 20 ms
   over an IMAP connection per unit (logged in before the run); t1 = the end of the STATUS
   that first shows the receipt. Polling adds at most the poll interval plus one STATUS
   round trip; IDLE would add Dovecot's fixed ~500 ms notify delay. The true delivery time
   of each receipt is read from its maildir file name (Dovecot writes <secs>.M<usecs>P...),
   so the detection overhead is measured, not only bounded.
4. Verify: every unit got exactly one message, its subject is "[XX-YYYY-NNNN] 回执：…" and
   names that unit's 稿件; the database has N parsed messages and N sent outbox rows.
5. SIGTERM the daemon, require exit code 0. Split each latency with the database's clocks
   (inbound_message.received_at, processed_at, outbox.created_at, sent_at) and the
   daemon's log; print a table; write bench/results/latency-<timestamp>.json.

Run from the repository root: bench/latency [--units 50] [--gap 2.0] [--keep]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime, timezone
from email import message_from_bytes
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import formataddr, make_msgid
from pathlib import Path

import aiosmtplib
from imapclient import IMAPClient

from devtools.devservers import MailServers, default_users

sys.path.insert(0, str(Path(__file__).resolve().parent))
import robotconfig  # noqa: E402  (the departments and routing rules, and the config check)
from ingest import fs_type, git_state, machine, shown  # noqa: E402  (same environment facts as bench/ingest)

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PASSWORD_ENV = "MAILBOT_BENCH_PASSWORD"
DEPT_BOXES = robotconfig.DEPT_BOXES
RECEIPT_SUBJECT = re.compile(r"^\[([A-Z]{1,4}-\d{4}-\d{3,6})\] 回执：")
MAILDIR_TIME = re.compile(r"^(\d+)\.M(\d+)P")
GOAL_P50 = 1.0
GOAL_P95 = 2.0
CONNECT_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0


class BenchFailure(SystemExit):
    pass


def fail(message: str) -> None:
    print(f"\n*** BENCHMARK FAILED: {message}", file=sys.stderr, flush=True)
    raise BenchFailure(1)


# --- the units and their 稿件 ------------------------------------------------------


def make_units(n: int) -> list[dict]:
    """u01..uNN: a user on the mail server and a unit on the roster, three categories in turn
    (so the routing rules send them to all three departments)."""
    width = max(2, len(str(n)))
    units = []
    for i in range(1, n + 1):
        tag = f"{i:0{width}d}"
        kind = (i - 1) % 3
        name, category = [(f"测试{tag}县科协", "县区科协"), (f"临沂市测试{tag}学会", "学会"),
                          (f"测试{tag}科普基地", "科普基地")][kind]
        units.append({"index": i, "user": f"u{tag}", "tag": tag, "name": name, "category": category,
                      "to": DEPT_BOXES[(i - 1) % len(DEPT_BOXES)]})
    return units


def small_docx(title: str) -> bytes:
    """A minimal but well-formed .docx (a zip with the three parts Word needs), ~1 KB."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml",
                   '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                   '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                   '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                   '<Default Extension="xml" ContentType="application/xml"/>'
                   '<Override PartName="/word/document.xml" ContentType="application/'
                   'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>')
        z.writestr("_rels/.rels",
                   '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                   '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
                   '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/'
                   'relationships/officeDocument" Target="word/document.xml"/></Relationships>')
        z.writestr("word/document.xml",
                   '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
                   '<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main">'
                   f'<w:body><w:p><w:r><w:t>{title}</w:t></w:r></w:p>'
                   '<w:p><w:r><w:t>9月16日，我县在人民广场举办全国科普日主场活动，发放宣传资料三千余份。</w:t></w:r></w:p>'
                   '</w:body></w:document>')
    return buf.getvalue()


def submission(unit: dict, domain: str) -> tuple[EmailMessage, str]:
    title = f"关于开展2026年全国科普日活动的报道（第{unit['tag']}号）"
    msg = EmailMessage()
    msg["From"] = formataddr((unit["name"], f"{unit['user']}@{domain}"), charset="utf-8")
    msg["To"] = f"{unit['to']}@{domain}"
    msg["Subject"] = f"【{unit['name']}】{title}"
    msg["Message-ID"] = make_msgid(domain=f"{unit['user']}.{domain}")
    msg["Date"] = datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S +0000")
    msg.set_content(f"各位老师好：\n\n报送{title}，详见附件，请审阅。\n\n{unit['name']}\n", charset="utf-8")
    msg.add_attachment(small_docx(title), maintype="application",
                       subtype="vnd.openxmlformats-officedocument.wordprocessingml.document",
                       filename=f"{unit['name']}科普日活动稿件.docx")
    return msg, title


# --- the robot -------------------------------------------------------------------------


def write_config(srv: MailServers, units: list[dict], storage: Path, path: Path) -> Path:
    data = {
        "storage": str(storage),  # database_url unset: SQLite at <storage>/mailbot.db (the default)
        "parse_workers": 1,
        "idle": True,
        "mailboxes": [{"name": n, "host": srv.host, "port": srv.imap_port, "tls": "plain", "user": n,
                       "password_env": PASSWORD_ENV, "timeout": 30, "address": srv.address(n),
                       "smtp_host": srv.host, "smtp_port": srv.smtp_port, "smtp_tls": "plain",
                       "smtp_auth": False} for n in DEPT_BOXES],
        "departments": robotconfig.departments(DEPT_BOXES),
        "organisation": "临沂市科协",
        "mail_domain": "ly.example.test",
        "units": [{"name": u["name"], "category": u["category"], "addresses": [srv.address(u["user"])]}
                  for u in units],
        "routing": robotconfig.ROUTING,
    }
    return robotconfig.write(data, path)  # stops the benchmark if the robot would refuse it


class Daemon:
    """`python -m mailbot run --config FILE` as a child process, stdout+stderr to a log file."""

    def __init__(self, config: Path, log_path: Path):
        self.config, self.log_path, self.proc = config, log_path, None

    def start(self) -> "Daemon":
        env = {**os.environ, PASSWORD_ENV: "secret", "PYTHONUNBUFFERED": "1"}
        env.pop("MAILBOT_DEBUG", None)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([str(VENV_PYTHON), "-m", "mailbot", "run", "--config", str(self.config)],
                                     cwd=ROOT, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env)
        return self

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, needle: str, count: int, timeout: float) -> float:
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.text().count(needle) >= count:
                return time.monotonic() - start
            if self.proc.poll() is not None:
                fail(f"the daemon exited with {self.proc.returncode} before {needle!r} x{count}:\n"
                     f"{self.text()[-4000:]}")
            time.sleep(0.02)
        fail(f"no {needle!r} x{count} in the daemon's log after {timeout:.0f} s:\n{self.text()[-4000:]}")

    def stop(self) -> tuple[int, float]:
        """SIGTERM, wait; (exit code, seconds to exit). SIGKILL only if it hangs."""
        t = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self.log.close()
                fail(f"the daemon did not exit within {STOP_TIMEOUT:.0f} s of SIGTERM (killed)")
        self.log.close()
        return self.proc.returncode, time.monotonic() - t

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --- detection: a poller thread ----------------------------------------------------------


class Poller(threading.Thread):
    """Polls the INBOX of every unit with an outstanding receipt, `STATUS INBOX (MESSAGES)`
    every `interval` seconds, one pre-logged-in connection per unit. A hit records
    t1 = the end of the STATUS that shows the new message, and `before` = the start of the
    previous STATUS of that unit that did not (the message arrived in between)."""

    def __init__(self, srv: MailServers, users: list[str], interval: float):
        super().__init__(daemon=True, name="receipt-poller")
        self.interval = interval
        self.conns: dict[str, IMAPClient] = {}
        for user in users:
            client = IMAPClient(srv.host, port=srv.imap_port, ssl=False, timeout=30)
            client._imap.debug = 0  # see bench/README.md (imapclient's imaplib debug tax)
            client.login(user, srv.users[user])
            self.conns[user] = client
        self.baseline = {u: self.count(u) for u in users}
        self.lock = threading.Lock()
        self.waiting: dict[str, float] = {}  # user -> start of the last STATUS that saw nothing
        self.hits: dict[str, dict] = {}
        self.arrived = threading.Condition(self.lock)
        self.stop_event = threading.Event()
        self.polls = 0
        self.status_s: list[float] = []
        self.late_ticks = 0
        self.error: BaseException | None = None

    def count(self, user: str) -> int:
        return int(self.conns[user].folder_status("INBOX", [b"MESSAGES"])[b"MESSAGES"])

    def expect(self, user: str) -> None:
        with self.lock:
            self.waiting[user] = time.time()

    def run(self) -> None:
        try:
            next_tick = time.monotonic()
            while not self.stop_event.is_set():
                with self.lock:
                    users = list(self.waiting)
                for user in users:
                    start = time.time()
                    n = self.count(user)
                    end = time.time()
                    self.polls += 1
                    if len(self.status_s) < 20000:
                        self.status_s.append(end - start)
                    with self.lock:
                        if n > self.baseline[user]:
                            self.hits[user] = {"t1": end, "before": self.waiting.pop(user), "messages": n,
                                               "extra": n - self.baseline[user]}
                            self.arrived.notify_all()
                        else:
                            self.waiting[user] = start
                next_tick += self.interval
                delay = next_tick - time.monotonic()
                if delay > 0:
                    self.stop_event.wait(delay)
                else:
                    self.late_ticks += 1
                    next_tick = time.monotonic()
        except BaseException as exc:  # reported by the main thread
            self.error = exc
            with self.lock:
                self.arrived.notify_all()

    def wait_all(self, users: set[str], deadline: float) -> None:
        with self.lock:
            while not users <= set(self.hits) and self.error is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self.arrived.wait(min(left, 0.5))

    def close(self) -> None:
        self.stop_event.set()
        if self.is_alive():
            self.join(5)
        for client in self.conns.values():
            try:
                client.logout()
            except Exception:  # best effort at teardown
                pass


# --- the run --------------------------------------------------------------------------


async def send_all(srv: MailServers, units: list[dict], gap: float, poller: Poller) -> list[dict]:
    """One 稿件 per unit, on a fixed schedule (start + i * gap)."""
    sends = []
    start = time.monotonic()
    for k, unit in enumerate(units):
        due = start + k * gap
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        msg, title = submission(unit, srv.domain)
        poller.expect(unit["user"])
        t0 = time.time()
        await aiosmtplib.send(msg, hostname=srv.host, port=srv.smtp_port, start_tls=False, use_tls=False,
                              timeout=30)
        t_sent = time.time()  # the relay has delivered into the department's INBOX by now (no queue)
        sends.append({"unit": unit["user"], "name": unit["name"], "to": unit["to"], "title": title,
                      "message_id": msg["Message-ID"], "t0": t0, "t_smtp_done": t_sent})
        print(f"  sent {k + 1:>3}/{len(units)}  {unit['user']} -> {unit['to']}  "
              f"(SMTP {1000 * (t_sent - t0):.0f} ms)", flush=True)
    return sends


def maildir_times(srv: MailServers, user: str) -> list[float]:
    """Delivery times of the messages in a user's INBOX, from Dovecot's maildir file names."""
    out = []
    base = Path(srv.dir) / "mail" / user / "Maildir"
    for sub in ("new", "cur"):
        d = base / sub
        if d.is_dir():
            for name in os.listdir(d):
                m = MAILDIR_TIME.match(name)
                if m:
                    out.append(int(m.group(1)) + int(m.group(2)) / 1e6)
    return sorted(out)


def read_receipts(srv: MailServers, user: str) -> list[dict]:
    client = srv.imap(user)
    try:
        client._imap.debug = 0
        client.select_folder("INBOX", readonly=True)
        uids = sorted(client.search("ALL"))
        got = client.fetch(uids, [b"BODY.PEEK[HEADER.FIELDS (SUBJECT IN-REPLY-TO FROM MESSAGE-ID)]"]) if uids else {}
    finally:
        client.logout()
    out = []
    for uid in uids:
        raw = next(v for k, v in got[uid].items() if k.startswith(b"BODY[HEADER"))
        h = message_from_bytes(raw)
        out.append({"uid": uid, "subject": str(make_header(decode_header(h.get("Subject", "")))),
                    "in_reply_to": (h.get("In-Reply-To") or "").strip(), "from": h.get("From", ""),
                    "message_id": (h.get("Message-ID") or "").strip()})
    return out


def db_times(db: Path) -> tuple[dict, dict]:
    """Per sender address: the inbound row's and the receipt's timestamps (epoch seconds),
    and totals for verification."""
    def epoch(value: str | None) -> float | None:
        if not value:
            return None
        dt = datetime.fromisoformat(value)
        return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = con.execute("""
            SELECT i.from_address, i.message_id, i.received_at, i.processed_at, i.status, i.kind,
                   s.tracking, s.department, s.unit, o.created_at, o.sent_at, o.status, o.attempts, o.subject
            FROM inbound_message i
            LEFT JOIN submission s ON s.inbound_id = i.id
            LEFT JOIN outbox o ON o.inbound_id = i.id AND o.kind = 'receipt'""").fetchall()
        totals = {
            "inbound_by_status": dict(con.execute("SELECT status, COUNT(*) FROM inbound_message GROUP BY status")),
            "inbound_by_kind": dict(con.execute("SELECT COALESCE(kind, '?'), COUNT(*) FROM inbound_message GROUP BY kind")),
            "submissions": con.execute("SELECT COUNT(*) FROM submission").fetchone()[0],
            "outbox_by_status": dict(con.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status")),
            "message_copy_by_action": dict(con.execute(
                "SELECT server_action, COUNT(*) FROM message_copy GROUP BY server_action")),
        }
    finally:
        con.close()
    per = {}
    for (frm, mid, rec, proc, status, kind, tracking, dept, unit, created, sent, ostatus, attempts, osubj) in rows:
        per.setdefault((frm or "").lower(), []).append({
            "message_id": mid, "received_at": epoch(rec), "processed_at": epoch(proc), "status": status,
            "kind": kind, "tracking": tracking, "department": dept, "unit": unit, "queued_at": epoch(created),
            "sent_at": epoch(sent), "outbox_status": ostatus, "attempts": attempts, "outbox_subject": osubj})
    return per, totals


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) (\w+) ([\w.]+): (.*)$")


def log_events(text: str) -> list[dict]:
    """The daemon's log lines with their times (local time, ms) as epoch seconds."""
    out = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m:
            t = time.mktime(time.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")) + int(m.group(2)) / 1000
            out.append({"t": t, "level": m.group(3), "logger": m.group(4), "message": m.group(5)})
    return out


def quantile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(values)
    if len(xs) == 1:
        return xs[0]
    pos = (len(xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def stats(values: list[float]) -> dict:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"n": 0}
    return {"n": len(vals), "p50": quantile(vals, 0.5), "p95": quantile(vals, 0.95), "max": max(vals),
            "min": min(vals), "mean": statistics.fmean(vals)}


STAGES = [  # (key, label, from, to)
    ("smtp_in", "send: t0 -> SMTP 250 (relay delivered into the dept INBOX)", "t0", "t_smtp_done"),
    ("to_fetch", "delivery -> fetched+stored (IDLE notify, SELECT/SEARCH/FETCH)", "t_smtp_done", "received_at"),
    ("to_parsed", "stored -> parse recorded (sync, commit, worker parse, filing)", "received_at", "processed_at"),
    ("to_queued", "parse recorded -> receipt row (same transaction)", "processed_at", "queued_at"),
    ("to_sent", "receipt row -> SMTP send done (commit, drainer wake, send)", "queued_at", "sent_at"),
    ("to_maildir", "receipt row -> in the unit's maildir (Dovecot file name)", "queued_at", "t_maildir"),
    ("detect", "in the unit's maildir -> seen by the poller (detection cost)", "t_maildir", "t1"),
    ("sent_to_seen", "SMTP send done -> seen by the poller", "sent_at", "t1"),
]


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/latency", description=__doc__.split("\n\n")[0])
    ap.add_argument("--units", type=int, default=50, help="units, one 稿件 each (default 50)")
    ap.add_argument("--gap", type=float, default=2.0, help="seconds between sends (default 2.0)")
    ap.add_argument("--poll", type=float, default=0.020, help="receipt poll interval in seconds (default 0.020)")
    ap.add_argument("--timeout", type=float, default=30.0,
                    help="seconds after the last send to wait for outstanding receipts (default 30)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds to wait after the last receipt before counting duplicates (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the robot's work dir (database, config, daemon log)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("BENCH_WORKDIR", "/var/tmp")),
                    help="where the robot's storage and SQLite go (default /var/tmp; must not be tmpfs)")
    ap.add_argument("--results", type=Path, default=Path(os.environ.get("BENCH_RESULTS", RESULTS)),
                    help="folder for the JSON results (default bench/results, or $BENCH_RESULTS)")
    args = ap.parse_args()
    if args.units < 1:
        ap.error("--units must be at least 1")
    if args.gap < 0 or args.poll <= 0:
        ap.error("--gap must be >= 0 and --poll > 0")

    mount, kind = fs_type(args.workdir)
    if kind in ("tmpfs", "ramfs"):
        fail(f"--workdir {args.workdir} is on {kind}; the robot's default storage is a normal disk")
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"mailbot-bench-latency-{stamp}-", dir=args.workdir))
    units = make_units(args.units)
    users = {**default_users(), **{u["user"]: "secret" for u in units}}
    result: dict = {"benchmark": "latency", "started": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "params": {"units": args.units, "gap_s": args.gap, "poll_s": args.poll,
                               "timeout_s": args.timeout, "settle_s": args.settle, "parse_workers": 1,
                               "idle": True, "detection": "poll STATUS INBOX (MESSAGES), one connection per unit"},
                    "machine": machine(), "robot_storage": {"dir": str(workdir), "mount": mount, "fs": kind}}
    print(f"latency benchmark: {args.units} units, one 稿件 every {args.gap:g} s; robot storage {workdir} "
          f"({kind} on {mount}); receipts polled every {1000 * args.poll:.0f} ms", flush=True)
    daemon = poller = None
    try:
        with MailServers(users=users) as srv:
            mail_mount, mail_fs = fs_type(Path(srv.dir))
            result["mailserver_dir"] = {"dir": str(srv.dir), "mount": mail_mount, "fs": mail_fs}
            print(f"  Dovecot on {srv.host}:{srv.imap_port}, SMTP relay on {srv.smtp_port}, "
                  f"{len(users)} users, maildirs in {srv.dir} ({mail_fs})", flush=True)
            storage = workdir / "storage"
            config = write_config(srv, units, storage, workdir / "mailbot.yaml")
            log_path = workdir / "daemon.log"
            result["code_at_daemon_start"] = git_state()
            t_spawn = time.monotonic()
            daemon = Daemon(config, log_path).start()
            daemon.wait_log(": connected", len(DEPT_BOXES), CONNECT_TIMEOUT)
            result["daemon_connected_s"] = time.monotonic() - t_spawn
            print(f"  daemon pid {daemon.proc.pid}: all {len(DEPT_BOXES)} mailboxes connected after "
                  f"{result['daemon_connected_s']:.2f} s", flush=True)

            poller = Poller(srv, [u["user"] for u in units], args.poll)
            if any(poller.baseline.values()):
                fail(f"unit INBOXes not empty at start: {poller.baseline}")
            poller.start()
            time.sleep(0.5)  # the readers' first (empty) sync is done; they are in IDLE

            sends = asyncio.run(send_all(srv, units, args.gap, poller))
            last_send = time.monotonic()
            poller.wait_all({u["user"] for u in units}, last_send + args.timeout)
            if poller.error is not None:
                fail(f"the receipt poller failed: {poller.error!r}")
            if len(poller.hits) == len(units):
                time.sleep(args.settle)  # a second receipt, if any, would show up now
            poller.close()
            # verification from the unit INBOXes
            received = {u["user"]: read_receipts(srv, u["user"]) for u in units}
            maildir = {u["user"]: maildir_times(srv, u["user"]) for u in units}
            result["dovecot_log_tail"] = Path(srv.dovecot.log_path).read_text(errors="replace")[-2000:]

            code, stop_s = daemon.stop()
            result["daemon_stop"] = {"exit_code": code, "seconds_to_exit": stop_s}
            print(f"  daemon stopped by SIGTERM: exit code {code} after {stop_s:.2f} s", flush=True)
    except BenchFailure:
        print(f"work dir left for inspection: {workdir} (mailbot.yaml, daemon.log, storage/)", file=sys.stderr)
        raise
    finally:
        if poller is not None:
            poller.close()
        if daemon is not None:
            daemon.kill()

    log_text = log_path.read_text(errors="replace")
    result["daemon_log"] = {"lines": len(log_text.splitlines()),
                            "warnings_or_errors": [ln for ln in log_text.splitlines()
                                                   if " WARNING " in ln or " ERROR " in ln or "Traceback" in ln][:50],
                            "stopped_line": next((ln for ln in log_text.splitlines() if "mailbot stopped" in ln), None)}
    per_db, totals = db_times(storage / "mailbot.db")
    events = log_events(log_text)

    problems: list[str] = []
    samples = []
    trackings: dict[str, str] = {}
    for s in sends:
        user = s["unit"]
        addr = f"{user}@example.test"
        hit = poller.hits.get(user)
        msgs = received[user]
        row = (per_db.get(addr) or [{}])[0]
        if len(per_db.get(addr) or []) != 1:
            problems.append(f"{user}: {len(per_db.get(addr) or [])} inbound rows in the database")
        if hit is None:
            problems.append(f"{user}: no receipt within {args.timeout:.0f} s of the last send")
        if len(msgs) != 1:
            problems.append(f"{user}: {len(msgs)} messages in the INBOX (expected exactly one receipt)")
        subject = msgs[0]["subject"] if msgs else ""
        m = RECEIPT_SUBJECT.match(subject)
        if msgs and (not m or "回执" not in subject or s["title"] not in subject):
            problems.append(f"{user}: unexpected receipt subject {subject!r}")
        if msgs and msgs[0]["in_reply_to"] != s["message_id"]:
            problems.append(f"{user}: receipt In-Reply-To {msgs[0]['in_reply_to']!r} is not the 稿件 "
                            f"{s['message_id']!r}")
        if m:
            if m.group(1) in trackings:
                problems.append(f"{user}: tracking number {m.group(1)} also given to {trackings[m.group(1)]}")
            trackings[m.group(1)] = user
        times = maildir[user]
        sample = {**s, "t1": hit["t1"] if hit else None, "t1_lower_bound": hit["before"] if hit else None,
                  "latency_s": (hit["t1"] - s["t0"]) if hit else None,
                  "latency_lower_bound_s": (hit["before"] - s["t0"]) if hit else None,
                  "t_maildir": times[0] if times else None,
                  "latency_to_maildir_s": (times[0] - s["t0"]) if times else None,
                  "receipt_subject": subject, "tracking": m.group(1) if m else None,
                  "inbox_messages": len(msgs),
                  **{k: row.get(k) for k in ("received_at", "processed_at", "queued_at", "sent_at", "status", "kind",
                                             "department", "unit", "outbox_status", "attempts")}}
        for key, _label, a, b in STAGES:
            sample[key] = (sample[b] - sample[a]) if sample.get(a) is not None and sample.get(b) is not None else None
        # the reader's "fetched ..." log line for this message: the first one after delivery
        box_line = next((e for e in events if e["message"].startswith(f"{s['to']}: fetched")
                         and e["t"] >= s["t_smtp_done"] - 0.002), None)
        sample["log_sync_done"] = box_line["t"] if box_line else None
        samples.append(sample)

    if totals["inbound_by_status"].get("parsed", 0) != len(units) or sum(totals["inbound_by_status"].values()) != len(units):
        problems.append(f"database: inbound messages by status {totals['inbound_by_status']}, expected "
                        f"{len(units)} parsed")
    if totals["outbox_by_status"].get("sent", 0) != len(units) or sum(totals["outbox_by_status"].values()) != len(units):
        problems.append(f"database: outbox by status {totals['outbox_by_status']}, expected {len(units)} sent")
    if code != 0:
        problems.append(f"the daemon exited with code {code} after SIGTERM")

    lat = [x["latency_s"] for x in samples if x["latency_s"] is not None]
    summary = {"receipts_arrived": len(lat), "units": len(units),
               "units_with_exactly_one_receipt": sum(1 for x in samples if x["inbox_messages"] == 1),
               "distinct_tracking_numbers": len(trackings),
               "latency_s": stats(lat),
               "latency_lower_bound_s": stats([x["latency_lower_bound_s"] for x in samples]),
               "latency_to_maildir_s": stats([x["latency_to_maildir_s"] for x in samples]),
               "goal": {"p50_s": GOAL_P50, "p95_s": GOAL_P95}}
    if lat:
        summary["goal"]["p50_ok"] = summary["latency_s"]["p50"] <= GOAL_P50
        summary["goal"]["p95_ok"] = summary["latency_s"]["p95"] <= GOAL_P95
    summary["stages_s"] = {key: {"label": label, **stats([x[key] for x in samples])} for key, label, _a, _b in STAGES}
    summary["stages_s"]["to_sync_done"] = {
        "label": "delivery -> reader's 'fetched' log line (end of sync, after MOVE to unit folder)",
        **stats([(x["log_sync_done"] - x["t_smtp_done"]) if x["log_sync_done"] else None for x in samples])}
    summary["poller"] = {"interval_s": args.poll, "polls": poller.polls, "late_ticks": poller.late_ticks,
                         "status_rtt_s": stats(poller.status_s)}
    summary["problems"] = problems
    result["summary"] = summary
    result["db_totals"] = totals
    result["samples"] = samples
    result["code_at_end"] = git_state()

    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"latency-{stamp}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    report(result)
    if args.keep:
        print(f"\nwork dir kept: {workdir} (mailbot.yaml, daemon.log, storage/mailbot.db)")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"results: {shown(out)}")
    if problems:
        print("\n*** VERIFICATION FAILED:\n  " + "\n  ".join(problems[:30]), file=sys.stderr)
        return 1
    return 0


def report(r: dict) -> None:
    s = r["summary"]
    lat, lb, md = s["latency_s"], s["latency_lower_bound_s"], s["latency_to_maildir_s"]

    def row4(st: dict) -> str:
        if not st.get("n"):
            return "-"
        return f"{st['p50']:6.3f} {st['p95']:6.3f} {st['max']:6.3f} {st['mean']:6.3f}"

    print()
    print(f"  receipts arrived: {s['receipts_arrived']}/{s['units']}; exactly one per unit: "
          f"{s['units_with_exactly_one_receipt']}; distinct tracking numbers: {s['distinct_tracking_numbers']}")
    print(f"  {'seconds':<66} {'p50':>6} {'p95':>6} {'max':>6} {'mean':>6}")
    print(f"  {'t1 - t0: send -> receipt seen (poller)':<66} {row4(lat)}")
    print(f"  {'  same, lower bound (last poll that saw nothing)':<66} {row4(lb)}")
    print(f"  {'  same, to the receipt in the maildir (no detection cost)':<66} {row4(md)}")
    print("  breakdown:")
    for key, st in s["stages_s"].items():
        print(f"  {'  ' + st['label'][:64]:<66} {row4(st)}")
    g = s["goal"]
    if lat.get("n"):
        print(f"  goal p50 <= {g['p50_s']:g} s: {'OK' if g['p50_ok'] else 'MISSED'} ({lat['p50']:.3f} s); "
              f"p95 <= {g['p95_s']:g} s: {'OK' if g['p95_ok'] else 'MISSED'} ({lat['p95']:.3f} s)")
    p = s["poller"]
    if p["status_rtt_s"].get("n"):
        print(f"  poller: {p['polls']} STATUS, round trip p50 {1000 * p['status_rtt_s']['p50']:.2f} ms, "
              f"p95 {1000 * p['status_rtt_s']['p95']:.2f} ms; late ticks {p['late_ticks']}")
    print(f"  daemon: exit code {r['daemon_stop']['exit_code']} {r['daemon_stop']['seconds_to_exit']:.2f} s after "
          f"SIGTERM; {len(r['daemon_log']['warnings_or_errors'])} warning/error lines")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as exc:
        sys.exit(exc.code)
