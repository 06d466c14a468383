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
 * each file; a record already in memory costs no read. So records of
 * tasks created in the last minute (the time in their UUIDv7, against the
 * machine's real clock: the page cache ages in real time, whatever clock
 * the store is given) are not read ahead: they were written moments ago
 * and are still in memory. A drained burst of fresh tasks then pays no
 * look-ahead (three calls per task).
 *
 * A claim of many with fsync on (claim_held, used by finish_many's claim
 * and the pool's): every candidate's lock at once, each rewrite staged,
 * one sync round for all their data, then the renames over the slots. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/backend.h"
#include "storage/file/batch.h"
#include "storage/file/claimed.h"
#include "storage/file/queues.h"
#include "storage/file/record.h"

#define CLAIM_CHUNK 16

enum { CLAIMED = 0, GONE = 1, PAUSED = 2 };

/* A claim of many tasks whose rewrites' data is synced in one round
 * (claim_held): the caller holds every candidate's lock, and each claim
 * leaves its RUNNING rewrite staged, unsynced, until the round is done. */
typedef struct held_claim {
  omniq__fio_held_t files;
  struct staged_claim {
    omniq__pending_t p;
    char tmp[OMNIQ__TMP_NAME_SIZE];
    omniq__fio_stamp_t stamp; /* the rewrite's mark (claimed.c) */
    off_t size;
  } *v;
  size_t n;
} held_claim_t;

static void unlock_one(omniq__fs_t *fs, const held_claim_t *h, const char *id) {
  if (h == NULL) omniq__flock_release(&fs->locks, id);
}

/* Claims one candidate from its folder qfd: CLAIMED with *out, GONE if
 * someone else won or the file was quarantined, PAUSED if its queue is
 * paused (the file back where it was), or an error (the candidate
 * untouched). With h, the caller holds the task's lock and the claim is
 * finished by claim_held once h's files are synced. */
static int claim_in(omniq__fs_t *fs, int qfd, const omniq__pending_t *p,
                    const omniq_claim_req_t *req, held_claim_t *h, omniq_task_t **out, char *err,
                    size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t = NULL;
  omniq__frec_t rec;
  omniq__fqset_t set;
  omniq__fname_id(p->id, idname);
  int rc = h == NULL ? omniq__flock_take(&fs->locks, p->id, err, errlen) : OMNIQ_OK;
  if (rc != OMNIQ_OK) return rc;
  if (renameat(qfd, p->name, fs->running_fd, idname) != 0) {
    int en = errno;
    unlock_one(fs, h, p->id);
    if (en == ENOENT) return GONE; /* another claimer (or a cancel) won */
    return omniq__fio_errno(en, err, errlen, "file store: claiming %s", p->name);
  }
  /* The rename decided the claim; a pause written before it is seen now
   * (queues.c), and undoing is putting the file back. */
  if (omniq__fq_read(fs, p->qdir, &set) == OMNIQ_OK && set.paused) {
    renameat(fs->running_fd, idname, qfd, p->name);
    unlock_one(fs, h, p->id);
    return PAUSED;
  }
  rc = omniq__frec_read(fs->running_fd, idname, p->id, &t, NULL, e, sizeof e);
  if (rc == OMNIQ_OK && t->status != OMNIQ_PENDING) {
    snprintf(e, sizeof e, "status %s in a pending folder", omniq_status_name(t->status));
    rc = OMNIQ_ECORRUPT;
  }
  if (rc == OMNIQ_ECORRUPT) {
    omniq__fio_quarantine(&fs->io, fs->running_fd, "queue/running", idname, e);
    unlock_one(fs, h, p->id);
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
    /* The rewrite carries a mark, so the finish of this run can trust the
     * slot with one fstatat (claimed.c). */
    omniq__fio_stamp_t stamp;
    omniq__fclaimed_mark(fs->claimed, &stamp);
    if (rc == OMNIQ_OK && h != NULL) {
      /* Staged only: claim_held renames it over the slot after the round. */
      omniq__fio_t io = fs->io;
      io.held = &h->files;
      io.stamp = &stamp;
      struct staged_claim *c = &h->v[h->n];
      rc = omniq__frec_stage(&io, &rec, OMNIQ__FREC_TASK, c->tmp, err, errlen);
      if (rc == OMNIQ_OK) {
        c->p = *p;
        c->stamp = stamp;
        c->size = (off_t)rec.task_len + 1;
        h->n++;
      }
      omniq__frec_free(&rec);
    } else if (rc == OMNIQ_OK) {
      /* The rewrite's data is synced before its rename (a slot must never
       * be an empty file), but no folder is: a claim promises nothing
       * across a power loss. One lost there leaves the PENDING file in
       * the slot or in pending/, which recovery puts back with its old
       * attempts, as for a claim cut short; the finish that follows syncs
       * running/ (see Durability). */
      omniq__fio_dirs_t later = OMNIQ__FIO_DIRS_INIT;
      omniq__fio_t io = fs->io;
      io.defer = &later;
      io.stamp = &stamp;
      rc = omniq__frec_write_slot(&io, fs->running_fd, idname, &rec, err, errlen);
      omniq__fio_dirs_drop(&later);
      if (rc == OMNIQ_OK) omniq__fclaimed_put(fs->claimed, t, &stamp, (off_t)rec.task_len + 1);
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
    unlock_one(fs, h, p->id);
    *out = NULL;
    return rc;
  }
  unlock_one(fs, h, p->id);
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
  return rc == OMNIQ_OK ? claim_in(fs, qfd, p, req, NULL, out, err, errlen) : rc;
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
    if (rc == OMNIQ_OK && (rc = claim_in(fs, qfd, p, req, NULL, out, err, errlen)) != CLAIMED) {
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

/* Puts a claim whose rewrite was not placed back in pending/ (its slot
 * still holds the PENDING file). If even that fails, the slot is a claim
 * cut short, which a roll-forward puts back. */
static void unclaim(omniq__fs_t *fs, const omniq__pending_t *p) {
  char idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX];
  int qfd;
  omniq__fname_id(p->id, idname);
  if (omniq__fidx_open_dir(fs->idx, p->qdir, &qfd, e, sizeof e) != OMNIQ_OK) return;
  if (renameat(fs->running_fd, idname, qfd, p->name) == 0) omniq__fidx_put_back(fs->idx, p);
  close(qfd);
}

/* One round of a claim of many with fsync on: the best due candidates
 * (up to what is still wanted), all their locks at once (in stripe
 * order), each claimed as claim_in does but with its rewrite staged, one
 * group round for the data of every rewrite, then each rewrite renamed
 * over its slot. So a claim of 64 waits for one sync, not 64. *tried gets
 * how many candidates the index gave (0: nothing due). */
static int claim_held(omniq__fs_t *fs, const omniq_claim_req_t *req, open_q_t *qs,
                      const char **names, omniq_task_t **got, size_t *n, size_t *tried, char *err,
                      size_t errlen) {
  size_t want = req->max - *n, k = 0, n0 = *n, nset = 0;
  size_t nq = open_names(qs, req->nqueues, names);
  char qdir[OMNIQ__QDIR_SIZE] = "", e[OMNIQ__ERRMSG_MAX];
  int qfd = -1, first_err = OMNIQ_OK;
  uint16_t *set = NULL;
  omniq__pending_t *cand = omniq__calloc(want, sizeof *cand);
  const char **ids = omniq__calloc(want, sizeof *ids);
  held_claim_t h = {OMNIQ__FIO_HELD_INIT, omniq__calloc(want, sizeof *h.v), 0};
  *tried = 0;
  if (cand == NULL || ids == NULL || h.v == NULL) first_err = OMNIQ_ENOMEM;
  while (first_err == OMNIQ_OK && k < want && nq > 0) {
    size_t got_k = omniq__fidx_take_due(fs->idx, names, nq, req->now_ms, *n == 0 && k == 0,
                                        cand + k, want - k);
    if (got_k == 0) break;
    k += got_k;
  }
  for (size_t i = 0; i < k; i++) ids[i] = cand[i].id;
  if (k > 0 && (first_err = omniq__flock_take_set(&fs->locks, ids, k, &set, &nset, err,
                                                  errlen)) != OMNIQ_OK) {
    for (size_t i = 0; i < k; i++) omniq__fidx_put_back(fs->idx, &cand[i]);
    k = 0;
  }
  *tried = k;
  for (size_t i = 0; i < k; i++) {
    open_q_t *q = queue_of(qs, req->nqueues, cand[i].qdir);
    int rc = first_err != OMNIQ_OK || q == NULL ? PAUSED : OMNIQ_OK;
    /* Candidates come queue by queue: one folder open per queue. */
    if (rc == OMNIQ_OK && (qfd < 0 || strcmp(qdir, cand[i].qdir) != 0)) {
      if (qfd >= 0) close(qfd);
      qfd = -1;
      rc = omniq__fidx_open_dir(fs->idx, cand[i].qdir, &qfd, err, errlen);
      memcpy(qdir, cand[i].qdir, sizeof qdir);
    }
    if (rc == OMNIQ_OK) rc = claim_in(fs, qfd, &cand[i], req, &h, &got[*n], err, errlen);
    omniq__fbatch_step();
    if (rc == CLAIMED) {
      (*n)++;
    } else if (rc == PAUSED) {
      omniq__fidx_put_back(fs->idx, &cand[i]);
      if (q != NULL && first_err == OMNIQ_OK) q->closed = 1;
    } else if (rc != GONE) {
      omniq__fidx_put_back(fs->idx, &cand[i]);
      first_err = rc;
    }
  }
  if (qfd >= 0) close(qfd);
  /* h.v[j] is the claim of got[n0 + j]: each CLAIMED staged one file. */
  int synced = omniq__fio_held_sync(&fs->io, &h.files, e, sizeof e);
  omniq__fbatch_step();
  if (synced != OMNIQ_OK && first_err == OMNIQ_OK) {
    first_err = synced;
    snprintf(err, errlen, "%s", e);
  }
  size_t kept = n0;
  omniq__fio_t nosync = fs->io; /* renames only, no folder sync (below) */
  nosync.fsync = 0;
  for (size_t j = 0; j < h.n; j++) {
    char idname[OMNIQ__IDNAME_SIZE];
    omniq__fname_id(h.v[j].p.id, idname);
    /* No folder synced: as claim_in, a claim promises nothing across a
     * power loss (the finish that follows syncs running/). */
    if (synced == OMNIQ_OK &&
        omniq__fio_replace(&nosync, h.v[j].tmp, fs->running_fd, idname, e, sizeof e) == OMNIQ_OK) {
      omniq__fclaimed_put(fs->claimed, got[n0 + j], &h.v[j].stamp, h.v[j].size);
      got[kept++] = got[n0 + j];
      omniq__fbatch_step();
      continue;
    }
    omniq__fio_unstage(&fs->io, h.v[j].tmp);
    unclaim(fs, &h.v[j].p);
    omniq_task_free(got[n0 + j]);
  }
  *n = kept;
  if (set != NULL) omniq__flock_release_set(&fs->locks, set, nset);
  omniq__fio_held_free(&h.files);
  omniq__free(h.v);
  omniq__free(ids);
  omniq__free(cand);
  return first_err;
}

/* Starts reading the records of the next k due tasks of the queues still
 * open (see Reading ahead, above). Best effort: a file gone or unreadable
 * is left to the claim that takes it. */
/* Records younger than this (by their id's time) are taken to be in the
 * page cache. */
#define FRESH_MS 60000

/* The creation time in ms a UUIDv7 carries (its first 48 bits), or -1. */
static int64_t id_ms(const char *id) {
  int64_t ms = 0;
  for (int i = 0; i < 13; i++) {
    if (i == 8) continue; /* the dash */
    char c = id[i];
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) return -1;
    ms = ms * 16 + v;
  }
  return ms;
}

static void read_ahead(omniq__fs_t *fs, folder_t *f, open_q_t *qs, size_t nq,
                       const char **names, const omniq_claim_req_t *req, size_t k) {
  omniq__pending_t next[CLAIM_CHUNK];
  char e[OMNIQ__ERRMSG_MAX];
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  int64_t real_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
  size_t nn = open_names(qs, nq, names);
  size_t m = omniq__fidx_peek_due(fs->idx, names, nn, req->now_ms, next, k);
  for (size_t i = 0; i < m; i++) {
    open_q_t *q = queue_of(qs, nq, next[i].qdir);
    int64_t born = id_ms(next[i].id);
    int qfd;
    if (born >= 0 && born <= real_ms && real_ms - born < FRESH_MS) continue;
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
  /* Many tasks with fsync on: one sync round per batch (claim_held). A
   * rate-limited queue claims one candidate at a time under its lock. */
  int held = fs->io.fsync && req->max > 1;
  for (size_t i = 0; i < req->nqueues && qs != NULL && held; i++) held = !qs[i].limited;
  while (first_err == OMNIQ_OK && *n < req->max) {
    if (held) {
      size_t tried;
      first_err = claim_held(fs, req, qs, names, got, n, &tried, err, errlen);
      if (tried == 0) break;
      continue;
    }
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
