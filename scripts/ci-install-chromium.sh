#!/usr/bin/env bash
# Installs Debian's Chromium for the browser tests (test/e2e/status-page.test.ts) when it is
# not there yet. Run as root (CI runs as root). Playwright's own browser download is not
# used: this machine reaches Debian's packages, not a browser vendor's.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "ci-install-chromium: /usr/bin/chromium is missing and installing it needs root" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq chromium >/dev/null
echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
