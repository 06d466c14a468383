/* SPDX-License-Identifier: MIT */
/* A storage backend outside the library, proved by the storage contract:
 * an in-memory store, small enough to read in one sitting. It is the
 * example of docs/storage-custom.md.
 *
 * A store lives in this process's memory under a name (settings.base_dir),
 * so closing and opening again finds the same tasks, and it can never be
 * shared with another process: the contract runs with single_process set.
 * One mutex per store makes every operation atomic; records are copied in
 * and out with the library's record helpers, so whatever the engine frees
 * was allocated the way it expects. Tasks are kept in insertion order, with
 * a tsearch(3) tree to find one by id; a claim scans them all, which is
 * fine for an example and for the contract's 20,000 tasks.
 *
 * Build: cc memory.c $(pkg-config --cflags --libs omniq-contract)
 * Run:   ./a.out        (prints cmocka's report; exit 0 = the contract passes) */
#include <omniq/contract.h>

#include <pthread.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct store {
  char name[OMNIQ_PATH_MAX];
  pthread_mutex_t lock;
  void *by_id;          /* tsearch tree of the tasks below, by id */
  omniq_task_t **tasks; /* in insertion order, so the index breaks claim ties */
  omniq_result_t **results;
  size_t ntasks, nresults, cap_tasks, cap_results;
  struct store *next;
} store_t;

static pthread_mutex_t stores_lock = PTHREAD_MUTEX_INITIALIZER;
static store_t *stores;

static int by_id(const void *a, const void *b) {
  return strcmp(((const omniq_task_t *)a)->id, ((const omniq_task_t *)b)->id);
}

static int say(int rc, char *err, size_t errlen, const char *what) {
  snprintf(err, errlen, "memory: %s", what);
  return rc;
}

/* ---- open, close, and the stores by name ---------------------------------- */

static int mem_open(const omniq_settings_t *s, void **backend, char *err, size_t errlen) {
  store_t *st;
  pthread_mutex_lock(&stores_lock);
  for (st = stores; st != NULL && strcmp(st->name, s->base_dir) != 0; st = st->next) {
  }
  if (st == NULL && (st = calloc(1, sizeof *st)) != NULL) {
    snprintf(st->name, sizeof st->name, "%s", s->base_dir);
    pthread_mutex_init(&st->lock, NULL);
    st->next = stores;
    stores = st;
  }
  pthread_mutex_unlock(&stores_lock);
  *backend = st;
  return st != NULL ? OMNIQ_OK : say(OMNIQ_ENOMEM, err, errlen, "out of memory");
}

static void mem_close(void *backend) { (void)backend; /* the store outlives its handles */ }

/* Drops a store and everything in it (the contract's teardown). */
static void mem_destroy(const char *name) {
  pthread_mutex_lock(&stores_lock);
  for (store_t **pp = &stores; *pp != NULL; pp = &(*pp)->next) {
    store_t *st = *pp;
    if (strcmp(st->name, name) != 0) continue;
    *pp = st->next;
    for (size_t i = 0; i < st->ntasks; i++) {
      tdelete(st->tasks[i], &st->by_id, by_id);
      omniq_task_free(st->tasks[i]);
    }
    for (size_t i = 0; i < st->nresults; i++) omniq_result_free(st->results[i]);
    free(st->tasks);
    free(st->results);
    pthread_mutex_destroy(&st->lock);
    free(st);
    break;
  }
  pthread_mutex_unlock(&stores_lock);
}

/* ---- helpers (store lock held) -------------------------------------------- */

static omniq_task_t *find(store_t *st, const char *id) {
  omniq_task_t key;
  snprintf(key.id, sizeof key.id, "%s", id);
  omniq_task_t **hit = tfind(&key, &st->by_id, by_id);
  return hit != NULL ? *hit : NULL;
}

static omniq_result_t **find_result(store_t *st, const char *id) {
  for (size_t i = 0; i < st->nresults; i++)
    if (strcmp(st->results[i]->task_id, id) == 0) return &st->results[i];
  return NULL;
}

/* Stores a copy of r, replacing the task's old result. */
static int put_result(store_t *st, const omniq_result_t *r) {
  omniq_result_t *copy = omniq_result_dup(r), **slot = find_result(st, r->task_id);
  if (copy == NULL) return OMNIQ_ENOMEM;
  if (slot != NULL) {
    omniq_result_free(*slot);
    *slot = copy;
    return OMNIQ_OK;
  }
  if (st->nresults == st->cap_results) {
    size_t cap = st->cap_results ? st->cap_results * 2 : 64;
    omniq_result_t **more = realloc(st->results, cap * sizeof *more);
    if (more == NULL) {
      omniq_result_free(copy);
      return OMNIQ_ENOMEM;
    }
    st->results = more;
    st->cap_results = cap;
  }
  st->results[st->nresults++] = copy;
  return OMNIQ_OK;
}

/* The running task id under token, or why not. */
static int running(store_t *st, const char *id, int64_t token, omniq_task_t **t, char *err,
                   size_t errlen) {
  if ((*t = find(st, id)) == NULL) return say(OMNIQ_ENOTFOUND, err, errlen, "no such task");
  if ((*t)->status != OMNIQ_RUNNING || (*t)->token != token)
    return say(OMNIQ_ESTATE, err, errlen, "not running under this claim token");
  return OMNIQ_OK;
}

/* ---- the operations --------------------------------------------------------- */

static int mem_enqueue(void *backend, omniq_task_t *const *tasks, size_t n, char *err,
                       size_t errlen) {
  store_t *st = backend;
  int rc = OMNIQ_OK;
  pthread_mutex_lock(&st->lock);
  for (size_t i = 0; i < n && rc == OMNIQ_OK; i++) { /* all checks before any change */
    if (!omniq_id_valid(tasks[i]->id) || find(st, tasks[i]->id) != NULL)
      rc = say(OMNIQ_EINVAL, err, errlen, "malformed or existing id");
    for (size_t j = 0; j < i && rc == OMNIQ_OK; j++)
      if (strcmp(tasks[i]->id, tasks[j]->id) == 0)
        rc = say(OMNIQ_EINVAL, err, errlen, "an id twice in one batch");
  }
  if (rc == OMNIQ_OK && st->ntasks + n > st->cap_tasks) {
    size_t cap = st->cap_tasks ? st->cap_tasks : 64;
    while (cap < st->ntasks + n) cap *= 2;
    omniq_task_t **more = realloc(st->tasks, cap * sizeof *more);
    if (more == NULL) rc = say(OMNIQ_ENOMEM, err, errlen, "out of memory");
    else st->tasks = more, st->cap_tasks = cap;
  }
  size_t done = 0;
  for (; rc == OMNIQ_OK && done < n; done++) {
    omniq_task_t *copy = omniq_task_dup(tasks[done]);
    st->tasks[st->ntasks + done] = copy;
    if (copy == NULL || tsearch(copy, &st->by_id, by_id) == NULL)
      rc = say(OMNIQ_ENOMEM, err, errlen, "out of memory");
  }
  if (rc == OMNIQ_OK) st->ntasks += n;
  while (rc != OMNIQ_OK && done > 0) { /* undo: all or none */
    omniq_task_t *copy = st->tasks[st->ntasks + --done];
    if (copy != NULL) tdelete(copy, &st->by_id, by_id);
    omniq_task_free(copy);
  }
  pthread_mutex_unlock(&st->lock);
  return rc;
}

/* 1 if task a is claimed before task b: priority desc, eta, insertion. */
static int before(const omniq_task_t *a, size_t ia, const omniq_task_t *b, size_t ib) {
  if (a->priority != b->priority) return a->priority > b->priority;
  if (a->eta_ms != b->eta_ms) return a->eta_ms < b->eta_ms;
  return ia < ib;
}

static int in_queues(const omniq_claim_req_t *req, const char *queue) {
  for (size_t q = 0; q < req->nqueues; q++)
    if (strcmp(req->queues[q], queue) == 0) return 1;
  return 0;
}

static int mem_claim(void *backend, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                     char *err, size_t errlen) {
  store_t *st = backend;
  *out = NULL;
  *n = 0;
  if (req->nqueues == 0) return say(OMNIQ_EINVAL, err, errlen, "claim names no queue");
  pthread_mutex_lock(&st->lock);
  size_t max = req->max < st->ntasks ? req->max : st->ntasks, k = 0;
  size_t *best = calloc(max ? max : 1, sizeof *best); /* the best k so far, in order */
  omniq_task_t **got = calloc(max ? max : 1, sizeof *got);
  int rc = best && got ? OMNIQ_OK : say(OMNIQ_ENOMEM, err, errlen, "out of memory");
  for (size_t i = 0; rc == OMNIQ_OK && max > 0 && i < st->ntasks; i++) {
    const omniq_task_t *t = st->tasks[i];
    if (t->status != OMNIQ_PENDING || t->eta_ms > req->now_ms || !in_queues(req, t->queue))
      continue;
    size_t at = k;
    while (at > 0 && before(t, i, st->tasks[best[at - 1]], best[at - 1])) at--;
    if (at == max) continue;
    if (k < max) k++;
    memmove(&best[at + 1], &best[at], (k - 1 - at) * sizeof *best);
    best[at] = i;
  }
  /* Copies first: once they exist nothing can fail, so the claim is all or
   * nothing. */
  for (size_t j = 0; rc == OMNIQ_OK && j < k; j++)
    if ((got[j] = omniq_task_dup(st->tasks[best[j]])) == NULL)
      rc = say(OMNIQ_ENOMEM, err, errlen, "out of memory");
  for (size_t j = 0; rc == OMNIQ_OK && j < k; j++) {
    omniq_task_t *both[2] = {st->tasks[best[j]], got[j]};
    for (int c = 0; c < 2; c++) {
      both[c]->status = OMNIQ_RUNNING;
      both[c]->attempts++;
      both[c]->token++;
      both[c]->started_at_ms = req->now_ms;
      both[c]->lease_until_ms = req->lease_until_ms;
    }
  }
  pthread_mutex_unlock(&st->lock);
  free(best);
  if (rc != OMNIQ_OK || k == 0) {
    for (size_t j = 0; got != NULL && j < k; j++) omniq_task_free(got[j]);
    free(got);
    return rc;
  }
  *out = got;
  *n = k;
  return OMNIQ_OK;
}

static int mem_finish(void *backend, const omniq_decision_t *d, char *err, size_t errlen) {
  store_t *st = backend;
  omniq_task_t *t;
  omniq_task_error_t *e = NULL;
  if (d->next_status != OMNIQ_PENDING && d->next_status != OMNIQ_SUCCESS &&
      d->next_status != OMNIQ_FAILED)
    return say(OMNIQ_EINVAL, err, errlen, "not how a run ends");
  pthread_mutex_lock(&st->lock);
  int rc = running(st, d->id, d->token, &t, err, errlen);
  if (rc == OMNIQ_OK && d->error != NULL && (e = omniq_task_error_dup(d->error)) == NULL)
    rc = say(OMNIQ_ENOMEM, err, errlen, "out of memory");
  if (rc == OMNIQ_OK && d->result != NULL) rc = put_result(st, d->result);
  if (rc == OMNIQ_OK) {
    t->status = d->next_status;
    if (d->next_status == OMNIQ_PENDING) t->eta_ms = d->eta_ms;
    if (d->next_status == OMNIQ_PENDING && d->reset_attempts) t->attempts = 0;
    if (e != NULL) {
      omniq_task_error_free(t->last_error);
      t->last_error = e;
    }
  } else {
    omniq_task_error_free(e);
  }
  pthread_mutex_unlock(&st->lock);
  return rc;
}

static int mem_extend_lease(void *backend, const char *id, int64_t token, int64_t lease_until_ms,
                            char *err, size_t errlen) {
  store_t *st = backend;
  omniq_task_t *t;
  pthread_mutex_lock(&st->lock);
  int rc = running(st, id, token, &t, err, errlen);
  if (rc == OMNIQ_OK) t->lease_until_ms = lease_until_ms;
  pthread_mutex_unlock(&st->lock);
  return rc;
}

static int mem_cancel(void *backend, const char *id, int64_t finished_at_ms, int *prev_status,
                      char *err, size_t errlen) {
  store_t *st = backend;
  int rc = OMNIQ_OK;
  pthread_mutex_lock(&st->lock);
  omniq_task_t *t = find(st, id);
  if (t == NULL) {
    rc = say(OMNIQ_ENOTFOUND, err, errlen, "no such task");
  } else {
    if (prev_status != NULL) *prev_status = t->status;
    if (omniq_status_is_terminal(t->status)) rc = say(OMNIQ_ESTATE, err, errlen, "already ended");
  }
  if (rc == OMNIQ_OK) {
    /* Read and changed under one lock: a claim cannot come between. */
    omniq_result_t r = {.status = OMNIQ_CANCELLED,
                        .attempts = t->attempts,
                        .finished_at_ms = finished_at_ms,
                        .last_attempt_at_ms = t->started_at_ms};
    memcpy(r.task_id, t->id, OMNIQ_ID_SIZE);
    if ((rc = put_result(st, &r)) == OMNIQ_OK) t->status = OMNIQ_CANCELLED;
  }
  pthread_mutex_unlock(&st->lock);
  return rc;
}

static int mem_get_task(void *backend, const char *id, omniq_task_t **out, char *err,
                        size_t errlen) {
  store_t *st = backend;
  pthread_mutex_lock(&st->lock);
  omniq_task_t *t = find(st, id);
  *out = t != NULL ? omniq_task_dup(t) : NULL;
  pthread_mutex_unlock(&st->lock);
  if (t == NULL) return say(OMNIQ_ENOTFOUND, err, errlen, "no such task");
  return *out != NULL ? OMNIQ_OK : say(OMNIQ_ENOMEM, err, errlen, "out of memory");
}

static int mem_get_result(void *backend, const char *id, omniq_result_t **out, char *err,
                          size_t errlen) {
  store_t *st = backend;
  pthread_mutex_lock(&st->lock);
  omniq_result_t **r = find_result(st, id);
  *out = r != NULL ? omniq_result_dup(*r) : NULL;
  pthread_mutex_unlock(&st->lock);
  if (r == NULL) return say(OMNIQ_ENOTFOUND, err, errlen, "no result");
  return *out != NULL ? OMNIQ_OK : say(OMNIQ_ENOMEM, err, errlen, "out of memory");
}

static int mem_purge_results(void *backend, int64_t older_than_ms, int64_t *count, char *err,
                             size_t errlen) {
  store_t *st = backend;
  size_t kept = 0;
  (void)err, (void)errlen;
  pthread_mutex_lock(&st->lock);
  for (size_t i = 0; i < st->nresults; i++) {
    if (st->results[i]->finished_at_ms < older_than_ms) omniq_result_free(st->results[i]);
    else st->results[kept++] = st->results[i];
  }
  *count = (int64_t)(st->nresults - kept);
  st->nresults = kept;
  pthread_mutex_unlock(&st->lock);
  return OMNIQ_OK;
}

static int mem_count_by_status(void *backend, int64_t counts[OMNIQ_STATUS_COUNT], char *err,
                               size_t errlen) {
  store_t *st = backend;
  (void)err, (void)errlen;
  memset(counts, 0, OMNIQ_STATUS_COUNT * sizeof counts[0]);
  pthread_mutex_lock(&st->lock);
  for (size_t i = 0; i < st->ntasks; i++) counts[st->tasks[i]->status]++;
  pthread_mutex_unlock(&st->lock);
  return OMNIQ_OK;
}

/* Most overdue first; ties by id, so the order is the same every time. */
static int lease_order(const void *a, const void *b) {
  const omniq_task_t *x = *(omniq_task_t *const *)a, *y = *(omniq_task_t *const *)b;
  if (x->lease_until_ms != y->lease_until_ms) return x->lease_until_ms < y->lease_until_ms ? -1 : 1;
  return strcmp(x->id, y->id);
}

static int mem_expired_leases(void *backend, int64_t now_ms, size_t max, omniq_task_t ***out,
                              size_t *n, char *err, size_t errlen) {
  store_t *st = backend;
  size_t k = 0, copied = 0;
  *out = NULL;
  *n = 0;
  pthread_mutex_lock(&st->lock);
  omniq_task_t **all = calloc(st->ntasks + 1, sizeof *all);
  for (size_t i = 0; all != NULL && i < st->ntasks; i++)
    if (st->tasks[i]->status == OMNIQ_RUNNING && st->tasks[i]->lease_until_ms < now_ms)
      all[k++] = st->tasks[i];
  if (all != NULL) qsort(all, k, sizeof *all, lease_order);
  if (k > max) k = max;
  for (; all != NULL && copied < k; copied++)
    if ((all[copied] = omniq_task_dup(all[copied])) == NULL) break;
  pthread_mutex_unlock(&st->lock);
  if (all == NULL || copied < k) {
    for (size_t i = 0; all != NULL && i < copied; i++) omniq_task_free(all[i]);
    free(all);
    return say(OMNIQ_ENOMEM, err, errlen, "out of memory");
  }
  *out = all;
  *n = k;
  return OMNIQ_OK;
}

/* Written for storage ABI 2: the table stops before the operations ABI 3
 * added (listing, retry, delete, queues, statistics, unique keys). The
 * library still opens it and answers OMNIQ_ENOTSUP for those, and the
 * contract skips their tests; docs/storage-custom.md lists what a table
 * for ABI 3 adds. */
static const omniq_storage_ops_t memory_ops = {
    .abi_version = 2,
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .enqueue = mem_enqueue,
    .claim = mem_claim,
    .finish = mem_finish,
    .extend_lease = mem_extend_lease,
    .cancel = mem_cancel,
    .get_task = mem_get_task,
    .get_result = mem_get_result,
    .purge_results = mem_purge_results,
    .count_by_status = mem_count_by_status,
    .expired_leases = mem_expired_leases,
};

/* ---- proving it ------------------------------------------------------------- */

/* doc:begin contract */
/* A fresh, empty store per test: a name nobody used before. */
static int fresh_store(void *userdata, omniq_settings_t *s) {
  static int next;
  (void)userdata;
  snprintf(s->base_dir, sizeof s->base_dir, "memory-store-%d", ++next);
  return 0;
}

static void drop_store(void *userdata, const omniq_settings_t *s) {
  (void)userdata;
  mem_destroy(s->base_dir);
}

int main(int argc, char **argv) {
  omniq_contract_env_t env;
  omniq_contract_env_init(&env);
  env.setup = fresh_store;
  env.teardown = drop_store;
  env.single_process = 1; /* this store cannot be opened by another process */
  if (argc > 1) env.filter = argv[1];
  /* Registering is what a program does to open it by name
   * (OMNIQ_BACKEND=memory); the contract itself only needs the table. */
  if (omniq_storage_register(&memory_ops) != OMNIQ_OK) {
    fprintf(stderr, "register: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  return omniq_contract_run(&memory_ops, &env) == 0 ? 0 : 1;
}
/* doc:end contract */
