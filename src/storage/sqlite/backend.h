/* SPDX-License-Identifier: MIT */
/* SQLite backend internals, shared by its files, plus the few hooks
 * tests/test_store_sqlite.c and the benchmark need:
 *   backend.c  the connection, its lock, transactions, the writes, the ops table
 *   claim.c    the claim, alone or riding with a finish
 *   group.c    finishes (and riding claims) committed together
 *   inserts.c  tasks and results inserted, many rows to a statement
 *   reads.c    the reads (get_task, get_result, counts, leases)
 *   list.c     listing pages in id order
 *   manage.c   retry, delete, retention, queue settings and statistics, chores
 *   rows.c     rows <-> records, and the claim's SQL text
 *   schema.c   URL forms, opening, pragmas, schema migrations */
#ifndef OMNIQ_STORAGE_SQLITE_BACKEND_H
#define OMNIQ_STORAGE_SQLITE_BACKEND_H

#include <pthread.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

#include "omniq/storage.h"

/* PRAGMA application_id of an OmniQ database ("OmnQ"), so a database that
 * belongs to another program is refused instead of migrated. */
#define OMNIQ__SQLITE_APP_ID 0x4f6d6e51

/* The schema version this build writes (PRAGMA user_version). */
int omniq__sqlite_schema_version(void);

/* Resolves settings->db_url (or base_dir when it is "") into the filename
 * handed to sqlite3_open_v2. OMNIQ_ECONFIG for a URL it does not accept. */
int omniq__sqlite_path(const omniq_settings_t *s, char *out, size_t outlen, char *err,
                       size_t errlen);

/* Opens the database at path: creates missing parent folders, sets the
 * connection pragmas, and migrates the schema. On OMNIQ_OK *db is yours
 * (sqlite3_close); on error *db is NULL and err names path. */
int omniq__sqlite_connect(const char *path, sqlite3 **db, char *err, size_t errlen);

/* Maps an SQLite result code (plain or extended) to an OMNIQ_E* code. */
int omniq__sqlite_code(int sqlite_rc);

/* Busy retries beyond SQLite's own busy handler. SQLite returns SQLITE_BUSY
 * without calling the handler in a few cases (a deadlock it detects, WAL
 * recovery by another connection), so whole operations are retried with a
 * short backoff until `limit_ms` (the busy timeout, unless the caller sets
 * another) has passed since `start_ms`. */
typedef struct omniq__sqlite_retry {
  int64_t start_ms; /* monotonic */
  int64_t delay_us;
  int64_t limit_ms;
} omniq__sqlite_retry_t;
void omniq__sqlite_retry_init(omniq__sqlite_retry_t *r);
/* Sleeps the next backoff and returns 1 if time is left, else returns 0. */
int omniq__sqlite_retry_again(omniq__sqlite_retry_t *r);

/* The claim's statements for nqueues (>= 1) queues: queue i bound as
 * ?(4+2i) and the most its arm may take as ?(5+2i) (?1 now, ?2
 * lease_until, ?3 max). claim_read_sql reads the rows the claim takes
 * (OMNIQ__SQLITE_TASK_COLS, as they are before it), claim_sql takes them.
 * Yours: sqlite3_free(). NULL on out of memory. Exposed so a test can
 * check their query plans. */
char *omniq__sqlite_claim_sql(size_t nqueues);
char *omniq__sqlite_claim_read_sql(size_t nqueues);
/* The expired-leases query (?1 now, ?2 max), for the same reason. */
extern const char omniq__sqlite_expired_sql[];

/* Test hook: the busy timeout (ms) for connections opened afterwards;
 * default OMNIQ__SQLITE_BUSY_MS. Process-wide. */
#define OMNIQ__SQLITE_BUSY_MS 5000
void omniq__sqlite_set_busy_timeout(int ms);
int omniq__sqlite_busy_timeout(void);
/* How long (us) a writer that found the database locked sleeps before its
 * try number count + 1 (count from 0): short first, doubling, capped
 * (schema.c, busy_wait). Exposed for a test. */
int64_t omniq__sqlite_busy_wait_us(int count);

/* How long an opener that finds the schema older than its own waits for
 * the write lock: another process may be migrating a large store, which
 * takes far longer than a writer's busy timeout (tens of seconds at 10^6
 * tasks). */
#define OMNIQ__SQLITE_MIGRATE_WAIT_MS (10 * 60 * 1000)
/* Test hooks: that wait for connections opened afterwards (process-wide;
 * also forgets the longest wait), and the longest any opener of this
 * process has waited since. */
void omniq__sqlite_set_migrate_wait(int ms);
int64_t omniq__sqlite_migrate_waited_ms(void);

/* ---- between the backend's files ---------------------------------------- */

/* The columns every task / result query returns, in the order
 * omniq__sqlite_row_task / omniq__sqlite_row_result read them. */
#define OMNIQ__SQLITE_TASK_COLS                                                      \
  "id, func, queue, args, kwargs, status, priority, attempts, max_retries, eta, "    \
  "interval_ms, timeout_ms, created_at, started_at, lease_until, token, last_error, " \
  "seq, unique_key, unique_for_ms, cron, crashes, finished_at"
#define OMNIQ__SQLITE_RESULT_COLS \
  "task_id, status, value, error, attempts, finished_at, last_attempt_at"

/* Statements prepared once per connection (texts in backend.c, the
 * one-row inserts' in inserts.c). */
enum {
  OMNIQ__SQ_BEGIN,
  OMNIQ__SQ_COMMIT,
  OMNIQ__SQ_ROLLBACK,
  OMNIQ__SQ_INSERT,
  OMNIQ__SQ_STATE,
  OMNIQ__SQ_FINISH_FIND, /* finish: the row under its claim token, and its queue */
  OMNIQ__SQ_FINISH,
  OMNIQ__SQ_FINISH_HINTED, /* finish by id, token and queue: no lookup first */
  OMNIQ__SQ_PUT_RESULT,
  OMNIQ__SQ_CANCEL,
  OMNIQ__SQ_EXTEND,
  OMNIQ__SQ_GET_TASK,
  OMNIQ__SQ_GET_RESULT,
  OMNIQ__SQ_PURGE,
  OMNIQ__SQ_COUNT,
  OMNIQ__SQ_EXPIRED,
  /* storage ABI 3 */
  OMNIQ__SQ_QUEUE_STATE, /* claim: a queue's pause, rate limit and window */
  OMNIQ__SQ_QUEUE_WINDOW, /* claim: the window after taking from a limited queue */
  OMNIQ__SQ_TOTAL_ADD,    /* finish: n more runs of a kind */
  OMNIQ__SQ_KEY_GET,      /* who holds a unique key, and whether it still does */
  OMNIQ__SQ_KEY_PUT,
  OMNIQ__SQ_COUNT_
};

/* Claim statements for up to this many queues are kept prepared. */
#define OMNIQ__SQLITE_CLAIM_CACHE OMNIQ_MAX_QUEUES

/* Several rows go into one INSERT: statements of 2, 4, ... up to
 * 2^OMNIQ__SQLITE_ROWS_LG rows (64), each prepared on first use
 * (inserts.c). */
#define OMNIQ__SQLITE_ROWS_LG 6

/* Statements of the rarer operations (manage.c), prepared on first use. */
#define OMNIQ__SQLITE_LAZY 27

/* A claim being made (claim.c): the request, and the rows it took. */
typedef struct omniq__sqlite_claim omniq__sqlite_claim_t;

/* A finish waiting for the group commit (group.c), and the claim that
 * rides with it (NULL = none). */
typedef struct omniq__sqlite_fin {
  const omniq_decision_t *d;
  omniq__sqlite_claim_t *claim;
  char *err;
  size_t errlen;
  int rc, done;
  int claimed; /* the claim was committed with the finish */
  int claim_any; /* make the claim even if this finish missed (finish_many) */
  struct omniq__sqlite_fin *next;
} omniq__sqlite_fin_t;

/* The finishes of a handle's threads, committed together (group.c).
 * `lock` guards the list and `committing`; it is never held across a
 * storage call. */
typedef struct omniq__sqlite_group {
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a batch was committed */
  omniq__sqlite_fin_t *head, **tail;
  int committing; /* a thread is committing a batch */
} omniq__sqlite_group_t;

/* An opened backend. `lock` guards the connection and every statement. */
typedef struct omniq__sqlite {
  pthread_mutex_t lock;
  omniq__sqlite_group_t group;
  sqlite3 *db;
  sqlite3_stmt *st[OMNIQ__SQ_COUNT_];
  sqlite3_stmt *claim[OMNIQ__SQLITE_CLAIM_CACHE + 1]; /* by queue count, on first use */
  sqlite3_stmt *claim_read[OMNIQ__SQLITE_CLAIM_CACHE + 1]; /* the same, reading the rows */
  sqlite3_stmt *lazy[OMNIQ__SQLITE_LAZY];             /* by slot, on first use */
  sqlite3_stmt *insert_rows[OMNIQ__SQLITE_ROWS_LG + 1]; /* [lg]: 2^lg tasks, on first use */
  sqlite3_stmt *result_rows[OMNIQ__SQLITE_ROWS_LG + 1]; /* [lg]: 2^lg results */
  sqlite3_stmt *finish_rows[OMNIQ__SQLITE_ROWS_LG + 1]; /* [lg]: 2^lg finishes */
  char path[OMNIQ_PATH_MAX];
} omniq__sqlite_t;

/* The statement in lazy slot `slot`, prepared from sql on first use (lock
 * held). OMNIQ_OK with *out, or the failure in err. */
int omniq__sqlite_lazy(omniq__sqlite_t *sq, int slot, const char *sql, sqlite3_stmt **out,
                       char *err, size_t errlen);

/* One operation, run with the lock held; returns an OMNIQ_* code. */
typedef int (*omniq__sqlite_op_fn)(omniq__sqlite_t *sq, void *arg, char *err, size_t errlen);
/* Runs fn under the lock, rolls back whatever it left open on error, and
 * retries it whole while the database is busy. */
int omniq__sqlite_run(omniq__sqlite_t *sq, omniq__sqlite_op_fn fn, void *arg, char *err,
                      size_t errlen);

/* Most finishes one transaction of the group commit carries (group.c). */
#define OMNIQ__SQLITE_GROUP_MAX 64

/* The runs a transaction's finishes add to the running totals, by queue
 * and kind, written once each before the commit (omniq__sqlite_tally_write)
 * instead of one upsert per finish; and their results, inserted together
 * then. Zero-initialised is empty; the queue names are owned, freed by
 * omniq__sqlite_tally_free; the decisions are the caller's and must
 * outlive the write. */
typedef struct omniq__sqlite_tally {
  size_t n;
  struct {
    char *queue;
    int kind;
    int64_t runs;
  } e[OMNIQ__SQLITE_GROUP_MAX];
  size_t nresults; /* the results of the finishes that applied, in order */
  const omniq_decision_t *results[OMNIQ__SQLITE_GROUP_MAX];
} omniq__sqlite_tally_t;

/* Writes every entry of t to run_totals (lock held, inside the open
 * transaction): OMNIQ_OK, or the failure with the transaction to be rolled
 * back. Leaves t as it was (free it after). */
int omniq__sqlite_tally_write(omniq__sqlite_t *sq, const omniq__sqlite_tally_t *t, char *err,
                              size_t errlen);
void omniq__sqlite_tally_free(omniq__sqlite_tally_t *t);

/* Finishes (finish.c; group.c commits them). apply_finish applies d
 * inside the open transaction (lock held): OMNIQ_OK; OMNIQ_ESTATE or
 * OMNIQ_ENOTFOUND having changed nothing; any other code with the
 * transaction to be rolled back. Its run
 * is added to tally (written by the caller before it commits), or with
 * tally NULL, or a tally already holding OMNIQ__SQLITE_GROUP_MAX other
 * queues and kinds, to run_totals at once. do_finish is d in a
 * transaction of its own, for omniq__sqlite_run. */
int omniq__sqlite_apply_finish(omniq__sqlite_t *sq, const omniq_decision_t *d,
                               omniq__sqlite_tally_t *tally, char *err, size_t errlen);
int omniq__sqlite_do_finish(omniq__sqlite_t *sq, void *d, char *err, size_t errlen);
/* The 2^lg finishes ds[0..2^lg), each naming its queue, with one
 * statement inside the open transaction (lock held): *all = 1 when every
 * one took its row (each then counted in tally and its result queued, as
 * apply_finish does), else *all = 0 with nothing changed, for the caller
 * to apply them one by one. OMNIQ_OK, or a failure with the transaction
 * to be rolled back. */
int omniq__sqlite_finish_rows(omniq__sqlite_t *sq, const omniq_decision_t *const *ds, int lg,
                              omniq__sqlite_tally_t *tally, int *all, char *err, size_t errlen);
/* ops->finish (finish.c): d checked, then through the group commit. */
int omniq__sqlite_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen);
/* Why a token-checked change of task id matched no row (lock held):
 * OMNIQ_ENOTFOUND for an unknown id, OMNIQ_ESTATE naming the task's status
 * and token for a stale claim, err saying which, prefixed with what. */
int omniq__sqlite_explain_miss(omniq__sqlite_t *sq, const char *id, const char *what, char *err,
                               size_t errlen);
/* The table's enqueue, enqueue_unique, extend_lease, cancel and
 * purge_results (transitions.c), as omniq/storage.h describes them. */
int omniq__sqlite_enqueue(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                          size_t errlen);
int omniq__sqlite_enqueue_many(void *backend, omniq_task_t *const *tasks, size_t n,
                               char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen);
int omniq__sqlite_extend_lease(void *backend, const char *id, int64_t token,
                               int64_t lease_until_ms, char *err, size_t errlen);
int omniq__sqlite_cancel(void *backend, const char *id, int64_t finished_at_ms,
                         int *prev_status, char *err, size_t errlen);
int omniq__sqlite_purge_results(void *backend, int64_t older_than_ms, int64_t *count,
                                char *err, size_t errlen);
/* The group commit of a handle: set up at open, torn down at close (no
 * finish running). init returns 0, or -1 out of resources. */
int omniq__sqlite_group_init(omniq__sqlite_group_t *g);
void omniq__sqlite_group_destroy(omniq__sqlite_group_t *g);
/* For tests: fn (NULL = none) is called, with the group's lock held, each
 * time finishes join a group's list (committing 0) and each time a thread
 * starts committing a batch (committing 1), so a test waits for the state
 * it needs instead of looking at the list every so often. */
void omniq__sqlite_set_group_hook(void (*fn)(int committing));
/* Applies d, committed together with the finishes other threads of this
 * handle hand over meanwhile; returns once d is committed (or refused),
 * with d's own code and message. With claim != NULL the claim is made in
 * the same transaction if d applies; *claimed says whether it was (when
 * not, the claim holds no rows). */
int omniq__sqlite_finish_grouped(omniq__sqlite_t *sq, const omniq_decision_t *d,
                                 omniq__sqlite_claim_t *claim, int *claimed, char *err,
                                 size_t errlen);
/* The n finishes ds[0..n) through the group commit, with claim c (NULL =
 * none) after them in the last one's transaction if that commits; rcs[i]
 * gets each one's code, err the first failure's message. OMNIQ_ENOMEM (and
 * nothing applied) if the batch cannot be set up, else OMNIQ_OK. n >= 1. */
int omniq__sqlite_finish_group_many(omniq__sqlite_t *sq, const omniq_decision_t *ds, size_t n,
                                    int *rcs, omniq__sqlite_claim_t *claim, int *claimed,
                                    char *err, size_t errlen);
/* ops->finish_many (claim.c) and ops->release (group.c). */
int omniq__sqlite_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                              const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                              int *claimed, char *err, size_t errlen);
int omniq__sqlite_release(void *backend, const char *id, int64_t token, char *err,
                          size_t errlen);
/* The lazy slots (omniq__sqlite_lazy) of release's statement and of the
 * savepoint around a batched finish (finish.c): the last four, after
 * manage.c's. */
#define OMNIQ__SQLITE_LAZY_RELEASE (OMNIQ__SQLITE_LAZY - 1)
#define OMNIQ__SQLITE_LAZY_SP_BEGIN (OMNIQ__SQLITE_LAZY - 2)
#define OMNIQ__SQLITE_LAZY_SP_UNDO (OMNIQ__SQLITE_LAZY - 3)
#define OMNIQ__SQLITE_LAZY_SP_END (OMNIQ__SQLITE_LAZY - 4)
/* Makes claim c inside the open transaction (lock held): OMNIQ_OK with
 * its rows kept in c, or a code with none kept and the transaction to be
 * rolled back. */
int omniq__sqlite_apply_claim(omniq__sqlite_t *sq, omniq__sqlite_claim_t *c, char *err,
                              size_t errlen);
/* ops->claim and ops->finish_claim (claim.c). */
int omniq__sqlite_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out,
                        size_t *n, char *err, size_t errlen);
int omniq__sqlite_finish_claim(void *backend, const omniq_decision_t *d,
                               const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                               int *claimed, char *err, size_t errlen);
/* OMNIQ_OK for a decision finish may apply; else OMNIQ_EINVAL with err. */
int omniq__sqlite_check_finish(const omniq_decision_t *d, char *err, size_t errlen);
/* Drops the rows a claim took (its transaction was rolled back). */
void omniq__sqlite_claim_drop(omniq__sqlite_claim_t *c);

/* Writes "sqlite PATH: WHAT: sqlite's message" to err; returns the mapped code. */
int omniq__sqlite_fail(omniq__sqlite_t *sq, int sqlite_rc, const char *what, char *err,
                       size_t errlen);
/* Writes a formatted message to err; returns rc. */
int omniq__sqlite_errf(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A row of OMNIQ__SQLITE_TASK_COLS as a record (yours: omniq_task_free);
 * *seq (may be NULL) gets its insertion order. OMNIQ_ENOMEM, or
 * OMNIQ_ECORRUPT for a row that does not hold a valid task. */
int omniq__sqlite_row_task(sqlite3_stmt *s, omniq_task_t **out, int64_t *seq);
/* A row of OMNIQ__SQLITE_RESULT_COLS as a record (yours: omniq_result_free). */
int omniq__sqlite_row_result(sqlite3_stmt *s, omniq_result_t **out);
/* Reports a failed omniq__sqlite_row_* for the task id. */
int omniq__sqlite_fail_row(omniq__sqlite_t *sq, int rc, const char *id, char *err, size_t errlen);

/* Steps a statement that returns no rows, then resets it; an SQLite code. */
int omniq__sqlite_step_done(sqlite3_stmt *s);
int omniq__sqlite_begin(omniq__sqlite_t *sq, char *err, size_t errlen);
int omniq__sqlite_commit(omniq__sqlite_t *sq, char *err, size_t errlen);
/* Binds text, or NULL for NULL. */
int omniq__sqlite_bind_text(sqlite3_stmt *s, int i, const char *text);

/* Inserts (inserts.c), inside the caller's write transaction (lock held):
 * OMNIQ_OK, or a code with err set and the transaction to be rolled back.
 * insert_tasks stores tasks[0..n) as new PENDING rows (a duplicate id is
 * OMNIQ_EINVAL naming the task's index); put_result stores (or replaces)
 * the result of task id; put_results the results of ds[0..n), in order,
 * as put_result would one by one. Nothing passed is kept or freed. */
int omniq__sqlite_insert_tasks(omniq__sqlite_t *sq, omniq_task_t *const *tasks, size_t n,
                               char *err, size_t errlen);
int omniq__sqlite_put_result(omniq__sqlite_t *sq, const char *id, const omniq_result_t *r,
                             char *err, size_t errlen);
int omniq__sqlite_put_results(omniq__sqlite_t *sq, const omniq_decision_t *const *ds, size_t n,
                              char *err, size_t errlen);
/* head, then 2^lg copies of row between commas, then tail (NULL: none),
 * prepared on first use into cache[lg]: an SQLite code. */
int omniq__sqlite_rows_stmt(omniq__sqlite_t *sq, sqlite3_stmt **cache, int lg, const char *head,
                            const char *row, const char *tail, sqlite3_stmt **out);
/* The largest lg with 2^lg <= n (n >= 1), at most OMNIQ__SQLITE_ROWS_LG. */
int omniq__sqlite_rows_lg(size_t n);
/* Their one-row statements' texts (OMNIQ__SQ_INSERT, OMNIQ__SQ_PUT_RESULT). */
extern const char omniq__sqlite_insert_sql[];
extern const char omniq__sqlite_put_result_sql[];

/* Unique keys, inside the caller's write transaction: OMNIQ_EEXISTS with
 * the holder's id in holder when another task than `self` holds queue/key
 * at now (self may be NULL), else OMNIQ_OK with the key taken for self. */
int omniq__sqlite_take_key(omniq__sqlite_t *sq, const char *queue, const char *key,
                           const char *self, int64_t now, char holder[OMNIQ_ID_SIZE], char *err,
                           size_t errlen);

/* The ABI 3 operations of the table (manage.c, list.c). */
int omniq__sqlite_list(void *backend, const omniq_list_req_t *req, omniq_task_t ***out,
                       size_t *n, char *err, size_t errlen);
int omniq__sqlite_retry(void *backend, const char *id, int64_t eta_ms, int64_t now_ms,
                        int *prev_status, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen);
int omniq__sqlite_delete(void *backend, const char *id, int *prev_status, char *err,
                         size_t errlen);
int omniq__sqlite_purge_tasks(void *backend, int64_t before_ms, size_t max, int64_t *count,
                              char *err, size_t errlen);
int omniq__sqlite_set_paused(void *backend, const char *queue, int paused, char *err,
                             size_t errlen);
int omniq__sqlite_set_rate(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                           char *err, size_t errlen);
int omniq__sqlite_queue_stats(void *backend, const char *queue, int64_t now_ms,
                              omniq_queue_info_t **out, size_t *n, char *err, size_t errlen);
int omniq__sqlite_claim_chore(void *backend, const char *chore, int64_t now_ms, int64_t next_ms,
                              int *won, char *err, size_t errlen);

/* The list statement for one walk of a page (list.c), exposed so a test
 * can check its query plan: the tasks of `status` (written into the text,
 * so the partial indexes apply) or, with OMNIQ__SQLITE_ANY_STATUS, of
 * every status in one walk, that pass the filters req sets; ?2 after id,
 * ?3 limit, then queue, func and the time bounds in that order. NULL when
 * out of memory. Yours: sqlite3_free(). */
#define OMNIQ__SQLITE_ANY_STATUS (-1)
char *omniq__sqlite_list_sql(const omniq_list_req_t *req, int status);

/* The walks a page of req makes (list.c), as the status each passes to
 * omniq__sqlite_list_sql: OMNIQ__SQLITE_ANY_STATUS alone when every status
 * is asked for, else each status asked for. Returns how many. */
size_t omniq__sqlite_list_walks(const omniq_list_req_t *req, int walks[OMNIQ_STATUS_COUNT]);

/* The read operations of the table (reads.c). */
int omniq__sqlite_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                           size_t errlen);
int omniq__sqlite_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                             size_t errlen);
int omniq__sqlite_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                                  size_t errlen);
int omniq__sqlite_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                                 size_t *n, char *err, size_t errlen);

#endif
