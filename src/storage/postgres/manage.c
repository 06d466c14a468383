/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: retry by hand, delete, retention.
 *
 * Delete and retention are one statement each: the terminal task row, its
 * result and what it held of its unique key go together, through
 * data-modifying CTEs that key on the task rows actually deleted. Retention
 * walks tasks_finished (terminal tasks by finished_due_ms, the server's
 * clock) with SKIP LOCKED, so two processes purging at once split the work
 * and a task being retried at that moment is left alone.
 *
 * A retry is one transaction, because taking the unique key again may have
 * to name another holder and then change nothing: lock the task row, check
 * its status, take the key (unique.c), make the task PENDING. The engine
 * is told nothing it did not ask for: token, last_error and the stored
 * result stay. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/postgres/postgres.h"

const char omniq__pg_delete_sql[] =
    "WITH o AS (SELECT id, status FROM @S.tasks WHERE id = $1::uuid FOR UPDATE),"
    " d AS (DELETE FROM @S.tasks t USING o WHERE t.id = o.id AND o.status >= 2"
    " RETURNING t.id),"
    " r AS (DELETE FROM @S.results x USING d WHERE x.task_id = d.id),"
    " k AS (DELETE FROM @S.unique_keys u USING d WHERE u.task_id = d.id)"
    " SELECT (SELECT status FROM o), (SELECT count(*) FROM d)";

/* `status >= 2` literally, so the partial index tasks_finished applies. */
const char omniq__pg_purge_tasks_sql[] =
    "WITH o AS (SELECT id FROM @S.tasks WHERE status >= 2 AND finished_due_ms < $1::int8"
    " ORDER BY finished_due_ms LIMIT $2::int8 FOR UPDATE SKIP LOCKED),"
    " d AS (DELETE FROM @S.tasks t WHERE t.id = ANY(ARRAY(SELECT id FROM o)) RETURNING t.id),"
    " r AS (DELETE FROM @S.results x USING d WHERE x.task_id = d.id),"
    " k AS (DELETE FROM @S.unique_keys u USING d WHERE u.task_id = d.id)"
    " SELECT count(*) FROM d";

/* ---- retry ------------------------------------------------------------------ */

/* Locks the task; its status, and copies of its queue and key (yours). */
static int lock_task(omniq__pg_t *pg, omniq__pg_conn_t *c, const char *id, int *status,
                     char **queue, char **key, char *err, size_t errlen) {
  omniq__pg_params_t p;
  PGresult *r;
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  int rc = omniq__pg_exec_on(&pg->pool, c, OMNIQ__PGS_TASK_LOCK, &p, "retry", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (PQntuples(r) == 0) {
    PQclear(r);
    return omniq__pg_errf(OMNIQ_ENOTFOUND, err, errlen, "retry %s: no such task", id);
  }
  *status = (int)omniq__pg_i64(r, 0, 0);
  if ((rc = omniq__pg_str(r, 0, 1, queue)) == OMNIQ_OK) rc = omniq__pg_str(r, 0, 2, key);
  PQclear(r);
  return rc == OMNIQ_OK ? OMNIQ_OK
                        : omniq__pg_errf(rc, err, errlen, "retry %s: out of memory", id);
}

static int retry_on(omniq__pg_t *pg, omniq__pg_conn_t *c, const char *id, int64_t eta_ms,
                    int64_t now_ms, int *prev, char holder[OMNIQ_ID_SIZE], char *err,
                    size_t errlen) {
  char *queue = NULL, *key = NULL;
  omniq__pg_params_t p;
  PGresult *r;
  int rc = lock_task(pg, c, id, prev, &queue, &key, err, errlen);
  if (rc == OMNIQ_OK && *prev != OMNIQ_FAILED && *prev != OMNIQ_CANCELLED)
    rc = omniq__pg_errf(OMNIQ_ESTATE, err, errlen, "retry %s: task is %s", id,
                        omniq_status_name(*prev));
  /* The key first: if another task holds it now, nothing changes. */
  if (rc == OMNIQ_OK && key != NULL)
    rc = omniq__pg_take_key(pg, c, queue, key, id, omniq__pg_server_ms(&pg->tb, now_ms),
                            OMNIQ__PG_HELD_FOREVER, holder, err, errlen);
  if (rc == OMNIQ_OK) {
    omniq__pg_params_init(&p);
    omniq__pg_param_text(&p, id);
    omniq__pg_param_i64(&p, eta_ms);
    omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, eta_ms));
    if ((rc = omniq__pg_exec_on(&pg->pool, c, OMNIQ__PGS_RETRY, &p, "retry", &r, err,
                                errlen)) == OMNIQ_OK)
      PQclear(r);
  }
  omniq__free(queue);
  omniq__free(key);
  return rc;
}

int omniq__pg_retry(void *backend, const char *id, int64_t eta_ms, int64_t now_ms,
                    int *prev_status, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_conn_t *c;
  int prev = -1;
  if (!omniq_id_valid(id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "retry: malformed task id");
  if (holder != NULL) holder[0] = '\0';
  int rc = omniq__pg_tx_begin(pg, &c, err, errlen);
  if (rc == OMNIQ_OK)
    rc = omniq__pg_tx_end(pg, c, retry_on(pg, c, id, eta_ms, now_ms, &prev, holder, err, errlen),
                          err, errlen);
  if (prev_status != NULL) *prev_status = prev;
  if (rc == OMNIQ_OK) omniq__pg_hint(pg, pg->ch_work);
  return rc;
}

/* ---- delete, retention ------------------------------------------------------ */

int omniq__pg_delete_task(void *backend, const char *id, int *prev_status, char *err,
                          size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  if (!omniq_id_valid(id))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "delete: malformed task id");
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, id);
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_DELETE, &p, OMNIQ__PG_ONCE, NULL, "delete", &r,
                          err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int found = !PQgetisnull(r, 0, 0);
  int status = found ? (int)omniq__pg_i64(r, 0, 0) : -1;
  int64_t deleted = omniq__pg_i64(r, 0, 1);
  PQclear(r);
  if (prev_status != NULL) *prev_status = status;
  if (!found) return omniq__pg_errf(OMNIQ_ENOTFOUND, err, errlen, "delete %s: no such task", id);
  if (deleted != 1)
    return omniq__pg_errf(OMNIQ_ESTATE, err, errlen, "delete %s: task is %s", id,
                          omniq_status_name(status));
  return OMNIQ_OK;
}

int omniq__pg_purge_tasks(void *backend, int64_t before_ms, size_t max, int64_t *count,
                          char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  *count = 0;
  if (max == 0) return OMNIQ_OK;
  omniq__pg_params_init(&p);
  omniq__pg_param_i64(&p, omniq__pg_server_ms(&pg->tb, before_ms));
  omniq__pg_param_i64(&p, max > INT64_MAX ? INT64_MAX : (int64_t)max);
  /* Repeating it after a lost connection deletes only what is still due
   * for deletion: harmless. */
  int rc = omniq__pg_exec(&pg->pool, OMNIQ__PGS_PURGE_TASKS, &p, OMNIQ__PG_IDEMPOTENT, NULL,
                          "purge_tasks", &r, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  *count = omniq__pg_i64(r, 0, 0);
  PQclear(r);
  return OMNIQ_OK;
}
