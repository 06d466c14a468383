/* SPDX-License-Identifier: MIT */
/* SQLite backend: where the database lives, how a connection is set up, and
 * the schema with its migrations.
 *
 * Opening is careful not to damage what it did not create: it reads the
 * header (user_version, application_id) and the names of the tables before
 * changing anything, the journal mode included, so a file that is not a
 * database, a database of another program, or one written by a newer OmniQ
 * is refused with OMNIQ_ECORRUPT and left as it was, byte for byte. Another
 * program's database is one with another application_id; or a user_version
 * but not OmniQ's application_id; or, with neither, its own tables named
 * tasks or results. An OmniQ database (our application_id and a version)
 * missing those tables is refused the same way. A database with neither and
 * only other tables is OmniQ's to migrate (its tables are kept).
 *
 * Migrations run inside BEGIN IMMEDIATE and re-read user_version there, so
 * processes opening a fresh database at the same time migrate it once: the
 * first takes the write lock, the others wait for it (up to
 * OMNIQ__SQLITE_MIGRATE_WAIT_MS, since migrating a large store takes long)
 * and then find nothing to do. A database already at this version is
 * opened without the write lock.
 *
 * Connection settings and why:
 * - journal_mode=WAL: readers never block the writer nor it them; the mode is
 *   stored in the file, so every process sharing it uses WAL.
 * - synchronous=NORMAL: in WAL mode a commit is durable against a process
 *   crash; a power loss can lose the last commits but never corrupts.
 * - a busy handler (busy_wait): a writer waits for another writer, up to the
 *   busy timeout, instead of failing; see omniq__sqlite_retry_again for the
 *   cases SQLite does not wait itself. Not SQLite's own (sqlite3_busy_timeout):
 *   its first sleep is 1 ms, then 2, 5, 10 ms, while a write transaction here
 *   holds the lock for 50-200 us. A process whose commit met another
 *   process's (a producer's enqueue and a worker's claim) slept a whole
 *   millisecond after the lock was free, which was most of the cross-process
 *   enqueue -> start p99 (1.4 ms). busy_wait sleeps BUSY_FIRST_US and doubles
 *   up to BUSY_MAX_US, so a short hold costs a short wait and a long one
 *   (a checkpoint, a hung process) costs a wake-up every few ms.
 * - wal_autocheckpoint=CHECKPOINT_PAGES: a checkpoint copies WAL pages back
 *   into the database and fsyncs, on the thread whose commit crossed the
 *   threshold. The default (1000 pages) runs one every few hundred claims
 *   and rewrites the same hot index pages each time; a larger threshold
 *   makes them rare and lets repeated updates of one page collapse into one
 *   write. The checkpoint stays PASSIVE (never waits for readers), and
 *   journal_size_limit truncates the WAL file after it is reset so a burst
 *   does not leave a large file behind.
 *
 * The SQLite library, once per process, before the first connection
 * (configure_library): SQLITE_CONFIG_MEMSTATUS off. With it on (the
 * default), every allocation SQLite makes updates its memory statistics
 * under one process-wide mutex; the connections here allocate on every
 * statement (Debian's build omits lookaside), so that is some 7% of a
 * task's instructions (docs/benchmarks.md). sqlite3_config works only
 * before SQLite is initialised: a program that initialised SQLite first
 * (sqlite3_initialize, or a connection of its own) keeps its configuration,
 * statistics included, and OmniQ runs with it unchanged: a program that
 * needs sqlite3_memory_used or a heap limit calls sqlite3_initialize()
 * before its first omniq_open.
 * Threading stays as the library was built (serialised by default): each
 * connection here is opened NOMUTEX under the backend's own lock, which is
 * what SQLITE_CONFIG_MULTITHREAD would give, and setting that process-wide
 * would take the mutexes from the program's own connections as well.
 */
#include "storage/sqlite/backend.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/mkdir.h"

/* The oldest SQLite the backend is built and tested with (the claim was
 * an UPDATE ... RETURNING, which came with 3.35, until it became a read
 * and an update); nothing older has been tried. */
#define MIN_SQLITE 3035000
#if SQLITE_VERSION_NUMBER < MIN_SQLITE
#error "the SQLite backend needs SQLite 3.35 or newer"
#endif

#define CHECKPOINT_PAGES 8192           /* 32 MiB of WAL with 4 KiB pages */
#define JOURNAL_SIZE_LIMIT (64LL << 20) /* bytes kept after a WAL reset */
#define CACHE_KIB 16384                 /* page cache per connection */
#define RETRY_MAX_DELAY_US 50000
#define BUSY_FIRST_US 20
#define BUSY_MAX_US 4000

static _Atomic int busy_ms = OMNIQ__SQLITE_BUSY_MS;
static _Atomic int migrate_wait_ms = OMNIQ__SQLITE_MIGRATE_WAIT_MS;
static _Atomic int64_t migrate_waited_ms;

void omniq__sqlite_set_busy_timeout(int ms) { atomic_store(&busy_ms, ms); }
int omniq__sqlite_busy_timeout(void) { return atomic_load(&busy_ms); }
void omniq__sqlite_set_migrate_wait(int ms) {
  atomic_store(&migrate_wait_ms, ms);
  atomic_store(&migrate_waited_ms, 0);
}
int64_t omniq__sqlite_migrate_waited_ms(void) { return atomic_load(&migrate_waited_ms); }

/* ---- schema -------------------------------------------------------------- */

/* Step i takes a database from user_version i to i + 1.
 *
 * To change the schema, append a step, never edit one: databases in use have
 * already run the old steps, and user_version only counts how many. Add a
 * test that opens a database left at the previous version.
 *
 * Notes on version 1:
 * - seq is the rowid and gives insertion order; tasks are never deleted, so
 *   a seq is never reused while its task exists.
 * - tasks_due is PARTIAL (status = 0): it holds only pending tasks, so a
 *   claim walks (queue, priority DESC, eta, seq) from the top in O(log n)
 *   however many finished tasks the table holds. SQLite uses a partial index
 *   only when the query's WHERE implies the index's WHERE at prepare time,
 *   so the claim must say `status = 0` literally; with `status = ?` it scans
 *   the whole table.
 * - tasks_leased (status = 1) finds expired leases without a scan.
 * - last_error and results.error hold the TaskError JSON of
 *   omniq_task_error_to_json, the same text every backend stores.
 *
 * Notes on version 2 (operating a queue; docs/storage-sqlite.md):
 * - Tasks are deleted now (omniq_delete, retention). A seq may then be
 *   reused, but only above every seq still present (SQLite picks max + 1),
 *   so insertion order among living tasks holds.
 * - tasks_status_id, tasks_queue_status_id and tasks_func_status_id serve
 *   a listing page as a walk in id order from the cursor, one status at a
 *   time (reads.c); tasks_finished (terminal tasks only) serves retention.
 * - A unique key is a row of unique_keys naming the task that took it; it
 *   is held while that task is PENDING or RUNNING or finished less than its
 *   unique_for_ms ago, which the enqueue reads from the task itself, so a
 *   finish never has to touch the key.
 * - queues holds what is set per queue (pause, rate limit) and the rate
 *   limit's current window; run_totals the running totals by queue and
 *   kind (omniq_runs_t); chores the next time of each housekeeping chore.
 * - Terminal tasks from version 1 get a finished_at (their result's, or
 *   their creation time), so retention reaches them too.
 *
 * Notes on version 3 (few pages written per task; docs/storage-sqlite.md):
 * - Every change of a task's status rewrites its entry in each index whose
 *   key or WHERE holds the status. Version 2's three listing indexes led
 *   with or held the status, so a claim and a finish each moved an entry in
 *   all three: most of the WAL pages a task cost. Version 3 keeps status out
 *   of every index but those a transition must touch anyway:
 * - tasks_queue_id and tasks_func_id hold every task by (queue, id) and
 *   (func, id); written once at enqueue, never moved.
 * - tasks_pending_id (PENDING only) lists pending tasks in id order:
 *   written at enqueue, deleted by the claim beside its tasks_due entry.
 *   Running tasks are listed from tasks_leased, which the claim and finish
 *   maintain already (the running tasks are the leases held: few).
 * - tasks_done_id, tasks_done_queue and tasks_done_func hold terminal tasks
 *   only, by (status, id) and per queue or func: an entry is written once
 *   when a task finishes and never moves (only a retry by hand or a delete
 *   removes it). Their WHERE is `status + 0 >= 2`, not tasks_finished's
 *   `status >= 2`: a query proves a partial index applies by repeating its
 *   WHERE, and repeated as a plain range on status the planner (which has
 *   no statistics) may walk the index over every terminal status and sort
 *   by id, rather than seek the one status asked for; an expression is
 *   never a range it can walk.
 * - results is WITHOUT ROWID, keyed by task_id: a result is one entry in
 *   one B-tree (and one in results_finished) where a rowid table wrote its
 *   row and the index of its key apart. The migration copies the table.
 * - A statement on these partial indexes writes its status terms
 *   literally, as the claim does, and names its index (INDEXED BY) so a
 *   plan never drifts to a scan. */
static const char *const migrations[] = {
    /* 0 -> 1 */
    "CREATE TABLE tasks ("
    " seq INTEGER PRIMARY KEY,"
    " id TEXT NOT NULL UNIQUE,"
    " func TEXT NOT NULL,"
    " queue TEXT NOT NULL,"
    " args TEXT NOT NULL,"
    " kwargs TEXT NOT NULL,"
    " status INTEGER NOT NULL,"
    " priority INTEGER NOT NULL DEFAULT 0,"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " max_retries INTEGER NOT NULL DEFAULT 0,"
    " eta INTEGER NOT NULL,"
    " interval_ms INTEGER NOT NULL DEFAULT 0,"
    " timeout_ms INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " started_at INTEGER NOT NULL DEFAULT 0,"
    " lease_until INTEGER NOT NULL DEFAULT 0,"
    " token INTEGER NOT NULL DEFAULT 0,"
    " last_error TEXT);"
    "CREATE INDEX tasks_due ON tasks(queue, priority DESC, eta, seq) WHERE status = 0;"
    "CREATE INDEX tasks_leased ON tasks(lease_until) WHERE status = 1;"
    "CREATE TABLE results ("
    " task_id TEXT PRIMARY KEY,"
    " status INTEGER NOT NULL,"
    " value TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL,"
    " finished_at INTEGER NOT NULL,"
    " last_attempt_at INTEGER NOT NULL);"
    "CREATE INDEX results_finished ON results(finished_at);",

    /* 1 -> 2: operating a queue (storage ABI 3). */
    "ALTER TABLE tasks ADD COLUMN unique_key TEXT;"
    "ALTER TABLE tasks ADD COLUMN unique_for_ms INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN cron TEXT;"
    "ALTER TABLE tasks ADD COLUMN crashes INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE tasks ADD COLUMN finished_at INTEGER NOT NULL DEFAULT 0;"
    "UPDATE tasks SET finished_at = coalesce((SELECT finished_at FROM results"
    " WHERE task_id = tasks.id), created_at) WHERE status >= 2;"
    "CREATE INDEX tasks_status_id ON tasks(status, id);"
    "CREATE INDEX tasks_queue_status_id ON tasks(queue, status, id);"
    "CREATE INDEX tasks_func_status_id ON tasks(func, status, id);"
    "CREATE INDEX tasks_finished ON tasks(finished_at) WHERE status >= 2;"
    "CREATE TABLE unique_keys ("
    " queue TEXT NOT NULL,"
    " key TEXT NOT NULL,"
    " task_id TEXT NOT NULL,"
    " PRIMARY KEY (queue, key)) WITHOUT ROWID;"
    "CREATE INDEX unique_keys_task ON unique_keys(task_id);"
    "CREATE TABLE queues ("
    " name TEXT PRIMARY KEY,"
    " paused INTEGER NOT NULL DEFAULT 0,"
    " rate_limit INTEGER NOT NULL DEFAULT 0,"
    " rate_period_ms INTEGER NOT NULL DEFAULT 0,"
    " window_start INTEGER NOT NULL DEFAULT 0,"
    " window_count INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "CREATE TABLE run_totals ("
    " queue TEXT NOT NULL,"
    " kind INTEGER NOT NULL,"
    " n INTEGER NOT NULL,"
    " PRIMARY KEY (queue, kind)) WITHOUT ROWID;"
    "CREATE TABLE chores (name TEXT PRIMARY KEY, next_at INTEGER NOT NULL) WITHOUT ROWID;",

    /* 2 -> 3: status out of the listing indexes. */
    "DROP INDEX tasks_status_id;"
    "DROP INDEX tasks_queue_status_id;"
    "DROP INDEX tasks_func_status_id;"
    "CREATE INDEX tasks_queue_id ON tasks(queue, id);"
    "CREATE INDEX tasks_func_id ON tasks(func, id);"
    "CREATE INDEX tasks_pending_id ON tasks(id) WHERE status = 0;"
    "CREATE INDEX tasks_done_id ON tasks(status, id) WHERE status + 0 >= 2;"
    "CREATE INDEX tasks_done_queue ON tasks(queue, status, id) WHERE status + 0 >= 2;"
    "CREATE INDEX tasks_done_func ON tasks(func, status, id) WHERE status + 0 >= 2;"
    "CREATE TABLE results_v3 ("
    " task_id TEXT PRIMARY KEY,"
    " status INTEGER NOT NULL,"
    " value TEXT,"
    " error TEXT,"
    " attempts INTEGER NOT NULL,"
    " finished_at INTEGER NOT NULL,"
    " last_attempt_at INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO results_v3 (task_id, status, value, error, attempts, finished_at,"
    " last_attempt_at) SELECT task_id, status, value, error, attempts, finished_at,"
    " last_attempt_at FROM results;"
    "DROP TABLE results;"
    "ALTER TABLE results_v3 RENAME TO results;"
    "CREATE INDEX results_finished ON results(finished_at);",
};

#define SCHEMA_VERSION ((int)(sizeof migrations / sizeof migrations[0]))

int omniq__sqlite_schema_version(void) { return SCHEMA_VERSION; }

/* ---- errors and retries -------------------------------------------------- */

int omniq__sqlite_code(int sqlite_rc) {
  switch (sqlite_rc & 0xff) {
  case SQLITE_OK:
  case SQLITE_ROW:
  case SQLITE_DONE: return OMNIQ_OK;
  case SQLITE_BUSY:
  case SQLITE_LOCKED: return OMNIQ_EBUSY;
  case SQLITE_FULL: return OMNIQ_ENOSPC;
  case SQLITE_CORRUPT:
  case SQLITE_NOTADB: return OMNIQ_ECORRUPT;
  case SQLITE_IOERR: return OMNIQ_EIO;
  case SQLITE_CONSTRAINT: return OMNIQ_EINVAL;
  case SQLITE_NOMEM: return OMNIQ_ENOMEM;
  default: return OMNIQ_ESTORAGE;
  }
}

int64_t omniq__sqlite_busy_wait_us(int count) {
  int64_t us = BUSY_FIRST_US;
  while (count-- > 0 && us < BUSY_MAX_US) us *= 2;
  return us < BUSY_MAX_US ? us : BUSY_MAX_US;
}

/* When this thread's current wait for the write lock began (count 0): one
 * connection is used by one thread at a time, and a thread waits for one
 * lock at a time, so a thread-local needs no lock. */
static _Thread_local int64_t busy_since_ms;

/* The busy handler (see the top of this file); arg is the connection's busy
 * timeout in ms. Returns 0 (SQLite then returns SQLITE_BUSY) once the
 * timeout has passed since the wait began. */
static int busy_wait(void *arg, int count) {
  int64_t now = omniq__mono_ms();
  if (count == 0) busy_since_ms = now;
  if (now - busy_since_ms >= (int64_t)(intptr_t)arg) return 0;
  int64_t us = omniq__sqlite_busy_wait_us(count);
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)us * 1000};
  nanosleep(&ts, NULL);
  return 1;
}

void omniq__sqlite_retry_init(omniq__sqlite_retry_t *r) {
  r->start_ms = omniq__mono_ms();
  r->delay_us = 100; /* as busy_wait: a lock is held for 50-200 us */
  r->limit_ms = omniq__sqlite_busy_timeout();
}

int omniq__sqlite_retry_again(omniq__sqlite_retry_t *r) {
  if (omniq__mono_ms() - r->start_ms >= r->limit_ms) return 0;
  struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)r->delay_us * 1000};
  nanosleep(&ts, NULL);
  r->delay_us = r->delay_us * 2 > RETRY_MAX_DELAY_US ? RETRY_MAX_DELAY_US : r->delay_us * 2;
  return 1;
}

static int fail(sqlite3 *db, int rc, const char *path, const char *what, char *err, size_t errlen) {
  snprintf(err, errlen, "sqlite %s: %s: %s", path, what,
           db != NULL ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  return omniq__sqlite_code(rc);
}

/* sqlite3_exec with the busy retry; statements must be safe to repeat. */
static int exec_retry(sqlite3 *db, const char *sql) {
  omniq__sqlite_retry_t r;
  int rc;
  omniq__sqlite_retry_init(&r);
  while (((rc = sqlite3_exec(db, sql, NULL, NULL, NULL)) & 0xff) == SQLITE_BUSY &&
         omniq__sqlite_retry_again(&r)) {
  }
  return rc;
}

/* Runs a statement that yields one integer or text row (a PRAGMA). */
static int query_one(sqlite3 *db, const char *sql, int64_t *num, char *text, size_t textlen) {
  sqlite3_stmt *st = NULL;
  omniq__sqlite_retry_t r;
  int rc;
  omniq__sqlite_retry_init(&r);
  for (;;) {
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
      rc = sqlite3_step(st);
      if (rc == SQLITE_ROW) {
        if (num != NULL) *num = sqlite3_column_int64(st, 0);
        if (text != NULL) {
          const unsigned char *t = sqlite3_column_text(st, 0);
          snprintf(text, textlen, "%s", t != NULL ? (const char *)t : "");
        }
        rc = SQLITE_OK;
      } else if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
      }
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc & 0xff) != SQLITE_BUSY || !omniq__sqlite_retry_again(&r)) return rc;
  }
}

/* ---- paths --------------------------------------------------------------- */

int omniq__sqlite_path(const omniq_settings_t *s, char *out, size_t outlen, char *err,
                       size_t errlen) {
  const char *url = s->db_url;
  int n;
  if (url[0] == '\0') {
    n = s->base_dir[0] != '\0' ? snprintf(out, outlen, "%s/%s", s->base_dir, OMNIQ_DEFAULT_DB_FILE)
                               : snprintf(out, outlen, "%s", OMNIQ_DEFAULT_DB_FILE);
  } else if (strncmp(url, "sqlite:", 7) == 0) {
    /* sqlite:///rel/path.db -> rel/path.db, sqlite:////abs.db -> /abs.db.
     * Anything with a host part (sqlite://host/...) is not a local file. */
    if (strncmp(url, "sqlite:///", 10) != 0 || url[10] == '\0') {
      snprintf(err, errlen,
               "db_url '%s': expected sqlite:///relative/path.db, sqlite:////absolute/path.db, "
               "a plain path or :memory:",
               url);
      return OMNIQ_ECONFIG;
    }
    n = snprintf(out, outlen, "%s", url + 10);
  } else {
    n = snprintf(out, outlen, "%s", url);
  }
  if (n < 0 || (size_t)n >= outlen) {
    snprintf(err, errlen, "db_url '%s': path longer than %zu bytes", url, outlen - 1);
    return OMNIQ_ECONFIG;
  }
  return OMNIQ_OK;
}

static int is_memory(const char *path) { return strcmp(path, ":memory:") == 0; }

/* mkdir -p for the folder that will hold path. */
static int make_parents(const char *path, char *err, size_t errlen) {
  char dir[OMNIQ_PATH_MAX];
  char *slash;
  int e;
  snprintf(dir, sizeof dir, "%s", path);
  slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) return OMNIQ_OK;
  *slash = '\0';
  if ((e = omniq__mkdir_p(dir)) == 0) return OMNIQ_OK;
  int rc = omniq__errno_code(e);
  snprintf(err, errlen, "sqlite %s: cannot create folder %s: %s", path, dir, strerror(e));
  /* ENOTFOUND and EINVAL mean other things to callers (no such task, a bad
   * argument); an unusable folder is an I/O error. */
  return rc == OMNIQ_ENOTFOUND || rc == OMNIQ_EINVAL ? OMNIQ_EIO : rc;
}

/* ---- opening ------------------------------------------------------------- */

/* Refuses databases this build must not touch (see the note at the top).
 * Reads only: it runs before the journal mode is set. */
static int check_header(sqlite3 *db, const char *path, char *err, size_t errlen) {
  int64_t version = 0, app_id = 0, named = 0, ours = 0;
  int rc = query_one(db, "PRAGMA user_version", &version, NULL, 0);
  if (rc == SQLITE_OK) rc = query_one(db, "PRAGMA application_id", &app_id, NULL, 0);
  if (rc == SQLITE_OK)
    rc = query_one(db, "SELECT count(*) FROM sqlite_master WHERE name IN ('tasks', 'results')",
                   &named, NULL, 0);
  if (rc == SQLITE_OK)
    rc = query_one(db,
                   "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
                   " AND name IN ('tasks', 'results')",
                   &ours, NULL, 0);
  if (rc != SQLITE_OK) return fail(db, rc, path, "reading the header", err, errlen);
  if (app_id != 0 && app_id != OMNIQ__SQLITE_APP_ID) {
    snprintf(err, errlen, "sqlite %s: not an OmniQ database (application_id %lld)", path,
             (long long)app_id);
    return OMNIQ_ECORRUPT;
  }
  if (version > SCHEMA_VERSION) {
    snprintf(err, errlen,
             "sqlite %s: schema version %lld is newer than this OmniQ knows (%d); "
             "open it with a newer OmniQ",
             path, (long long)version, SCHEMA_VERSION);
    return OMNIQ_ECORRUPT;
  }
  if (app_id == 0 && version != 0) {
    snprintf(err, errlen,
             "sqlite %s: not an OmniQ database (user_version %lld without OmniQ's "
             "application_id); nothing changed",
             path, (long long)version);
    return OMNIQ_ECORRUPT;
  }
  if (version == 0 && named != 0) {
    snprintf(err, errlen,
             "sqlite %s: has tables named tasks or results but is not an OmniQ database; "
             "nothing changed",
             path);
    return OMNIQ_ECORRUPT;
  }
  if (version != 0 && ours != 2) {
    snprintf(err, errlen,
             "sqlite %s: an OmniQ database (schema version %lld) without its tasks and "
             "results tables; nothing changed",
             path, (long long)version);
    return OMNIQ_ECORRUPT;
  }
  return OMNIQ_OK;
}

/* Under the write lock: the header again (another process may have
 * migrated, or made the file something else, since it was first read). */
static int migrate_locked(sqlite3 *db, const char *path, char *err, size_t errlen) {
  int64_t version = 0;
  char sql[64];
  int rc = check_header(db, path, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (query_one(db, "PRAGMA user_version", &version, NULL, 0) != SQLITE_OK)
    return fail(db, sqlite3_errcode(db), path, "reading user_version", err, errlen);
  if (version == SCHEMA_VERSION) return OMNIQ_OK;
  for (int64_t v = version; v < SCHEMA_VERSION; v++) {
    rc = sqlite3_exec(db, migrations[v], NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
      snprintf(sql, sizeof sql, "migrating to schema version %lld", (long long)v + 1);
      return fail(db, rc, path, sql, err, errlen);
    }
  }
  snprintf(sql, sizeof sql, "PRAGMA user_version = %d; PRAGMA application_id = %d", SCHEMA_VERSION,
           OMNIQ__SQLITE_APP_ID);
  rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
  return rc == SQLITE_OK ? OMNIQ_OK : fail(db, rc, path, "setting user_version", err, errlen);
}

/* The write lock for a migration. Another process may hold it for the
 * whole of its own migration, so this waits up to the migration wait, not
 * just the busy timeout. */
static int lock_to_migrate(sqlite3 *db) {
  omniq__sqlite_retry_t r;
  int rc;
  omniq__sqlite_retry_init(&r);
  r.limit_ms = atomic_load(&migrate_wait_ms);
  while (((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) & 0xff) == SQLITE_BUSY) {
    int64_t waited = omniq__mono_ms() - r.start_ms, most = atomic_load(&migrate_waited_ms);
    while (waited > most && !atomic_compare_exchange_weak(&migrate_waited_ms, &most, waited)) {
    }
    if (!omniq__sqlite_retry_again(&r)) break;
  }
  return rc;
}

/* A database already at this version needs no write lock: user_version
 * only moves forward, and with its tables in the same commit, so a read
 * that finds it current is final. Opening beside busy writers then never
 * queues for their lock. */
static int migrate(sqlite3 *db, const char *path, char *err, size_t errlen) {
  int64_t version = 0;
  int rc = query_one(db, "PRAGMA user_version", &version, NULL, 0);
  if (rc != SQLITE_OK) return fail(db, rc, path, "reading user_version", err, errlen);
  if (version == SCHEMA_VERSION) return OMNIQ_OK;
  rc = lock_to_migrate(db);
  if (rc != SQLITE_OK) return fail(db, rc, path, "starting the schema migration", err, errlen);
  rc = migrate_locked(db, path, err, errlen);
  if (rc == OMNIQ_OK) {
    int src = exec_retry(db, "COMMIT");
    if (src != SQLITE_OK) rc = fail(db, src, path, "committing the schema", err, errlen);
  }
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
  return rc;
}

static int configure(sqlite3 *db, const char *path, char *err, size_t errlen) {
  char mode[16] = "", sql[256];
  int64_t tables = 1;
  /* Space: a new database reclaims pages incrementally, so the file
   * shrinks after retention deletes tasks (backend.c runs
   * incremental_vacuum after each purge). auto_vacuum can only be chosen
   * before the first table exists; a database created by an older OmniQ
   * keeps reusing its free pages instead, which bounds its size too. */
  int rc = query_one(db, "SELECT count(*) FROM sqlite_master", &tables, NULL, 0);
  if (rc == SQLITE_OK && tables == 0)
    rc = exec_retry(db, "PRAGMA auto_vacuum = INCREMENTAL");
  if (rc != SQLITE_OK) return fail(db, rc, path, "setting auto_vacuum", err, errlen);
  rc = query_one(db, "PRAGMA journal_mode = WAL", NULL, mode, sizeof mode);
  if (rc != SQLITE_OK) return fail(db, rc, path, "switching to WAL", err, errlen);
  if (strcmp(mode, "wal") != 0 && !(is_memory(path) && strcmp(mode, "memory") == 0)) {
    snprintf(err, errlen, "sqlite %s: cannot use WAL journal mode (got '%s')", path, mode);
    return OMNIQ_ESTORAGE;
  }
  snprintf(sql, sizeof sql,
           "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = %d;"
           "PRAGMA journal_size_limit = %lld; PRAGMA cache_size = -%d;"
           "PRAGMA temp_store = MEMORY",
           CHECKPOINT_PAGES, JOURNAL_SIZE_LIMIT, CACHE_KIB);
  rc = exec_retry(db, sql);
  return rc == SQLITE_OK ? OMNIQ_OK : fail(db, rc, path, "setting pragmas", err, errlen);
}

/* ---- the library ----------------------------------------------------------- */

static pthread_once_t library_once = PTHREAD_ONCE_INIT;

/* See the note at the top. SQLITE_MISUSE means SQLite was initialised
 * already, by the program or by another library: its settings stand. */
static void configure_library(void) {
  (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int omniq__sqlite_connect(const char *path, sqlite3 **out, char *err, size_t errlen) {
  sqlite3 *db = NULL;
  int rc;
  *out = NULL;
  if (sqlite3_libversion_number() < MIN_SQLITE) {
    snprintf(err, errlen, "sqlite %s: SQLite %s is too old; OmniQ needs 3.35 or newer", path,
             sqlite3_libversion());
    return OMNIQ_ESTORAGE;
  }
  if (!sqlite3_threadsafe()) {
    snprintf(err, errlen, "sqlite %s: the SQLite library was built without thread support", path);
    return OMNIQ_ESTORAGE;
  }
  pthread_once(&library_once, configure_library);
  if (!is_memory(path) && (rc = make_parents(path, err, errlen)) != OMNIQ_OK) return rc;
  /* NOMUTEX: the backend's own mutex serialises every use of the
   * connection, so SQLite's per-connection mutex would be a second lock. */
  rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                       NULL);
  if (rc != SQLITE_OK) {
    rc = fail(db, rc, path, "cannot open", err, errlen);
    sqlite3_close(db);
    return rc;
  }
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_handler(db, busy_wait, (void *)(intptr_t)omniq__sqlite_busy_timeout());
  rc = check_header(db, path, err, errlen);
  if (rc == OMNIQ_OK) rc = configure(db, path, err, errlen);
  if (rc == OMNIQ_OK) rc = migrate(db, path, err, errlen);
  if (rc != OMNIQ_OK) {
    sqlite3_close(db);
    return rc;
  }
  *out = db;
  return OMNIQ_OK;
}
