/* SPDX-License-Identifier: MIT */
/* Listing tasks: the options a caller gives, the request a backend gets,
 * the cursor between pages, and retrying every task a filter matches.
 *
 * Pages are in id order. Ids are UUIDv7 (base/ids.c), so that is creation
 * order, and the last id of a page says exactly where the next one starts,
 * whatever was created, finished or deleted in between: the cursor is that
 * id with the order it belongs to, "<version><a|d>.<id>". The engine asks
 * the backend for one task more than the page holds to learn whether a next
 * page exists, so the last page carries no cursor.
 *
 * A cursor is checked like any other input before it reaches a backend:
 * only the exact shape this module writes is accepted, and the id in it
 * passes omniq_id_valid, so it can never become SQL or a path. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/records.h"
#include "core/engine.h"
#include "core/listing.h"
#include "core/store.h"

#define CURSOR_VERSION '1'
#define CURSOR_LEN (3 + OMNIQ_ID_LEN) /* "1a." + id */

struct omniq_task_list {
  omniq_task_t **tasks;
  size_t n;
  int has_next;
  char cursor[CURSOR_LEN + 1];
};

void omniq_list_opts_init(omniq_list_opts_t *o) {
  if (o != NULL) memset(o, 0, sizeof *o);
}

static int bad_range(int64_t from, int64_t to) { return from < 0 || to < 0 || (to != 0 && to < from); }

int omniq__list_request(omniq_t *oq, const omniq_list_opts_t *o, omniq_list_req_t *req,
                        char after[OMNIQ_ID_SIZE]) {
  const char *what = "omniq_list_tasks";
  int rc;
  memset(req, 0, sizeof *req);
  req->statuses = o->statuses != 0 ? o->statuses : OMNIQ_STATUS_ALL;
  if ((o->statuses & ~(unsigned)OMNIQ_STATUS_ALL) != 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: statuses 0x%x has bits that are no status",
                      what, o->statuses);
  if (o->queue != NULL && (rc = omniq__engine_check_queue(oq, what, o->queue)) != OMNIQ_OK)
    return rc;
  if (o->func != NULL && (o->func[0] == '\0' || strlen(o->func) >= OMNIQ_PATH_MAX))
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: func must be 1-%d bytes", what,
                      OMNIQ_PATH_MAX - 1);
  if (bad_range(o->created_from_ms, o->created_to_ms) ||
      bad_range(o->finished_from_ms, o->finished_to_ms))
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "%s: a time range must not be negative or end before it starts", what);
  if (o->limit > OMNIQ_LIST_MAX_LIMIT)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: limit %zu is more than %d", what, o->limit,
                      OMNIQ_LIST_MAX_LIMIT);
  req->queue = o->queue;
  req->func = o->func;
  req->created_from_ms = o->created_from_ms;
  req->created_to_ms = o->created_to_ms;
  req->finished_from_ms = o->finished_from_ms;
  req->finished_to_ms = o->finished_to_ms;
  req->newest_first = o->newest_first != 0;
  req->limit = o->limit != 0 ? o->limit : OMNIQ_LIST_DEFAULT_LIMIT;
  if (o->cursor != NULL) {
    const char *c = o->cursor;
    char order = req->newest_first ? 'd' : 'a';
    if (strlen(c) != CURSOR_LEN || c[0] != CURSOR_VERSION || (c[1] != 'a' && c[1] != 'd') ||
        c[2] != '.' || !omniq_id_valid(c + 3))
      return omniq__err(oq->id, OMNIQ_EINVAL,
                        "%s: cursor '%.48s' is not one omniq_task_list_next_cursor gave", what, c);
    if (c[1] != order)
      return omniq__err(oq->id, OMNIQ_EINVAL,
                        "%s: the cursor belongs to a listing %s first; list with the same order",
                        what, c[1] == 'd' ? "newest" : "oldest");
    memcpy(after, c + 3, OMNIQ_ID_SIZE);
    req->after_id = after;
  }
  return OMNIQ_OK;
}

int omniq_list_tasks(omniq_t *oq, const omniq_list_opts_t *opts, omniq_task_list_t **out) {
  omniq_list_opts_t dflt;
  omniq_list_req_t req;
  char after[OMNIQ_ID_SIZE];
  omniq_task_list_t *l;
  int rc;
  if (oq == NULL) return omniq__err(0, OMNIQ_EINVAL, "omniq_list_tasks: handle is NULL");
  if (out == NULL) return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_list_tasks: out is NULL");
  *out = NULL;
  if (opts == NULL) {
    omniq_list_opts_init(&dflt);
    opts = &dflt;
  }
  if ((rc = omniq__list_request(oq, opts, &req, after)) != OMNIQ_OK) return rc;
  if ((l = omniq__calloc(1, sizeof *l)) == NULL)
    return omniq__err(oq->id, OMNIQ_ENOMEM, "omniq_list_tasks: out of memory");
  size_t page = req.limit;
  req.limit = page + 1; /* one more says whether there is a next page */
  rc = omniq__store_list(oq, &req, &l->tasks, &l->n);
  if (rc != OMNIQ_OK) {
    omniq_task_list_free(l);
    return rc;
  }
  if (l->n > page) {
    for (size_t i = page; i < l->n; i++) omniq_task_free(l->tasks[i]);
    l->n = page;
    l->has_next = 1;
    snprintf(l->cursor, sizeof l->cursor, "%c%c.%s", CURSOR_VERSION, req.newest_first ? 'd' : 'a',
             l->tasks[page - 1]->id);
  }
  *out = l;
  return OMNIQ_OK;
}

size_t omniq_task_list_count(const omniq_task_list_t *l) { return l != NULL ? l->n : 0; }

const omniq_task_t *omniq_task_list_at(const omniq_task_list_t *l, size_t i) {
  return l != NULL && i < l->n ? l->tasks[i] : NULL;
}

const char *omniq_task_list_next_cursor(const omniq_task_list_t *l) {
  return l != NULL && l->has_next ? l->cursor : NULL;
}

void omniq_task_list_free(omniq_task_list_t *l) {
  if (l == NULL) return;
  omniq__tasks_free(l->tasks, l->n);
  omniq__free(l);
}

/* ---- retry by filter ------------------------------------------------------- */

int omniq__engine_retry_many(omniq_t *oq, const omniq_list_opts_t *filter, int64_t eta_ms,
                             int64_t *count) {
  const unsigned retryable = OMNIQ_STATUS_BIT(OMNIQ_FAILED) | OMNIQ_STATUS_BIT(OMNIQ_CANCELLED);
  omniq_list_opts_t o;
  omniq_list_req_t req;
  char after[OMNIQ_ID_SIZE];
  int rc;
  *count = 0;
  omniq_list_opts_init(&o);
  if (filter != NULL) o = *filter;
  if ((o.statuses & ~retryable) != 0)
    return omniq__err(oq->id, OMNIQ_EINVAL,
                      "omniq_retry_many: only FAILED and CANCELLED tasks can be retried");
  o.statuses = o.statuses != 0 ? o.statuses : retryable;
  o.cursor = NULL;
  o.newest_first = 0;
  o.limit = OMNIQ_LIST_MAX_LIMIT;
  if ((rc = omniq__list_request(oq, &o, &req, after)) != OMNIQ_OK) return rc;
  /* Oldest first, page by page: a retried task leaves the statuses listed,
   * and the cursor moves past it, so no task is seen twice. */
  for (;;) {
    omniq_task_t **tasks = NULL;
    size_t n = 0;
    if ((rc = omniq__store_list(oq, &req, &tasks, &n)) != OMNIQ_OK) return rc;
    for (size_t i = 0; i < n && rc == OMNIQ_OK; i++) {
      int one = omniq__engine_retry(oq, tasks[i]->id, eta_ms);
      if (one == OMNIQ_OK)
        (*count)++;
      else if (one != OMNIQ_ESTATE && one != OMNIQ_EEXISTS && one != OMNIQ_ENOTFOUND)
        rc = one; /* a storage failure ends the sweep; skipped tasks do not */
    }
    if (rc == OMNIQ_OK && n == req.limit) {
      memcpy(after, tasks[n - 1]->id, OMNIQ_ID_SIZE);
      req.after_id = after;
    }
    omniq__tasks_free(tasks, n);
    if (rc != OMNIQ_OK || n < req.limit) break;
  }
  if (rc == OMNIQ_OK) omniq__err_clear(oq->id); /* skipped tasks left their messages */
  return rc;
}
