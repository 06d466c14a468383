#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs the Debian packages OmniQ needs to build, test and run its demo,
# when any is missing. Safe to run again: it does nothing when all are there.
set -euo pipefail

# postgresql: the server the PostgreSQL tests and benchmarks start a throwaway
# cluster of (scripts/pg-cluster.sh); libpq-dev: the client library the
# backend links; iproute2: network namespaces for the multi-host test.
# clang and its runtime (libFuzzer) are for make fuzz.
packages=(gcc make cmake pkg-config libsqlite3-dev libjansson-dev libcmocka-dev scdoc man-db
          python3 python3-pytest postgresql libpq-dev iproute2 clang libclang-rt-dev)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "omniq setup: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
