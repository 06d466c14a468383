/* SPDX-License-Identifier: MIT */
/* A worker pool's options and its life as memory: omniq_worker_opts_init,
 * checking options, building a pool (pool.c starts its threads) and
 * freeing it when the last reference goes.
 *
 * References: the owner (omniq_worker_start's caller, or
 * omniq_worker_process) holds one and each runner thread one, so a runner
 * detached past a stop's shutdown_timeout can still touch the pool when its
 * handler finally returns; the last omniq__pool_unref frees it.
 *
 * Sizes are fixed at build time: `ready` holds concurrency tasks, plus
 * AHEAD_MAX where the backend allows claiming ahead (claim.c), so putting
 * claimed tasks on it never allocates.
 */
#include "worker/setup.h"

#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/error.h"
#include "core/engine.h"
#include "core/store.h"
#include "core/wake.h"
#include "worker/claim.h"

typedef struct omniq_worker pool_t;

/* A test moved a clock: the leader, asleep until new work or its next
 * poll, looks at the store now (a task may have come due by the store's
 * clock), as the keeper looks at its deadlines. */
static void clock_moved(void *arg) {
  pool_t *p = arg;
  omniq__wake(p->oq, OMNIQ__EV_WORK);
}

void omniq__pool_unref(pool_t *p) {
  pthread_mutex_lock(&p->lock);
  int last = --p->refs == 0;
  pthread_mutex_unlock(&p->lock);
  if (!last) return;
  omniq__pool_clock_unwatch(&p->clock_watch);
  for (size_t i = 0; i < p->nqueues; i++) omniq__free(p->queues[i]);
  omniq__free(p->handler_path);
  if (p->slots != NULL)
    for (int i = 0; i < p->concurrency; i++) omniq__slot_close(&p->slots[i]);
  omniq__free(p->slots);
  omniq__free(p->runners);
  /* Only runners stuck past a stop can leave tasks here: their leases
   * lapse and another worker recovers them. */
  while (p->nready > 0) {
    omniq_job_t *job = omniq__ready_take(p, -1);
    omniq__job_returned(job);
    omniq__job_unref(job);
  }
  omniq__free(p->ready);
  omniq__free(p->holds);
  pthread_cond_destroy(&p->idle_cond);
  pthread_cond_destroy(&p->cond);
  pthread_mutex_destroy(&p->lock);
  omniq__free(p);
}

void omniq_worker_opts_init(omniq_worker_opts_t *o) {
  if (o == NULL) return;
  memset(o, 0, sizeof *o);
  o->concurrency = OMNIQ_DEFAULT_CONCURRENCY;
  o->poll_interval_ms = OMNIQ_DEFAULT_POLL_INTERVAL_MS;
  o->shutdown_timeout_ms = OMNIQ_DEFAULT_SHUTDOWN_TIMEOUT_MS;
  o->isolation = OMNIQ_ISOLATION_THREAD;
  o->max_tasks_per_child = OMNIQ_DEFAULT_MAX_TASKS_PER_CHILD;
  o->memory_limit_bytes = OMNIQ_DEFAULT_MEMORY_LIMIT_BYTES;
  o->cpu_limit_ms = OMNIQ_DEFAULT_CPU_LIMIT_MS;
  o->files_limit = OMNIQ_DEFAULT_FILES_LIMIT;
}

static int check_opts(omniq_t *oq, const char *fn, const omniq_worker_opts_t *o) {
  if (o->concurrency < 1 || o->concurrency > MAX_CONCURRENCY)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: concurrency must be 1..%d (got %d)", fn,
                      MAX_CONCURRENCY, o->concurrency);
  if (o->poll_interval_ms <= 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: poll_interval_ms must be > 0 (got %lld)", fn,
                      (long long)o->poll_interval_ms);
  if (o->shutdown_timeout_ms < 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: shutdown_timeout_ms must be >= 0 (got %lld)",
                      fn, (long long)o->shutdown_timeout_ms);
  if (o->isolation != OMNIQ_ISOLATION_THREAD && o->isolation != OMNIQ_ISOLATION_PROCESS)
    return omniq__err(oq->id, OMNIQ_EINVAL, "%s: isolation must be thread or process (got %d)",
                      fn, o->isolation);
  const struct {
    const char *name;
    int64_t value;
  } per_child[] = {{"max_tasks_per_child", o->max_tasks_per_child},
                   {"memory_limit_bytes", o->memory_limit_bytes},
                   {"cpu_limit_ms", o->cpu_limit_ms},
                   {"files_limit", o->files_limit}};
  for (size_t i = 0; i < sizeof per_child / sizeof per_child[0]; i++) {
    if (per_child[i].value < 0)
      return omniq__err(oq->id, OMNIQ_EINVAL, "%s: %s must be >= 0 (got %lld)", fn,
                        per_child[i].name, (long long)per_child[i].value);
    if (per_child[i].value > 0 && o->isolation != OMNIQ_ISOLATION_PROCESS)
      return omniq__err(oq->id, OMNIQ_EINVAL,
                        "%s: %s needs isolation = OMNIQ_ISOLATION_PROCESS (a thread cannot be "
                        "limited or replaced)",
                        fn, per_child[i].name);
  }
  return OMNIQ_OK;
}

/* Frees what pool_new allocated before it failed (no lock or thread yet). */
static void pool_discard(pool_t *p) {
  if (p == NULL) return;
  for (size_t i = 0; i < p->nqueues; i++) omniq__free(p->queues[i]);
  omniq__free(p->handler_path);
  omniq__free(p->slots);
  omniq__free(p->runners);
  omniq__free(p->ready);
  omniq__free(p->holds);
  omniq__free(p);
}

int omniq__pool_new(omniq_t *oq, const char *fn, const omniq_worker_opts_t *opts, pool_t **out) {
  omniq_worker_opts_t defaults;
  int rc;
  *out = NULL;
  if (oq == NULL) return OMNIQ_EINVAL;
  if (opts == NULL) {
    omniq_worker_opts_init(&defaults);
    opts = &defaults;
  }
  if ((rc = check_opts(oq, fn, opts)) != OMNIQ_OK) return rc;
  pool_t *p = omniq__calloc(1, sizeof *p);
  if (p == NULL ||
      (p->runners = omniq__calloc((size_t)opts->concurrency, sizeof *p->runners)) == NULL ||
      (p->ready = omniq__calloc((size_t)opts->concurrency + AHEAD_MAX, sizeof *p->ready)) ==
          NULL ||
      (p->holds = omniq__calloc((size_t)opts->concurrency, sizeof *p->holds)) == NULL)
    goto nomem;
  if (opts->handler_path != NULL && (p->handler_path = omniq__strdup(opts->handler_path)) == NULL)
    goto nomem;
  if (opts->isolation == OMNIQ_ISOLATION_PROCESS) {
    if ((p->slots = omniq__calloc((size_t)opts->concurrency, sizeof *p->slots)) == NULL) goto nomem;
    for (int i = 0; i < opts->concurrency; i++) { /* nothing to close yet */
      p->slots[i].ctl = p->slots[i].sock = p->slots[i].err = -1;
      p->slots[i].cancel_fd = -1;
    }
  }
  if ((rc = omniq__engine_listen_queues(oq, fn, opts->queues, p->queues, &p->nqueues)) !=
      OMNIQ_OK) {
    pool_discard(p);
    return rc;
  }
  if (pthread_mutex_init(&p->lock, NULL) != 0) goto nomem;
  if (omniq__cond_init_monotonic(&p->cond) != 0) {
    pthread_mutex_destroy(&p->lock);
    goto nomem;
  }
  if (omniq__cond_init_monotonic(&p->idle_cond) != 0) {
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->lock);
    goto nomem;
  }
  p->oq = oq;
  p->concurrency = opts->concurrency;
  p->isolation = opts->isolation;
  p->poll_ms = opts->poll_interval_ms;
  p->ride = omniq__store_rides_claims(oq);
  p->batch = omniq__store_batches(oq);
  p->release = omniq__store_releases(oq);
  p->ahead_ok = p->batch && p->release;
  p->ready_cap = opts->concurrency + (p->ahead_ok ? AHEAD_MAX : 0);
  p->pending_tail = &p->pending;
  p->shutdown_ms = opts->shutdown_timeout_ms;
  p->max_tasks = opts->max_tasks_per_child;
  p->limits = (omniq__limits_t){opts->memory_limit_bytes, opts->cpu_limit_ms, opts->files_limit};
  p->extend_ms = oq->settings.lease_ms / 3 > 0 ? oq->settings.lease_ms / 3 : 1;
  p->refs = 1;
  p->clock_watch =
      (omniq__clock_watch_t){.lock = &p->lock, .cond = &p->cond, .moved = clock_moved, .arg = p};
  omniq__pool_clock_watch(&p->clock_watch);
  *out = p;
  return OMNIQ_OK;
nomem:
  pool_discard(p);
  return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: out of memory", fn);
}
