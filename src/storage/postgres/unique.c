/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: unique keys — enqueues that carry them, and a key
 * taken again by a retry.
 *
 * A key is one row of unique_keys: (queue, key) -> the task holding it and
 * until when (held_due_ms, on the server's clock; for ever while the task
 * is PENDING or RUNNING). Finish and cancel write held_due_ms in their own
 * statements (backend.c), delete and retention remove the row with its
 * task (manage.c), so the row alone says whether the key is free.
 *
 * Taking a key is one INSERT ... ON CONFLICT DO UPDATE whose WHERE lets
 * the update through only when the key is free. On a conflict PostgreSQL
 * locks the existing row and judges the WHERE on its latest committed
 * version, even in READ COMMITTED, and an insert racing another insert of
 * the same key waits for that transaction to end. So of any number of
 * concurrent enqueues of one key, on any number of hosts, exactly one
 * takes it; the others see the winner's row. (A WHERE that looked at the
 * holder's task row instead would read it through the statement's
 * snapshot, taken before the winner committed, and let two in.)
 *
 * An enqueue with keys is one transaction: every key first (so a held one
 * stores nothing and each holder is named), then the inserts. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/postgres/postgres.h"

const char omniq__pg_key_take_sql[] =
    "INSERT INTO @S.unique_keys AS u (queue, key, task_id, held_due_ms)"
    " VALUES ($1::text, $2::text, $3::uuid, $5::int8)"
    " ON CONFLICT (queue, key) DO UPDATE SET task_id = excluded.task_id,"
    " held_due_ms = excluded.held_due_ms"
    " WHERE u.task_id = excluded.task_id OR u.held_due_ms <= $4::int8"
    " RETURNING 1";

int omniq__pg_take_key(omniq__pg_t *pg, omniq__pg_conn_t *c, const char *queue, const char *key,
                       const char *id, int64_t at_due, int64_t held_due,
                       char holder[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  omniq__pg_params_t p;
  PGresult *r;
  omniq__pg_params_init(&p);
  omniq__pg_param_text(&p, queue);
  omniq__pg_param_text(&p, key);
  omniq__pg_param_text(&p, id);
  omniq__pg_param_i64(&p, at_due);
  omniq__pg_param_i64(&p, held_due);
  int rc = omniq__pg_exec_on(&pg->pool, c, OMNIQ__PGS_KEY_TAKE, &p, "taking a unique key", &r,
                             err, errlen);
  if (rc != OMNIQ_OK) return rc;
  int taken = PQntuples(r) == 1;
  PQclear(r);
  if (taken) return OMNIQ_OK;
  /* The row is locked by the failed update now: this read sees the holder
   * as it stays until the transaction ends. */
  p.n = 2;
  rc = omniq__pg_exec_on(&pg->pool, c, OMNIQ__PGS_KEY_HOLDER, &p, "reading a unique key", &r, err,
                         errlen);
  if (rc != OMNIQ_OK) return rc;
  char who[OMNIQ_ID_SIZE] = "";
  if (PQntuples(r) == 1) omniq__pg_uuid(r, 0, 0, who);
  PQclear(r);
  if (holder != NULL) memcpy(holder, who, OMNIQ_ID_SIZE);
  return omniq__pg_errf(OMNIQ_EEXISTS, err, errlen, "unique key of queue %s is held by task %s",
                        queue, who);
}

/* Takes every task's key on c; *held says whether any was held (each
 * holder named in holders, "" for the others). */
static int take_keys(omniq__pg_t *pg, omniq__pg_conn_t *c, omniq_task_t *const *tasks, size_t n,
                     char (*holders)[OMNIQ_ID_SIZE], int *held, char *err, size_t errlen) {
  int rc = OMNIQ_OK;
  *held = 0;
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++) {
    const omniq_task_t *t = tasks[i];
    char who[OMNIQ_ID_SIZE] = "";
    if (t->unique_key != NULL) {
      int64_t until = omniq_status_is_terminal(t->status)
                          ? omniq__pg_server_ms(&pg->tb, t->finished_at_ms) + t->unique_for_ms
                          : OMNIQ__PG_HELD_FOREVER;
      rc = omniq__pg_take_key(pg, c, t->queue, t->unique_key, t->id,
                              omniq__pg_server_ms(&pg->tb, t->created_at_ms), until, who, err,
                              errlen);
      if (rc == OMNIQ_EEXISTS) {
        *held = 1;
        rc = OMNIQ_OK;
      }
    }
    if (holders != NULL) memcpy(holders[i], who, OMNIQ_ID_SIZE);
  }
  return rc;
}

int omniq__pg_enqueue_unique(void *backend, omniq_task_t *const *tasks, size_t n,
                             char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_batch_t b;
  omniq__pg_conn_t *c;
  int held = 0, rc;
  if (n == 0) return OMNIQ_OK;
  for (size_t i = 0; i < n; i++)
    if (tasks == NULL || tasks[i] == NULL || !omniq_id_valid(tasks[i]->id))
      return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "enqueue: task %zu has no valid id", i);
  if ((rc = omniq__pg_batch_fill(pg, tasks, n, &b)) != OMNIQ_OK) {
    omniq__pg_batch_free(&b);
    return omniq__pg_errf(rc, err, errlen, "postgres: enqueue: %s",
                          rc == OMNIQ_ENOMEM ? "out of memory" : "a task misses a field");
  }
  if ((rc = omniq__pg_tx_begin(pg, &c, err, errlen)) == OMNIQ_OK) {
    rc = take_keys(pg, c, tasks, n, holders, &held, err, errlen);
    if (rc == OMNIQ_OK && held)
      rc = omniq__pg_errf(OMNIQ_EEXISTS, err, errlen,
                          "enqueue: a unique key is held; nothing stored");
    if (rc == OMNIQ_OK) rc = omniq__pg_insert_on(pg, c, &b, err, errlen);
    rc = omniq__pg_tx_end(pg, c, rc, err, errlen);
  }
  omniq__pg_batch_free(&b);
  if (rc == OMNIQ_OK) omniq__pg_hint(pg, pg->ch_work);
  return omniq__pg_enqueue_error(rc, err, errlen);
}
