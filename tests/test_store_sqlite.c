/* SPDX-License-Identifier: MIT */
/* The SQLite backend beyond the storage contract (tests/contract/): where
 * the database lives (URL forms), what opening refuses (not a database,
 * another program's database, a newer schema, an unopenable path), the
 * schema and its version, the query plans the claim depends on, a locked
 * database, and a claim that runs out of memory half-way. */
#include "support/backend.h"
#include "support/sqlite_raw.h"

#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/registry.h"
#include "storage/sqlite/backend.h"

#define NOW TH_EPOCH_MS
#define ERRLEN 512

static const omniq_storage_ops_t *ops = &omniq__sqlite_ops;

typedef th_be_t fx_t;

#define OK(fx, expr) th_be_ok((fx)->err, expr)

/* A fresh directory and settings; each test opens when it is ready. */
static int setup(void **state) {
  *state = th_be_unopened("sqlite", 1);
  return 0;
}

static int teardown(void **state) {
  omniq__alloc_fail_after(-1);
  omniq__sqlite_set_busy_timeout(OMNIQ__SQLITE_BUSY_MS);
  th_be_free(*state);
  return 0;
}

static int open_be(fx_t *fx) { return th_be_open(fx); }

static void set_url(fx_t *fx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_url(fx_t *fx, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(fx->s.db_url, sizeof fx->s.db_url, fmt, ap);
  va_end(ap);
}

static int exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static omniq_task_t *mk_task(int priority) {
  omniq_task_t *t = omniq_task_new();
  assert_non_null(t);
  omniq__id_new(NOW, t->id);
  t->func = omniq__strdup("f");
  t->queue = omniq__strdup("default");
  t->args = omniq__strdup("[]");
  t->kwargs = omniq__strdup("{}");
  t->priority = priority;
  t->eta_ms = NOW;
  t->created_at_ms = NOW;
  return t;
}

/* Enqueues one task and reads it back through the same backend. */
static void assert_usable(fx_t *fx) {
  omniq_task_t *t = mk_task(0), *got = NULL;
  OK(fx, ops->enqueue(fx->b, &t, 1, fx->err, ERRLEN));
  OK(fx, ops->get_task(fx->b, t->id, &got, fx->err, ERRLEN));
  assert_string_equal(got->id, t->id);
  omniq_task_free(got);
  omniq_task_free(t);
}

/* ---- URL forms ----------------------------------------------------------- */

static void test_empty_url_is_omniq_db_in_base_dir_created_if_missing(void **state) {
  fx_t *fx = *state;
  char *want;
  /* base_dir two levels below an existing folder: both are created. */
  snprintf(fx->s.base_dir, sizeof fx->s.base_dir, "%s/a/b", fx->dir);
  OK(fx, open_be(fx));
  assert_true(asprintf(&want, "%s/a/b/omniq.db", fx->dir) > 0);
  assert_true(exists(want));
  assert_usable(fx);
  free(want);
}

static void test_relative_url_is_from_working_directory(void **state) {
  fx_t *fx = *state;
  char cwd[PATH_MAX], *want;
  assert_non_null(getcwd(cwd, sizeof cwd));
  assert_int_equal(chdir(fx->dir), 0);
  set_url(fx, "%s", "sqlite:///rel/dir/q.db");
  int rc = open_be(fx);
  assert_int_equal(chdir(cwd), 0);
  OK(fx, rc);
  assert_true(asprintf(&want, "%s/rel/dir/q.db", fx->dir) > 0);
  assert_true(exists(want));
  assert_usable(fx);
  free(want);
}

static void test_absolute_url_has_four_slashes(void **state) {
  fx_t *fx = *state;
  char *want;
  assert_int_equal(fx->dir[0], '/');
  set_url(fx, "sqlite:///%s/abs/q.db", fx->dir); /* "sqlite:///" + "/tmp/..." */
  OK(fx, open_be(fx));
  assert_true(asprintf(&want, "%s/abs/q.db", fx->dir) > 0);
  assert_true(exists(want));
  assert_usable(fx);
  free(want);
}

static void test_plain_path_is_used_as_is(void **state) {
  fx_t *fx = *state;
  char *want;
  set_url(fx, "%s/plain/q.db", fx->dir);
  OK(fx, open_be(fx));
  assert_true(asprintf(&want, "%s/plain/q.db", fx->dir) > 0);
  assert_true(exists(want));
  assert_usable(fx);
  free(want);
}

static void test_memory_url_needs_no_file(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  set_url(fx, "%s", ":memory:");
  OK(fx, open_be(fx));
  assert_usable(fx);
  assert_false(exists(p));
  free(p);
}

static void test_url_with_a_host_is_a_config_error(void **state) {
  fx_t *fx = *state;
  set_url(fx, "%s", "sqlite://host/q.db");
  assert_int_equal(open_be(fx), OMNIQ_ECONFIG);
  assert_null(fx->b);
  assert_non_null(strstr(fx->err, "sqlite://host/q.db"));
}

/* ---- what opening refuses ------------------------------------------------ */

static void test_file_that_is_not_a_database_is_corrupt_and_untouched(void **state) {
  fx_t *fx = *state;
  unsigned char junk[8192], back[sizeof junk + 1];
  char *p = th_sqlite_path(fx), *wal;
  uint32_t x = 12345;
  for (size_t i = 0; i < sizeof junk; i++)
    junk[i] = (unsigned char)((x = x * 1103515245u + 12345u) >> 16);
  FILE *f = fopen(p, "wb");
  assert_non_null(f);
  assert_int_equal(fwrite(junk, 1, sizeof junk, f), sizeof junk);
  fclose(f);

  assert_int_equal(open_be(fx), OMNIQ_ECORRUPT);
  assert_null(fx->b);
  assert_non_null(strstr(fx->err, p));
  assert_non_null(strstr(fx->err, "not a database"));

  f = fopen(p, "rb");
  assert_non_null(f);
  assert_int_equal(fread(back, 1, sizeof back, f), sizeof junk);
  fclose(f);
  assert_memory_equal(back, junk, sizeof junk);
  assert_true(asprintf(&wal, "%s-wal", p) > 0);
  assert_false(exists(wal));
  free(wal);
  free(p);
}

static void test_unopenable_path_names_the_path(void **state) {
  fx_t *fx = *state;
  /* The path is a folder. */
  set_url(fx, "%s", fx->dir);
  int rc = open_be(fx);
  assert_true(rc == OMNIQ_ESTORAGE || rc == OMNIQ_EIO);
  assert_null(fx->b);
  assert_non_null(strstr(fx->err, fx->dir));

  /* A parent "folder" is a regular file. */
  char *file;
  assert_true(asprintf(&file, "%s/file.txt", fx->dir) > 0);
  FILE *f = fopen(file, "w");
  assert_non_null(f);
  fputs("keep me\n", f);
  fclose(f);
  set_url(fx, "%s/sub/q.db", file);
  rc = open_be(fx);
  assert_true(rc == OMNIQ_ESTORAGE || rc == OMNIQ_EIO);
  assert_non_null(strstr(fx->err, file));
  free(file);
}

static void test_newer_schema_version_is_refused_and_untouched(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "PRAGMA user_version = 99");
  assert_int_equal(open_be(fx), OMNIQ_ECORRUPT);
  assert_null(fx->b);
  assert_non_null(strstr(fx->err, "newer"));
  assert_non_null(strstr(fx->err, p));
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), 99);
  assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM sqlite_master"), 0);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

static void test_database_of_another_program_is_refused(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "PRAGMA application_id = 1234; CREATE TABLE mine (x)");
  assert_int_equal(open_be(fx), OMNIQ_ECORRUPT);
  assert_non_null(strstr(fx->err, "not an OmniQ database"));

  /* No application_id, but a table of ours already exists in another shape. */
  th_sqlite_exec(db, "PRAGMA application_id = 0; CREATE TABLE tasks (x)");
  assert_int_equal(open_be(fx), OMNIQ_ECORRUPT);
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), 0);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* The whole file, malloc'd; *len its size. */
static unsigned char *slurp(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  unsigned char *buf = NULL;
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *len = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  buf = malloc(*len + 1);
  assert_int_equal(fread(buf, 1, *len, f), *len);
  fclose(f);
  return buf;
}

static char *journal_mode(const char *path) {
  sqlite3 *db = th_sqlite_open(path);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  char *mode = strdup((const char *)sqlite3_column_text(st, 0));
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  return mode;
}

/* Builds a database with sql in a fresh file (rollback journal, the
 * default), opens it through the backend, and checks it is refused with
 * OMNIQ_ECORRUPT and left exactly as it was: same bytes, no WAL files, the
 * journal mode it had. */
static void assert_refused_untouched(const char *sql, const char *why) {
  fx_t *fx = th_be_unopened("sqlite", 1);
  char *p = th_sqlite_path(fx), *wal = NULL, *shm = NULL;
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, sql);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  size_t n0, n1;
  unsigned char *before = slurp(p, &n0);

  int rc = open_be(fx);
  if (rc != OMNIQ_ECORRUPT) fail_msg("%s: %s: %s", sql, omniq_err_name(rc), fx->err);
  if (strstr(fx->err, why) == NULL) fail_msg("%s: \"%s\" not in \"%s\"", sql, why, fx->err);
  assert_null(fx->b);

  unsigned char *after = slurp(p, &n1);
  assert_int_equal(n1, n0);
  assert_memory_equal(after, before, n0);
  assert_true(asprintf(&wal, "%s-wal", p) > 0 && asprintf(&shm, "%s-shm", p) > 0);
  assert_false(exists(wal));
  assert_false(exists(shm));
  char *mode = journal_mode(p);
  assert_string_equal(mode, "delete");
  free(mode);
  free(before);
  free(after);
  free(wal);
  free(shm);
  free(p);
  th_be_free(fx);
}

static void test_foreign_database_is_refused_before_anything_changes(void **state) {
  (void)state;
  assert_refused_untouched("CREATE TABLE tasks (x); INSERT INTO tasks VALUES (1)",
                           "tables named tasks or results");
  assert_refused_untouched("CREATE TABLE results (y)", "tables named tasks or results");
  assert_refused_untouched("CREATE VIEW tasks AS SELECT 1", "tables named tasks or results");
  assert_refused_untouched("PRAGMA user_version = 1", "user_version 1 without");
  assert_refused_untouched("PRAGMA user_version = 1; CREATE TABLE notes (n)",
                           "user_version 1 without");
  assert_refused_untouched("PRAGMA application_id = 1234; CREATE TABLE mine (x)",
                           "application_id 1234");
  assert_refused_untouched("PRAGMA application_id = 1332571729; PRAGMA user_version = 1",
                           "without its tasks and results tables");
}

/* A row written by something else, with a raw NUL byte in its args: C
 * would read it cut short, so it is refused as corrupt. */
static void test_row_with_a_raw_nul_byte_is_corrupt_not_cut_short(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task(0), *got = NULL;
  OK(fx, open_be(fx));
  OK(fx, ops->enqueue(fx->b, &t, 1, fx->err, ERRLEN));
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "UPDATE tasks SET args = CAST(X'5B2261002262225D' AS TEXT)"); /* ["a\0"b"] */
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  assert_int_equal(ops->get_task(fx->b, t->id, &got, fx->err, ERRLEN), OMNIQ_ECORRUPT);
  assert_null(got);
  assert_non_null(strstr(fx->err, t->id));
  omniq_task_free(t);
  free(p);
}

/* ---- schema -------------------------------------------------------------- */

static void test_new_database_gets_current_schema_in_wal_mode(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  OK(fx, open_be(fx));
  sqlite3 *db = th_sqlite_open(p);
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), omniq__sqlite_schema_version());
  assert_int_equal(th_sqlite_int(db, "PRAGMA application_id"), OMNIQ__SQLITE_APP_ID);
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE name IN ('tasks',"
                           " 'results', 'tasks_due', 'tasks_leased', 'results_finished',"
                           " 'tasks_queue_id', 'tasks_func_id', 'tasks_pending_id',"
                           " 'tasks_done_id', 'tasks_done_queue', 'tasks_done_func',"
                           " 'tasks_finished', 'unique_keys', 'queues', 'run_totals', 'chores')"),
                   16);
  /* No index holds a live task's status in its key (schema version 3). */
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE name IN"
                           " ('tasks_status_id', 'tasks_queue_status_id', 'tasks_func_status_id')"),
                   0);
  /* The due index is partial over pending tasks, the lease index over
   * running ones: their WHERE clauses are part of the schema. */
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE name = 'tasks_due'"
                           " AND sql LIKE '%WHERE status = 0'"),
                   1);
  assert_int_equal(th_sqlite_int(db,
                           "SELECT count(*) FROM sqlite_master WHERE name = 'tasks_leased'"
                           " AND sql LIKE '%WHERE status = 1'"),
                   1);
  sqlite3_stmt *st;
  assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
  sqlite3_finalize(st);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

static void test_existing_empty_database_is_migrated_keeping_other_tables(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "CREATE TABLE app_notes (note TEXT); INSERT INTO app_notes VALUES ('hi')");
  OK(fx, open_be(fx));
  assert_usable(fx);
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), omniq__sqlite_schema_version());
  assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM app_notes"), 1);
  /* Opening again (a second handle) finds nothing to migrate. */
  void *second = NULL;
  OK(fx, ops->open(&fx->s, &second, fx->err, ERRLEN));
  ops->close(second);
  assert_int_equal(th_sqlite_int(db, "SELECT count(*) FROM tasks"), 1);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* ---- query plans --------------------------------------------------------- */

/* EXPLAIN QUERY PLAN of sql, one detail per line. */
static char *plan(sqlite3 *db, const char *sql) {
  char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
  sqlite3_str *out = sqlite3_str_new(db);
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, q, -1, &st, NULL) != SQLITE_OK)
    fail_msg("%s: %s", sql, sqlite3_errmsg(db));
  while (sqlite3_step(st) == SQLITE_ROW)
    sqlite3_str_appendf(out, "%s\n", (const char *)sqlite3_column_text(st, 3));
  sqlite3_finalize(st);
  sqlite3_free(q);
  return sqlite3_str_finish(out);
}

static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

static sqlite3 *planned_db(fx_t *fx) {
  char *p = th_sqlite_path(fx);
  OK(fx, open_be(fx));
  sqlite3 *db = th_sqlite_open(p);
  free(p);
  return db;
}

static void test_claim_walks_the_partial_index_without_sorting(void **state) {
  fx_t *fx = *state;
  sqlite3 *db = planned_db(fx);
  char *sql = omniq__sqlite_claim_sql(1);
  char *p = plan(db, sql);
  if (count_of(p, "INDEX tasks_due (queue=?)") != 1 || strstr(p, "SCAN tasks") != NULL ||
      strstr(p, "TEMP B-TREE") != NULL)
    fail_msg("claim plan:\n%s", p);
  sqlite3_free(p);

  /* The rule the schema notes warn about: bind the status and SQLite can no
   * longer prove the partial index applies. The claim names its index, so
   * such a statement does not quietly scan and sort: it fails to prepare. */
  char *bound = sqlite3_mprintf("%s", sql);
  char *at = strstr(bound, "status = 0");
  sqlite3_stmt *st = NULL;
  assert_non_null(at);
  memcpy(at, "status =?9", 10);
  assert_int_not_equal(sqlite3_prepare_v2(db, bound, -1, &st, NULL), SQLITE_OK);
  assert_non_null(strstr(sqlite3_errmsg(db), "no query solution"));
  sqlite3_finalize(st);
  sqlite3_free(bound);
  sqlite3_free(sql);

  /* The read of the rows it takes walks the same index the same way. */
  sql = omniq__sqlite_claim_read_sql(1);
  p = plan(db, sql);
  if (count_of(p, "INDEX tasks_due (queue=?)") != 1 || strstr(p, "SCAN tasks") != NULL ||
      strstr(p, "TEMP B-TREE") != NULL)
    fail_msg("claim read plan:\n%s", p);
  sqlite3_free(p);
  sqlite3_free(sql);
  sqlite3_close(db);
}

static void test_claim_over_several_queues_walks_the_index_once_per_queue(void **state) {
  fx_t *fx = *state;
  sqlite3 *db = planned_db(fx);
  for (int read = 0; read < 2; read++) {
    char *sql = read ? omniq__sqlite_claim_read_sql(3) : omniq__sqlite_claim_sql(3);
    char *p = plan(db, sql);
    /* Three index walks; the only sort is of the union (at most 3 * k rows). */
    if (count_of(p, "INDEX tasks_due (queue=?)") != 3 || strstr(p, "SCAN tasks") != NULL ||
        count_of(p, "TEMP B-TREE") > 1)
      fail_msg("claim %s plan:\n%s", read ? "read" : "update", p);
    sqlite3_free(p);
    sqlite3_free(sql);
  }
  sqlite3_close(db);
}

static void test_expired_leases_walk_the_lease_index(void **state) {
  fx_t *fx = *state;
  sqlite3 *db = planned_db(fx);
  char *p = plan(db, omniq__sqlite_expired_sql);
  if (strstr(p, "INDEX tasks_leased (lease_until<?)") == NULL || strstr(p, "SCAN tasks") != NULL)
    fail_msg("expired plan:\n%s", p);
  sqlite3_free(p);
  sqlite3_close(db);
}

/* What the query plan of a walk of a listing must say (list.c): the index,
 * and the equalities it is searched with. */
static const char *walk_plan(int status, const char *queue, const char *func) {
  switch (status) {
  case OMNIQ__SQLITE_ANY_STATUS:
    return queue != NULL ? "USING INDEX tasks_queue_id (queue=?"
           : func != NULL ? "USING INDEX tasks_func_id (func=?"
                          : "USING INDEX sqlite_autoindex_tasks_1";
  case OMNIQ_PENDING: return "USING INDEX tasks_pending_id";
  case OMNIQ_RUNNING: return "SCAN tasks USING INDEX tasks_leased";
  default:
    return queue != NULL ? "USING INDEX tasks_done_queue (queue=? AND status=?"
           : func != NULL ? "USING INDEX tasks_done_func (func=? AND status=?"
                          : "USING INDEX tasks_done_id (status=?";
  }
}

/* Every walk a page can make, with every filter and cursor: an index walk
 * in id order from the cursor on the index that holds the filter, never a
 * scan of the table and never a sort, but for RUNNING (the leases held,
 * few, sorted by id). An index taken away or a query that no longer
 * matches its partial index fails here, not only in a benchmark. */
static void test_list_walks_an_index_in_id_order_without_sorting(void **state) {
  fx_t *fx = *state;
  sqlite3 *db = planned_db(fx);
  const char *after = "01a3185c-5000-7000-8000-000000000000";
  static const int statuses[] = {OMNIQ__SQLITE_ANY_STATUS, OMNIQ_PENDING, OMNIQ_RUNNING,
                                 OMNIQ_SUCCESS, OMNIQ_FAILED, OMNIQ_CANCELLED};
  static const char *const queues[] = {NULL, "mail"}, *const funcs[] = {NULL, "send"};
  for (size_t si = 0; si < sizeof statuses / sizeof statuses[0]; si++)
    for (int q = 0; q < 2; q++)
      for (int f = 0; f < 2; f++)
        for (int cursor = 0; cursor < 3; cursor++) /* none, ascending, descending */
          for (int ranges = 0; ranges < 2; ranges++) {
            int status = statuses[si];
            omniq_list_req_t req = {.statuses = OMNIQ_STATUS_ALL, .limit = 100};
            req.queue = queues[q];
            req.func = funcs[f];
            req.after_id = cursor ? after : NULL;
            req.newest_first = cursor == 2;
            if (ranges) {
              req.created_from_ms = 1;
              req.finished_to_ms = 5;
            }
            const char *want = walk_plan(status, req.queue, req.func);
            char *range = sqlite3_mprintf("id%c?)", req.newest_first ? '<' : '>');
            char *sql = omniq__sqlite_list_sql(&req, status);
            char *p = plan(db, sql);
            int running = status == OMNIQ_RUNNING;
            int ok = strstr(p, want) != NULL && strstr(p, "SCAN tasks\n") == NULL &&
                     (running || strstr(p, "TEMP B-TREE") == NULL);
            /* The cursor is where the walk starts, not a filter on it. */
            if (ok && cursor && !running) ok = strstr(p, range) != NULL;
            if (!ok)
              fail_msg("list walk (status %d, queue %d, func %d, cursor %d, ranges %d):\n%s\n%s",
                       status, q, f, cursor, ranges, sql, p);
            sqlite3_free(p);
            sqlite3_free(sql);
            sqlite3_free(range);
          }
  sqlite3_close(db);
}

/* A database left at schema version 1 (before operating a queue) opens,
 * migrates, and its finished tasks get a finish time, so retention and
 * listing reach them. */
static void test_a_version_1_database_is_migrated_keeping_its_tasks(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db,
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
           "INSERT INTO tasks (id, func, queue, args, kwargs, status, eta, created_at) VALUES"
           " ('01a3185c-5000-7000-8000-000000000001', 'f', 'default', '[]', '{}', 2, 10, 10),"
           " ('01a3185c-5000-7000-8000-000000000002', 'f', 'default', '[]', '{}', 0, 10, 20);"
           "INSERT INTO results VALUES ('01a3185c-5000-7000-8000-000000000001', 2, '1', NULL,"
           " 1, 500, 400);"
           "PRAGMA user_version = 1; PRAGMA application_id = 1332571729;");
  OK(fx, open_be(fx));
  assert_int_equal(th_sqlite_int(db, "PRAGMA user_version"), omniq__sqlite_schema_version());
  omniq_task_t *done = NULL;
  OK(fx, ops->get_task(fx->b, "01a3185c-5000-7000-8000-000000000001", &done, fx->err, ERRLEN));
  assert_int_equal(done->finished_at_ms, 500); /* its result's */
  assert_int_equal(done->crashes, 0);
  assert_null(done->unique_key);
  omniq_task_free(done);
  omniq_list_req_t req = {.statuses = OMNIQ_STATUS_ALL, .limit = 10};
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, ops->list(fx->b, &req, &got, &n, fx->err, ERRLEN));
  assert_int_equal(n, 2);
  for (size_t i = 0; i < n; i++) omniq_task_free(got[i]);
  free(got);
  int64_t purged = 0;
  OK(fx, ops->purge_tasks(fx->b, 501, 10, &purged, fx->err, ERRLEN));
  assert_int_equal(purged, 1);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* A new database reclaims the pages retention frees (auto_vacuum). */
static void test_a_new_database_reclaims_space_incrementally(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  OK(fx, open_be(fx));
  sqlite3 *db = th_sqlite_open(p);
  assert_int_equal(th_sqlite_int(db, "PRAGMA auto_vacuum"), 2); /* INCREMENTAL */
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  free(p);
}

/* ---- faults -------------------------------------------------------------- */

static void test_locked_database_is_busy_and_reads_go_on(void **state) {
  fx_t *fx = *state;
  char *p = th_sqlite_path(fx);
  omniq__sqlite_set_busy_timeout(50); /* this test waits out the timeout once */
  OK(fx, open_be(fx));
  omniq_task_t *t = mk_task(0), *u = mk_task(0), *got = NULL;
  OK(fx, ops->enqueue(fx->b, &t, 1, fx->err, ERRLEN));

  sqlite3 *db = th_sqlite_open(p);
  th_sqlite_exec(db, "BEGIN IMMEDIATE"); /* another writer holds the write lock */
  assert_int_equal(ops->enqueue(fx->b, &u, 1, fx->err, ERRLEN), OMNIQ_EBUSY);
  assert_non_null(strstr(fx->err, p));
  OK(fx, ops->get_task(fx->b, t->id, &got, fx->err, ERRLEN)); /* WAL: readers go on */
  omniq_task_free(got);
  th_sqlite_exec(db, "COMMIT");

  OK(fx, ops->enqueue(fx->b, &u, 1, fx->err, ERRLEN));
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  omniq_task_free(t);
  omniq_task_free(u);
  free(p);
}

/* A writer that finds the database locked first sleeps tens of
 * microseconds, as long as another transaction here holds the lock, not
 * SQLite's own first millisecond; the sleeps double to a cap of a few ms so
 * a long hold costs few wake-ups, and the timeout above still ends them. */
static void test_busy_writer_sleeps_short_first_then_doubles_to_a_cap(void **state) {
  (void)state;
  int64_t cap = omniq__sqlite_busy_wait_us(100);
  assert_true(cap >= 1000 && cap <= 5000);
  assert_true(omniq__sqlite_busy_wait_us(0) > 0);
  assert_true(omniq__sqlite_busy_wait_us(0) <= 50);
  int64_t slept = 0;
  int i = 0;
  for (; omniq__sqlite_busy_wait_us(i) < cap; i++) {
    int64_t next = 2 * omniq__sqlite_busy_wait_us(i);
    assert_int_equal(omniq__sqlite_busy_wait_us(i + 1), next < cap ? next : cap);
    slept += omniq__sqlite_busy_wait_us(i);
  }
  assert_true(slept < 10000); /* the cap is reached within 10 ms of waiting */
}

static void test_claim_out_of_memory_leaves_tasks_pending(void **state) {
  fx_t *fx = *state;
  omniq_task_t *tasks[3] = {mk_task(2), mk_task(1), mk_task(0)};
  OK(fx, open_be(fx));
  OK(fx, ops->enqueue(fx->b, tasks, 3, fx->err, ERRLEN));
  static const char *const q[] = {"default"};
  omniq_claim_req_t req = {
      .now_ms = NOW, .lease_until_ms = NOW + 1, .queues = q, .nqueues = 1, .max = 3};
  /* Fail part-way through building the second or later returned record. */
  for (long n = 0; n < 12; n++) {
    omniq_task_t **got = NULL;
    size_t ngot = 0;
    omniq__alloc_fail_after(n);
    int rc = ops->claim(fx->b, &req, &got, &ngot, fx->err, ERRLEN);
    omniq__alloc_fail_after(-1);
    assert_int_equal(rc, OMNIQ_ENOMEM);
    assert_null(got);
    assert_int_equal(ngot, 0);
    int64_t c[OMNIQ_STATUS_COUNT];
    OK(fx, ops->count_by_status(fx->b, c, fx->err, ERRLEN));
    assert_int_equal(c[OMNIQ_PENDING], 3);
  }
  omniq_task_t *t = NULL;
  OK(fx, ops->get_task(fx->b, tasks[0]->id, &t, fx->err, ERRLEN));
  assert_int_equal(t->attempts, 0);
  assert_int_equal(t->token, 0);
  omniq_task_free(t);
  for (int i = 0; i < 3; i++) omniq_task_free(tasks[i]);
}

static void test_malformed_ids_are_invalid(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task(0), *got = NULL;
  omniq_result_t *r = NULL;
  OK(fx, open_be(fx));
  static const char *const bad[] = {"", "nope", "../../etc/passwd",
                                    "0192A3B4-C5D6-7E8F-9012-3456789ABCDE"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq_decision_t d = {.id = bad[i], .token = 1, .next_status = OMNIQ_SUCCESS};
    assert_int_equal(ops->get_task(fx->b, bad[i], &got, fx->err, ERRLEN), OMNIQ_EINVAL);
    assert_int_equal(ops->get_result(fx->b, bad[i], &r, fx->err, ERRLEN), OMNIQ_EINVAL);
    assert_int_equal(ops->finish(fx->b, &d, fx->err, ERRLEN), OMNIQ_EINVAL);
    assert_int_equal(ops->cancel(fx->b, bad[i], NOW, NULL, fx->err, ERRLEN), OMNIQ_EINVAL);
    assert_int_equal(ops->extend_lease(fx->b, bad[i], 1, NOW, fx->err, ERRLEN), OMNIQ_EINVAL);
  }
  snprintf(t->id, sizeof t->id, "%s", "not-an-id");
  assert_int_equal(ops->enqueue(fx->b, &t, 1, fx->err, ERRLEN), OMNIQ_EINVAL);
  int64_t c[OMNIQ_STATUS_COUNT];
  OK(fx, ops->count_by_status(fx->b, c, fx->err, ERRLEN));
  assert_int_equal(c[OMNIQ_PENDING], 0);
  omniq_task_free(t);
}

static void test_finish_must_end_a_run(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task(0);
  OK(fx, open_be(fx));
  OK(fx, ops->enqueue(fx->b, &t, 1, fx->err, ERRLEN));
  omniq_decision_t d = {.id = t->id, .token = 1, .next_status = OMNIQ_CANCELLED};
  assert_int_equal(ops->finish(fx->b, &d, fx->err, ERRLEN), OMNIQ_EINVAL);
  d.next_status = OMNIQ_RUNNING;
  assert_int_equal(ops->finish(fx->b, &d, fx->err, ERRLEN), OMNIQ_EINVAL);
  d.next_status = 42;
  assert_int_equal(ops->finish(fx->b, &d, fx->err, ERRLEN), OMNIQ_EINVAL);
  omniq_task_free(t);
}

static void test_two_handles_on_one_file_share_the_queue(void **state) {
  fx_t *fx = *state;
  void *other = NULL;
  omniq_task_t *t = mk_task(0), **got = NULL;
  size_t n = 0;
  static const char *const q[] = {"default"};
  omniq_claim_req_t req = {
      .now_ms = NOW, .lease_until_ms = NOW + 1, .queues = q, .nqueues = 1, .max = 5};
  OK(fx, open_be(fx));
  OK(fx, ops->open(&fx->s, &other, fx->err, ERRLEN));
  OK(fx, ops->enqueue(fx->b, &t, 1, fx->err, ERRLEN));
  OK(fx, ops->claim(other, &req, &got, &n, fx->err, ERRLEN));
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, t->id);
  omniq__tasks_free(got, n);
  OK(fx, ops->claim(fx->b, &req, &got, &n, fx->err, ERRLEN));
  assert_int_equal(n, 0);
  ops->close(other);
  omniq_task_free(t);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      T(test_empty_url_is_omniq_db_in_base_dir_created_if_missing),
      T(test_relative_url_is_from_working_directory),
      T(test_absolute_url_has_four_slashes),
      T(test_plain_path_is_used_as_is),
      T(test_memory_url_needs_no_file),
      T(test_url_with_a_host_is_a_config_error),
      T(test_file_that_is_not_a_database_is_corrupt_and_untouched),
      T(test_unopenable_path_names_the_path),
      T(test_newer_schema_version_is_refused_and_untouched),
      T(test_database_of_another_program_is_refused),
      T(test_foreign_database_is_refused_before_anything_changes),
      T(test_row_with_a_raw_nul_byte_is_corrupt_not_cut_short),
      T(test_new_database_gets_current_schema_in_wal_mode),
      T(test_existing_empty_database_is_migrated_keeping_other_tables),
      T(test_claim_walks_the_partial_index_without_sorting),
      T(test_claim_over_several_queues_walks_the_index_once_per_queue),
      T(test_expired_leases_walk_the_lease_index),
      T(test_list_walks_an_index_in_id_order_without_sorting),
      T(test_a_version_1_database_is_migrated_keeping_its_tasks),
      T(test_a_new_database_reclaims_space_incrementally),
      cmocka_unit_test(test_busy_writer_sleeps_short_first_then_doubles_to_a_cap),
      T(test_locked_database_is_busy_and_reads_go_on),
      T(test_claim_out_of_memory_leaves_tasks_pending),
      T(test_malformed_ids_are_invalid),
      T(test_finish_must_end_a_run),
      T(test_two_handles_on_one_file_share_the_queue),
  };
  return cmocka_run_group_tests_name("sqlite backend", tests, NULL, NULL);
}
