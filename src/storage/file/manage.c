/* SPDX-License-Identifier: MIT */
/* File backend: retry by hand, delete, retention and queue statistics
 * (storage ABI 3).
 *
 * A retry by hand is a transition like the others (transitions.c): under
 * the task's lock, the new PENDING state is written to the task's slot
 * (the commit point), then the terminal file is removed and the slot moves
 * to pending/. A crash in between leaves a PENDING slot beside the old
 * terminal file; its roll-forward removes the copy before moving, so the
 * task is never found in two places for long, and the slot, which every
 * lookup reads first, is the truth meanwhile. When the task has a unique
 * key, the key's lock is taken first (keys.c) and held through it.
 *
 * A delete removes the result, the marker and then the task file, under
 * the task's lock: a crash leaves a terminal task without its result,
 * which the next delete or retention finishes, never a result without a
 * task. Retention walks the finish-time tree of the index (marks.c),
 * earliest first, and stops at the cutoff: a pass reads only the tasks it
 * removes.
 *
 * Statistics read names, not tasks, where they can: pending counts and the
 * oldest due eta from the pending folders' names, terminal counts from the
 * index's marker names, running tasks from their (few) files. */
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
#include "storage/file/keys.h"
#include "storage/file/marks.h"
#include "storage/file/queues.h"
#include "storage/file/record.h"
#include "storage/file/totals.h"

/* Reads task id under its lock (a copy, yours). */
static int read_task(omniq__fs_t *fs, const char *id, omniq__fs_at_t *at, omniq_task_t **t,
                     char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq__pending_t p;
  omniq__fname_id(id, idname);
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, idname, at, &p, t, err, errlen);
  omniq__flock_release(&fs->locks, id);
  if (rc == OMNIQ_OK && *at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  }
  return rc;
}

/* ---- retry by hand ---------------------------------------------------------- */

/* The transition itself, under the task's lock. */
static int retry_locked(omniq__fs_t *fs, const char *id, int64_t eta, int *prev, char *err,
                        size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq__fs_at_t at;
  omniq__pending_t p;
  omniq_task_t *t = NULL;
  omniq__fname_id(id, idname);
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, idname, &at, &p, &t, err, errlen);
  if (rc == OMNIQ_OK && at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  } else if (rc == OMNIQ_OK) {
    *prev = t->status;
    if (t->status != OMNIQ_FAILED && t->status != OMNIQ_CANCELLED) {
      snprintf(err, errlen, "task %s is %s", id, omniq_status_name(t->status));
      rc = OMNIQ_ESTATE;
    }
  }
  if (rc == OMNIQ_OK) {
    int64_t finished = t->finished_at_ms;
    char qdir[OMNIQ__QDIR_SIZE];
    t->status = OMNIQ_PENDING;
    t->attempts = 0;
    t->crashes = 0;
    t->finished_at_ms = 0;
    t->lease_until_ms = 0;
    t->eta_ms = eta;
    rc = omniq__fs_commit(fs, t, idname, NULL, -1, *prev, -1, err, errlen);
    /* After the commit: a crash before this leaves a stale finish-time
     * marker, which retention checks against the task and drops. */
    if (rc == OMNIQ_OK && omniq__fname_qdir(t->queue, qdir) == OMNIQ_OK)
      omniq__fmark_untimed(fs, t->id, qdir, finished);
  }
  omniq__flock_release(&fs->locks, id);
  omniq_task_free(t);
  return rc;
}

int omniq__fs_retry(void *backend, const char *id, int64_t eta_ms, int64_t now_ms,
                    int *prev_status, char holder[OMNIQ_ID_SIZE], char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  omniq__fs_at_t at;
  omniq_task_t *t = NULL;
  char who[OMNIQ_ID_SIZE] = "";
  int prev = -1;
  if (!omniq_id_valid(id)) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  int rc = read_task(fs, id, &at, &t, err, errlen);
  if (rc == OMNIQ_OK) prev = t->status;
  if (rc == OMNIQ_OK && prev != OMNIQ_FAILED && prev != OMNIQ_CANCELLED) {
    snprintf(err, errlen, "task %s is %s", id, omniq_status_name(prev));
    rc = OMNIQ_ESTATE;
  }
  if (rc == OMNIQ_OK && t->unique_key == NULL) rc = retry_locked(fs, id, eta_ms, &prev, err, errlen);
  else if (rc == OMNIQ_OK) {
    uint16_t *set = NULL;
    size_t nset = 0;
    rc = omniq__fkeys_lock(fs, &t, 1, &set, &nset, err, errlen);
    if (rc == OMNIQ_OK) {
      rc = omniq__fkeys_take_for(fs, t, now_ms, who, err, errlen);
      if (rc == OMNIQ_OK) rc = retry_locked(fs, id, eta_ms, &prev, err, errlen);
      omniq__fkeys_release(fs, set, nset);
    }
  }
  omniq_task_free(t);
  if (prev_status != NULL) *prev_status = prev;
  if (holder != NULL) memcpy(holder, who, OMNIQ_ID_SIZE);
  return rc;
}

/* ---- delete and retention ---------------------------------------------------- */

/* Removes terminal task id, whose lock is held and which locate found at
 * `at` as t. */
static int remove_locked(omniq__fs_t *fs, const omniq_task_t *t, const char *idname, char *err,
                         size_t errlen) {
  char qdir[OMNIQ__QDIR_SIZE];
  int k = t->status - OMNIQ_SUCCESS;
  if (k < 0 || k >= (int)(sizeof fs->done_fd / sizeof fs->done_fd[0])) {
    /* Found among the finished, but its record says otherwise: a damaged
     * file, left as it is. */
    snprintf(err, errlen, "file store: task %s is in a finished folder but its record says %s",
             t->id, omniq_status_name(t->status));
    return OMNIQ_ECORRUPT;
  }
  if (unlinkat(fs->results_fd, idname, 0) != 0 && errno != ENOENT)
    return omniq__fio_errno(errno, err, errlen, "file store: deleting results/%s", idname);
  /* The result's removal is on the disk before the task's: folders are
   * not assumed to reach the disk in the order they were changed, and a
   * power loss must never leave a result without its task. */
  int rc = omniq__fio_sync_dir(&fs->io, fs->results_fd, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  if (omniq__fname_qdir(t->queue, qdir) == OMNIQ_OK) {
    omniq__fmark_drop(fs, t->id, qdir);
    omniq__fmark_untimed(fs, t->id, qdir, t->finished_at_ms);
  }
  if (unlinkat(fs->done_fd[k], idname, 0) != 0 && errno != ENOENT)
    return omniq__fio_errno(errno, err, errlen, "file store: deleting queue/%s/%s",
                            omniq__fname_done[k], idname);
  return omniq__fio_sync_dir(&fs->io, fs->done_fd[k], err, errlen);
}

/* Deletes a terminal task if keep(t) says it may go; *gone says whether it
 * went. The key is forgotten after the task's lock is let go (key locks
 * come first in the lock order). */
typedef int (*may_go_fn)(const omniq_task_t *t, int64_t arg);

static int delete_if(omniq__fs_t *fs, const char *id, may_go_fn may_go, int64_t arg, int *prev,
                     int *gone, char *err, size_t errlen) {
  char idname[OMNIQ__IDNAME_SIZE];
  omniq__fs_at_t at;
  omniq__pending_t p;
  omniq_task_t *t = NULL;
  *gone = 0;
  omniq__fname_id(id, idname);
  int rc = omniq__flock_take(&fs->locks, id, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, idname, &at, &p, &t, err, errlen);
  if (rc == OMNIQ_OK && at == OMNIQ__AT_NONE) {
    snprintf(err, errlen, "no task %s", id);
    rc = OMNIQ_ENOTFOUND;
  } else if (rc == OMNIQ_OK) {
    if (prev != NULL) *prev = t->status;
    if (at != OMNIQ__AT_DONE) {
      snprintf(err, errlen, "task %s is %s", id, omniq_status_name(t->status));
      rc = OMNIQ_ESTATE;
    } else if (may_go(t, arg)) {
      rc = remove_locked(fs, t, idname, err, errlen);
      *gone = rc == OMNIQ_OK;
    }
  }
  omniq__flock_release(&fs->locks, id);
  if (*gone && t->unique_key != NULL) omniq__fkeys_forget(fs, id, t->queue, t->unique_key);
  omniq_task_free(t);
  return rc;
}

static int always(const omniq_task_t *t, int64_t arg) {
  (void)t, (void)arg;
  return 1;
}

static int finished_before(const omniq_task_t *t, int64_t before) {
  return t->finished_at_ms < before;
}

int omniq__fs_delete(void *backend, const char *id, int *prev_status, char *err, size_t errlen) {
  int gone = 0, prev = -1;
  if (!omniq_id_valid(id)) {
    snprintf(err, errlen, "file store: not a task id");
    return OMNIQ_EINVAL;
  }
  int rc = delete_if(backend, id, always, 0, &prev, &gone, err, errlen);
  if (prev_status != NULL) *prev_status = prev;
  return rc;
}

typedef struct purge {
  int64_t before;
  size_t max;
  int64_t count;
  char *err;
  size_t errlen;
} purge_t;

/* One finish-time marker: the task goes if it is still the finished task
 * the marker says; a marker whose task has gone or been retried is
 * dropped. */
static int purge_one(omniq__fs_t *fs, const char *id, const char *qdir, int64_t finished,
                     void *ud) {
  purge_t *pg = ud;
  int gone = 0, prev = -1;
  if (finished >= pg->before) return 1; /* finished at the cutoff or later: none further */
  int rc = delete_if(fs, id, finished_before, pg->before, &prev, &gone, pg->err, pg->errlen);
  if (rc != OMNIQ_OK && rc != OMNIQ_ESTATE && rc != OMNIQ_ENOTFOUND) return rc;
  if (!gone) omniq__fmark_untimed(fs, id, qdir, finished); /* stale */
  pg->count += gone;
  return (size_t)pg->count >= pg->max ? 1 : 0;
}

int omniq__fs_purge_tasks(void *backend, int64_t before_ms, size_t max, int64_t *count,
                          char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  purge_t pg = {before_ms, max, 0, err, errlen};
  *count = 0;
  int rc = max > 0 ? omniq__fmark_walk_finished(fs, purge_one, &pg) : OMNIQ_OK;
  *count = pg.count;
  if (rc == OMNIQ_OK) err[0] = '\0';
  return rc;
}

/* ---- statistics ------------------------------------------------------------- */

typedef struct stats {
  const char *queue; /* NULL = every queue */
  char qdir[OMNIQ__QDIR_SIZE];
  int64_t now;
  omniq_queue_info_t *q;
  size_t n, cap;
  int oom;
} stats_t;

/* The record of queue folder qdir; NULL when it is filtered out or out of
 * memory (s->oom). */
static omniq_queue_info_t *record_of(stats_t *s, const char *qdir) {
  char name[OMNIQ_NAME_MAX];
  if (s->queue != NULL && strcmp(qdir, s->qdir) != 0) return NULL;
  if (omniq__fname_qdir_decode(qdir, name, sizeof name) != OMNIQ_OK) return NULL;
  for (size_t i = 0; i < s->n; i++)
    if (strcmp(s->q[i].name, name) == 0) return &s->q[i];
  if (s->n == s->cap) {
    size_t cap = s->cap ? s->cap * 2 : 8;
    omniq_queue_info_t *v = realloc(s->q, cap * sizeof *v);
    if (v == NULL) {
      s->oom = 1;
      return NULL;
    }
    s->q = v;
    s->cap = cap;
  }
  omniq_queue_info_t *r = &s->q[s->n++];
  memset(r, 0, sizeof *r);
  memcpy(r->name, name, strlen(name) + 1);
  return r;
}

static int count_pending(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  omniq_queue_info_t *r = ud;
  char id[OMNIQ_ID_SIZE];
  uint32_t iprio;
  int64_t eta;
  (void)fs, (void)dirfd;
  if (omniq__fname_pending_parse(name, &iprio, &eta, id) != OMNIQ_OK) return 0;
  r->counts[OMNIQ_PENDING]++;
  if (eta <= r->as_of_ms && (r->oldest_due_eta_ms == 0 || eta < r->oldest_due_eta_ms))
    r->oldest_due_eta_ms = eta;
  return 0;
}

static int pending_folder(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  stats_t *s = ud;
  if (!omniq__fname_qdir_valid(name, strlen(name))) return 0;
  omniq_queue_info_t *r = record_of(s, name);
  if (r == NULL) return 0;
  int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return 0;
  r->as_of_ms = s->now; /* count_pending compares etas with it; cleared below */
  omniq__fs_each(fs, fd, count_pending, r);
  r->as_of_ms = 0;
  close(fd);
  return 0;
}

static int running_file(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  stats_t *s = ud;
  char id[OMNIQ_ID_SIZE], qdir[OMNIQ__QDIR_SIZE], e[OMNIQ__ERRMSG_MAX];
  omniq_task_t *t = NULL;
  if (omniq__fname_id_parse(name, id) != OMNIQ_OK) return 0;
  if (omniq__frec_read(dirfd, name, id, &t, NULL, e, sizeof e) == OMNIQ_OK &&
      t->status == OMNIQ_RUNNING && omniq__fname_qdir(t->queue, qdir) == OMNIQ_OK) {
    omniq_queue_info_t *r = record_of(s, qdir);
    if (r != NULL) r->counts[OMNIQ_RUNNING]++;
  }
  omniq_task_free(t);
  (void)fs;
  return 0;
}

typedef struct terminal {
  stats_t *s;
  int status;
} terminal_t;

static int terminal_mark(omniq__fs_t *fs, const char *id, const char *qdir, void *ud) {
  terminal_t *tm = ud;
  omniq_queue_info_t *r = record_of(tm->s, qdir);
  (void)fs, (void)id;
  if (r != NULL) r->counts[tm->status]++;
  return tm->s->oom ? OMNIQ_ENOMEM : 0;
}

static void add_totals(const char *qdir, const int64_t runs[OMNIQ_RUNS_KINDS], void *ud) {
  omniq_queue_info_t *r = record_of(ud, qdir);
  for (int k = 0; r != NULL && k < OMNIQ_RUNS_KINDS; k++) r->runs[k] += runs[k];
}

static int add_settings(omniq__fs_t *fs, const char *qdir, const omniq__fqset_t *set, void *ud) {
  omniq_queue_info_t *r = record_of(ud, qdir);
  (void)fs;
  if (r != NULL) {
    r->paused = set->paused;
    r->rate_limit = set->rate_limit;
    r->rate_period_ms = set->rate_period_ms;
  }
  return 0;
}

static int by_name(const void *x, const void *y) {
  return strcmp(((const omniq_queue_info_t *)x)->name, ((const omniq_queue_info_t *)y)->name);
}

int omniq__fs_queue_stats(void *backend, const char *queue, int64_t now_ms,
                          omniq_queue_info_t **out, size_t *n, char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  stats_t s;
  int rc = OMNIQ_OK;
  *out = NULL;
  *n = 0;
  memset(&s, 0, sizeof s);
  s.queue = queue;
  s.now = now_ms;
  if (queue != NULL && (omniq__fname_qdir(queue, s.qdir) != OMNIQ_OK ||
                        strlen(queue) >= OMNIQ_NAME_MAX || record_of(&s, s.qdir) == NULL)) {
    free(s.q);
    snprintf(err, errlen, "file store: queue_stats: bad queue name");
    return OMNIQ_EINVAL;
  }
  omniq__fs_each(fs, fs->pending_fd, pending_folder, &s);
  omniq__fs_each(fs, fs->running_fd, running_file, &s);
  for (int st = OMNIQ_SUCCESS; rc == OMNIQ_OK && st <= OMNIQ_CANCELLED; st++) {
    terminal_t tm = {&s, st};
    rc = omniq__fmark_walk(fs, st, NULL, 0, terminal_mark, &tm);
  }
  if (rc == OMNIQ_OK) rc = omniq__ftotals_each(fs, add_totals, &s);
  if (rc == OMNIQ_OK) rc = omniq__fq_each(fs, add_settings, &s);
  if (rc == OMNIQ_OK && s.oom) rc = OMNIQ_ENOMEM;
  if (rc != OMNIQ_OK || s.n == 0) {
    free(s.q);
    if (rc != OMNIQ_OK) snprintf(err, errlen, "file store: queue_stats: %s", omniq_strerror(rc));
    return rc;
  }
  if (s.n > 1) qsort(s.q, s.n, sizeof *s.q, by_name);
  *out = s.q;
  *n = s.n;
  return OMNIQ_OK;
}
