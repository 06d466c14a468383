/* SPDX-License-Identifier: MIT */
/* OmniQ storage interface — for writing a backend.
 *
 * A backend is a table of operations registered by name. The engine decides
 * every lifecycle policy — retry or not, the next eta, re-arming, what a
 * failure is called — and hands the backend finished decisions; the backend
 * only applies each one atomically and checks the claim token. A backend is
 * done when it passes the storage contract (omniq/contract.h,
 * omniq_contract_run); docs/storage-custom.md shows how.
 *
 * ABI: the records and the table below are append-only. Fields and
 * operations are only ever added at the end, and abi_version says which ones
 * a backend knows.
 *
 * ABI history:
 *   1  the first table (complete and fail as two operations; cancel stored a
 *      result the caller filled in).
 *   2  one `finish` operation replaces `complete` and `fail`, so the table
 *      layout changed and ABI 1 tables are refused; `cancel` builds the
 *      stored result itself, taking attempts and last_attempt_at from the
 *      task in the same atomic step; a claim always names its queues
 *      (the engine supplies the default queue).
 *   3  operating a queue (docs/operations.md). Appended to the records: the
 *      task's unique_key, unique_for_ms, cron, crashes and finished_at_ms;
 *      the decision's crashes and runs. Appended operations:
 *      enqueue_unique, list, retry, delete_task, purge_tasks, set_paused,
 *      set_rate, queue_stats, claim_chore. Existing operations of an ABI 3
 *      table do more: claim skips paused queues and keeps rate limits,
 *      finish and cancel set finished_at, keep crashes and the running
 *      totals, and end a unique key's hold; enqueue honours unique keys.
 *      ABI 2 tables are still accepted: the library answers OMNIQ_ENOTSUP
 *      for what they lack and never hands them a unique or cron task.
 *   4  wake-ups across processes: the optional operation wake_path names
 *      the wake file the library shares with every process on the store
 *      (docs/architecture.md, "Wake-ups"). ABI 2 and 3 tables are still
 *      accepted; their processes learn of others' commits by polling.
 *   5  the optional operation finish_claim: a run's outcome and the
 *      claim of the runner's next tasks in one atomic step. ABI 2 to 4
 *      tables are still accepted; the library then finishes and claims
 *      in two steps.
 *   6  the optional operations finish_many (many runs' outcomes, and the
 *      claim of the worker's next tasks, in one atomic step) and release
 *      (a claimed task that never started goes back to PENDING with its
 *      attempt undone). Older tables are still accepted: the library then
 *      reports each run alone and never claims ahead of its free slots.
 *   7  the decision's queue: the task's queue as its claim returned it, so
 *      a backend that keeps running totals by queue can apply a finish
 *      without first reading the task's row. A hint only (see the field);
 *      older tables ignore it.
 *   8  a new task's id_fresh: the library made its id for this enqueue,
 *      so no store holds a task of that id and a backend may skip looking
 *      for one. A hint only (see the field); older tables ignore it.
 */
#ifndef OMNIQ_STORAGE_H
#define OMNIQ_STORAGE_H

#include "../omniq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OMNIQ_STORAGE_ABI 8

/* The six fields of a TaskError. All strings are owned by the record. */
struct omniq_task_error {
  char *error_type;
  char *message;
  int64_t timestamp;  /* ms */
  char *traceback;    /* may be NULL */
  int retry_count;    /* attempts when the run failed */
  int is_retryable;
};

struct omniq_task {
  char id[OMNIQ_ID_SIZE];
  char *func;
  char *queue;
  char *args;       /* JSON array text (raw mode: bytes as given) */
  char *kwargs;     /* JSON object text */
  int status;       /* omniq_status_t */
  int priority;
  int attempts;     /* runs claimed since enqueue or the last interval re-arm */
  int max_retries;
  int64_t eta_ms;
  int64_t interval_ms;
  int64_t timeout_ms;
  int64_t created_at_ms;
  int64_t started_at_ms;  /* when the current or last run was claimed */
  int64_t lease_until_ms; /* meaningful while RUNNING */
  int64_t token;          /* claim token: +1 on every claim, never reset */
  omniq_task_error_t *last_error; /* may be NULL */
  /* ABI 3. */
  char *unique_key;       /* NULL = none; at most OMNIQ_UNIQUE_KEY_MAX bytes */
  int64_t unique_for_ms;  /* the key stays held until finished_at + this */
  char *cron;             /* NULL = none; the engine re-arms it, the backend only keeps it */
  int crashes;            /* runs ended by a crash or a lost worker (the engine counts) */
  int64_t finished_at_ms; /* when it became SUCCESS, FAILED or CANCELLED; 0 while not */
  /* ABI 8. Set by the library on the tasks it hands to enqueue and
   * enqueue_unique when it made their ids for this enqueue (every id of
   * omniq_enqueue and omniq_enqueue_many: a UUIDv7 of the enqueue's
   * millisecond, a counter and 62 random bits, strictly increasing within
   * a process). No store holds a task of such an id, so a backend may
   * skip looking for one. 0 everywhere else (a task the caller of the
   * table built, or one read back): its id must be checked as before. */
  int id_fresh;
};

struct omniq_result {
  char task_id[OMNIQ_ID_SIZE];
  int status;           /* SUCCESS, FAILED or CANCELLED (for an interval task,
                           how its latest run ended) */
  char *value;          /* JSON text or NULL */
  omniq_task_error_t *error; /* NULL on success */
  int attempts;
  int64_t finished_at_ms;
  int64_t last_attempt_at_ms;
};

/* A claim request: take up to max due tasks from the named queues. The
 * engine always names at least one queue (its default included). */
typedef struct omniq_claim_req {
  int64_t now_ms;
  int64_t lease_until_ms;
  const char *const *queues; /* nqueues names, nqueues >= 1 */
  size_t nqueues;
  size_t max;
} omniq_claim_req_t;

/* The end of a run, decided by the engine: what the task becomes and what
 * is stored with it. Applied only if the task is RUNNING under token;
 * otherwise the backend returns OMNIQ_ESTATE and changes nothing
 * (OMNIQ_ENOTFOUND if the id is unknown). */
typedef struct omniq_decision {
  const char *id;
  int64_t token;
  int next_status;       /* PENDING (retry or interval re-arm), SUCCESS, FAILED */
  int64_t eta_ms;        /* next eta when next_status is PENDING */
  int reset_attempts;    /* interval re-arm: attempts back to 0 */
  const omniq_task_error_t *error;  /* stored as last_error; may be NULL (keep the old one) */
  const omniq_result_t *result;     /* stored (replacing any); may be NULL; always set
                                       when next_status is terminal */
  /* ABI 3. With a terminal next_status the task's finished_at becomes
   * result->finished_at_ms (and a unique key is held until that plus
   * unique_for_ms); with PENDING it stays 0. */
  int crashes;           /* the task's crash count from now on */
  int runs;              /* the running total of the task's queue this run adds one to
                            (omniq_runs_t), in the same atomic step */
  /* ABI 7. The task's queue as the claim of this run returned it, or NULL.
   * A hint: a backend may apply the decision with it and skip a read of
   * the task's row, but the outcome must be exactly what it is without
   * it. Only the claim token decides whether the decision applies, and
   * the run counts in the queue the task is stored in: a queue that is
   * not the task's (a caller's mistake) changes neither. */
  const char *queue;
} omniq_decision_t;

/* A page of a listing (ABI 3). The engine has checked every field. */
typedef struct omniq_list_req {
  unsigned statuses;       /* OMNIQ_STATUS_BIT set, never 0 */
  const char *queue;       /* NULL = every queue */
  const char *func;        /* NULL = every func */
  int64_t created_from_ms, created_to_ms;   /* [from, to); 0 = open */
  int64_t finished_from_ms, finished_to_ms; /* [from, to); 0 = open; either set: only
                                               tasks with finished_at_ms > 0 */
  const char *after_id;    /* NULL = from the start; else only ids after it in this order
                              (a valid id, which need not exist any more) */
  int newest_first;        /* 0: ascending id; 1: descending */
  size_t limit;            /* >= 1 */
} omniq_list_req_t;

/* One queue as a backend reports it (ABI 3); also what omniq_queue_info
 * hands out. */
struct omniq_queue_info {
  char name[OMNIQ_NAME_MAX];
  int paused;
  int64_t rate_limit;     /* starts per period; 0 = none */
  int64_t rate_period_ms;
  int64_t counts[OMNIQ_STATUS_COUNT];
  int64_t oldest_due_eta_ms; /* least eta of its PENDING tasks with eta <= now; 0 = none */
  int64_t runs[OMNIQ_RUNS_KINDS]; /* running totals since the store was created */
  int64_t as_of_ms;       /* filled by the engine: the now the reading was taken at */
};

typedef struct omniq_storage_ops {
  uint32_t abi_version; /* OMNIQ_STORAGE_ABI when written */
  const char *name;     /* "sqlite", "file", ... */

  /* Opens the store for settings (borrowed for the call). *backend is the
   * backend's own state. On error writes a message to err. */
  int (*open)(const omniq_settings_t *settings, void **backend, char *err, size_t errlen);
  void (*close)(void *backend);

  /* Inserts n new PENDING tasks, all or none. */
  int (*enqueue)(void *backend, omniq_task_t *const *tasks, size_t n, char *err, size_t errlen);
  /* Atomically moves up to req->max due PENDING tasks (eta <= now) of the
   * named queues to RUNNING, attempts+1, token+1, started_at=now, lease set;
   * picked by priority desc, eta, insertion order. *out (yours, free each
   * task and the array with omniq_task_free/free) gets *n tasks as claimed.
   * OMNIQ_EINVAL if no queue is named. */
  int (*claim)(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
               char *err, size_t errlen);
  /* Applies the engine's decision for a run, in one atomic step: status,
   * eta, attempts reset, last_error and result together, or nothing. */
  int (*finish)(void *backend, const omniq_decision_t *d, char *err, size_t errlen);
  /* Sets lease_until if RUNNING under token; else OMNIQ_ESTATE. */
  int (*extend_lease)(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                      char *err, size_t errlen);
  /* PENDING or RUNNING -> CANCELLED, and stores the task's result, in one
   * atomic step. The result: status CANCELLED, no value, no error,
   * finished_at = finished_at_ms, and attempts and last_attempt_at equal to
   * the task's attempts and started_at in that same step, so a claim that
   * races the cancel is either counted in both or in neither. *prev_status
   * (may be NULL) gets the status the task had, on OMNIQ_OK and on
   * OMNIQ_ESTATE (the task was already terminal; nothing changed).
   * OMNIQ_ENOTFOUND if the id is unknown. */
  int (*cancel)(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                char *err, size_t errlen);
  int (*get_task)(void *backend, const char *id, omniq_task_t **out, char *err, size_t errlen);
  int (*get_result)(void *backend, const char *id, omniq_result_t **out, char *err,
                    size_t errlen);
  /* Deletes results with finished_at < older_than_ms. */
  int (*purge_results)(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                       size_t errlen);
  int (*count_by_status)(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                         size_t errlen);
  /* Up to max RUNNING tasks whose lease_until < now, as they are (not
   * changed), most overdue first: the engine records each as a lost run. */
  int (*expired_leases)(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                        size_t *n, char *err, size_t errlen);

  /* ---- ABI 3 ------------------------------------------------------------
   * What an ABI 3 table also does with the operations above:
   * - claim takes nothing from a queue paused with set_paused, and from a
   *   queue with a rate limit no more than the limit leaves in the current
   *   window (windows of rate_period_ms aligned to multiples of it since the
   *   epoch; req->now_ms says which), counting what it takes, all in the
   *   claim's own atomic step; other queues are served as usual. A claim
   *   whose now falls in a window older than the one the queue is already
   *   counting (its clock was read before another claim's) takes nothing
   *   from that queue, so the count never goes back to an older window.
   * - finish stores d->crashes, adds one to the running total d->runs of
   *   the task's queue, and with a terminal next_status sets finished_at,
   *   all in the same step; cancel sets finished_at to finished_at_ms.
   * - enqueue honours unique keys as enqueue_unique does (without naming
   *   the holder). */

  /* enqueue, for tasks of which some carry a unique_key. A key is held by
   * a task of the same queue that carries it and is PENDING or RUNNING, or
   * finished less than its unique_for_ms ago (finished_at + unique_for_ms >
   * the new task's created_at_ms); a task deleted or purged holds nothing.
   * (The engine never hands over a batch with one queue and key twice.) If
   * any task's key is held, nothing is stored and OMNIQ_EEXISTS is
   * returned; holders (n slots, may be NULL) then gets, for each task i,
   * the id of the task holding its key, "" if none. Atomic across
   * processes: of any number of concurrent enqueues of one key exactly one
   * stores its task. */
  int (*enqueue_unique)(void *backend, omniq_task_t *const *tasks, size_t n,
                        char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen);
  /* Up to req->limit tasks matching req, ordered by id (ascending, or
   * descending with newest_first), starting after req->after_id. *out
   * (yours, as for claim; NULL when *n is 0) gets copies. A page must not
   * cost a read of the whole store: serve it from an index in id order
   * (docs/storage-custom.md). */
  int (*list)(void *backend, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n,
              char *err, size_t errlen);
  /* FAILED or CANCELLED -> PENDING, in one atomic step: attempts 0,
   * crashes 0, finished_at 0, eta = eta_ms; token, last_error and the
   * stored result stay. A unique key is held again by this task; if
   * another task holds it now (as enqueue_unique judges at now_ms),
   * OMNIQ_EEXISTS, holder (may be NULL) gets its id and nothing changes.
   * *prev_status (may be NULL) gets the status the task had, also on
   * OMNIQ_ESTATE (any other status; nothing changes). OMNIQ_ENOTFOUND for
   * an unknown id. */
  int (*retry)(void *backend, const char *id, int64_t eta_ms, int64_t now_ms, int *prev_status,
               char holder[OMNIQ_ID_SIZE], char *err, size_t errlen);
  /* Deletes a SUCCESS, FAILED or CANCELLED task with its result, and what
   * it held of its unique key, in one atomic step. *prev_status as for
   * retry; OMNIQ_ESTATE for PENDING or RUNNING, OMNIQ_ENOTFOUND. */
  int (*delete_task)(void *backend, const char *id, int *prev_status, char *err,
                     size_t errlen);
  /* Deletes up to max terminal tasks with finished_at_ms < before_ms, each
   * with its result and key, as delete_task does. *count gets how many;
   * the engine calls again while it gets max. */
  int (*purge_tasks)(void *backend, int64_t before_ms, size_t max, int64_t *count, char *err,
                     size_t errlen);
  /* Pauses (1) or resumes (0) a queue, persistently. Idempotent. Once it
   * returns, no claim that starts afterwards takes from a paused queue. */
  int (*set_paused)(void *backend, const char *queue, int paused, char *err, size_t errlen);
  /* Sets the rate limit of a queue (limit 0 removes it; period_ms >= 1). */
  int (*set_rate)(void *backend, const char *queue, int64_t limit, int64_t period_ms,
                  char *err, size_t errlen);
  /* Queue records (as_of_ms left 0). queue != NULL: exactly one record,
   * for that queue, all zero but its name if the store does not know it.
   * queue NULL: one per queue that has tasks, totals or a setting, sorted
   * by name. *out yours (free()); NULL when *n is 0. */
  int (*queue_stats)(void *backend, const char *queue, int64_t now_ms, omniq_queue_info_t **out,
                     size_t *n, char *err, size_t errlen);
  /* Housekeeping one process at a time: if chore (a short name) has no
   * next time stored, or it is <= now_ms, stores next_ms and sets *won to
   * 1; else *won = 0. Atomic across processes. */
  int (*claim_chore)(void *backend, const char *chore, int64_t now_ms, int64_t next_ms, int *won,
                     char *err, size_t errlen);

  /* ---- ABI 4 ------------------------------------------------------------ */

  /* Optional (NULL = none). Writes to path (len bytes) the file the library
   * maps to wake processes sharing this store (created beside the store if
   * missing; the backend itself never touches it) and returns OMNIQ_OK, or
   * returns OMNIQ_ENOTSUP when the store cannot be shared between
   * processes, or wakes them itself (PostgreSQL's LISTEN/NOTIFY). */
  int (*wake_path)(void *backend, char *path, size_t len);

  /* ---- ABI 5 ------------------------------------------------------------ */

  /* Optional (NULL = none). finish(d) and, only if it returns OMNIQ_OK,
   * claim(req) in the same atomic step: a worker reports a run and takes
   * its next tasks with one commit instead of two. Returns finish's code
   * (and its message). *claimed = 1 when the claim was made: *out and *n
   * as claim gives them (*n may be 0: nothing was due). *claimed = 0 when
   * it was not (the finish failed, or the claim could not be added: the
   * backend then applies the finish alone): *out NULL, *n 0, and the
   * caller claims with claim as usual. */
  int (*finish_claim)(void *backend, const omniq_decision_t *d, const omniq_claim_req_t *req,
                      omniq_task_t ***out, size_t *n, int *claimed, char *err, size_t errlen);

  /* ---- ABI 6 ------------------------------------------------------------ */

  /* Optional (NULL = none). Applies the n decisions ds[0..n) as finish
   * would, each with its own claim-token check, and then, with req
   * non-NULL, claim(req), all in one atomic step: a worker reports a batch
   * of runs and takes its next tasks with one commit. rcs[i] gets finish's
   * code for ds[i]: a decision that misses (OMNIQ_ESTATE, OMNIQ_ENOTFOUND)
   * changes nothing and does not stop the others. Returns OMNIQ_OK when
   * each decision got its code (err then holds the message of the first
   * that failed, if any), else a code for the whole step with rcs[] all
   * set to it. *claimed, *out and *n as finish_claim gives them; the claim
   * is made only in a step that committed. */
  int (*finish_many)(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                     const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                     int *claimed, char *err, size_t errlen);
  /* Optional (NULL = none). Gives a claimed task that never started back:
   * RUNNING under token -> PENDING, attempts one less, the token moved on
   * (so the claim is void), eta and everything else as they were.
   * OMNIQ_ESTATE (nothing changed) if the task is not RUNNING under token. */
  int (*release)(void *backend, const char *id, int64_t token, char *err, size_t errlen);
} omniq_storage_ops_t;

/* Registers a backend under ops->name (the table is borrowed for the life of
 * the process). OMNIQ_EINVAL for a name already taken, or a table that is
 * not for ABI 2 or later or lacks one of the operations of its ABI. */
OMNIQ_EXTERN int omniq_storage_register(const omniq_storage_ops_t *ops);
/* The backend registered under name, or NULL. */
OMNIQ_EXTERN const omniq_storage_ops_t *omniq_storage_find(const char *name);

/* Record helpers for backends: allocation with the library's allocator. */
OMNIQ_EXTERN omniq_task_t *omniq_task_new(void);
OMNIQ_EXTERN omniq_task_t *omniq_task_dup(const omniq_task_t *t);
OMNIQ_EXTERN omniq_result_t *omniq_result_new(void);
OMNIQ_EXTERN omniq_result_t *omniq_result_dup(const omniq_result_t *r);
/* Builds an error record; strings copied; NULL on out of memory. */
OMNIQ_EXTERN omniq_task_error_t *omniq_task_error_new(const char *type, const char *message,
                                                      int64_t timestamp, const char *traceback,
                                                      int retry_count, int is_retryable);
OMNIQ_EXTERN omniq_task_error_t *omniq_task_error_dup(const omniq_task_error_t *e);
OMNIQ_EXTERN void omniq_task_error_free(omniq_task_error_t *e);

/* JSON forms, so every backend stores the same text. *_to_json returns
 * malloc'd text (yours: free()) or NULL on out of memory; *_from_json returns
 * OMNIQ_ESERIALIZE for text that is not a valid record. */
OMNIQ_EXTERN char *omniq_task_error_to_json(const omniq_task_error_t *e);
OMNIQ_EXTERN int omniq_task_error_from_json(const char *json, omniq_task_error_t **out);
OMNIQ_EXTERN char *omniq_task_to_json(const omniq_task_t *t);
OMNIQ_EXTERN int omniq_task_from_json(const char *json, omniq_task_t **out);
OMNIQ_EXTERN char *omniq_result_to_json(const omniq_result_t *r);
OMNIQ_EXTERN int omniq_result_from_json(const char *json, omniq_result_t **out);

/* 1 if s is a well-formed task id (canonical lowercase UUID text), else 0.
 * Backends call it before an id becomes a path or a key. */
OMNIQ_EXTERN int omniq_id_valid(const char *s);

#ifdef __cplusplus
}
#endif
#endif /* OMNIQ_STORAGE_H */
