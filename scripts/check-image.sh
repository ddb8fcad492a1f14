#!/usr/bin/env bash
# Build the container image with podman (Debian's package) and smoke-test it: as the unprivileged
# `mailbot` user, `mailbot --help`, `mailbot db upgrade`, `mailbot health` (exit 1 with its Chinese
# lines on a fresh instance) and a .wps form read through LibreOffice.
#
# Where `podman run` works the checks run in a container (no network). Where it does not (a
# sandbox refusing setrlimit, as on the development VM), the image is built with
# `--isolation chroot` and the checks run in a chroot of the mounted image (root needed).
# Without a registry, `--base-from-debootstrap` first builds debian:bookworm-slim locally.
# Extra build options (e.g. a proxy's CA for pip) go in PODMAN_BUILD_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=localhost/mailbot:check
if [ "${1:-}" = "--base-from-debootstrap" ] && ! podman image exists docker.io/library/debian:bookworm-slim; then
  root=$(mktemp -d)
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >/dev/null
  rm -rf "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" -c . | podman import - docker.io/library/debian:bookworm-slim >/dev/null
  rm -rf "$root"
fi

work=$(mktemp -d); chmod 777 "$work"; trap 'rm -rf "$work"' EXIT
cp tests/forms/0004-guanzhu-doc-renamed.wps "$work/form.wps"; chmod 644 "$work/form.wps"
checks='mailbot --help >/dev/null && echo "help: ok"
mailbot db upgrade
mailbot forms check /work/form.wps --template 关注情况统计表 | head -1
mailbot health --no-smtp; echo "health exit $? (1 expected: no daemon has run yet)"'

if podman run --rm --network none docker.io/library/debian:bookworm-slim true 2>/dev/null; then
  # shellcheck disable=SC2086
  podman build --format docker --network host ${PODMAN_BUILD_ARGS:-} -t "$tag" .
  podman run --rm --network none -v "$work:/work" -v "$work:/var/lib/mailbot" "$tag" sh -c "$checks"
else
  echo "check-image: podman cannot run containers here; building with --isolation chroot, checking in a chroot"
  # shellcheck disable=SC2086
  podman build --format docker --isolation chroot --network host ${PODMAN_BUILD_ARGS:-} -t "$tag" .
  mnt=$(podman image mount "$tag")
  mount --bind "$work" "$mnt/tmp"
  mount --bind "$work" "$mnt/var/lib/mailbot"
  mount --bind /proc "$mnt/proc"
  trap 'umount "$mnt/tmp" "$mnt/var/lib/mailbot" "$mnt/proc" 2>/dev/null; podman image unmount "$tag" >/dev/null; rm -rf "$work"' EXIT
  uid=$(chroot "$mnt" id -u mailbot)
  chroot --userspec="$uid:$uid" "$mnt" /usr/bin/env -i PATH=/opt/mailbot/bin:/usr/bin:/bin HOME=/var/lib/mailbot \
    LANG=C.UTF-8 MAILBOT_CONFIG=/srv/mailbot/config/mailbot.yaml sh -c "cd /tmp && ${checks//\/work\//\/tmp\/}"
fi
