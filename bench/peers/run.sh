#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make bench-peers: starts beanstalkd (twice: without and with a binlog) and
# redis-server on free loopback ports in a temporary folder, with their
# default persistence, runs bench_peers against them beside OmniQ, and stops
# them on the way out, whatever happens.
#
#   bench/peers/run.sh BUILD_DIR [samples]
set -euo pipefail
build=${1:?usage: run.sh BUILD_DIR [samples]}
samples=${2:-1000}
work=$(mktemp -d /tmp/omniq-bench-peers-XXXXXX)
pids=()
stop() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Waits until something accepts connections on 127.0.0.1:$1.
wait_port() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "bench-peers: nothing listens on port $1" >&2
  exit 1
}

redis_port=$(free_port)
# Redis with no configuration file: its defaults, RDB snapshots (save 3600 1
# 300 100 60 10000) into --dir and no append-only file.
redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$work" --daemonize no \
  --logfile "$work/redis.log" &
pids+=($!)
bs_port=$(free_port)
# beanstalkd's default: no binlog, jobs in memory only.
beanstalkd -l 127.0.0.1 -p "$bs_port" &
pids+=($!)
bsb_port=$(free_port)
# With -b: every put and delete is appended to a binlog in that folder
# (and fsynced at most every 50 ms, its -f default).
mkdir "$work/binlog"
beanstalkd -l 127.0.0.1 -p "$bsb_port" -b "$work/binlog" &
pids+=($!)
for p in "$redis_port" "$bs_port" "$bsb_port"; do wait_port "$p"; done

echo "load: $(uptime)"
echo "$(redis-server --version | cut -d' ' -f1-3); $(beanstalkd -v)"
"$build/bench_peers" "$redis_port" "$bs_port" "$bsb_port" "$samples"
echo "load: $(uptime)"
