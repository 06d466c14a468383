/* PostgreSQL backend internals, shared by its files:
 *   backend.c      open/close, the statement table, the operations table
 *   claim.c        the claim and the expired-lease scan (SQL texts exposed
 *                  for the query-plan test)
 *   transitions.c  enqueue, outcomes, extend_lease, cancel, purge
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
  OMNIQ__PGS_COUNT_
};

/* The columns every task query returns, in the order omniq__pg_row_task
 * reads them, and those of a result. */
#define OMNIQ__PG_TASK_COLS                                                             \
  "id, func, queue, args, kwargs, status, priority, attempts, max_retries, eta_ms, " \
  "interval_ms, timeout_ms, created_at_ms, started_at_ms, lease_until_ms, token, last_error"
#define OMNIQ__PG_RESULT_COLS \
  "task_id, status, value, error, attempts, finished_at_ms, last_attempt_at_ms"

/* An open backend handle. Everything but the pool and the timebase is
 * written at open and only read afterwards. */
typedef struct omniq__pg {
  omniq__pg_pool_t pool;
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
/* An outcome: $1 id, $2 token, $3 next status, $4 eta, $5 eta (server),
 * $6 reset attempts, $7 last_error; the result (NULL $8 = none): $8 status,
 * $9 value, $10 error, $11 attempts, $12 finished_at, $13 finished_at
 * (server), $14 last_attempt_at. Returns one row: rows changed (0 or 1). */
extern const char omniq__pg_finish_sql[];
/* The one-task INSERT ($1..$18 in the order of transitions.c). */
extern const char omniq__pg_insert_sql[];
/* The expired-lease scan: $1 now (server), $2 max. */
extern const char omniq__pg_expired_sql[];

/* Writes a formatted message to err; returns rc. */
int omniq__pg_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* OMNIQ_ENOTFOUND if no task has id, else OMNIQ_ESTATE (for a transition
 * that changed no row), with a message naming op; *status (may be NULL)
 * gets the task's status when it exists. */
int omniq__pg_no_row(omniq__pg_t *pg, const char *op, const char *id, int *status, char *err,
                     size_t errlen);

/* Measures the clock offset again if it is due (timebase.c). */
void omniq__pg_maybe_resync(omniq__pg_t *pg);

/* A row of OMNIQ__PG_TASK_COLS / _RESULT_COLS (binary) as a record (yours:
 * omniq_task_free / omniq_result_free). OMNIQ_ENOMEM, or OMNIQ_ECORRUPT
 * for a stored error that is not a TaskError. */
int omniq__pg_row_task(const PGresult *r, int row, omniq_task_t **out);
int omniq__pg_row_result(const PGresult *r, int row, omniq_result_t **out);
/* Every row of r as tasks (yours: omniq__tasks_free). */
int omniq__pg_rows_tasks(const PGresult *r, omniq_task_t ***out, size_t *n);

/* The operations, by file. */
int omniq__pg_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                    char *err, size_t errlen);
int omniq__pg_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                             size_t *n, char *err, size_t errlen);
int omniq__pg_enqueue(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                      size_t errlen);
int omniq__pg_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen);
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

#endif
