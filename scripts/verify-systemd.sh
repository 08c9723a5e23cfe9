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
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ -x "$exe" ]; then
  cp "$unit" "$tmp/shop.service"
else
  # verify checks that ExecStart's program exists. Where holdfast is not installed at that path,
  # check the same unit with this checkout's launcher in its place; nothing else changes.
  echo "verify-systemd: $exe is not installed here; verifying with $(pwd)/bin/holdfast in its place" >&2
  sed "s|$exe |$(pwd)/bin/holdfast |g" "$unit" >"$tmp/shop.service"
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
