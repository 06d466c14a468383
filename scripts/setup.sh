#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages OmniQ needs to build, test and run its demo,
# when any is missing. Safe to run again: it does nothing when all are there.
set -euo pipefail

# postgresql: the server the PostgreSQL tests and benchmarks start a throwaway
# cluster of (scripts/pg-cluster.sh); libpq-dev: the client library the
# backend links; iproute2: network namespaces for the multi-host test.
# clang and its runtime (libFuzzer) are for make fuzz. libmicrohttpd-dev:
# the HTTP server of `omniq serve`; chromium and chromium-driver: the
# headless browser its dashboard test drives.
packages=(gcc make cmake pkg-config libsqlite3-dev libjansson-dev libcmocka-dev scdoc man-db
          python3 python3-pytest postgresql libpq-dev iproute2 clang libclang-rt-dev
          libmicrohttpd-dev chromium chromium-driver)
# Installed without their recommends: prometheus for its promtool, which the
# metrics test parses /metrics with (its recommended node exporter is not
# needed, and no Prometheus server is started or configured).
lean=(prometheus)
# `scripts/setup.sh peers` (make bench-peers) also installs the queues OmniQ
# is measured beside, and the Redis client library the peer benchmark links.
if [ "${1:-}" = peers ]; then
  packages+=(beanstalkd redis-server libhiredis-dev)
fi

missing() {
  for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      echo "$p"
    fi
  done
}
mapfile -t need < <(missing "${packages[@]}")
mapfile -t need_lean < <(missing "${lean[@]}")
[ ${#need[@]} -eq 0 ] && [ ${#need_lean[@]} -eq 0 ] && exit 0

echo "omniq setup: installing ${need[*]} ${need_lean[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
if [ ${#need_lean[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${need_lean[@]}" >/dev/null
fi
