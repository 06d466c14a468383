/* SPDX-License-Identifier: MIT */
/* The pending index of one open file backend: which files are in
 * queue/pending/, ordered for claiming, without listing the folders on each
 * claim. Thread-safe (one mutex inside). See index.c and scan.c for the
 * design. */
#ifndef OMNIQ_STORAGE_FILE_INDEX_H
#define OMNIQ_STORAGE_FILE_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "storage/file/io.h"
#include "storage/file/names.h"

typedef struct omniq__fidx omniq__fidx_t;

/* One pending file as the index knows it. Its folder is queue/pending/<qdir>,
 * opened for each operation with omniq__fidx_open_dir: the index holds no
 * descriptor per queue, so the number a store keeps open does not grow with
 * the number of queues. */
typedef struct omniq__pending {
  uint32_t iprio; /* see file_names.h */
  int64_t eta;    /* as in the name */
  char id[OMNIQ_ID_SIZE];
  char name[OMNIQ__PNAME_SIZE];
  char qdir[OMNIQ__QDIR_SIZE];
} omniq__pending_t;

/* Opens the index over queue/ (queue_fd) and queue/pending/ (pending_fd),
 * both borrowed: from queue/snapshot when it matches the folders
 * (snapshot.h), else by scanning the folders once, quarantining files
 * that are not pending task files. *out yours: omniq__fidx_free. */
int omniq__fidx_open(omniq__fidx_t **out, const omniq__fio_t *io, int queue_fd, int pending_fd,
                     char *err, size_t errlen);
void omniq__fidx_free(omniq__fidx_t *ix);
/* Saves queue/snapshot for the next open when the index holds at least
 * omniq__fsnap_min_tasks files (best effort; lists the folders). */
void omniq__fidx_save(omniq__fidx_t *ix);

/* Makes sure the folder of queue exists (created if create) and the index
 * knows it; qdir gets the folder name. OMNIQ_ENOTFOUND if absent and
 * !create, OMNIQ_EINVAL for a queue name that cannot be a folder. */
int omniq__fidx_queue(omniq__fidx_t *ix, const char *queue, int create,
                      char qdir[OMNIQ__QDIR_SIZE], char *err, size_t errlen);

/* Opens queue/pending/<qdir> for one operation, refusing a symlink: *fd
 * yours, close it. Errors name the folder (OMNIQ_EIO and kin for a
 * descriptor limit reached). */
int omniq__fidx_open_dir(omniq__fidx_t *ix, const char *qdir, int *fd, char *err, size_t errlen);

/* Fills p for a task about to become pending in queue qdir (its folder must
 * have been made by omniq__fidx_queue). */
void omniq__fidx_describe(omniq__fidx_t *ix, const char *qdir, int priority, int64_t eta_ms,
                          const char *id, omniq__pending_t *p);

/* Records files just renamed into pending/ by this backend: inserts them
 * here and appends them to the journal for every other backend. */
void omniq__fidx_announce(omniq__fidx_t *ix, const omniq__pending_t *p, size_t n);

/* Takes up to max due files (eta <= now) of the named queues out of the
 * index, best first (priority desc, eta, id). The caller tries to rename
 * each; one that fails for a reason other than "gone" goes back with
 * omniq__fidx_put_back. may_rescan: when nothing is due, the folders may
 * be listed again if they changed (pass 0 when the caller already got
 * tasks in this claim: the change is most likely its own). */
size_t omniq__fidx_take_due(omniq__fidx_t *ix, const char *const *queues, size_t nqueues,
                            int64_t now_ms, int may_rescan, omniq__pending_t *out, size_t max);
void omniq__fidx_put_back(omniq__fidx_t *ix, const omniq__pending_t *p);
/* The files omniq__fidx_take_due would take now, left in the index: for
 * reading ahead what the next claim is likely to take. No rescan, no
 * journal read. Returns how many of max were filled. */
size_t omniq__fidx_peek_due(omniq__fidx_t *ix, const char *const *queues, size_t nqueues,
                            int64_t now_ms, omniq__pending_t *out, size_t max);

/* Where the index believes task id is pending: 1 and *p filled, else 0.
 * With scan, a miss falls back to listing the folders (slow; for lookups
 * of ids that may be unknown to this index); a folder that cannot be listed
 * makes it a negative OMNIQ_E* code, never a wrong "not there". */
int omniq__fidx_find(omniq__fidx_t *ix, const char *id, int scan, omniq__pending_t *p);
/* The first of ids[0..n) the index holds as pending, or NULL: one look
 * at the journal for all of them (an enqueue of many checks its ids). */
const char *omniq__fidx_first_known(omniq__fidx_t *ix, const char *const *ids, size_t n);
/* Drops id from the index (its file is gone). */
void omniq__fidx_forget(omniq__fidx_t *ix, const char *id);

/* Counts the pending files by listing the folders. A folder that cannot
 * be listed is an error (err names it), never a smaller count. */
int omniq__fidx_count(omniq__fidx_t *ix, int64_t *count, char *err, size_t errlen);

/* Statistics for tests and benchmarks: full scans so far. */
unsigned long omniq__fidx_scans(omniq__fidx_t *ix);

#endif
