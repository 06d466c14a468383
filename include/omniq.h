/* SPDX-License-Identifier: MIT */
/* OmniQ — an embeddable, durable background task queue.
 *
 * Thread-safety, said once: every function taking an omniq_t may be called
 * from any thread at the same time, unless its comment says otherwise.
 * Objects handed to the caller (results, tasks) belong to the caller and are
 * not shared with the library.
 *
 * Ownership words used below:
 *   copied   - the library keeps its own copy; the argument may be freed.
 *   borrowed - valid until the named event (usually the owner's _free).
 *   yours    - free it with the named function.
 *
 * Times are int64 milliseconds since the Unix epoch, UTC, unless a name ends
 * in _seconds.
 */
#ifndef OMNIQ_H
#define OMNIQ_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define OMNIQ_EXTERN __attribute__((visibility("default")))
#else
#define OMNIQ_EXTERN
#endif

/* The version, kept here and nowhere else: CMake reads these three lines
 * for the project version, the pkg-config file and the CMake package
 * version file; the string is made from them. */
#define OMNIQ_VERSION_MAJOR 0
#define OMNIQ_VERSION_MINOR 2
#define OMNIQ_VERSION_PATCH 0
#define OMNIQ__STR_(x) #x
#define OMNIQ__STR(x) OMNIQ__STR_(x)
#define OMNIQ_VERSION_STRING                                          \
  OMNIQ__STR(OMNIQ_VERSION_MAJOR) "." OMNIQ__STR(OMNIQ_VERSION_MINOR) "." \
      OMNIQ__STR(OMNIQ_VERSION_PATCH)

/* ---- Status codes --------------------------------------------------------
 * One list generates the enum, omniq_err_name() and omniq_strerror(). Codes
 * are only ever appended. OMNIQ_DEFERRED is not an error: a handler returns it
 * to say it will finish later with omniq_job_complete(). */
#define OMNIQ_ERRNO_MAP(X)                                                    \
  X(OK, 0, "success")                                                         \
  X(DEFERRED, 1, "handler will complete the job later")                      \
  X(EINVAL, -1, "invalid argument")                                           \
  X(ENOMEM, -2, "out of memory")                                              \
  X(ENOTFOUND, -3, "not found")                                               \
  X(ETIMEDOUT, -4, "timed out")                                               \
  X(ESTATE, -5, "transition not allowed in the task's current state")        \
  X(ESERIALIZE, -6, "invalid JSON or encoding")                               \
  X(ECONFIG, -7, "invalid setting")                                           \
  X(ESTORAGE, -8, "storage error")                                            \
  X(EBUSY, -9, "storage is locked or busy")                                   \
  X(ECORRUPT, -10, "storage is corrupt or not an OmniQ store")               \
  X(EIO, -11, "input/output error")                                           \
  X(ENOSPC, -12, "no space left on device")                                   \
  X(EHANDLER, -13, "no handler for this task")                                \
  X(ECLOSED, -14, "handle or worker is shutting down")                        \
  X(EFAILED, -15, "task failed")                                              \
  X(EEXISTS, -16, "a task with this unique key already exists")              \
  X(ENOTSUP, -17, "not supported by this storage backend")

typedef enum {
#define OMNIQ__ERR_ENUM(name, value, text) OMNIQ_##name = (value),
  OMNIQ_ERRNO_MAP(OMNIQ__ERR_ENUM)
#undef OMNIQ__ERR_ENUM
} omniq_errno_t;

/* A static description of rc; "unknown error" for codes not in the list.
 * Never NULL, never allocates. */
OMNIQ_EXTERN const char *omniq_strerror(int rc);
/* The code's name ("OMNIQ_ENOTFOUND"); "OMNIQ_UNKNOWN" otherwise. */
OMNIQ_EXTERN const char *omniq_err_name(int rc);

typedef struct omniq omniq_t;
typedef struct omniq_task omniq_task_t;
typedef struct omniq_result omniq_result_t;
typedef struct omniq_task_error omniq_task_error_t;
typedef struct omniq_job omniq_job_t;
typedef struct omniq_worker omniq_worker_t;
typedef struct omniq_task_list omniq_task_list_t;
typedef struct omniq_queue_info omniq_queue_info_t;
typedef struct omniq_stats omniq_stats_t;

/* The calling thread's last detailed message for this handle, or "" if none.
 * omniq_errmsg(NULL) gives the thread's last message from calls that had no
 * handle (omniq_open, omniq_settings_from_env). Borrowed: valid until the
 * same thread's next OmniQ call. */
OMNIQ_EXTERN const char *omniq_errmsg(const omniq_t *oq);

/* ---- Task statuses ------------------------------------------------------- */
typedef enum {
  OMNIQ_PENDING = 0,
  OMNIQ_RUNNING = 1,
  OMNIQ_SUCCESS = 2,
  OMNIQ_FAILED = 3,
  OMNIQ_CANCELLED = 4
} omniq_status_t;
#define OMNIQ_STATUS_COUNT 5

/* "PENDING", ...; "UNKNOWN" for values outside the enum. */
OMNIQ_EXTERN const char *omniq_status_name(int status);
/* Parses a status name; OMNIQ_EINVAL if it is not one. */
OMNIQ_EXTERN int omniq_status_parse(const char *name, int *status_out);
/* 1 if DESIGN's lifecycle table allows from -> to, else 0. */
OMNIQ_EXTERN int omniq_transition_allowed(int from, int to);
/* 1 for SUCCESS, FAILED, CANCELLED. */
OMNIQ_EXTERN int omniq_status_is_terminal(int status);
/* A status as a bit of a status set (omniq_list_opts_t.statuses). */
#define OMNIQ_STATUS_BIT(status) (1u << (status))
#define OMNIQ_STATUS_ALL ((1u << OMNIQ_STATUS_COUNT) - 1)

/* ---- Logging ------------------------------------------------------------- */
typedef enum {
  OMNIQ_LOG_DEBUG = 10,
  OMNIQ_LOG_INFO = 20,
  OMNIQ_LOG_WARNING = 30,
  OMNIQ_LOG_ERROR = 40
} omniq_log_level_t;

typedef enum { OMNIQ_LOG_TEXT = 0, OMNIQ_LOG_JSON = 1 } omniq_log_format_t;

/* A log sink: receives one whole formatted line (no trailing newline) per
 * event. Called from library threads, possibly several at once; the line is
 * borrowed for the duration of the call. */
typedef void (*omniq_log_fn)(void *userdata, int level, const char *line);

/* ---- Limits -------------------------------------------------------------
 * Instants a store keeps run from the epoch to the last millisecond of the
 * year 9999; durations (delay, interval, timeout, and the settings' lease,
 * TTL and retry times) go up to 100 years of 365.25 days. Anything past
 * them is refused with OMNIQ_EINVAL (OMNIQ_ECONFIG for settings), so no
 * instant + duration the library computes can overflow and every backend
 * reads back exactly what it accepted. The store's clock must read inside
 * [0, OMNIQ_TIME_MAX_MS]: outside it, calls that need the time fail with
 * OMNIQ_ECONFIG and change nothing. docs/errors.md lists every limit. */
#define OMNIQ_TIME_MAX_MS INT64_C(253402300799999)   /* 9999-12-31T23:59:59.999Z */
#define OMNIQ_DURATION_MAX_MS INT64_C(3155760000000) /* 100 years of 365.25 days */

/* ---- Clock --------------------------------------------------------------- */
/* Returns the current time in ms since the epoch. Tests inject one to move
 * time instead of sleeping. Must be thread-safe. */
typedef int64_t (*omniq_clock_fn)(void *userdata);

/* Wall-clock time in ms since the epoch (CLOCK_REALTIME). */
OMNIQ_EXTERN int64_t omniq_clock_system(void *userdata);

/* ---- Settings ------------------------------------------------------------ */
typedef enum { OMNIQ_SERIALIZER_JSON = 0, OMNIQ_SERIALIZER_RAW = 1 } omniq_serializer_t;

#define OMNIQ_DEFAULT_BACKEND "sqlite"
#define OMNIQ_DEFAULT_BASE_DIR "./omniq-data"
#define OMNIQ_DEFAULT_DB_FILE "omniq.db"
#define OMNIQ_DEFAULT_TIMEOUT_MS 300000
#define OMNIQ_DEFAULT_MAX_RETRIES 3
#define OMNIQ_DEFAULT_LEASE_MS 30000
#define OMNIQ_DEFAULT_RESULT_TTL_MS 86400000
#define OMNIQ_DEFAULT_RETRY_BASE_MS 1000
#define OMNIQ_DEFAULT_RETRY_CAP_MS 60000
#define OMNIQ_DEFAULT_SERIALIZER OMNIQ_SERIALIZER_JSON
#define OMNIQ_DEFAULT_LOG_LEVEL OMNIQ_LOG_INFO
#define OMNIQ_DEFAULT_LOG_FORMAT OMNIQ_LOG_TEXT
#define OMNIQ_DEFAULT_FSYNC 1
#define OMNIQ_DEFAULT_TASK_TTL_MS 604800000 /* 7 days */
#define OMNIQ_DEFAULT_CRASH_BUDGET 2
#define OMNIQ_DEFAULT_DB_SCHEMA "omniq"
#define OMNIQ_PATH_MAX 1024
#define OMNIQ_NAME_MAX 64
#define OMNIQ_HANDLER_PATH_MAX 4096

typedef struct omniq_settings {
  char backend[OMNIQ_NAME_MAX];  /* OMNIQ_BACKEND: "sqlite", "file" or "postgres" */
  char db_url[OMNIQ_PATH_MAX];   /* OMNIQ_DB_URL; "" = omniq.db in base_dir;
                                    postgres: a libpq URL or key=value string */
  char base_dir[OMNIQ_PATH_MAX]; /* OMNIQ_BASE_DIR */
  int64_t default_timeout_ms;    /* OMNIQ_DEFAULT_TIMEOUT (s); 0 = none */
  int default_max_retries;       /* OMNIQ_DEFAULT_MAX_RETRIES */
  int64_t lease_ms;              /* OMNIQ_LEASE (s) */
  int64_t result_ttl_ms;         /* OMNIQ_RESULT_TTL (s) */
  int serializer;                /* OMNIQ_SERIALIZER: omniq_serializer_t */
  int log_level;                 /* OMNIQ_LOG_LEVEL: omniq_log_level_t */
  int log_format;                /* OMNIQ_LOG_FORMAT: omniq_log_format_t */
  int64_t retry_base_ms;         /* OMNIQ_RETRY_BASE (s) */
  int64_t retry_cap_ms;          /* OMNIQ_RETRY_CAP (s) */
  int fsync;                     /* OMNIQ_FSYNC (0/1): file backend durability */
  omniq_log_fn log_fn;           /* NULL = lines to stderr */
  void *log_userdata;
  omniq_clock_fn clock_fn;       /* NULL = omniq_clock_system */
  void *clock_userdata;
  /* Since 0.2. */
  int64_t task_ttl_ms; /* OMNIQ_TASK_TTL (s): terminal tasks and their results are removed
                          this long after they finished (docs/operations.md) */
  int crash_budget;    /* OMNIQ_CRASH_BUDGET: runs of one task that may end in a crash or
                          WorkerLost before it fails as PoisonTask; 0 = no limit */
  char db_schema[OMNIQ_NAME_MAX]; /* OMNIQ_DB_SCHEMA: the postgres backend's schema;
                                     "" = OMNIQ_DEFAULT_DB_SCHEMA */
  /* OMNIQ_HANDLER_PATH: the folders and files (':'-separated) whose
   * libraries a worker may load for a "path/to/lib.so:symbol" func. "" =
   * none: only registered handlers run. Whoever can write the store can
   * name any func, so this is what stands between them and running code. */
  char handler_path[OMNIQ_HANDLER_PATH_MAX];
} omniq_settings_t;

/* Fills every field with its default. Never fails. */
OMNIQ_EXTERN void omniq_settings_init(omniq_settings_t *s);
/* Overrides fields from OMNIQ_* variables that are set. Strict: a bad value
 * returns OMNIQ_ECONFIG, leaves *s unchanged, and omniq_errmsg(NULL) names
 * the variable and the value. */
OMNIQ_EXTERN int omniq_settings_from_env(omniq_settings_t *s);

/* ---- Lifecycle ----------------------------------------------------------- */
/* Opens the store named by settings (copied); NULL = defaults + environment.
 * On OMNIQ_OK *out is yours: release it with omniq_close(). On error *out is
 * NULL and omniq_errmsg(NULL) says why. */
OMNIQ_EXTERN int omniq_open(omniq_t **out, const omniq_settings_t *settings);
/* Stops and frees every worker still started on oq, then closes the store.
 * Waits for handlers that outlived a worker stop to return. NULL is a no-op.
 * Must not be called from a handler. */
OMNIQ_EXTERN void omniq_close(omniq_t *oq);
/* The settings oq was opened with. Borrowed: valid until omniq_close(oq). */
OMNIQ_EXTERN const omniq_settings_t *omniq_settings(const omniq_t *oq);

/* ---- Enqueue ------------------------------------------------------------- */
#define OMNIQ_ID_LEN 36 /* canonical UUID text */
#define OMNIQ_ID_SIZE (OMNIQ_ID_LEN + 1)
#define OMNIQ_DEFAULT_QUEUE "default"

typedef struct omniq_enqueue_opts {
  int64_t eta_ms;       /* absolute due time; 0 = now (+ delay_ms) */
  int64_t delay_ms;     /* relative delay; >= 0; ignored when eta_ms is set */
  int64_t interval_ms;  /* > 0: re-run this often until cancelled */
  int max_retries;      /* -1 = settings default; total runs allowed */
  int64_t timeout_ms;   /* -1 = settings default; 0 = none */
  const char *queue;    /* NULL = "default"; copied */
  int priority;         /* higher runs first; default 0 */
  /* Since 0.2 (docs/operations.md). */
  const char *unique_key; /* NULL = none; 1-255 bytes, copied. While a task of the same
                             queue holds the key, another enqueue with it is refused
                             with OMNIQ_EEXISTS */
  int64_t unique_for_ms;  /* >= 0: the key stays held this long after its task
                             finished (0 = released when it finishes) */
  const char *cron;       /* NULL = none; a five-field cron expression (UTC): the task
                             runs at each match until cancelled. Not with interval_ms */
} omniq_enqueue_opts_t;

#define OMNIQ_UNIQUE_KEY_MAX 255 /* bytes */
#define OMNIQ_CRON_MAX 255       /* bytes of a cron expression */

OMNIQ_EXTERN void omniq_enqueue_opts_init(omniq_enqueue_opts_t *o);

/* Enqueues one task. func is a registered handler name or
 * "path/to/lib.so:symbol" (which a worker runs only from a library its
 * handler_path allows); args_json a JSON array (NULL = []), kwargs_json a
 * JSON object (NULL = {}); opts NULL = defaults. All copied. On OMNIQ_OK the
 * new id is written to id_out (OMNIQ_ID_SIZE bytes; may be NULL).
 *
 * A cron task's first run is at the first match after eta (or now + delay);
 * every later one at the first match after its previous run finished, so
 * matches missed while no worker ran are run once, not once each.
 *
 * Errors: OMNIQ_EINVAL (the message gives the position of a cron error),
 * OMNIQ_ESERIALIZE (nothing stored), OMNIQ_EEXISTS when opts->unique_key is
 * held by another task of the queue: nothing is stored and id_out gets the
 * id of the task that holds it; OMNIQ_ENOTSUP for unique_key or cron on a
 * backend written for storage ABI 2; storage codes. */
OMNIQ_EXTERN int omniq_enqueue(omniq_t *oq, const char *func, const char *args_json,
                               const char *kwargs_json, const omniq_enqueue_opts_t *opts,
                               char id_out[OMNIQ_ID_SIZE]);

typedef struct omniq_enqueue_item {
  const char *func;
  const char *args_json;
  const char *kwargs_json;
  const omniq_enqueue_opts_t *opts; /* NULL = defaults */
} omniq_enqueue_item_t;

/* Enqueues n tasks in one transaction: all or none. ids_out (may be NULL)
 * receives n ids. A bad item fails the whole batch with its index in the
 * message; so does a queue and unique key given twice. On OMNIQ_EEXISTS (a
 * unique key already held) nothing is stored; ids_out[i] gets the holder's
 * id for each item i whose key is held, "" for the others. */
OMNIQ_EXTERN int omniq_enqueue_many(omniq_t *oq, const omniq_enqueue_item_t *items, size_t n,
                                    char (*ids_out)[OMNIQ_ID_SIZE]);

/* ---- Results ------------------------------------------------------------- */
/* wait_seconds: 0 = do not wait, > 0 = block up to that long, < 0 = forever;
 * a wait longer than OMNIQ_DURATION_MAX_MS (100 years; INFINITY too) is
 * forever as well, and NaN is OMNIQ_EINVAL.
 * Returns OMNIQ_ENOTFOUND when no result exists (no wait) or the id is
 * unknown, OMNIQ_ETIMEDOUT when the wait expires, OMNIQ_EINVAL for a
 * malformed id. On OMNIQ_OK *out is yours: free it with omniq_result_free();
 * the text it holds lives as long as *out. On error *out is NULL. */
OMNIQ_EXTERN int omniq_get_result(omniq_t *oq, const char *id, double wait_seconds,
                                  omniq_result_t **out);
OMNIQ_EXTERN void omniq_result_free(omniq_result_t *r);
/* Accessors; strings borrowed until omniq_result_free(). JSON texts (a
 * value; a task's or job's args and kwargs) come back exactly as given: a
 * NUL inside them is the escape \u0000 in the text, never a raw byte, so
 * the C string holds all of it and no length accessor is needed. */
OMNIQ_EXTERN const char *omniq_result_task_id(const omniq_result_t *r);
OMNIQ_EXTERN int omniq_result_status(const omniq_result_t *r);
OMNIQ_EXTERN const char *omniq_result_value(const omniq_result_t *r); /* JSON or NULL */
OMNIQ_EXTERN const omniq_task_error_t *omniq_result_error(const omniq_result_t *r);
OMNIQ_EXTERN int omniq_result_attempts(const omniq_result_t *r);
OMNIQ_EXTERN int64_t omniq_result_finished_at(const omniq_result_t *r);
OMNIQ_EXTERN int64_t omniq_result_last_attempt_at(const omniq_result_t *r);

/* Task error accessors; strings borrowed until the owner is freed. */
OMNIQ_EXTERN const char *omniq_error_type(const omniq_task_error_t *e);
OMNIQ_EXTERN const char *omniq_error_message(const omniq_task_error_t *e);
OMNIQ_EXTERN int64_t omniq_error_timestamp(const omniq_task_error_t *e);
OMNIQ_EXTERN const char *omniq_error_traceback(const omniq_task_error_t *e); /* or NULL */
OMNIQ_EXTERN int omniq_error_retry_count(const omniq_task_error_t *e);
OMNIQ_EXTERN int omniq_error_is_retryable(const omniq_task_error_t *e);

/* ---- Tasks --------------------------------------------------------------- */
/* On OMNIQ_OK *out is yours: free it with omniq_task_free(). */
OMNIQ_EXTERN int omniq_get_task(omniq_t *oq, const char *id, omniq_task_t **out);
OMNIQ_EXTERN void omniq_task_free(omniq_task_t *t);
OMNIQ_EXTERN const char *omniq_task_id(const omniq_task_t *t);
OMNIQ_EXTERN const char *omniq_task_func(const omniq_task_t *t);
OMNIQ_EXTERN const char *omniq_task_queue(const omniq_task_t *t);
OMNIQ_EXTERN const char *omniq_task_args(const omniq_task_t *t);
OMNIQ_EXTERN const char *omniq_task_kwargs(const omniq_task_t *t);
OMNIQ_EXTERN int omniq_task_status(const omniq_task_t *t);
OMNIQ_EXTERN int omniq_task_attempts(const omniq_task_t *t);
OMNIQ_EXTERN int omniq_task_max_retries(const omniq_task_t *t);
OMNIQ_EXTERN int omniq_task_priority(const omniq_task_t *t);
OMNIQ_EXTERN int64_t omniq_task_eta(const omniq_task_t *t);
OMNIQ_EXTERN int64_t omniq_task_interval(const omniq_task_t *t);
OMNIQ_EXTERN int64_t omniq_task_timeout(const omniq_task_t *t);
OMNIQ_EXTERN int64_t omniq_task_created_at(const omniq_task_t *t);
OMNIQ_EXTERN const omniq_task_error_t *omniq_task_last_error(const omniq_task_t *t);
/* Since 0.2. When the current or last run was claimed (0 = never). */
OMNIQ_EXTERN int64_t omniq_task_started_at(const omniq_task_t *t);
/* When the task became SUCCESS, FAILED or CANCELLED; 0 while it is not. */
OMNIQ_EXTERN int64_t omniq_task_finished_at(const omniq_task_t *t);
/* The unique key and the cron expression it was enqueued with, or NULL. */
OMNIQ_EXTERN const char *omniq_task_unique_key(const omniq_task_t *t);
OMNIQ_EXTERN const char *omniq_task_cron(const omniq_task_t *t);
/* Runs since enqueue (or the last re-arm or retry) that ended in a crash of
 * the run or a lost worker; crash_budget of them fail it as PoisonTask. */
OMNIQ_EXTERN int omniq_task_crashes(const omniq_task_t *t);

/* ---- Listing tasks (since 0.2) ------------------------------------------- */
#define OMNIQ_LIST_DEFAULT_LIMIT 100
#define OMNIQ_LIST_MAX_LIMIT 1000

/* Which tasks to list, and where a page starts. Times are ranges
 * [from, to) in ms; 0 leaves that end open. */
typedef struct omniq_list_opts {
  unsigned statuses;        /* OMNIQ_STATUS_BIT(s) | ...; 0 = every status */
  const char *queue;        /* NULL = every queue */
  const char *func;         /* NULL = every func */
  int64_t created_from_ms, created_to_ms;
  int64_t finished_from_ms, finished_to_ms; /* either set: terminal tasks only */
  size_t limit;             /* tasks per page: 0 = OMNIQ_LIST_DEFAULT_LIMIT; at most
                               OMNIQ_LIST_MAX_LIMIT */
  const char *cursor;       /* NULL = the first page; else the next_cursor of the page
                               before, listed with the same order */
  int newest_first;         /* 0 = oldest first (by id, which is creation order) */
} omniq_list_opts_t;

OMNIQ_EXTERN void omniq_list_opts_init(omniq_list_opts_t *o);

/* Lists the tasks that match opts (NULL = every task, oldest first), one
 * page at a time, ordered by id: ids grow with creation time, so this is
 * creation order, and a cursor stays valid however the store changes (a
 * task created after the listing began appears on a later page, or not at
 * all when listing newest first). Each backend serves a page from an index
 * in id order without reading the whole store (docs/operations.md).
 * On OMNIQ_OK *out is yours: free it with omniq_task_list_free().
 * Errors: OMNIQ_EINVAL for a bad range, limit, queue name, status bit, or
 * a cursor that is not one this function handed out for that order (the
 * message says which); OMNIQ_ENOTSUP on a storage ABI 2 backend; storage
 * codes. On error *out is NULL. */
OMNIQ_EXTERN int omniq_list_tasks(omniq_t *oq, const omniq_list_opts_t *opts,
                                  omniq_task_list_t **out);
OMNIQ_EXTERN size_t omniq_task_list_count(const omniq_task_list_t *l);
/* Task i (0 <= i < count), borrowed until omniq_task_list_free(); NULL past
 * the end. */
OMNIQ_EXTERN const omniq_task_t *omniq_task_list_at(const omniq_task_list_t *l, size_t i);
/* The cursor of the next page, or NULL when this page is the last. Opaque
 * text; borrowed until omniq_task_list_free() (copy it to keep it). */
OMNIQ_EXTERN const char *omniq_task_list_next_cursor(const omniq_task_list_t *l);
OMNIQ_EXTERN void omniq_task_list_free(omniq_task_list_t *l);

/* ---- Control ------------------------------------------------------------- */
/* PENDING or RUNNING -> CANCELLED (a running handler sees
 * omniq_job_cancelled() and its outcome is discarded). OMNIQ_ESTATE for a
 * terminal task, OMNIQ_ENOTFOUND for an unknown id. */
OMNIQ_EXTERN int omniq_cancel(omniq_t *oq, const char *id);
/* Deletes results finished before older_than_ms; *count (may be NULL) gets
 * how many. */
OMNIQ_EXTERN int omniq_purge_results(omniq_t *oq, int64_t older_than_ms, int64_t *count);
/* Same with cutoff = now - result_ttl. */
OMNIQ_EXTERN int omniq_purge_expired_results(omniq_t *oq, int64_t *count);
/* Number of tasks in each status, indexed by omniq_status_t. */
OMNIQ_EXTERN int omniq_count_by_status(omniq_t *oq, int64_t counts[OMNIQ_STATUS_COUNT]);

/* Since 0.2 (docs/operations.md). Each is one atomic step in the store.
 * Every one returns OMNIQ_ENOTSUP on a backend written for storage ABI 2. */

/* FAILED or CANCELLED -> PENDING, by hand: the task keeps its id, gets a
 * fresh budget (attempts and crashes 0) and eta_ms (0 = now); its last
 * result stays readable until the next run's result replaces it.
 * OMNIQ_ESTATE for a task in any other status, OMNIQ_ENOTFOUND for an
 * unknown id, OMNIQ_EEXISTS when its unique key is now held by another
 * task (nothing changes). */
OMNIQ_EXTERN int omniq_retry(omniq_t *oq, const char *id, int64_t eta_ms);
/* omniq_retry for every task that filter matches (its cursor, limit and
 * order are ignored; statuses 0 = FAILED and CANCELLED, and other statuses
 * may not be named). *count (may be NULL) gets how many were retried; tasks
 * that changed status meanwhile, or whose key is held, are skipped. */
OMNIQ_EXTERN int omniq_retry_many(omniq_t *oq, const omniq_list_opts_t *filter, int64_t eta_ms,
                                  int64_t *count);
/* Deletes a SUCCESS, FAILED or CANCELLED task and its result, and releases
 * its unique key. OMNIQ_ESTATE for a PENDING or RUNNING task (cancel it
 * first), OMNIQ_ENOTFOUND for an unknown id. */
OMNIQ_EXTERN int omniq_delete(omniq_t *oq, const char *id);
/* Deletes every terminal task that finished more than task_ttl ago, with
 * its result. *count (may be NULL) gets how many tasks. A running worker
 * pool does this by itself at most once a minute per store. */
OMNIQ_EXTERN int omniq_purge_expired(omniq_t *oq, int64_t *count);

/* ---- Queues (since 0.2) --------------------------------------------------- */
/* Pause or resume a queue for every process sharing the store: no claim
 * takes a task of a paused queue; enqueue still works and running tasks
 * finish. Idempotent. OMNIQ_EINVAL for a bad queue name. */
OMNIQ_EXTERN int omniq_queue_pause(omniq_t *oq, const char *queue);
OMNIQ_EXTERN int omniq_queue_resume(omniq_t *oq, const char *queue);
/* Limits the queue to at most `limit` starts (claims) in each period_ms
 * window, windows aligned to multiples of period_ms since the epoch, for
 * every process sharing the store. limit 0 removes the limit.
 * OMNIQ_EINVAL for a negative limit or a period outside 1 ms..1 day. */
OMNIQ_EXTERN int omniq_queue_set_rate(omniq_t *oq, const char *queue, int64_t limit,
                                      int64_t period_ms);

/* Which running total a finished run adds to (omniq_queue_info_runs). A
 * lost run counts as lost only, a run that will be retried as retried only. */
typedef enum {
  OMNIQ_RUNS_SUCCEEDED = 0,
  OMNIQ_RUNS_FAILED = 1,  /* failed for good (or an interval/cron run that failed) */
  OMNIQ_RUNS_RETRIED = 2, /* failed and was put back to run again */
  OMNIQ_RUNS_LOST = 3     /* its worker stopped renewing the lease (WorkerLost) */
} omniq_runs_t;
#define OMNIQ_RUNS_KINDS 4

/* One queue as the store sees it now. On OMNIQ_OK *out is yours: free it
 * with omniq_queue_info_free(). A queue the store has never heard of is
 * returned all zero. */
OMNIQ_EXTERN int omniq_queue_info(omniq_t *oq, const char *queue, omniq_queue_info_t **out);
OMNIQ_EXTERN void omniq_queue_info_free(omniq_queue_info_t *q);
/* Accessors; the name is borrowed until the owner is freed. */
OMNIQ_EXTERN const char *omniq_queue_info_name(const omniq_queue_info_t *q);
OMNIQ_EXTERN int omniq_queue_info_paused(const omniq_queue_info_t *q);
/* Tasks of the queue in status. */
OMNIQ_EXTERN int64_t omniq_queue_info_count(const omniq_queue_info_t *q, int status);
/* How long the oldest due PENDING task (eta <= now) has been due, in ms at
 * the time of the call; 0 when none is due. */
OMNIQ_EXTERN int64_t omniq_queue_info_oldest_due_ms(const omniq_queue_info_t *q);
/* The rate limit: starts per period (0 = none) and the period. */
OMNIQ_EXTERN int64_t omniq_queue_info_rate_limit(const omniq_queue_info_t *q);
OMNIQ_EXTERN int64_t omniq_queue_info_rate_period_ms(const omniq_queue_info_t *q);
/* Runs of this queue's tasks that ended as `runs` since the store was
 * created; kept in the store, so every process sees the same numbers. */
OMNIQ_EXTERN int64_t omniq_queue_info_runs(const omniq_queue_info_t *q, int runs);

/* Every queue that has tasks, totals or a setting, sorted by name. On
 * OMNIQ_OK *out is yours: free it with omniq_stats_free(). */
OMNIQ_EXTERN int omniq_stats(omniq_t *oq, omniq_stats_t **out);
OMNIQ_EXTERN size_t omniq_stats_count(const omniq_stats_t *s);
/* Queue i, borrowed until omniq_stats_free(); NULL past the end. */
OMNIQ_EXTERN const omniq_queue_info_t *omniq_stats_queue(const omniq_stats_t *s, size_t i);
OMNIQ_EXTERN void omniq_stats_free(omniq_stats_t *s);

/* ---- Handlers and jobs --------------------------------------------------- */
/* Return OMNIQ_OK for success, OMNIQ_DEFERRED to finish later with
 * omniq_job_complete(), anything else for failure. */
typedef int (*omniq_handler_fn)(omniq_job_t *job, void *userdata);

/* Registers (or replaces) the handler for name (copied). */
OMNIQ_EXTERN int omniq_register(omniq_t *oq, const char *name, omniq_handler_fn fn,
                                void *userdata);

/* Registers the fallback handler, replacing any before it; fn NULL removes
 * it. The fallback runs tasks whose func has no handler registered under
 * its name: a language binding uses it to run functions it finds itself
 * (OmniQ for Python imports "module.qualname").
 *
 * Each run resolves its func in this order: the handler registered under
 * that exact name; else, for a func of the form "path/to/lib.so:symbol",
 * that library symbol, under the library rules alone (the fallback is never
 * asked about such a func, so it cannot widen what a worker may load); else
 * the fallback; else the run fails as "HandlerNotFound", not retryable.
 *
 * The fallback is an ordinary handler: omniq_job_func() names the func and
 * it may return OMNIQ_DEFERRED. One that cannot resolve the func should
 * call omniq_job_fail(job, "HandlerNotFound", why, 0) and return
 * OMNIQ_EHANDLER, so the task fails as it would without a fallback.
 *
 * Called from worker threads, several at once. A replacement applies to
 * runs that start after it; a run already started keeps the handler it
 * resolved, so userdata must stay valid until every pool on oq has stopped
 * (omniq_close stops them all). Errors: OMNIQ_EINVAL for a NULL oq.
 * Added in 0.1. */
OMNIQ_EXTERN int omniq_register_fallback(omniq_t *oq, omniq_handler_fn fn, void *userdata);

/* Job accessors: borrowed until the job completes. */
OMNIQ_EXTERN const char *omniq_job_id(const omniq_job_t *job);
OMNIQ_EXTERN const char *omniq_job_func(const omniq_job_t *job);
OMNIQ_EXTERN const char *omniq_job_args(const omniq_job_t *job);
OMNIQ_EXTERN const char *omniq_job_kwargs(const omniq_job_t *job);
OMNIQ_EXTERN int omniq_job_attempt(const omniq_job_t *job);
/* Absolute deadline (ms, the store's clock), 0 = none. */
OMNIQ_EXTERN int64_t omniq_job_deadline(const omniq_job_t *job);
/* True after the timeout, a cancel, or a worker shutdown. Thread-safe. A
 * cancel through the handle the worker runs on is seen at once; one from
 * another handle or process at the worker's next lease extension (within
 * lease/3). */
OMNIQ_EXTERN int omniq_job_cancelled(const omniq_job_t *job);
/* Sets the job's result (JSON text, copied); OMNIQ_ESERIALIZE if invalid. */
OMNIQ_EXTERN int omniq_job_return(omniq_job_t *job, const char *json);
/* Marks the run failed. error_type NULL = "Error". Copied. */
OMNIQ_EXTERN int omniq_job_fail(omniq_job_t *job, const char *error_type, const char *message,
                                int retryable);
/* omniq_job_fail() that also records where the failure came from, such as
 * a Python traceback, as the TaskError's traceback (copied; NULL = none).
 * In process isolation only the error type and message travel back from
 * the child, so the traceback is dropped there. Added in 0.1. */
OMNIQ_EXTERN int omniq_job_fail_traceback(omniq_job_t *job, const char *error_type,
                                          const char *message, const char *traceback,
                                          int retryable);
/* Since 0.2. Marks the run as ended by signal signo: a process the handler
 * ran the task in was killed. It is recorded like a process-isolation child
 * dying of that signal: error_type "Crash", retryable, message "killed by
 * signal N (SIGX)", and it counts toward the task's crash_budget (a run
 * that fails through omniq_job_fail never does, whatever its error_type).
 * detail (copied; NULL = none) becomes the error's traceback, e.g. the
 * process's last output. Meant for handlers in thread isolation that run
 * processes of their own (the omniq command's shell tasks); in process
 * isolation the child's report of it arrives as a crash of the child.
 * OMNIQ_EINVAL for a signo outside 1..64. */
OMNIQ_EXTERN int omniq_job_crash(omniq_job_t *job, int signo, const char *detail);
/* Finishes a job whose handler returned OMNIQ_DEFERRED: success unless
 * omniq_job_fail() was called. Any thread; exactly once per deferred job; the
 * job must not be touched afterwards. */
OMNIQ_EXTERN int omniq_job_complete(omniq_job_t *job);

/* ---- Workers ------------------------------------------------------------- */
typedef enum { OMNIQ_ISOLATION_THREAD = 0, OMNIQ_ISOLATION_PROCESS = 1 } omniq_isolation_t;

#define OMNIQ_DEFAULT_CONCURRENCY 4
#define OMNIQ_DEFAULT_POLL_INTERVAL_MS 1000
#define OMNIQ_DEFAULT_SHUTDOWN_TIMEOUT_MS 30000
#define OMNIQ_MAX_QUEUES 16
/* Process isolation only (0 = none): see docs/workers.md. */
#define OMNIQ_DEFAULT_MAX_TASKS_PER_CHILD 0
#define OMNIQ_DEFAULT_MEMORY_LIMIT_BYTES 0
#define OMNIQ_DEFAULT_CPU_LIMIT_MS 0
#define OMNIQ_DEFAULT_FILES_LIMIT 0

typedef struct omniq_worker_opts {
  int concurrency;              /* tasks run at once; >= 1 */
  int64_t poll_interval_ms;     /* idle poll period */
  int64_t shutdown_timeout_ms;  /* stop waits this long for in-flight tasks */
  int isolation;                /* omniq_isolation_t */
  const char *queues[OMNIQ_MAX_QUEUES]; /* NULL-terminated; empty = "default" */
  /* Added with pre-forked process isolation; each needs isolation = process
   * when not 0. */
  long max_tasks_per_child;   /* a child is replaced after this many tasks; 0 = never */
  int64_t memory_limit_bytes; /* address space one task may add to its child; 0 = none */
  int64_t cpu_limit_ms;       /* CPU time one task may use; 0 = none */
  int files_limit;            /* descriptors one task may open beyond its child's own */
  /* More folders and files (':'-separated) this pool may load handler
   * libraries from, besides the settings' handler_path; NULL = none.
   * Copied at start. */
  const char *handler_path;
} omniq_worker_opts_t;

OMNIQ_EXTERN void omniq_worker_opts_init(omniq_worker_opts_t *o);
/* Starts concurrency worker threads; returns once they run. *out is yours:
 * release it with omniq_worker_stop(). */
OMNIQ_EXTERN int omniq_worker_start(omniq_t *oq, const omniq_worker_opts_t *opts,
                                    omniq_worker_t **out);
/* Stops claiming, waits up to shutdown_timeout for in-flight tasks, frees w.
 * Returns OMNIQ_ETIMEDOUT (w is freed all the same) when runners were still
 * busy at the deadline: a handler still running (it sees
 * omniq_job_cancelled(), its outcome is not reported, its task is left to
 * lease expiry), or a call to the store not yet answered (a report retried
 * while its lease holds, a claim waiting for a busy database). NULL is a
 * no-op. */
OMNIQ_EXTERN int omniq_worker_stop(omniq_worker_t *w);
/* Runs in the calling thread(s) until limit tasks finished (0 = no limit) or
 * nothing is due; *done (may be NULL) gets how many finished. Returns the
 * error of a claim that ended it; the store's code when it refused an
 * outcome; OMNIQ_ETIMEDOUT when a claimed task was not run because its lease
 * ran short before it started and the store could not take it back (it stays
 * RUNNING until its lease expires). docs/workers.md. */
OMNIQ_EXTERN int omniq_worker_process(omniq_t *oq, const omniq_worker_opts_t *opts, long limit,
                                      long *done);
/* Starts workers and blocks until SIGINT or SIGTERM, then stops gracefully. */
OMNIQ_EXTERN int omniq_worker_run(omniq_t *oq, const omniq_worker_opts_t *opts);

#ifdef __cplusplus
}
#endif
#endif /* OMNIQ_H */
