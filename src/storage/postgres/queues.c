/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: queues as a whole — pause, rate limits and the claim
 * that keeps them, statistics, chores.
 *
 * The claim of a paused or rate-limited queue (claim.c sends it here) is
 * one transaction:
 *   1. SELECT ... FOR UPDATE the settings rows of the named queues, in name
 *      order (so two such claims never wait on each other in a cycle).
 *      Holding a rate-limited queue's row makes claims of that queue, on
 *      every host, take turns for the length of this transaction: the
 *      count each one reads is the count the previous one left. A pause
 *      committed before the claim began is seen here.
 *   2. What each queue allows: nothing if paused; with a rate limit, what
 *      its current window has left (windows of rate_period_ms aligned to
 *      multiples of it on the server's clock, like every other decision);
 *      nothing if the window already counting is later than this claim's
 *      (its clock was read before another claim's). Others: max.
 *   3. One statement takes the tasks: an arm per open queue, each the
 *      ordinary claim walk with that queue's allowance as its LIMIT (SKIP
 *      LOCKED), merged in claim order and cut to max.
 *   4. The windows' counts are written, and the transaction commits.
 * Ordinary queues never come here, and never lock a settings row.
 *
 * Statistics are one statement (so one snapshot): counts by status, the
 * oldest due eta, the running totals (summed over their stripes) and the
 * settings, each row tagged with what it is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/postgres/postgres.h"

/* ---- the claim of paused and rate-limited queues -------------------------- */

typedef struct {
  const char *name;
  int64_t allow;        /* at most this many */
  int64_t limit;        /* the rate limit, 0 = none */
  int64_t window, used; /* the window this claim counts in, and its starts so far */
  int64_t took;
} open_queue_t;

/* The settings of the named queues, locked; fills open[] with the queues
 * the claim may take from and *nopen with how many. */
static int open_queues(omniq__pg_t *pg, omniq__pg_conn_t *c, const omniq_claim_req_t *req,
                       const char *array, int64_t now_due, open_queue_t *open, size_t *nopen,
                       char *err, size_t errlen) {
  omniq__pg_params_t p;
  PGresult *r;
  int64_t max = req->max > INT64_MAX ? INT64_MAX : (int64_t)req->max;
  *nopen = 0;
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, array);
  int rc = omniq__pg_exec_on(&pg->pool, c, OMNIQ__PGS_QUEUE_LOCK, &p,
                             "claim: reading the queues' settings", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  for (size_t i = 0; i < req->nqueues; i++) {
    open_queue_t q = {.name = req->queues[i], .allow = max};
    size_t j = 0;
    while (j < *nopen && strcmp(open[j].name, q.name) != 0) j++;
    if (j < *nopen) continue; /* named twice */
    for (int row = 0; row < PQntuples(r); row++) {
      if (strcmp(PQgetvalue(r, row, 0), q.name) != 0) continue;
      int64_t period = omniq__pg_i64(r, row, 3), counting = omniq__pg_i64(r, row, 4);
      q.limit = omniq__pg_i64(r, row, 2);
      if (omniq__pg_i64(r, row, 1) != 0) {
        q.allow = 0;
      } else if (q.limit > 0 && period > 0) {
        q.window = now_due - now_due % period;
        q.used = counting == q.window ? omniq__pg_i64(r, row, 5) : 0;
        if (q.limit - q.used < q.allow) q.allow = q.limit - q.used > 0 ? q.limit - q.used : 0;
        if (counting > q.window) q.allow = 0; /* never count back into an older window */
      } else {
        q.limit = 0;
      }
    }
    if (q.allow > 0) open[(*nopen)++] = q;
  }
  PQclear(r);
  return OMNIQ_OK;
}

/* The claim over the open queues: $1 now (server), $2 max, $3 started_at,
 * $4 lease_until, $5 lease_until (server), then each arm's queue and
 * allowance. */
static char *arms_sql(omniq__pg_t *pg, size_t nopen) {
  static const char arm[] =
      "%sSELECT * FROM (SELECT id, priority, due_ms, seq FROM @S.tasks WHERE status = 0"
      " AND queue = $%zu::text AND due_ms <= $1::int8 ORDER BY priority DESC, due_ms, seq"
      " LIMIT $%zu::int8 FOR UPDATE SKIP LOCKED) a%zu";
  size_t cap = 1024 + nopen * (sizeof arm + 48);
  char *tmpl = omniq__malloc(cap), *o = tmpl;
  if (tmpl == NULL) return NULL;
  o += snprintf(o, cap, "WITH picked AS (SELECT id FROM (");
  for (size_t i = 0; i < nopen; i++)
    o += snprintf(o, cap - (size_t)(o - tmpl), arm, i ? " UNION ALL " : "", 6 + 2 * i, 7 + 2 * i,
                  i);
  snprintf(o, cap - (size_t)(o - tmpl),
           ") u ORDER BY priority DESC, due_ms, seq LIMIT $2::int8),"
           " claimed AS ("
           " UPDATE @S.tasks t SET status = 1, attempts = t.attempts + 1, token = t.token + 1,"
           " started_at_ms = $3::int8, lease_until_ms = $4::int8, lease_due_ms = $5::int8"
           " WHERE t.id = ANY(ARRAY(SELECT id FROM picked)) RETURNING t.*)"
           " SELECT " OMNIQ__PG_TASK_COLS " FROM claimed ORDER BY priority DESC, due_ms, seq");
  char *sql = omniq__pg_sql(tmpl, pg->schema);
  omniq__free(tmpl);
  return sql;
}

/* Counts what the claim took from each rate-limited queue into its window. */
static int spend_windows(omniq__pg_t *pg, omniq__pg_conn_t *c, open_queue_t *open, size_t nopen,
                         omniq_task_t **tasks, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < nopen; i++) {
    omniq__pg_params_t p;
    PGresult *r;
    if (open[i].limit == 0) continue;
    for (size_t k = 0; k < n; k++) open[i].took += strcmp(tasks[k]->queue, open[i].name) == 0;
    if (open[i].took == 0) continue;
    omniq__pg_params_init(&p);
    omniq__pg_param_text(&p, open[i].name);
    omniq__pg_param_i64(&p, open[i].window);
    omniq__pg_param_i64(&p, open[i].used + open[i].took);
    int rc = omniq__pg_exec_on(&pg->pool, c, OMNIQ__PGS_QUEUE_WINDOW, &p, "claim: rate window",
                               &r, err, errlen);
    if (rc != OMNIQ_OK) return rc;
    PQclear(r);
  }
  return OMNIQ_OK;
}

static int claim_open(omniq__pg_t *pg, omniq__pg_conn_t *c, const omniq_claim_req_t *req,
                      int64_t now_due, open_queue_t *open, size_t nopen, omniq_task_t ***out,
                      size_t *n, char *err, size_t errlen) {
  omniq__pg_params_t p;
  PGresult *r;
  const char **values = omniq__calloc(5 + 2 * nopen, sizeof *values);
  char (*num)[24] = omniq__calloc(5 + nopen, sizeof *num);
  char *sql = arms_sql(pg, nopen);
  int rc = OMNIQ_OK;
  if (values == NULL || num == NULL || sql == NULL) {
    rc = omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: claim: out of memory");
    goto done;
  }
  int64_t fixed[5] = {now_due, req->max > INT64_MAX ? INT64_MAX : (int64_t)req->max,
                      req->now_ms, req->lease_until_ms,
                      omniq__pg_server_ms(&pg->tb, req->lease_until_ms)};
  for (int i = 0; i < 5; i++) {
    snprintf(num[i], sizeof num[0], "%lld", (long long)fixed[i]);
    values[i] = num[i];
  }
  for (size_t i = 0; i < nopen; i++) {
    snprintf(num[5 + i], sizeof num[0], "%lld", (long long)open[i].allow);
    values[5 + 2 * i] = open[i].name;
    values[6 + 2 * i] = num[5 + i];
  }
  omniq__pg_params_init(&p);
  p.n = (int)(5 + 2 * nopen);
  p.values = values;
  p.lengths = NULL;
  p.formats = NULL;
  rc = omniq__pg_exec_sql_on(&pg->pool, c, sql, &p, "claim", &r, err, errlen);
  if (rc == OMNIQ_OK) {
    rc = omniq__pg_rows_tasks(r, out, n);
    PQclear(r);
    if (rc != OMNIQ_OK) omniq__pg_errf(rc, err, errlen, "postgres: claim: cannot read a row");
  }
done:
  omniq__free(values);
  omniq__free(num);
  omniq__free(sql);
  return rc;
}

int omniq__pg_claim_limited(omniq__pg_t *pg, const omniq_claim_req_t *req, omniq_task_t ***out,
                            size_t *n, char *err, size_t errlen) {
  omniq__pg_conn_t *c;
  open_queue_t *open = omniq__calloc(req->nqueues, sizeof *open);
  char *array = omniq__pg_text_array(req->queues, req->nqueues);
  int64_t now_due = omniq__pg_server_ms(&pg->tb, req->now_ms);
  size_t nopen = 0;
  int rc;
  *out = NULL;
  *n = 0;
  if (open == NULL || array == NULL) {
    rc = omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: claim: out of memory");
  } else if ((rc = omniq__pg_tx_begin(pg, &c, err, errlen)) == OMNIQ_OK) {
    rc = open_queues(pg, c, req, array, now_due, open, &nopen, err, errlen);
    if (rc == OMNIQ_OK && nopen > 0)
      rc = claim_open(pg, c, req, now_due, open, nopen, out, n, err, errlen);
    if (rc == OMNIQ_OK) rc = spend_windows(pg, c, open, nopen, *out, *n, err, errlen);
    rc = omniq__pg_tx_end(pg, c, rc, err, errlen);
    if (rc != OMNIQ_OK) { /* rolled back: nothing was claimed */
      omniq__tasks_free(*out, *n);
      *out = NULL;
      *n = 0;
    }
  }
  omniq__free(open);
  omniq__free(array);
  return rc;
}

/* ---- settings, chores --------------------------------------------------- */

static int name_ok(const char *name) {
  return name != NULL && name[0] != '\0' && strlen(name) < OMNIQ_NAME_MAX;
}

int omniq__pg_set_paused(void *backend, const char *queue, int paused, char *err,
                         size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  if (!name_ok(queue))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "set_paused: no queue named");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, queue);
  omniq__pg_param_text(&p, paused ? "t" : "f");
  /* Resumed: idle workers may take from it again. */
  const char *notify[] = {pg->ch_work, NULL};
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_SET_PAUSED, &p, OMNIQ__PG_IDEMPOTENT,
                          paused ? NULL : notify, "set_paused", &r, err, errlen);
  if (rc == OMNIQ_OK) PQclear(r);
  return rc;
}

int omniq__pg_set_rate(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                       char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  if (!name_ok(queue) || limit < 0 || (limit > 0 && period_ms < 1))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen,
                          "set_rate: no queue named, or a negative limit or period");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, queue);
  omniq__pg_param_i64(&p, limit);
  omniq__pg_param_i64(&p, limit > 0 ? period_ms : 0);
  const char *notify[] = {pg->ch_work, NULL};
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_SET_RATE, &p, OMNIQ__PG_IDEMPOTENT, notify,
                          "set_rate", &r, err, errlen);
  if (rc == OMNIQ_OK) PQclear(r);
  return rc;
}

int omniq__pg_claim_chore(void *backend, const char *chore, int64_t now_ms, int64_t next_ms,
                          int *won, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  *won = 0;
  if (!name_ok(chore))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "claim_chore: no chore named");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, chore);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, now_ms));
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, next_ms));
  /* Not repeated after a lost connection: a chore skipped once runs at
   * its next turn, and a repeat could not tell its own win from another's
   * refusal. */
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_CHORE, &p, OMNIQ__PG_ONCE, NULL, "claim_chore",
                          &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  *won = PQntuples(r) == 1;
  PQclear(r);
  return OMNIQ_OK;
}

/* ---- statistics ------------------------------------------------------------ */

typedef struct {
  omniq_queue_info_t *q;
  size_t n, cap;
} infos_t;

static int by_name(const void *x, const void *y) {
  return strcmp(((const omniq_queue_info_t *)x)->name, ((const omniq_queue_info_t *)y)->name);
}

/* Row kinds of the statistics statement. */
enum { ROW_COUNT, ROW_DUE, ROW_TOTAL, ROW_SETTING };

/* $1 the queue (NULL = every queue), $2 now (server). Rows: kind, queue,
 * then two or three numbers. The counts have an arm per phase (pending,
 * running, terminal), each over that phase's partial index (schema.c). */
const char omniq__pg_stats_sql[] =
    "SELECT 0::int2, queue, 0::int8, count(*)::int8, 0::int8 FROM @S.tasks"
    " WHERE status = 0 AND ($1::text IS NULL OR queue = $1::text) GROUP BY queue"
    " UNION ALL SELECT 0::int2, queue, 1::int8, count(*)::int8, 0::int8 FROM @S.tasks"
    " WHERE status = 1 AND ($1::text IS NULL OR queue = $1::text) GROUP BY queue"
    " UNION ALL SELECT 0::int2, queue, status::int8, count(*)::int8, 0::int8 FROM @S.tasks"
    " WHERE status >= 2 AND ($1::text IS NULL OR queue = $1::text) GROUP BY queue, status"
    " UNION ALL SELECT 1::int2, queue, min(eta_ms)::int8, 0::int8, 0::int8 FROM @S.tasks"
    " WHERE status = 0 AND due_ms <= $2::int8 AND ($1::text IS NULL OR queue = $1::text)"
    " GROUP BY queue"
    " UNION ALL SELECT 2::int2, queue, kind::int8, sum(n)::int8, 0::int8 FROM @S.run_totals"
    " WHERE $1::text IS NULL OR queue = $1::text GROUP BY queue, kind"
    " UNION ALL SELECT 3::int2, name, CASE WHEN paused THEN 1 ELSE 0 END::int8, rate_limit,"
    " rate_period_ms FROM @S.queues WHERE $1::text IS NULL OR name = $1::text";

int omniq__pg_queue_stats(void *backend, const char *queue, int64_t now_ms,
                          omniq_queue_info_t **out, size_t *n, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  infos_t a = {NULL, 0, 0};
  *out = NULL;
  *n = 0;
  if (queue != NULL && !name_ok(queue))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "queue_stats: bad queue name");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, queue);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, now_ms));
  /* Unprepared: planned for the queue named (or none) each time. */
  char *sql = omniq__pg_sql(omniq__pg_stats_sql, pg->schema);
  if (sql == NULL) return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: out of memory");
  int rc = omniq__pg_exec_sql(&pg->pool, sql, &p, NULL, "queue_stats", &r, err, errlen);
  omniq__free(sql);
  if (rc != OMNIQ_OK) return rc;
  if (queue != NULL && omniq__queue_info_of(&a.q, &a.n, &a.cap, queue) == NULL)
    rc = OMNIQ_ENOMEM;
  for (int row = 0; rc == OMNIQ_OK && row < PQntuples(r); row++) {
    omniq_queue_info_t *q = omniq__queue_info_of(&a.q, &a.n, &a.cap, PQgetvalue(r, row, 1));
    int64_t x = omniq__pg_i64(r, row, 2), y = omniq__pg_i64(r, row, 3);
    if (q == NULL) {
      if (strlen(PQgetvalue(r, row, 1)) < OMNIQ_NAME_MAX) rc = OMNIQ_ENOMEM;
      continue;
    }
    switch ((int)omniq__pg_i64(r, row, 0)) {
      case ROW_COUNT:
        if (x >= 0 && x < OMNIQ_STATUS_COUNT) q->counts[x] = y;
        break;
      case ROW_DUE:
        q->oldest_due_eta_ms = x;
        break;
      case ROW_TOTAL:
        if (x >= 0 && x < OMNIQ_RUNS_KINDS) q->runs[x] = y;
        break;
      default:
        q->paused = x != 0;
        q->rate_limit = y;
        q->rate_period_ms = omniq__pg_i64(r, row, 4);
    }
  }
  PQclear(r);
  if (rc != OMNIQ_OK || a.n == 0) {
    free(a.q);
    return rc == OMNIQ_OK ? OMNIQ_OK
                          : omniq__pg_errf(rc, err, errlen, "postgres: queue_stats: out of memory");
  }
  qsort(a.q, a.n, sizeof *a.q, by_name);
  *out = a.q;
  *n = a.n;
  return OMNIQ_OK;
}
