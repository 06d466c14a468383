/* SPDX-License-Identifier: MIT */
/* The file backend's claim: taking due tasks out of pending/ for a worker.
 * It lives apart from backend.c (open, close, enqueue, the ops table)
 * because it is the hot path and has its own protocol.
 *
 * Claim: take the best due names from the in-memory index (index.c),
 * then for each: task lock, rename pending/<q>/<name> -> running/<id>.json
 * (the rename decides: ENOENT means another claimer won, try the next),
 * rewrite it as RUNNING with attempts+1, token+1 and the lease, unlock. A
 * crash between the rename and the rewrite leaves a PENDING file in
 * running/, which a roll-forward (omniq__fs_roll_forward) puts back in pending/: the
 * claim never happened, so no attempt is counted for a run that never ran.
 *
 * Queues: a paused queue is skipped, and one with a rate limit is claimed
 * from under its queue lock (queues.c), one candidate at a time. Candidates
 * of one queue share one opening of its folder; only one folder is open
 * at a time, so a claim over many queues needs one descriptor.
 *
 * Reading ahead: a task's record is read by the claim that takes it, and
 * in a store with a long backlog that record was written long ago: often
 * no longer in the page cache, so the read waits for the disk (in
 * bench_file_claim, the one 4 KiB read a claim at 10^6 pending made and
 * one at 10^3 did not; the other cost of an old record, the discard its
 * replacement may wait for, is in docs/storage-file.md, Claim).
 * After claiming n tasks, the claim asks the kernel to start reading the
 * records of the next n due tasks (posix_fadvise WILLNEED: the read is
 * started, not waited for), so the worker's next claim, after its
 * handlers ran, finds them in memory. It costs an open and a close of
 * each file; a record already in memory costs no read. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/backend.h"
#include "storage/file/queues.h"
#include "storage/file/record.h"

#define CLAIM_CHUNK 16

enum { CLAIMED = 0, GONE = 1, PAUSED = 2 };

/* Claims one candidate from its folder qfd: CLAIMED with *out, GONE if
 * someone else won or the file was quarantined, PAUSED if its queue is
 * paused (the file back where it was), or an error (the candidate
 * untouched). */
static int claim_in(omniq__fs_t *fs, int qfd, const omniq__pending_t *p,
                    const omniq_claim_req_t *req, omniq_task_t **out, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t = NULL;
  omniq__frec_t rec;
  omniq__fqset_t set;
  omniq__fname_id(p->id, idname);
  int rc = omniq__flock_take(&fs->locks, p->id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (renameat(qfd, p->name, fs->running_fd, idname) != 0) {
    int en = errno;
    omniq__flock_release(&fs->locks, p->id);
    if (en == ENOENT) return GONE; /* another claimer (or a cancel) won */
    return omniq__fio_errno(en, err, errlen, "file store: claiming %s", p->name);
  }
  /* The rename decided the claim; a pause written before it is seen now
   * (queues.c), and undoing is putting the file back. */
  if (omniq__fq_read(fs, p->qdir, &set) == OMNIQ_OK && set.paused) {
    renameat(fs->running_fd, idname, qfd, p->name);
    omniq__flock_release(&fs->locks, p->id);
    return PAUSED;
  }
  rc = omniq__frec_read(fs->running_fd, idname, p->id, &t, NULL, e, sizeof e);
  if (rc == OMNIQ_OK && t->status != OMNIQ_PENDING) {
    snprintf(e, sizeof e, "status %s in a pending folder", omniq_status_name(t->status));
    rc = OMNIQ_ECORRUPT;
  }
  if (rc == OMNIQ_ECORRUPT) {
    omniq__fio_quarantine(&fs->io, fs->running_fd, "queue/running", idname, e);
    omniq__flock_release(&fs->locks, p->id);
    omniq_task_free(t);
    return GONE;
  }
  if (rc == OMNIQ_OK) {
    t->status = OMNIQ_RUNNING;
    t->attempts++;
    t->token++;
    t->started_at_ms = req->now_ms;
    t->lease_until_ms = req->lease_until_ms;
    rc = omniq__frec_encode(&rec, t, NULL, err, errlen);
    if (rc == OMNIQ_OK) {
      /* The rewrite's data is synced before its rename (a slot must never
       * be an empty file), but no folder is: a claim promises nothing
       * across a power loss. One lost there leaves the PENDING file in
       * the slot or in pending/, which recovery puts back with its old
       * attempts, as for a claim cut short; the finish that follows syncs
       * running/, and renames reach the disk in order (see Durability). */
      omniq__fio_dirs_t later = OMNIQ__FIO_DIRS_INIT;
      omniq__fio_t io = fs->io;
      io.defer = &later;
      rc = omniq__frec_write(&io, fs->running_fd, idname, &rec, OMNIQ__FREC_TASK, err, errlen);
      omniq__fio_dirs_drop(&later);
      omniq__frec_free(&rec);
    }
  } else {
    snprintf(err, errlen, "%s", e);
  }
  if (rc != OMNIQ_OK) {
    /* The rewrite did not happen (it is atomic): the slot still holds the
     * PENDING file. Put it back untouched. */
    renameat(fs->running_fd, idname, qfd, p->name);
    omniq_task_free(t);
    omniq__flock_release(&fs->locks, p->id);
    *out = NULL;
    return rc;
  }
  omniq__flock_release(&fs->locks, p->id);
  *out = t;
  return CLAIMED;
}

/* A queue a claim may take from. */
typedef struct open_q {
  const char *name;
  char qdir[OMNIQ__QDIR_SIZE];
  int limited; /* a rate limit: claims go through claim_limited */
  int closed;  /* paused, or its window used up, during this claim */
} open_q_t;

/* The one queue folder a claim holds open: the last one it needed. */
typedef struct folder {
  const open_q_t *q;
  int fd;
} folder_t;

#define FOLDER_NONE {NULL, -1}

static void folder_close(folder_t *f) {
  if (f->fd >= 0) close(f->fd);
  f->q = NULL;
  f->fd = -1;
}

/* q's folder in pending/, in *fd: the one f holds when it is q's, else
 * opened in its place. */
static int folder_of(omniq__fs_t *fs, folder_t *f, const open_q_t *q, int *fd, char *err,
                     size_t errlen) {
  if (f->q != q) {
    folder_close(f);
    int rc = omniq__fidx_open_dir(fs->idx, q->qdir, &f->fd, err, errlen);
    if (rc != OMNIQ_OK) return rc;
    f->q = q;
  }
  *fd = f->fd;
  return OMNIQ_OK;
}

/* claim_in, in the candidate's folder. */
static int claim_one(omniq__fs_t *fs, folder_t *f, const open_q_t *q, const omniq__pending_t *p,
                     const omniq_claim_req_t *req, omniq_task_t **out, char *err, size_t errlen) {
  int qfd;
  int rc = folder_of(fs, f, q, &qfd, err, errlen);
  return rc == OMNIQ_OK ? claim_in(fs, qfd, p, req, out, err, errlen) : rc;
}

/* One candidate of a rate-limited queue, under the queue's lock: the
 * start is counted before the claim and given back if the task was gone,
 * so the count never falls short of the starts (queues.c). */
static int claim_limited(omniq__fs_t *fs, folder_t *f, open_q_t *q, const omniq__pending_t *p,
                         const omniq_claim_req_t *req, omniq_task_t **out, char *err,
                         size_t errlen) {
  omniq__fqset_t set;
  int64_t window;
  int qfd = -1;
  int rc = omniq__fq_lock(fs, q->qdir, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fq_read_locked(fs, q->qdir, &set);
  if (rc == OMNIQ_OK && omniq__fq_allowance(&set, req->now_ms, &window) == 0)
    rc = PAUSED; /* nothing left in this window (or paused) */
  else if (rc == OMNIQ_OK)
    rc = folder_of(fs, f, q, &qfd, err, errlen);
  /* Claimed elsewhere already (this process's index learns it now). Every
   * claim of this queue holds its lock, so a candidate that is here now
   * stays until our rename, but for a cancel. */
  if (rc == OMNIQ_OK && faccessat(qfd, p->name, F_OK, AT_SYMLINK_NOFOLLOW) != 0) rc = GONE;
  if (rc == OMNIQ_OK) {
    omniq__fqset_t counted = set;
    counted.window_count = (set.window_start == window ? set.window_count : 0) + 1;
    counted.window_start = window;
    rc = omniq__fq_write(fs, q->qdir, &counted, err, errlen);
    if (rc == OMNIQ_OK && (rc = claim_in(fs, qfd, p, req, out, err, errlen)) != CLAIMED) {
      char e[OMNIQ__ERRMSG_MAX];
      counted.window_count--;
      omniq__fq_write(fs, q->qdir, &counted, e, sizeof e);
    }
  }
  omniq__fq_unlock(fs, q->qdir);
  return rc;
}

/* The queues of req still open, as names for the index. */
static size_t open_names(const open_q_t *qs, size_t nq, const char **names) {
  size_t k = 0;
  for (size_t i = 0; i < nq; i++)
    if (!qs[i].closed) names[k++] = qs[i].name;
  return k;
}

static open_q_t *queue_of(open_q_t *qs, size_t nq, const char *qdir) {
  for (size_t i = 0; i < nq; i++)
    if (!qs[i].closed && strcmp(qs[i].qdir, qdir) == 0) return &qs[i];
  return NULL;
}

/* Reads the settings of every queue named: paused ones are closed from
 * the start. */
static int open_queues(omniq__fs_t *fs, const omniq_claim_req_t *req, open_q_t *qs, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < req->nqueues; i++) {
    omniq__fqset_t set;
    qs[i].name = req->queues[i];
    if (req->queues[i] == NULL || omniq__fname_qdir(req->queues[i], qs[i].qdir) != OMNIQ_OK) {
      snprintf(err, errlen, "file store: claim: queue %zu is not a queue name", i);
      return OMNIQ_EINVAL;
    }
    if (omniq__fq_read(fs, qs[i].qdir, &set) != OMNIQ_OK) continue; /* judged per claim */
    qs[i].closed = set.paused;
    qs[i].limited = set.rate_limit > 0;
  }
  return OMNIQ_OK;
}

/* Starts reading the records of the next k due tasks of the queues still
 * open (see Reading ahead, above). Best effort: a file gone or unreadable
 * is left to the claim that takes it. */
static void read_ahead(omniq__fs_t *fs, folder_t *f, open_q_t *qs, size_t nq,
                       const char **names, const omniq_claim_req_t *req, size_t k) {
  omniq__pending_t next[CLAIM_CHUNK];
  char e[OMNIQ__ERRMSG_MAX];
  size_t nn = open_names(qs, nq, names);
  size_t m = omniq__fidx_peek_due(fs->idx, names, nn, req->now_ms, next, k);
  for (size_t i = 0; i < m; i++) {
    open_q_t *q = queue_of(qs, nq, next[i].qdir);
    int qfd;
    if (q == NULL || folder_of(fs, f, q, &qfd, e, sizeof e) != OMNIQ_OK) continue;
    int fd = openat(qfd, next[i].name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
    close(fd);
  }
}

int omniq__fs_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                    char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq__pending_t cand[CLAIM_CHUNK];
  folder_t folder = FOLDER_NONE;
  int first_err = OMNIQ_OK;
  *out = NULL;
  *n = 0;
  if (req == NULL || req->nqueues == 0 || req->queues == NULL) {
    snprintf(err, errlen, "file store: claim: no queue named");
    return OMNIQ_EINVAL;
  }
  if (req->max == 0) return OMNIQ_OK;
  open_q_t *qs = omniq__calloc(req->nqueues, sizeof *qs);
  const char **names = omniq__calloc(req->nqueues, sizeof *names);
  omniq_task_t **got = omniq__calloc(req->max, sizeof *got);
  if (qs == NULL || names == NULL || got == NULL) first_err = OMNIQ_ENOMEM;
  if (first_err == OMNIQ_OK) first_err = open_queues(fs, req, qs, err, errlen);
  while (first_err == OMNIQ_OK && *n < req->max) {
    size_t nq = open_names(qs, req->nqueues, names);
    size_t want = req->max - *n < CLAIM_CHUNK ? req->max - *n : CLAIM_CHUNK;
    size_t k = nq > 0 ? omniq__fidx_take_due(fs->idx, names, nq, req->now_ms, *n == 0, cand, want)
                      : 0;
    if (k == 0) break;
    for (size_t i = 0; i < k; i++) {
      open_q_t *q = queue_of(qs, req->nqueues, cand[i].qdir);
      if (first_err != OMNIQ_OK || q == NULL) { /* a queue closed by an earlier candidate */
        omniq__fidx_put_back(fs->idx, &cand[i]);
        continue;
      }
      int rc = q->limited ? claim_limited(fs, &folder, q, &cand[i], req, &got[*n], err, errlen)
                          : claim_one(fs, &folder, q, &cand[i], req, &got[*n], err, errlen);
      if (rc == CLAIMED) {
        (*n)++;
      } else if (rc == PAUSED) {
        omniq__fidx_put_back(fs->idx, &cand[i]);
        q->closed = 1;
      } else if (rc != GONE) {
        omniq__fidx_put_back(fs->idx, &cand[i]);
        first_err = rc;
      }
    }
  }
  if (*n > 0 && first_err == OMNIQ_OK)
    read_ahead(fs, &folder, qs, req->nqueues, names, req, *n < CLAIM_CHUNK ? *n : CLAIM_CHUNK);
  folder_close(&folder);
  omniq__free(qs);
  omniq__free(names);
  if (*n == 0) {
    omniq__free(got);
    if (first_err == OMNIQ_ENOMEM) snprintf(err, errlen, "file store: claim: out of memory");
    return first_err;
  }
  /* Keep what was claimed: failing now would strand those tasks until
   * their lease runs out. The error is logged instead. */
  if (first_err != OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.claim", NULL, "claim stopped early: %s", err);
  err[0] = '\0';
  *out = got;
  return OMNIQ_OK;
}
