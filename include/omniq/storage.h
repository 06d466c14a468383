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
 */
#ifndef OMNIQ_STORAGE_H
#define OMNIQ_STORAGE_H

#include "../omniq.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OMNIQ_STORAGE_ABI 2

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
  const omniq_result_t *result;     /* stored (replacing any); may be NULL */
} omniq_decision_t;

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
} omniq_storage_ops_t;

/* Registers a backend under ops->name (the table is borrowed for the life of
 * the process). OMNIQ_EINVAL for a name already taken, or a table that is
 * not for ABI 2 or later or lacks one of its operations. */
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
