"""Console benchmark: the 稿件 list and the campaign board with 100,000 稿件 and 1,000 units.

1. The office and the data of bench/digest.py (its `settings_for`, `database` and
   `devtools.sample.seed`: N 稿件 over two years with review tasks, two thirds of the units'
   form returns), plus an operator and a 科普部 clerk who sign in. On PostgreSQL, VACUUM
   ANALYZE after seeding (the state autovacuum keeps a live database in).
2. The console app (mailbot.web) in this process, driven over ASGI by Starlette's
   TestClient. The figure is the server time: from the request entering the app to the
   last byte of the response leaving it (a timing wrapper around the app), so sign-in,
   session, queries and templates count and the test client does not.
3. Each page --repeat times after one warm-up: the list (first page, waiting ones, a
   search, a deep page, a clerk's), the board, the home page. Goal: p95 under 100 ms per page.
4. Checks (an assertion fails the run): the list's total is the database's count, the
   board names every unit of the roster. Prints a table and writes
   bench/results/web-<database>-<timestamp>.json.

Run from the repository root: .venv/bin/python bench/web.py [--submissions 100000]
[--units 1000] [--repeat 30] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
[--workdir DIR] [--keep] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

GOAL = 0.100
PASSWORD = "bench password 1"


class Timed:
    """ASGI wrapper: the server time of each request, appended to `times`."""

    def __init__(self, app):
        self.app, self.times = app, []

    async def __call__(self, scope, receive, send):
        t = time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self.times.append(time.perf_counter() - t)


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--goal", type=float, default=GOAL, help=f"seconds, p95 per page (default {GOAL:g}); "
                                                                  "a page at or over it gives exit code 1")
    parser.add_argument("--workdir", default=None,
                        help="folder for the config and the SQLite database (default: a new temp dir in /var/tmp, "
                             "removed afterwards unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (config, SQLite database)")
    parser.add_argument("--results", type=Path,
                        default=Path(os.environ.get("BENCH_RESULTS", ROOT / "bench" / "results")),
                        help="folder for the JSON results (default bench/results, or $BENCH_RESULTS)")
    args = parser.parse_args()
    if min(args.submissions, args.units, args.repeat) < 1:
        parser.error("--submissions, --units and --repeat must be at least 1")

    import digest as digest_bench
    from sqlmodel import Session, func, select

    from devtools import sample
    from mailbot import clock
    from mailbot.store import Submission, make_engine, schema
    from mailbot.web import users
    from mailbot.web.app import create_app

    with warnings.catch_warnings():  # starlette asks for httpx2; httpx is what the lock file pins
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mailbot-bench-web-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    url, drop_schema = digest_bench.database(args, workdir)

    def cleanup():
        drop_schema()
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    try:
        settings = digest_bench.settings_for(workdir, url, args.units)
        engine = make_engine(url)
        schema.upgrade(engine)
        now = datetime(2026, 11, 23, 0, 0, 30, tzinfo=timezone.utc)
        clock.CLOCK.set(now)
        t = time.perf_counter()
        seeded = sample.seed(engine, settings, now - timedelta(minutes=1), submissions=args.submissions,
                             weeks=104, failures=20)
        seed_s = time.perf_counter() - t
        if engine.dialect.name == "postgresql":  # the steady state autovacuum keeps: statistics, visibility map
            from sqlalchemy import text

            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))
        with Session(engine) as s:
            users.add_user(s, "op", "operator", PASSWORD)
            users.add_user(s, "kp", "clerk", PASSWORD, "kepu")
            s.commit()
            stored = s.exec(select(func.count()).select_from(Submission)).one()
        timed = Timed(create_app(settings, engine, on_mail=lambda: None))
        pages = {"list": "/subs", "list-waiting": "/subs?status=waiting", "list-search": "/subs?q=科普",
                 "list-deep": "/subs?department=kepu&page=200", "board": "/campaigns/guanzhu", "home": "/"}
        results: dict[str, list[float]] = {}
        for who in ("op", "kp"):
            client = TestClient(timed, base_url="http://bench")
            token = re.search(r'name="csrf" value="([^"]+)"', client.get("/login").text).group(1)
            r = client.post("/login", data={"name": who, "password": PASSWORD, "csrf": token}, follow_redirects=False)
            assert r.status_code == 303, r.text[:300]
            for name, path in pages.items() if who == "op" else (("list-clerk", "/subs"),):
                first = client.get(path)
                assert first.status_code == 200, (path, first.status_code)
                if name == "list":
                    total = int(re.search(r"共 (\d+) 篇", first.text).group(1))
                    assert total == stored, (total, stored)
                if name == "board":
                    assert all(u.name in first.text for u in settings.units), "a unit is missing from the board"
                timed.times.clear()
                for _ in range(args.repeat):
                    assert client.get(path).status_code == 200
                results[name] = list(timed.times)
        report = {"database": engine.dialect.name, "submissions": args.submissions, "submissions_stored": stored,
                  "units": args.units, "form_returns": seeded["form_returns"], "seed_s": round(seed_s, 2),
                  "repeat": args.repeat,
                  "pages": {name: {"p50_ms": round(statistics.median(v) * 1000, 1), "p95_ms": round(p95(v) * 1000, 1),
                                   "max_ms": round(max(v) * 1000, 1)} for name, v in results.items()}}
    finally:
        cleanup()
    print(f"console pages for {args.submissions:,} 稿件, {args.units:,} units on {report['database']} "
          f"(seeded in {report['seed_s']} s; {args.repeat} requests per page, server time)")
    print(f"  {'page':<14}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}")
    for name, figures in report["pages"].items():
        print(f"  {name:<14}{figures['p50_ms']:>9.1f}{figures['p95_ms']:>9.1f}{figures['max_ms']:>9.1f}")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"web-{report['database']}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    out = out.resolve()
    print(f"  → {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.keep and not args.workdir:
        print(f"  work dir kept: {workdir}")
    worst = max(f["p95_ms"] for f in report["pages"].values()) / 1000
    print(("goal met" if worst < args.goal else "GOAL MISSED")
          + f": p95 under {args.goal * 1000:g} ms on every page (worst {worst * 1000:.1f} ms)")
    return 0 if worst < args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
