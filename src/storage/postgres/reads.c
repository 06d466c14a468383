/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: reads, and rows -> records.
 *
 * Every statement asks for binary results, so integers, ids and payloads
 * arrive as they are stored: no number parsing, no bytea hex decoding.
 * Reads are idempotent, so conn.c runs one again on a fresh connection when
 * its connection died under it (after a server restart, say).
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/postgres/postgres.h"

/* Column numbers of OMNIQ__PG_TASK_COLS. */
enum {
  C_ID, C_FUNC, C_QUEUE, C_ARGS, C_KWARGS, C_STATUS, C_PRIORITY, C_ATTEMPTS, C_MAX_RETRIES,
  C_ETA, C_INTERVAL, C_TIMEOUT, C_CREATED, C_STARTED, C_LEASE, C_TOKEN, C_LAST_ERROR,
  C_UNIQUE_KEY, C_UNIQUE_FOR, C_CRON, C_CRASHES, C_FINISHED
};
/* Column numbers of OMNIQ__PG_RESULT_COLS. */
enum { R_ID, R_STATUS, R_VALUE, R_ERROR, R_ATTEMPTS, R_FINISHED, R_LAST_ATTEMPT };

/* A TaskError column (JSON text, or NULL). */
static int row_error(const PGresult *r, int row, int col, omniq_task_error_t **out) {
  char *json;
  *out = NULL;
  int rc = omniq__pg_str(r, row, col, &json);
  if (rc != OMNIQ_OK || json == NULL) return rc;
  rc = omniq_task_error_from_json(json, out);
  omniq__free(json);
  return rc == OMNIQ_ESERIALIZE ? OMNIQ_ECORRUPT : rc;
}

int omniq__pg_row_task(const PGresult *r, int row, omniq_task_t **out) {
  omniq_task_t *t = omniq_task_new();
  int rc;
  *out = NULL;
  if (t == NULL) return OMNIQ_ENOMEM;
  omniq__pg_uuid(r, row, C_ID, t->id);
  if ((rc = omniq__pg_str(r, row, C_FUNC, &t->func)) ||
      (rc = omniq__pg_str(r, row, C_QUEUE, &t->queue)) ||
      (rc = omniq__pg_str(r, row, C_ARGS, &t->args)) ||
      (rc = omniq__pg_str(r, row, C_KWARGS, &t->kwargs)) ||
      (rc = omniq__pg_str(r, row, C_UNIQUE_KEY, &t->unique_key)) ||
      (rc = omniq__pg_str(r, row, C_CRON, &t->cron)) ||
      (rc = row_error(r, row, C_LAST_ERROR, &t->last_error))) {
    omniq_task_free(t);
    return rc;
  }
  t->status = (int)omniq__pg_i64(r, row, C_STATUS);
  t->priority = (int)omniq__pg_i64(r, row, C_PRIORITY);
  t->attempts = (int)omniq__pg_i64(r, row, C_ATTEMPTS);
  t->max_retries = (int)omniq__pg_i64(r, row, C_MAX_RETRIES);
  t->eta_ms = omniq__pg_i64(r, row, C_ETA);
  t->interval_ms = omniq__pg_i64(r, row, C_INTERVAL);
  t->timeout_ms = omniq__pg_i64(r, row, C_TIMEOUT);
  t->created_at_ms = omniq__pg_i64(r, row, C_CREATED);
  t->started_at_ms = omniq__pg_i64(r, row, C_STARTED);
  t->lease_until_ms = omniq__pg_i64(r, row, C_LEASE);
  t->token = omniq__pg_i64(r, row, C_TOKEN);
  t->unique_for_ms = omniq__pg_i64(r, row, C_UNIQUE_FOR);
  t->crashes = (int)omniq__pg_i64(r, row, C_CRASHES);
  t->finished_at_ms = omniq__pg_i64(r, row, C_FINISHED);
  *out = t;
  return OMNIQ_OK;
}

int omniq__pg_row_result(const PGresult *r, int row, omniq_result_t **out) {
  omniq_result_t *res = omniq_result_new();
  int rc;
  *out = NULL;
  if (res == NULL) return OMNIQ_ENOMEM;
  omniq__pg_uuid(r, row, R_ID, res->task_id);
  if ((rc = omniq__pg_str(r, row, R_VALUE, &res->value)) ||
      (rc = row_error(r, row, R_ERROR, &res->error))) {
    omniq_result_free(res);
    return rc;
  }
  res->status = (int)omniq__pg_i64(r, row, R_STATUS);
  res->attempts = (int)omniq__pg_i64(r, row, R_ATTEMPTS);
  res->finished_at_ms = omniq__pg_i64(r, row, R_FINISHED);
  res->last_attempt_at_ms = omniq__pg_i64(r, row, R_LAST_ATTEMPT);
  *out = res;
  return OMNIQ_OK;
}

int omniq__pg_rows_tasks(const PGresult *r, omniq_task_t ***out, size_t *n) {
  size_t rows = (size_t)PQntuples(r);
  *out = NULL;
  *n = 0;
  if (rows == 0) return OMNIQ_OK;
  omniq_task_t **tasks = omniq__calloc(rows, sizeof *tasks);
  if (tasks == NULL) return OMNIQ_ENOMEM;
  for (size_t i = 0; i < rows; i++) {
    int rc = omniq__pg_row_task(r, (int)i, &tasks[i]);
    if (rc != OMNIQ_OK) {
      omniq__tasks_free(tasks, i);
      return rc;
    }
  }
  *out = tasks;
  *n = rows;
  return OMNIQ_OK;
}

/* Runs a lookup by id; OMNIQ_ENOTFOUND when no row. */
static int lookup(omniq__pg_t *pg, int stmt, const char *op, const char *id, PGresult **r,
                  char *err, size_t errlen) {
  omniq__pg_params_t p;
  *r = NULL;
  if (!omniq_id_valid(id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "%s: malformed task id", op);
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  int rc = omniq__pg_exec(&pg->pool, stmt, &p, OMNIQ__PG_IDEMPOTENT, NULL, op, r, err, errlen);
  if (rc == OMNIQ_OK && PQntuples(*r) == 0) {
    PQclear(*r);
    *r = NULL;
    return omniq__pg_errf(OMNIQ_ENOTFOUND, err, errlen, "%s %s: %s", op, id,
                          stmt == OMNIQ__PGS_GET_RESULT ? "no result" : "no such task");
  }
  return rc;
}

int omniq__pg_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                       size_t errlen) {
  PGresult *r;
  *out = NULL;
  int rc = lookup(backend, OMNIQ__PGS_GET_TASK, "get_task", id, &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__pg_row_task(r, 0, out);
  PQclear(r);
  if (rc != OMNIQ_OK) omniq__pg_errf(rc, err, errlen, "get_task %s: cannot read the row", id);
  return rc;
}

int omniq__pg_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                         size_t errlen) {
  PGresult *r;
  *out = NULL;
  int rc = lookup(backend, OMNIQ__PGS_GET_RESULT, "get_result", id, &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__pg_row_result(r, 0, out);
  PQclear(r);
  if (rc != OMNIQ_OK) omniq__pg_errf(rc, err, errlen, "get_result %s: cannot read the row", id);
  return rc;
}

int omniq__pg_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                              size_t errlen) {
  omniq__pg_t *pg = backend;
  PGresult *r;
  memset(counts, 0, OMNIQ_STATUS_COUNT * sizeof *counts);
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_COUNT, NULL, OMNIQ__PG_IDEMPOTENT, NULL,
                          "count_by_status", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  for (int i = 0; i < PQntuples(r); i++) {
    int64_t status = omniq__pg_i64(r, i, 0);
    if (status >= 0 && status < OMNIQ_STATUS_COUNT) counts[status] = omniq__pg_i64(r, i, 1);
  }
  PQclear(r);
  return OMNIQ_OK;
}
