/* File storage backend: the storage contract on a plain directory, safe for
 * any number of threads and processes sharing it.
 *
 * Layout under base_dir (docs/storage-file.md has the full story):
 *
 *   FORMAT                     "omniq-file-store 1": the layout version
 *   lock                       task locks: byte ranges, OFD-locked
 *   queue/pending/<q>/<iprio>_<eta>_<id>.json   due order is name order
 *   queue/running/<id>.json    claimed tasks, and the commit slot of every
 *                              transition (transitions.c)
 *   queue/{success,failed,cancelled}/<id>.json  terminal tasks
 *   queue/journal              new pending names, for other backends' indexes
 *   results/<id>.json          one result per task (latest wins)
 *   quarantine/                files that could not be used, never deleted
 *   tmp/                       every write starts here
 *   batches/<name>/            a committed enqueue of many, being published
 *                              (batch.c: what makes it all or none)
 *
 * Claim: take the best due names from the in-memory index (index.c),
 * then for each: task lock, rename pending/<q>/<name> -> running/<id>.json
 * (the rename decides: ENOENT means another claimer won, try the next),
 * rewrite it as RUNNING with attempts+1, token+1 and the lease, unlock. A
 * crash between the rename and the rewrite leaves a PENDING file in
 * running/, which a roll-forward (omniq__fs_roll_forward) puts back in pending/: the
 * claim never happened, so no attempt is counted for a run that never ran.
 *
 * Recovery runs at open, in expired_leases (which the engine calls about
 * once a second while claiming), and whenever a lookup meets an
 * interrupted transition. Lost workers are the engine's business:
 * expired_leases lists RUNNING tasks whose lease passed and the engine
 * fails them with their token, like on SQLite.
 *
 * To change the layout or a file's format: bump FORMAT_LINE, keep reading
 * the old form, and add a test with a store in the old form. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/mkdir.h"
#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/batch.h"
#include "storage/file/names.h"
#include "storage/file/record.h"
#include "storage/registry.h"

#define FORMAT_LINE "omniq-file-store 1\n"
#define CLAIM_CHUNK 16

/* ---- open / close ---------------------------------------------------------- */

/* Opens (making it if needed) parent/name and checks we may write in it:
 * a read-only store must fail at open, not at the first claim. */
static int open_dir(const omniq__fs_t *fs, int parent, const char *name, int *fd, char *err,
                    size_t errlen) {
  char e[OMNIQ__ERRMSG_MAX];
  int rc = omniq__fio_mkdir_open(parent, name, fd, e, sizeof e);
  if (rc == OMNIQ_OK && faccessat(*fd, ".", W_OK | X_OK, 0) != 0)
    rc = omniq__fio_errno(errno, e, sizeof e, "%s is not writable", name);
  if (rc != OMNIQ_OK)
    snprintf(err, errlen, "file store: base_dir '%s': %s", fs->settings.base_dir, e);
  return rc;
}

/* Reads FORMAT before anything is created, so a store of another version
 * is refused untouched. *missing: the caller writes it once the folders
 * exist (a half-made store has no FORMAT and is completed next time). */
static int check_format(omniq__fs_t *fs, int *missing, char *err, size_t errlen) {
  char *text = NULL, e[OMNIQ__ERRMSG_MAX];
  int rc = omniq__fio_read(fs->base_fd, "FORMAT", &text, NULL, e, sizeof e);
  *missing = rc == OMNIQ_ENOTFOUND;
  if (*missing) {
    rc = OMNIQ_OK;
  } else if (rc == OMNIQ_OK && strcmp(text, FORMAT_LINE) != 0) {
    snprintf(e, sizeof e, "FORMAT says '%.40s', this library reads '%.18s'", text, FORMAT_LINE);
    rc = OMNIQ_ECORRUPT;
  }
  omniq__free(text);
  if (rc != OMNIQ_OK)
    snprintf(err, errlen, "file store: base_dir '%s': %s", fs->settings.base_dir, e);
  return rc;
}

static int check_queue_entry(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  (void)ud;
  if (!omniq__fname_queue_entry(name))
    omniq__fio_quarantine(&fs->io, dirfd, "queue", name, "not part of the queue layout");
  return 0;
}

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

static void close_file(void *backend) {
  omniq__fs_t *fs = backend;
  if (fs == NULL) return;
  omniq__fidx_free(fs->idx);
  int *fds[] = {&fs->base_fd,    &fs->queue_fd,      &fs->pending_fd, &fs->running_fd,
                &fs->results_fd, &fs->quarantine_fd, &fs->tmp_fd,     &fs->locks.fd,
                &fs->done_fd[0], &fs->done_fd[1],    &fs->done_fd[2], &fs->batches_fd};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) close_fd(fds[i]);
  omniq__flock_destroy(&fs->locks);
  omniq__free(fs);
}

static int open_layout(omniq__fs_t *fs, char *err, size_t errlen) {
  const char *base = fs->settings.base_dir;
  int e, rc, missing = 0;
  if ((e = omniq__mkdir_p(base)) != 0) {
    snprintf(err, errlen, "file store: cannot create base_dir '%s': %s", base, strerror(e));
    return omniq__errno_code(e) == OMNIQ_ENOTFOUND ? OMNIQ_ESTORAGE : omniq__errno_code(e);
  }
  fs->base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fs->base_fd < 0) {
    e = errno;
    snprintf(err, errlen, "file store: cannot open base_dir '%s': %s", base, strerror(e));
    return OMNIQ_ESTORAGE;
  }
  if ((rc = check_format(fs, &missing, err, errlen)) != OMNIQ_OK) return rc;
  if (faccessat(fs->base_fd, ".", W_OK | X_OK, 0) != 0) {
    e = errno;
    snprintf(err, errlen, "file store: base_dir '%s' is not writable: %s", base, strerror(e));
    return omniq__errno_code(e);
  }
  if ((rc = open_dir(fs, fs->base_fd, "tmp", &fs->tmp_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "quarantine", &fs->quarantine_fd, err, errlen)) !=
          OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "batches", &fs->batches_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "results", &fs->results_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "queue", &fs->queue_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->queue_fd, "pending", &fs->pending_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->queue_fd, "running", &fs->running_fd, err, errlen)) != OMNIQ_OK)
    return rc;
  for (int k = 0; k < OMNIQ__FS_NDONE; k++)
    if ((rc = open_dir(fs, fs->queue_fd, omniq__fname_done[k], &fs->done_fd[k], err, errlen)) != OMNIQ_OK)
      return rc;
  fs->io.tmp_fd = fs->tmp_fd;
  fs->io.quarantine_fd = fs->quarantine_fd;
  if (missing) {
    char e2[OMNIQ__ERRMSG_MAX];
    rc = omniq__fio_write(&fs->io, fs->base_fd, "FORMAT", FORMAT_LINE, strlen(FORMAT_LINE), e2,
                          sizeof e2);
    if (rc != OMNIQ_OK) {
      snprintf(err, errlen, "file store: base_dir '%s': %s", base, e2);
      return rc;
    }
  }
  fs->locks.fd = openat(fs->base_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fs->locks.fd < 0) {
    e = errno;
    snprintf(err, errlen, "file store: base_dir '%s': cannot open lock: %s", base, strerror(e));
    return OMNIQ_ESTORAGE;
  }
  return OMNIQ_OK;
}

static int open_file(const omniq_settings_t *s, void **backend, char *err, size_t errlen) {
  omniq__fs_t *fs;
  *backend = NULL;
  if (s == NULL || s->base_dir[0] == '\0') {
    snprintf(err, errlen, "file store: base_dir is empty");
    return OMNIQ_ECONFIG;
  }
  fs = omniq__calloc(1, sizeof *fs);
  if (fs == NULL) {
    snprintf(err, errlen, "file store: out of memory");
    return OMNIQ_ENOMEM;
  }
  fs->settings = *s;
  omniq__log_init(&fs->log, &fs->settings);
  fs->io.fsync = s->fsync != 0;
  fs->io.log = &fs->log;
  fs->io.tmp_fd = fs->io.quarantine_fd = -1;
  omniq__flock_init(&fs->locks, fs->settings.base_dir);
  int *fds[] = {&fs->base_fd,    &fs->queue_fd,      &fs->pending_fd, &fs->running_fd,
                &fs->results_fd, &fs->quarantine_fd, &fs->tmp_fd,     &fs->locks.fd,
                &fs->done_fd[0], &fs->done_fd[1],    &fs->done_fd[2], &fs->batches_fd};
  for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) *fds[i] = -1;
  int rc = open_layout(fs, err, errlen);
  if (rc == OMNIQ_OK) {
    omniq__fio_clean_tmp(&fs->io);
    omniq__fs_each(fs, fs->queue_fd, check_queue_entry, NULL);
    rc = omniq__fidx_open(&fs->idx, &fs->io, fs->queue_fd, fs->pending_fd, err, errlen);
  }
  if (rc != OMNIQ_OK) {
    close_file(fs);
    return rc;
  }
  /* Finish whatever a process that died here left half done. */
  omniq__fs_recover(fs);
  *backend = fs;
  return OMNIQ_OK;
}

/* ---- enqueue --------------------------------------------------------------- */

static int cmp_ids(const void *a, const void *b) {
  return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int check_tasks(omniq_task_t *const *tasks, size_t n, const char **ids, char *err,
                       size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const omniq_task_t *t = tasks[i];
    if (t == NULL || !omniq_id_valid(t->id) || t->func == NULL || t->queue == NULL ||
        t->args == NULL || t->kwargs == NULL || t->status != OMNIQ_PENDING) {
      snprintf(err, errlen, "file store: task %zu is not a valid new PENDING task", i);
      return OMNIQ_EINVAL;
    }
    ids[i] = t->id;
  }
  qsort(ids, n, sizeof *ids, cmp_ids);
  for (size_t i = 1; i < n; i++)
    if (strcmp(ids[i - 1], ids[i]) == 0) {
      snprintf(err, errlen, "file store: task id %s appears twice in the batch", ids[i]);
      return OMNIQ_EINVAL;
    }
  return OMNIQ_OK;
}

typedef struct {
  omniq__pending_t p;
  char idname[OMNIQ__IDNAME_SIZE];
  char tmp[OMNIQ__TMP_NAME_SIZE];
  int staged, placed;
} slot_t;

/* Writes every task through io, into tmp/ or a batch's folder (synced):
 * the slow part, before any lock. */
static int stage_all(omniq__fs_t *fs, const omniq__fio_t *io, omniq_task_t *const *tasks,
                     size_t n, slot_t *sl, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    const omniq_task_t *t = tasks[i];
    omniq__frec_t rec;
    int rc;
    char qdir[OMNIQ__QDIR_SIZE];
    if ((rc = omniq__fidx_queue(fs->idx, t->queue, 1, qdir, err, errlen)) != OMNIQ_OK)
      return rc;
    omniq__fidx_describe(fs->idx, qdir, t->priority, t->eta_ms, t->id, &sl[i].p);
    omniq__fname_id(t->id, sl[i].idname);
    if ((rc = omniq__frec_encode(&rec, t, NULL, err, errlen)) != OMNIQ_OK) return rc;
    rc = omniq__frec_stage(io, &rec, OMNIQ__FREC_TASK, sl[i].tmp, err, errlen);
    omniq__frec_free(&rec);
    if (rc != OMNIQ_OK) return rc;
    sl[i].staged = 1;
    omniq__fbatch_step();
  }
  return OMNIQ_OK;
}

/* OMNIQ_EINVAL if a task of the batch already exists (locks held). */
static int check_new(omniq__fs_t *fs, const slot_t *sl, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++)
    if (omniq__fidx_find(fs->idx, sl[i].p.id, 0, &(omniq__pending_t){0}) ||
        omniq__fs_exists_outside_pending(fs, sl[i].idname)) {
      snprintf(err, errlen, "file store: task %s already exists", sl[i].p.id);
      return OMNIQ_EINVAL;
    }
  return OMNIQ_OK;
}

static int cmp_slot_qdir(const void *a, const void *b) {
  return strcmp(((const slot_t *)a)->p.qdir, ((const slot_t *)b)->p.qdir);
}

/* Renames every staged file from folder src into pending/ (locks held).
 * Slots are sorted by queue folder first, so each is opened, filled and
 * synced once, and no descriptor is kept per queue. Stops at the first
 * failure; the slots say which were placed. */
static int place_all(omniq__fs_t *fs, int src, slot_t *sl, size_t n, char *err, size_t errlen) {
  int rc = OMNIQ_OK;
  qsort(sl, n, sizeof *sl, cmp_slot_qdir);
  for (size_t i = 0, j; i < n && rc == OMNIQ_OK; i = j) {
    int qfd;
    if ((rc = omniq__fidx_open_dir(fs->idx, sl[i].p.qdir, &qfd, err, errlen)) != OMNIQ_OK) break;
    for (j = i; j < n && strcmp(sl[j].p.qdir, sl[i].p.qdir) == 0; j++) {
      if (renameat(src, sl[j].tmp, qfd, sl[j].p.name) != 0) {
        rc = omniq__fio_errno(errno, err, errlen, "file store: placing %s", sl[j].p.name);
        break;
      }
      sl[j].staged = 0;
      sl[j].placed = 1;
      omniq__fbatch_step();
    }
    if (rc == OMNIQ_OK) rc = omniq__fio_sync_dir(&fs->io, qfd, err, errlen);
    close(qfd);
  }
  return rc;
}

/* Removes the one task file a failed single enqueue placed (see below). */
static void take_back(omniq__fs_t *fs, const slot_t *sl) {
  char e[8];
  int qfd;
  if (sl->placed && omniq__fidx_open_dir(fs->idx, sl->p.qdir, &qfd, e, sizeof e) == OMNIQ_OK) {
    unlinkat(qfd, sl->p.name, 0);
    close(qfd);
  }
}

/* Tells the index and the journal about every placed file. */
static void announce_placed(omniq__fs_t *fs, const slot_t *sl, size_t n) {
  omniq__pending_t *ps = omniq__malloc(n * sizeof *ps);
  size_t k = 0;
  for (size_t i = 0; ps != NULL && i < n; i++)
    if (sl[i].placed) ps[k++] = sl[i].p;
  if (ps != NULL && k > 0) omniq__fidx_announce(fs->idx, ps, k);
  omniq__free(ps);
}

/* One task: staged in tmp/ and placed by one rename, which is all or none
 * by itself. Many: a batch (batch.c), committed by the one rename of its
 * folder; after that commit the batch is enqueued, so a failure publishing
 * it is left to recovery, not undone. */
static int enqueue_file(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                        size_t errlen) {
  omniq__fs_t *fs = backend;
  uint16_t *set = NULL;
  size_t nset = 0;
  omniq__fbatch_t batch = {.fd = -1};
  omniq__fio_t batch_io;
  if (n == 0) return OMNIQ_OK;
  if (tasks == NULL) return OMNIQ_EINVAL;
  const char **ids = omniq__malloc(n * sizeof *ids);
  slot_t *sl = omniq__calloc(n, sizeof *sl);
  int rc = ids != NULL && sl != NULL ? check_tasks(tasks, n, ids, err, errlen) : OMNIQ_ENOMEM;
  if (rc == OMNIQ_OK && n > 1) rc = omniq__fbatch_begin(fs, &batch, &batch_io, err, errlen);
  if (rc == OMNIQ_OK) rc = stage_all(fs, n > 1 ? &batch_io : &fs->io, tasks, n, sl, err, errlen);
  /* Locks keep claimers (and lookups) away until the batch is all in or all
   * out: a claimer takes the task lock before its rename. */
  if (rc == OMNIQ_OK) rc = omniq__flock_take_set(&fs->locks, ids, n, &set, &nset, err, errlen);
  if (rc == OMNIQ_OK) {
    rc = check_new(fs, sl, n, err, errlen);
    if (rc == OMNIQ_OK && n > 1) rc = omniq__fbatch_commit(fs, &batch, err, errlen);
    if (rc == OMNIQ_OK) rc = place_all(fs, n > 1 ? batch.fd : fs->tmp_fd, sl, n, err, errlen);
    if (rc != OMNIQ_OK && batch.committed) {
      omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.incomplete", NULL,
                 "batch of %zu enqueued, publishing it failed (finished by recovery): %s", n, err);
      rc = OMNIQ_OK;
      err[0] = '\0';
    } else if (rc != OMNIQ_OK && n == 1) {
      take_back(fs, &sl[0]);
      sl[0].placed = 0;
    }
    announce_placed(fs, sl, n);
    omniq__flock_release_set(&fs->locks, set, nset);
  }
  if (n > 1) {
    omniq__fbatch_end(fs, &batch);
  } else if (sl != NULL && sl[0].staged) {
    omniq__fio_unstage(&fs->io, sl[0].tmp);
  }
  omniq__free(sl);
  omniq__free(ids);
  return rc;
}

/* ---- claim ----------------------------------------------------------------- */

enum { CLAIMED = 0, GONE = 1 };

/* Claims one candidate from its folder qfd: CLAIMED with *out, GONE if
 * someone else won or the file was quarantined, or an error (the candidate
 * untouched). */
static int claim_in(omniq__fs_t *fs, int qfd, const omniq__pending_t *p,
                    const omniq_claim_req_t *req, omniq_task_t **out, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t = NULL;
  omniq__frec_t rec;
  omniq__fname_id(p->id, idname);
  int rc = omniq__flock_take(&fs->locks, p->id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (renameat(qfd, p->name, fs->running_fd, idname) != 0) {
    int en = errno;
    omniq__flock_release(&fs->locks, p->id);
    if (en == ENOENT) return GONE; /* another claimer (or a cancel) won */
    return omniq__fio_errno(en, err, errlen, "file store: claiming %s", p->name);
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
      rc = omniq__frec_write(&fs->io, fs->running_fd, idname, &rec, OMNIQ__FREC_TASK, err,
                             errlen);
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
  /* The task is claimed whatever happens next; a failed sync of the folder
   * it left is a durability problem to report, not a reason to undo. */
  if (omniq__fio_sync_dir(&fs->io, qfd, e, sizeof e) != OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.sync", p->id, "%s", e);
  omniq__flock_release(&fs->locks, p->id);
  *out = t;
  return CLAIMED;
}

/* claim_in, with the candidate's folder opened for it. */
static int claim_one(omniq__fs_t *fs, const omniq__pending_t *p, const omniq_claim_req_t *req,
                     omniq_task_t **out, char *err, size_t errlen) {
  int qfd;
  int rc = omniq__fidx_open_dir(fs->idx, p->qdir, &qfd, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = claim_in(fs, qfd, p, req, out, err, errlen);
  close(qfd);
  return rc;
}

static int claim_file(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                      char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq__pending_t cand[CLAIM_CHUNK];
  int first_err = OMNIQ_OK;
  *out = NULL;
  *n = 0;
  if (req == NULL || req->nqueues == 0 || req->queues == NULL) {
    snprintf(err, errlen, "file store: claim: no queue named");
    return OMNIQ_EINVAL;
  }
  if (req->max == 0) return OMNIQ_OK;
  for (size_t i = 0; i < req->nqueues; i++)
    if (req->queues[i] == NULL) {
      snprintf(err, errlen, "file store: claim: NULL queue name");
      return OMNIQ_EINVAL;
    }
  const char *const *queues = req->queues;
  size_t nq = req->nqueues;
  omniq_task_t **got = omniq__calloc(req->max, sizeof *got);
  if (got == NULL) return OMNIQ_ENOMEM;
  while (*n < req->max && first_err == OMNIQ_OK) {
    size_t want = req->max - *n < CLAIM_CHUNK ? req->max - *n : CLAIM_CHUNK;
    size_t k = omniq__fidx_take_due(fs->idx, queues, nq, req->now_ms, *n == 0, cand, want);
    if (k == 0) break;
    for (size_t i = 0; i < k; i++) {
      if (first_err != OMNIQ_OK) {
        omniq__fidx_put_back(fs->idx, &cand[i]);
        continue;
      }
      int rc = claim_one(fs, &cand[i], req, &got[*n], err, errlen);
      if (rc == CLAIMED) {
        (*n)++;
      } else if (rc != GONE) {
        omniq__fidx_put_back(fs->idx, &cand[i]);
        first_err = rc;
      }
    }
  }
  if (*n == 0) {
    omniq__free(got);
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

const omniq_storage_ops_t omniq__file_ops = {
    .abi_version = OMNIQ_STORAGE_ABI,
    .name = "file",
    .open = open_file,
    .close = close_file,
    .enqueue = enqueue_file,
    .claim = claim_file,
    .finish = omniq__fs_finish,
    .extend_lease = omniq__fs_extend_lease,
    .cancel = omniq__fs_cancel,
    .get_task = omniq__fs_get_task,
    .get_result = omniq__fs_get_result,
    .purge_results = omniq__fs_purge_results,
    .count_by_status = omniq__fs_count_by_status,
    .expired_leases = omniq__fs_expired_leases,
};
