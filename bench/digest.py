"""Digest benchmark: render the weekly digest for 100,000 稿件 and 1,000 units.

1. Build a configuration with 1,000 units (a third of them 县区/乡镇科协 under 12 counties,
   the rest 学会), three departments, five reviewers and the 关注情况统计表 campaign over
   all units; a fresh database (SQLite under --workdir, or --database-url for PostgreSQL,
   in a schema of its own that is dropped afterwards).
2. Seed it with `devtools.sample.seed`: N 稿件 over two years with their review tasks
   (about 8 % still open), failed outbox rows and about two thirds of the units' form
   returns. Seeding is timed but is not the figure.
3. Time `digesting.render` for the office-wide digest (the leaders' one) and one
   department's digest: SQL aggregates, the HTML and text templates, the 12-week chart
   PNG and the Excel attachment: everything `send_digest` does except writing the outbox
   row. The first render runs in a fresh process state (matplotlib's first import counts);
   then --repeat warm renders. Goal: under 2 s per render.
4. Check the figures against plain SQL counts, print a table, write
   bench/results/digest-<timestamp>.json.

Run from the repository root: .venv/bin/python bench/digest.py [--submissions 100000]
[--units 1000] [--repeat 5] [--database-url postgresql+psycopg://postgres@127.0.0.1/test]
[--workdir DIR] [--keep] [--results DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

GOAL = 2.0


def settings_for(workdir: Path, url: str, units: int):
    """The office's config for the digest, written to <workdir>/mailbot.yaml and loaded as the
    robot loads it (bench/robotconfig.py: with every check `mailbot check-config` makes)."""
    import robotconfig

    counties = [f"第{i + 1}县区" for i in range(12)]
    roster = [{"name": f"第{i:04d}号单位", "category": "县区科协" if i % 3 == 0 else "学会",
               "parent": counties[i % 12] if i % 3 == 0 else None, "addresses": [f"u{i:04d}@units.example"]}
              for i in range(units)]
    path = robotconfig.write({
        "storage": str(workdir), "database_url": url, "organisation": "临沂市科协",
        "mailboxes": [{"name": "skxdxb", "host": "127.0.0.1", "user": "skxdxb", "tls": "plain",
                       "smtp_tls": "plain", "password_env": "BENCH_UNUSED"}],
        "departments": robotconfig.departments([]), "routing": robotconfig.ROUTING,
        "units": roster,
        "reviewers": [{"key": f"r{i}", "name": f"审核人{i}", "addresses": [f"r{i}@office.example"]} for i in range(5)],
        "forms_folder": str(ROOT / "config" / "forms"),
        "campaigns": [{"key": "guanzhu", "name": "公众号关注情况统计", "template": "关注情况统计表", "department": "diaoxuan",
                       "audiences": [{"name": "县区", "categories": ["县区科协"], "deadline": "2026-12-20"},
                                     {"name": "学会", "categories": ["学会"], "deadline": "2026-12-10"}]}],
        "digest": {"leaders": ["leader@office.example"], "departments": {"kepu": ["r0"]}},
    }, workdir / "mailbot.yaml")
    from mailbot.config import load

    return load(path)


def database(args, workdir: Path):
    """(url, cleanup) for the database under test."""
    from sqlalchemy import text

    from mailbot.store import make_engine

    if not args.database_url:
        return f"sqlite:///{workdir / 'bench.db'}", lambda: None
    name = f"bench_{secrets.token_hex(4)}"
    admin = make_engine(args.database_url)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {name}"))

    def drop():
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {name} CASCADE"))

    sep = "&" if "?" in args.database_url else "?"
    return f"{args.database_url}{sep}options={quote(f'-csearch_path={name}')}", drop


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submissions", type=int, default=100_000)
    parser.add_argument("--units", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--goal", type=float, default=GOAL, help=f"seconds per render (default {GOAL:g}); "
                                                                  "a render at or over it gives exit code 1")
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

    from sqlmodel import Session, func, select

    from devtools import sample
    from mailbot import digest
    from mailbot.digest import digesting
    from mailbot.store import Submission, make_engine, schema

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="mailbot-bench-digest-", dir="/var/tmp"))
    workdir.mkdir(parents=True, exist_ok=True)
    url, drop_schema = database(args, workdir)

    def cleanup():
        drop_schema()
        if not args.workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    try:
        settings = settings_for(workdir, url, args.units)
        engine = make_engine(url)
        schema.upgrade(engine)
        now = datetime(2026, 11, 23, 0, 0, 30, tzinfo=timezone.utc)  # Monday 08:00:30 in China
        period = digest.period_for(now, settings.digest, settings.tz)
        t = time.perf_counter()
        seeded = sample.seed(engine, settings, period.ends_at - timedelta(minutes=1), submissions=args.submissions,
                             weeks=104, failures=20)
        seed_s = time.perf_counter() - t
        timings = {"office": [], "kepu": []}
        for i in range(args.repeat + 1):
            for scope in timings:
                t = time.perf_counter()
                with Session(engine) as session:
                    r = digesting.render(session, settings, period, now, None if scope == "office" else scope)
                timings[scope].append(time.perf_counter() - t)
                if scope == "office" and i == 0:
                    office = r
        with Session(engine) as session:
            stored = session.exec(select(func.count()).select_from(Submission)).one()
            new = session.exec(select(func.count()).select_from(Submission).where(
                Submission.created_at >= period.starts_at, Submission.created_at < period.ends_at)).one()
        assert stored == args.submissions, (stored, args.submissions)
        assert office.content["new_total"] == new, (office.content["new_total"], new)
        assert office.content["units_total"] > 0 and office.content["campaigns"][0]["tallies"][0]["total"] > 0
        report = {
            "database": engine.dialect.name, "submissions": args.submissions, "submissions_stored": stored,
            "units": args.units,
            "form_returns": seeded["form_returns"], "seed_s": round(seed_s, 2), "period": period.key,
            "new_this_week": new, "html_bytes": len(office.html.encode()), "png_bytes": len(office.chart),
            "xlsx_bytes": len(office.workbook),
            "first_render_s": round(timings["office"][0], 3),
            "office_warm_median_s": round(statistics.median(timings["office"][1:]), 3),
            "office_warm_max_s": round(max(timings["office"][1:]), 3),
            "department_warm_median_s": round(statistics.median(timings["kepu"][1:]), 3),
        }
    finally:
        cleanup()
    print(f"digest for {args.submissions:,} 稿件, {args.units:,} units on {report['database']} "
          f"(seeded in {report['seed_s']} s; {new} new this week)")
    print(f"  first render (cold imports)     {report['first_render_s']:.3f} s")
    print(f"  office digest, warm (median)    {report['office_warm_median_s']:.3f} s (max {report['office_warm_max_s']:.3f})")
    print(f"  department digest, warm (median) {report['department_warm_median_s']:.3f} s")
    print(f"  HTML {report['html_bytes']:,} B, chart {report['png_bytes']:,} B, Excel {report['xlsx_bytes']:,} B")
    args.results.mkdir(parents=True, exist_ok=True)
    out = args.results / f"digest-{report['database']}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False), "utf-8")
    out = out.resolve()
    print(f"  → {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if args.keep and not args.workdir:
        print(f"  work dir kept: {workdir}")
    worst = max(report["first_render_s"], report["office_warm_max_s"])
    print(("goal met" if worst < args.goal else "GOAL MISSED")
          + f": every render under {args.goal:g} s (worst {worst:.3f} s)")
    return 0 if worst < args.goal else 1


if __name__ == "__main__":
    sys.exit(main())
