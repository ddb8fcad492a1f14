"""Forms benchmark: how long does reading one large statistics form take?

1. In a temp dir, build a 2,000-row .xlsx and a 500-row .docx of the 关注情况统计表 with
   tests/forms/make_forms.py (`build_bench`: the same sources as `make_forms.py --bench`,
   saved by LibreOffice, as an office would send them).
2. Time `mailbot.forms.read_form` on each file's bytes, with the templates of
   config/forms: one first read, shown apart (it imports python-docx; openpyxl is already
   loaded by make_forms), then --repeats timed reads.
3. Check every read: the template is recognised, every row is there with its values, the
   header fields and the 合计 row are read, and there are no errors or warnings.
4. Print min / median / max per form. Exit 1 if a check fails, 2 if the goal (median under
   --goal seconds, default 1 s, per form) is missed.

Run from the repository root: .venv/bin/python bench/forms.py [--repeats 7] [--keep DIR]
[--xlsx-rows 2000] [--docx-rows 500]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "forms")]

import make_forms  # noqa: E402 - the fixture builder, found through the path above

from mailbot.forms import load_templates, read_form  # noqa: E402

SIZES = {"xlsx": 2000, "docx": 500}
TEMPLATE = "关注情况统计表"


def build(folder: Path, sizes: dict[str, int]) -> dict[str, Path]:
    """The two forms, made by LibreOffice; {format: path}."""
    paths = make_forms.build_bench(folder, xlsx_rows=sizes["xlsx"], docx_rows=sizes["docx"])
    return {path.suffix.lstrip("."): path for path in paths}


def check(result, fmt: str, n: int) -> list[str]:
    """What is wrong with one read of an n-row form, compared with what make_forms wrote."""
    want_rows = [{"单位名称": f"测试单位{i}号科协", "关注人数": i * 3} for i in range(1, n + 1)]
    problems = []
    if (result.template, result.format) != (TEMPLATE, fmt):
        problems.append(f"template/format {result.template!r}/{result.format!r}")
    if result.rows != want_rows:
        problems.append(f"{len(result.rows)} rows read, {n} expected (or values differ)")
    if result.total != {"关注人数": sum(i * 3 for i in range(1, n + 1))}:
        problems.append(f"total {result.total!r}")
    if result.header != {"填报单位": "测试县科协", "填报时间": "2026-12-18"}:
        problems.append(f"header {result.header!r}")
    if result.errors or result.warnings:
        problems.append(f"{len(result.errors)} errors, warnings {result.warnings!r}")
    return problems


def time_one(data: bytes, name: str, templates: list, repeats: int) -> tuple[float, list[float], object]:
    """The first read (with any import a fresh parse worker pays), then `repeats` timed reads."""
    start = time.perf_counter()
    read_form(data, name, templates, today=date(2026, 12, 21))
    first = time.perf_counter() - start
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = read_form(data, name, templates, today=date(2026, 12, 21))
        times.append(time.perf_counter() - start)
    return first, times, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed reads per form (default 7)")
    parser.add_argument("--goal", type=float, default=1.0, help="seconds per form, median (default 1.0)")
    parser.add_argument("--keep", type=Path, help="write the forms to this folder and keep them")
    parser.add_argument("--xlsx-rows", type=int, default=SIZES["xlsx"],
                        help=f"rows of the .xlsx (default {SIZES['xlsx']})")
    parser.add_argument("--docx-rows", type=int, default=SIZES["docx"],
                        help=f"rows of the .docx (default {SIZES['docx']})")
    args = parser.parse_args()
    if args.repeats < 1 or args.xlsx_rows < 1 or args.docx_rows < 1:
        parser.error("--repeats, --xlsx-rows and --docx-rows must be at least 1")
    sizes = {"xlsx": args.xlsx_rows, "docx": args.docx_rows}
    templates = load_templates(ROOT / "config" / "forms")

    with tempfile.TemporaryDirectory(prefix="bench-forms-") as tmp:
        folder = args.keep or Path(tmp)
        started = time.perf_counter()
        paths = build(folder, sizes)
        made = time.perf_counter() - started
        rows, failed, missed = [], False, False
        for fmt in ("xlsx", "docx"):
            data = paths[fmt].read_bytes()
            first, times, result = time_one(data, paths[fmt].name, templates, args.repeats)
            problems = check(result, fmt, sizes[fmt])
            failed |= bool(problems)
            median = statistics.median(times)
            missed |= median >= args.goal
            rows.append((fmt, sizes[fmt], len(data), first, min(times), median, max(times), problems))

    print(f"read_form, Python {platform.python_version()}, {os.cpu_count()} CPUs; {args.repeats} timed reads per "
          f"form after the first; forms made by LibreOffice in {made:.1f} s")
    print(f"{'form':<6} {'rows':>6} {'KiB':>6} {'first s':>8} {'min s':>7} {'median s':>9} {'max s':>7}  "
          f"goal <{args.goal:g} s  check")
    for fmt, n, size, first, low, median, high, problems in rows:
        goal = "OK" if median < args.goal else "MISSED"
        print(f"{fmt:<6} {n:>6} {size / 1024:>6.0f} {first:>8.3f} {low:>7.3f} {median:>9.3f} {high:>7.3f}  {goal:<11} "
              f"{'; '.join(problems) or 'all rows, header and 合计 read'}")
    if failed:
        print("FAILED: a form was not read as written", file=sys.stderr)
        return 1
    if missed:
        print(f"MISSED: reading a form takes {args.goal:g} s or more", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
