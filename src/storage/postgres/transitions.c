/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: the writes — enqueue, outcomes, lease extension,
 * cancel, purge.
 *
 * Each transition is one statement, so one implicit transaction: the task
 * row's UPDATE is fenced by `status = 1 AND token = $token` (or, for a
 * cancel, by a non-terminal status), and the result row is written by a
 * data-modifying CTE of the same statement, only when the UPDATE matched.
 * Concurrent transitions of one task serialise on its row lock; the loser
 * re-checks the fence against the winner's row and changes nothing. When
 * nothing matched, a second read tells an unknown id (OMNIQ_ENOTFOUND)
 * from a stale claim (OMNIQ_ESTATE); that read is off the hot path.
 * Outcomes that threads of one handle report at the same moment share a
 * transaction (group.c); each keeps its own statement and fence.
 *
 * Wake-ups go out after the commit (conn.c): "<schema>_work" when tasks
 * became PENDING, "<schema>_result" when a result was stored.
 *
 * An enqueue of up to BATCH_ROWS tasks is one multi-row INSERT; a larger
 * one runs its INSERTs in one explicit transaction. A taken id fails the
 * whole batch (unique violation) with OMNIQ_EINVAL and stores nothing.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "storage/postgres/postgres.h"

#define INSERT_COLS                                                                   \
  "INSERT INTO @S.tasks (id, func, queue, args, kwargs, status, priority, attempts,"  \
  " max_retries, eta_ms, due_ms, interval_ms, timeout_ms, created_at_ms, started_at_ms," \
  " lease_until_ms, token, last_error, unique_key, cron, unique_for_ms, crashes,"      \
  " finished_at_ms, finished_due_ms) VALUES "
#define INSERT_ROW                                                                    \
  "($%d::uuid,$%d::text,$%d::text,$%d::bytea,$%d::bytea,$%d::int2,$%d::int4,$%d::int4," \
  "$%d::int4,$%d::int8,$%d::int8,$%d::int8,$%d::int8,$%d::int8,$%d::int8,$%d::int8,"  \
  "$%d::int8,$%d::text,$%d::text,$%d::text,$%d::int8,$%d::int4,$%d::int8,$%d::int8)"
#define INSERT_PARAMS OMNIQ__PG_INSERT_PARAMS
/* Of a row's parameters: the texts first, then the numbers, then the
 * JSON and the two optional texts. */
#define TEXT_PARAMS 5
#define NUM_PARAMS 12
#define TAIL_NUMS 4

const char omniq__pg_insert_sql[] =
    INSERT_COLS
    "($1::uuid,$2::text,$3::text,$4::bytea,$5::bytea,$6::int2,$7::int4,$8::int4,$9::int4,"
    "$10::int8,$11::int8,$12::int8,$13::int8,$14::int8,$15::int8,$16::int8,$17::int8,$18::text,"
    "$19::text,$20::text,$21::int8,$22::int4,$23::int8,$24::int8)";
/* Rows per INSERT statement (PostgreSQL takes at most 65535 parameters). */
#define BATCH_ROWS 500

int omniq__pg_errf(int rc, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

int omniq__pg_no_row(omniq__pg_t *pg, const char *op, const char *id, int *status, char *err,
                     size_t errlen) {
  omniq__pg_params_t p;
  PGresult *r;
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_STATUS, &p, OMNIQ__PG_IDEMPOTENT, NULL, op, &r,
                          err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int found = PQntuples(r) > 0;
  if (found && status != NULL) *status = (int)omniq__pg_i64(r, 0, 0);
  PQclear(r);
  if (!found) return omniq__pg_errf(OMNIQ_ENOTFOUND, err, errlen, "%s %s: no such task", op, id);
  return omniq__pg_errf(OMNIQ_ESTATE, err, errlen,
                        "%s %s: the task is no longer running under this claim", op, id);
}

/* ---- enqueue ---------------------------------------------------------------- */

void omniq__pg_batch_free(omniq__pg_batch_t *b) {
  for (size_t i = 0; b->json != NULL && i < b->n; i++) free(b->json[i]);
  omniq__free(b->values);
  omniq__free(b->lengths);
  omniq__free(b->formats);
  omniq__free(b->num);
  omniq__free(b->json);
}

int omniq__pg_batch_fill(omniq__pg_t *pg, omniq_task_t *const *tasks, size_t n,
                         omniq__pg_batch_t *b) {
  size_t np = n * INSERT_PARAMS;
  memset(b, 0, sizeof *b);
  b->values = omniq__calloc(np, sizeof *b->values);
  b->lengths = omniq__calloc(np, sizeof *b->lengths);
  b->formats = omniq__calloc(np, sizeof *b->formats);
  b->num = omniq__calloc(n * (NUM_PARAMS + TAIL_NUMS), sizeof *b->num);
  b->json = omniq__calloc(n, sizeof *b->json);
  b->n = n;
  if (!b->values || !b->lengths || !b->formats || !b->num || !b->json) return OMNIQ_ENOMEM;
  for (size_t i = 0; i < n; i++) {
    const omniq_task_t *t = tasks[i];
    size_t k = i * INSERT_PARAMS;
    char (*num)[24] = b->num + i * (NUM_PARAMS + TAIL_NUMS);
    const char *text[TEXT_PARAMS] = {t->id, t->func, t->queue, t->args, t->kwargs};
    int64_t fin_due = t->finished_at_ms != 0 ? omniq__pg_server_ms(&pg->tb, t->finished_at_ms) : 0;
    int64_t nums[NUM_PARAMS + TAIL_NUMS] = {
        t->status,        t->priority,      t->attempts,      t->max_retries,
        t->eta_ms,        omniq__pg_server_ms(&pg->tb, t->eta_ms),
        t->interval_ms,   t->timeout_ms,    t->created_at_ms, t->started_at_ms,
        t->lease_until_ms, t->token,        t->unique_for_ms, t->crashes,
        t->finished_at_ms, fin_due};
    if (t->func == NULL || t->queue == NULL || t->args == NULL || t->kwargs == NULL)
      return OMNIQ_EINVAL;
    for (int j = 0; j < TEXT_PARAMS; j++) {
      b->values[k + j] = text[j];
      if (j >= 3) { /* args, kwargs: bytea, sent as they are */
        b->lengths[k + j] = (int)strlen(text[j]);
        b->formats[k + j] = 1;
      }
    }
    for (int j = 0; j < NUM_PARAMS + TAIL_NUMS; j++) {
      int at = j < NUM_PARAMS ? TEXT_PARAMS + j : TEXT_PARAMS + 3 + j; /* after the 3 texts */
      snprintf(num[j], sizeof num[0], "%lld", (long long)nums[j]);
      b->values[k + at] = num[j];
    }
    if (t->last_error != NULL && (b->json[i] = omniq_task_error_to_json(t->last_error)) == NULL)
      return OMNIQ_ENOMEM;
    b->values[k + 17] = b->json[i];
    b->values[k + 18] = t->unique_key;
    b->values[k + 19] = t->cron;
  }
  return OMNIQ_OK;
}

/* The INSERT text for n rows, numbered from $1. */
static char *insert_sql(omniq__pg_t *pg, size_t n) {
  size_t cap = sizeof INSERT_COLS + n * (sizeof INSERT_ROW + INSERT_PARAMS * 6 + 1);
  char *tmpl = omniq__malloc(cap), *o = tmpl;
  if (tmpl == NULL) return NULL;
  o += snprintf(o, cap, "%s", INSERT_COLS);
  for (size_t i = 0; i < n; i++) {
    int b = (int)(i * INSERT_PARAMS);
    o += snprintf(o, cap - (size_t)(o - tmpl), "%s" INSERT_ROW, i ? "," : "", b + 1, b + 2,
                  b + 3, b + 4, b + 5, b + 6, b + 7, b + 8, b + 9, b + 10, b + 11, b + 12, b + 13,
                  b + 14, b + 15, b + 16, b + 17, b + 18, b + 19, b + 20, b + 21, b + 22,
                  b + 23, b + 24);
  }
  char *sql = omniq__pg_sql(tmpl, pg->schema);
  omniq__free(tmpl);
  return sql;
}

int omniq__pg_enqueue_error(int rc, char *err, size_t errlen) {
  if (rc == OMNIQ_EINVAL && strstr(err, "duplicate key") != NULL)
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen,
                          "postgres: enqueue: a task id is taken (or given twice in the batch); "
                          "nothing was stored");
  return rc;
}

void omniq__pg_hint(omniq__pg_t *pg, const char *channel) {
  omniq__pg_params_t p;
  PGresult *r;
  char ignored[128];
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, channel);
  if (omniq__pg_exec_sql(&pg->pool, "SELECT pg_notify($1, '')", &p, NULL, "notify", &r, ignored,
                         sizeof ignored) == OMNIQ_OK)
    PQclear(r);
}

int omniq__pg_tx_begin(omniq__pg_t *pg, omniq__pg_conn_t **c, char *err, size_t errlen) {
  int rc = omniq__pg_acquire(&pg->pool, c, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if ((rc = omniq__pg_command((*c)->pg, "BEGIN", "begin", err, errlen)) != OMNIQ_OK) {
    omniq__pg_release(&pg->pool, *c);
    *c = NULL;
  }
  return rc;
}

int omniq__pg_tx_end(omniq__pg_t *pg, omniq__pg_conn_t *c, int rc, char *err, size_t errlen) {
  if (rc == OMNIQ_OK) {
    rc = omniq__pg_command(c->pg, "COMMIT", "commit", err, errlen);
  } else {
    char ignored[128];
    omniq__pg_command(c->pg, "ROLLBACK", "rollback", ignored, sizeof ignored);
  }
  omniq__pg_release(&pg->pool, c); /* still in a transaction after an error: closed */
  return rc;
}

int omniq__pg_insert_on(omniq__pg_t *pg, omniq__pg_conn_t *c, const omniq__pg_batch_t *b,
                        char *err, size_t errlen) {
  int rc = OMNIQ_OK;
  for (size_t from = 0; rc == OMNIQ_OK && from < b->n; from += BATCH_ROWS) {
    size_t rows = b->n - from < BATCH_ROWS ? b->n - from : BATCH_ROWS;
    size_t k = from * INSERT_PARAMS;
    omniq__pg_params_t p;
    PGresult *r;
    char *sql = insert_sql(pg, rows);
    if (sql == NULL)
      return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: enqueue: out of memory");
    omniq__pg_params_init(&p);
    p.n = (int)(rows * INSERT_PARAMS);
    p.values = b->values + k;
    p.lengths = b->lengths + k;
    p.formats = b->formats + k;
    rc = omniq__pg_exec_sql_on(&pg->pool, c, sql, &p, "enqueue", &r, err, errlen);
    omniq__free(sql);
    if (rc == OMNIQ_OK) PQclear(r);
  }
  return rc;
}

static int has_keys(omniq_task_t *const *tasks, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (tasks[i]->unique_key != NULL) return 1;
  return 0;
}

int omniq__pg_enqueue(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                      size_t errlen) {
  omniq__pg_t *pg = backend;
  const char *notify[] = {pg->ch_work, NULL};
  omniq__pg_batch_t b;
  PGresult *r = NULL;
  int rc;
  if (n == 0) return OMNIQ_OK;
  for (size_t i = 0; i < n; i++)
    if (tasks[i] == NULL || !omniq_id_valid(tasks[i]->id))
      return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "enqueue: task %zu has no valid id", i);
  /* Keys are taken in the same transaction as the inserts (unique.c). */
  if (has_keys(tasks, n)) return omniq__pg_enqueue_unique(pg, tasks, n, NULL, err, errlen);
  if ((rc = omniq__pg_batch_fill(pg, tasks, n, &b)) != OMNIQ_OK) {
    omniq__pg_batch_free(&b);
    return omniq__pg_errf(rc, err, errlen, "postgres: enqueue: %s",
                          rc == OMNIQ_ENOMEM ? "out of memory" : "a task misses a field");
  }
  if (n <= BATCH_ROWS) {
    omniq__pg_params_t p;
    omniq__pg_params_init(&p);
    p.n = (int)(n * INSERT_PARAMS);
    p.values = b.values;
    p.lengths = b.lengths;
    p.formats = b.formats;
    if (n == 1) {
      rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_INSERT, &p, OMNIQ__PG_ONCE, notify, "enqueue",
                          &r, err, errlen);
    } else {
      char *sql = insert_sql(pg, n);
      rc = sql == NULL ? omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: out of memory")
                       : omniq__pg_exec_sql(&pg->pool, sql, &p, notify, "enqueue", &r, err,
                                            errlen);
      omniq__free(sql);
    }
    PQclear(r);
  } else {
    /* A batch larger than BATCH_ROWS: its INSERTs in one transaction. */
    omniq__pg_conn_t *c;
    if ((rc = omniq__pg_tx_begin(pg, &c, err, errlen)) == OMNIQ_OK)
      rc = omniq__pg_tx_end(pg, c, omniq__pg_insert_on(pg, c, &b, err, errlen), err, errlen);
    if (rc == OMNIQ_OK) omniq__pg_hint(pg, pg->ch_work);
  }
  omniq__pg_batch_free(&b);
  return omniq__pg_enqueue_error(rc, err, errlen);
}

/* ---- outcomes ---------------------------------------------------------------- */

int omniq__pg_fin_fill(omniq__pg_t *pg, const omniq_decision_t *o, omniq__pg_fin_t *f, char *err,
                       size_t errlen) {
  const omniq_result_t *res = o->result;
  omniq__pg_params_t *p = &f->p;
  memset(f, 0, sizeof *f);
  f->stmt = OMNIQ__PGS_FINISH;
  f->err = err;
  f->errlen = errlen;
  if (o->id == NULL || !omniq_id_valid(o->id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "finish: malformed task id");
  if (o->next_status != OMNIQ_PENDING && o->next_status != OMNIQ_SUCCESS &&
      o->next_status != OMNIQ_FAILED)
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "finish %s: next status %d is not allowed",
                          o->id, o->next_status);
  if ((o->error != NULL && (f->json[0] = omniq_task_error_to_json(o->error)) == NULL) ||
      (res != NULL && res->error != NULL &&
       (f->json[1] = omniq_task_error_to_json(res->error)) == NULL)) {
    omniq__pg_fin_clear(f);
    return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: finish: out of memory");
  }
  omniq__pg_params_init(p);
  omniq__pg_param_text(p, o->id);
  omniq__pg_param_i64(p, o->token);
  omniq__pg_param_i64(p, o->next_status);
  omniq__pg_param_i64(p, o->eta_ms);
  omniq__pg_param_i64(p, omniq__pg_server_ms(&pg->tb, o->eta_ms));
  omniq__pg_param_text(p, o->reset_attempts ? "t" : "f");
  omniq__pg_param_text(p, f->json[0]);
  if (res != NULL) {
    omniq__pg_param_i64(p, res->status);
    if (res->value != NULL)
      omniq__pg_param_bytes(p, res->value, strlen(res->value));
    else
      omniq__pg_param_text(p, NULL);
    omniq__pg_param_text(p, f->json[1]);
    omniq__pg_param_i64(p, res->attempts);
    omniq__pg_param_i64(p, res->finished_at_ms);
    omniq__pg_param_i64(p, omniq__pg_server_ms(&pg->tb, res->finished_at_ms));
    omniq__pg_param_i64(p, res->last_attempt_at_ms);
    f->result = 1;
  } else {
    for (int i = 0; i < 7; i++) omniq__pg_param_text(p, NULL);
  }
  omniq__pg_param_i64(p, o->crashes);
  omniq__pg_param_i64(p, o->runs);
  f->pending = o->next_status == OMNIQ_PENDING;
  return OMNIQ_OK;
}

void omniq__pg_fin_clear(omniq__pg_fin_t *f) {
  free(f->json[0]);
  free(f->json[1]);
  f->json[0] = f->json[1] = NULL;
  PQclear(f->res);
  f->res = NULL;
}

int omniq__pg_fin_outcome(omniq__pg_t *pg, const omniq_decision_t *o, omniq__pg_fin_t *f) {
  if (f->rc != OMNIQ_OK) return f->rc;
  if (f->changed == 1) return OMNIQ_OK;
  return omniq__pg_no_row(pg, "finish", o->id, NULL, f->err, f->errlen);
}

int omniq__pg_finish(void *backend, const omniq_decision_t *o, char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_fin_t f;
  int rc = omniq__pg_fin_fill(pg, o, &f, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  omniq__pg_finish_grouped(pg, &f);
  omniq__pg_fin_clear(&f);
  return omniq__pg_fin_outcome(pg, o, &f);
}

int omniq__pg_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                           char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  if (!omniq_id_valid(id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "extend_lease: malformed task id");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  omniq__pg_param_i64(&p, token);
  omniq__pg_param_i64(&p, lease_until_ms);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, lease_until_ms));
  /* Setting a lease to a value twice is the same as once. */
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_EXTEND, &p, OMNIQ__PG_IDEMPOTENT, NULL,
                          "extend_lease", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int changed = PQntuples(r);
  PQclear(r);
  return changed == 1 ? OMNIQ_OK : omniq__pg_no_row(pg, "extend_lease", id, NULL, err, errlen);
}

int omniq__pg_cancel(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                     char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  const char *notify[] = {pg->ch_result, NULL};
  PGresult *r;
  if (!omniq_id_valid(id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "cancel: malformed task id");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  omniq__pg_param_i64(&p, finished_at_ms);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, finished_at_ms));
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_CANCEL, &p, OMNIQ__PG_ONCE, notify, "cancel", &r,
                          err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int found = !PQgetisnull(r, 0, 0);
  int status = found ? (int)omniq__pg_i64(r, 0, 0) : -1;
  int64_t changed = omniq__pg_i64(r, 0, 1);
  PQclear(r);
  if (found && prev_status != NULL) *prev_status = status;
  if (!found) return omniq__pg_errf(OMNIQ_ENOTFOUND, err, errlen, "cancel %s: no such task", id);
  if (changed != 1)
    return omniq__pg_errf(OMNIQ_ESTATE, err, errlen,
                          "cancel %s: the task is %s and cannot be cancelled", id,
                          omniq_status_name(status));
  return OMNIQ_OK;
}

int omniq__pg_purge_results(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                            size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  *count = 0;
  omniq__pg_params_init(&p);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, older_than_ms));
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_PURGE, &p, OMNIQ__PG_IDEMPOTENT, NULL,
                          "purge_results", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  *count = strtoll(PQcmdTuples(r), NULL, 10);
  PQclear(r);
  return OMNIQ_OK;
}
