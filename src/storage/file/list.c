/* SPDX-License-Identifier: MIT */
/* A page of a listing, on the file backend (storage ABI 3).
 *
 * For each tree of the listing index (marks.c) that holds a status of the
 * set, the walk yields ids in order from the cursor; a marker of
 * another queue is skipped by its name alone, and every other one is read
 * under its task's lock (omniq__fs_locate, which also finishes a
 * transition a dead process left), checked against the request, and kept.
 * The walk of a tree stops once it has `limit` tasks, so a page reads
 * the tasks it returns plus those the func and time filters turn away, and
 * the folders of the index on the way; the trees' tasks are merged by id
 * and cut to the page, as on SQLite. PENDING and RUNNING share a tree, so
 * a listing of one of them also reads (and skips) the other's tasks; there
 * are never more RUNNING tasks than workers. A listing of RUNNING tasks
 * alone reads running/ instead of the tree.
 *
 * A marker that disagrees with its task (the task is elsewhere, or gone)
 * is repaired on the spot under that lock, and the task is left to the
 * walk of its real status. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/marks.h"

typedef struct page {
  const omniq_list_req_t *req;
  char qdir[OMNIQ__QDIR_SIZE]; /* the queue filter as a folder name, or "" */
  int tree;                    /* the tree being walked (omniq__fmark_tree) */
  unsigned accept;             /* the statuses of that tree the request lists */
  size_t taken;                /* from this tree */
  omniq_task_t **tasks;
  size_t n, cap;
} page_t;

static int in_range(int64_t v, int64_t from, int64_t to) {
  return (from == 0 || v >= from) && (to == 0 || v < to);
}

static int matches(const omniq_list_req_t *req, const omniq_task_t *t) {
  if (req->func != NULL && strcmp(t->func, req->func) != 0) return 0;
  if (!in_range(t->created_at_ms, req->created_from_ms, req->created_to_ms)) return 0;
  if (req->finished_from_ms != 0 || req->finished_to_ms != 0)
    return t->finished_at_ms > 0 &&
           in_range(t->finished_at_ms, req->finished_from_ms, req->finished_to_ms);
  return 1;
}

/* Keeps t (taken over: freed on failure) in the page. */
static int take(page_t *pg, omniq_task_t *t) {
  if (pg->n == pg->cap) {
    size_t cap = pg->cap ? pg->cap * 2 : 64;
    omniq_task_t **v = omniq__realloc(pg->tasks, cap * sizeof *v);
    if (v == NULL) {
      omniq_task_free(t);
      return OMNIQ_ENOMEM;
    }
    pg->tasks = v;
    pg->cap = cap;
  }
  pg->tasks[pg->n++] = t;
  pg->taken++;
  return OMNIQ_OK;
}

/* One marker: the task as it is, or a repair of the marker. */
static int visit(omniq__fs_t *fs, const char *id, const char *qdir, void *ud) {
  page_t *pg = ud;
  char idname[OMNIQ__IDNAME_SIZE], err[OMNIQ__ERRMSG_MAX];
  omniq__fs_at_t at;
  omniq__pending_t p;
  omniq_task_t *t = NULL;
  if (pg->qdir[0] != '\0' && strcmp(qdir, pg->qdir) != 0) return 0;
  omniq__fname_id(id, idname);
  int rc = omniq__flock_take(&fs->locks, id, err, sizeof err);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__fs_locate(fs, id, idname, &at, &p, &t, err, sizeof err);
  char real[OMNIQ__QDIR_SIZE] = "";
  if (rc == OMNIQ_OK && at != OMNIQ__AT_NONE && omniq__fname_qdir(t->queue, real) != OMNIQ_OK)
    real[0] = '\0';
  if (rc == OMNIQ_OK && (at == OMNIQ__AT_NONE || real[0] == '\0')) {
    omniq__fmark_drop(fs, id, qdir); /* its task is gone (or unusable) */
  } else if (rc == OMNIQ_OK &&
             (omniq__fmark_tree(t->status) != pg->tree || strcmp(real, qdir) != 0)) {
    if (strcmp(real, qdir) != 0) omniq__fmark_drop(fs, id, qdir);
    omniq__fmark_set(fs, id, real, t->status, pg->tree);
  } else if (rc == OMNIQ_OK && (pg->accept & OMNIQ_STATUS_BIT(t->status)) &&
             matches(pg->req, t)) {
    rc = take(pg, t);
    t = NULL;
  }
  omniq__flock_release(&fs->locks, id);
  omniq_task_free(t);
  if (rc != OMNIQ_OK) return rc;
  return pg->taken >= pg->req->limit ? 1 : 0;
}

/* RUNNING tasks alone: they share tree 0 with every PENDING task, but
 * their files are the (few) ones in running/, so the page is read from
 * there, sorted by id, instead of walking every pending marker. */
typedef struct ids {
  char (*v)[OMNIQ_ID_SIZE];
  size_t n, cap;
} ids_t;

static int running_name(omniq__fs_t *fs, int dirfd, const char *name, void *ud) {
  ids_t *ids = ud;
  char id[OMNIQ_ID_SIZE];
  (void)fs, (void)dirfd;
  if (omniq__fname_id_parse(name, id) != OMNIQ_OK) return 0;
  if (ids->n == ids->cap) {
    size_t cap = ids->cap ? ids->cap * 2 : 64;
    char(*v)[OMNIQ_ID_SIZE] = omniq__realloc(ids->v, cap * sizeof *v);
    if (v == NULL) return OMNIQ_ENOMEM;
    ids->v = v;
    ids->cap = cap;
  }
  memcpy(ids->v[ids->n++], id, OMNIQ_ID_SIZE);
  return 0;
}

static int id_order(const void *x, const void *y) { return strcmp(x, y); }

static int running_page(omniq__fs_t *fs, page_t *pg) {
  ids_t ids = {NULL, 0, 0};
  const omniq_list_req_t *req = pg->req;
  int rc = omniq__fs_each(fs, fs->running_fd, running_name, &ids);
  if (rc == OMNIQ_OK && ids.n > 1) qsort(ids.v, ids.n, sizeof *ids.v, id_order);
  for (size_t k = 0; rc == OMNIQ_OK && k < ids.n; k++) {
    const char *id = ids.v[req->newest_first ? ids.n - 1 - k : k];
    if (req->after_id != NULL) {
      int c = strcmp(id, req->after_id);
      if (req->newest_first ? c >= 0 : c <= 0) continue;
    }
    char idname[OMNIQ__IDNAME_SIZE], err[OMNIQ__ERRMSG_MAX];
    omniq__fs_at_t at;
    omniq__pending_t p;
    omniq_task_t *t = NULL;
    omniq__fname_id(id, idname);
    if ((rc = omniq__flock_take(&fs->locks, id, err, sizeof err)) != OMNIQ_OK) break;
    rc = omniq__fs_locate(fs, id, idname, &at, &p, &t, err, sizeof err);
    omniq__flock_release(&fs->locks, id);
    if (rc == OMNIQ_OK && at == OMNIQ__AT_RUNNING &&
        (req->queue == NULL || strcmp(t->queue, req->queue) == 0) && matches(req, t)) {
      rc = take(pg, t);
      t = NULL;
      if (rc == OMNIQ_OK && pg->taken >= req->limit) break;
    }
    omniq_task_free(t);
  }
  omniq__free(ids.v);
  return rc;
}

static int ascending(const void *x, const void *y) {
  return strcmp((*(omniq_task_t *const *)x)->id, (*(omniq_task_t *const *)y)->id);
}

static int descending(const void *x, const void *y) { return ascending(y, x); }

int omniq__fs_list(void *backend, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n,
                   char *err, size_t errlen) {
  omniq__fs_t *fs = backend;
  page_t pg;
  int rc = OMNIQ_OK;
  *out = NULL;
  *n = 0;
  if (req == NULL || req->limit == 0 || req->statuses == 0 ||
      (req->after_id != NULL && !omniq_id_valid(req->after_id))) {
    snprintf(err, errlen, "file store: list: malformed request");
    return OMNIQ_EINVAL;
  }
  memset(&pg, 0, sizeof pg);
  pg.req = req;
  if (req->queue != NULL && omniq__fname_qdir(req->queue, pg.qdir) != OMNIQ_OK)
    return OMNIQ_OK; /* a name no folder can have: no task has it */
  for (int tree = 0; rc == OMNIQ_OK && tree < OMNIQ_STATUS_COUNT; tree++) {
    pg.tree = tree;
    pg.accept = 0;
    for (int st = 0; st < OMNIQ_STATUS_COUNT; st++)
      if (omniq__fmark_tree(st) == tree) pg.accept |= req->statuses & OMNIQ_STATUS_BIT(st);
    if (pg.accept == 0) continue;
    pg.taken = 0;
    if (pg.accept == OMNIQ_STATUS_BIT(OMNIQ_RUNNING))
      rc = running_page(fs, &pg);
    else
      rc = omniq__fmark_walk(fs, tree, req->after_id, req->newest_first, visit, &pg);
  }
  if (rc != OMNIQ_OK || pg.n == 0) {
    omniq__tasks_free(pg.tasks, pg.n);
    if (rc != OMNIQ_OK)
      snprintf(err, errlen, "file store: listing index/ failed (%s)", omniq_err_name(rc));
    return rc;
  }
  if (pg.n > 1)
    qsort(pg.tasks, pg.n, sizeof *pg.tasks, req->newest_first ? descending : ascending);
  for (size_t i = req->limit; i < pg.n; i++) omniq_task_free(pg.tasks[i]);
  *out = pg.tasks;
  *n = pg.n < req->limit ? pg.n : req->limit;
  return OMNIQ_OK;
}
