#!/usr/bin/env bash
# Set up if needed, then run the demo: private Dovecot + SMTP on loopback, sample mail, one robot run on SQLite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/mailbot demo "$@"
