#!/bin/sh
# Install the browser of the explorer tests (tests/test_explorer.py): Debian's chromium, driven
# by Playwright's Python package (the test extra) with executable_path=/usr/bin/chromium, since
# Playwright's own browser download needs the network. Idempotent; run as root for apt-get.
set -eu

if [ -x /usr/bin/chromium ]; then
    echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
    exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q chromium
echo "chromium ready: $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
