"""Ingestion benchmark: how close does `mailbot run --once` come to a bare IMAP FETCH?

1. Start a private Dovecot (MailServers, maildirs on /dev/shm), generate N realistic
   Chinese 稿件 messages (bench/corpus.py) and seed them into skxkpb's INBOX with
   MULTIAPPEND in chunks (≤100 messages, ≤32 MB per command).
2. (a) Bare imapclient: one connection, SELECT, UID SEARCH ALL, FETCH BODY.PEEK[] in
   batches of 100, bytes only counted. Best of --bare-runs runs (the ceiling).
   (b) The robot: `.venv/bin/mailbot run --once --config <yaml>` as a child process,
   SQLite + raw files under a temp dir on the normal disk (the embedded default), wall
   time, peak RSS sampled with psutil every 20 ms (children included) and the child's
   ru_maxrss from os.wait4 as a cross-check. Before it, one run on an empty mailbox
   measures the fixed start-up cost (interpreter, imports, schema check, login).
3. Verify in the database that all messages are stored and parsed, print a table and
   write bench/results/ingest-<timestamp>.json.

Run from the repository root: bench/ingest [--n 2000] [--large-every 10] [--huge] [--keep]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psutil
from aiosmtpd.controller import Controller
from imapclient import IMAPClient

from devtools.devservers import MailServers, free_ports

sys.path.insert(0, str(Path(__file__).resolve().parent))
import robotconfig  # noqa: E402
from corpus import Corpus  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
VENV_BIN = ROOT / ".venv" / "bin"
USER = "skxkpb"
EMPTY_USER = "skxdxb"
PASSWORD_ENV = "MAILBOT_BENCH_PASSWORD"
SEED_CHUNK_COUNT = 100
SEED_CHUNK_BYTES = 32 << 20
FETCH_BATCH = 100
SAMPLE_EVERY = 0.020
GOAL_RATIO = 0.5
WRAP: list[str] = []  # --wrap: a command the measured robot run is started under (a sampling profiler)
GOAL_RSS_MB = 300.0
MB = 1e6  # throughput and sizes in decimal MB; RSS in MiB (see labels)
MIB = 1 << 20


class BenchFailure(SystemExit):
    pass


def fail(message: str) -> None:
    print(f"\n*** BENCHMARK FAILED: {message}", file=sys.stderr, flush=True)
    raise BenchFailure(1)


# --- environment -------------------------------------------------------------------


def fs_type(path: Path) -> tuple[str, str]:
    """(mount point, fs type) of the filesystem holding `path`."""
    path = path.resolve()
    best = ("/", "?")
    with open("/proc/mounts") as fh:
        for line in fh:
            parts = line.split()
            mnt, kind = parts[1].replace("\\040", " "), parts[2]
            if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                best = (mnt, kind)
    return best


def git_state() -> dict:
    """HEAD and modified tracked files now: the tree may move while the benchmark runs."""
    try:
        rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True).stdout.strip()
        status = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                                capture_output=True, text=True).stdout.split("\n")
    except OSError:
        return {"head": None, "dirty_files": []}
    return {"head": rev, "dirty_files": [line[3:] for line in status if line.strip()]}


def machine() -> dict:
    def first(path: str, prefix: str = "") -> str | None:
        try:
            for line in open(path):
                if line.startswith(prefix):
                    return line.split(":", 1)[-1].strip() if prefix else line.strip()
        except OSError:
            return None
        return None

    try:
        dovecot = subprocess.run(["dovecot", "--version"], capture_output=True, text=True).stdout.strip()
    except OSError:
        dovecot = None
    return {
        "cpus": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "mem_total_mib": round(psutil.virtual_memory().total / MIB),
        "os": f"Debian {first('/etc/debian_version')}" if os.path.exists("/etc/debian_version") else platform.platform(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "dovecot": dovecot,
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "code_at_start": git_state(),
    }


# --- 1. seed -----------------------------------------------------------------------


def seed(srv: MailServers, corpus: Corpus, huge: bool) -> dict:
    """MULTIAPPEND the corpus in chunks; generation and APPEND timed apart."""
    client = srv.imap(USER)
    gen_s = append_s = 0.0
    count = nbytes = large = 0
    chunk: list[bytes] = []
    chunk_bytes = 0
    commands = 0

    def flush() -> None:
        nonlocal chunk, chunk_bytes, append_s, commands
        if not chunk:
            return
        t = time.perf_counter()
        client.multiappend("INBOX", chunk)
        append_s += time.perf_counter() - t
        commands += 1
        chunk, chunk_bytes = [], 0

    def items():
        for i in range(corpus.n):
            yield corpus.is_large(i), (lambda i=i: corpus.message(i))
        if huge:
            yield True, corpus.huge

    try:
        for is_large, make in items():
            t = time.perf_counter()
            raw = make()
            gen_s += time.perf_counter() - t
            if chunk and (len(chunk) >= SEED_CHUNK_COUNT or chunk_bytes + len(raw) > SEED_CHUNK_BYTES):
                flush()
            chunk.append(raw)
            chunk_bytes += len(raw)
            count += 1
            nbytes += len(raw)
            large += is_large
            del raw
        flush()
        exists = int(client.select_folder("INBOX", readonly=True)[b"EXISTS"])
    finally:
        client.logout()
    if exists != count:
        fail(f"seeded {count} messages but INBOX has {exists}")
    return {"messages": count, "large_messages": large, "bytes": nbytes, "generate_s": gen_s,
            "append_s": append_s, "append_commands": commands,
            "append_msgs_per_s": count / append_s, "append_mb_per_s": nbytes / MB / append_s}


# --- 2a. bare fetch ----------------------------------------------------------------


def bare_fetch(srv: MailServers, imaplib_debug: bool = True) -> dict:
    """One connection, SELECT, UID SEARCH ALL, FETCH BODY.PEEK[] by 100: the ceiling.

    imapclient sets its imaplib's `debug = 5` (imapclient.py, IMAPClient.__init__), so imaplib
    formats a repr of every literal it reads, whatever the log level. `imaplib_debug=False`
    turns that off (`client._imap.debug = 0`): the wire ceiling, for reference only.
    """
    t0 = time.perf_counter()
    client = IMAPClient(srv.host, port=srv.imap_port, ssl=False, timeout=300)
    if not imaplib_debug:
        client._imap.debug = 0
    client.login(USER, srv.users[USER])
    client.select_folder("INBOX")
    uids = sorted(client.search("ALL"))  # imapclient sends UID SEARCH
    count = nbytes = 0
    for i in range(0, len(uids), FETCH_BATCH):
        batch = uids[i:i + FETCH_BATCH]
        resp = client.fetch(batch, [b"BODY.PEEK[]"])
        for uid in batch:
            nbytes += len(resp[uid][b"BODY[]"])
            count += 1
        del resp
    client.logout()
    dt = time.perf_counter() - t0
    return {"messages": count, "bytes": nbytes, "seconds": dt,
            "msgs_per_s": count / dt, "mb_per_s": nbytes / MB / dt}


# --- 2b. the robot -----------------------------------------------------------------


class SmtpSink:
    """SMTP on loopback (no TLS, no AUTH) that accepts every message and keeps only counts.

    The robot files every 稿件 and sends its 回执 in the same `run --once`. The units of the
    corpus are not users of the private Dovecot (the relay would refuse them), and without a
    server the robot would spend the run on failed connections, so the receipts go here, as
    they would go to the office's SMTP server."""

    def __init__(self) -> None:
        self.messages = 0
        self.bytes = 0
        self.port = free_ports(1)[0]  # aiosmtpd connects to its own port to finish starting: no port 0
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, server_hostname="bench-sink",
                                      enable_SMTPUTF8=True, ready_timeout=15.0,
                                      data_size_limit=200 << 20)  # the --huge paths send 43 MB letters

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages += 1
        self.bytes += len(envelope.original_content or b"")
        return "250 2.0.0 OK"

    def __enter__(self) -> "SmtpSink":
        self._controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self._controller.stop()


def write_config(srv: MailServers, sink: SmtpSink, storage: Path, user: str, path: Path, **extra) -> Path:
    """One mailbox (receipts to the SMTP sink); the office's three departments and routing rules
    (bench/robotconfig.py), checked as `mailbot check-config` checks them before the robot runs.
    `extra`: more config keys (the --huge paths add a roster, reviewers and a campaign)."""
    data = {
        "storage": str(storage),  # database_url unset: SQLite at <storage>/mailbot.db, the default
        "mailboxes": [{"name": user, "host": srv.host, "port": srv.imap_port, "tls": "plain",
                       "user": user, "password_env": PASSWORD_ENV, "timeout": 300, "address": srv.address(user),
                       "smtp_host": "127.0.0.1", "smtp_port": sink.port, "smtp_tls": "plain", "smtp_auth": False}],
        "departments": robotconfig.departments([user]),
        "routing": robotconfig.ROUTING,
        **extra,
    }
    return robotconfig.write(data, path)


class RssSampler(threading.Thread):
    """Peak RSS of a process tree, sampled every 20 ms."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.stop = threading.Event()
        self.peak = 0
        self.peak_at = 0.0
        self.samples = 0
        self.timeline: list[tuple[float, float]] = []  # (s, MiB), one point per ~0.5 s
        self.cpu: dict[int, tuple[str, float]] = {}  # pid -> (role, user + sys s), the last sample of each
        self.peak_by_role: dict[str, int] = {}  # the robot's own process, its parse workers: each one's peak
        self.t0 = time.perf_counter()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                procs = [self.proc, *self.proc.children(recursive=True)]
            except psutil.Error:
                break  # gone (reaped)
            rss = 0
            for p in procs:
                try:
                    mine = p.memory_info().rss
                    rss += mine
                    times = p.cpu_times()
                    role = "robot" if p.pid == self.proc.pid else "worker"
                    self.cpu[p.pid] = (role, times.user + times.system)
                    self.peak_by_role[role] = max(self.peak_by_role.get(role, 0), mine)
                except psutil.Error:
                    pass
            now = time.perf_counter() - self.t0
            if rss > self.peak:
                self.peak, self.peak_at = rss, now
            if not self.timeline or now - self.timeline[-1][0] >= 0.5:
                self.timeline.append((round(now, 2), round(rss / MIB, 1)))
            self.samples += 1
            self.stop.wait(SAMPLE_EVERY)


def run_robot(config: Path, workdir: Path, tag: str, prefix: list[str] | None = None) -> dict:
    """`mailbot run --once` as a child: wall time, sampled peak RSS, wait4 rusage."""
    if WRAP and prefix is None and tag == "robot":  # --wrap: the measured run under a sampler
        prefix = [*WRAP, str(VENV_BIN / "mailbot")]
    cmd = [*(prefix or [str(VENV_BIN / "mailbot")]), "run", "--once", "--config", str(config)]
    env = {**os.environ, PASSWORD_ENV: "secret", "PYTHONUNBUFFERED": "1"}
    out_path, err_path = workdir / f"{tag}.stdout", workdir / f"{tag}.stderr"
    head = git_state()
    os.sync()  # earlier writes (seeding, other runs) must not be flushed on the robot's clock
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        spawned_at = time.time()
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        sampler = RssSampler(proc.pid)
        sampler.start()
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
        sampler.stop.set()
        sampler.join()
    stdout = out_path.read_text(errors="replace")
    stderr = err_path.read_text(errors="replace")
    if proc.returncode != 0:
        print(stdout, stderr[-4000:], sep="\n", file=sys.stderr)
        fail(f"`{' '.join(cmd)}` exited with {proc.returncode} (logs in {workdir})")
    return {"seconds": wall, "exit_code": proc.returncode, "spawned_at": spawned_at,
            "peak_rss_mib_sampled": sampler.peak / MIB, "peak_rss_at_s": sampler.peak_at,
            "rss_samples": sampler.samples, "rss_timeline_mib": sampler.timeline, "code": head,
            # CPU by process as last sampled (up to 20 ms short): the robot's own process vs its parse workers
            "cpu_robot_process_s": sum(c for role, c in sampler.cpu.values() if role == "robot"),
            "cpu_workers_s": sum(c for role, c in sampler.cpu.values() if role == "worker"),
            "peak_rss_mib_by_process": {role: round(v / MIB, 1) for role, v in sampler.peak_by_role.items()},
            "ru_maxrss_mib_wait4": usage.ru_maxrss / 1024,  # KiB on Linux
            "cpu_user_s": usage.ru_utime, "cpu_sys_s": usage.ru_stime,
            "summary_line": next((line for line in stdout.splitlines() if "本轮完成" in line), "").strip()}


def epoch(value: str | None) -> float | None:
    """A stored time (naive UTC, as SQLite keeps it) as epoch seconds."""
    if not value:
        return None
    dt = datetime.fromisoformat(value)
    return (dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)).timestamp()


def verify(db: Path, expected: int, expected_bytes: int, sink: SmtpSink) -> dict:
    """Every message stored and parsed with its size; every 稿件 filed; every receipt queued
    was sent (to the sink), the rest stopped by the daily cap per address or unmailable."""
    if not db.exists():
        fail(f"no database at {db}")
    con = sqlite3.connect(db)
    try:
        by_status = dict(con.execute("SELECT status, COUNT(*) FROM inbound_message GROUP BY status").fetchall())
        total, size = con.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM inbound_message").fetchone()
        copies = con.execute("SELECT COUNT(*) FROM message_copy").fetchone()[0]
        server_actions = dict(con.execute("SELECT server_action, COUNT(*) FROM message_copy GROUP BY server_action"))
        attachments = con.execute("SELECT COALESCE(SUM(attachment_count), 0) FROM inbound_message").fetchone()[0]
        submissions = con.execute("SELECT COUNT(*) FROM submission").fetchone()[0]
        outbox = dict(con.execute("SELECT status, COUNT(*) FROM outbox WHERE kind = 'receipt' GROUP BY status"))
        other_outbox = con.execute("SELECT COUNT(*) FROM outbox WHERE kind != 'receipt'").fetchone()[0]
        events = dict(con.execute("SELECT kind, COUNT(*) FROM event WHERE kind IN ('outbox-cap', 'receipt-skipped') "
                                  "GROUP BY kind"))
        last_parsed, first_sent, last_sent = con.execute(
            "SELECT (SELECT MAX(processed_at) FROM inbound_message), MIN(sent_at), MAX(sent_at) FROM outbox "
            "WHERE status = 'sent'").fetchone()
        # the mailbox's sync ends by stamping last_contact_at, after the last server move
        synced = con.execute("SELECT MAX(last_contact_at) FROM mailbox_state").fetchone()[0]
        last_queued = con.execute("SELECT MAX(created_at) FROM outbox").fetchone()[0]
    finally:
        con.close()
    sent = outbox.get("sent", 0)
    result = {"inbound_message": total, "by_status": by_status, "message_copy": copies,
              "server_actions": server_actions, "stored_bytes": size, "attachments": attachments,
              "submissions": submissions, "receipts_by_status": outbox, "other_outbox_rows": other_outbox,
              "receipts_capped": events.get("outbox-cap", 0), "receipts_skipped": events.get("receipt-skipped", 0),
              "sink_messages": sink.messages, "sink_bytes": sink.bytes,
              "last_parsed_at": epoch(last_parsed), "first_receipt_sent_at": epoch(first_sent),
              "last_receipt_sent_at": epoch(last_sent), "mailbox_synced_at": epoch(synced),
              "last_receipt_queued_at": epoch(last_queued)}
    parsed = by_status.get("parsed", 0)
    if total != expected or parsed != expected or copies != expected:
        fail(f"expected {expected} messages stored and parsed; database has {total} rows, "
             f"by status {by_status}, {copies} message_copy rows ({db})")
    if size != expected_bytes:
        fail(f"stored sizes add up to {size} B, the seeded messages to {expected_bytes} B")
    if submissions != expected:
        fail(f"expected {expected} 稿件 filed; the database has {submissions} submission rows ({db})")
    if sent != sum(outbox.values()) or sent + result["receipts_capped"] + result["receipts_skipped"] != expected:
        fail(f"receipts: {outbox} in the outbox, {result['receipts_capped']} stopped by the daily cap, "
             f"{result['receipts_skipped']} unmailable; expected {expected} in all, every queued one sent ({db})")
    if sink.messages != sent + other_outbox:
        fail(f"the SMTP sink got {sink.messages} messages; the outbox says {sent + other_outbox} were sent")
    return result


# --- 2c. --huge: the four ways a 30 MB file comes in -----------------------------------

HUGE_UNIT = "沂水县科协"
HUGE_SENDER = "ysxkx@ysxkx.bench.example"
REVIEWER = "reviewer@bench.example"
FORMS = ROOT / "config" / "forms"


def paths_config(srv: MailServers, sink: SmtpSink, storage: Path, workdir: Path) -> Path:
    """The main run's config plus what the other paths need: the unit on the roster, one
    review stage per department (the reviewer gets each 稿件 with its files), and a campaign
    collecting the 关注情况统计表 in this mailbox."""
    deadline = (datetime.now() + timedelta(days=30)).date().isoformat()
    return write_config(
        srv, sink, storage, USER, workdir / "paths.yaml",
        units=[{"name": HUGE_UNIT, "category": "县区科协", "addresses": [HUGE_SENDER]}],
        reviewers=[{"key": "zhang", "name": "张科长", "addresses": [REVIEWER]}],
        review={"stages": {d["key"]: [{"name": "初审", "reviewers": ["zhang"]}] for d in robotconfig.DEPARTMENTS}},
        forms_folder=str(FORMS),
        campaigns=[{"key": "guanzhu", "name": "关于推广应用科协微信公众号的通知", "template": "关注情况统计表",
                    "department": "kepu", "audiences": [{"name": "县区科协", "categories": ["县区科协"],
                                                         "deadline": deadline}]}])


def huge_mail(sender: str, subject: str, body: str, name: str, mime: str, in_reply_to: str | None = None,
              extra: tuple[tuple[str, bytes, str], ...] = (), size: int = 30 << 20) -> bytes:
    """A message with one `size`-byte attachment (random bytes behind the type's magic number)."""
    from email.message import EmailMessage
    from email.policy import SMTP as SMTP_POLICY
    from email.utils import make_msgid

    magic = {"video/mp4": b"\x00\x00\x00\x18ftypmp42", "image/jpeg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00",
             "application/zip": b"PK\x03\x04"}[mime]
    m = EmailMessage(policy=SMTP_POLICY)
    m["From"], m["To"], m["Subject"] = f"{HUGE_UNIT} <{sender}>", f"{USER}@bench.example", subject
    m["Message-ID"] = make_msgid(domain="bench.example")
    if in_reply_to:
        m["In-Reply-To"] = m["References"] = in_reply_to
    m.set_content(body)
    for fname, data, ftype in extra:
        maintype, _, subtype = ftype.partition("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=fname)
    maintype, _, subtype = mime.partition("/")
    m.add_attachment(magic + os.urandom(size - len(magic)), maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes()


def form_xlsx() -> bytes:
    """The 关注情况统计表 as a unit fills it in Excel."""
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["临沂科协微信公众号关注情况统计表"])
    sheet.append([f"填报单位：{HUGE_UNIT}", None, "填报时间：2026年12月10日"])
    sheet.append(["序号", "单位名称", "关注人数（人）"])
    sheet.append([1, HUGE_UNIT, 120])
    buf = io.BytesIO()
    book.save(buf)
    return buf.getvalue()


def append_message(host: str, port: int, user: str, password: str, message: dict) -> None:
    """In a child process: make one --huge path message and APPEND it to the INBOX."""
    if message.pop("form", False):
        message["extra"] = (("关注情况统计表.xlsx", form_xlsx(), "application/octet-stream"),)
    raw = huge_mail(**message)
    client = IMAPClient(host, port=port, ssl=False, timeout=60)
    try:
        client.login(user, password)
        client.append("INBOX", raw)
    finally:
        client.logout()


def query(db: Path, sql: str, *args):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchone()
    finally:
        con.close()


def huge_paths(srv: MailServers, sink: SmtpSink, storage: Path, workdir: Path) -> dict:
    """After the main run, one robot run per way a 30 MB file arrives, each alone in the
    INBOX, with its peak RSS: a new 稿件 (the reviewer gets it with the file), its revision
    (the unit answers its receipt, the tracking number in the subject), the reviewer's
    return with a file of their own (which goes on to the unit), and a form with a 30 MB
    scan. Each is checked in the database."""
    config = paths_config(srv, sink, storage, workdir)
    db = storage / "mailbot.db"
    out: dict = {}

    def run(tag: str, message: dict, check) -> None:
        # made and appended by a child process: a child inherits its parent's peak RSS as its
        # own ru_maxrss, so the 30 MB mail must not pass through this process before the robot
        # is spawned (wait4 would report this process's size instead of the robot's)
        import multiprocessing

        maker = multiprocessing.get_context("spawn").Process(
            target=append_message, args=(srv.host, srv.imap_port, USER, srv.users[USER], message))
        maker.start()
        maker.join()
        if maker.exitcode != 0:
            fail(f"--huge path {tag}: the message could not be made and appended")
        robot = run_robot(config, workdir, f"path-{tag}")
        check()
        peak = max(robot["peak_rss_mib_sampled"], robot["ru_maxrss_mib_wait4"])
        out[tag] = {"seconds": robot["seconds"], "peak_rss_mib_sampled": robot["peak_rss_mib_sampled"],
                    "ru_maxrss_mib_wait4": robot["ru_maxrss_mib_wait4"], "peak_rss_mib": peak,
                    "rss_ok": peak < GOAL_RSS_MB, "rss_timeline_mib": robot["rss_timeline_mib"],
                    "peak_rss_mib_by_process": robot["peak_rss_mib_by_process"]}
        print(f"  --huge path {tag}: {robot['seconds']:.2f} s, peak RSS {robot['peak_rss_mib_sampled']:.0f} / "
              f"{robot['ru_maxrss_mib_wait4']:.0f} MiB (psutil / wait4; each process's peak "
              f"{robot['peak_rss_mib_by_process']})", flush=True)

    def expect(ok: bool, what: str) -> None:
        if not ok:
            fail(f"--huge path: {what} ({db})")

    run("new", dict(sender=HUGE_SENDER, subject=f"【{HUGE_UNIT}】科普日活动视频（大附件）", body="各位老师好：活动视频见附件。",
                    name="科普日活动视频.mp4", mime="video/mp4"),
        lambda: expect(query(db, "SELECT COUNT(*) FROM review_task WHERE status = 'open'")[0] == 1,
                       "the new 稿件 has no open review task"))
    tracking, receipt_id = query(db, "SELECT s.tracking, o.message_id FROM submission s JOIN outbox o "
                                     "ON o.submission_id = s.id AND o.kind = 'receipt' ORDER BY s.id DESC LIMIT 1")
    run("revision", dict(sender=HUGE_SENDER, subject=f"回复：[{tracking}] 修改稿", body="修改稿见附件。",
                         name="科普日活动视频（修改）.mp4", mime="video/mp4", in_reply_to=receipt_id),
        lambda: expect(query(db, "SELECT revision FROM submission WHERE tracking = ?", tracking)[0] == 2,
                       f"{tracking} did not get revision 2"))
    subject, request_id = query(db, "SELECT subject, message_id FROM outbox WHERE kind = 'review-request' "
                                    "ORDER BY id DESC LIMIT 1")
    run("reviewer-reply", dict(sender=REVIEWER, subject=f"回复：{subject}", body="退回 请按附件中的批注修改",
                               name="批注.zip", mime="application/zip", in_reply_to=request_id),
        lambda: expect(query(db, "SELECT COUNT(*) FROM outbox WHERE kind = 'result' AND status = 'sent'")[0] == 1,
                       "the reviewer's return did not reach the unit"))
    run("form", dict(sender=HUGE_SENDER, subject="关注情况统计表", body="附件是我单位的关注情况统计表和盖章扫描件，请查收。",
                     name="盖章扫描件.jpg", mime="image/jpeg", form=True),
        lambda: expect(query(db, "SELECT COUNT(*) FROM form_return WHERE stamped")[0] == 1,
                       "the form and its stamped scan were not recorded"))
    return out


PROFILE_GROUPS = [  # (label, substrings of the code's file path), first match wins
    ("IMAP client (imaplib + imapclient)", ("imaplib", "imapclient")),
    ("database (SQLAlchemy, sqlmodel, sqlite3)", ("sqlalchemy", "sqlmodel", "sqlite3")),
    ("stdlib email (feedparser, header)", ("/email/",)),
    ("HTML to text (inscriptis)", ("inscriptis", "lxml")),
    ("file type sniffing (filetype, olefile)", ("filetype", "olefile")),
    ("start-up: imports, CLI, config (typer, rich, pydantic, yaml, alembic)",
     ("typer", "rich", "click", "pydantic", "yaml", "alembic", "importlib", "<frozen")),
    ("mailbot code", ("/mailbot/",)),
]


TRANSPARENT = ("~", "/base64.py", "/socket.py", "/pathlib.py", "/tempfile.py", "/os.py", "/hashlib.py",
               "/genericpath.py", "/posixpath.py", "/shutil.py")  # time goes to whoever called them


def profile_groups(stats: pstats.Stats) -> list[tuple[str, float]]:
    """Own time (tottime) by library. Built-ins and thin stdlib wrappers (base64, socket,
    pathlib, ...) count for the library that called them, split by the callers' time."""
    def direct(key) -> str | None:
        if any(key[0] == t or key[0].endswith(t) for t in TRANSPARENT):
            return None
        for label, needles in PROFILE_GROUPS:
            if any(n in key[0] for n in needles):
                return label
        return "other Python (stdlib re, json, logging, ...)"

    memo: dict = {}

    def shares(key, depth: int = 0) -> dict[str, float]:
        label = direct(key)
        if label is not None:
            return {label: 1.0}
        if key in memo:
            return memo[key]
        memo[key] = {"other C": 1.0}  # guards recursion
        callers = stats.stats.get(key, (0, 0, 0, 0, {}))[4]
        weights: dict[str, float] = {}
        for caller, value in callers.items():
            weight = value[2] if isinstance(value, tuple) else 0.0
            if depth > 8 or not weight:
                continue
            for lab, frac in shares(caller, depth + 1).items():
                weights[lab] = weights.get(lab, 0.0) + weight * frac
        whole = sum(weights.values())
        memo[key] = {k: v / whole for k, v in weights.items()} if whole else {"other C": 1.0}
        return memo[key]

    totals: dict[str, float] = {}
    for key, (_cc, _nc, tt, _ct, _callers) in stats.stats.items():
        for label, frac in shares(key).items():
            totals[label] = totals.get(label, 0.0) + tt * frac
    return sorted(totals.items(), key=lambda kv: -kv[1])


def profile_robot(srv: MailServers, sink: SmtpSink, corpus: Corpus, huge: bool, workdir: Path, results: Path,
                  stamp: str, top: int = 30) -> dict:
    """One more run under cProfile (fresh database), the top functions saved as text. The first
    run filed the messages away from the INBOX (稿件/<unit>), so the corpus is seeded again."""
    seed(srv, corpus, huge)
    storage = workdir / "profile-storage"
    config = write_config(srv, sink, storage, USER, workdir / "profile.yaml")
    prof = workdir / "robot.prof"
    run = run_robot(config, workdir, "profile",
                    prefix=[str(VENV_BIN / "python"), "-m", "cProfile", "-o", str(prof), "-m", "mailbot"])
    con = sqlite3.connect(storage / "mailbot.db")
    try:
        parsed = con.execute("SELECT COUNT(*) FROM inbound_message WHERE status = 'parsed'").fetchone()[0]
    finally:
        con.close()
    if parsed != corpus.n + (1 if huge else 0):
        fail(f"the profiled run parsed {parsed} messages, not {corpus.n + (1 if huge else 0)} ({storage})")
    results.mkdir(parents=True, exist_ok=True)
    text_path = results / f"ingest-{stamp}-profile.txt"
    with open(text_path, "w") as fh:
        stats = pstats.Stats(str(prof), stream=fh)
        fh.write(f"mailbot run --once under cProfile: {run['seconds']:.2f} s wall, "
                 f"{stats.total_tt:.2f} s profiled\n\nown time by library:\n")
        groups = profile_groups(stats)
        for label, secs in groups:
            fh.write(f"  {secs:7.2f} s  {100 * secs / stats.total_tt:5.1f} %  {label}\n")
        fh.write("\n")
        stats.sort_stats("tottime").print_stats(top)
        stats.sort_stats("cumulative").print_stats(top)
    shutil.copy(prof, results / f"ingest-{stamp}.prof")
    return {"seconds_under_profiler": run["seconds"], "groups_s": dict(groups), "text": shown(text_path),
            "prof": shown(results / f"ingest-{stamp}.prof")}


def shown(path: Path) -> str:
    """A path as printed: relative to the repository when inside it."""
    path = path.resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def phases(robot: dict, v: dict) -> dict:
    """The robot's run split by the database's clocks: spawn -> the mailbox synced (start-up,
    fetch, store, parse, route, file, receipts queued, server moves: the pipeline the goal is
    about); spawn -> first receipt sent, first -> last receipt sent (receipts are sent while
    later batches are read), last receipt -> exit."""
    start, end = robot["spawned_at"], robot["spawned_at"] + robot["seconds"]
    first, last = v["first_receipt_sent_at"], v["last_receipt_sent_at"]
    synced = v.get("mailbox_synced_at")
    return {"to_last_parsed": v["last_parsed_at"] - start if v["last_parsed_at"] else None,
            "to_pipeline_done": synced - start if synced else None,
            "to_last_queued": v["last_receipt_queued_at"] - start if v.get("last_receipt_queued_at") else None,
            "to_first_receipt": first - start if first else None,
            "receipts": last - first if first and last else None,
            "after_last_receipt": end - last if last else None}


# --- main --------------------------------------------------------------------------


def compile_robot() -> None:
    """Bytecode for the robot's package, as an installed robot has it (pip compiles a package
    when it installs it): without it, where PYTHONDONTWRITEBYTECODE is set, every robot and
    parse worker started would compile ~75 modules first (~0.25 s of its start-up)."""
    import compileall

    import mailbot

    compileall.compile_dir(Path(mailbot.__file__).parent, quiet=1, workers=0)


def main() -> int:
    ap = argparse.ArgumentParser(prog="bench/ingest", description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="messages to seed (default 2000)")
    ap.add_argument("--large-every", type=int, default=10,
                    help="every k-th message has a 1-3 MB attachment (default 10; 0 = none)")
    ap.add_argument("--huge", action="store_true", help="add one message with a 30 MB attachment")
    ap.add_argument("--keep", action="store_true", help="keep the robot's work dir (database, raw files, logs)")
    ap.add_argument("--bare-runs", type=int, default=2, help="bare FETCH runs, best one counts (default 2)")
    ap.add_argument("--wrap", default="", metavar="CMD",
                    help="start the measured robot run under CMD, e.g. 'py-spy record -o spy.txt -f raw "
                         "--subprocesses --threads --'; its timings then include CMD's overhead")
    ap.add_argument("--profile", action="store_true",
                    help="afterwards, one more robot run under cProfile (top functions to bench/results/)")
    ap.add_argument("--workdir", type=Path, default=Path(os.environ.get("BENCH_WORKDIR", "/var/tmp")),
                    help="where the robot's storage and SQLite go (default /var/tmp; must not be tmpfs)")
    ap.add_argument("--seed", type=int, default=20261123, help="corpus seed")
    ap.add_argument("--results", type=Path, default=Path(os.environ.get("BENCH_RESULTS", RESULTS)),
                    help="folder for the JSON (and profile) results (default bench/results, or $BENCH_RESULTS)")
    args = ap.parse_args()
    WRAP[:] = args.wrap.split()
    if args.n < 1:
        ap.error("--n must be at least 1")

    compile_robot()
    mount, kind = fs_type(args.workdir)
    if kind in ("tmpfs", "ramfs"):
        fail(f"--workdir {args.workdir} is on {kind}; the robot's default storage is a normal disk")
    stamp = datetime.now().strftime("%Y%m%dT%H%M%S")
    workdir = Path(tempfile.mkdtemp(prefix=f"mailbot-bench-ingest-{stamp}-", dir=args.workdir))
    corpus = Corpus(args.n, args.large_every, seed=args.seed)
    expected = args.n + (1 if args.huge else 0)
    result: dict = {"benchmark": "ingest", "started": datetime.now().astimezone().isoformat(timespec="seconds"),
                    "params": {"n": args.n, "large_every": args.large_every, "huge": args.huge,
                               "messages": expected, "seed": args.seed, "fetch_batch": FETCH_BATCH,
                               "bare_runs": args.bare_runs},
                    "machine": machine(), "robot_storage": {"dir": str(workdir), "mount": mount, "fs": kind}}
    print(f"ingest benchmark: {expected} messages (large every {args.large_every}"
          f"{', plus one 30 MB' if args.huge else ''}); robot storage {workdir} ({kind} on {mount})", flush=True)
    try:
        with MailServers() as srv, SmtpSink() as sink:
            mail_mount, mail_fs = fs_type(srv.dir)
            result["mailserver_dir"] = {"dir": str(srv.dir), "mount": mail_mount, "fs": mail_fs}
            print(f"  Dovecot on {srv.host}:{srv.imap_port}, maildirs in {srv.dir} ({mail_fs})", flush=True)

            s = seed(srv, corpus, args.huge)
            result["seed"] = s
            print(f"  seeded {s['messages']} messages, {s['bytes'] / MB:.1f} MB: generate {s['generate_s']:.1f} s, "
                  f"MULTIAPPEND {s['append_s']:.1f} s ({s['append_commands']} commands, "
                  f"{s['append_msgs_per_s']:.0f} msg/s, {s['append_mb_per_s']:.0f} MB/s)", flush=True)

            bares = []
            for k in range(max(1, args.bare_runs)):
                b = bare_fetch(srv)
                if b["messages"] != expected or b["bytes"] != s["bytes"]:
                    fail(f"bare fetch got {b['messages']} messages / {b['bytes']} B, "
                         f"expected {expected} / {s['bytes']} B")
                bares.append(b)
                print(f"  bare FETCH run {k + 1}: {b['seconds']:.2f} s, {b['msgs_per_s']:.0f} msg/s, "
                      f"{b['mb_per_s']:.0f} MB/s", flush=True)
            bare = min(bares, key=lambda r: r["seconds"])
            result["bare_fetch"] = {**bare, "runs_s": [r["seconds"] for r in bares]}
            wires = [bare_fetch(srv, imaplib_debug=False) for _ in range(max(1, args.bare_runs))]
            wire = min(wires, key=lambda r: r["seconds"])
            result["bare_fetch_imaplib_debug_off"] = {**wire, "runs_s": [r["seconds"] for r in wires]}
            print(f"  bare FETCH, imaplib debug off (reference): {wire['seconds']:.2f} s, "
                  f"{wire['msgs_per_s']:.0f} msg/s, {wire['mb_per_s']:.0f} MB/s", flush=True)

            # the start-up run uses the measured run's storage: it creates the database there, as
            # a robot that has run before has one (the schema is not created on the measured clock)
            empty_config = write_config(srv, sink, workdir / "storage", EMPTY_USER, workdir / "empty.yaml")
            startup = run_robot(empty_config, workdir, "empty")
            result["robot_startup"] = startup
            print(f"  robot start-up (run --once on an empty mailbox): {startup['seconds']:.2f} s, "
                  f"peak RSS {startup['peak_rss_mib_sampled']:.0f} MiB", flush=True)

            storage = workdir / "storage"
            robot = run_robot(write_config(srv, sink, storage, USER, workdir / "mailbot.yaml"), workdir, "robot")
            print(f"  robot run --once: {robot['seconds']:.2f} s ({robot['summary_line']})", flush=True)
            v = robot["verified"] = verify(storage / "mailbot.db", expected, s["bytes"], sink)
            robot["msgs_per_s"] = expected / robot["seconds"]
            robot["mb_per_s"] = s["bytes"] / MB / robot["seconds"]
            net = robot["seconds"] - startup["seconds"]
            robot["msgs_per_s_excl_startup"] = expected / net if net > 0 else None
            robot["phases_s"] = phases(robot, v)
            robot["cpu_per_wall"] = (robot["cpu_user_s"] + robot["cpu_sys_s"]) / robot["seconds"]
            result["robot"] = robot
            result["ru_maxrss_children_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024

            ratio = robot["msgs_per_s"] / bare["msgs_per_s"]
            peak = max(robot["peak_rss_mib_sampled"], robot["ru_maxrss_mib_wait4"])
            result["summary"] = {
                "bare_msgs_per_s": bare["msgs_per_s"], "bare_mb_per_s": bare["mb_per_s"],
                "robot_msgs_per_s": robot["msgs_per_s"], "robot_mb_per_s": robot["mb_per_s"],
                "ratio_robot_to_bare": ratio, "ratio_goal": GOAL_RATIO, "ratio_ok": ratio >= GOAL_RATIO,
                "bare_debug_off_msgs_per_s": wire["msgs_per_s"], "bare_debug_off_mb_per_s": wire["mb_per_s"],
                "ratio_robot_to_bare_debug_off": robot["msgs_per_s"] / wire["msgs_per_s"],
                "peak_rss_mib": peak, "rss_goal_mib": GOAL_RSS_MB if args.huge else None,
                "rss_ok": (peak < GOAL_RSS_MB) if args.huge else None,
            }
            if args.huge:
                paths = result["huge_paths"] = {"in the full run (new 稿件 among all)": {
                    "seconds": robot["seconds"], "peak_rss_mib": peak, "rss_ok": peak < GOAL_RSS_MB},
                    **huge_paths(srv, sink, storage, workdir)}
                result["summary"]["rss_ok"] = all(p["rss_ok"] for p in paths.values())
                result["summary"]["peak_rss_mib_paths"] = {k: p["peak_rss_mib"] for k, p in paths.items()}
            to_done = robot["phases_s"]["to_pipeline_done"]
            if to_done:
                result["summary"]["robot_msgs_per_s_pipeline"] = expected / to_done
                result["summary"]["ratio_pipeline_to_bare"] = expected / to_done / bare["msgs_per_s"]
            to_first = robot["phases_s"]["to_first_receipt"]
            if to_first:
                result["summary"]["robot_msgs_per_s_to_first_receipt"] = expected / to_first
                result["summary"]["ratio_to_first_receipt"] = expected / to_first / bare["msgs_per_s"]
            if args.profile:
                print("  profiling one more run under cProfile (the corpus seeded again) ...", flush=True)
                result["profile"] = profile_robot(srv, sink, corpus, args.huge, workdir, args.results, stamp)
    except BenchFailure:
        args.keep = True
        print(f"work dir left for inspection: {workdir} (*.yaml, *.stdout, *.stderr, storage/)", file=sys.stderr)
        raise
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"ingest-{stamp}.json"
    out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    report(result)
    print(f"\nresults: {shown(out)}" + (f"; work dir kept: {workdir}" if args.keep else ""))
    if "profile" in result:
        print(f"profile: {result['profile']['text']}")
    return 0


def phase_rows(r: dict) -> list[tuple[str, str, str]]:
    ph, n = r["robot"]["phases_s"], r["params"]["messages"]
    sent = r["robot"]["verified"]["sink_messages"]
    rows = []
    if ph.get("to_pipeline_done"):
        rows.append(("  pipeline done", f"{n / ph['to_pipeline_done']:,.0f} msg/s",
                     f"{ph['to_pipeline_done']:.2f} s (start-up, fetch, store, parse, route, file, receipts "
                     f"queued, moves; ratio to bare {r['summary']['ratio_pipeline_to_bare']:.2f})"))
    if not ph["to_first_receipt"]:
        return rows + [("  receipts", "none sent", "")]
    rows.append(("  to 1st receipt sent", f"{n / ph['to_first_receipt']:,.0f} msg/s",
                 f"{ph['to_first_receipt']:.2f} s"))
    rate = f"{(sent - 1) / ph['receipts']:,.0f} receipts/s" if sent > 1 and ph["receipts"] > 0 else ""
    rows.append(("  sending receipts", rate, f"{ph['receipts']:.2f} s, then exit {ph['after_last_receipt']:.2f} s"))
    return rows


def report(r: dict) -> None:
    s, b, rb, st = r["summary"], r["bare_fetch"], r["robot"], r["robot_startup"]
    n = r["params"]["messages"]
    mb = r["seed"]["bytes"] / MB
    rows = [
        ("corpus", f"{n} msgs, {mb:.0f} MB ({r['seed']['large_messages']} large)", ""),
        ("bare FETCH", f"{b['msgs_per_s']:,.0f} msg/s  {b['mb_per_s']:.0f} MB/s", f"{b['seconds']:.2f} s"),
        ("  imaplib debug off", f"{r['bare_fetch_imaplib_debug_off']['msgs_per_s']:,.0f} msg/s  "
                                f"{r['bare_fetch_imaplib_debug_off']['mb_per_s']:.0f} MB/s",
         f"{r['bare_fetch_imaplib_debug_off']['seconds']:.2f} s (reference, not the goal's base)"),
        ("robot run --once", f"{rb['msgs_per_s']:,.0f} msg/s  {rb['mb_per_s']:.0f} MB/s", f"{rb['seconds']:.2f} s"),
        ("  excl. start-up", f"{rb['msgs_per_s_excl_startup'] or 0:,.0f} msg/s", f"start-up {st['seconds']:.2f} s"),
        *phase_rows(r),
        ("  robot CPU", f"{rb['cpu_user_s']:.1f} user + {rb['cpu_sys_s']:.1f} sys s",
         f"{rb['cpu_per_wall']:.2f} cores"),
        ("    by process", f"robot {rb.get('cpu_robot_process_s', 0):.1f} s, parse workers {rb.get('cpu_workers_s', 0):.1f} s",
         "(psutil, as last sampled)"),
        ("ratio pipeline/bare", f"{s.get('ratio_pipeline_to_bare', 0):.2f}",
         f"goal >= {s['ratio_goal']}: {'OK' if s.get('ratio_pipeline_to_bare', 0) >= s['ratio_goal'] else 'MISSED'}"
         "  (routing, filing, receipts queued, moves: the issue's goal)"),
        ("ratio robot/bare", f"{s['ratio_robot_to_bare']:.2f}",
         f"whole run --once, every receipt sent: {'OK' if s['ratio_ok'] else 'below'} {s['ratio_goal']}"
         f"  (vs debug-off FETCH {s['ratio_robot_to_bare_debug_off']:.2f})"),
        ("peak RSS (psutil)", f"{rb['peak_rss_mib_sampled']:.0f} MiB", f"at {rb['peak_rss_at_s']:.1f} s, "
                                                                     f"{rb['rss_samples']} samples"),
        ("peak RSS (wait4)", f"{rb['ru_maxrss_mib_wait4']:.0f} MiB",
         (f"goal < {s['rss_goal_mib']:.0f} MiB: {'OK' if s['rss_ok'] else 'MISSED'}")
         if s["rss_goal_mib"] else "(goal < 300 MiB applies with --huge)"),
        *[(f"  --huge: {k}", f"{p['peak_rss_mib']:.0f} MiB", f"{'OK' if p['rss_ok'] else 'MISSED'} "
           f"({p['seconds']:.1f} s)") for k, p in r.get("huge_paths", {}).items()],
        ("verified", f"{rb['verified']['by_status']}", f"{rb['verified']['attachments']} attachments"),
        ("  filed, receipts", f"{rb['verified']['submissions']} 稿件, {rb['verified']['sink_messages']} receipts sent",
         f"{rb['verified']['receipts_capped']} over the daily cap per address, "
         f"{rb['verified']['receipts_skipped']} unmailable"),
    ]
    w0 = max(len(a) for a, _, _ in rows)
    w1 = max(len(x) for _, x, _ in rows)
    print()
    for a, x, c in rows:
        print(f"  {a:<{w0}}  {x:<{w1}}  {c}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchFailure as exc:
        sys.exit(exc.code)
