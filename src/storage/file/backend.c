/* SPDX-License-Identifier: MIT */
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
 * This file holds open, close, enqueue and the ops table; claim.c holds
 * the claim.
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
#include "storage/file/keys.h"
#include "storage/file/marks.h"
#include "storage/file/names.h"
#include "storage/file/claimed.h"
#include "storage/file/owner.h"
#include "storage/file/queues.h"
#include "storage/file/record.h"
#include "storage/file/totals.h"
#include "storage/registry.h"

#define FORMAT_LINE "omniq-file-store 2\n"
#define FORMAT_LINE_1 "omniq-file-store 1\n" /* read, and upgraded at open */

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
  } else if (rc == OMNIQ_OK && strcmp(text, FORMAT_LINE_1) == 0) {
    /* FORMAT 1 lacks only what FORMAT 2 added (index/, keys/, queues/,
     * stats/, chores/): open_file makes them, builds the index and then
     * writes the new FORMAT, so an older library refuses the store. */
    *missing = 1;
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

/* Every descriptor the backend holds, for opening (-1) and closing. */
static size_t all_fds(omniq__fs_t *fs, int **fds) {
  size_t n = 0;
  int *fixed[] = {&fs->base_fd,    &fs->queue_fd,      &fs->pending_fd, &fs->running_fd,
                  &fs->results_fd, &fs->quarantine_fd, &fs->tmp_fd,     &fs->locks.fd,
                  &fs->done_fd[0], &fs->done_fd[1],    &fs->done_fd[2], &fs->index_root_fd,
                  &fs->keys_fd,    &fs->queues_fd,     &fs->stats_fd,   &fs->chores_fd,
                  &fs->meta.fd,    &fs->index_done_fd};
  for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) fds[n++] = fixed[i];
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) fds[n++] = &fs->index_fd[s];
  return n;
}

#define ALL_FDS_MAX 32

static void close_file(void *backend) {
  omniq__fs_t *fs = backend;
  int *fds[ALL_FDS_MAX];
  if (fs == NULL) return;
  /* The next open reads the pending files from this, not the folders. */
  if (fs->open_done) omniq__fidx_save(fs->idx);
  omniq__fidx_free(fs->idx);
  omniq__fq_close(fs);
  omniq__ftotals_close(fs); /* before stats/ closes */
  omniq__spares_free(fs->io.spares); /* removes them from tmp/: before tmp_fd closes */
  omniq__fclaimed_free(fs->claimed);
  for (size_t i = 0, n = all_fds(fs, fds); i < n; i++) close_fd(fds[i]);
  omniq__flock_destroy(&fs->locks);
  omniq__flock_destroy(&fs->meta);
  omniq__fsyncq_free(fs->io.syncq);
  omniq__free(fs);
}

/* The folders and lock file FORMAT 2 added. */
static int open_format2(omniq__fs_t *fs, char *err, size_t errlen) {
  char name[4];
  int rc;
  if ((rc = open_dir(fs, fs->base_fd, "index", &fs->index_root_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "keys", &fs->keys_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "queues", &fs->queues_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "stats", &fs->stats_fd, err, errlen)) != OMNIQ_OK ||
      (rc = open_dir(fs, fs->base_fd, "chores", &fs->chores_fd, err, errlen)) != OMNIQ_OK)
    return rc;
  if ((rc = open_dir(fs, fs->index_root_fd, "done", &fs->index_done_fd, err, errlen)) != OMNIQ_OK)
    return rc;
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) {
    if (st == OMNIQ_RUNNING) continue; /* RUNNING shares PENDING's tree (marks.c) */
    snprintf(name, sizeof name, "%d", st);
    if ((rc = open_dir(fs, fs->index_root_fd, name, &fs->index_fd[st], err, errlen)) != OMNIQ_OK)
      return rc;
  }
  fs->meta.fd = openat(fs->base_fd, "meta.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fs->meta.fd < 0) {
    int e = errno;
    snprintf(err, errlen, "file store: base_dir '%s': cannot open meta.lock: %s",
             fs->settings.base_dir, strerror(e));
    return OMNIQ_ESTORAGE;
  }
  return omniq__fq_open(fs) == OMNIQ_OK ? OMNIQ_OK : OMNIQ_ENOMEM;
}

/* Opens every folder; *format_missing: FORMAT is to be written once the
 * store is complete (a new store, or one of FORMAT 1). */
static int open_layout(omniq__fs_t *fs, int *format_missing, char *err, size_t errlen) {
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
  /* NULL (no memory): every write makes a new file, as without spares. */
  fs->io.spares = omniq__spares_new(fs->tmp_fd, fs->io.fsync);
  /* Open until close, which no operation outlives (io.h). */
  fs->io.kept[fs->io.nkept++] = fs->running_fd;
  fs->io.kept[fs->io.nkept++] = fs->results_fd;
  for (int k = 0; k < OMNIQ__FS_NDONE; k++) fs->io.kept[fs->io.nkept++] = fs->done_fd[k];
  if ((rc = open_format2(fs, err, errlen)) != OMNIQ_OK) return rc;
  *format_missing = missing;
  fs->locks.fd = openat(fs->base_fd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fs->locks.fd < 0) {
    e = errno;
    snprintf(err, errlen, "file store: base_dir '%s': cannot open lock: %s", base, strerror(e));
    return OMNIQ_ESTORAGE;
  }
  /* Before the first file in tmp/: everything there carries the owner. */
  rc = omniq__fowner_claim(&fs->io, fs->locks.fd, err, errlen);
  /* NULL (no memory): every finish reads its slot. */
  if (rc == OMNIQ_OK) fs->claimed = omniq__fclaimed_new(fs->io.owner);
  return rc;
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
  fs->io.syncq = omniq__fsyncq_new(); /* NULL (no memory): each thread syncs alone */
  omniq__flock_init(&fs->locks, fs->settings.base_dir);
  omniq__flock_init(&fs->meta, fs->settings.base_dir);
  int *fds[ALL_FDS_MAX], format_missing = 0;
  for (size_t i = 0, n = all_fds(fs, fds); i < n; i++) *fds[i] = -1;
  int rc = open_layout(fs, &format_missing, err, errlen);
  if (rc == OMNIQ_OK) {
    omniq__fowner_clean_tmp(&fs->io, fs->locks.fd);
    omniq__fs_each(fs, fs->queue_fd, check_queue_entry, NULL);
    rc = omniq__ftotals_open(fs, err, errlen); /* before recovery, which counts runs */
  }
  if (rc == OMNIQ_OK) {
    rc = omniq__fidx_open(&fs->idx, &fs->io, fs->queue_fd, fs->pending_fd, err, errlen);
  }
  if (rc == OMNIQ_OK) {
    /* Finish whatever a process that died here left half done, then make
     * sure the listing index knows every task. */
    omniq__fs_recover(fs);
    omniq__ftotals_absorb(fs); /* after recovery settled what gone handles left */
    rc = omniq__fmark_build(fs, err, errlen);
  }
  if (rc == OMNIQ_OK && format_missing) {
    char e2[OMNIQ__ERRMSG_MAX];
    rc = omniq__fio_write(&fs->io, fs->base_fd, "FORMAT", FORMAT_LINE, strlen(FORMAT_LINE), e2,
                          sizeof e2);
    if (rc != OMNIQ_OK) snprintf(err, errlen, "file store: base_dir '%s': %s", s->base_dir, e2);
  }
  if (rc != OMNIQ_OK) {
    close_file(fs);
    return rc;
  }
  fs->open_done = 1;
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
  int fresh; /* the library made the id for this enqueue (storage ABI 8) */
} slot_t;

/* Writes every task through io, into tmp/ or a batch's folder: the slow
 * part, before any lock. With io->held set (a batch), the files' data are
 * synced in one group round per OMNIQ__FS_HELD_MAX files rather than one wait per
 * file: on a disk that flushes its cache per fdatasync the round still
 * makes a flush per file, but their writes overlap instead of queueing
 * one behind the other. On an error nothing staged is placed: the batch's
 * folder, and what it holds, goes. */
static int stage_all(omniq__fs_t *fs, const omniq__fio_t *io, omniq_task_t *const *tasks,
                     size_t n, slot_t *sl, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++) {
    if (io->held != NULL && io->held->n >= OMNIQ__FS_HELD_MAX) {
      int rc = omniq__fio_held_sync(io, io->held, err, errlen);
      if (rc != OMNIQ_OK) return rc;
    }
    const omniq_task_t *t = tasks[i];
    omniq__frec_t rec;
    int rc;
    char qdir[OMNIQ__QDIR_SIZE];
    if ((rc = omniq__fidx_queue(fs->idx, t->queue, 1, qdir, err, errlen)) != OMNIQ_OK)
      return rc;
    omniq__fidx_describe(fs->idx, qdir, t->priority, t->eta_ms, t->id, &sl[i].p);
    omniq__fname_id(t->id, sl[i].idname);
    sl[i].fresh = t->id_fresh;
    if ((rc = omniq__frec_encode(&rec, t, NULL, err, errlen)) != OMNIQ_OK) return rc;
    rc = omniq__frec_stage(io, &rec, OMNIQ__FREC_TASK, sl[i].tmp, err, errlen);
    omniq__frec_free(&rec);
    if (rc != OMNIQ_OK) return rc;
    sl[i].staged = 1;
    omniq__fbatch_step();
  }
  return io->held != NULL ? omniq__fio_held_sync(io, io->held, err, errlen) : OMNIQ_OK;
}

/* OMNIQ_EINVAL if a task of the batch already exists (locks held): ids
 * are the batch's ids; the index is asked about all of them at once.
 * running/ and the terminal folders are looked in only for ids the caller
 * of the table gave: an id the library made for this enqueue (id_fresh,
 * storage ABI 8) is in no store, and those four fstatat were a tenth of
 * an enqueue's system calls. */
static int check_new(omniq__fs_t *fs, const slot_t *sl, const char *const *ids, size_t n,
                     char *err, size_t errlen) {
  const char *known = omniq__fidx_first_known(fs->idx, ids, n);
  for (size_t i = 0; i < n && known == NULL; i++)
    if (!sl[i].fresh && omniq__fs_exists_outside_pending(fs, sl[i].idname)) known = sl[i].p.id;
  if (known == NULL) return OMNIQ_OK;
  snprintf(err, errlen, "file store: task %s already exists", known);
  return OMNIQ_EINVAL;
}

static int cmp_slot_qdir(const void *a, const void *b) {
  return strcmp(((const slot_t *)a)->p.qdir, ((const slot_t *)b)->p.qdir);
}

/* Renames every staged file from folder src into pending/ (locks held,
 * markers made). Slots are sorted by queue folder first, so each is
 * opened, filled and synced once, and no descriptor is kept per queue.
 * Stops at the first failure; the slots say which were placed. */
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

/* Markers first (marks.c): a task is never without one. On a failure the
 * ones made are dropped. */
static int mark_all(omniq__fs_t *fs, const slot_t *sl, size_t n, char *err, size_t errlen) {
  for (size_t i = 0; i < n; i++)
    if (omniq__fmark_new(fs, sl[i].p.id, sl[i].p.qdir) != OMNIQ_OK) {
      int rc = omniq__fio_errno(errno, err, errlen, "file store: index/ for %s", sl[i].p.id);
      while (i > 0) {
        i--;
        omniq__fmark_drop(fs, sl[i].p.id, sl[i].p.qdir);
      }
      return rc;
    }
  return OMNIQ_OK;
}

/* Removes the one task file a failed single enqueue placed, and its
 * marker (see below). */
static void take_back(omniq__fs_t *fs, slot_t *sl) {
  char e[8];
  int qfd;
  if (sl->placed && omniq__fidx_open_dir(fs->idx, sl->p.qdir, &qfd, e, sizeof e) == OMNIQ_OK) {
    unlinkat(qfd, sl->p.name, 0);
    close(qfd);
  }
  sl->placed = 0;
  omniq__fmark_drop(fs, sl->p.id, sl->p.qdir);
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
 * it is left to recovery, not undone.
 *
 * Unique keys (keys.c): their locks are taken before any task lock and
 * held until the tasks are placed, so no other enqueue of a key can come
 * between the check and the placing. */
static int enqueue_unique_file(void *backend, omniq_task_t *const *tasks, size_t n,
                               char (*holders)[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  uint16_t *set = NULL, *kset = NULL;
  size_t nset = 0, nk = 0, keyed = 0;
  omniq__fbatch_t batch = {.fd = -1};
  omniq__fio_t batch_io;
  if (n == 0) return OMNIQ_OK;
  if (tasks == NULL) return OMNIQ_EINVAL;
  const char **ids = omniq__malloc(n * sizeof *ids);
  slot_t *sl = omniq__calloc(n, sizeof *sl);
  int rc = ids != NULL && sl != NULL ? check_tasks(tasks, n, ids, err, errlen) : OMNIQ_ENOMEM;
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++) keyed += tasks[i]->unique_key != NULL;
  if (rc == OMNIQ_OK && keyed > 0) {
    rc = omniq__fkeys_lock(fs, tasks, n, &kset, &nk, err, errlen);
    if (rc == OMNIQ_OK && (rc = omniq__fkeys_take(fs, tasks, n, holders, err, errlen)) != OMNIQ_OK) {
      omniq__fkeys_release(fs, kset, nk);
      keyed = 0;
    }
  }
  omniq__fio_held_t held = OMNIQ__FIO_HELD_INIT;
  if (rc == OMNIQ_OK && n > 1) {
    rc = omniq__fbatch_begin(fs, &batch, &batch_io, err, errlen);
    batch_io.held = &held;
  }
  if (rc == OMNIQ_OK) rc = stage_all(fs, n > 1 ? &batch_io : &fs->io, tasks, n, sl, err, errlen);
  omniq__fio_held_free(&held); /* closes what an error left unsynced */
  /* Locks keep claimers (and lookups) away until the batch is all in or all
   * out: a claimer takes the task lock before its rename. */
  if (rc == OMNIQ_OK) rc = omniq__flock_take_set(&fs->locks, ids, n, &set, &nset, err, errlen);
  if (rc == OMNIQ_OK) {
    rc = check_new(fs, sl, ids, n, err, errlen);
    if (rc == OMNIQ_OK) rc = mark_all(fs, sl, n, err, errlen);
    int marked = rc == OMNIQ_OK;
    if (rc == OMNIQ_OK && n > 1) rc = omniq__fbatch_commit(fs, &batch, err, errlen);
    if (rc == OMNIQ_OK) rc = place_all(fs, n > 1 ? batch.fd : fs->tmp_fd, sl, n, err, errlen);
    if (rc != OMNIQ_OK && batch.committed) {
      omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.incomplete", NULL,
                 "batch of %zu enqueued, publishing it failed (finished by recovery): %s", n, err);
      rc = OMNIQ_OK;
      err[0] = '\0';
    } else if (rc != OMNIQ_OK && marked) { /* nothing of it is enqueued */
      for (size_t i = 0; i < n; i++) take_back(fs, &sl[i]);
    }
    announce_placed(fs, sl, n);
    omniq__flock_release_set(&fs->locks, set, nset);
  }
  if (keyed > 0) omniq__fkeys_release(fs, kset, nk);
  if (n > 1) {
    omniq__fbatch_end(fs, &batch);
  } else if (sl != NULL && sl[0].staged) {
    omniq__fio_unstage(&fs->io, sl[0].tmp);
  }
  omniq__free(sl);
  omniq__free(ids);
  return rc;
}

static int enqueue_file(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                        size_t errlen) {
  return enqueue_unique_file(backend, tasks, n, NULL, err, errlen);
}

/* Processes sharing base_dir share "<base_dir>/wake"; the library maps it
 * and bumps it after its commits (core/wake.c), this backend never writes
 * it. Opening leaves unknown entries of base_dir alone, so the file needs
 * no FORMAT change. */
static int wake_path_file(void *backend, char *path, size_t len) {
  const omniq__fs_t *fs = backend;
  int n = snprintf(path, len, "%s/wake", fs->settings.base_dir);
  return n > 0 && (size_t)n < len ? OMNIQ_OK : OMNIQ_ENOTSUP;
}

const omniq_storage_ops_t omniq__file_ops = {
    .abi_version = OMNIQ_STORAGE_ABI,
    .name = "file",
    .open = open_file,
    .close = close_file,
    .enqueue = enqueue_file,
    .claim = omniq__fs_claim,
    .finish = omniq__fs_finish,
    .extend_lease = omniq__fs_extend_lease,
    .cancel = omniq__fs_cancel,
    .get_task = omniq__fs_get_task,
    .get_result = omniq__fs_get_result,
    .purge_results = omniq__fs_purge_results,
    .count_by_status = omniq__fs_count_by_status,
    .expired_leases = omniq__fs_expired_leases,
    .enqueue_unique = enqueue_unique_file,
    .list = omniq__fs_list,
    .retry = omniq__fs_retry,
    .delete_task = omniq__fs_delete,
    .purge_tasks = omniq__fs_purge_tasks,
    .set_paused = omniq__fs_set_paused,
    .set_rate = omniq__fs_set_rate,
    .queue_stats = omniq__fs_queue_stats,
    .claim_chore = omniq__fs_claim_chore,
    .wake_path = wake_path_file,
    .finish_claim = omniq__fs_finish_claim,
    .finish_many = omniq__fs_finish_many,
    .release = omniq__fs_release,
};
