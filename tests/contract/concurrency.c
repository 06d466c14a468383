/* SPDX-License-Identifier: MIT */
/* Contract: under any number of threads and processes, one claim wins.
 *
 * CONC_TASKS tasks; CONC_THREADS threads in this process, each with its own
 * backend, and CONC_PROCS child processes, each with one backend shared by
 * CONC_PROC_THREADS threads, claim in batches until nothing is due. Every
 * claimer collects the ids it got; every task must be claimed exactly once.
 *
 * Children are started (tests/support/procs.h) while this process has no
 * backend open, and each opens its own from the same settings: a forked
 * child must not inherit open store state (SQLite's POSIX locks are per
 * process) nor other threads. The children wait at the harness's gate and
 * the threads at a barrier, so all claimers start together; nothing sleeps.
 * With env->single_process the store cannot be opened from another process
 * and only the threads claim. */
#include "suite.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/procs.h"

#define CONC_TASKS 20000
#define CONC_THREADS 8
#define CONC_PROCS 4
#define CONC_PROC_THREADS 2
/* Small batches mean many claim rounds (about 2,500), so claimers collide
 * often; the whole test still takes a few seconds under the sanitizers. */
#define CONC_BATCH 8
/* OMNIQ_EBUSY is an answer a backend may give under contention (a lock it
 * waited for in vain); a worker tries again, and so does a claimer here,
 * this many times in a row before it counts as a failure. */
#define CONC_BUSY_TRIES 100

/* One claiming thread: its backend, and the ids it claimed. */
typedef struct claimer {
  const omniq_storage_ops_t *ops; /* its own copy: the run's may be gone after a failure */
  void *be;                 /* own backend, or the child's shared one */
  pthread_barrier_t *start; /* NULL: already started */
  char (*ids)[OMNIQ_ID_SIZE];
  size_t n;
  int rc;
  char err[ERRLEN];
} claimer_t;

static void *claimer_main(void *arg) {
  claimer_t *cl = arg;
  static const char *const def[] = {OMNIQ_DEFAULT_QUEUE};
  omniq_claim_req_t req = {.now_ms = NOW,
                           .lease_until_ms = NOW + LEASE_MS,
                           .queues = def,
                           .nqueues = 1,
                           .max = CONC_BATCH};
  int busy = 0;
  if (cl->start != NULL) pthread_barrier_wait(cl->start);
  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    cl->rc = cl->ops->claim(cl->be, &req, &got, &n, cl->err, ERRLEN);
    if (cl->rc == OMNIQ_EBUSY && ++busy < CONC_BUSY_TRIES) continue;
    busy = 0;
    if (cl->rc != OMNIQ_OK || n == 0) {
      ct_tasks_free(got, n); /* a backend may hand out an empty array */
      break;
    }
    for (size_t i = 0; i < n && cl->n < CONC_TASKS; i++)
      memcpy(cl->ids[cl->n++], got[i]->id, OMNIQ_ID_SIZE);
    ct_tasks_free(got, n);
  }
  return NULL;
}

/* A child process: one backend of its own, shared by its threads. Exit
 * codes, never cmocka: the assertions belong to the parent. */
static int child_main(th_procs_t *p, int index, void *ud) {
  const omniq_settings_t *settings = ud;
  claimer_t cl[CONC_PROC_THREADS];
  pthread_t th[CONC_PROC_THREADS];
  void *be = NULL;
  char err[ERRLEN];
  int status = 0;
  if (ct_ops->open(settings, &be, err, ERRLEN) != OMNIQ_OK) {
    fprintf(stderr, "child open: %s\n", err);
    return 11;
  }
  if (th_procs_ready(p) != 0) return 12;
  for (int i = 0; i < CONC_PROC_THREADS; i++) {
    cl[i] = (claimer_t){.ops = ct_ops, .be = be, .ids = calloc(CONC_TASKS, OMNIQ_ID_SIZE)};
    if (cl[i].ids == NULL || pthread_create(&th[i], NULL, claimer_main, &cl[i]) != 0) return 13;
  }
  char(*all)[OMNIQ_ID_SIZE] = calloc(CONC_TASKS, OMNIQ_ID_SIZE);
  size_t n = 0;
  for (int i = 0; i < CONC_PROC_THREADS; i++) {
    pthread_join(th[i], NULL);
    if (cl[i].rc != OMNIQ_OK) {
      fprintf(stderr, "child claim: %s: %s\n", omniq_err_name(cl[i].rc), cl[i].err);
      status = 14;
    }
    for (size_t k = 0; all != NULL && k < cl[i].n && n < CONC_TASKS; k++)
      memcpy(all[n++], cl[i].ids[k], OMNIQ_ID_SIZE);
    free(cl[i].ids);
  }
  ct_ops->close(be);
  if (all == NULL || th_procs_put_ids(p, index, (const char(*)[OMNIQ_ID_SIZE])all, n) != 0)
    status = 15;
  free(all);
  return status;
}

static void test_concurrent_claims_take_each_task_exactly_once(void **state) {
  ct_fx_t *fx = *state;
  const int procs = ct_env->single_process ? 0 : CONC_PROCS;
  char(*want)[OMNIQ_ID_SIZE] = calloc(CONC_TASKS, OMNIQ_ID_SIZE);
  char(*got)[OMNIQ_ID_SIZE] = NULL;
  size_t ngot = 0;
  th_procs_t p;
  assert_non_null(want);

  /* Enqueue in batches, then close: nothing open across fork. */
  for (size_t done = 0; done < CONC_TASKS;) {
    omniq_task_t *batch[1000];
    size_t n = CONC_TASKS - done < 1000 ? CONC_TASKS - done : 1000;
    for (size_t i = 0; i < n; i++) {
      batch[i] = ct_task("default", (int)((done + i) % 3), NOW - (int64_t)((done + i) % 7));
      memcpy(want[done + i], batch[i]->id, OMNIQ_ID_SIZE);
    }
    OK(fx, ct_enqueue(fx, batch, n));
    for (size_t i = 0; i < n; i++) omniq_task_free(batch[i]);
    done += n;
  }
  ct_ops->close(fx->be);
  fx->be = NULL;

  if (procs > 0) th_procs_start(&p, procs, child_main, &fx->settings);
  pthread_barrier_t start;
  pthread_t th[CONC_THREADS];
  claimer_t *cl = calloc(CONC_THREADS, sizeof *cl);
  assert_non_null(cl);
  assert_int_equal(pthread_barrier_init(&start, NULL, CONC_THREADS + 1), 0);
  for (int i = 0; i < CONC_THREADS; i++) {
    cl[i] = (claimer_t){.ops = ct_ops, .start = &start, .ids = calloc(CONC_TASKS, OMNIQ_ID_SIZE)};
    assert_non_null(cl[i].ids);
    OK(fx, ct_ops->open(&fx->settings, &cl[i].be, fx->err, ERRLEN));
  }
  for (int i = 0; i < CONC_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, claimer_main, &cl[i]), 0);
  pthread_barrier_wait(&start);
  if (procs > 0) th_procs_go(&p); /* everyone goes */

  /* Every thread and process ends before anything is judged. */
  for (int i = 0; i < CONC_THREADS; i++) {
    pthread_join(th[i], NULL);
    ct_ops->close(cl[i].be);
  }
  if (procs > 0) th_procs_wait(&p);
  for (int i = 0; i < CONC_THREADS; i++)
    if (cl[i].rc != OMNIQ_OK) fail_msg("thread %d: %s: %s", i, omniq_err_name(cl[i].rc), cl[i].err);
  if (procs > 0) {
    th_procs_ids(&p, &got, &ngot);
    th_procs_free(&p);
  }
  for (int i = 0; i < CONC_THREADS; i++) {
    char(*more)[OMNIQ_ID_SIZE] = realloc(got, (ngot + cl[i].n + 1) * OMNIQ_ID_SIZE);
    assert_non_null(more);
    got = more;
    memcpy(got[ngot], cl[i].ids, cl[i].n * OMNIQ_ID_SIZE);
    ngot += cl[i].n;
    free(cl[i].ids);
  }
  th_assert_exactly_once(want, CONC_TASKS, got, ngot);

  OK(fx, ct_ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
  int64_t c[OMNIQ_STATUS_COUNT];
  ct_counts(fx, c);
  assert_int_equal(c[OMNIQ_RUNNING], CONC_TASKS);
  assert_int_equal(c[OMNIQ_PENDING], 0);
  pthread_barrier_destroy(&start);
  free(cl);
  free(got);
  free(want);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_concurrent_claims_take_each_task_exactly_once),
};

const ct_section_t ct_section_concurrency = {tests, sizeof tests / sizeof tests[0], 2};
