/* SPDX-License-Identifier: MIT */
/* The SQLite backend's schema version 3 (src/storage/sqlite/schema.c):
 * a version 2 database migrates keeping every record, several processes
 * opening it at once migrate it once, an opener waits out another's long
 * migration, a current database opens beside a busy writer without
 * waiting for it, and the listing and the counts,
 * now read from other indexes, find exactly what a full scan of the table
 * finds for every combination of filters. */
#include "support/backend.h"
#include "support/sqlite_raw.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/registry.h"
#include "storage/sqlite/backend.h"

#define NOW TH_EPOCH_MS
#define ERRLEN 512
#define OPENERS 4

static const omniq_storage_ops_t *ops = &omniq__sqlite_ops;

typedef th_be_t fx_t;

#define OK(fx, expr) th_be_ok((fx)->err, expr)

static int setup(void **state) {
  *state = th_be_unopened("sqlite", 1);
  return 0;
}

static int teardown(void **state) {
  omniq__sqlite_set_busy_timeout(OMNIQ__SQLITE_BUSY_MS);
  omniq__sqlite_set_migrate_wait(OMNIQ__SQLITE_MIGRATE_WAIT_MS);
  th_be_free(*state);
  return 0;
}

/* What an sqlite3_str holds, "" rather than NULL when empty (yours:
 * sqlite3_free). */
static char *text_of(sqlite3_str *s) {
  char *t = sqlite3_str_finish(s);
  return t != NULL ? t : sqlite3_mprintf("%s", "");
}

/* Every row a query returns, each column with its type, as one text
 * (yours: sqlite3_free). */
static char *dump(sqlite3 *db, const char *sql) {
  sqlite3_str *out = sqlite3_str_new(db);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  while (sqlite3_step(st) == SQLITE_ROW) {
    for (int c = 0; c < sqlite3_column_count(st); c++)
      sqlite3_str_appendf(out, "%d:%s|", sqlite3_column_type(st, c),
                          sqlite3_column_type(st, c) == SQLITE_NULL
                              ? "" : (const char *)sqlite3_column_text(st, c));
    sqlite3_str_appendall(out, "\n");
  }
  sqlite3_finalize(st);
  return text_of(out);
}

/* Everything a store holds, table by table, in a fixed order. */
static char *dump_store(sqlite3 *db) {
  static const char *const tables[] = {
      "SELECT * FROM tasks ORDER BY seq",
      "SELECT task_id, status, value, error, attempts, finished_at, last_attempt_at"
      " FROM results ORDER BY task_id",
      "SELECT * FROM unique_keys ORDER BY queue, key",
      "SELECT * FROM queues ORDER BY name",
      "SELECT * FROM run_totals ORDER BY queue, kind",
      "SELECT * FROM chores ORDER BY name",
  };
  sqlite3_str *out = sqlite3_str_new(db);
  for (size_t i = 0; i < sizeof tables / sizeof tables[0]; i++) {
    char *t = dump(db, tables[i]);
    sqlite3_str_appendf(out, "== %s\n%s", tables[i], t);
    sqlite3_free(t);
  }
  return sqlite3_str_finish(out);
}

/* ---- a version 2 database ---------------------------------------------- */

/* A TaskError as every backend stores it (omniq_task_error_to_json). */
#define ERROR_JSON                                                                        \
  "{\"error_type\":\"ValueError\",\"message\":\"no\",\"timestamp\":null,\"traceback\":null," \
  "\"retry_count\":4,\"is_retryable\":false}"

/* The schema as version 2 left it (steps 0 -> 1 -> 2 of schema.c, as they
 * were), with a task of every status, results, a unique key, queue
 * settings, running totals and a chore. */
static const char v2_store[] =
    "CREATE TABLE tasks (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
    " func TEXT NOT NULL, queue TEXT NOT NULL, args TEXT NOT NULL, kwargs TEXT NOT NULL,"
    " status INTEGER NOT NULL, priority INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0, max_retries INTEGER NOT NULL DEFAULT 0,"
    " eta INTEGER NOT NULL, interval_ms INTEGER NOT NULL DEFAULT 0,"
    " timeout_ms INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL DEFAULT 0, lease_until INTEGER NOT NULL DEFAULT 0,"
    " token INTEGER NOT NULL DEFAULT 0, last_error TEXT);"
    "CREATE INDEX tasks_due ON tasks(queue, priority DESC, eta, seq) WHERE status = 0;"
    "CREATE INDEX tasks_leased ON tasks(lease_until) WHERE status = 1;"
    "CREATE TABLE results (task_id TEXT PRIMARY KEY, status INTEGER NOT NULL, value TEXT,"
    " error TEXT, attempts INTEGER NOT NULL, finished_at INTEGER NOT NULL,"
    " last_attempt_at INTEGER NOT NULL);"
    "CREATE INDEX results_finished ON results(finished_at);"
    "ALTER TABLE tasks ADD COLUMN unique_key TEXT;"
    "ALTER TABLE tasks ADD COLUMN unique_for_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN cron TEXT;"
    "ALTER TABLE tasks ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN finished_at INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX tasks_status_id ON tasks(status, id);"
    "CREATE INDEX tasks_queue_status_id ON tasks(queue, status, id);"
    "CREATE INDEX tasks_func_status_id ON tasks(func, status, id);"
    "CREATE INDEX tasks_finished ON tasks(finished_at) WHERE status >= 2;"
    "CREATE TABLE unique_keys (queue TEXT NOT NULL, key TEXT NOT NULL, task_id TEXT NOT NULL,"
    " PRIMARY KEY (queue, key)) WITHOUT ROWID;"
    "CREATE INDEX unique_keys_task ON unique_keys(task_id);"
    "CREATE TABLE queues (name TEXT PRIMARY KEY, paused INTEGER NOT NULL DEFAULT 0,"
    " rate_limit INTEGER NOT NULL DEFAULT 0, rate_period_ms INTEGER NOT NULL DEFAULT 0,"
    " window_start INTEGER NOT NULL DEFAULT 0, window_count INTEGER NOT NULL DEFAULT 0)"
    " WITHOUT ROWID;"
    "CREATE TABLE run_totals (queue TEXT NOT NULL, kind INTEGER NOT NULL, n INTEGER NOT NULL,"
    " PRIMARY KEY (queue, kind)) WITHOUT ROWID;"
    "CREATE TABLE chores (name TEXT PRIMARY KEY, next_at INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO tasks (id, func, queue, args, kwargs, status, priority, attempts, max_retries,"
    " eta, created_at, started_at, lease_until, token, last_error, unique_key, unique_for_ms,"
    " cron, crashes, finished_at) VALUES"
    " ('01a3185c-5000-7000-8000-000000000001', 'send', 'mail', '[1]', '{}', 0, 5, 0, 3,"
    "  100, 10, 0, 0, 0, NULL, 'k1', 60000, NULL, 0, 0),"
    " ('01a3185c-5000-7000-8000-000000000002', 'send', 'mail', '[2]', '{\"a\":1}', 1, 0, 1, 3,"
    "  100, 20, 150, 30150, 7, NULL, NULL, 0, NULL, 1, 0),"
    " ('01a3185c-5000-7000-8000-000000000003', 'add', 'default', '[3]', '{}', 2, 0, 1, 0,"
    "  100, 30, 160, 0, 1, NULL, NULL, 0, '*/5 * * * *', 0, 500),"
    " ('01a3185c-5000-7000-8000-000000000004', 'add', 'default', '[4]', '{}', 3, 0, 4, 3,"
    "  100, 40, 170, 0, 4, '" ERROR_JSON "',"
    "  NULL, 0, NULL, 0, 600),"
    " ('01a3185c-5000-7000-8000-000000000005', 'send', 'mail', '[5]', '{}', 4, 0, 0, 3,"
    "  100, 50, 0, 0, 0, NULL, NULL, 0, NULL, 0, 700);"
    "INSERT INTO results VALUES"
    " ('01a3185c-5000-7000-8000-000000000003', 2, '42', NULL, 1, 500, 160),"
    " ('01a3185c-5000-7000-8000-000000000004', 3, NULL,"
    "  '" ERROR_JSON "', 4, 600, 170),"
    " ('01a3185c-5000-7000-8000-000000000005', 4, NULL, NULL, 0, 700, 0);"
    "INSERT INTO unique_keys VALUES ('mail', 'k1', '01a3185c-5000-7000-8000-000000000001');"
    "INSERT INTO queues VALUES ('mail', 1, 0, 0, 0, 0), ('default', 0, 10, 1000, 2000, 3);"
    "INSERT INTO run_totals VALUES ('default', 0, 12), ('default', 1, 2), ('mail', 2, 5);"
    "INSERT INTO chores VALUES ('retention', 9000);"
    "PRAGMA user_version = 2; PRAGMA application_id = 1332571729;";

static char *make_v2_store(fx_t *fx) {
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "PRAGMA journal_mode = WAL");
  th_sqlite_exec(db, v2_store);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  return p;
}

/* After migrating: version 3, the status-keyed listing indexes gone, the
 * new ones there, and every record as it was. */
static void assert_migrated(const char *path, const char *before) {
  sqlite3 *db = th_sqlite_open(path);
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), 3);
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE name IN"
                           " ('tasks_status_id', 'tasks_queue_status_id', 'tasks_func_status_id')"),
                   0);
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN"
                           " ('tasks_queue_id', 'tasks_func_id', 'tasks_pending_id',"
                           " 'tasks_done_id', 'tasks_done_queue', 'tasks_done_func',"
                           " 'results_finished')"),
                   7);
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE name = 'results'"
                           " AND sql LIKE '%WITHOUT ROWID'"),
                   1);
  char *check = dump(db, "PRAGMA integrity_check");
  assert_string_equal(check, "3:ok|\n");
  sqlite3_free(check);
  char *after = dump_store(db);
  assert_string_equal(after, before);
  sqlite3_free(after);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void test_a_version_2_database_is_migrated_keeping_every_record(void **state) {
  fx_t *fx = *state;
  char *p = make_v2_store(fx);
  sqlite3 *db = th_sqlite_open(p);
  char *before = dump_store(db);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);

  OK(fx, th_be_open(fx));
  assert_migrated(p, before);

  /* And the backend reads it as it was. */
  int64_t counts[OMNIQ_STATUS_COUNT];
  OK(fx, ops->count_by_status(fx->b, counts, fx->err, ERRLEN));
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) assert_int_equal(counts[s], 1);
  omniq_queue_info_t *q = NULL;
  size_t nq = 0;
  OK(fx, ops->queue_stats(fx->b, NULL, NOW, &q, &nq, fx->err, ERRLEN));
  assert_int_equal(nq, 2);
  assert_string_equal(q[0].name, "default");
  assert_int_equal(q[0].counts[OMNIQ_SUCCESS], 1);
  assert_int_equal(q[0].counts[OMNIQ_FAILED], 1);
  assert_int_equal(q[0].runs[OMNIQ_RUNS_SUCCEEDED], 12);
  assert_int_equal(q[0].runs[OMNIQ_RUNS_FAILED], 2);
  assert_int_equal(q[0].rate_limit, 10);
  assert_string_equal(q[1].name, "mail");
  assert_int_equal(q[1].counts[OMNIQ_PENDING], 1);
  assert_int_equal(q[1].counts[OMNIQ_RUNNING], 1);
  assert_int_equal(q[1].counts[OMNIQ_CANCELLED], 1);
  assert_int_equal(q[1].runs[OMNIQ_RUNS_RETRIED], 5);
  assert_true(q[1].paused);
  free(q);
  omniq_result_t *r = NULL;
  OK(fx, ops->get_result(fx->b, "01a3185c-5000-7000-8000-000000000004", &r, fx->err, ERRLEN));
  assert_int_equal(r->status, OMNIQ_FAILED);
  assert_string_equal(r->error->error_type, "ValueError");
  omniq_result_free(r);
  /* The unique key is still held by its pending task. */
  omniq_task_t *t = omniq_task_new();
  omniq__id_new(NOW, t->id);
  t->func = omniq__strdup("send");
  t->queue = omniq__strdup("mail");
  t->args = omniq__strdup("[]");
  t->kwargs = omniq__strdup("{}");
  t->unique_key = omniq__strdup("k1");
  t->eta_ms = t->created_at_ms = NOW;
  assert_int_equal(ops->enqueue_unique(fx->b, &t, 1, NULL, fx->err, ERRLEN), OMNIQ_EEXISTS);
  omniq_task_free(t);
  sqlite3_free(before);
  free(p);
}

/* OPENERS processes open one version 2 database at the same moment: each
 * open succeeds, and the migration ran once (a second run of its steps
 * would fail: the indexes it drops are gone, the table it creates exists). */
static void test_processes_opening_a_version_2_database_at_once_migrate_it_once(void **state) {
  fx_t *fx = *state;
  char *p = make_v2_store(fx);
  sqlite3 *db = th_sqlite_open(p);
  char *before = dump_store(db);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  int go[2];
  pid_t kids[OPENERS];
  assert_int_equal(pipe(go), 0);
  for (int i = 0; i < OPENERS; i++) {
    kids[i] = fork();
    assert_true(kids[i] >= 0);
    if (kids[i] == 0) {
      char c, err[ERRLEN];
      void *b = NULL;
      close(go[1]);
      /* Every child blocks here until the parent closes the pipe. */
      _exit(read(go[0], &c, 1) == 0 && ops->open(&fx->s, &b, err, sizeof err) == OMNIQ_OK &&
                    (ops->close(b), 1)
                ? 0
                : 1);
    }
  }
  close(go[0]);
  close(go[1]); /* all go */
  for (int i = 0; i < OPENERS; i++) {
    int status = 0;
    assert_int_equal(waitpid(kids[i], &status, 0), kids[i]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  assert_migrated(p, before);
  sqlite3_free(before);
  free(p);
}


/* ---- opening beside other writers ---------------------------------------- */

typedef struct opener {
  fx_t *fx;
  atomic_int done;
  int rc;
} opener_t;

static void *open_in_thread(void *arg) {
  opener_t *o = arg;
  o->rc = th_be_open(o->fx);
  atomic_store(&o->done, 1);
  return NULL;
}

/* Migrating a large store holds the write lock far longer than a writer's
 * busy timeout; another process opening it meanwhile must wait for the
 * migration, not fail with EBUSY. A raw connection holds the lock as a
 * migrating process would, until the opener has waited four busy timeouts. */
static void test_an_opener_waits_for_a_migration_longer_than_the_busy_timeout(void **state) {
  fx_t *fx = *state;
  char *p = make_v2_store(fx);
  omniq__sqlite_set_busy_timeout(50);
  omniq__sqlite_set_migrate_wait(OMNIQ__SQLITE_MIGRATE_WAIT_MS);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "BEGIN IMMEDIATE");

  opener_t o = {.fx = fx};
  pthread_t t;
  assert_int_equal(pthread_create(&t, NULL, open_in_thread, &o), 0);
  while (!atomic_load(&o.done) && omniq__sqlite_migrate_waited_ms() < 4 * 50) sched_yield();
  assert_false(atomic_load(&o.done)); /* still waiting, not failed */
  th_sqlite_exec(db, "COMMIT");
  assert_int_equal(pthread_join(t, NULL), 0);
  OK(fx, o.rc);
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), 3);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* The wait has a bound, and the error names the file and the step. */
static void test_a_migration_lock_held_past_the_wait_is_busy(void **state) {
  fx_t *fx = *state;
  char *p = make_v2_store(fx);
  omniq__sqlite_set_busy_timeout(20);
  omniq__sqlite_set_migrate_wait(60);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "BEGIN IMMEDIATE");
  assert_int_equal(th_be_open(fx), OMNIQ_EBUSY);
  assert_non_null(strstr(fx->err, p));
  assert_non_null(strstr(fx->err, "schema migration"));
  assert_true(omniq__sqlite_migrate_waited_ms() >= 60);
  th_sqlite_exec(db, "COMMIT");
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), 2); /* untouched */
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* A database at this version needs no write lock to open, so a handle
 * opens at once beside a writer that holds it (here for good). */
static void test_a_current_database_opens_while_another_writer_holds_the_lock(void **state) {
  fx_t *fx = *state;
  OK(fx, th_be_open(fx));
  th_be_close(fx);
  char *p = th_sqlite_path(fx);
  omniq__sqlite_set_busy_timeout(50);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "BEGIN IMMEDIATE");
  OK(fx, th_be_open(fx));
  th_sqlite_exec(db, "COMMIT");
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* ---- listing and counts against a full scan ------------------------------ */

static const char *const queues[] = {"a", "b", "c"};
static const char *const funcs[] = {"f", "g"};
#define TASKS 90

/* TASKS tasks over three queues and two funcs, 1 ms apart, then taken to
 * every status: claimed, finished SUCCESS or FAILED, retried, cancelled. */
static void fill(fx_t *fx) {
  omniq_task_t *tasks[TASKS];
  for (int i = 0; i < TASKS; i++) {
    omniq_task_t *t = tasks[i] = omniq_task_new();
    omniq__id_new(NOW + i, t->id);
    t->func = omniq__strdup(funcs[(i / 3) % 2]);
    t->queue = omniq__strdup(queues[i % 3]);
    t->args = omniq__strdup("[]");
    t->kwargs = omniq__strdup("{}");
    t->eta_ms = NOW;
    t->created_at_ms = NOW + i;
  }
  OK(fx, ops->enqueue(fx->b, tasks, TASKS, fx->err, ERRLEN));
  for (int i = 0; i < TASKS; i++) omniq_task_free(tasks[i]);
  omniq_claim_req_t req = {.now_ms = NOW + 1000, .lease_until_ms = NOW + 60000,
                           .queues = queues, .nqueues = 3, .max = 60};
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ops->claim(fx->b, &req, &got, &n, fx->err, ERRLEN));
  assert_int_equal(n, 60);
  for (size_t i = 0; i < n; i++) {
    int k = (int)(i % 5); /* 0, 1 stay running; 2 success, 3 failed, 4 back to pending */
    if (k < 2) continue;
    omniq_result_t res = {.status = k == 2 ? OMNIQ_SUCCESS : OMNIQ_FAILED,
                          .finished_at_ms = NOW + 2000 + (int64_t)i, .attempts = 1};
    memcpy(res.task_id, got[i]->id, OMNIQ_ID_SIZE);
    omniq_decision_t d = {.id = got[i]->id, .token = got[i]->token,
                          .next_status = k == 2   ? OMNIQ_SUCCESS
                                         : k == 3 ? OMNIQ_FAILED
                                                  : OMNIQ_PENDING,
                          .eta_ms = NOW, .result = k == 4 ? NULL : &res, .runs = 0};
    OK(fx, ops->finish(fx->b, &d, fx->err, ERRLEN));
  }
  for (size_t i = 0; i < n; i += 7) {
    int prev = -1;
    int rc = ops->cancel(fx->b, got[i]->id, NOW + 3000, &prev, fx->err, ERRLEN);
    assert_true(rc == OMNIQ_OK || rc == OMNIQ_ESTATE);
  }
  omniq__tasks_free(got, n);
}

/* The ids a full scan of the table finds for req, in its order, one per
 * line. */
static char *scan_ids(sqlite3 *db, const omniq_list_req_t *req) {
  sqlite3_str *q = sqlite3_str_new(db);
  sqlite3_str_appendf(q, "SELECT id FROM tasks NOT INDEXED WHERE status IN (-1");
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++)
    if (req->statuses & OMNIQ_STATUS_BIT(s)) sqlite3_str_appendf(q, ", %d", s);
  sqlite3_str_appendall(q, ")");
  if (req->queue != NULL) sqlite3_str_appendf(q, " AND queue = %Q", req->queue);
  if (req->func != NULL) sqlite3_str_appendf(q, " AND func = %Q", req->func);
  if (req->created_from_ms != 0)
    sqlite3_str_appendf(q, " AND created_at >= %lld", (long long)req->created_from_ms);
  if (req->finished_to_ms != 0)
    sqlite3_str_appendf(q, " AND finished_at > 0 AND finished_at < %lld",
                        (long long)req->finished_to_ms);
  sqlite3_str_appendall(q, req->newest_first ? " ORDER BY id DESC" : " ORDER BY id");
  char *sql = sqlite3_str_finish(q);
  char *ids = dump(db, sql);
  sqlite3_free(sql);
  return ids;
}

/* Every page of req through the backend, ids one per line as dump()
 * writes them. */
static char *list_ids(fx_t *fx, omniq_list_req_t req) {
  sqlite3_str *out = sqlite3_str_new(NULL);
  char cursor[OMNIQ_ID_SIZE];
  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    OK(fx, ops->list(fx->b, &req, &got, &n, fx->err, ERRLEN));
    for (size_t i = 0; i < n; i++) sqlite3_str_appendf(out, "%d:%s|\n", SQLITE_TEXT, got[i]->id);
    if (n > 0) memcpy(cursor, got[n - 1]->id, OMNIQ_ID_SIZE);
    omniq__tasks_free(got, n);
    if (n < req.limit) break;
    req.after_id = cursor;
  }
  return text_of(out);
}

static void test_every_filter_combination_lists_what_a_full_scan_finds(void **state) {
  fx_t *fx = *state;
  OK(fx, th_be_open(fx));
  fill(fx);
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  static const char *const qs[] = {NULL, "a", "c"}, *const fs[] = {NULL, "f", "g"};
  int checked = 0;
  for (unsigned statuses = 1; statuses <= OMNIQ_STATUS_ALL; statuses++)
    for (int qi = 0; qi < 3; qi++)
      for (int fi = 0; fi < 3; fi++)
        for (int desc = 0; desc < 2; desc++)
          for (int range = 0; range < 3; range++) {
            omniq_list_req_t req = {.statuses = statuses, .queue = qs[qi], .func = fs[fi],
                                    .newest_first = desc, .limit = 7};
            if (range == 1) req.created_from_ms = NOW + 30;
            if (range == 2) req.finished_to_ms = NOW + 2040;
            char *want = scan_ids(db, &req), *got = list_ids(fx, req);
            if (strcmp(want, got) != 0)
              fail_msg("statuses %#x queue %s func %s desc %d range %d:\nscan:\n%slist:\n%s",
                       statuses, qs[qi] ? qs[qi] : "-", fs[fi] ? fs[fi] : "-", desc, range, want,
                       got);
            checked += want[0] != '\0';
            sqlite3_free(want);
            sqlite3_free(got);
          }
  assert_true(checked > 500); /* most combinations find tasks */

  /* The counts, read from the partial indexes, against a full scan. */
  int64_t counts[OMNIQ_STATUS_COUNT];
  OK(fx, ops->count_by_status(fx->b, counts, fx->err, ERRLEN));
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) {
    char *q = sqlite3_mprintf("SELECT count(*) FROM tasks NOT INDEXED WHERE status = %d", s);
    assert_int_equal(counts[s], th_sqlite_int(db, q));
    assert_true(counts[s] > 0);
    sqlite3_free(q);
  }
  for (int all = 0; all < 2; all++) {
    omniq_queue_info_t *info = NULL;
    size_t nq = 0;
    OK(fx, ops->queue_stats(fx->b, all ? NULL : "b", NOW, &info, &nq, fx->err, ERRLEN));
    assert_int_equal(nq, all ? 3 : 1);
    for (size_t i = 0; i < nq; i++)
      for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) {
        char *q = sqlite3_mprintf("SELECT count(*) FROM tasks NOT INDEXED"
                                  " WHERE queue = %Q AND status = %d", info[i].name, s);
        assert_int_equal(info[i].counts[s], th_sqlite_int(db, q));
        sqlite3_free(q);
      }
    free(info);
  }
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_a_version_2_database_is_migrated_keeping_every_record),
      T(test_processes_opening_a_version_2_database_at_once_migrate_it_once),
      T(test_an_opener_waits_for_a_migration_longer_than_the_busy_timeout),
      T(test_a_migration_lock_held_past_the_wait_is_busy),
      T(test_a_current_database_opens_while_another_writer_holds_the_lock),
      T(test_every_filter_combination_lists_what_a_full_scan_finds),
  };
  return cmocka_run_group_tests_name("sqlite schema", tests, NULL, NULL);
}
