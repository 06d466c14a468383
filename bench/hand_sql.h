/* SPDX-License-Identifier: MIT */
/* The SQL the benchmarks run by hand as their baseline: what the SQLite
 * backend runs (src/storage/sqlite/backend.c and rows.c), written out once
 * here so every benchmark compares against the same statements. */
#ifndef OMNIQ_BENCH_HAND_SQL_H
#define OMNIQ_BENCH_HAND_SQL_H

#define COLS                                                                      \
  "id, func, queue, args, kwargs, status, priority, attempts, max_retries, eta, " \
  "interval_ms, timeout_ms, created_at, started_at, lease_until, token, last_error, seq"

/* Read by every claim, in its transaction, for the queue's pause and rate
 * limit (no row: neither). */
static const char queue_sql[] =
    "SELECT paused, rate_limit, rate_period_ms, window_start, window_count FROM queues"
    " WHERE name = ?1";
static const char claim_sql[] =
    "UPDATE tasks SET status = 1, attempts = attempts + 1, token = token + 1,"
    " started_at = ?1, lease_until = ?2 WHERE seq IN (SELECT seq FROM tasks"
    " INDEXED BY tasks_due WHERE status = 0 AND queue = ?4 AND eta <= ?1"
    " ORDER BY priority DESC, eta, seq LIMIT ?5) RETURNING " COLS;
static const char finish_sql[] =
    "UPDATE tasks SET status = ?3, eta = CASE WHEN ?3 = 0 THEN ?4 ELSE eta END,"
    " attempts = CASE WHEN ?3 = 0 AND ?5 THEN 0 ELSE attempts END,"
    " last_error = coalesce(?6, last_error), crashes = ?7, finished_at = ?8"
    " WHERE id = ?1 AND status = 1 AND token = ?2 RETURNING queue";
/* The running totals, in the finish's transaction. */
static const char total_sql[] =
    "INSERT INTO run_totals (queue, kind, n) VALUES (?1, ?2, 1)"
    " ON CONFLICT (queue, kind) DO UPDATE SET n = n + 1";
static const char put_sql[] =
    "INSERT OR REPLACE INTO results (task_id, status, value, error, attempts, finished_at,"
    " last_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

#endif
