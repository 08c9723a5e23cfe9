#!/bin/sh
# Checks contrib/systemd/holdfast.service with `systemd-analyze verify`, installing systemd's tools
# with apt-get when they are missing (needs root). Any complaint fails: systemd-analyze itself exits 0
# on unknown keys and values it ignores, so its output must be empty.
set -eu
cd "$(dirname "$0")/.."
if ! command -v systemd-analyze >/dev/null 2>&1; then
  if [ "$(id -u)" != 0 ]; then
    echo "verify-systemd: systemd-analyze is missing; install it as root: apt-get install -y systemd" >&2
    exit 1
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y systemd
fi

unit=${1:-contrib/systemd/holdfast.service}
exe=$(sed -n 's/^ExecStart=\([^ ]*\) .*/\1/p' "$unit")
# A bare name is looked up the way systemd does: in its fixed search path, not $PATH.
found=
case "$exe" in
  /*) [ -x "$exe" ] && found=$exe ;;
  *) for d in /usr/local/sbin /usr/local/bin /usr/sbin /usr/bin /sbin /bin; do
       if [ -x "$d/$exe" ]; then found=$d/$exe; break; fi
     done ;;
esac
# HOLDFAST_BIN: verify with that holdfast (an npm-installed one) in the unit's ExecStart/ExecReload.
stand_in=${HOLDFAST_BIN:-}
[ -z "$stand_in" ] && [ -z "$found" ] && stand_in=$(pwd)/bin/holdfast
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -z "$stand_in" ]; then
  cp "$unit" "$tmp/shop.service"
else
  # verify checks that ExecStart's program exists. Where holdfast is not installed where systemd
  # looks, check the same unit with another holdfast in its place; nothing else changes.
  if [ -n "$found" ]; then where="$found is installed, but HOLDFAST_BIN asks"; else where="$exe is not installed where systemd looks"; fi
  echo "verify-systemd: $where; verifying with $stand_in in its place" >&2
  sed "s|^\(Exec[A-Za-z]*=\)$exe |\1$stand_in |" "$unit" >"$tmp/shop.service"
fi
out=$(systemd-analyze verify "$tmp/shop.service" 2>&1) || {
  printf '%s\n' "$out" >&2
  exit 1
}
if [ -n "$out" ]; then
  printf '%s\n' "$out" >&2
  exit 1
fi
echo "verify-systemd: $unit passes systemd-analyze verify ($(systemd-analyze --version | head -n 1))"
