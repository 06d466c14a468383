/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: claiming due tasks, and finding expired leases.
 *
 * A claim is one statement: a CTE picks up to max due PENDING rows in claim
 * order with FOR UPDATE SKIP LOCKED, and an UPDATE of the same statement
 * makes them RUNNING (attempts + 1, token + 1, lease set). SKIP LOCKED lets
 * claimers on any number of connections and hosts walk the same index
 * without waiting on one another: a row another claimer has locked is
 * passed over, and one it has already committed no longer matches
 * `status = 0` when re-checked after the lock. The order of RETURNING rows
 * is unspecified, so the outer SELECT sorts the batch again. The UPDATE
 * finds the picked rows through `id = ANY(ARRAY(...))`, which is always an
 * index lookup by primary key: written as a join, the generic plan (which
 * cannot see LIMIT's value) hashes the whole table instead.
 *
 * The walk is over tasks_due (queue, priority DESC, due_ms, seq) WHERE
 * status = 0, so it costs O(log n) in pending tasks plus the rows it skips.
 * With one queue the index gives the claim order directly and the LIMIT
 * stops the scan; with several (queue = ANY) PostgreSQL 15 reads each
 * queue's due entries and sorts them. tests/test_pg_store.c checks the plan.
 *
 * Paused and rate-limited queues: the walk runs only if none of the named
 * queues is either (an uncorrelated NOT EXISTS, which the planner turns
 * into a one-time filter over the scan, so a claim of an ordinary queue
 * pays one primary-key probe of the small queues table). Otherwise the
 * statement takes nothing and adds one row of NULLs, and the claim goes to
 * queues.c, which locks those queues' settings for the count.
 *
 * Times: `now` and the lease's end are mapped onto the server's clock
 * (due_ms, lease_due_ms); started_at_ms and lease_until_ms keep the
 * handle's own values, which is what the claimer reads back.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/postgres/postgres.h"

/* The claim's CTEs, picked and claimed: queue_match compares with the
 * queue parameter, NOW/MAX/STARTED/LEASE/LEASE_DUE are the numbers of the
 * other parameters, and guard is a condition the walk also needs (a
 * one-time filter, or ""). */
#define CLAIM_CTES(queue_match, NOW, MAX, STARTED, LEASE, LEASE_DUE, guard)         \
  "picked AS ("                                                                      \
  " SELECT id FROM @S.tasks"                                                         \
  " WHERE status = 0 AND queue " queue_match " AND due_ms <= $" #NOW "::int8"        \
  " AND NOT EXISTS (SELECT 1 FROM @S.queues q WHERE q.name " queue_match             \
  " AND (q.paused OR q.rate_limit > 0))" guard                                       \
  " ORDER BY priority DESC, due_ms, seq"                                             \
  " LIMIT $" #MAX "::int8"                                                           \
  " FOR UPDATE SKIP LOCKED),"                                                        \
  " claimed AS ("                                                                    \
  " UPDATE @S.tasks t SET status = 1, attempts = t.attempts + 1, token = t.token + 1," \
  " started_at_ms = $" #STARTED "::int8, lease_until_ms = $" #LEASE "::int8,"        \
  " lease_due_ms = $" #LEASE_DUE "::int8"                                            \
  " WHERE t.id = ANY(ARRAY(SELECT id FROM picked))"                                  \
  " RETURNING t.*)"
/* The row that says "a named queue is paused or rate-limited". */
#define LIMITED_ROW(queue_match, cols, guard)                                        \
  "(SELECT " cols " FROM @S.queues q WHERE q.name " queue_match                       \
  " AND (q.paused OR q.rate_limit > 0)" guard " LIMIT 1)"

#define CLAIM_SQL(queue_match)                                                       \
  "WITH " CLAIM_CTES(queue_match, 2, 3, 4, 5, 6, "")                                 \
  " (SELECT " OMNIQ__PG_TASK_COLS " FROM claimed ORDER BY priority DESC, due_ms, seq)" \
  " UNION ALL " LIMITED_ROW(queue_match, OMNIQ__PG_TASK_NULLS, "")

const char omniq__pg_claim1_sql[] = CLAIM_SQL("= $1::text");
const char omniq__pg_claimn_sql[] = CLAIM_SQL("= ANY($1::text[])");

/* An outcome and, only if it matched (EXISTS t: a one-time filter), the
 * claim, in one statement. The claim's snapshot is the statement's, taken
 * before the outcome: the finished task, RUNNING in it, is never claimed
 * again by its own report. Rows: the claimed tasks (kind FC_TASK), the
 * limited row (FC_LIMITED), and always one row of kind FC_OUTCOME whose
 * last column is the number of rows the outcome changed. */
#define FINISH_CLAIM_SQL(queue_match)                                                \
  "WITH " OMNIQ__PG_FINISH_CTES ", "                                                  \
  CLAIM_CTES(queue_match, 18, 19, 20, 21, 22, " AND EXISTS (SELECT 1 FROM t)")        \
  " (SELECT " OMNIQ__PG_TASK_COLS ", 0::int2, 0::int8 FROM claimed"                   \
  " ORDER BY priority DESC, due_ms, seq)"                                            \
  " UNION ALL " LIMITED_ROW(queue_match, OMNIQ__PG_TASK_NULLS ", 2::int2, 0::int8",   \
                            " AND EXISTS (SELECT 1 FROM t)")                          \
  " UNION ALL (SELECT " OMNIQ__PG_TASK_NULLS ", 1::int2, count(*) FROM t)"

const char omniq__pg_finish_claim1_sql[] = FINISH_CLAIM_SQL("= $17::text");
const char omniq__pg_finish_claimn_sql[] = FINISH_CLAIM_SQL("= ANY($17::text[])");

/* Over tasks_running: every running task (at most the workers' slots),
 * filtered and sorted; no index on lease_due_ms, so that extending a lease
 * is a HOT update (schema.c, version 3). */
const char omniq__pg_expired_sql[] =
    "SELECT " OMNIQ__PG_TASK_COLS " FROM @S.tasks"
    " WHERE status = 1 AND lease_due_ms < $1::int8"
    " ORDER BY lease_due_ms, seq LIMIT $2::int8";

char *omniq__pg_text_array(const char *const *queues, size_t n) {
  size_t len = 3;
  for (size_t i = 0; i < n; i++) len += 2 * strlen(queues[i]) + 3;
  char *out = omniq__malloc(len), *o = out;
  if (out == NULL) return NULL;
  *o++ = '{';
  for (size_t i = 0; i < n; i++) {
    if (i > 0) *o++ = ',';
    *o++ = '"';
    for (const char *q = queues[i]; *q; q++) {
      if (*q == '"' || *q == '\\') *o++ = '\\';
      *o++ = *q;
    }
    *o++ = '"';
  }
  *o++ = '}';
  *o = '\0';
  return out;
}

int omniq__pg_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                    char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  char *array = NULL;
  PGresult *r;
  *out = NULL;
  *n = 0;
  if (req->nqueues == 0 || req->queues == NULL)
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "claim: no queue named");
  if (req->max == 0) return OMNIQ_OK;
  omniq__pg_maybe_resync(pg);
  omniq__pg_params_init(&p);
  if (req->nqueues == 1) {
    omniq__pg_param_text(&p, req->queues[0]);
  } else {
    if ((array = omniq__pg_text_array(req->queues, req->nqueues)) == NULL)
      return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: claim: out of memory");
    omniq__pg_param_text(&p, array);
  }
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, req->now_ms));
  omniq__pg_param_i64(&p, (int64_t)req->max);
  omniq__pg_param_i64(&p, req->now_ms);
  omniq__pg_param_i64(&p, req->lease_until_ms);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, req->lease_until_ms));
  /* A claim lost with its connection is repeated: if the first one did
   * commit, its tasks have a lease nobody extends and are recovered when it
   * expires, as if their worker had died; no task runs twice. */
  int rc = omniq__pg_exec(&pg->pool, req->nqueues == 1 ? OMNIQ__PGS_CLAIM1 : OMNIQ__PGS_CLAIMN,
                          &p, OMNIQ__PG_IDEMPOTENT, NULL, "claim", &r, err, errlen);
  omniq__free(array);
  if (rc != OMNIQ_OK) return rc;
  /* A row of NULLs: a named queue is paused or rate-limited, and the
   * statement took nothing; the slow path decides. */
  if (PQntuples(r) > 0 && PQgetisnull(r, PQntuples(r) - 1, 0)) {
    PQclear(r);
    return omniq__pg_claim_limited(pg, req, out, n, err, errlen);
  }
  rc = omniq__pg_rows_tasks(r, out, n);
  PQclear(r);
  if (rc != OMNIQ_OK) omniq__pg_errf(rc, err, errlen, "postgres: claim: cannot read a claimed row");
  return rc;
}

int omniq__pg_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                             size_t *n, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  *out = NULL;
  *n = 0;
  if (max == 0) return OMNIQ_OK;
  omniq__pg_params_init(&p);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, now_ms));
  omniq__pg_param_i64(&p, (int64_t)max);
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_EXPIRED, &p, OMNIQ__PG_IDEMPOTENT, NULL,
                          "expired_leases", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__pg_rows_tasks(r, out, n);
  PQclear(r);
  if (rc != OMNIQ_OK)
    omniq__pg_errf(rc, err, errlen, "postgres: expired_leases: cannot read a row");
  return rc;
}

/* ---- riding with an outcome ---------------------------------------------- */

/* The claimed tasks of a finish_claim statement's rows; *limited when a
 * named queue is paused or rate-limited (nothing was taken). */
static int riding_tasks(const PGresult *r, omniq_task_t ***out, size_t *n, int *limited) {
  int kind = PQnfields(r) - 2, rows = PQntuples(r);
  *out = NULL;
  *n = 0;
  *limited = 0;
  for (int row = 0; row < rows; row++)
    *limited |= omniq__pg_i64(r, row, kind) == OMNIQ__PG_FC_LIMITED;
  if (*limited || rows <= 1) return OMNIQ_OK;
  omniq_task_t **tasks = omniq__calloc((size_t)rows, sizeof *tasks);
  if (tasks == NULL) return OMNIQ_ENOMEM;
  for (int row = 0; row < rows; row++) {
    if (omniq__pg_i64(r, row, kind) != OMNIQ__PG_FC_TASK) continue;
    int rc = omniq__pg_row_task(r, row, &tasks[*n]);
    if (rc != OMNIQ_OK) {
      omniq__tasks_free(tasks, *n);
      *n = 0;
      return rc;
    }
    (*n)++;
  }
  *out = tasks;
  return OMNIQ_OK;
}

int omniq__pg_finish_claim(void *backend, const omniq_decision_t *d, const omniq_claim_req_t *req,
                           omniq_task_t ***out, size_t *n, int *claimed, char *err,
                           size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_fin_t f;
  char *array = NULL;
  int limited;
  *out = NULL;
  *n = 0;
  *claimed = 0;
  /* The claim sees the statement's snapshot, from before the outcome: a
   * task the outcome makes due again (a retry without delay) would be
   * missed, and a drain would end with it pending. Such an outcome goes
   * alone and the caller's claim, a statement later, finds it. */
  if (req == NULL || req->max == 0 || req->nqueues == 0 || req->queues == NULL ||
      (d->next_status == OMNIQ_PENDING && d->eta_ms <= req->now_ms))
    return omniq__pg_finish(backend, d, err, errlen);
  int rc = omniq__pg_fin_fill(pg, d, &f, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  omniq__pg_maybe_resync(pg);
  if (req->nqueues == 1) {
    f.stmt = OMNIQ__PGS_FINISH_CLAIM1;
    omniq__pg_param_text(&f.p, req->queues[0]);
  } else if ((array = omniq__pg_text_array(req->queues, req->nqueues)) != NULL) {
    f.stmt = OMNIQ__PGS_FINISH_CLAIMN;
    omniq__pg_param_text(&f.p, array);
  } else { /* no memory for the claim: the outcome goes alone */
    omniq__pg_fin_clear(&f);
    return omniq__pg_finish(backend, d, err, errlen);
  }
  omniq__pg_param_i64(&f.p, omniq__pg_server_ms(&pg->tb, req->now_ms));
  omniq__pg_param_i64(&f.p, req->max > INT64_MAX ? INT64_MAX : (int64_t)req->max);
  omniq__pg_param_i64(&f.p, req->now_ms);
  omniq__pg_param_i64(&f.p, req->lease_until_ms);
  omniq__pg_param_i64(&f.p, omniq__pg_server_ms(&pg->tb, req->lease_until_ms));
  omniq__pg_finish_grouped(pg, &f);
  omniq__free(array);
  rc = omniq__pg_fin_outcome(pg, d, &f);
  /* The claim was made only with the outcome; a limited queue's claim
   * took nothing, and the caller's own claim goes the slow way. */
  if (rc == OMNIQ_OK && riding_tasks(f.res, out, n, &limited) == OMNIQ_OK) {
    *claimed = !limited;
  } else if (rc == OMNIQ_OK) {
    /* Committed RUNNING but unreadable (no memory): they come back when
     * their leases expire, as a dead worker's would. */
    *claimed = 0;
  }
  omniq__pg_fin_clear(&f);
  return rc;
}
