#!/usr/bin/env bash
# Set up if needed, then run the whole suite on SQLite, and again on PostgreSQL when one
# is reachable (MAILBOT_TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== test suite on SQLite =="
.venv/bin/python -m pytest "$@"

# Time bombs show before their date: the date- and hour-dependent tests (marker `clock`) again,
# with the one clock at hard moments (Sunday 23:59, Monday 08:01 China time, New Year's Eve 23:59).
for moment in 2026-12-06T23:59:00+08:00 2026-12-07T08:01:00+08:00 2026-12-31T23:59:00+08:00; do
  echo "== time-dependent tests at $moment (SQLite) =="
  MAILBOT_TEST_NOW="$moment" .venv/bin/python -m pytest -q -m clock "$@"
done

pg_url="${MAILBOT_TEST_DATABASE_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}"
if .venv/bin/python - "$pg_url" <<'PY'
import sys
import sqlalchemy
try:
    with sqlalchemy.create_engine(sys.argv[1]).connect() as c:
        c.execute(sqlalchemy.text("select 1"))
except Exception as exc:
    print(f"PostgreSQL not reachable ({exc.__class__.__name__})")
    sys.exit(1)
PY
then
  echo "== test suite on PostgreSQL ($pg_url) =="
  MAILBOT_TEST_DATABASE_URL="$pg_url" .venv/bin/python -m pytest "$@"
else
  echo "== SKIPPED: PostgreSQL pass (no server reachable at $pg_url) =="
fi
