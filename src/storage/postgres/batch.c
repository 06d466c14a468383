/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: many outcomes and the next claim in one step
 * (finish_many), and a claimed task given back (release).
 *
 * A worker pool that batches its reports hands over up to a few dozen
 * outcomes at once, with a claim of its next tasks. Each outcome alone
 * would cost a transaction: a round trip, a WAL flush the runner waits
 * for, a notification, and the server's work per statement. Here the
 * whole step is two statements in one pipeline on one connection: one
 * statement applies every outcome, its decisions sent as arrays (one per
 * field) and read back as rows with unnest; the claim statement follows;
 * then one sync. Statements up to a sync are one implicit transaction, so
 * the batch commits once or not at all, and the wake-ups follow it once
 * per batch (conn.c). The claim runs after the outcomes inside that
 * transaction and sees them: a retry due at once is claimed again in the
 * same step, and a task finished in the batch is never claimed.
 *
 * The outcomes' statement does what the lone outcome statement
 * (OMNIQ__PG_FINISH_CTES) does, for every row at once: the task rows,
 * each fenced by its own status and token; the result rows and the
 * unique keys' holds of the rows that matched; and the running totals,
 * one upsert per queue and kind (not per task: 64 updates of one total in
 * a transaction would leave 64 row versions), in queue and kind order, so
 * two batches that share a running-total stripe take its rows in the same
 * order. It returns the ordinal of each decision that changed its row.
 *
 * Fences: a stale decision changes no row and does not fail the
 * statement, so the others and the claim commit; it gets OMNIQ_ESTATE or
 * OMNIQ_ENOTFOUND after the commit (one read, off the hot path). A
 * statement the server refuses (a bad value, a deadlock) rolls the whole
 * batch back; then each outcome is committed on its own through the
 * group commit (group.c), so one bad outcome never fails another, and the
 * claim is left to the caller. A batch whose connection died in flight
 * may or may not have committed: every outcome gets that code and
 * message, and the claim tokens make the caller's repeat safe.
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

/* $1 ids, $2 tokens, $3 next statuses, $4 etas, $5 etas (server), $6
 * attempts reset, $7 last errors; the results (NULL status = none): $8
 * statuses, $9 values, $10 errors, $11 attempts, $12 finished_at, $13
 * finished_at (server), $14 last_attempt_at; $15 crashes, $16 running-total
 * kinds: as omniq__pg_finish_sql's parameters, one array element per
 * decision. */
const char omniq__pg_finish_many_sql[] =
    "WITH d AS ("
    " SELECT * FROM unnest($1::uuid[], $2::int8[], $3::int2[], $4::int8[], $5::int8[],"
    " $6::bool[], $7::text[], $8::int2[], $9::bytea[], $10::text[], $11::int4[], $12::int8[],"
    " $13::int8[], $14::int8[], $15::int4[], $16::int2[]) WITH ORDINALITY"
    " AS d(id, token, st, eta, due, reset, lerr, rst, val, rerr, ratt, fin, fin_due, last,"
    " crashes, kind, ord)),"
    " t AS ("
    " UPDATE @S.tasks k SET status = d.st,"
    " eta_ms = CASE WHEN d.st = 0 THEN d.eta ELSE k.eta_ms END,"
    " due_ms = CASE WHEN d.st = 0 THEN d.due ELSE k.due_ms END,"
    " attempts = CASE WHEN d.reset THEN 0 ELSE k.attempts END,"
    " last_error = COALESCE(d.lerr, k.last_error), crashes = d.crashes,"
    " finished_at_ms = CASE WHEN d.st >= 2 THEN COALESCE(d.fin, 0) ELSE 0 END,"
    " finished_due_ms = CASE WHEN d.st >= 2 THEN COALESCE(d.fin_due, 0) ELSE 0 END"
    /* ANY($1): the rows looked up by id in an index, whatever plan the join gets. */
    " FROM d WHERE k.id = ANY($1::uuid[]) AND k.id = d.id AND k.token = d.token"
    " AND k.status = 1"
    " RETURNING k.id, k.queue, k.unique_key, k.unique_for_ms, k.finished_due_ms, d.st, d.rst,"
    " d.val, d.rerr, d.ratt, d.fin, d.fin_due, d.last, d.kind, d.ord),"
    " r AS ("
    " INSERT INTO @S.results (task_id, status, value, error, attempts, finished_at_ms,"
    " finished_due_ms, last_attempt_at_ms)"
    " SELECT id, rst, val, rerr, ratt, fin, fin_due, last FROM t WHERE rst IS NOT NULL"
    " ON CONFLICT (task_id) DO UPDATE SET status = excluded.status,"
    " value = excluded.value, error = excluded.error, attempts = excluded.attempts,"
    " finished_at_ms = excluded.finished_at_ms,"
    " finished_due_ms = excluded.finished_due_ms,"
    " last_attempt_at_ms = excluded.last_attempt_at_ms),"
    " k AS ("
    " UPDATE @S.unique_keys u SET held_due_ms = t.finished_due_ms + t.unique_for_ms FROM t"
    " WHERE t.st >= 2 AND t.unique_key IS NOT NULL AND u.queue = t.queue"
    " AND u.key = t.unique_key AND u.task_id = t.id),"
    " n AS ("
    " INSERT INTO @S.run_totals (queue, kind, stripe, n)"
    " SELECT queue, kind, (pg_backend_pid() % 64)::int2, count(*) FROM t"
    " GROUP BY queue, kind ORDER BY queue, kind"
    " ON CONFLICT (queue, kind, stripe) DO UPDATE SET n = @S.run_totals.n + excluded.n)"
    " SELECT ord FROM t";

const char omniq__pg_release_sql[] =
    "UPDATE @S.tasks SET status = 0, attempts = attempts - 1, token = token + 1,"
    " lease_until_ms = 0, lease_due_ms = 0"
    " WHERE id = $1::uuid AND token = $2::int8 AND status = 1 RETURNING 1";

/* A text-format array literal, built element by element. */
typedef struct {
  char *s;
  size_t len, cap;
  int n, oom;
} arr_t;

static void arr_put(arr_t *a, const char *s, size_t n) {
  if (a->oom) return;
  if (a->len + n + 2 > a->cap) { /* room for "}" and the NUL too */
    size_t cap = a->cap ? a->cap : 64;
    while (a->len + n + 2 > cap) cap *= 2;
    char *grown = omniq__realloc(a->s, cap);
    if (grown == NULL) {
      a->oom = 1;
      return;
    }
    a->s = grown;
    a->cap = cap;
  }
  memcpy(a->s + a->len, s, n);
  a->len += n;
}

static void arr_next(arr_t *a) { arr_put(a, a->n++ ? "," : "{", 1); }

static void arr_i64(arr_t *a, int64_t v) {
  char num[24];
  arr_next(a);
  arr_put(a, num, (size_t)snprintf(num, sizeof num, "%lld", (long long)v));
}

/* A string, quoted ('"' and '\' escaped), or NULL. */
static void arr_text(arr_t *a, const char *s) {
  arr_next(a);
  if (s == NULL) {
    arr_put(a, "NULL", 4);
    return;
  }
  arr_put(a, "\"", 1);
  for (const char *run = s;; s++) {
    if (*s != '\0' && *s != '"' && *s != '\\') continue;
    arr_put(a, run, (size_t)(s - run));
    if (*s == '\0') break;
    arr_put(a, "\\", 1);
    run = s;
  }
  arr_put(a, "\"", 1);
}

/* Bytes as a bytea in hex ("\\x..." inside the quotes), or NULL. */
static void arr_bytes(arr_t *a, const char *s) {
  static const char hex[] = "0123456789abcdef";
  arr_next(a);
  if (s == NULL) {
    arr_put(a, "NULL", 4);
    return;
  }
  arr_put(a, "\"\\\\x", 4);
  for (; *s; s++) {
    char pair[2] = {hex[(unsigned char)*s >> 4], hex[*s & 15]};
    arr_put(a, pair, 2);
  }
  arr_put(a, "\"", 1);
}

/* The literal, or NULL on out of memory. */
static const char *arr_end(arr_t *a) {
  if (a->n == 0) arr_put(a, "{", 1);
  arr_put(a, "}", 1);
  if (a->oom) return NULL;
  a->s[a->len] = '\0';
  return a->s;
}

/* The outcomes' statement's 16 arrays (omniq__pg_finish_many_sql). */
enum { A_ID, A_TOKEN, A_ST, A_ETA, A_DUE, A_RESET, A_LERR, A_RST, A_VAL, A_RERR, A_RATT, A_FIN,
       A_FIN_DUE, A_LAST, A_CRASHES, A_KIND, A_COUNT_ };

/* What one call holds: each outcome's lone statement (for the way back
 * when the batch is refused) and message, and both statements'
 * parameters. */
typedef struct {
  size_t n;
  omniq__pg_fin_t *fins;           /* by decision */
  char (*errs)[OMNIQ__ERRMSG_MAX]; /* by decision */
  arr_t arrays[A_COUNT_];
  omniq__pg_params_t outcomes, claim;
  char *queues; /* the claim's text[] of queues */
} many_t;

static void many_free(many_t *m, size_t filled) {
  for (size_t i = 0; i < filled; i++) omniq__pg_fin_clear(&m->fins[i]);
  for (int j = 0; j < A_COUNT_; j++) omniq__free(m->arrays[j].s);
  omniq__free(m->fins);
  omniq__free(m->errs);
  omniq__free(m->queues);
}

/* The arrays of decisions ds (checked by omniq__pg_fin_fill) into
 * m->outcomes; OMNIQ_ENOMEM. */
static int outcomes_fill(omniq__pg_t *pg, const omniq_decision_t *ds, many_t *m) {
  arr_t *a = m->arrays;
  omniq__pg_params_init(&m->outcomes);
  for (size_t i = 0; i < m->n; i++) {
    const omniq_decision_t *d = &ds[i];
    const omniq_result_t *res = d->result;
    arr_text(&a[A_ID], d->id);
    arr_i64(&a[A_TOKEN], d->token);
    arr_i64(&a[A_ST], d->next_status);
    arr_i64(&a[A_ETA], d->eta_ms);
    arr_i64(&a[A_DUE], omniq__pg_server_ms(&pg->tb, d->eta_ms));
    arr_text(&a[A_RESET], d->reset_attempts ? "t" : "f");
    arr_text(&a[A_LERR], m->fins[i].json[0]);
    if (res != NULL) {
      arr_i64(&a[A_RST], res->status);
      arr_bytes(&a[A_VAL], res->value);
      arr_text(&a[A_RERR], m->fins[i].json[1]);
      arr_i64(&a[A_RATT], res->attempts);
      arr_i64(&a[A_FIN], res->finished_at_ms);
      arr_i64(&a[A_FIN_DUE], omniq__pg_server_ms(&pg->tb, res->finished_at_ms));
      arr_i64(&a[A_LAST], res->last_attempt_at_ms);
    } else {
      for (int j = A_RST; j <= A_LAST; j++) arr_text(&a[j], NULL);
    }
    arr_i64(&a[A_CRASHES], d->crashes);
    arr_i64(&a[A_KIND], d->runs);
  }
  for (int j = 0; j < A_COUNT_; j++) {
    const char *text = arr_end(&a[j]);
    if (text == NULL) return OMNIQ_ENOMEM;
    omniq__pg_param_text(&m->outcomes, text);
  }
  return OMNIQ_OK;
}

/* The claim's statement and parameters, as omniq__pg_claim sends them;
 * -1 when the claim cannot ride (nothing wanted, no memory: the caller
 * then claims as usual). */
static int claim_fill(omniq__pg_t *pg, const omniq_claim_req_t *req, many_t *m) {
  omniq__pg_params_t *p = &m->claim;
  int stmt = OMNIQ__PGS_CLAIMN;
  if (req == NULL || req->max == 0 || req->nqueues == 0 || req->queues == NULL) return -1;
  omniq__pg_params_init(p);
  if (req->nqueues == 1) {
    stmt = OMNIQ__PGS_CLAIM1;
    omniq__pg_param_text(p, req->queues[0]);
  } else if ((m->queues = omniq__pg_text_array(req->queues, req->nqueues)) != NULL) {
    omniq__pg_param_text(p, m->queues);
  } else {
    return -1;
  }
  omniq__pg_param_i64(p, omniq__pg_server_ms(&pg->tb, req->now_ms));
  omniq__pg_param_i64(p, req->max > INT64_MAX ? INT64_MAX : (int64_t)req->max);
  omniq__pg_param_i64(p, req->now_ms);
  omniq__pg_param_i64(p, req->lease_until_ms);
  omniq__pg_param_i64(p, omniq__pg_server_ms(&pg->tb, req->lease_until_ms));
  return stmt;
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
    omniq__pg_finish_grouped(pg, &m->fins[i]);
    rcs[i] = omniq__pg_fin_outcome(pg, &ds[i], &m->fins[i]);
  }
}

int omniq__pg_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                          const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                          int *claimed, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  many_t m;
  size_t filled = 0;
  int result = 0, work = 0, unknown = 0, rc = OMNIQ_OK;
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  if (n == 0) {
    if (req == NULL || req->max == 0) return OMNIQ_OK;
    rc = omniq__pg_claim(backend, req, out, nout, err, errlen);
    *claimed = rc == OMNIQ_OK;
    return rc;
  }
  omniq__pg_maybe_resync(pg);
  memset(&m, 0, sizeof m);
  m.n = n;
  m.fins = omniq__calloc(n, sizeof *m.fins);
  m.errs = omniq__calloc(n, sizeof *m.errs);
  if (m.fins == NULL || m.errs == NULL)
    rc = omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: finish_many: out of memory");
  for (; rc == OMNIQ_OK && filled < n; filled++) {
    omniq__pg_fin_t *f = &m.fins[filled];
    if ((rc = omniq__pg_fin_fill(pg, &ds[filled], f, err, errlen)) != OMNIQ_OK)
      break; /* f needs no clearing */
    f->err = m.errs[filled];
    f->errlen = sizeof m.errs[filled];
    result |= f->result;
    work |= f->pending;
  }
  if (rc == OMNIQ_OK && outcomes_fill(pg, ds, &m) != OMNIQ_OK)
    rc = omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: finish_many: out of memory");
  if (rc != OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
    many_free(&m, filled);
    return rc;
  }
  int stmts[2] = {OMNIQ__PGS_FINISH_MANY, claim_fill(pg, req, &m)};
  const omniq__pg_params_t *ps[2] = {&m.outcomes, &m.claim};
  PGresult *res[2] = {NULL, NULL};
  const char *notify[3] = {NULL, NULL, NULL};
  int nn = 0;
  if (result) notify[nn++] = pg->ch_result;
  if (work) notify[nn++] = pg->ch_work;
  rc = omniq__pg_exec_batch(&pg->pool, stmts, ps, stmts[1] >= 0 ? 2 : 1,
                            nn > 0 ? notify : NULL, "finish_many", res, &unknown, err, errlen);
  if (rc == OMNIQ_OK) {
    for (int row = 0; row < PQntuples(res[0]); row++) {
      int64_t ord = omniq__pg_i64(res[0], row, 0);
      if (ord >= 1 && (size_t)ord <= n) m.fins[ord - 1].changed = 1;
    }
    PQclear(res[0]);
    if (stmts[1] >= 0) {
      claim_take(res[1], out, nout, claimed);
      PQclear(res[1]);
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
