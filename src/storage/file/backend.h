/* SPDX-License-Identifier: MIT */
/* The file backend's state, shared by its files:
 *   backend.c      open, close, enqueue, the ops table
 *   claim.c        claim: pending -> running, paused and rate-limited queues
 *   batch.c        enqueue of many: one commit, recovery of what a crash left
 *   transitions.c  finish, extend_lease, cancel, roll-forward
 *   query.c        lookups, purge, counts, expired leases, recovery at open
 *   locks.c        task locks            record.c  the bytes of each file
 *   index.c, scan.c, order.c, journal.c  the in-memory index of pending tasks
 *   names.c        file names            io.c      atomic writes, quarantine
 *   spares.c       spare files a write reuses instead of making one
 *   marks.c        the listing index     list.c    listing pages
 *   keys.c         unique keys           queues.c  pause, rate limits, chores
 *   totals.c       running totals        manage.c  retry, delete, retention, stats
 * docs/storage-file.md describes the layout, the protocols and the crash
 * analysis. */
#ifndef OMNIQ_STORAGE_FILE_BACKEND_H
#define OMNIQ_STORAGE_FILE_BACKEND_H

#include <stdatomic.h>

#include "base/log.h"
#include "omniq/storage.h"
#include "storage/file/index.h"
#include "storage/file/io.h"
#include "storage/file/locks.h"
#include "storage/file/names.h"
#include "storage/file/record.h"

struct omniq__fqstate; /* queues.c */
struct omniq__ftotals; /* totals.c */
struct omniq__fclaimed; /* claimed.c */

typedef struct omniq__fs {
  omniq_settings_t settings; /* a copy: the log, the clock and the locks point into it */
  omniq__log_t log;
  omniq__fio_t io;
  int base_fd, queue_fd, pending_fd, running_fd, results_fd, quarantine_fd, tmp_fd, batches_fd;
  int done_fd[OMNIQ__FS_NDONE]; /* queue/success, queue/failed, queue/cancelled */
  omniq__fidx_t *idx;
  int open_done;        /* opened whole: closing saves the pending snapshot */
  omniq__flock_t locks; /* its fd is base_dir/lock */
  /* FORMAT 2 (operating a queue). */
  int index_root_fd;                /* index/ (marks.c) */
  int index_fd[OMNIQ_STATUS_COUNT]; /* index/0, 2, 3, 4 by status; [RUNNING] unused (-1) */
  int index_done_fd;                /* index/done: finished tasks by finish time */
  atomic_int marks_unlinked;        /* hard links refused: each marker a file of its own */
  int keys_fd;                      /* keys/: unique keys (keys.c) */
  int queues_fd;                    /* queues/: settings per queue (queues.c) */
  int stats_fd;                     /* stats/: running totals, a file per handle (totals.c) */
  struct omniq__ftotals *totals;    /* this handle's running totals */
  int chores_fd;                    /* chores/: next time of each chore (queues.c) */
  /* Locks of queues, unique keys and chores (base_dir/meta.lock): always
   * taken before any task lock, never while one is held. */
  omniq__flock_t meta;
  struct omniq__fqstate *qstate;
  /* What this handle's claims left in their slots (claimed.c); NULL: none. */
  struct omniq__fclaimed *claimed;
} omniq__fs_t;

/* Where a task is, as found under its lock. */
typedef enum {
  OMNIQ__AT_NONE = 0,
  OMNIQ__AT_PENDING,
  OMNIQ__AT_RUNNING, /* queue/running/<id>.json (RUNNING, or a transition in flight) */
  OMNIQ__AT_DONE     /* one of the terminal folders */
} omniq__fs_at_t;

/* ---- one task, lock held (transitions.c) ---------------------------------- */
/* Finds task id, whose file name is idname ("<id>.json"). Rolls forward a
 * transition a dead process left in running/ first. With t != NULL also
 * returns the task as read (yours). */
int omniq__fs_locate(omniq__fs_t *fs, const char *id, const char *idname, omniq__fs_at_t *at,
                     omniq__pending_t *p, omniq_task_t **t, char *err, size_t errlen);
/* Finishes what a dead process left in running/<idname>: a file whose
 * status is not RUNNING is a transition that did not reach its last step.
 * Unreadable files are quarantined. */
int omniq__fs_roll_forward(omniq__fs_t *fs, const char *id, const char *idname, char *err,
                           size_t errlen);
/* Steps 2-4 of a transition to t's state (see transitions.c): the slot is
 * written (the commit), the result published, the run counted (runs: an
 * omniq_runs_t, or -1), the file moved and its marker filed (hint: the
 * status it had). t's lock is held and its old file is in the slot, or was
 * a terminal file (a retry by hand: the copy is removed before the move).
 * from_fd: the pending folder the task was renamed out of to reach the
 * slot (a cancel of a PENDING task), synced with the commit; -1 for none.
 * Once the slot is written the call succeeds; what follows is finished by a
 * roll-forward if it fails. */
int omniq__fs_commit(omniq__fs_t *fs, const omniq_task_t *t, const char *idname,
                     const omniq_result_t *r, int runs, int hint, int from_fd, char *err,
                     size_t errlen);
/* A transition split in three, for operations of many tasks that make
 * the data of all in one sync round and each folder once (finish_many):
 * _stage encodes t's new state (as omniq__fs_commit) and stages the slot
 * and the result through io (io->held set: unsynced until
 * omniq__fio_held_sync); _apply, once their data is durable, makes the
 * commit and step 3 (the result), putting folder syncs off to io->defer;
 * _move, once those folders are synced, makes step 4. _apply returns
 * OMNIQ_OK once the slot is in place (what fails later is left to a
 * roll-forward) and consumes s unless it sets s->committed, which _move
 * consumes (free s->rec instead when _move is not called); _unstage drops
 * a staged transition that will not be applied. */
typedef struct omniq__fs_staged {
  omniq__frec_t rec;
  char slot_tmp[OMNIQ__TMP_NAME_SIZE], result_tmp[OMNIQ__TMP_NAME_SIZE];
  int committed; /* _apply committed it and stored its result: _move is next */
} omniq__fs_staged_t;
int omniq__fs_stage(const omniq__fio_t *io, const omniq_task_t *t, const omniq_result_t *r,
                    int runs, omniq__fs_staged_t *s, char *err, size_t errlen);
int omniq__fs_apply(omniq__fs_t *fs, const omniq__fio_t *io, const omniq_task_t *t,
                    const char *idname, omniq__fs_staged_t *s, char *err, size_t errlen);
/* Between _apply and _move: _count counts the run of a committed
 * transition in the handle's running totals, in memory; the caller then
 * writes them (omniq__ftotals_flush) once for all its transitions, before
 * any _move. _leave gives up a committed transition to a roll-forward
 * (logged with why): a count that could not be written must not be
 * followed by the move. */
void omniq__fs_count(omniq__fs_t *fs, const omniq_task_t *t, omniq__fs_staged_t *s);
void omniq__fs_leave(omniq__fs_t *fs, const omniq_task_t *t, omniq__fs_staged_t *s,
                     const char *why);
/* Step 4 of a transition _apply committed (hint: the status the task had,
 * where its marker is); a failure is logged and left to a roll-forward. */
void omniq__fs_move(omniq__fs_t *fs, const omniq__fio_t *io, const omniq_task_t *t,
                    const char *idname, omniq__fs_staged_t *s, int hint);
void omniq__fs_unstage(omniq__fs_t *fs, omniq__fs_staged_t *s);
/* Checks a decision's id and status (OMNIQ_EINVAL); idname gets its file
 * name. */
int omniq__fs_check_decision(const omniq_decision_t *d, char idname[OMNIQ__IDNAME_SIZE],
                             char *err, size_t errlen);
/* Reads d's task, RUNNING under d's token (lock held; OMNIQ_ESTATE or
 * OMNIQ_ENOTFOUND otherwise), and sets in *t (yours) the state d gives it. */
int omniq__fs_decide(omniq__fs_t *fs, const omniq_decision_t *d, const char *idname,
                     omniq_task_t **t, char *err, size_t errlen);
/* 1 if idname is in running/ or a terminal folder. */
int omniq__fs_exists_outside_pending(omniq__fs_t *fs, const char *idname);

/* Most staged files of one enqueue of many whose data sync waits, open,
 * for one group round: a batch of any size makes a round per this many
 * files, so its descriptors stay well under any open-file limit. */
#define OMNIQ__FS_HELD_MAX 256

/* ---- the operations (claim.c, transitions.c, query.c) --------------------- */
int omniq__fs_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                    char *err, size_t errlen);
int omniq__fs_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen);
int omniq__fs_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                           char *err, size_t errlen);
int omniq__fs_cancel(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                     char *err, size_t errlen);
/* Storage ABI 5: finish, then the claim if it applied (finish_many.c). */
int omniq__fs_finish_claim(void *backend, const omniq_decision_t *d, const omniq_claim_req_t *req,
                           omniq_task_t ***out, size_t *n, int *claimed, char *err,
                           size_t errlen);
/* Storage ABI 6 (release: transitions.c; finish_many: finish_many.c). */
int omniq__fs_release(void *backend, const char *id, int64_t token, char *err, size_t errlen);
int omniq__fs_finish_many(void *backend, const omniq_decision_t *ds, size_t n, int *rcs,
                          const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                          int *claimed, char *err, size_t errlen);

typedef int (*omniq__fs_entry_fn)(omniq__fs_t *fs, int dirfd, const char *name, void *ud);
/* Calls fn for every entry of dirfd but "." and ".."; stops at the first
 * non-zero return and returns it (or an OMNIQ_E* code if the folder cannot
 * be listed). */
int omniq__fs_each(omniq__fs_t *fs, int dirfd, omniq__fs_entry_fn fn, void *ud);
/* Rolls forward every interrupted transition in running/ and quarantines
 * what cannot be read there. Run at open. */
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

/* ---- storage ABI 3 (list.c, manage.c; queues.c has the queue settings) ---- */
int omniq__fs_list(void *backend, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n,
                   char *err, size_t errlen);
int omniq__fs_retry(void *backend, const char *id, int64_t eta_ms, int64_t now_ms,
                    int *prev_status, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen);
int omniq__fs_delete(void *backend, const char *id, int *prev_status, char *err, size_t errlen);
int omniq__fs_purge_tasks(void *backend, int64_t before_ms, size_t max, int64_t *count,
                          char *err, size_t errlen);
int omniq__fs_queue_stats(void *backend, const char *queue, int64_t now_ms,
                          omniq_queue_info_t **out, size_t *n, char *err, size_t errlen);

#endif
