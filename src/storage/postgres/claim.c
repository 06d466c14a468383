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

#define CLAIM_SQL(queue_match)                                                       \
  "WITH picked AS ("                                                                 \
  " SELECT id FROM @S.tasks"                                                         \
  " WHERE status = 0 AND queue " queue_match " AND due_ms <= $2::int8"               \
  " AND NOT EXISTS (SELECT 1 FROM @S.queues q WHERE q.name " queue_match             \
  " AND (q.paused OR q.rate_limit > 0))"                                             \
  " ORDER BY priority DESC, due_ms, seq"                                             \
  " LIMIT $3::int8"                                                                  \
  " FOR UPDATE SKIP LOCKED),"                                                        \
  " claimed AS ("                                                                    \
  " UPDATE @S.tasks t SET status = 1, attempts = t.attempts + 1, token = t.token + 1," \
  " started_at_ms = $4::int8, lease_until_ms = $5::int8, lease_due_ms = $6::int8"    \
  " WHERE t.id = ANY(ARRAY(SELECT id FROM picked))"                                  \
  " RETURNING t.*)"                                                                  \
  " (SELECT " OMNIQ__PG_TASK_COLS " FROM claimed ORDER BY priority DESC, due_ms, seq)" \
  " UNION ALL (SELECT " OMNIQ__PG_TASK_NULLS " FROM @S.queues q WHERE q.name "       \
  queue_match " AND (q.paused OR q.rate_limit > 0) LIMIT 1)"

const char omniq__pg_claim1_sql[] = CLAIM_SQL("= $1::text");
const char omniq__pg_claimn_sql[] = CLAIM_SQL("= ANY($1::text[])");

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
