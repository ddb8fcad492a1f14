"""bench/web.py runs at HEAD (as tests/integration/test_benches.py runs the others): once at a
tiny size, as a subprocess, on SQLite in the SQLite pass and on PostgreSQL in the
PostgreSQL pass. It must exit 0, print its table and show that every page was requested and
answered. Timings are not asserted (bench/README.md has the figures)."""

from __future__ import annotations

import pytest

from test_benches import PG_URL, PYTHON, run_bench

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.mark.parametrize("backend", [
    pytest.param("sqlite", marks=pytest.mark.skipif(bool(PG_URL), reason="SQLite mode: in the SQLite pass")),
    pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="PostgreSQL mode: in the PostgreSQL pass "
                                                                          "(MAILBOT_TEST_DATABASE_URL)")),
])
def test_web_bench_times_the_list_and_the_board(tmp_path, backend):
    args = [str(PYTHON), "bench/web.py", "--submissions", "300", "--units", "20", "--repeat", "2", "--goal", "60"]
    args += ["--database-url", PG_URL] if backend == "postgresql" else ["--workdir", str(tmp_path / "web")]
    out, [result] = run_bench(args, tmp_path)
    assert f"console pages for 300 稿件, 20 units on {backend}" in out and "goal met" in out
    assert result["submissions_stored"] == 300 and result["form_returns"] > 0
    assert set(result["pages"]) == {"list", "list-waiting", "list-search", "list-deep", "board", "home", "list-clerk"}
    assert all(p["p95_ms"] > 0 for p in result["pages"].values())
