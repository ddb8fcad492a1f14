#!/usr/bin/env bash
# Install mailbot as a service on Debian 12 (a bare server, or the container image's build).
#
#   Debian packages   python3-venv, LibreOffice (nogui: forms in .doc/.wps/.et), fonts-wqy-zenhei
#                     (Chinese in the digest's chart), postgresql-client (pg_dump for backups)
#   virtualenv        /opt/mailbot, exactly requirements.lock (--require-hashes), then mailbot itself
#   user              the `mailbot` system user and group (no login, home /var/lib/mailbot)
#   folders           /etc/mailbot (root:mailbot 0750: configuration, mailbot.env with the secrets)
#                     /var/lib/mailbot (mailbot 0750: storage, SQLite), /var/log/mailbot (mailbot 0750)
#   systemd           mailbot.service and mailbot-web.service into /etc/systemd/system (not enabled)
#
# Run as root from the source checkout:  bash scripts/install-server.sh
# Options: --prefix DIR  install under DIR (a test or a package build; paths in the units follow)
#          --no-apt      do not install Debian packages      --no-user     do not create the user
#          --no-systemd  do not install the units (containers)
# Idempotent: run it again to upgrade (see README, "Upgrading"); the configuration is never overwritten.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
prefix= apt=1 user=1 units=1
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$(realpath -m "$2"); shift 2 ;;
    --prefix=*) prefix=$(realpath -m "${1#*=}"); shift ;;
    --no-apt) apt=; shift ;;
    --no-user) user=; shift ;;
    --no-systemd) units=; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "install-server: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
opt=$prefix/opt/mailbot etc=$prefix/etc/mailbot data=$prefix/var/lib/mailbot logs=$prefix/var/log/mailbot
say() { echo "install-server: $*"; }

if [ -n "$apt" ]; then
  [ "$(id -u)" -eq 0 ] || { echo "install-server: run as root (or use --no-apt --no-user with --prefix)" >&2; exit 1; }
  say "Debian packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    python3 python3-venv ca-certificates tzdata libreoffice-writer-nogui libreoffice-calc-nogui \
    fonts-wqy-zenhei postgresql-client >/dev/null
fi

owner=
if [ -n "$user" ]; then
  if ! getent passwd mailbot >/dev/null; then
    say "system user mailbot"
    # useradd (package passwd) is in every Debian, the slim image included; adduser is not
    useradd --system --user-group --home-dir /var/lib/mailbot --no-create-home --shell /usr/sbin/nologin mailbot
  fi
  owner=mailbot
fi

say "folders under ${prefix:-/}"
install -d -m 0755 "$opt"
install -d -m 0750 "$etc" "$data" "$logs"
if [ -n "$owner" ]; then
  chown root:mailbot "$etc"
  chown mailbot:mailbot "$data" "$logs"
fi

say "virtualenv $opt (requirements.lock, hashes checked)"
[ -x "$opt/bin/python" ] || python3 -m venv "$opt"
"$opt/bin/python" -m pip install -q --disable-pip-version-check --require-hashes -r "$src/requirements.lock"
"$opt/bin/python" -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation "$src" 2>/dev/null \
  || "$opt/bin/python" -m pip install -q --disable-pip-version-check --no-deps "$src"
"$opt/bin/python" -m pip check >/dev/null
install -m 0644 "$src/README.md" "$opt/README.md"

if [ ! -e "$etc/mailbot.yaml" ]; then  # a first install: the example, to be edited
  say "example configuration in $etc (edit mailbot.yaml, put the secrets in mailbot.env)"
  # relative paths in it (roster, forms, holidays) are read beside the file; storage goes to $data
  sed -e "s#^storage: [^ ]*#storage: $data#" "$src/config/mailbot.example.yaml" > "$etc/mailbot.yaml"
  cp -r "$src/config/forms" "$src/config/holidays" "$src/config/units.example.yaml" "$etc/"
  printf '%s\n' "# Secrets of mailbot, read by the systemd units and docker compose (env_file). Mode 0640." \
    "# MAILBOT_PASSWORD_SKXKPB=…   (the mailbox's password or 授权码)" "# MAILBOT_REVIEW_SECRET=…" > "$etc/mailbot.env"
  chmod 0640 "$etc/mailbot.yaml" "$etc/mailbot.env"
  [ -z "$owner" ] || chown -R root:mailbot "$etc"
fi

if [ -n "$units" ]; then
  say "systemd units in ${prefix}/etc/systemd/system (enable with: systemctl enable --now mailbot)"
  install -d -m 0755 "$prefix/etc/systemd/system"
  for unit in mailbot.service mailbot-web.service; do
    sed -e "s#/opt/mailbot#$opt#g; s#/etc/mailbot#$etc#g; s#/var/lib/mailbot#$data#g; s#/var/log/mailbot#$logs#g" \
      "$src/deploy/systemd/$unit" > "$prefix/etc/systemd/system/$unit"
    chmod 0644 "$prefix/etc/systemd/system/$unit"
  done
  if [ -z "$prefix" ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
fi
say "done: $("$opt/bin/mailbot" --help >/dev/null && echo "$opt/bin/mailbot works")"
