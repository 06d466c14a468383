/* Several worker processes share one store and drain it through the whole
 * stack (queue engine, pool, handler): every task runs exactly once,
 * counted by the handler itself, and none is lost. Run per backend:
 * `test_worker_drain file` and `test_worker_drain sqlite`. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

#define PROCS 4
#define THREADS_PER_PROC 2
#define TASKS 20000
#define BATCH 1000

static const char *backend = "file";

/* What one process's handler saw: the id of every run, in order. */
typedef struct {
  pthread_mutex_t lock;
  char (*ids)[OMNIQ_ID_SIZE];
  size_t n;
} runs_t;

static int count_handler(omniq_job_t *job, void *userdata) {
  runs_t *runs = userdata;
  pthread_mutex_lock(&runs->lock);
  if (runs->n < TASKS) memcpy(runs->ids[runs->n++], omniq_job_id(job), OMNIQ_ID_SIZE);
  pthread_mutex_unlock(&runs->lock);
  return omniq_job_return(job, "null");
}

/* A worker process: its own handle, a pool of THREADS_PER_PROC draining
 * until nothing is due, then the ids its handler ran, one per line. */
static int worker_child(const omniq_settings_t *s, int ready_fd, int go_fd, const char *out) {
  runs_t runs = {.ids = calloc(TASKS, OMNIQ_ID_SIZE)};
  omniq_worker_opts_t o;
  omniq_t *oq = NULL;
  long done = 0;
  char c = 'r';
  pthread_mutex_init(&runs.lock, NULL);
  if (runs.ids == NULL || omniq_open(&oq, s) != OMNIQ_OK) return 10;
  if (omniq_register(oq, "count", count_handler, &runs) != OMNIQ_OK) return 11;
  if (write(ready_fd, &c, 1) != 1 || th_read_full(go_fd, &c, 1) != 0) return 12;
  omniq_worker_opts_init(&o);
  o.concurrency = THREADS_PER_PROC;
  int rc = omniq_worker_process(oq, &o, 0, &done);
  omniq_close(oq);
  FILE *f = fopen(out, "w");
  for (size_t i = 0; f != NULL && i < runs.n; i++) fprintf(f, "%s\n", runs.ids[i]);
  if (f == NULL || fclose(f) != 0) return 13;
  free(runs.ids);
  pthread_mutex_destroy(&runs.lock);
  return rc == OMNIQ_OK && (size_t)done == runs.n ? 0 : 14;
}

static void test_processes_drain_every_task_exactly_once_counted_by_the_handler(void **state) {
  th_store_t *st = *state;
  char(*enqueued)[OMNIQ_ID_SIZE] = calloc(TASKS, OMNIQ_ID_SIZE);
  char(*ran)[OMNIQ_ID_SIZE] = calloc(TASKS + 1, OMNIQ_ID_SIZE);
  omniq_enqueue_item_t items[BATCH];
  int ready[2], go[2];
  pid_t pids[PROCS];
  assert_non_null(enqueued);
  assert_non_null(ran);

  /* fsync off: durability against power loss is not observable here, and
   * 20,000 tasks would otherwise spend the test in fsync. */
  omniq_close(st->oq);
  st->settings.fsync = 0;
  th_ok(NULL, omniq_open(&st->oq, &st->settings));

  for (int i = 0; i < BATCH; i++) items[i] = (omniq_enqueue_item_t){"count", "[]", NULL, NULL};
  for (int i = 0; i < TASKS; i += BATCH)
    th_ok(st->oq, omniq_enqueue_many(st->oq, items, BATCH, &enqueued[i]));
  omniq_close(st->oq); /* the children hold the only handles while they run */
  st->oq = NULL;

  assert_int_equal(pipe(ready), 0);
  assert_int_equal(pipe(go), 0);
  for (int p = 0; p < PROCS; p++) {
    char out[OMNIQ_PATH_MAX + 16];
    snprintf(out, sizeof out, "%s/ran.%d", st->dir, p);
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) _exit(worker_child(&st->settings, ready[1], go[0], out));
  }
  char c[PROCS];
  assert_int_equal(th_read_full(ready[0], c, PROCS), 0); /* all open: start together */
  memset(c, 'g', sizeof c);
  assert_int_equal(write(go[1], c, PROCS), PROCS);
  for (int p = 0; p < PROCS; p++) {
    int status;
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
  }
  close(ready[0]);
  close(ready[1]);
  close(go[0]);
  close(go[1]);

  size_t n = 0;
  int procs_that_ran = 0;
  for (int p = 0; p < PROCS; p++) {
    char path[OMNIQ_PATH_MAX + 16], line[64];
    size_t before = n;
    snprintf(path, sizeof path, "%s/ran.%d", st->dir, p);
    FILE *in = fopen(path, "r");
    assert_non_null(in);
    while (fgets(line, sizeof line, in) != NULL && n <= TASKS) {
      line[strcspn(line, "\n")] = '\0';
      memcpy(ran[n++], line, OMNIQ_ID_SIZE);
    }
    fclose(in);
    procs_that_ran += n > before;
  }
  /* Each enqueued id ran exactly once: same multiset, no extras. */
  assert_int_equal(n, TASKS);
  qsort(enqueued, TASKS, OMNIQ_ID_SIZE, th_cmp_id);
  qsort(ran, TASKS, OMNIQ_ID_SIZE, th_cmp_id);
  assert_memory_equal(enqueued, ran, (size_t)TASKS * OMNIQ_ID_SIZE);
  assert_true(procs_that_ran >= 2);

  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(NULL, omniq_open(&st->oq, &st->settings));
  th_ok(st->oq, omniq_count_by_status(st->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], TASKS);
  assert_int_equal(counts[OMNIQ_PENDING] + counts[OMNIQ_RUNNING] + counts[OMNIQ_FAILED], 0);
  free(enqueued);
  free(ran);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_prestate_setup_teardown(
          test_processes_drain_every_task_exactly_once_counted_by_the_handler, th_store_setup,
          th_store_teardown, (void *)backend),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
