/* SPDX-License-Identifier: MIT */
/* The pending index's state, shared by the two files that make it up:
 * index.c (the queue table, the heaps, the journal, the operations of
 * index.h) and scan.c (listing the folders, queue/snapshot, when to list
 * again). Nothing outside them includes it: the backend sees only
 * storage/file/index.h.
 *
 * Lock: ix->lock guards every field; each function below expects it held,
 * or the index not yet shared (while it opens). */
#ifndef OMNIQ_STORAGE_FILE_INDEX_STATE_H
#define OMNIQ_STORAGE_FILE_INDEX_STATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/file/index.h"
#include "storage/file/journal.h"
#include "storage/file/order.h"

typedef struct {
  char qdir[OMNIQ__QDIR_SIZE];
  omniq__flevels_t levels;
} omniq__fidx_q_t;

struct omniq__fidx {
  pthread_mutex_t lock;
  const omniq__fio_t *io;
  int queue_fd, pending_fd;
  omniq__fjournal_t journal;
  omniq__fidx_q_t **q; /* pointers, so a queue's address is stable */
  size_t nq, capq;
  omniq__forder_t order;
  int bulk;         /* a scan is running: push without ordering */
  size_t scanned;   /* files seen by the last scan */
  int64_t scan_at;  /* monotonic us */
  int64_t scan_cost;
  uint64_t sig;     /* folder mtimes at the last scan */
  unsigned long scans;
  int from_snapshot; /* opened from queue/snapshot (whole and current then) */
};

/* ---- the queue table (index.c) -------------------------------------------- */
/* Opens queue/pending/<qdir>: OMNIQ_ENOTFOUND (err untouched) if absent. */
int omniq__fidx_open_queue_dir(const omniq__fidx_t *ix, const char *qdir, int *fd, char *err,
                               size_t errlen);
/* Puts the table index of folder qdir in *qi, checking (and with create,
 * making) the folder. OMNIQ_ENOTFOUND if it does not exist and !create. */
int omniq__fidx_queue_get(omniq__fidx_t *ix, const char *qdir, int create, int *qi, char *err,
                          size_t errlen);
/* Orders every heap again, dropping dead entries. */
void omniq__fidx_order_all(omniq__fidx_t *ix);
/* Adds (or replaces) the entry of task id in queue qi. */
void omniq__fidx_insert(omniq__fidx_t *ix, int qi, uint32_t iprio, int64_t eta, const char *id);

/* ---- listing the folders (scan.c) ----------------------------------------- */
typedef int (*omniq__fidx_list_fn)(omniq__fidx_t *, int, uint32_t, int64_t, const char *,
                                   void *);
/* Calls fn for each pending file of queue qi (until it returns non-zero);
 * quarantines other names when quarantine is set. *n gets the number of
 * files. An error if the folder cannot be listed. */
int omniq__fidx_list_queue(omniq__fidx_t *ix, int qi, int quarantine, omniq__fidx_list_fn fn,
                           void *ud, size_t *n, char *err, size_t errlen);
/* Makes sure every queue folder in pending/ is in the table. */
int omniq__fidx_list_queues(omniq__fidx_t *ix, int quarantine, char *err, size_t errlen);
/* Every queue folder's files, counted into *n (fn called on each). */
int omniq__fidx_list_all(omniq__fidx_t *ix, int quarantine, omniq__fidx_list_fn fn, void *ud,
                         size_t *n, char *err, size_t errlen);
/* Forgets everything and lists the folders again. */
int omniq__fidx_rescan(omniq__fidx_t *ix, char *err, size_t errlen);
/* omniq__fidx_rescan, a failure only logged. */
void omniq__fidx_rescan_or_log(omniq__fidx_t *ix);
/* 1 if an idle claim should list the folders again now. */
int omniq__fidx_idle_rescan_due(omniq__fidx_t *ix);
/* Fills the empty index from queue/snapshot; 1 if it did, 0 if the
 * folders must be listed (the index is left empty). */
int omniq__fidx_load_snapshot(omniq__fidx_t *ix);

#endif
