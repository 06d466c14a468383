/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: opening, closing, the statements and the table.
 *
 * Opening a handle: check the connection string and the schema name, make
 * one connection, bring the schema to the current version (schema.c),
 * measure the clock offset on it (timebase.c), hand it to the pool, and
 * start the listener (listen.c), which turns notifications from other
 * processes and hosts into this process's own wake-ups. A handle therefore
 * holds one listener connection plus up to one pooled connection per
 * thread that uses it at the same time.
 *
 * Closing stops the listener first (it calls into the process's wake-ups),
 * then closes the pool; the caller guarantees no operation is running.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/notify.h"
#include "storage/postgres/postgres.h"
#include "storage/registry.h"

/* An outcome (see postgres.h and OMNIQ__PG_FINISH_CTES): how many rows it
 * changed. */
const char omniq__pg_finish_sql[] = "WITH " OMNIQ__PG_FINISH_CTES " SELECT count(*) FROM t";

/* One arm per phase, each over that phase's partial index (schema.c). */
const char omniq__pg_count_sql[] =
    "SELECT 0::int2, count(*) FROM @S.tasks WHERE status = 0"
    " UNION ALL SELECT 1::int2, count(*) FROM @S.tasks WHERE status = 1"
    " UNION ALL SELECT status, count(*) FROM @S.tasks WHERE status >= 2 GROUP BY status";

/* Statement names and texts ("@S" = the schema), by OMNIQ__PGS_*. */
static const struct {
  const char *name;
  const char *sql;
} statements[OMNIQ__PGS_COUNT_] = {
    [OMNIQ__PGS_INSERT] = {"omniq_insert", NULL /* omniq__pg_insert_sql */},
    [OMNIQ__PGS_CLAIM1] = {"omniq_claim1", omniq__pg_claim1_sql},
    [OMNIQ__PGS_CLAIMN] = {"omniq_claimn", omniq__pg_claimn_sql},
    [OMNIQ__PGS_FINISH] = {"omniq_finish", omniq__pg_finish_sql},
    [OMNIQ__PGS_EXTEND] = {"omniq_extend",
                           "UPDATE @S.tasks SET lease_until_ms = $3::int8, lease_due_ms = $4::int8"
                           " WHERE id = $1::uuid AND token = $2::int8 AND status = 1 RETURNING 1"},
    [OMNIQ__PGS_CANCEL] =
        {"omniq_cancel",
         /* o locks the row and sees its latest status; the result takes
          * attempts and started_at from the row as the UPDATE leaves it,
          * so a claim that raced the cancel is counted in both or neither.
          * A unique key is held until finished_at + unique_for_ms. */
         "WITH o AS (SELECT id, status FROM @S.tasks WHERE id = $1::uuid FOR UPDATE),"
         " t AS ("
         " UPDATE @S.tasks k SET status = 4, finished_at_ms = $2::int8,"
         " finished_due_ms = $3::int8 FROM o WHERE k.id = o.id AND o.status IN (0, 1)"
         " RETURNING k.id, k.attempts, k.started_at_ms, k.queue, k.unique_key,"
         " k.unique_for_ms),"
         " r AS ("
         " INSERT INTO @S.results (task_id, status, value, error, attempts, finished_at_ms,"
         " finished_due_ms, last_attempt_at_ms)"
         " SELECT id, 4, NULL, NULL, attempts, $2::int8, $3::int8, started_at_ms FROM t"
         " ON CONFLICT (task_id) DO UPDATE SET status = excluded.status,"
         " value = excluded.value, error = excluded.error, attempts = excluded.attempts,"
         " finished_at_ms = excluded.finished_at_ms,"
         " finished_due_ms = excluded.finished_due_ms,"
         " last_attempt_at_ms = excluded.last_attempt_at_ms),"
         " h AS ("
         " UPDATE @S.unique_keys u SET held_due_ms = $3::int8 + t.unique_for_ms FROM t"
         " WHERE t.unique_key IS NOT NULL AND u.queue = t.queue AND u.key = t.unique_key"
         " AND u.task_id = t.id)"
         " SELECT (SELECT status FROM o), (SELECT count(*) FROM t)"},
    [OMNIQ__PGS_STATUS] = {"omniq_status", "SELECT status FROM @S.tasks WHERE id = $1::uuid"},
    [OMNIQ__PGS_GET_TASK] = {"omniq_get_task", "SELECT " OMNIQ__PG_TASK_COLS
                                               " FROM @S.tasks WHERE id = $1::uuid"},
    [OMNIQ__PGS_GET_RESULT] = {"omniq_get_result", "SELECT " OMNIQ__PG_RESULT_COLS
                                                   " FROM @S.results WHERE task_id = $1::uuid"},
    [OMNIQ__PGS_PURGE] = {"omniq_purge",
                          "DELETE FROM @S.results WHERE finished_due_ms < $1::int8"},
    [OMNIQ__PGS_COUNT] = {"omniq_count", omniq__pg_count_sql},
    [OMNIQ__PGS_EXPIRED] = {"omniq_expired", omniq__pg_expired_sql},
    [OMNIQ__PGS_KEY_TAKE] = {"omniq_key_take", omniq__pg_key_take_sql},
    [OMNIQ__PGS_KEY_HOLDER] = {"omniq_key_holder",
                               "SELECT task_id FROM @S.unique_keys"
                               " WHERE queue = $1::text AND key = $2::text"},
    /* Name order: claims of several limited queues lock them alike. */
    [OMNIQ__PGS_QUEUE_LOCK] = {"omniq_queue_lock",
                               "SELECT name, paused, rate_limit, rate_period_ms, window_start,"
                               " window_count FROM @S.queues WHERE name = ANY($1::text[])"
                               " ORDER BY name FOR UPDATE"},
    [OMNIQ__PGS_QUEUE_WINDOW] = {"omniq_queue_window",
                                 "UPDATE @S.queues SET window_start = $2::int8,"
                                 " window_count = $3::int8 WHERE name = $1::text"},
    [OMNIQ__PGS_SET_PAUSED] = {"omniq_set_paused",
                               "INSERT INTO @S.queues (name, paused) VALUES ($1::text, $2::bool)"
                               " ON CONFLICT (name) DO UPDATE SET paused = excluded.paused"},
    /* A new period starts a new window; the same period keeps counting. */
    [OMNIQ__PGS_SET_RATE] = {"omniq_set_rate",
                             "INSERT INTO @S.queues AS q (name, rate_limit, rate_period_ms)"
                             " VALUES ($1::text, $2::int8, $3::int8) ON CONFLICT (name) DO UPDATE"
                             " SET rate_limit = excluded.rate_limit,"
                             " rate_period_ms = excluded.rate_period_ms,"
                             " window_count = CASE WHEN q.rate_period_ms = excluded.rate_period_ms"
                             " THEN q.window_count ELSE 0 END"},
    [OMNIQ__PGS_CHORE] = {"omniq_chore",
                          "INSERT INTO @S.chores AS c (name, next_due_ms) VALUES ($1::text, $3::int8)"
                          " ON CONFLICT (name) DO UPDATE SET next_due_ms = excluded.next_due_ms"
                          " WHERE c.next_due_ms <= $2::int8 RETURNING 1"},
    [OMNIQ__PGS_TASK_LOCK] = {"omniq_task_lock",
                              "SELECT status, queue, unique_key FROM @S.tasks"
                              " WHERE id = $1::uuid FOR UPDATE"},
    [OMNIQ__PGS_RETRY] = {"omniq_retry",
                          "UPDATE @S.tasks SET status = 0, attempts = 0, crashes = 0,"
                          " finished_at_ms = 0, finished_due_ms = 0, eta_ms = $2::int8,"
                          " due_ms = $3::int8, lease_until_ms = 0, lease_due_ms = 0"
                          " WHERE id = $1::uuid"},
    [OMNIQ__PGS_DELETE] = {"omniq_delete", omniq__pg_delete_sql},
    [OMNIQ__PGS_PURGE_TASKS] = {"omniq_purge_tasks", omniq__pg_purge_tasks_sql},
    [OMNIQ__PGS_FINISH_CLAIM1] = {"omniq_finish_claim1", omniq__pg_finish_claim1_sql},
    [OMNIQ__PGS_FINISH_CLAIMN] = {"omniq_finish_claimn", omniq__pg_finish_claimn_sql},
    [OMNIQ__PGS_RELEASE] = {"omniq_release", omniq__pg_release_sql},
    [OMNIQ__PGS_FINISH_MANY] = {"omniq_finish_many", omniq__pg_finish_many_sql},
};

/* Notifications from elsewhere become this process's wake-ups; a lost
 * listener connection means the pooled ones are lost too. */
static void wake(void *userdata, int events) {
  omniq__pg_t *pg = userdata;
  if (events & OMNIQ__PG_EV_LOST) omniq__pg_pool_invalidate(&pg->pool);
  if (events & OMNIQ__PG_EV_WORK) omniq__notify(OMNIQ__EV_WORK);
  if (events & OMNIQ__PG_EV_RESULT) omniq__notify(OMNIQ__EV_RESULT);
}

void omniq__pg_maybe_resync(omniq__pg_t *pg) {
  omniq__pg_conn_t *c;
  char err[256];
  if (!omniq__pg_timebase_resync_due(&pg->tb)) return;
  if (omniq__pg_acquire(&pg->pool, &c, err, sizeof err) != OMNIQ_OK) return;
  omniq__pg_timebase_measure(&pg->tb, c->pg, err, sizeof err); /* kept as is on failure */
  omniq__pg_release(&pg->pool, c);
}

static void pg_free(omniq__pg_t *pg) {
  omniq__pg_listener_stop(pg->listener);
  omniq__pg_pool_free(&pg->pool);
  if (pg->group_ready) omniq__pg_group_destroy(&pg->group);
  for (int i = 0; i < OMNIQ__PGS_COUNT_; i++) omniq__free(pg->stmts[i].sql);
  omniq__free(pg);
}

static void pg_close(void *backend) {
  if (backend != NULL) pg_free(backend);
}

static int pg_open(const omniq_settings_t *s, void **backend, char *err, size_t errlen) {
  omniq__pg_t *pg;
  omniq__pg_conn_t *c;
  int rc;
  *backend = NULL;
  const char *schema = s->db_schema[0] ? s->db_schema : OMNIQ__PG_DEFAULT_SCHEMA;
  if (s->db_url[0] == '\0')
    return omniq__pg_errf(OMNIQ_ECONFIG, err, errlen,
                          "the postgres backend needs OMNIQ_DB_URL (postgresql://...)");
  if ((rc = omniq__pg_conninfo_check(s->db_url, err, errlen)) != OMNIQ_OK ||
      (rc = omniq__pg_schema_check(schema, err, errlen)) != OMNIQ_OK)
    return rc;
  if ((pg = omniq__calloc(1, sizeof *pg)) == NULL)
    return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: out of memory");
  if (omniq__pg_group_init(&pg->group) != 0) {
    omniq__free(pg);
    return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: out of resources");
  }
  pg->group_ready = 1;
  snprintf(pg->schema, sizeof pg->schema, "%s", schema);
  omniq__pg_channel(schema, OMNIQ__PG_EV_WORK, pg->ch_work, sizeof pg->ch_work);
  omniq__pg_channel(schema, OMNIQ__PG_EV_RESULT, pg->ch_result, sizeof pg->ch_result);
  omniq__pg_timebase_init(&pg->tb, s);
  for (int i = 0; i < OMNIQ__PGS_COUNT_; i++) {
    const char *tmpl = statements[i].sql != NULL ? statements[i].sql : omniq__pg_insert_sql;
    pg->stmts[i].name = statements[i].name;
    if ((pg->stmts[i].sql = omniq__pg_sql(tmpl, schema)) == NULL) {
      pg_free(pg);
      return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: out of memory");
    }
  }
  if (omniq__pg_pool_init(&pg->pool, s->db_url, pg->stmts, OMNIQ__PGS_COUNT_) != OMNIQ_OK) {
    omniq__free(pg->pool.conninfo);
    pg->pool.conninfo = NULL;
    pg_free(pg);
    return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: out of memory");
  }
  /* The first connection migrates and measures; the pool keeps it. */
  if ((rc = omniq__pg_acquire(&pg->pool, &c, err, errlen)) != OMNIQ_OK) {
    pg_free(pg);
    return rc;
  }
  if ((rc = omniq__pg_migrate(c->pg, schema, err, errlen)) == OMNIQ_OK)
    rc = omniq__pg_timebase_measure(&pg->tb, c->pg, err, errlen);
  omniq__pg_release(&pg->pool, c);
  if (rc == OMNIQ_OK)
    rc = omniq__pg_listener_start(s->db_url, schema, wake, pg, &pg->listener, err, errlen);
  if (rc != OMNIQ_OK) {
    pg_free(pg);
    return rc;
  }
  *backend = pg;
  return OMNIQ_OK;
}

const omniq_storage_ops_t omniq__postgres_ops = {
    .abi_version = OMNIQ_STORAGE_ABI,
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .enqueue = omniq__pg_enqueue,
    .claim = omniq__pg_claim,
    .finish = omniq__pg_finish,
    .extend_lease = omniq__pg_extend_lease,
    .cancel = omniq__pg_cancel,
    .get_task = omniq__pg_get_task,
    .get_result = omniq__pg_get_result,
    .purge_results = omniq__pg_purge_results,
    .count_by_status = omniq__pg_count_by_status,
    .expired_leases = omniq__pg_expired_leases,
    .enqueue_unique = omniq__pg_enqueue_unique,
    .list = omniq__pg_list,
    .retry = omniq__pg_retry,
    .delete_task = omniq__pg_delete_task,
    .purge_tasks = omniq__pg_purge_tasks,
    .set_paused = omniq__pg_set_paused,
    .set_rate = omniq__pg_set_rate,
    .queue_stats = omniq__pg_queue_stats,
    .claim_chore = omniq__pg_claim_chore,
    /* A report carries the runner's next claim (group.c): the pool counts
     * the claimed tasks' leases from before the call, so the time a claim
     * waits in a group commit is taken off them, not added. */
    .finish_claim = omniq__pg_finish_claim,
    .finish_many = omniq__pg_finish_many,
    .release = omniq__pg_give_back,
};
