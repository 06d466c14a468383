#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# A throwaway PostgreSQL cluster for OmniQ's tests and benchmarks.
#
#   pg-cluster.sh start STATE [--listen ADDRS] [--port N]
#   pg-cluster.sh stop STATE
#   pg-cluster.sh restart STATE      (fast shutdown, then start again)
#   pg-cluster.sh down STATE         (fast shutdown, keeping the data)
#   pg-cluster.sh up STATE           (start a cluster that is down again)
#   pg-cluster.sh env STATE          (prints export lines)
#   pg-cluster.sh run STATE -- CMD [ARGS...]   (CMD with OMNIQ_DB_URL set)
#
# STATE is a folder the caller owns (a build directory's pg-test/, say); it
# holds only what names the cluster: `datadir` and `url`. The cluster itself
# lives in a fresh folder under /tmp (mktemp), so the server, which runs as
# an unprivileged user, never needs to reach into the caller's tree.
#
# The server refuses to run as root. As root the cluster belongs to the
# Debian `postgres` user (runuser); as anyone else, to that user. It listens
# on 127.0.0.1 (or --listen, a comma-separated list: the multi-host test
# passes its namespace addresses) on a free port, and on a Unix socket in
# its own folder; authentication is `trust`, which is safe only because
# nothing outside this machine can reach those addresses.
#
# Durability is PostgreSQL's default (fsync on, synchronous_commit on): the
# benchmarks measure what a real deployment would see.
#
# start first stops and removes a cluster STATE still names (a run that was
# killed), and removes its own folder again if anything fails; stop removes
# the folder whatever state the server is in. A start that fails exits
# non-zero: a missing server is a failure, never a skip.
set -euo pipefail

die() { echo "pg-cluster: $*" >&2; exit 1; }

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# The newest server installed (Debian keeps each major version apart);
# PG_BINDIR overrides.
find_bindir() {
  if [ -n "${PG_BINDIR:-}" ]; then echo "$PG_BINDIR"; return; fi
  local d
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/initdb" ] || die "no PostgreSQL server found under /usr/lib/postgresql (run scripts/setup.sh)"
  echo "$d"
}

# Runs a command as the cluster's owner.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

owner_name() {
  if [ "$(id -u)" -eq 0 ]; then echo postgres; else id -un; fi
}

# A TCP port nobody listens on now. The server may still lose a race for
# it; start then tries another.
pick_port() {
  local p
  for _ in $(seq 1 50); do
    p=$(( 20000 + (RANDOM * 32768 + RANDOM) % 40000 ))
    if ! ss -Htln "sport = :$p" 2>/dev/null | grep -q .; then echo "$p"; return; fi
  done
  die "no free TCP port found"
}

pg_stop_dir() { # datadir
  local data=$1 bindir
  [ -d "$data" ] || return 0
  bindir=$(find_bindir)
  if [ -f "$data/db/postmaster.pid" ]; then
    as_owner "$bindir/pg_ctl" -D "$data/db" -m fast -w -t 60 stop >/dev/null 2>&1 ||
      as_owner "$bindir/pg_ctl" -D "$data/db" -m immediate -w -t 60 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
}

cmd_stop() {
  local state=$1
  if [ -f "$state/datadir" ]; then pg_stop_dir "$(cat "$state/datadir")"; fi
  rm -f "$state/datadir" "$state/url" "$state/port" "$state/listen"
}

# Starts the server on an existing data folder; tries a few ports.
server_start() { # state data listen port
  local state=$1 data=$2 listen=$3 port=$4 bindir tries=0
  bindir=$(find_bindir)
  while :; do
    [ -n "$port" ] || port=$(pick_port)
    if as_owner "$bindir/pg_ctl" -D "$data/db" -l "$data/server.log" -w -t 60 \
         -o "-c listen_addresses='$listen' -c port=$port -c unix_socket_directories='$data'" \
         start >/dev/null; then
      break
    fi
    tries=$((tries + 1))
    if [ "$tries" -ge 5 ] || [ -n "${fixed_port:-}" ]; then
      tail -n 20 "$data/server.log" >&2 || true
      return 1
    fi
    port=""
  done
  echo "$port" >"$state/port"
  echo "$listen" >"$state/listen"
  local host=${listen%%,*}
  echo "postgresql://postgres@$host:$port/postgres" >"$state/url"
}

cmd_start() {
  local state=$1 listen=127.0.0.1 port=""
  shift
  while [ $# -gt 0 ]; do
    case $1 in
      --listen) listen=$2; shift 2 ;;
      --port) port=$2; fixed_port=1; shift 2 ;;
      *) usage ;;
    esac
  done
  mkdir -p "$state"
  cmd_stop "$state"
  local bindir data
  bindir=$(find_bindir)
  [ "$(id -u)" -ne 0 ] || id postgres >/dev/null 2>&1 ||
    die "user 'postgres' is missing (install the postgresql package)"
  data=$(mktemp -d /tmp/omniq-pg.XXXXXX)
  echo "$data" >"$state/datadir"
  # On any failure from here on, leave nothing behind.
  trap 'pg_stop_dir "$data"; rm -f "$state/datadir"' ERR
  chmod 700 "$data"
  chown "$(owner_name)" "$data"
  as_owner "$bindir/initdb" -D "$data/db" -U postgres --auth=trust -E UTF8 \
    --no-instructions >"$data/initdb.log" 2>&1 || { cat "$data/initdb.log" >&2; false; }
  # Room for the tests' many handles (each is a connection plus a listener).
  cat >>"$data/db/postgresql.conf" <<EOF
max_connections = 300
log_min_messages = warning
log_connections = off
EOF
  # Clients on the subnets of the listen addresses (the multi-host test's
  # namespaces); initdb's own entries cover the loopback and the socket.
  echo "host all all samenet trust" >>"$data/db/pg_hba.conf"
  server_start "$state" "$data" "$listen" "$port"
  trap - ERR
  cat "$state/url"
}

cmd_down() {
  local state=$1 bindir data
  [ -f "$state/datadir" ] || die "no cluster in $state"
  data=$(cat "$state/datadir")
  bindir=$(find_bindir)
  as_owner "$bindir/pg_ctl" -D "$data/db" -m fast -w -t 60 stop >/dev/null
}

# Starts it again on the same addresses and port, so clients reconnect to
# the URL they have.
cmd_up() {
  local state=$1
  [ -f "$state/datadir" ] || die "no cluster in $state"
  if as_owner "$(find_bindir)/pg_ctl" -D "$(cat "$state/datadir")/db" status >/dev/null 2>&1; then
    return 0 # already up
  fi
  fixed_port=1 server_start "$state" "$(cat "$state/datadir")" "$(cat "$state/listen")" \
    "$(cat "$state/port")"
}

cmd_env() {
  local state=$1
  [ -f "$state/url" ] || die "no cluster in $state (start it first)"
  echo "export OMNIQ_DB_URL='$(cat "$state/url")'"
}

cmd_run() {
  local state=$1
  shift
  [ "${1:-}" = "--" ] && shift
  [ $# -gt 0 ] || usage
  [ -f "$state/url" ] || die "no cluster in $state (its start failed or never ran)"
  OMNIQ_DB_URL=$(cat "$state/url")
  export OMNIQ_DB_URL
  exec "$@"
}

[ $# -ge 2 ] || usage
cmd=$1
state=$(realpath -m "$2")
shift 2
case $cmd in
  start) cmd_start "$state" "$@" ;;
  stop) cmd_stop "$state" ;;
  restart) cmd_down "$state" && cmd_up "$state" ;;
  down) cmd_down "$state" ;;
  up) cmd_up "$state" ;;
  env) cmd_env "$state" ;;
  run) cmd_run "$state" "$@" ;;
  *) usage ;;
esac
