/* SPDX-License-Identifier: MIT */
/* Worker pool: runner threads that claim through the engine, run handlers
 * and report how each run ended, and one keeper thread that extends leases
 * and enforces deadlines. Policy (what a failure is called, retries,
 * delays, re-arming, the default queue) is the engine's; the pool only says
 * what happened.
 *
 * Slots. A pool has `concurrency` runner threads and each runs one task at
 * a time, so at most that many tasks run at once; a runner claims its next
 * task only when its previous one has ended (run.c says how long a slot
 * stays taken).
 *
 * Claiming: leader/followers. Of the idle runners exactly one, the leader,
 * claims, and takes as many tasks in that one step as the pool has free
 * slots (runners neither running a task nor holding one to run); it puts
 * them on the pool's `ready` list, wakes that many followers and, with
 * leadership given up, takes one itself. A burst of due tasks thus fills
 * every free slot with one claim, not one claim per slot; a runner that
 * finds a task on `ready` runs it before anything else, so a stop never
 * strands a claimed task there. With nothing due, the leader sleeps on the handle's
 * OMNIQ__EV_WORK wake-up (core/wake.c) for up to poll_interval: an enqueue
 * in any process on the store wakes it at once (in this process only, for a
 * store without a wake file); work becoming due by time is found by the
 * next poll, unless a runner's claim takes it and holds it: tasks shared
 * from a hold wake the leader in either of its waits (omniq__leader_sleeps). Followers sleep on the pool's idle_cond. An enqueue therefore
 * costs one claim per idle pool, not one per idle thread.
 *
 * Claimed tasks wait on `ready`, a ring in claim order, and are on the
 * in-flight list from the claim on; how many a claim asks for (claiming
 * ahead), holding a claim while runs are very short (the claimer runs it
 * alone; lead() then claims only for new work), claims riding with
 * reports and giving unstarted tasks back at a stop are claim.c's. Running one claimed task is run.c's; how runs are
 * reported, alone or in batches committed with the next claim, batch.c's;
 * building and freeing a pool, setup.c's. Their shared state is
 * worker/pool_state.h.
 *
 * The keeper thread (keeper.c) extends the lease of every running task
 * every lease/3 and enforces deadlines: at a deadline it reports a timeout
 * and marks the job cancelled; a refused extension (task
 * cancelled or taken over) marks it cancelled too. In process isolation the
 * runner kills the child when it sees the flag. A run that starts wakes the
 * keeper only if it needs it before the keeper's planned look
 * (omniq__keeper_must_wake); a run that ends never does. Nothing else waits
 * for the in-flight list to change: stop waits for `alive`.
 *
 * Cancels through the handle: omniq_cancel commits the cancel in the store
 * and then calls omniq__pool_cancelled, which ends a run of that task in
 * any pool of the handle (drains included: they are on oq->workers too,
 * flagged `drain`, for as long as omniq_worker_process runs) and marks its
 * job cancelled before omniq_cancel returns. Waking the keeper to learn of
 * it from a refused extension left a window: the flag went up a storage
 * round-trip later, and never before the next extension for a drain,
 * which the list did not hold.
 *
 * Stopping: stop sets `stopping`, wakes the followers (idle_cond) and the
 * leader (a bump of OMNIQ__EV_WORK), and waits up to shutdown_timeout for
 * every runner to exit; runners exit once their current task is reported.
 * Runs still going at the deadline are ended without a report and marked
 * cancelled (their leases are no longer extended, so another worker
 * recovers them as "WorkerLost"); their runner threads are detached and
 * hold a reference to the pool until they return. oq->threads_alive counts
 * every pool thread, detached ones included, so omniq_close waits for them.
 *
 * omniq_worker_process builds the same pool in drain mode: the caller's
 * thread is one runner (concurrency - 1 more are temporary threads), and a
 * claim that finds nothing, or reaching `limit` claims, ends the run.
 *
 * Locks: pool->lock guards the pool's counters, flags and in-flight list;
 * it is never held across a storage call or a handler. Order: pool->lock
 * before a job's lock; oq->lock is taken alone, except that
 * omniq__pool_cancelled takes each pool's lock under it.
 */
#include "worker/pool.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/error.h"
#include "base/records.h"
#include "core/engine.h"
#include "core/wake.h"
#include "worker/batch.h"
#include "worker/claim.h"
#include "worker/isolate.h"
#include "worker/job.h"
#include "worker/keeper.h"
#include "worker/pool_state.h"
#include "worker/run.h"
#include "worker/setup.h"
#include "worker/zygote.h"

typedef struct omniq_worker pool_t;

/* ---- threads and references ---------------------------------------------- */

static void thread_gone(omniq_t *oq) {
  pthread_mutex_lock(&oq->lock);
  oq->threads_alive--;
  pthread_cond_broadcast(&oq->threads_cond);
  pthread_mutex_unlock(&oq->lock);
}

/* Starts a pool thread with SIGINT and SIGTERM blocked, so they reach the
 * thread that waits for them (omniq_worker_run) or the program's own. */
static int spawn(omniq_t *oq, pthread_t *tid, void *(*fn)(void *), void *arg) {
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGINT);
  sigaddset(&block, SIGTERM);
  pthread_mutex_lock(&oq->lock);
  oq->threads_alive++;
  pthread_mutex_unlock(&oq->lock);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  int rc = pthread_create(tid, NULL, fn, arg);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) thread_gone(oq);
  return rc;
}

/* ---- leader and followers -------------------------------------------------- */

/* The leader's loop: claims until it gets tasks, the pool stops, or (in
 * drain mode) nothing is due; what it gets goes on `ready`, held for this
 * runner (slot) while runs are very short. While other runners hold, it
 * claims only for work enqueued since the latest held claim began: what
 * was due then is theirs to run, and a claim of it here would only add a
 * runner to a store that commits one writer at a time. Called and returns
 * with p->lock held; gives leadership up before returning. */
static void lead(pool_t *p, int slot) {
  int held = 0, looked = 0; /* looked: claimed at generation `seen` and found nothing */
  uint64_t seen = 0;
  for (;;) {
    /* Read the generation before looking at `stopping`: a stop sets it and
     * then bumps the generation, so the wait below cannot miss the stop. */
    pthread_mutex_unlock(&p->lock);
    uint64_t gen = omniq__wake_gen(p->oq, OMNIQ__EV_WORK);
    pthread_mutex_lock(&p->lock);
    if (!omniq__may_claim(p)) break;
    /* A hold ended with tasks left, for every runner (omniq__hold_end
     * bumps the wake-up for it): run them. */
    if (p->nready > p->nheld) break;
    size_t room = omniq__claim_room(p, 0);
    if (p->nholders + p->hold_riders > 0 &&
        (gen == p->hold_gen || (looked && gen == seen) || room == 0)) {
      /* Any new work wakes this wait at once; a hold that ends with tasks
       * left to share, the keeper sharing a held run that lasts
       * (omniq__hold_look), or a drain's end, bumps it too (as they do
       * the poll's wait below). */
      p->hold_waiting = 1;
      pthread_mutex_unlock(&p->lock);
      omniq__wake_wait(p->oq, OMNIQ__EV_WORK, gen, p->poll_ms);
      pthread_mutex_lock(&p->lock);
      p->hold_waiting = 0;
      continue;
    }
    if (room == 0) break;
    p->claimed += (long)room;
    p->asking += (int)room;
    pthread_mutex_unlock(&p->lock);

    omniq_task_t **tasks = NULL;
    size_t n = 0;
    int64_t asked = omniq__pool_ms(); /* the leases' start, no later than the store's */
    int rc =
        omniq__engine_claim(p->oq, (const char *const *)p->queues, p->nqueues, room, &tasks, &n);
    if (rc != OMNIQ_OK)
      omniq__log(&p->oq->log, OMNIQ_LOG_WARNING, "worker.claim_failed", NULL, "%s: %s",
                 omniq_err_name(rc), omniq__errmsg(p->oq->id));
    size_t got = rc == OMNIQ_OK ? n : 0;
    omniq_job_t **jobs = NULL;
    if (got > 0)
      jobs = omniq__claim_wrap(p, tasks, &got); /* got <= n <= room */
    else
      omniq__tasks_free(tasks, n);
    pthread_mutex_lock(&p->lock);
    p->claimed -= (long)(room - (rc == OMNIQ_OK ? n : 0));
    p->asking -= (int)room;
    if (got > 0) {
      held = omniq__ready_put(p, jobs, got, asked, slot, gen);
      break;
    }
    if (p->drain) {
      if (rc != OMNIQ_OK && p->error == OMNIQ_OK) p->error = rc;
      p->drained = 1;
      break;
    }
    looked = 1;
    seen = gen;
    /* While runners hold, wait as above: looking for held runs that last.
     * Tasks shared while this claim was under way (a hold the keeper's
     * look ended, a ride that did not hold) woke no one: run them. */
    if (p->nholders + p->hold_riders > 0 || p->nready > p->nheld) continue;
    /* Any share from now on bumps the wake-up (omniq__leader_sleeps): a
     * runner that holds may start after this, with its claim riding on a
     * batch and taking tasks due by time, with no enqueue to wake this
     * wait. */
    p->poll_waiting = 1;
    pthread_mutex_unlock(&p->lock);
    omniq__wake_wait(p->oq, OMNIQ__EV_WORK, gen, p->poll_ms);
    pthread_mutex_lock(&p->lock);
    p->poll_waiting = 0;
  }
  p->has_leader = 0;
  /* Followers take the tasks on `ready`, and one of the rest leads; what
   * this runner holds is its own, so then one follower wakes, to lead. */
  if (held) pthread_cond_signal(&p->idle_cond);
  else pthread_cond_broadcast(&p->idle_cond);
}

/* A runner: takes a task a leader queued for it, or leads, or waits. A
 * claimed task is always run, even once the pool is stopping: it holds a
 * lease that nobody else would release. */
static void runner_loop(pool_t *p, int slot) {
  pthread_mutex_lock(&p->lock);
  for (;;) {
    /* A hold ends once its tasks are taken (a stop's give-back takes them
     * too), and early when runs are no longer very short or the pool
     * stops: what it still holds goes to every runner. */
    if (p->holds[slot].on &&
        (p->holds[slot].n == 0 || !omniq__hold_short(p) || p->stopping)) {
      if (omniq__hold_end(p, slot)) {
        pthread_mutex_unlock(&p->lock);
        omniq__wake(p->oq, OMNIQ__EV_WORK); /* the leader waits for work: share */
        pthread_mutex_lock(&p->lock);
      }
      continue;
    }
    int mine = omniq__ready_for(p, slot);
    /* Nothing more to run here (or a full batch): the batch commits now,
     * with this runner's next claim riding on it. */
    if (p->npending > 0 && (mine == 0 || p->npending >= BATCH_MAX)) {
      /* Another runner's batch is committing with a claim that counts
       * this runner's slot: its tasks come here too, so this outcome
       * waits in the batch for them (the keeper commits it within
       * BATCH_DELAY_MS whatever happens) rather than commit alone with a
       * claim of one. A ride whose claim its rider will hold brings
       * nothing here. */
      if (mine == 0 && p->npending < BATCH_MAX && p->riding > p->hold_riders) {
        pthread_cond_wait(&p->idle_cond, &p->lock);
        continue;
      }
      omniq__outcome_t *list = omniq__batch_take(p);
      p->busy++; /* its slot is claimed for by its ride, not by a leader */
      p->riding++;
      pthread_mutex_unlock(&p->lock);
      omniq__batch_flush(p, list, slot);
      pthread_mutex_lock(&p->lock);
      p->busy--;
      p->riding--;
      /* Runners that waited for this commit look again. */
      if (p->npending > 0) pthread_cond_broadcast(&p->idle_cond);
      else if (!p->has_leader) pthread_cond_signal(&p->idle_cond);
      continue;
    }
    if (p->stopping && p->release && p->nready > 0) {
      pthread_mutex_unlock(&p->lock);
      omniq__give_back(p);
      pthread_mutex_lock(&p->lock);
      continue;
    }
    if (mine > 0) {
      int holding = p->holds[slot].on; /* a holder counts as busy all along */
      omniq_job_t *job = omniq__ready_take(p, slot);
      if (!holding) p->busy++;
      else p->holds[slot].since = omniq__pool_clock_us(); /* the leader looks at it */
      pthread_mutex_unlock(&p->lock);
      omniq__run_task(p, slot, job);
      pthread_mutex_lock(&p->lock);
      if (!holding) p->busy--;
      else p->holds[slot].since = 0;
      /* A slot came free: an idle follower may lead again if no one is. */
      if (!p->has_leader) pthread_cond_signal(&p->idle_cond);
      continue;
    }
    /* A claim under way may bring this runner a task: its tasks count
     * against the limit before they are on `ready`, so only once no one
     * leads does a limit reached (or a stop) end the runner. A leader
     * waiting for new work while runners held learns that no claim is
     * left to make. */
    if (p->has_leader && p->hold_waiting && !omniq__may_claim(p)) {
      p->hold_waiting = 0; /* one bump is enough */
      pthread_mutex_unlock(&p->lock);
      omniq__wake(p->oq, OMNIQ__EV_WORK);
      pthread_mutex_lock(&p->lock);
      continue;
    }
    if (p->has_leader) {
      pthread_cond_wait(&p->idle_cond, &p->lock);
      continue;
    }
    if (!omniq__may_claim(p)) break;
    p->has_leader = 1;
    lead(p, slot);
  }
  /* Whatever ended this runner (stop, drained, limit) ends the followers
   * too; they must look again rather than wait for a leader. */
  pthread_cond_broadcast(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
}

static void *runner_main(void *arg) {
  omniq__runner_t *r = arg;
  pool_t *p = r->pool;
  omniq_t *oq = p->oq;
  pthread_mutex_lock(&p->lock);
  p->started++;
  pthread_cond_broadcast(&p->cond);
  while (!p->go && !p->stopping) pthread_cond_wait(&p->cond, &p->lock);
  pthread_mutex_unlock(&p->lock);

  int slot = (int)(r - p->runners);
  runner_loop(p, slot);
  if (p->slots != NULL) omniq__slot_close(&p->slots[slot]);

  pthread_mutex_lock(&p->lock);
  r->exited = 1;
  p->alive--;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  omniq__pool_unref(p); /* may free p and r */
  thread_gone(oq);
  return NULL;
}

/* ---- starting and stopping -------------------------------------------------- */

/* Stops the zygote (every child dies with it) and closes the channels no
 * slot has taken. The keeper thread only, with no slot waiting for it. */
static void drop_zygote(pool_t *p) {
  for (int i = 0; p->zygote.ctl != NULL && i < p->concurrency; i++)
    if (p->zygote.ctl[i] >= 0) close(p->zygote.ctl[i]);
  omniq__zygote_stop(&p->zygote);
}

/* (Re)starts the zygote; publishes it, its state and generation under the
 * pool's lock. The keeper thread only: the zygote dies with the thread that
 * forked it. */
static void start_zygote(pool_t *p) {
  omniq_t *oq = p->oq;
  omniq__zygote_t z;
  char err[sizeof p->zygote_err];
  drop_zygote(p); /* one that exited: reaped */
  int rc = omniq__zygote_start(&z, oq, p->handler_path, p->concurrency, err, sizeof err);
  pthread_mutex_lock(&p->lock);
  if (rc == OMNIQ_OK) {
    p->zygote = z;
    p->zygote_gen++;
  } else {
    memcpy(p->zygote_err, err, sizeof err);
  }
  int gen = p->zygote_gen;
  p->zygote_state = rc == OMNIQ_OK ? 1 : -1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  if (rc != OMNIQ_OK)
    omniq__log(&oq->log, OMNIQ_LOG_ERROR, "worker.zygote_failed", NULL, "%s", err);
  else if (gen > 1)
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "worker.zygote_restarted", NULL,
               "the process that forks handler processes had exited; pid %d replaces it",
               (int)z.pid);
}

static void *keeper_main(void *arg) {
  pool_t *p = arg; /* outlives this thread: shutdown joins it */
  if (p->isolation == OMNIQ_ISOLATION_PROCESS) start_zygote(p);
  for (;;) {
    omniq__keeper_run(&p->keeper);
    pthread_mutex_lock(&p->lock);
    int restart = !p->keeper.stop && p->keeper.errand;
    p->keeper.errand = 0;
    pthread_mutex_unlock(&p->lock);
    if (!restart) break;
    start_zygote(p);
  }
  /* Every child dies with the zygote: runners that outlived a stop see
   * their child end. */
  drop_zygote(p);
  thread_gone(p->oq);
  return NULL;
}

/* Starts the keeper (which starts the zygote in process isolation) and n
 * runner threads. On error the handle's message says why, after fn. */
static int pool_spawn(pool_t *p, int n, const char *fn) {
  omniq_t *oq = p->oq;
  p->keeper = (omniq__keeper_t){.oq = p->oq, .lock = &p->lock, .cond = &p->cond,
                                .inflight = &p->inflight, .extend_ms = p->extend_ms,
                                .wake_ms = INT64_MIN, .flush = omniq__batch_timers, .flush_arg = p};
  if (spawn(p->oq, &p->keeper_tid, keeper_main, p) != 0)
    return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: cannot start a thread", fn);
  p->has_keeper = 1;
  if (p->isolation == OMNIQ_ISOLATION_PROCESS) {
    pthread_mutex_lock(&p->lock);
    while (p->zygote_state == 0) pthread_cond_wait(&p->cond, &p->lock);
    int state = p->zygote_state;
    pthread_mutex_unlock(&p->lock);
    if (state < 0) return omniq__err(oq->id, OMNIQ_EIO, "%s: %s", fn, p->zygote_err);
    /* Each slot asks for its child now: they fork while the runners start. */
    for (int i = 0; i < p->concurrency; i++) {
      omniq__slot_init(&p->slots[i], p->zygote.ctl[i], p->max_tasks, &p->limits);
      p->slots[i].gen = p->zygote_gen;
      p->zygote.ctl[i] = -1; /* the slot's now */
    }
  }
  for (int i = 0; i < n; i++) {
    omniq__runner_t *r = &p->runners[i];
    r->pool = p;
    pthread_mutex_lock(&p->lock);
    p->refs++;
    p->alive++;
    pthread_mutex_unlock(&p->lock);
    if (spawn(p->oq, &r->tid, runner_main, r) != 0) {
      pthread_mutex_lock(&p->lock);
      p->refs--;
      p->alive--;
      pthread_mutex_unlock(&p->lock);
      return omniq__err(oq->id, OMNIQ_ENOMEM, "%s: cannot start a thread", fn);
    }
    p->nrunners++;
  }
  return OMNIQ_OK;
}

/* Stops claiming and waits up to timeout_ms (< 0 = forever) for the runners
 * to exit; then gives up on runs still going, joins the runners that exited,
 * detaches the others and joins the keeper. Returns how many runners were
 * left running. */
static int pool_shutdown(pool_t *p, int64_t timeout_ms) {
  omniq_t *oq = p->oq;
  pthread_mutex_lock(&p->lock);
  p->stopping = 1;
  pthread_cond_broadcast(&p->idle_cond);
  pthread_mutex_unlock(&p->lock);
  omniq__wake(oq, OMNIQ__EV_WORK); /* wakes the leader; other waiters just re-check */
  if (p->release) omniq__give_back(p); /* runners give back what claims still bring */

  struct timespec ts = omniq__mono_deadline(timeout_ms);
  pthread_mutex_lock(&p->lock);
  while (p->alive > 0) {
    int rc = timeout_ms < 0 ? pthread_cond_wait(&p->cond, &p->lock)
                            : pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    if (rc == ETIMEDOUT) break;
  }
  int left = p->alive;
  if (left > 0 && p->release) {
    /* What claims brought since the stop began goes back too. */
    pthread_mutex_unlock(&p->lock);
    omniq__give_back(p);
    pthread_mutex_lock(&p->lock);
    left = p->alive;
  }
  if (left > 0) {
    p->abandon = 1;
    for (omniq_job_t *j = p->inflight; j != NULL; j = j->next) {
      if (!omniq__job_end(j)) continue;
      omniq__job_cancel(j);
      omniq__log(&oq->log, OMNIQ_LOG_WARNING, "task.abandoned", j->task->id,
                 "still running after shutdown_timeout; left to lease expiry");
    }
  }
  int nrunners = p->nrunners;
  int exited[MAX_CONCURRENCY];
  for (int i = 0; i < nrunners; i++) exited[i] = p->runners[i].exited;
  pthread_mutex_unlock(&p->lock);

  for (int i = 0; i < nrunners; i++) {
    if (exited[i])
      pthread_join(p->runners[i].tid, NULL);
    else
      pthread_detach(p->runners[i].tid);
  }
  if (p->has_keeper) {
    pthread_mutex_lock(&p->lock);
    p->keeper.stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->keeper_tid, NULL);
    p->has_keeper = 0;
  }
  return left;
}

/* ---- public API ------------------------------------------------------------ */

static void pool_list_add(omniq_t *oq, pool_t *p) {
  pthread_mutex_lock(&oq->lock);
  p->next = oq->workers;
  oq->workers = p;
  pthread_mutex_unlock(&oq->lock);
}

static void pool_list_remove(omniq_t *oq, pool_t *p) {
  pthread_mutex_lock(&oq->lock);
  for (pool_t **pp = &oq->workers; *pp != NULL; pp = &(*pp)->next)
    if (*pp == p) {
      *pp = p->next;
      break;
    }
  pthread_mutex_unlock(&oq->lock);
}

int omniq_worker_start(omniq_t *oq, const omniq_worker_opts_t *opts, omniq_worker_t **out) {
  pool_t *p;
  int rc;
  if (out != NULL) *out = NULL;
  if (oq == NULL || out == NULL) return OMNIQ_EINVAL;
  if ((rc = omniq__pool_new(oq, "omniq_worker_start", opts, &p)) != OMNIQ_OK) return rc;
  if ((rc = pool_spawn(p, p->concurrency, "omniq_worker_start")) != OMNIQ_OK) {
    pool_shutdown(p, -1);
    omniq__pool_unref(p);
    return rc;
  }
  pthread_mutex_lock(&p->lock);
  while (p->started < p->nrunners) pthread_cond_wait(&p->cond, &p->lock);
  pthread_mutex_unlock(&p->lock);

  pool_list_add(oq, p);

  char queues[OMNIQ_MAX_QUEUES * (OMNIQ_NAME_MAX + 1)] = "";
  for (size_t i = 0; i < p->nqueues; i++)
    snprintf(queues + strlen(queues), sizeof queues - strlen(queues), "%s%s", i ? "," : "",
             p->queues[i]);
  char per_child[160] = "";
  if (p->isolation == OMNIQ_ISOLATION_PROCESS)
    snprintf(per_child, sizeof per_child,
             " max_tasks_per_child=%ld memory_limit_bytes=%lld cpu_limit_ms=%lld files_limit=%lld",
             p->max_tasks, (long long)p->limits.memory_bytes, (long long)p->limits.cpu_ms,
             (long long)p->limits.files);
  omniq__log(&oq->log, OMNIQ_LOG_INFO, "worker.started", NULL,
             "concurrency=%d isolation=%s poll_interval_ms=%lld queues=%s%s", p->concurrency,
             p->isolation == OMNIQ_ISOLATION_PROCESS ? "process" : "thread",
             (long long)p->poll_ms, queues, per_child);
  pthread_mutex_lock(&p->lock);
  p->go = 1;
  pthread_cond_broadcast(&p->cond);
  pthread_mutex_unlock(&p->lock);
  *out = p;
  return OMNIQ_OK;
}

int omniq_worker_stop(omniq_worker_t *w) {
  if (w == NULL) return OMNIQ_OK;
  omniq_t *oq = w->oq;
  pool_list_remove(oq, w);

  int left = pool_shutdown(w, w->shutdown_ms);
  if (left > 0)
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "worker.stopped", NULL,
               "%d runner(s) still busy after shutdown_timeout (a handler running, or a "
               "call to the store not yet answered); their tasks are left to lease expiry",
               left);
  else
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "worker.stopped", NULL, "all in-flight tasks finished");
  omniq__pool_unref(w);
  if (left > 0)
    return omniq__err(oq->id, OMNIQ_ETIMEDOUT,
                      "omniq_worker_stop: %d runner(s) still busy after shutdown_timeout (a "
                      "handler running, or a call to the store not yet answered)",
                      left);
  return OMNIQ_OK;
}

int omniq_worker_process(omniq_t *oq, const omniq_worker_opts_t *opts, long limit,
                         long *done) {
  pool_t *p;
  int rc;
  if (done != NULL) *done = 0;
  if (oq == NULL) return OMNIQ_EINVAL;
  if (limit < 0)
    return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_worker_process: limit must be >= 0");
  if ((rc = omniq__pool_new(oq, "omniq_worker_process", opts, &p)) != OMNIQ_OK) return rc;
  p->drain = 1;
  /* A drain ends when nothing is due or the limit is reached, with runs
   * still going on other runners and their rides' claims landing: those
   * tasks are run, not given back (the count it returns would miss them). */
  p->release = 0;
  p->limit = limit;
  p->go = 1;
  pool_list_add(oq, p); /* so a cancel through oq reaches its runs */
  /* The caller is one runner (with the last slot); the others are
   * temporary threads. */
  rc = pool_spawn(p, p->concurrency - 1, "omniq_worker_process");
  if (rc == OMNIQ_OK) {
    runner_loop(p, p->concurrency - 1);
    if (p->slots != NULL) omniq__slot_close(&p->slots[p->concurrency - 1]);
  }
  pool_shutdown(p, -1);
  pool_list_remove(oq, p);
  /* A run whose outcome the store refused is not done (the keeper's count
   * is final: it has been joined). */
  long unstored = p->unstored.n + p->keeper.unstored.n;
  if (done != NULL) *done = p->finished - unstored;
  if (unstored > 0) { /* said before any claim error: it is the worse news */
    const omniq__unstored_t *first = p->unstored.n > 0 ? &p->unstored : &p->keeper.unstored;
    rc = omniq__err(oq->id, first->rc,
                    "omniq_worker_process: %ld run(s) ended but the store refused their "
                    "outcome (%s); their tasks stay RUNNING until their leases expire",
                    unstored, first->msg);
  } else if (p->not_run > 0 && rc == OMNIQ_OK) {
    /* Claimed but not run (omniq__not_started): the drain did not finish
     * what it took, and nothing else will before those leases expire. */
    rc = omniq__err(oq->id, OMNIQ_ETIMEDOUT,
                    "omniq_worker_process: %ld claimed task(s) not run: their leases ran "
                    "short before they started (the store answered late or could not extend "
                    "them); they stay RUNNING until their leases expire",
                    p->not_run);
  } else if (rc == OMNIQ_OK) {
    rc = p->error;
  }
  omniq__pool_unref(p);
  return rc;
}

int omniq_worker_run(omniq_t *oq, const omniq_worker_opts_t *opts) {
  sigset_t set, old;
  omniq_worker_t *w;
  int sig = 0;
  if (oq == NULL) return OMNIQ_EINVAL;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  /* Blocked here (and so in every pool thread), the signals stay pending
   * until sigwait takes them: no handler runs in a random thread. */
  pthread_sigmask(SIG_BLOCK, &set, &old);
  int rc = omniq_worker_start(oq, opts, &w);
  if (rc == OMNIQ_OK) {
    while (sigwait(&set, &sig) != 0) {
    }
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "worker.signal", NULL, "%s received; stopping",
               sig == SIGINT ? "SIGINT" : "SIGTERM");
    rc = omniq_worker_stop(w);
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc;
}

void omniq__pool_cancelled(omniq_t *oq, const char *id) {
  int ended = 0;
  pthread_mutex_lock(&oq->lock); /* pools on oq->workers are not freed under it */
  for (pool_t *p = oq->workers; p != NULL; p = p->next) {
    pthread_mutex_lock(&p->lock);
    /* The store holds the task CANCELLED: whatever claim a run here holds
     * is void, so the run ends with nothing to report, as a refused
     * extension would end it, but now. */
    for (omniq_job_t *j = p->inflight; j != NULL; j = j->next)
      if (strcmp(j->task->id, id) == 0 && omniq__job_end(j)) {
        omniq__job_cancel(j);
        ended++;
      }
    pthread_mutex_unlock(&p->lock);
  }
  pthread_mutex_unlock(&oq->lock);
  if (ended > 0)
    omniq__log(&oq->log, OMNIQ_LOG_INFO, "task.claim_lost", id,
               "cancelled through this handle while running; its report will be ignored");
}

void omniq__pool_close_all(omniq_t *oq) {
  for (;;) {
    pthread_mutex_lock(&oq->lock);
    pool_t *w = oq->workers;
    while (w != NULL && w->drain) w = w->next; /* its caller ends it */
    pthread_mutex_unlock(&oq->lock);
    if (w == NULL) break;
    omniq_worker_stop(w);
  }
  pthread_mutex_lock(&oq->lock);
  while (oq->threads_alive > 0) pthread_cond_wait(&oq->threads_cond, &oq->lock);
  pthread_mutex_unlock(&oq->lock);
}

