#!/usr/bin/env bash
# Set up if needed, then run the whole suite on SQLite, and again on PostgreSQL when one
# is reachable (MAILBOT_TEST_DATABASE_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/test).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== test suite on SQLite =="
.venv/bin/python -m pytest "$@"

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
