#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian 12 with only python3: Debian packages (Dovecot,
# venv support), then a virtualenv with the locked Python dependencies and mailbot itself.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
apt_updated=
apt_install() {
  echo "setup: installing Debian packages: $*"
  if [ -z "$apt_updated" ]; then $SUDO apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if [ ! -x /usr/sbin/dovecot ] || [ ! -e /usr/lib/dovecot/lmtp ]; then
  apt_install dovecot-imapd dovecot-lmtpd
  # Tests and the demo run private Dovecot instances; the packaged system service is not used.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now dovecot >/dev/null 2>&1 || true
  fi
fi

# Statistics forms in .doc/.wps/.et are read through LibreOffice's headless conversion.
if ! command -v soffice >/dev/null 2>&1; then
  apt_install libreoffice-writer-nogui libreoffice-calc-nogui
fi

# The digest's chart and its screenshot test need a Chinese font; the test renders the
# digest's HTML in Debian's headless Chromium.
if [ ! -e /usr/share/fonts/truetype/wqy/wqy-zenhei.ttc ]; then
  apt_install fonts-wqy-zenhei
fi
if ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium
fi

# `mailbot backup` of a PostgreSQL database, and its test, use pg_dump/pg_restore.
if ! command -v pg_dump >/dev/null 2>&1; then
  apt_install postgresql-client
fi

# The deployment tests: the compose file checked by `docker-compose config`, the systemd units
# by `systemd-analyze verify` (no container engine or running systemd is needed for either).
if ! command -v docker-compose >/dev/null 2>&1; then
  apt_install docker-compose
fi
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt_install systemd
fi

if [ ! -x .venv/bin/python ]; then
  # Debian's python3 has no venv/ensurepip until python3-venv is installed.
  if ! python3 -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    apt_install python3-venv
    python3 -m venv .venv
  fi
fi

stamp=.venv/.mailbot-installed
if [ ! -f "$stamp" ] || [ requirements.lock -nt "$stamp" ] || [ requirements-test.lock -nt "$stamp" ] \
   || [ pyproject.toml -nt "$stamp" ]; then
  echo "setup: installing Python dependencies from requirements.lock and requirements-test.lock (hashes checked)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes -r requirements.lock \
    -r requirements-test.lock
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps -e .
  touch "$stamp"
fi
# devtools/ (dev mail servers, demo, sample data) is not part of the package: the checkout's
# root goes on the virtualenv's path so `mailbot demo`, the tests and the benches find it.
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
[ -f "$site/mailbot-checkout.pth" ] && [ "$(cat "$site/mailbot-checkout.pth")" = "$PWD" ] || echo "$PWD" > "$site/mailbot-checkout.pth"
# The checkout's bytecode, as pip writes it for an installed package: every robot, CLI and
# parse worker a test or bench starts then skips compiling ~75 modules (~0.25 s each start),
# also where PYTHONDONTWRITEBYTECODE is set. Only changed files are compiled again.
.venv/bin/python -m compileall -q -j 0 mailbot devtools >/dev/null
