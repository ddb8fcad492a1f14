"""Every benchmark in bench/ runs at HEAD: each once at a tiny size, as a subprocess, as
bench/README.md runs it. A bench must exit 0, print its figures and show that it really
measured (the messages it verified, the rows it read, the receipts it counted). Timings are
not asserted: the figures stay out of CI (bench/README.md has them).

The benches use their own embedded SQLite, so they run once, in the SQLite pass; in the
PostgreSQL pass (MAILBOT_TEST_DATABASE_URL set) only bench/digest.py runs, in its PostgreSQL
mode. Results and work dirs go under pytest's tmp_path, never into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PYTHON = ROOT / ".venv" / "bin" / "python"
PG_URL = os.environ.get("MAILBOT_TEST_DATABASE_URL")
sqlite_pass_only = pytest.mark.skipif(
    bool(PG_URL), reason="the benches use their own embedded SQLite: they run once, in the SQLite pass")


def fs_type(path: Path) -> str:
    """The type of the filesystem holding `path` (the benches refuse tmpfs for the robot's storage)."""
    path, best, kind = path.resolve(), "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        mnt, fs = line.split()[1].replace("\\040", " "), line.split()[2]
        if (str(path) == mnt or str(path).startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
            best, kind = mnt, fs
    return kind


def run_bench(args: list[str], tmp_path: Path, timeout: float = 120) -> tuple[str, list[dict]]:
    """Run one bench from the repository root; (stdout, the JSON results it wrote)."""
    results = tmp_path / "results"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILBOT_TEST_")}  # benches keep real time
    env["BENCH_RESULTS"] = str(results)
    work = tmp_path / "work"
    work.mkdir()
    if fs_type(work) not in ("tmpfs", "ramfs"):
        env["BENCH_WORKDIR"] = str(work)  # else the bench's default, /var/tmp, removed after a passing run
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(args)} exited with {proc.returncode}:\n{proc.stdout[-3000:]}\n" \
                                 f"{proc.stderr[-3000:]}"
    found = sorted(results.glob("*.json")) if results.is_dir() else []
    return proc.stdout, [json.loads(p.read_text(encoding="utf-8")) for p in found]


@sqlite_pass_only
def test_ingest_bench_fetches_stores_parses_and_files_every_message(tmp_path):
    out, [result] = run_bench([str(ROOT / "bench" / "ingest"), "--n", "20", "--bare-runs", "1"], tmp_path)
    assert "本轮完成：取回 20 封，新存 20 封" in out
    assert "ratio robot/bare" in out and "peak RSS (wait4)" in out
    assert result["seed"]["messages"] == 20 and result["seed"]["large_messages"] == 2
    assert result["bare_fetch"]["messages"] == 20 and result["bare_fetch"]["bytes"] == result["seed"]["bytes"]
    verified = result["robot"]["verified"]
    assert verified["by_status"] == {"parsed": 20} and verified["message_copy"] == 20
    assert verified["stored_bytes"] == result["seed"]["bytes"] and verified["submissions"] == 20
    receipts = verified["receipts_by_status"].get("sent", 0)
    assert receipts == verified["sink_messages"] > 0
    assert receipts + verified["receipts_capped"] + verified["receipts_skipped"] == 20
    assert result["robot"]["seconds"] > result["robot_startup"]["seconds"] > 0
    assert result["summary"]["ratio_robot_to_bare"] > 0


@sqlite_pass_only
def test_latency_bench_gets_one_receipt_per_unit(tmp_path):
    out, [result] = run_bench([str(ROOT / "bench" / "latency"), "--units", "3", "--gap", "0.2", "--settle", "0.5",
                               "--timeout", "20"], tmp_path)
    assert "receipts arrived: 3/3; exactly one per unit: 3; distinct tracking numbers: 3" in out
    summary = result["summary"]
    assert summary["problems"] == [] and summary["latency_s"]["n"] == 3
    assert result["db_totals"]["inbound_by_status"] == {"parsed": 3}
    assert result["db_totals"]["outbox_by_status"] == {"sent": 3}
    assert result["daemon_stop"]["exit_code"] == 0
    assert all(s["tracking"] and s["latency_s"] > 0 for s in result["samples"])


@sqlite_pass_only
@pytest.mark.skipif(not (shutil.which("soffice") or shutil.which("libreoffice")),
                    reason="LibreOffice (soffice) is not installed: bench/forms.py has it make the forms")
def test_forms_bench_reads_every_row(tmp_path):
    out, _ = run_bench([str(PYTHON), "bench/forms.py", "--repeats", "1", "--xlsx-rows", "20", "--docx-rows", "10",
                        "--goal", "60"], tmp_path)
    lines = out.splitlines()
    assert any(line.split()[:2] == ["xlsx", "20"] and line.endswith("all rows, header and 合计 read") for line in lines)
    assert any(line.split()[:2] == ["docx", "10"] and line.endswith("all rows, header and 合计 read") for line in lines)


@pytest.mark.parametrize("backend", [
    pytest.param("sqlite", marks=sqlite_pass_only),
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="PostgreSQL mode: in the PostgreSQL pass "
                                                                          "(MAILBOT_TEST_DATABASE_URL)")),
])
def test_digest_bench_renders_the_seeded_submissions(tmp_path, backend):
    args = [str(PYTHON), "bench/digest.py", "--submissions", "500", "--units", "30", "--repeat", "1", "--goal", "60"]
    if backend == "postgresql":
        args += ["--database-url", PG_URL]
    else:
        args += ["--workdir", str(tmp_path / "digest")]
    out, [result] = run_bench(args, tmp_path)
    assert f"digest for 500 稿件, 30 units on {backend}" in out and "goal met" in out
    assert result["database"] == backend and result["submissions_stored"] == 500
    assert result["form_returns"] > 0 and result["new_this_week"] > 0
    assert min(result["html_bytes"], result["png_bytes"], result["xlsx_bytes"]) > 0
    assert result["first_render_s"] > 0 and result["office_warm_median_s"] > 0


@sqlite_pass_only
def test_corpus_helper_prints_sizes_and_a_sample(tmp_path):
    out, _ = run_bench([str(PYTHON), "bench/corpus.py", "20"], tmp_path)
    assert out.startswith("20 messages in ") and "large 2 avg" in out
    assert "\nMessage-ID: <" in out

