/* SPDX-License-Identifier: MIT */
/* File backend queries and the pass over queue/running/: get_task,
 * get_result, purge_results, count_by_status, expired_leases, and the
 * recovery run at open.
 *
 * Reads need no lock to see whole files (every write is an atomic rename);
 * they take the task lock where a decision depends on two reads agreeing:
 * where a task is (it may move between folders), whether a result is
 * still old enough to purge, whether a writer is gone. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/batch.h"
#include "storage/file/names.h"
#include "storage/file/record.h"

/* Calls fn for every entry of dirfd but "." and ".."; stops when it
 * returns non-zero and returns that. */
int omniq__fs_each(omniq__fs_t *fs, int dirfd, omniq__fs_entry_fn fn, void *ud) {
  int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = 0;
  DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
  struct dirent *de;
  if (d == NULL) {
    if (fd >= 0) close(fd);
    return omniq__errno_code(errno);
  }
  while (rc == 0 && (de = readdir(d)) != NULL)
    if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
      rc = fn(fs, dirfd, de->d_name, ud);
  closedir(d);
  return rc;
}

typedef struct {
  int64_t now;
  int collect;        /* 0: recovery only */
  size_t n, cap;
  omniq_task_t **out; /* every expired lease found, in folder order */
} running_scan_t;

/* One file of running/: collects an expired lease, finishes an interrupted
 * transition, quarantines what cannot be read. */
static int running_entry(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  running_scan_t *rs = ud;
  char id[OMNIQ_ID_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t;
  if (omniq__fname_id_parse(name, id) != OMNIQ_OK) {
    omniq__fio_quarantine(&fs->io, dirfd, "queue/running", name, "not a task file name");
    return 0;
  }
  int rc = omniq__frec_read(dirfd, name, id, &t, NULL, e, sizeof e);
  if (rc == OMNIQ_OK && t->status == OMNIQ_RUNNING) {
    if (rs->collect && t->lease_until_ms < rs->now) {
      if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        omniq_task_t **bigger = omniq__realloc(rs->out, cap * sizeof *bigger);
        if (bigger == NULL) {
          omniq_task_free(t);
          return OMNIQ_ENOMEM;
        }
        rs->out = bigger;
        rs->cap = cap;
      }
      rs->out[rs->n++] = t;
      return 0;
    }
    omniq_task_free(t);
    return 0;
  }
  omniq_task_free(t);
  if (rc == OMNIQ_ENOTFOUND) return 0;
  /* Not RUNNING, or unreadable: only the lock holder may decide that its
   * writer is gone. A busy lock means the writer is alive and finishing. */
  if (omniq__flock_try(&fs->locks, id)) {
    omniq__fs_roll_forward(fs, id, name, e, sizeof e);
    omniq__flock_release(&fs->locks, id);
  }
  return 0;
}

void omniq__fs_recover(omniq__fs_t *fs) {
  running_scan_t rs = {0, 0, 0, 0, NULL};
  omniq__fbatch_recover(fs);
  omniq__fs_each(fs, fs->running_fd, running_entry, &rs);
}

static int bad_id(const char *id, char *err, size_t errlen) {
  if (omniq_id_valid(id)) return 0;
  snprintf(err, errlen, "file store: not a task id");
  return 1;
}

int omniq__fs_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                         size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq__fs_at_t at;
  omniq__pending_t p;
  char idname[OMNIQ__IDNAME_SIZE];
  *out = NULL;
  if (bad_id(id, err, errlen)) return OMNIQ_EINVAL;
  omniq__fname_id(id, idname);
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, idname, &at, &p, out, err, errlen);
  omniq__flock_release(&fs->locks, id);
  if (rc == OMNIQ_OK && at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  }
  return rc;
}

int omniq__fs_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                           size_t errlen) {
  omniq__fs_t *fs = backend;
  char idname[OMNIQ__IDNAME_SIZE], *text = NULL;
  *out = NULL;
  if (bad_id(id, err, errlen)) return OMNIQ_EINVAL;
  omniq__fname_id(id, idname);
  int rc = omniq__fio_read(fs->results_fd, idname, &text, NULL, err, errlen);
  /* A transition that committed (its result embedded in the slot) but could
   * not write results/ (out of memory, a full disk) told its caller OMNIQ_OK:
   * finish it here, or the result stays invisible until some recovery runs
   * and a waiting caller waits in vain. A slot holding a live run is read
   * and left alone. */
  if (rc == OMNIQ_ENOTFOUND && faccessat(fs->running_fd, idname, F_OK, AT_SYMLINK_NOFOLLOW) == 0 &&
      omniq__flock_take(&fs->locks, id, err, errlen) == OMNIQ_OK) {
    rc = omniq__fs_roll_forward(fs, id, idname, err, errlen);
    omniq__flock_release(&fs->locks, id);
    if (rc != OMNIQ_OK) return rc;
    rc = omniq__fio_read(fs->results_fd, idname, &text, NULL, err, errlen);
  }
  if (rc == OMNIQ_ENOTFOUND) snprintf(err, errlen, "no result for %s", id);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq_result_from_json(text, out);
  omniq__free(text);
  if (rc == OMNIQ_OK && strcmp((*out)->task_id, id) == 0) return OMNIQ_OK;
  if (rc == OMNIQ_ENOMEM) return rc;
  omniq_result_free(*out);
  *out = NULL;
  if (omniq__flock_take(&fs->locks, id, err, errlen) == OMNIQ_OK) {
    omniq__fio_quarantine(&fs->io, fs->results_fd, "results", idname, "not a result record");
    omniq__flock_release(&fs->locks, id);
  }
  snprintf(err, errlen, "file store: results/%s was not a result record (quarantined)", idname);
  return OMNIQ_ECORRUPT;
}

typedef struct {
  int64_t older_than, count;
} purge_t;

static int purge_entry(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  purge_t *pg = ud;
  char id[OMNIQ_ID_SIZE], e[OMNIQ__ERRMSG_MAX];
  if (omniq__fname_id_parse(name, id) != OMNIQ_OK) {
    omniq__fio_quarantine(&fs->io, dirfd, "results", name, "not a result file name");
    return 0;
  }
  /* Under the task lock, so a result written meanwhile is never deleted
   * on the strength of the old one's time. */
  if (omniq__flock_take(&fs->locks, id, e, sizeof e) != OMNIQ_OK) return 0;
  omniq_result_t *r = NULL;
  char *text = NULL;
  if (omniq__fio_read(dirfd, name, &text, NULL, e, sizeof e) == OMNIQ_OK) {
    if (omniq_result_from_json(text, &r) != OMNIQ_OK)
      omniq__fio_quarantine(&fs->io, dirfd, "results", name, "not a result record");
    else if (r->finished_at_ms < pg->older_than && unlinkat(dirfd, name, 0) == 0)
      pg->count++;
  }
  omniq__flock_release(&fs->locks, id);
  omniq__free(text);
  omniq_result_free(r);
  return 0;
}

int omniq__fs_purge_results(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                              size_t errlen) {
  omniq__fs_t *fs = backend;
  purge_t pg = {older_than_ms, 0};
  int rc = omniq__fs_each(fs, fs->results_fd, purge_entry, &pg);
  if (rc == OMNIQ_OK && pg.count > 0) rc = omniq__fio_sync_dir(&fs->io, fs->results_fd, err, errlen);
  if (count != NULL) *count = pg.count;
  return rc;
}

static int count_entry(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  char id[OMNIQ_ID_SIZE];
  (void)fs;
  (void)dirfd;
  if (omniq__fname_id_parse(name, id) == OMNIQ_OK) (*(int64_t *)ud)++;
  return 0;
}

int omniq__fs_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                                size_t errlen) {
  omniq__fs_t *fs = backend;
  memset(counts, 0, OMNIQ_STATUS_COUNT * sizeof counts[0]);
  /* A folder that cannot be listed fails the count: a smaller number would
   * be a wrong answer given as a right one. */
  int rc = omniq__fidx_count(fs->idx, &counts[OMNIQ_PENDING], err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_each(fs, fs->running_fd, count_entry, &counts[OMNIQ_RUNNING]);
  for (int k = 0; k < OMNIQ__FS_NDONE && rc == OMNIQ_OK; k++)
    rc = omniq__fs_each(fs, fs->done_fd[k], count_entry, &counts[OMNIQ_SUCCESS + k]);
  if (rc != OMNIQ_OK) {
    snprintf(err, errlen, "file store: listing queue/running and the terminal folders: %s",
             omniq_strerror(rc));
    memset(counts, 0, OMNIQ_STATUS_COUNT * sizeof counts[0]);
  }
  return rc;
}

/* Most overdue first, so a capped call takes the oldest leases. */
static int cmp_lease(const void *a, const void *b) {
  const omniq_task_t *x = *(const omniq_task_t *const *)a, *y = *(const omniq_task_t *const *)b;
  if (x->lease_until_ms != y->lease_until_ms) return x->lease_until_ms < y->lease_until_ms ? -1 : 1;
  return strcmp(x->id, y->id);
}

int omniq__fs_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                               size_t *n, char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  running_scan_t rs = {now_ms, 1, 0, 0, NULL};
  *out = NULL;
  *n = 0;
  if (max == 0) return OMNIQ_OK;
  omniq__fbatch_recover(fs); /* batches a dead producer committed: about once a second too */
  int rc = omniq__fs_each(fs, fs->running_fd, running_entry, &rs);
  if (rc != OMNIQ_OK || rs.n == 0) {
    omniq__tasks_free(rs.out, rs.n);
    if (rc != OMNIQ_OK) snprintf(err, errlen, "file store: listing queue/running failed");
    return rc;
  }
  qsort(rs.out, rs.n, sizeof *rs.out, cmp_lease);
  for (size_t i = max; i < rs.n; i++) omniq_task_free(rs.out[i]);
  *out = rs.out;
  *n = rs.n < max ? rs.n : max;
  return OMNIQ_OK;
}

