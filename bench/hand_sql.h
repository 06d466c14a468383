/* SPDX-License-Identifier: MIT */
/* The SQL the benchmarks run by hand as their baseline: what the SQLite
 * backend runs (src/storage/sqlite/backend.c and rows.c), written out once
 * here so every benchmark compares against the same statements. */
#ifndef OMNIQ_BENCH_HAND_SQL_H
#define OMNIQ_BENCH_HAND_SQL_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

#include "omniq.h"

#define COLS                                                                      \
  "id, func, queue, args, kwargs, status, priority, attempts, max_retries, eta, " \
  "interval_ms, timeout_ms, created_at, started_at, lease_until, token, last_error, seq"

/* Read by every claim, in its transaction, for the queue's pause and rate
 * limit (no row: neither). */
static const char queue_sql[] =
    "SELECT paused, rate_limit, rate_period_ms, window_start, window_count FROM queues"
    " WHERE name = ?1";
/* A claim reads the rows it takes, then takes them by the same walk in
 * the same transaction (the backend's claim of one queue, claim.c): an
 * UPDATE ... RETURNING hands its rows back through a trigger program per
 * row and a temporary table, which cost more than the second walk. */
static const char claim_read_sql[] =
    "SELECT " COLS " FROM tasks INDEXED BY tasks_due WHERE status = 0 AND queue = ?4"
    " AND eta <= ?1 ORDER BY priority DESC, eta, seq LIMIT ?5";
static const char claim_sql[] =
    "UPDATE tasks SET status = 1, attempts = attempts + 1, token = token + 1,"
    " started_at = ?1, lease_until = ?2 WHERE seq IN (SELECT seq FROM tasks"
    " INDEXED BY tasks_due WHERE status = 0 AND queue = ?4 AND eta <= ?1"
    " ORDER BY priority DESC, eta, seq LIMIT ?5)";

/* Takes the k tasks of queue that claim_read_sql just read (their token
 * and attempts are then one more than read). 0, or -1 if the step failed
 * or took another number of rows. */
static inline int hand_sql_take(sqlite3 *db, sqlite3_stmt *take, int64_t now, int64_t lease_until,
                                const char *queue, int64_t k, int read) {
  sqlite3_bind_int64(take, 1, now);
  sqlite3_bind_int64(take, 2, lease_until);
  sqlite3_bind_text(take, 4, queue, -1, SQLITE_STATIC);
  sqlite3_bind_int64(take, 5, k);
  int rc = sqlite3_step(take);
  sqlite3_reset(take);
  return rc == SQLITE_DONE && sqlite3_changes(db) == read ? 0 : -1;
}
/* A finish: one update by id under its claim token and the queue its
 * claim returned (the backend's finish of a decision naming its queue,
 * storage ABI 7); no lookup of the row first. */
static const char finish_sql[] =
    "UPDATE tasks SET status = ?2, eta = CASE WHEN ?2 = 0 THEN ?3 ELSE eta END,"
    " attempts = CASE WHEN ?2 = 0 AND ?4 THEN 0 ELSE attempts END,"
    " last_error = coalesce(?5, last_error), crashes = ?6, finished_at = ?7"
    " WHERE id = ?1 AND status = 1 AND token = ?8 AND queue = ?9";
/* The running totals, in the finish's transaction. */
static const char total_sql[] =
    "INSERT INTO run_totals (queue, kind, n) VALUES (?1, ?2, 1)"
    " ON CONFLICT (queue, kind) DO UPDATE SET n = n + 1";
/* The same for ?3 runs at once: a transaction of many finishes writes its
 * totals once per queue and kind, as the backend's group commit does. */
static const char total_n_sql[] =
    "INSERT INTO run_totals (queue, kind, n) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (queue, kind) DO UPDATE SET n = n + ?3";
static const char put_sql[] =
    "INSERT OR REPLACE INTO results (task_id, status, value, error, attempts, finished_at,"
    " last_attempt_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/* SQLite configured as the backend configures it before its first open
 * (src/storage/sqlite/schema.c: memory statistics off), so the hand loops
 * run on the same library settings whichever side opens first. Call first
 * thing in main; a SQLite already initialised keeps its settings. */
static inline void hand_sql_configure(void) { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); }

/* Marks task id, claimed under token from queue, next_status at now (with
 * eta and reset_attempts for a PENDING one), as the backend's finish does.
 * Returns 0, or -1 if the claim is no longer valid or the step failed. */
static inline int hand_sql_finish_as(sqlite3 *db, sqlite3_stmt *finish, const char *id,
                                     int64_t token, const char *queue, int next_status,
                                     int64_t eta, int reset_attempts, int64_t now) {
  sqlite3_bind_text(finish, 1, id, -1, SQLITE_STATIC);
  sqlite3_bind_int(finish, 2, next_status);
  sqlite3_bind_int64(finish, 3, eta);
  sqlite3_bind_int(finish, 4, reset_attempts);
  sqlite3_bind_null(finish, 5);
  sqlite3_bind_int(finish, 6, 0);
  sqlite3_bind_int64(finish, 7, next_status == OMNIQ_PENDING ? 0 : now);
  sqlite3_bind_int64(finish, 8, token);
  sqlite3_bind_text(finish, 9, queue, -1, SQLITE_STATIC);
  int rc = sqlite3_step(finish);
  sqlite3_reset(finish);
  return rc == SQLITE_DONE && sqlite3_changes(db) == 1 ? 0 : -1;
}

/* The same, SUCCESS. */
static inline int hand_sql_finish(sqlite3 *db, sqlite3_stmt *finish, const char *id,
                                  int64_t token, const char *queue, int64_t now) {
  return hand_sql_finish_as(db, finish, id, token, queue, OMNIQ_SUCCESS, now, 0, now);
}

#endif
