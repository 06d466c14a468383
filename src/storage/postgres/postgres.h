/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend internals, shared by its files:
 *   backend.c      open/close, the statement table, the operations table
 *   claim.c        the claim and the expired-lease scan (SQL texts exposed
 *                  for the query-plan test)
 *   transitions.c  enqueue, outcomes, extend_lease, cancel, purge
 *   group.c        group commit of concurrent outcomes
 *   batch.c        many outcomes and the next claim in one step; release
 *   unique.c       enqueues that carry unique keys; a key taken again
 *   queues.c       pause, rate limits and the claim that keeps them,
 *                  queue statistics, chores
 *   manage.c       retry by hand, delete, retention
 *   list.c         a page of a listing
 *   reads.c        get_task, get_result, counts, and rows -> records
 *   conn.c         connections, statements, errors
 *   schema.c       schema name and migrations
 *   timebase.c     the server's clock as every decision's clock
 *   listen.c       LISTEN/NOTIFY wake-ups
 */
#ifndef OMNIQ_PG_POSTGRES_H
#define OMNIQ_PG_POSTGRES_H

#include "storage/postgres/conn.h"
#include "storage/postgres/listen.h"
#include "omniq/storage.h"
#include "storage/postgres/schema.h"
#include "storage/postgres/timebase.h"

/* Prepared statements (texts in backend.c and claim.c). */
enum {
  OMNIQ__PGS_INSERT,
  OMNIQ__PGS_CLAIM1, /* one queue */
  OMNIQ__PGS_CLAIMN, /* queue = ANY($1) */
  OMNIQ__PGS_FINISH,
  OMNIQ__PGS_EXTEND,
  OMNIQ__PGS_CANCEL,
  OMNIQ__PGS_STATUS,
  OMNIQ__PGS_GET_TASK,
  OMNIQ__PGS_GET_RESULT,
  OMNIQ__PGS_PURGE,
  OMNIQ__PGS_COUNT,
  OMNIQ__PGS_EXPIRED,
  OMNIQ__PGS_KEY_TAKE,   /* unique.c */
  OMNIQ__PGS_KEY_HOLDER, /* unique.c */
  OMNIQ__PGS_QUEUE_LOCK, /* queues.c */
  OMNIQ__PGS_QUEUE_WINDOW,
  OMNIQ__PGS_SET_PAUSED,
  OMNIQ__PGS_SET_RATE,
  OMNIQ__PGS_CHORE,
  OMNIQ__PGS_TASK_LOCK, /* manage.c */
  OMNIQ__PGS_RETRY,
  OMNIQ__PGS_DELETE,
  OMNIQ__PGS_PURGE_TASKS,
  OMNIQ__PGS_FINISH_CLAIM1, /* claim.c: an outcome and a claim of one queue */
  OMNIQ__PGS_FINISH_CLAIMN, /* ... of several */
  OMNIQ__PGS_RELEASE,       /* batch.c */
  OMNIQ__PGS_FINISH_MANY,
  OMNIQ__PGS_COUNT_
};

/* The columns every task query returns, in the order omniq__pg_row_task
 * reads them, and those of a result. */
#define OMNIQ__PG_TASK_COLS                                                             \
  "id, func, queue, args, kwargs, status, priority, attempts, max_retries, eta_ms, " \
  "interval_ms, timeout_ms, created_at_ms, started_at_ms, lease_until_ms, token, last_error, " \
  "unique_key, unique_for_ms, cron, crashes, finished_at_ms"
/* As many NULLs as OMNIQ__PG_TASK_COLS has columns: the claim's row that
 * says "a named queue is paused or rate-limited" (claim.c). */
#define OMNIQ__PG_TASK_NULLS \
  "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, " \
  "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"
/* held_due_ms of a key whose task is PENDING or RUNNING: held for ever. */
#define OMNIQ__PG_HELD_FOREVER INT64_MAX
#define OMNIQ__PG_RESULT_COLS \
  "task_id, status, value, error, attempts, finished_at_ms, last_attempt_at_ms"

/* A finish waiting to be committed with others (group.c): its statement's
 * parameters and what it notifies, filled by its owner; rc, err and
 * changed (rows the statement changed) by whoever commits it. */
typedef struct omniq__pg_fin {
  int stmt; /* OMNIQ__PGS_FINISH, or _FINISH_CLAIM1/N: the claim rides along */
  omniq__pg_params_t p;
  int result, pending; /* stores a result; makes the task PENDING again */
  char *json[2];       /* the TaskError texts p points to (omniq__pg_fin_clear) */
  char *err;
  size_t errlen;
  int rc, done;
  int64_t changed;
  PGresult *res; /* a riding claim's rows, for its owner (PQclear) */
  struct omniq__pg_fin *next;
} omniq__pg_fin_t;

/* The finishes of a handle's threads, committed together. `lock` guards
 * the list and `committing`; it is never held across a network call. */
typedef struct omniq__pg_group {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a batch was committed */
  omniq__pg_fin_t *head, **tail;
  int committing;
} omniq__pg_group_t;

int omniq__pg_group_init(omniq__pg_group_t *g); /* 0, or -1 */
void omniq__pg_group_destroy(omniq__pg_group_t *g);
/* For tests: fn (NULL = none) is called, with the group's lock held, each
 * time a finish joins a group's list (committing 0) and each time a thread
 * starts committing a batch (committing 1), so a test waits for the state
 * it needs instead of looking at the list every so often. */
void omniq__pg_set_group_hook(void (*fn)(int committing));

/* An open backend handle. Everything but the pool and the timebase is
 * written at open and only read afterwards. */
typedef struct omniq__pg {
  omniq__pg_pool_t pool;
  omniq__pg_group_t group;
  int group_ready; /* group was initialised */
  omniq__pg_stmt_t stmts[OMNIQ__PGS_COUNT_];
  omniq__pg_timebase_t tb;
  omniq__pg_listener_t *listener;
  char schema[OMNIQ_NAME_MAX];
  char ch_work[OMNIQ_NAME_MAX + 16];
  char ch_result[OMNIQ_NAME_MAX + 16];
} omniq__pg_t;

/* The claim statement texts with "@S" for the schema: one queue ($1 text)
 * or several ($1 text[]); $2 now (server), $3 max, $4 started_at, $5
 * lease_until, $6 lease_until (server). */
extern const char omniq__pg_claim1_sql[];
extern const char omniq__pg_claimn_sql[];
/* The CTEs of an outcome: t, the task row fenced by status and token
 * (RETURNING id, queue, unique_key, unique_for_ms, finished_due_ms); by
 * CTEs of the same statement, only if it matched: the result row, the
 * unique key's hold (until finished_at + unique_for_ms once terminal) and
 * one more run in the queue's running total, on this connection's stripe
 * (schema.c). Parameters as omniq__pg_finish_sql's. The decision's queue
 * (storage ABI 7) is not among them: the UPDATE reads the row anyway and
 * its RETURNING gives the queue, so a hint would save no read here (as it
 * does SQLite's two-statement finish) and only add a miss path
 * (docs/storage-postgres.md). */
#define OMNIQ__PG_FINISH_CTES \
  "t AS (" \
  " UPDATE @S.tasks SET status = $3::int2," \
  " eta_ms = CASE WHEN $3::int2 = 0 THEN $4::int8 ELSE eta_ms END," \
  " due_ms = CASE WHEN $3::int2 = 0 THEN $5::int8 ELSE due_ms END," \
  " attempts = CASE WHEN $6::bool THEN 0 ELSE attempts END," \
  " last_error = COALESCE($7::text, last_error)," \
  " crashes = $15::int4," \
  " finished_at_ms = CASE WHEN $3::int2 >= 2 THEN COALESCE($12::int8, 0) ELSE 0 END," \
  " finished_due_ms = CASE WHEN $3::int2 >= 2 THEN COALESCE($13::int8, 0) ELSE 0 END" \
  " WHERE id = $1::uuid AND token = $2::int8 AND status = 1" \
  " RETURNING id, queue, unique_key, unique_for_ms, finished_due_ms)," \
  " r AS (" \
  " INSERT INTO @S.results (task_id, status, value, error, attempts, finished_at_ms," \
  " finished_due_ms, last_attempt_at_ms)" \
  " SELECT id, $8::int2, $9::bytea, $10::text, $11::int4, $12::int8, $13::int8, $14::int8" \
  " FROM t WHERE $8::int2 IS NOT NULL" \
  " ON CONFLICT (task_id) DO UPDATE SET status = excluded.status," \
  " value = excluded.value, error = excluded.error, attempts = excluded.attempts," \
  " finished_at_ms = excluded.finished_at_ms," \
  " finished_due_ms = excluded.finished_due_ms," \
  " last_attempt_at_ms = excluded.last_attempt_at_ms)," \
  " k AS (" \
  " UPDATE @S.unique_keys u SET held_due_ms = t.finished_due_ms + t.unique_for_ms FROM t" \
  " WHERE $3::int2 >= 2 AND t.unique_key IS NOT NULL AND u.queue = t.queue" \
  " AND u.key = t.unique_key AND u.task_id = t.id)," \
  " n AS (" \
  " INSERT INTO @S.run_totals (queue, kind, stripe, n)" \
  " SELECT queue, $16::int2, (pg_backend_pid() % 64)::int2, 1 FROM t" \
  " ON CONFLICT (queue, kind, stripe) DO UPDATE SET n = @S.run_totals.n + 1)"

/* An outcome: $1 id, $2 token, $3 next status, $4 eta, $5 eta (server),
 * $6 reset attempts, $7 last_error; the result (NULL $8 = none): $8 status,
 * $9 value, $10 error, $11 attempts, $12 finished_at, $13 finished_at
 * (server), $14 last_attempt_at; $15 crashes, $16 the running total's kind.
 * Returns one row: rows changed (0 or 1). */
extern const char omniq__pg_finish_sql[];
/* An outcome ($1-$16 as above) and the claim that rides with it, in one
 * statement (claim.c): $17 the queue (text, or text[] for _claimn), $18
 * now (server), $19 max, $20 started_at, $21 lease_until, $22
 * lease_until (server). Rows: OMNIQ__PG_TASK_COLS, a kind (OMNIQ__PG_FC_*)
 * and, in the one FC_OUTCOME row, the rows the outcome changed. */
extern const char omniq__pg_finish_claim1_sql[];
extern const char omniq__pg_finish_claimn_sql[];
enum { OMNIQ__PG_FC_TASK, OMNIQ__PG_FC_OUTCOME, OMNIQ__PG_FC_LIMITED };
/* The one-task INSERT ($1..$OMNIQ__PG_INSERT_PARAMS in the order of
 * transitions.c). */
extern const char omniq__pg_insert_sql[];
/* Takes a unique key (unique.c): $1 queue, $2 key, $3 task id, $4 the
 * moment judged at (server), $5 held_due_ms from now on. One row back when
 * taken. */
extern const char omniq__pg_key_take_sql[];
/* manage.c: delete ($1 id; one row: the status the task had or NULL,
 * and rows deleted) and retention ($1 before (server), $2 max; one row:
 * tasks deleted). */
extern const char omniq__pg_delete_sql[];
extern const char omniq__pg_purge_tasks_sql[];
/* A listing page's statement for req (yours: omniq__free; NULL on out of
 * memory) and its parameters in *p (borrowing req's strings). */
char *omniq__pg_list_sql(const char *schema, const omniq_list_req_t *req,
                         omniq__pg_params_t *p);
/* Counts by status (no parameters; rows: status, count), and a queue's
 * statistics (queues.c: $1 the queue or NULL, $2 now (server)). */
extern const char omniq__pg_count_sql[];
extern const char omniq__pg_stats_sql[];
/* The expired-lease scan: $1 now (server), $2 max. */
extern const char omniq__pg_expired_sql[];
/* A claim given back (batch.c): $1 id, $2 token; one row when it was. */
extern const char omniq__pg_release_sql[];
/* Many outcomes (batch.c): the parameters of omniq__pg_finish_sql as
 * arrays, one element per outcome; a row (its ordinal, from 1) per outcome
 * that changed its task. */
extern const char omniq__pg_finish_many_sql[];

#define OMNIQ__PG_INSERT_PARAMS 24

/* Names as a text[] literal (yours: omniq__free): each quoted, with " and
 * \ escaped. NULL on out of memory. */
char *omniq__pg_text_array(const char *const *names, size_t n);

/* Writes a formatted message to err; returns rc. */
int omniq__pg_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* OMNIQ_ENOTFOUND if no task has id, else OMNIQ_ESTATE (for a transition
 * that changed no row), with a message naming op; *status (may be NULL)
 * gets the task's status when it exists. */
int omniq__pg_no_row(omniq__pg_t *pg, const char *op, const char *id, int *status, char *err,
                     size_t errlen);

/* Fills f (stmt OMNIQ__PGS_FINISH, p, result, pending, json) for outcome o
 * with err as its message buffer; OMNIQ_EINVAL or OMNIQ_ENOMEM (f then
 * needs no clearing). Clear a filled f with omniq__pg_fin_clear. */
int omniq__pg_fin_fill(omniq__pg_t *pg, const omniq_decision_t *o, omniq__pg_fin_t *f, char *err,
                       size_t errlen);
void omniq__pg_fin_clear(omniq__pg_fin_t *f);
/* What a committed f's outcome returns: OMNIQ_OK if it changed its row,
 * else OMNIQ_ESTATE or OMNIQ_ENOTFOUND (one more read says which). */
int omniq__pg_fin_outcome(omniq__pg_t *pg, const omniq_decision_t *o, omniq__pg_fin_t *f);

/* Commits f (its p, result and pending set) with the finishes other
 * threads of the handle make at the same time, in one transaction when
 * there are several; returns once it committed or failed, with f->rc,
 * f->err and f->changed set. */
void omniq__pg_finish_grouped(omniq__pg_t *pg, omniq__pg_fin_t *f);

/* Measures the clock offset again if it is due (timebase.c). */
void omniq__pg_maybe_resync(omniq__pg_t *pg);

/* A row of OMNIQ__PG_TASK_COLS / _RESULT_COLS (binary) as a record (yours:
 * omniq_task_free / omniq_result_free). OMNIQ_ENOMEM, or OMNIQ_ECORRUPT
 * for a stored error that is not a TaskError. */
int omniq__pg_row_task(const PGresult *r, int row, omniq_task_t **out);
int omniq__pg_row_result(const PGresult *r, int row, omniq_result_t **out);
/* Every row of r as tasks (yours: omniq__tasks_free). */
int omniq__pg_rows_tasks(const PGresult *r, omniq_task_t ***out, size_t *n);

/* Tasks as INSERT parameters (transitions.c): every parameter of n tasks
 * and the texts they point to. */
typedef struct omniq__pg_batch {
  const char **values;
  int *lengths, *formats;
  char (*num)[24];
  char **json; /* last_error texts to free */
  size_t n;
} omniq__pg_batch_t;

/* Fills b for tasks (borrowed while b is used); OMNIQ_ENOMEM or
 * OMNIQ_EINVAL for a task missing a field. Free b with _batch_free either
 * way. */
int omniq__pg_batch_fill(omniq__pg_t *pg, omniq_task_t *const *tasks, size_t n,
                         omniq__pg_batch_t *b);
void omniq__pg_batch_free(omniq__pg_batch_t *b);
/* Inserts the batch on c, which is inside a transaction the caller owns. */
int omniq__pg_insert_on(omniq__pg_t *pg, omniq__pg_conn_t *c, const omniq__pg_batch_t *b,
                        char *err, size_t errlen);
/* The message of a failed enqueue, with a taken id said plainly. */
int omniq__pg_enqueue_error(int rc, char *err, size_t errlen);
/* Sends a pg_notify on channel (a hint: failures are ignored). */
void omniq__pg_hint(omniq__pg_t *pg, const char *channel);

/* Runs BEGIN on a borrowed connection; on OMNIQ_OK *c is in a transaction
 * the caller ends with omniq__pg_tx_end. */
int omniq__pg_tx_begin(omniq__pg_t *pg, omniq__pg_conn_t **c, char *err, size_t errlen);
/* COMMIT when rc is OMNIQ_OK (returning the commit's code), else ROLLBACK
 * (returning rc); the connection goes back to the pool either way. */
int omniq__pg_tx_end(omniq__pg_t *pg, omniq__pg_conn_t *c, int rc, char *err, size_t errlen);

/* The claim of queues that are paused or rate-limited (queues.c): one
 * transaction that locks their settings, takes what they allow and counts
 * it in their windows. Same contract as the claim. */
int omniq__pg_claim_limited(omniq__pg_t *pg, const omniq_claim_req_t *req, omniq_task_t ***out,
                            size_t *n, char *err, size_t errlen);

/* Takes queue's unique key for task id (unique.c) on c, inside the caller's
 * transaction: free when its row's held_due_ms <= at_due (server clock) or
 * it is id's already. held_due: until when it is held from now on. If
 * another task holds it: OMNIQ_EEXISTS, its id in holder (may be NULL). */
int omniq__pg_take_key(omniq__pg_t *pg, omniq__pg_conn_t *c, const char *queue, const char *key,
                       const char *id, int64_t at_due, int64_t held_due,
                       char holder[OMNIQ_ID_SIZE], char *err, size_t errlen);

/* The operations, by file. */
int omniq__pg_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                    char *err, size_t errlen);
int omniq__pg_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                             size_t *n, char *err, size_t errlen);
int omniq__pg_enqueue(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                      size_t errlen);
int omniq__pg_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen);
int omniq__pg_finish_claim(void *backend, const omniq_decision_t *d, const omniq_claim_req_t *req,
                           omniq_task_t ***out, size_t *n, int *claimed, char *err,
                           size_t errlen);
int omniq__pg_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                          const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                          int *claimed, char *err, size_t errlen);
int omniq__pg_give_back(void *backend, const char *id, int64_t token, char *err, size_t errlen);
int omniq__pg_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                           char *err, size_t errlen);
int omniq__pg_cancel(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                     char *err, size_t errlen);
int omniq__pg_purge_results(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                            size_t errlen);
int omniq__pg_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                       size_t errlen);
int omniq__pg_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                         size_t errlen);
int omniq__pg_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                              size_t errlen);
int omniq__pg_enqueue_unique(void *backend, omniq_task_t *const *tasks, size_t n,
                             char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen);
int omniq__pg_list(void *backend, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n,
                   char *err, size_t errlen);
int omniq__pg_retry(void *backend, const char *id, int64_t eta_ms, int64_t now_ms,
                    int *prev_status, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen);
int omniq__pg_delete_task(void *backend, const char *id, int *prev_status, char *err,
                          size_t errlen);
int omniq__pg_purge_tasks(void *backend, int64_t before_ms, size_t max, int64_t *count,
                          char *err, size_t errlen);
int omniq__pg_set_paused(void *backend, const char *queue, int paused, char *err,
                         size_t errlen);
int omniq__pg_set_rate(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                       char *err, size_t errlen);
int omniq__pg_queue_stats(void *backend, const char *queue, int64_t now_ms,
                          omniq_queue_info_t **out, size_t *n, char *err, size_t errlen);
int omniq__pg_claim_chore(void *backend, const char *chore, int64_t now_ms, int64_t next_ms,
                          int *won, char *err, size_t errlen);

#endif
