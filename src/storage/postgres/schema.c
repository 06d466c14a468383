/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: the schema and its migrations.
 *
 * Everything OmniQ stores lives in one schema (OMNIQ_DB_SCHEMA, default
 * "omniq"), so several independent queues can share a database and a test
 * can make a fresh store by naming a fresh schema. Its version is a row in
 * @S.meta; step i takes the schema from version i to i + 1.
 *
 * To change the schema, append a step, never edit one: databases in use
 * have already run the old steps. Add a test that opens a schema left at
 * the previous version.
 *
 * Concurrency. Opening reads the version first (one statement, no lock);
 * only a missing or old schema takes the slow path: one transaction holding
 * pg_advisory_xact_lock(OMNIQ, hashtext(schema)), which re-reads the
 * version and runs what is still missing. Many processes opening a fresh
 * database at once therefore create it exactly once; the others wait for
 * the lock and find nothing to do. DDL is transactional in PostgreSQL, so a
 * step that fails leaves the schema at the version before it.
 *
 * Notes on version 1:
 * - Times are int64 ms. eta_ms, lease_until_ms, started_at_ms,
 *   created_at_ms and the result times are stored as the writing handle's
 *   clock gave them, so every handle reads back exactly what was written.
 *   due_ms and lease_due_ms are the same moments on the database server's
 *   clock (timebase.c); every decision — is a task due, has a lease
 *   expired, is a result old enough to purge — compares those, so clock
 *   skew between hosts moves no decision (docs/storage-postgres.md).
 * - tasks_due is PARTIAL (status = 0): it holds only pending tasks, so a
 *   claim walks (queue, priority DESC, due_ms, seq) from the top in
 *   O(log n) however many finished rows the table holds; the claim says
 *   `status = 0` literally so the planner can match the predicate in a
 *   generic plan. tasks_leased (status = 1) found expired leases (until
 *   version 3).
 * - seq (an identity) gives insertion order among equal priority and due.
 * - args, kwargs and results' value are bytea: the raw serializer stores
 *   bytes unchecked, which a text column (validated UTF-8) would refuse.
 *   last_error and error hold the TaskError JSON every backend stores.
 * - Autovacuum runs on 2% of changed rows instead of 20%: a queue table
 *   turns over every row it holds, and dead index entries slow the claim
 *   walk until vacuum removes them.
 *
 * Notes on version 2 (operating a queue; docs/storage-postgres.md):
 * - finished_at_ms is the handle's time a task became terminal and
 *   finished_due_ms the same moment on the server's clock; retention
 *   (tasks_finished, terminal tasks only) and unique_for compare the
 *   latter.
 * - tasks_status_id, tasks_queue_status_id and tasks_func_status_id served
 *   a listing page (until version 3) as a walk in id order from the
 *   cursor, one status at a time (list.c). uuid order is the order of the
 *   ids' text.
 * - A unique key is a row of unique_keys naming the task that holds it and
 *   until when (held_due_ms, server clock; the largest int8 while the task
 *   is PENDING or RUNNING). Finish, cancel and retry keep held_due_ms true
 *   in their own statements, so whether a key is free is decided by that
 *   one row, which INSERT ... ON CONFLICT locks and re-reads at its latest
 *   version: of concurrent enqueues of one key, on any host, one wins.
 * - queues holds what is set per queue (pause, rate limit) and the rate
 *   window being counted; a claim that names a queue that is paused or
 *   rate-limited takes the slow path (queues.c), which locks those rows.
 * - run_totals is striped (stripe = the server process id mod 64), so
 *   finishes on different connections never wait on one counter row;
 *   readers sum the stripes.
 * - chores holds the next time (server clock) of each housekeeping chore.
 *
 * Notes on version 3 (docs/storage-postgres.md, "Tables and indexes"):
 * - A claim (PENDING -> RUNNING) and an outcome (RUNNING -> terminal, or
 *   PENDING again) change status, so neither can be a HOT update: the new
 *   row version gets an entry in every index whose predicate it meets.
 *   Version 2's listing indexes covered every row, so each transition wrote
 *   five index entries. Now every index on tasks other than the primary key
 *   is partial over one phase: pending (tasks_due and the pending listing
 *   indexes: written by enqueue and retry only), running (tasks_running:
 *   the one entry a claim adds besides the primary key) and terminal
 *   (retention and the terminal listing indexes). A listing arm names its
 *   status literally, so its phase's index applies (list.c).
 * - tasks_running (id) holds only the running tasks (at most the workers'
 *   slots): the expired-lease scan and a RUNNING page read it whole and
 *   filter, instead of an index on lease_due_ms that each lease extension
 *   would have to update. An extension changes no indexed column, and
 *   fillfactor 80 leaves room on the page, so it is a HOT update.
 * - Counting by status reads each phase's index (index-only where the
 *   visibility map allows), not the table.
 * - The migration drops and builds indexes in its transaction: on a large
 *   table it holds writers off for as long as the builds take.
 */
#include "storage/postgres/schema.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "storage/postgres/conn.h"
#include "omniq.h"

/* pg_advisory_xact_lock's first key: "OmnQ". */
#define LOCK_KEY 1332571729

static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE @S.tasks ("
    " id uuid PRIMARY KEY,"
    " seq bigint GENERATED ALWAYS AS IDENTITY,"
    " func text NOT NULL,"
    " queue text NOT NULL,"
    " args bytea NOT NULL,"
    " kwargs bytea NOT NULL,"
    " status smallint NOT NULL,"
    " priority integer NOT NULL,"
    " attempts integer NOT NULL DEFAULT 0,"
    " max_retries integer NOT NULL,"
    " eta_ms bigint NOT NULL,"
    " due_ms bigint NOT NULL,"
    " interval_ms bigint NOT NULL,"
    " timeout_ms bigint NOT NULL,"
    " created_at_ms bigint NOT NULL,"
    " started_at_ms bigint NOT NULL DEFAULT 0,"
    " lease_until_ms bigint NOT NULL DEFAULT 0,"
    " lease_due_ms bigint NOT NULL DEFAULT 0,"
    " token bigint NOT NULL DEFAULT 0,"
    " last_error text"
    ") WITH (autovacuum_vacuum_scale_factor = 0.02,"
    " autovacuum_vacuum_insert_scale_factor = 0.02,"
    " autovacuum_analyze_scale_factor = 0.02);"
    "CREATE INDEX tasks_due ON @S.tasks (queue, priority DESC, due_ms, seq)"
    " WHERE status = 0;"
    "CREATE INDEX tasks_leased ON @S.tasks (lease_due_ms) WHERE status = 1;"
    "CREATE TABLE @S.results ("
    " task_id uuid PRIMARY KEY,"
    " status smallint NOT NULL,"
    " value bytea,"
    " error text,"
    " attempts integer NOT NULL,"
    " finished_at_ms bigint NOT NULL,"
    " finished_due_ms bigint NOT NULL,"
    " last_attempt_at_ms bigint NOT NULL"
    ") WITH (autovacuum_vacuum_scale_factor = 0.02);"
    "CREATE INDEX results_finished ON @S.results (finished_due_ms);",

    /* 1 -> 2: operating a queue (storage ABI 3). */
    "ALTER TABLE @S.tasks ADD COLUMN unique_key text,"
    " ADD COLUMN unique_for_ms bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN cron text,"
    " ADD COLUMN crashes integer NOT NULL DEFAULT 0,"
    " ADD COLUMN finished_at_ms bigint NOT NULL DEFAULT 0,"
    " ADD COLUMN finished_due_ms bigint NOT NULL DEFAULT 0;"
    "UPDATE @S.tasks t SET finished_at_ms = COALESCE((SELECT r.finished_at_ms"
    " FROM @S.results r WHERE r.task_id = t.id), t.created_at_ms),"
    " finished_due_ms = COALESCE((SELECT r.finished_due_ms FROM @S.results r"
    " WHERE r.task_id = t.id), t.due_ms) WHERE t.status >= 2;"
    "CREATE INDEX tasks_status_id ON @S.tasks (status, id);"
    "CREATE INDEX tasks_queue_status_id ON @S.tasks (queue, status, id);"
    "CREATE INDEX tasks_func_status_id ON @S.tasks (func, status, id);"
    "CREATE INDEX tasks_finished ON @S.tasks (finished_due_ms) WHERE status >= 2;"
    "CREATE TABLE @S.unique_keys ("
    " queue text NOT NULL,"
    " key text NOT NULL,"
    " task_id uuid NOT NULL,"
    " held_due_ms bigint NOT NULL,"
    " PRIMARY KEY (queue, key));"
    "CREATE INDEX unique_keys_task ON @S.unique_keys (task_id);"
    "CREATE TABLE @S.queues ("
    " name text PRIMARY KEY,"
    " paused boolean NOT NULL DEFAULT false,"
    " rate_limit bigint NOT NULL DEFAULT 0,"
    " rate_period_ms bigint NOT NULL DEFAULT 0,"
    " window_start bigint NOT NULL DEFAULT 0,"
    " window_count bigint NOT NULL DEFAULT 0);"
    "CREATE TABLE @S.run_totals ("
    " queue text NOT NULL,"
    " kind smallint NOT NULL,"
    " stripe smallint NOT NULL,"
    " n bigint NOT NULL,"
    " PRIMARY KEY (queue, kind, stripe));"
    "CREATE TABLE @S.chores (name text PRIMARY KEY, next_due_ms bigint NOT NULL);",

    /* 2 -> 3: few index entries per claim and outcome. */
    "ALTER TABLE @S.tasks SET (fillfactor = 80);"
    "DROP INDEX @S.tasks_leased, @S.tasks_status_id, @S.tasks_queue_status_id,"
    " @S.tasks_func_status_id;"
    "CREATE INDEX tasks_pending_id ON @S.tasks (id) WHERE status = 0;"
    "CREATE INDEX tasks_pending_queue_id ON @S.tasks (queue, id) WHERE status = 0;"
    "CREATE INDEX tasks_pending_func_id ON @S.tasks (func, id) WHERE status = 0;"
    "CREATE INDEX tasks_running ON @S.tasks (id) WHERE status = 1;"
    "CREATE INDEX tasks_done_id ON @S.tasks (status, id) WHERE status >= 2;"
    "CREATE INDEX tasks_done_queue_id ON @S.tasks (queue, status, id) WHERE status >= 2;"
    "CREATE INDEX tasks_done_func_id ON @S.tasks (func, status, id) WHERE status >= 2;",
};

#define LATEST ((int)(sizeof migrations / sizeof migrations[0]))

int omniq__pg_schema_version(void) { return LATEST; }

int omniq__pg_schema_check(const char *name, char *err, size_t errlen) {
  size_t n = name != NULL ? strlen(name) : 0;
  const char *why = NULL;
  if (n == 0 || n > OMNIQ__PG_SCHEMA_MAX)
    why = "must be 1-48 characters";
  else if (name[0] >= '0' && name[0] <= '9')
    why = "must not start with a digit";
  else if (strncmp(name, "pg_", 3) == 0)
    why = "must not start with pg_ (reserved by PostgreSQL)";
  for (size_t i = 0; why == NULL && i < n; i++)
    if (!((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ||
          name[i] == '_'))
      why = "may hold only a-z, 0-9 and _";
  if (why == NULL) return OMNIQ_OK;
  snprintf(err, errlen, "OMNIQ_DB_SCHEMA: '%.64s' %s", name != NULL ? name : "", why);
  return OMNIQ_ECONFIG;
}

char *omniq__pg_sql(const char *tmpl, const char *schema) {
  size_t slen = strlen(schema), n = 0;
  for (const char *p = tmpl; (p = strstr(p, "@S")) != NULL; p += 2) n++;
  char *out = omniq__malloc(strlen(tmpl) + n * slen + 1), *o = out;
  if (out == NULL) return NULL;
  for (const char *p = tmpl;;) {
    const char *at = strstr(p, "@S");
    size_t len = at != NULL ? (size_t)(at - p) : strlen(p);
    memcpy(o, p, len);
    o += len;
    if (at == NULL) break;
    memcpy(o, schema, slen);
    o += slen;
    p = at + 2;
  }
  *o = '\0';
  return out;
}

/* Runs a templated command. */
static int run(PGconn *pg, const char *tmpl, const char *schema, const char *what, char *err,
               size_t errlen) {
  char *sql = omniq__pg_sql(tmpl, schema);
  if (sql == NULL) {
    snprintf(err, errlen, "postgres: out of memory");
    return OMNIQ_ENOMEM;
  }
  int rc = omniq__pg_command(pg, sql, what, err, errlen);
  omniq__free(sql);
  return rc;
}

/* Reads the version: *version = -1 when the schema or its meta table does
 * not exist yet. */
static int read_version(PGconn *pg, const char *schema, int *version, char *err, size_t errlen) {
  char *sql = omniq__pg_sql("SELECT value FROM @S.meta WHERE key = 'schema_version'", schema);
  if (sql == NULL) {
    snprintf(err, errlen, "postgres: out of memory");
    return OMNIQ_ENOMEM;
  }
  PGresult *r = PQexec(pg, sql);
  omniq__free(sql);
  int rc = OMNIQ_OK;
  const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  *version = -1;
  if (PQresultStatus(r) == PGRES_TUPLES_OK) {
    if (PQntuples(r) == 1) *version = atoi(PQgetvalue(r, 0, 0));
  } else if (st == NULL || (strcmp(st, "3F000") != 0 && strcmp(st, "42P01") != 0)) {
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    snprintf(err, errlen, "postgres: reading the schema version of %s: %s", schema,
             msg != NULL ? msg : PQerrorMessage(pg));
    rc = omniq__pg_code(r, pg);
  }
  PQclear(r);
  return rc;
}

static int too_new(const char *schema, int version, char *err, size_t errlen) {
  snprintf(err, errlen,
           "postgres: schema %s is at version %d, written by a newer OmniQ (this one knows %d)",
           schema, version, LATEST);
  return OMNIQ_ECORRUPT;
}

static int migrate_locked(PGconn *pg, const char *schema, char *err, size_t errlen) {
  char lock[160];
  int version, rc;
  snprintf(lock, sizeof lock, "SELECT pg_advisory_xact_lock(%d, hashtext('%s'))", LOCK_KEY,
           schema);
  if ((rc = omniq__pg_command(pg, lock, "migration lock", err, errlen)) != OMNIQ_OK ||
      (rc = run(pg, "CREATE SCHEMA IF NOT EXISTS @S", schema, "create schema", err, errlen)) ||
      (rc = run(pg, "CREATE TABLE IF NOT EXISTS @S.meta (key text PRIMARY KEY, value text NOT NULL)",
                schema, "create meta table", err, errlen)) ||
      (rc = read_version(pg, schema, &version, err, errlen)))
    return rc;
  if (version > LATEST) return too_new(schema, version, err, errlen);
  for (int v = version < 0 ? 0 : version; v < LATEST; v++) {
    char what[64];
    snprintf(what, sizeof what, "migration to version %d", v + 1);
    rc = run(pg, migrations[v], schema, what, err, errlen);
    if (rc != OMNIQ_OK) {
      /* A table that is there already but not at this version's place was
       * not made by OmniQ. */
      if (rc == OMNIQ_ECORRUPT) {
        snprintf(err, errlen,
                 "postgres: schema %s holds tables OmniQ did not make; name another "
                 "schema with OMNIQ_DB_SCHEMA",
                 schema);
        return OMNIQ_ECORRUPT;
      }
      return rc;
    }
  }
  char set[200];
  snprintf(set, sizeof set,
           "INSERT INTO %s.meta VALUES ('schema_version', '%d') "
           "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
           schema, LATEST);
  return omniq__pg_command(pg, set, "record schema version", err, errlen);
}

int omniq__pg_migrate(PGconn *pg, const char *schema, char *err, size_t errlen) {
  int version, rc = read_version(pg, schema, &version, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (version == LATEST) return OMNIQ_OK;
  if (version > LATEST) return too_new(schema, version, err, errlen);
  if ((rc = omniq__pg_command(pg, "BEGIN", "begin migration", err, errlen)) != OMNIQ_OK) return rc;
  rc = migrate_locked(pg, schema, err, errlen);
  if (rc == OMNIQ_OK) return omniq__pg_command(pg, "COMMIT", "commit migration", err, errlen);
  char ignored[64];
  omniq__pg_command(pg, "ROLLBACK", "rollback migration", ignored, sizeof ignored);
  return rc;
}
