/* SPDX-License-Identifier: MIT */
/* Batches: enqueue of many tasks, all or none, whatever stops the producer.
 *
 * Renaming n files into pending/ one by one is n steps; a producer killed
 * between two of them used to leave part of its batch. So a batch is made
 * one folder that becomes real in one rename:
 *
 *   1. stage: every task file is written (and synced) into tmp/<name>/;
 *   2. the task locks of all its ids are taken (omniq__flock_take_set);
 *   3. commit: tmp/<name> is renamed to batches/<name> and batches/ synced.
 *      Before this the batch is nothing (a stale tmp folder, removed at a
 *      later open); after it, every task of it exists;
 *   4. publish: each file is renamed from the batch folder into
 *      pending/<q>/ (backend.c, place_all), then the empty folder removed;
 *   5. the locks are released.
 *
 * A producer that dies between 3 and 5 leaves files in batches/<name>.
 * Recovery (at open, and with each pass over expired leases, about once a
 * second while a worker claims) lists batches/, reads every file left in a
 * batch, takes the locks of their ids (waiting: a live producer holds them
 * from before its commit to after its last rename, so getting them proves
 * it is gone or done) and publishes whatever is still there. A file that
 * does not read as a PENDING task is quarantined. Renames are idempotent
 * here: a file already published is simply not found.
 *
 * A live producer whose publish fails after the commit (a descriptor limit,
 * an I/O error) has still enqueued the batch: it returns OMNIQ_OK and leaves
 * the rest to recovery, as a transition that committed does
 * (transitions.c).
 *
 * Listing markers (marks.c) are made before the commit, like every
 * enqueue's; recovery makes them again (idempotent) before publishing, as
 * a listing that met a marker while its task sat here may have dropped it. */
#include "storage/file/batch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "storage/file/marks.h"

static _Atomic unsigned long batch_counter;
static _Atomic long crash_countdown;

void omniq__fbatch_crash_after(long n) { atomic_store(&crash_countdown, n); }

void omniq__fbatch_step(void) {
  if (atomic_load(&crash_countdown) > 0 && atomic_fetch_sub(&crash_countdown, 1) == 1)
    raise(SIGKILL);
}

/* Skips a run of 1 to 20 digits; NULL if there is none. */
static const char *digits(const char *p) {
  const char *start = p;
  while (*p >= '0' && *p <= '9' && p - start < 20) p++;
  return p > start ? p : NULL;
}

/* "batch-<owner>-<n>" (or "batch-<pid>-<n>" of an older version), exactly:
 * the only names recovery opens in batches/. */
static int batch_name_valid(const char *name) {
  const char *p = strncmp(name, "batch-", 6) == 0 ? digits(name + 6) : NULL;
  p = p != NULL && *p == '-' ? digits(p + 1) : NULL;
  return p != NULL && *p == '\0';
}

int omniq__fbatch_begin(omniq__fs_t *fs, omniq__fbatch_t *b, omniq__fio_t *io, char *err,
                        size_t errlen) {
  b->fd = -1;
  b->committed = 0;
  for (int tries = 0; b->fd < 0 && tries < 100; tries++) {
    snprintf(b->name, sizeof b->name, "batch-%llu-%lu", fs->io.owner,
             atomic_fetch_add(&batch_counter, 1));
    if (mkdirat(fs->tmp_fd, b->name, 0777) != 0) {
      if (errno == EEXIST) continue; /* a dead handle that drew our number left it */
      return omniq__fio_errno(errno, err, errlen, "file store: creating tmp/%s", b->name);
    }
    b->fd = openat(fs->tmp_fd, b->name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (b->fd < 0) {
      int e = errno;
      unlinkat(fs->tmp_fd, b->name, AT_REMOVEDIR);
      return omniq__fio_errno(e, err, errlen, "file store: opening tmp/%s", b->name);
    }
  }
  if (b->fd < 0) return omniq__fio_errno(EEXIST, err, errlen, "file store: creating a batch");
  *io = fs->io;
  io->tmp_fd = b->fd;
  /* Spares live in tmp/, not in this folder, and their sync epochs count
   * syncs of tmp/: writes here make new files. */
  io->spares = NULL;
  return OMNIQ_OK;
}

int omniq__fbatch_commit(omniq__fs_t *fs, omniq__fbatch_t *b, char *err, size_t errlen) {
  int rc = omniq__fio_sync_dir(&fs->io, b->fd, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  omniq__fbatch_step();
  if (renameat(fs->tmp_fd, b->name, fs->batches_fd, b->name) != 0)
    return omniq__fio_errno(errno, err, errlen, "file store: committing batch %s", b->name);
  b->committed = 1;
  omniq__fbatch_step();
  /* Committed: a failed sync is a durability problem to report, not a
   * reason to undo what other processes may already see. */
  if (omniq__fio_sync_dir(&fs->io, fs->batches_fd, err, errlen) != OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.sync", NULL, "%s", err);
  err[0] = '\0';
  return OMNIQ_OK;
}

void omniq__fbatch_end(omniq__fs_t *fs, omniq__fbatch_t *b) {
  char e[8];
  if (b->fd < 0) return;
  if (!b->committed) {
    omniq__fio_empty_folder(b->fd);
    unlinkat(fs->tmp_fd, b->name, AT_REMOVEDIR);
  } else {
    omniq__fbatch_step();
    /* ENOTEMPTY: a publish failed part-way; recovery finishes it. */
    if (unlinkat(fs->batches_fd, b->name, AT_REMOVEDIR) == 0)
      omniq__fio_sync_dir(&fs->io, fs->batches_fd, e, sizeof e);
  }
  close(b->fd);
  b->fd = -1;
}

/* ---- recovery -------------------------------------------------------------- */

typedef struct {
  char name[256];
  omniq_task_t *t;
} left_t;

/* Reads what a batch folder holds; unreadable files are quarantined. */
static int read_left(omniq__fs_t *fs, int bfd, const char *bname, left_t **out, size_t *n) {
  int lfd = openat(bfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
  struct dirent *de;
  size_t cap = 0;
  char from[OMNIQ__BATCH_NAME_SIZE + 16], e[OMNIQ__ERRMSG_MAX];
  *out = NULL;
  *n = 0;
  if (d == NULL) {
    if (lfd >= 0) close(lfd);
    return OMNIQ_EIO;
  }
  snprintf(from, sizeof from, "batches/%s", bname);
  while ((de = readdir(d)) != NULL) {
    char *text = NULL;
    omniq_task_t *t = NULL;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (strlen(de->d_name) >= sizeof((left_t *)0)->name) continue;
    int rc = omniq__fio_read(bfd, de->d_name, &text, NULL, e, sizeof e);
    if (rc == OMNIQ_OK) rc = omniq_task_from_json(text, &t);
    omniq__free(text);
    if (rc == OMNIQ_OK && t->status != OMNIQ_PENDING) rc = OMNIQ_ESERIALIZE;
    if (rc != OMNIQ_OK) {
      omniq_task_free(t);
      /* Gone (published meanwhile) or unreadable for now (no memory, no
       * descriptor): left for the next pass. Only what is not a task moves. */
      if (rc == OMNIQ_ESERIALIZE || rc == OMNIQ_ECORRUPT)
        omniq__fio_quarantine(&fs->io, bfd, from, de->d_name, "not a pending task record");
      continue;
    }
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      left_t *bigger = omniq__realloc(*out, cap * sizeof *bigger);
      if (bigger == NULL) {
        omniq_task_free(t);
        break;
      }
      *out = bigger;
    }
    snprintf((*out)[*n].name, sizeof (*out)[*n].name, "%s", de->d_name);
    (*out)[(*n)++].t = t;
  }
  closedir(d);
  return OMNIQ_OK;
}

/* Moves one left file into pending/ (locks held); 1 if it did. */
static int publish_left(omniq__fs_t *fs, int bfd, const char *bname, const left_t *l) {
  char qdir[OMNIQ__QDIR_SIZE], idname[OMNIQ__IDNAME_SIZE], e[OMNIQ__ERRMSG_MAX], from[64];
  omniq__pending_t p;
  int qfd;
  snprintf(from, sizeof from, "batches/%s", bname);
  omniq__fname_id(l->t->id, idname);
  if (omniq__fidx_find(fs->idx, l->t->id, 0, &p) == 1 ||
      omniq__fs_exists_outside_pending(fs, idname)) {
    omniq__fio_quarantine(&fs->io, bfd, from, l->name, "its task id is already in the queue");
    return 0;
  }
  int rc = omniq__fidx_queue(fs->idx, l->t->queue, 1, qdir, e, sizeof e);
  if (rc == OMNIQ_OK) {
    omniq__fidx_describe(fs->idx, qdir, l->t->priority, l->t->eta_ms, l->t->id, &p);
    rc = omniq__fidx_open_dir(fs->idx, qdir, &qfd, e, sizeof e);
  }
  if (rc == OMNIQ_EINVAL) {
    omniq__fio_quarantine(&fs->io, bfd, from, l->name, e);
    return 0;
  }
  int moved = 0;
  if (rc == OMNIQ_OK) {
    if (omniq__fmark_new(fs, l->t->id, qdir) != OMNIQ_OK) {
      rc = omniq__fio_errno(errno, e, sizeof e, "index/ for %s", l->t->id);
    } else if (renameat(bfd, l->name, qfd, p.name) != 0) {
      if (errno != ENOENT) rc = omniq__fio_errno(errno, e, sizeof e, "moving %s", l->name);
    } else {
      moved = 1;
      omniq__fidx_announce(fs->idx, &p, 1);
      rc = omniq__fio_sync_dir(&fs->io, qfd, e, sizeof e);
    }
    close(qfd);
  }
  if (rc != OMNIQ_OK)
    omniq__log(&fs->log, OMNIQ_LOG_ERROR, "storage.incomplete", l->t->id,
               "task of an interrupted batch not yet published (retried later): %s", e);
  return moved;
}

static void recover_one(omniq__fs_t *fs, const char *bname) {
  left_t *left = NULL;
  size_t n = 0, nset = 0;
  uint16_t *set = NULL;
  char e[OMNIQ__ERRMSG_MAX];
  int bfd = openat(fs->batches_fd, bname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (bfd < 0) return; /* gone: its producer finished it */
  if (read_left(fs, bfd, bname, &left, &n) != OMNIQ_OK) {
    close(bfd);
    return;
  }
  const char **ids = omniq__malloc((n ? n : 1) * sizeof *ids);
  for (size_t i = 0; ids != NULL && i < n; i++) ids[i] = left[i].t->id;
  if (ids != NULL && omniq__flock_take_set(&fs->locks, ids, n, &set, &nset, e, sizeof e) ==
                         OMNIQ_OK) {
    size_t published = 0;
    for (size_t i = 0; i < n; i++) published += (size_t)publish_left(fs, bfd, bname, &left[i]);
    if (unlinkat(fs->batches_fd, bname, AT_REMOVEDIR) == 0) {
      omniq__fio_sync_dir(&fs->io, fs->batches_fd, e, sizeof e);
      if (published > 0)
        omniq__log(&fs->log, OMNIQ_LOG_INFO, "storage.recovered", NULL,
                   "published the rest of an interrupted batch (%zu task(s))", published);
    }
    omniq__flock_release_set(&fs->locks, set, nset);
  }
  omniq__free(ids);
  for (size_t i = 0; i < n; i++) omniq_task_free(left[i].t);
  omniq__free(left);
  close(bfd);
}

void omniq__fbatch_recover(omniq__fs_t *fs) {
  int lfd = openat(fs->batches_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
  struct dirent *de;
  char (*names)[OMNIQ__BATCH_NAME_SIZE] = NULL;
  size_t n = 0, cap = 0;
  if (d == NULL) {
    if (lfd >= 0) close(lfd);
    return;
  }
  /* Names first: recovering changes the folder being listed. */
  while ((de = readdir(d)) != NULL) {
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    if (!batch_name_valid(de->d_name) || strlen(de->d_name) >= OMNIQ__BATCH_NAME_SIZE) {
      omniq__fio_quarantine(&fs->io, fs->batches_fd, "batches", de->d_name,
                            "not a batch folder name");
      continue;
    }
    if (n == cap) {
      cap = cap ? cap * 2 : 4;
      void *bigger = omniq__realloc(names, cap * sizeof *names);
      if (bigger == NULL) break;
      names = bigger;
    }
    memcpy(names[n++], de->d_name, strlen(de->d_name) + 1); /* length checked above */
  }
  closedir(d);
  for (size_t i = 0; i < n; i++) recover_one(fs, names[i]);
  omniq__free(names);
}
