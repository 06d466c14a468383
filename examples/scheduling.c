/* SPDX-License-Identifier: MIT */
/* Scheduling from C: the code of docs/howto/scheduling.md and of the pool
 * in docs/workers.md, as one program that runs.
 *
 * Enqueues a task with a delay, one at a time of day, one on an interval
 * and one on a cron schedule, runs a pool in the background, cancels the
 * interval task after its second run, and checks what ran. The blocks
 * between "doc:begin" and "doc:end" are shown in the docs exactly as here
 * (a ctest test compares them). Exits 0 when everything ran as said. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <omniq.h>

/* Counts the runs of "tick" and wakes the main thread at each. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ticked = PTHREAD_COND_INITIALIZER;
static int ticks;

static int tick(omniq_job_t *job, void *userdata) {
  (void)userdata;
  pthread_mutex_lock(&lock);
  ticks++;
  pthread_cond_broadcast(&ticked);
  pthread_mutex_unlock(&lock);
  return omniq_job_return(job, "null");
}

static int report(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_return(job, "\"done\"");
}

/* Waits for the delayed task, then for the interval task's second run,
 * and cancels it. */
static int wait_for_tasks(omniq_t *oq, const char *later, const char *every) {
  omniq_result_t *r = NULL;
  int rc = omniq_get_result(oq, later, 30.0, &r);
  if (rc == OMNIQ_OK && omniq_result_status(r) != OMNIQ_SUCCESS) rc = OMNIQ_EFAILED;
  omniq_result_free(r);
  pthread_mutex_lock(&lock);
  while (ticks < 2) pthread_cond_wait(&ticked, &lock);
  pthread_mutex_unlock(&lock);
  /* doc:begin cancel */
  omniq_cancel(oq, every); /* no more runs; a running one sees omniq_job_cancelled() */
  /* doc:end cancel */
  return rc;
}

int main(void) {
  omniq_t *oq;
  int rc;
  char later[OMNIQ_ID_SIZE], at[OMNIQ_ID_SIZE], every[OMNIQ_ID_SIZE], nightly[OMNIQ_ID_SIZE];

  if (omniq_open(&oq, NULL) != OMNIQ_OK) {
    fprintf(stderr, "open: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  omniq_register(oq, "report", report, NULL);
  omniq_register(oq, "tick", tick, NULL);
  {
    /* doc:begin delay */
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.delay_ms = 200; /* due 200 ms from now */
    omniq_enqueue(oq, "report", NULL, NULL, &o, later);
    /* doc:end delay */
  }
  {
    /* doc:begin at */
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.eta_ms = INT64_C(1924992000000); /* 2031-01-01T00:00:00Z, in ms since the epoch */
    omniq_enqueue(oq, "report", NULL, NULL, &o, at);
    /* doc:end at */
  }
  {
    /* doc:begin interval */
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.interval_ms = 100; /* again 100 ms after each run ends, until cancelled */
    omniq_enqueue(oq, "tick", NULL, NULL, &o, every);
    /* doc:end interval */
  }
  {
    /* doc:begin cron */
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.cron = "0 3 * * *"; /* 03:00 UTC every day, until cancelled */
    omniq_enqueue(oq, "report", NULL, NULL, &o, nightly);
    /* doc:end cron */
  }

  /* doc:begin pool */
  omniq_worker_opts_t wo;
  omniq_worker_opts_init(&wo);
  wo.concurrency = 4;
  wo.poll_interval_ms = 50; /* look for tasks coming due 20 times a second */
  omniq_worker_t *w;
  if ((rc = omniq_worker_start(oq, &wo, &w)) != OMNIQ_OK) return 1;
  /* ... the program goes on; tasks run in the background ... */
  rc = wait_for_tasks(oq, later, every);
  omniq_worker_stop(w);
  /* doc:end pool */

  omniq_task_t *t = NULL;
  int ok = rc == OMNIQ_OK;
  if (omniq_get_task(oq, every, &t) == OMNIQ_OK) {
    ok &= omniq_task_status(t) == OMNIQ_CANCELLED;
    omniq_task_free(t);
  }
  if (omniq_get_task(oq, at, &t) == OMNIQ_OK) {
    ok &= omniq_task_status(t) == OMNIQ_PENDING && omniq_task_eta(t) == INT64_C(1924992000000);
    omniq_task_free(t);
  }
  if (omniq_get_task(oq, nightly, &t) == OMNIQ_OK) {
    ok &= omniq_task_eta(t) % 86400000 == 3 * 3600000; /* the next 03:00 */
    omniq_task_free(t);
  }
  printf("delayed task done, interval task ran %d times then was cancelled: %s\n", ticks,
         ok ? "ok" : "NOT AS EXPECTED");
  omniq_close(oq);
  return ok ? 0 : 1;
}
