#!/usr/bin/env bash
# CI: the filter examples' end-to-end tests run against a real redis-server, from Debian's
# packages. Installs it when it is missing (as root, with apt-get); does nothing otherwise.
# No service is started: each test starts its own redis-server on a free loopback port.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "redis-server present: $(redis-server --version)"
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ci-install-redis: redis-server is missing, and installing it needs root and apt-get" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The package may start its own service where an init system runs; the tests never use it.
echo "installed: $(redis-server --version)"
