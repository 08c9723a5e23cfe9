#!/bin/sh
# The browser test (npm run test:browser) drives Debian's Chromium through playwright-core, which
# downloads no browser of its own. Install Chromium with apt-get when it is missing (needs root).
set -eu
CHROMIUM=/usr/bin/chromium
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "ensure-chromium: $CHROMIUM is missing; install it as root: apt-get install -y chromium" >&2
  exit 1
fi
echo "ensure-chromium: installing chromium with apt-get" >&2
apt-get update
DEBIAN_FRONTEND=noninteractive apt-get install -y chromium
test -x "$CHROMIUM"
