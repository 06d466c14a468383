/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: many outcomes and the next claim in one step
 * (finish_many), and a claimed task given back (release).
 *
 * A worker pool that batches its reports hands over up to a few dozen
 * outcomes at once, with a claim of its next tasks. Each outcome alone
 * would cost a transaction: a round trip, a WAL flush the runner waits
 * for, a notification. Here the whole step is one pipeline on one
 * connection: every outcome's own finish statement (the prepared
 * OMNIQ__PGS_FINISH, so a batched outcome has every effect a lone one has:
 * its result row, the running total, a unique key's hold, a retry's or a
 * re-armed interval's new eta), then the claim statement, then one sync.
 * Statements up to a sync are one implicit transaction, so the batch
 * commits once or not at all, and the wake-ups follow it once per batch
 * (conn.c). The claim runs after the outcomes inside that transaction and
 * sees them: a retry due now is claimed again at once, and a task finished
 * in the batch is never claimed.
 *
 * Fences: each outcome keeps its own claim-token check. A stale one
 * changes no row and does not fail the statement, so the others and the
 * claim commit; it gets OMNIQ_ESTATE or OMNIQ_ENOTFOUND after the commit
 * (one read, off the hot path). A statement the server refuses (a bad
 * value, a deadlock on a running-total stripe shared with another
 * connection) rolls the whole batch back; then each outcome is committed
 * on its own through the group commit (group.c), so one bad outcome never
 * fails another, and the claim is left to the caller. Outcomes are sent in
 * order of their running-total kind, so two batches on one stripe take
 * its rows in the same order. A batch whose connection died in flight may
 * or may not have committed: every outcome gets that code and message,
 * and the claim tokens make the caller's repeat safe.
 *
 * Release undoes a claim whose task never started: RUNNING under its
 * token back to PENDING, the attempt it counted taken back and the token
 * moved on, so the old claim can neither finish nor extend it. Its eta
 * and due time stay, so it is due at once for any worker, which the work
 * channel tells. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/postgres/postgres.h"

const char omniq__pg_release_sql[] =
    "UPDATE @S.tasks SET status = 0, attempts = attempts - 1, token = token + 1,"
    " lease_until_ms = 0, lease_due_ms = 0"
    " WHERE id = $1::uuid AND token = $2::int8 AND status = 1 RETURNING 1";

/* What one call holds: the outcomes' statements and their messages, in
 * the order they are sent (at[k] is the decision sent k-th), and the
 * claim's parameters. */
typedef struct {
  size_t n;
  omniq__pg_fin_t *fins;            /* by decision */
  char (*errs)[OMNIQ__ERRMSG_MAX];  /* by decision */
  size_t *at;
  int *stmts;                       /* n outcomes, then the claim if any */
  const omniq__pg_params_t **ps;
  PGresult **res;
  omniq__pg_params_t claim;
  char *array; /* the claim's text[] of queues */
  int with_claim;
} many_t;

static void many_free(many_t *m, size_t filled) {
  for (size_t i = 0; i < filled; i++) omniq__pg_fin_clear(&m->fins[i]);
  omniq__free(m->fins);
  omniq__free(m->errs);
  omniq__free(m->at);
  omniq__free(m->stmts);
  omniq__free(m->ps);
  omniq__free(m->res);
  omniq__free(m->array);
}

static int many_alloc(many_t *m, size_t n) {
  memset(m, 0, sizeof *m);
  m->n = n;
  m->fins = omniq__calloc(n, sizeof *m->fins);
  m->errs = omniq__calloc(n, sizeof *m->errs);
  m->at = omniq__calloc(n, sizeof *m->at);
  m->stmts = omniq__calloc(n + 1, sizeof *m->stmts);
  m->ps = omniq__calloc(n + 1, sizeof *m->ps);
  m->res = omniq__calloc(n + 1, sizeof *m->res);
  return m->fins && m->errs && m->at && m->stmts && m->ps && m->res ? OMNIQ_OK : OMNIQ_ENOMEM;
}

/* The claim statement of req and its parameters, as omniq__pg_claim sends
 * them; 0 when the claim cannot ride (nothing wanted, no memory: the
 * caller then claims as usual). */
static int claim_fill(omniq__pg_t *pg, const omniq_claim_req_t *req, many_t *m) {
  omniq__pg_params_t *p = &m->claim;
  if (req == NULL || req->max == 0 || req->nqueues == 0 || req->queues == NULL) return 0;
  omniq__pg_params_init(p);
  if (req->nqueues == 1) {
    m->stmts[m->n] = OMNIQ__PGS_CLAIM1;
    omniq__pg_param_text(p, req->queues[0]);
  } else if ((m->array = omniq__pg_text_array(req->queues, req->nqueues)) != NULL) {
    m->stmts[m->n] = OMNIQ__PGS_CLAIMN;
    omniq__pg_param_text(p, m->array);
  } else {
    return 0;
  }
  omniq__pg_param_i64(p, omniq__pg_server_ms(&pg->tb, req->now_ms));
  omniq__pg_param_i64(p, req->max > INT64_MAX ? INT64_MAX : (int64_t)req->max);
  omniq__pg_param_i64(p, req->now_ms);
  omniq__pg_param_i64(p, req->lease_until_ms);
  omniq__pg_param_i64(p, omniq__pg_server_ms(&pg->tb, req->lease_until_ms));
  m->ps[m->n] = p;
  return 1;
}

/* Sending order: by running-total kind (one pass per kind; the engine
 * uses OMNIQ_RUNS_KINDS of them), then as given. */
static void order_by_kind(const omniq_decision_t *ds, many_t *m) {
  size_t k = 0;
  for (int kind = 0; kind < OMNIQ_RUNS_KINDS; kind++)
    for (size_t i = 0; i < m->n; i++)
      if (ds[i].runs == kind) m->at[k++] = i;
  for (size_t i = 0; i < m->n; i++) /* any other kind: last, as given */
    if (ds[i].runs < 0 || ds[i].runs >= OMNIQ_RUNS_KINDS) m->at[k++] = i;
}

/* The claim's rows of a committed batch: *claimed unless a named queue is
 * paused or rate-limited (the statement then took nothing and says so
 * with a row of NULLs; the caller's own claim goes the slow way). Tasks
 * committed RUNNING but unreadable (no memory) come back when their
 * leases expire, as a dead worker's would. */
static void claim_take(PGresult *r, omniq_task_t ***out, size_t *n, int *claimed) {
  int rows = PQntuples(r);
  if (rows > 0 && PQgetisnull(r, rows - 1, 0)) return;
  *claimed = omniq__pg_rows_tasks(r, out, n) == OMNIQ_OK;
}

/* Each outcome committed on its own (the batch was rolled back). */
static void each_alone(omniq__pg_t *pg, const omniq_decision_t *ds, many_t *m, int *rcs) {
  for (size_t i = 0; i < m->n; i++) {
    omniq__pg_fin_t *f = &m->fins[i];
    PQclear(f->res);
    f->res = NULL;
    omniq__pg_finish_grouped(pg, f);
    rcs[i] = omniq__pg_fin_outcome(pg, &ds[i], f);
  }
}

int omniq__pg_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                          const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                          int *claimed, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  many_t m;
  size_t filled = 0;
  int result = 0, work = 0, unknown = 0;
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  if (n == 0) {
    if (req == NULL || req->max == 0) return OMNIQ_OK;
    int rc = omniq__pg_claim(backend, req, out, nout, err, errlen);
    *claimed = rc == OMNIQ_OK;
    return rc;
  }
  omniq__pg_maybe_resync(pg);
  int rc = many_alloc(&m, n);
  if (rc != OMNIQ_OK) omniq__pg_errf(rc, err, errlen, "postgres: finish_many: out of memory");
  for (; rc == OMNIQ_OK && filled < n; filled++) {
    rc = omniq__pg_fin_fill(pg, &ds[filled], &m.fins[filled], err, errlen);
    if (rc != OMNIQ_OK) break; /* f needs no clearing */
    m.fins[filled].err = m.errs[filled];
    m.fins[filled].errlen = sizeof m.errs[filled];
    result |= m.fins[filled].result;
    work |= m.fins[filled].pending;
  }
  if (rc != OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
    many_free(&m, filled);
    return rc;
  }
  order_by_kind(ds, &m);
  for (size_t k = 0; k < n; k++) {
    m.stmts[k] = OMNIQ__PGS_FINISH;
    m.ps[k] = &m.fins[m.at[k]].p;
  }
  m.with_claim = claim_fill(pg, req, &m);
  const char *notify[3] = {NULL, NULL, NULL};
  int nn = 0;
  if (result) notify[nn++] = pg->ch_result;
  if (work) notify[nn++] = pg->ch_work;
  rc = omniq__pg_exec_batch(&pg->pool, m.stmts, m.ps, n + (size_t)m.with_claim,
                            nn > 0 ? notify : NULL, "finish_many", m.res, &unknown, err,
                            errlen);
  if (rc == OMNIQ_OK) {
    for (size_t k = 0; k < n; k++) {
      omniq__pg_fin_t *f = &m.fins[m.at[k]];
      f->rc = OMNIQ_OK;
      f->changed = PQntuples(m.res[k]) == 1 ? omniq__pg_i64(m.res[k], 0, 0) : 0;
      PQclear(m.res[k]);
    }
    if (m.with_claim) {
      claim_take(m.res[n], out, nout, claimed);
      PQclear(m.res[n]);
    }
    for (size_t i = 0; i < n; i++) rcs[i] = omniq__pg_fin_outcome(pg, &ds[i], &m.fins[i]);
  } else if (!unknown) {
    each_alone(pg, ds, &m, rcs);
  } else {
    size_t len = strlen(err);
    snprintf(err + len, errlen - len,
             " (connection lost with the batch in flight: it may or may not have taken effect)");
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
    many_free(&m, filled);
    return rc;
  }
  err[0] = '\0';
  for (size_t i = 0; i < n; i++)
    if (rcs[i] != OMNIQ_OK) {
      snprintf(err, errlen, "%s", m.errs[i]);
      break;
    }
  many_free(&m, filled);
  return OMNIQ_OK;
}

int omniq__pg_give_back(void *backend, const char *id, int64_t token, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  const char *notify[] = {pg->ch_work, NULL};
  omniq__pg_params_t p;
  PGresult *r;
  if (id == NULL || !omniq_id_valid(id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "release: malformed task id");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  omniq__pg_param_i64(&p, token);
  /* Not repeated after a lost connection: a release that did commit would
   * then be refused, its token having moved on. */
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_RELEASE, &p, OMNIQ__PG_ONCE, notify, "release",
                          &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int changed = PQntuples(r);
  PQclear(r);
  if (changed != 1)
    return omniq__pg_errf(OMNIQ_ESTATE, err, errlen,
                          "release %s: not running under claim token %lld; nothing changed", id,
                          (long long)token);
  return OMNIQ_OK;
}
