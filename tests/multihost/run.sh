#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The multi-host test: PostgreSQL in one network namespace, two worker
# "hosts" in two others, each joined to the database by its own veth pair.
# TASKS tasks are drained by 2 processes x 4 threads per host while the
# scenario strikes mid-run:
#
#   run.sh cut WORKER      host 1's link goes down for good; its tasks must
#                          be recovered by host 2 once their leases end
#   run.sh restart WORKER  the database is restarted (fast shutdown)
#
# WORKER is the mh_worker program (tests/multihost/mh_worker.c). Needs root
# (namespaces); CI runs as root. Not root: exit 77 (ctest: skipped), except
# in CI, where that is a failure.
#
# Verdict, from the store and from the handler's own records:
# - every task is SUCCESS, with one result;
# - every task's handler ran at least once, and no task ran twice at once;
# - restart: every task ran exactly once (the restart is far shorter than
#   a lease, so every outcome is reported before its lease runs out);
# - cut: host 1's claimed tasks were recovered by host 2 after their leases
#   (some task succeeded on a later attempt); a task ran twice only if its
#   first run was on host 1 (whose outcome could not be reported over the
#   cut link) and the second on host 2, after it, with a higher attempt.
# It prints the counts. Everything it made (namespaces, cluster, files) is
# removed on exit, pass or fail.
set -euo pipefail

scenario=${1:?usage: run.sh cut|restart WORKER}
worker=$(realpath "${2:?usage: run.sh cut|restart WORKER}")
here=$(cd "$(dirname "$0")" && pwd)
cluster="$here/../../scripts/pg-cluster.sh"
TASKS=${MH_TASKS:-20000}
PROCS=2
THREADS=4
STRIKE_AT=$((TASKS / 4)) # tasks done when the scenario strikes
DEADLINE_S=600
# Leases. cut: short, so the cut host's tasks come back soon. restart: far
# longer than a restart takes, even on a loaded machine. A worker that
# cannot reach the server keeps its outcome and retries until its lease
# runs out; a lease that ran out during the outage lets another worker
# take the task and run it again, as promised (docs/storage-postgres.md,
# "Faults"). With 4 s leases a restart that kept the workers away for
# longer than what was left of a lease (the shutdown checkpoint on a loaded
# disk, then up to 2 s of reconnect backoff) made that legitimate second
# run, which the exactly-once verdict below then called a failure. The
# verdict holds for an outage shorter than the lease; the test prints how
# long the restart took beside the lease.
case $scenario in
  cut) LEASE_S=4 ;;
  *) LEASE_S=30 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "multihost: needs root for network namespaces" >&2
  [ "${CI:-}" = "true" ] && exit 1
  exit 77
fi

tag="oq$$"
ns_db="$tag-db" ns_h1="$tag-h1" ns_h2="$tag-h2"
# Addresses of the test's own namespaces (documentation ranges: routed
# nowhere, and these namespaces have no other way out).
db1=192.0.2.1 h1=192.0.2.2 db2=198.51.100.1 h2=198.51.100.2
work=$(mktemp -d /tmp/omniq-multihost.XXXXXX)
pids=()

cleanup() {
  set +e
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  wait 2>/dev/null
  ip netns exec "$ns_db" bash "$cluster" stop "$work/pg" >/dev/null 2>&1
  for ns in "$ns_db" "$ns_h1" "$ns_h2"; do ip netns del "$ns" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

say() { echo "multihost[$scenario]: $*"; }

# ---- network
for ns in "$ns_db" "$ns_h1" "$ns_h2"; do
  ip netns add "$ns"
  ip -n "$ns" link set lo up
done
ip link add "$tag-d1" netns "$ns_db" type veth peer name "$tag-h1" netns "$ns_h1"
ip link add "$tag-d2" netns "$ns_db" type veth peer name "$tag-h2" netns "$ns_h2"
ip -n "$ns_db" addr add "$db1/24" dev "$tag-d1"
ip -n "$ns_db" addr add "$db2/24" dev "$tag-d2"
ip -n "$ns_h1" addr add "$h1/24" dev "$tag-h1"
ip -n "$ns_h2" addr add "$h2/24" dev "$tag-h2"
for l in "$ns_db:$tag-d1" "$ns_db:$tag-d2" "$ns_h1:$tag-h1" "$ns_h2:$tag-h2"; do
  ip -n "${l%%:*}" link set "${l#*:}" up
done

# ---- database
ip netns exec "$ns_db" bash "$cluster" start "$work/pg" --listen "$db1,$db2" >/dev/null
port=$(cat "$work/pg/port")
url_db="postgresql://postgres@$db1:$port/postgres"
url_h1="postgresql://postgres@$db1:$port/postgres"
url_h2="postgresql://postgres@$db2:$port/postgres"
export OMNIQ_BACKEND=postgres OMNIQ_LEASE=$LEASE_S OMNIQ_LOG_LEVEL=ERROR
export OMNIQ_BASE_DIR="$work"

in_db() { OMNIQ_DB_URL=$url_db ip netns exec "$ns_db" "$@"; }
success() { in_db "$worker" count | awk '{print $1}'; }

in_db "$worker" enqueue "$TASKS"
say "$TASKS tasks enqueued; hosts start"

# ---- workers
for host in 1 2; do
  url_var="url_h$host" ns_var="ns_h$host"
  for p in $(seq 1 $PROCS); do
    OMNIQ_DB_URL=${!url_var} ip netns exec "${!ns_var}" \
      "$worker" work "h$host" "$work/rec-h$host-$p" "$THREADS" 2>>"$work/worker.log" &
    pids+=($!)
  done
done

# A task that ended FAILED will never be SUCCESS (the handler always
# succeeds): the run fails at once rather than at the deadline.
failed() { in_db psql -Atq "$url_db" -c "SELECT count(*) FROM omniq.tasks WHERE status = 3"; }

wait_success() { # count, seconds
  local want=$1 until=$((SECONDS + $2)) n f
  while :; do
    n=$(success 2>/dev/null || echo 0)
    [ "$n" -ge "$want" ] && return 0
    f=$(failed 2>/dev/null || echo 0)
    [ "$f" -gt 0 ] && { say "$f tasks FAILED at $n of $want SUCCESS"; stuck; return 1; }
    [ "$SECONDS" -ge "$until" ] && { say "timed out at $n of $want SUCCESS"; stuck; return 1; }
    sleep 0.2
  done
}

# What the tasks that are not SUCCESS look like, for a run that timed out:
# their states, attempts, crashes, how far their eta and lease are from
# the server's now (ms), and the error type and message of their last
# failed run (a PoisonTask says which crash was the last); then the end
# of the workers' log.
stuck() {
  local now="(extract(epoch from clock_timestamp()) * 1000)::bigint"
  in_db psql -Aq "$url_db" -c "SELECT status, count(*), min(attempts), max(attempts),
      max(crashes) FROM omniq.tasks WHERE status <> 2 GROUP BY status" || true
  in_db psql -Aq "$url_db" -c "SELECT id, status, attempts, crashes, eta_ms - $now AS eta_in,
      lease_until_ms - $now AS lease_in, last_error::json->>'error_type' AS error,
      left(last_error::json->>'message', 160) AS message
      FROM omniq.tasks WHERE status <> 2 ORDER BY id LIMIT 20" ||
    true
  tail -n 20 "$work/worker.log" 2>/dev/null || true
}

wait_success "$STRIKE_AT" "$DEADLINE_S"
case $scenario in
  cut)
    say "$(success) done: cutting host 1's link"
    ip -n "$ns_db" link set "$tag-d1" down
    ;;
  restart)
    say "$(success) done: restarting the database"
    down=$(date +%s%3N)
    ip netns exec "$ns_db" bash "$cluster" restart "$work/pg" >/dev/null
    outage=$(($(date +%s%3N) - down))
    say "the database was back after ${outage} ms (leases: $LEASE_S s)"
    ;;
  *) echo "unknown scenario $scenario" >&2; exit 2 ;;
esac
start=$SECONDS
wait_success "$TASKS" "$DEADLINE_S"
say "all $TASKS SUCCESS $((SECONDS - start)) s after the strike"

# ---- stop the hosts (host 1's may be stuck on its dead link: killed)
for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
for p in "${pids[@]}"; do
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$p" 2>/dev/null || true
done
wait 2>/dev/null || true
pids=()

# ---- verdict
read -r ok total < <(in_db "$worker" count)
results=$(in_db psql -Atq "$url_db" -c "SELECT count(*) FROM omniq.results WHERE status = 2")
# Tasks whose successful run was not their first: a lost run (WorkerLost)
# came before it.
recovered=$(in_db psql -Atq "$url_db" -c "SELECT count(*) FROM omniq.results WHERE attempts > 1")
cat "$work"/rec-* | sort -k1,1 -k2,2n >"$work/records"
runs=$(wc -l <"$work/records")
distinct=$(awk '{print $1}' "$work/records" | uniq | wc -l)
twice=$(awk '{print $1}' "$work/records" | uniq -d | wc -l)
by_host=$(awk '{n[$3]++} END {for (h in n) printf "%s=%d ", h, n[h]}' "$work/records")
say "store: $ok SUCCESS of $total tasks, $results results, $recovered after a lost run; handler: $runs runs of $distinct tasks ($by_host), $twice ran twice"

# A failure explains itself: every run of each task named (both hosts'
# records, in ms relative to the first run's start) and the store's view of
# it: its last claim, and the error its lost run left, which says when the
# lease of the earlier attempt ran out. No task arguments are printed.
explain_twice() {
  local id t0
  for id in $1; do
    t0=$(awk -v id="$id" '$1 == id {print $5; exit}' "$work/records")
    say "task $id: runs (attempt host pid start..end, ms after the first start):"
    awk -v id="$id" -v t0="$t0" '$1 == id {
      printf "    attempt %s on %s pid %s: %+d..%+d ms (wall %s..%s)\n", $2, $3, $4, $5 - t0, $6 - t0, $5, $6
    }' "$work/records"
    in_db psql -Atq "$url_db" -F ' ' -c "SELECT 'store: status', status, 'attempts', attempts,
      'last claim at', started_at_ms, '(' || (started_at_ms - $t0) || ' ms)', 'lease until',
      lease_until_ms, 'last error:', coalesce(last_error::json->>'message', '-')
      FROM omniq.tasks WHERE id = '$id'" 2>&1 | sed 's/^/    /'
  done
}

fail=0
[ "$ok" -eq "$TASKS" ] && [ "$total" -eq "$TASKS" ] && [ "$results" -eq "$TASKS" ] ||
  { say "FAIL: the store does not hold $TASKS SUCCESS tasks with results"; fail=1; }
[ "$distinct" -eq "$TASKS" ] || { say "FAIL: $((TASKS - distinct)) tasks never ran"; fail=1; }
# Runs of one task, in attempt order: each later run must be on another
# attempt, start after the earlier run ended, and (cut) go from h1 to h2.
bad=$(awk -v scenario="$scenario" '
  $1 == id {
    if ($2 <= att || $5 < end) print "overlapping or same-attempt runs: " $0;
    if (scenario == "cut" && (host != "h1" || $3 != "h2")) print "second run not h1 -> h2: " $0;
    if (scenario != "cut") print "ran twice: " $0;
  }
  { id = $1; att = $2; end = $6; host = $3 }' "$work/records")
if [ -n "$bad" ]; then
  say "FAIL:"; echo "$bad" | head -20; fail=1
  explain_twice "$(echo "$bad" | awk '{print $(NF - 5)}' | sort -u | head -10)"
  if [ "$scenario" = restart ] && [ "$outage" -ge $((LEASE_S * 1000 / 3)) ]; then
    say "(the restart took ${outage} ms, too close to the ${LEASE_S} s leases for exactly once)"
  fi
fi
if [ "$scenario" = cut ] && [ "$recovered" -eq 0 ]; then
  say "FAIL: no task of the cut host was recovered after its lease"
  fail=1
fi
# What a cut host can have run without its outcome reaching the store, per
# process: its runs under way and their outcomes waiting to be committed
# (2 x THREADS), the tasks it had claimed ahead, which its runners may
# still start while their leases allow (AHEAD, one claim), and a batch of
# outcomes whose commit the cut stopped (AHEAD). Each of those is run again
# by host 2 once its lease has run out, never at the same time (checked
# above).
AHEAD=64 # AHEAD_MAX and BATCH_MAX, src/worker/pool_state.h and batch.h
bound=$((PROCS * (2 * THREADS + 2 * AHEAD)))
if [ "$scenario" = cut ] && [ "$twice" -gt "$bound" ]; then
  say "FAIL: $twice tasks ran twice; host 1 could have run at most $bound unreported"
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  tail -n 20 "$work/worker.log" >&2 || true
  exit 1
fi
say "PASS"
