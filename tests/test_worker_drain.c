/* SPDX-License-Identifier: MIT */
/* Several worker processes share one store and drain it through the whole
 * stack (engine, pool, handler): every task runs exactly once,
 * counted by the handler itself, and none is lost. Run per backend:
 * `test_worker_drain file` and `test_worker_drain sqlite`.
 *
 * Nothing here may depend on how fast the machine is. The lease is far
 * longer than any run of this test: with the default 30 s, a claim that
 * came back more than 20 s after it was asked (a loaded disk) left its
 * tasks unstarted (docs/workers.md, "A claimed task that has not
 * started"), which is lease recovery's business, not this test's. And on
 * the file backend, where each task costs a dozen file operations (and
 * this machine's disk discards every freed block as it goes), 5,000 tasks
 * race the four processes through the same claims as 20,000 would, in a
 * quarter of the time. SQLite's busy timeout (5 s) is raised too: a claim
 * that waited longer for the write lock (four processes under a sanitizer
 * on a loaded machine can make it) would end that process's drain with
 * OMNIQ_EBUSY, as a drain is documented to. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/helpers.h"
#include "support/procs.h"
#include "storage/sqlite/backend.h"

#define PROCS 4
#define THREADS_PER_PROC 2
#define TASKS 20000      /* SQLite, PostgreSQL */
#define FILE_TASKS 5000  /* the file backend */
#define BATCH 1000
#define LEASE_MS 3600000 /* an hour */
#define BUSY_MS 600000   /* SQLite's busy timeout here: ten minutes */

static const char *backend = "file";
static int tasks = FILE_TASKS;

/* What one process's handler saw: the id of every run, in order. */
typedef struct {
  pthread_mutex_t lock;
  char (*ids)[OMNIQ_ID_SIZE];
  size_t n;
} runs_t;

static int count_handler(omniq_job_t *job, void *userdata) {
  runs_t *runs = userdata;
  pthread_mutex_lock(&runs->lock);
  if (runs->n < (size_t)tasks) memcpy(runs->ids[runs->n++], omniq_job_id(job), OMNIQ_ID_SIZE);
  pthread_mutex_unlock(&runs->lock);
  return omniq_job_return(job, "null");
}

/* A worker process: its own handle, a pool of THREADS_PER_PROC draining
 * until nothing is due, then the ids its handler ran. */
static int worker_child(th_procs_t *p, int index, void *ud) {
  const omniq_settings_t *s = ud;
  runs_t runs = {.ids = calloc((size_t)tasks, OMNIQ_ID_SIZE)};
  omniq_worker_opts_t o;
  omniq_t *oq = NULL;
  long done = 0;
  pthread_mutex_init(&runs.lock, NULL);
  if (runs.ids == NULL || omniq_open(&oq, s) != OMNIQ_OK) return 10;
  if (omniq_register(oq, "count", count_handler, &runs) != OMNIQ_OK) return 11;
  if (th_procs_ready(p) != 0) return 12;
  omniq_worker_opts_init(&o);
  o.concurrency = THREADS_PER_PROC;
  int rc = omniq_worker_process(oq, &o, 0, &done);
  if (rc != OMNIQ_OK || (size_t)done != runs.n)
    fprintf(stderr, "process %d: %s, %ld runs counted, %zu seen by the handler: %s\n", index,
            omniq_err_name(rc), done, runs.n, omniq_errmsg(oq));
  omniq_close(oq);
  if (th_procs_put_ids(p, index, (const char(*)[OMNIQ_ID_SIZE])runs.ids, runs.n) != 0) return 13;
  free(runs.ids);
  pthread_mutex_destroy(&runs.lock);
  return rc == OMNIQ_OK && (size_t)done == runs.n ? 0 : 14;
}

static void test_processes_drain_every_task_exactly_once_counted_by_the_handler(void **state) {
  th_store_t *st = *state;
  char(*enqueued)[OMNIQ_ID_SIZE] = calloc((size_t)tasks, OMNIQ_ID_SIZE);
  char(*ran)[OMNIQ_ID_SIZE] = NULL;
  size_t n = 0;
  omniq_enqueue_item_t items[BATCH];
  th_procs_t p;
  assert_non_null(enqueued);

  /* fsync off: durability against power loss is not observable here, and
   * 20,000 tasks would otherwise spend the test in fsync. */
  omniq_close(st->oq);
  st->settings.fsync = 0;
  st->settings.lease_ms = LEASE_MS;
  th_ok(NULL, omniq_open(&st->oq, &st->settings));

  for (int i = 0; i < BATCH; i++) items[i] = (omniq_enqueue_item_t){"count", "[]", NULL, NULL};
  for (int i = 0; i < tasks; i += BATCH)
    th_ok(st->oq, omniq_enqueue_many(st->oq, items, BATCH, &enqueued[i]));
  omniq_close(st->oq); /* the children hold the only handles while they run */
  st->oq = NULL;

  th_procs_start(&p, PROCS, worker_child, &st->settings); /* all open: start together */
  th_procs_go(&p);
  th_procs_wait(&p);
  int procs_that_ran = th_procs_ids(&p, &ran, &n);
  th_procs_free(&p);

  /* Each enqueued id ran exactly once: same multiset, no extras. */
  th_assert_exactly_once(enqueued, (size_t)tasks, ran, n);
  assert_true(procs_that_ran >= 2);

  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(NULL, omniq_open(&st->oq, &st->settings));
  th_ok(st->oq, omniq_count_by_status(st->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], tasks);
  assert_int_equal(counts[OMNIQ_PENDING] + counts[OMNIQ_RUNNING] + counts[OMNIQ_FAILED], 0);
  free(enqueued);
  free(ran);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  if (strcmp(backend, "file") != 0) tasks = TASKS;
  omniq__sqlite_set_busy_timeout(BUSY_MS); /* the children inherit it */
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate_setup_teardown(
          test_processes_drain_every_task_exactly_once_counted_by_the_handler, th_store_setup,
          th_store_teardown, (void *)backend),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
