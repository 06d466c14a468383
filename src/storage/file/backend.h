/* The file backend's state, shared by store_file.c (open, enqueue, claim,
 * queries) and file_txn.c (task locks and the transitions of one task).
 * docs/storage-file.md describes the layout, the protocols and the crash
 * analysis. */
#ifndef OMNIQ_FILE_STORE_H
#define OMNIQ_FILE_STORE_H

#include <pthread.h>

#include "storage/file/index.h"
#include "storage/file/io.h"
#include "storage/file/names.h"
#include "base/log.h"
#include "omniq/storage.h"

/* Task locks are striped: a task's lock is byte (hash(id) % STRIPES) of
 * base_dir/lock, taken with an OFD lock (processes) under the stripe's
 * mutex (threads of one process share the lock file's description, so the
 * OFD lock alone would not exclude them). A batch (enqueue of many) needs
 * many task locks at once: it takes `gate` exclusively instead of the
 * stripe mutexes, which every single-task lock holds shared, then the OFD
 * bytes in stripe order. */
#define OMNIQ__FS_STRIPES 1024

typedef struct omniq__fs {
  omniq_settings_t settings; /* a copy: the log and the clock point into it */
  omniq__log_t log;
  omniq__fio_t io;
  int base_fd, queue_fd, pending_fd, running_fd, results_fd, quarantine_fd, tmp_fd, lock_fd;
  int done_fd[OMNIQ__FS_NDONE]; /* queue/success, queue/failed, queue/cancelled */
  omniq__fidx_t *idx;
  pthread_rwlock_t gate; /* shared: one task lock; exclusive: a batch */
  pthread_mutex_t stripes[OMNIQ__FS_STRIPES];
} omniq__fs_t;

/* Where a task is, as found under its lock. */
typedef enum {
  OMNIQ__AT_NONE = 0,
  OMNIQ__AT_PENDING,
  OMNIQ__AT_RUNNING, /* queue/running/<id>.json (RUNNING, or a transition in flight) */
  OMNIQ__AT_DONE     /* one of the terminal folders */
} omniq__fs_at_t;

/* ---- task locks (file_txn.c) ---------------------------------------------- */
int omniq__fs_lock(omniq__fs_t *fs, const char *id, char *err, size_t errlen);
/* 1 if taken, 0 if another thread or process holds it. */
int omniq__fs_trylock(omniq__fs_t *fs, const char *id);
void omniq__fs_unlock(omniq__fs_t *fs, const char *id);
/* Locks every id's task lock: the gate exclusively (no other thread of
 * this process holds a task lock meanwhile), then each stripe's OFD byte in
 * stripe order, so two batches cannot deadlock. *set yours: release with
 * omniq__fs_unlock_set. */
int omniq__fs_lock_set(omniq__fs_t *fs, const char *const *ids, size_t n, uint16_t **set,
                       size_t *nset, char *err, size_t errlen);
void omniq__fs_unlock_set(omniq__fs_t *fs, uint16_t *set, size_t nset);

/* ---- task files (file_txn.c) ---------------------------------------------- */
/* The text of a task file: the task's JSON and, for a transition that also
 * stores a result, that result under "commit_result". malloc'd (omniq__free). */
char *omniq__fs_encode(const omniq_task_t *t, const omniq_result_t *r, size_t *len);
/* Why omniq__fs_encode returned NULL: OMNIQ_ESERIALIZE for text that is
 * not UTF-8 (raw mode bytes JSON cannot carry), else OMNIQ_ENOMEM. */
int omniq__fs_encode_failure(const omniq_task_t *t, const omniq_result_t *r, char *err,
                             size_t errlen);
/* Reads and parses dirfd/name, checking the id inside matches id.
 * OMNIQ_ENOTFOUND if absent; OMNIQ_ECORRUPT if unusable (not moved). With
 * result != NULL also returns the embedded result (or NULL). */
int omniq__fs_read_task(omniq__fs_t *fs, int dirfd, const char *name, const char *id,
                        omniq_task_t **t, omniq_result_t **result, char *err, size_t errlen);
/* Finds task id (lock held). Finishes a transition a dead process left in
 * running/ first. With t != NULL also reads the task. */
int omniq__fs_locate(omniq__fs_t *fs, const char *id, omniq__fs_at_t *at, omniq__pending_t *p,
                     omniq_task_t **t, char *err, size_t errlen);
/* Finishes what a dead process left in running/<id>.json (lock held): a
 * file whose status is not RUNNING is a transition that did not reach its
 * last step. Unreadable files are quarantined. */
int omniq__fs_settle(omniq__fs_t *fs, const char *id, char *err, size_t errlen);
/* 1 if id has a file in running/ or a terminal folder. */
int omniq__fs_exists_outside_pending(omniq__fs_t *fs, const char *id);

/* ---- transitions (file_txn.c) --------------------------------------------- */
int omniq__fs_complete(void *backend, const omniq_outcome_t *o, char *err, size_t errlen);
int omniq__fs_fail(void *backend, const omniq_outcome_t *o, char *err, size_t errlen);
int omniq__fs_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                           char *err, size_t errlen);
int omniq__fs_cancel(void *backend, const char *id, const omniq_result_t *result, char *err,
                     size_t errlen);

/* ---- queries (file_query.c) ---------------------------------------------- */
typedef int (*omniq__fs_entry_fn)(omniq__fs_t *fs, int dirfd, const char *name, void *ud);
/* Calls fn for every entry of dirfd but "." and ".."; stops at the first
 * non-zero return and returns it (or an OMNIQ_E* code if the folder cannot
 * be listed). */
int omniq__fs_each(omniq__fs_t *fs, int dirfd, omniq__fs_entry_fn fn, void *ud);
/* Finishes every interrupted transition in running/ and quarantines what
 * cannot be read there. Run at open. */
void omniq__fs_recover(omniq__fs_t *fs);
int omniq__fs_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                       size_t errlen);
int omniq__fs_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                         size_t errlen);
int omniq__fs_purge_results(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                            size_t errlen);
int omniq__fs_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                              size_t errlen);
int omniq__fs_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                             size_t *n, char *err, size_t errlen);

#endif
