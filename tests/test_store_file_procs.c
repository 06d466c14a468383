/* SPDX-License-Identifier: MIT */
/* The file backend across processes: several processes draining one
 * directory claim each task exactly once; a process killed with SIGKILL
 * loses neither its claimed tasks nor its task locks. Children are started
 * with the multi-process harness (support/procs.h) and open their own
 * backend; the SIGKILL tests report through pipes. Start lines are pipes
 * and barriers, never sleeps. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/records.h"
#include "core/engine.h"
#include "storage/file/backend.h"
#include "storage/file/names.h"
#include "support/backend.h"
#include "support/procs.h"

#define DRAIN_TASKS 20000
#define DRAIN_PROCS 4
#define DRAIN_THREADS 2
#define BATCH 500

static const char *const default_queue[] = {OMNIQ_DEFAULT_QUEUE};

/* ---- the drain ------------------------------------------------------------ */

typedef struct {
  th_be_t *f;
  pthread_barrier_t *start;
  char (*ids)[OMNIQ_ID_SIZE];
  size_t n, cap;
  int errors;
} drainer_t;

static void *drain(void *arg) {
  drainer_t *d = arg;
  const omniq_storage_ops_t *ops = d->f->ops;
  char err[512];
  pthread_barrier_wait(d->start);
  for (;;) {
    int64_t now = th_be_now(d->f);
    omniq_claim_req_t req = {now, now + 30000, default_queue, 1, 4};
    omniq_task_t **got = NULL;
    size_t n = 0;
    if (ops->claim(d->f->b, &req, &got, &n, err, sizeof err) != OMNIQ_OK) {
      d->errors++;
      break;
    }
    if (n == 0) break; /* everything was enqueued before the start: drained */
    for (size_t i = 0; i < n; i++) {
      omniq_result_t *r = th_be_result(got[i]->id, OMNIQ_SUCCESS, now);
      omniq_decision_t dc = {.id = got[i]->id, .token = got[i]->token,
                             .next_status = OMNIQ_SUCCESS, .result = r};
      if (ops->finish(d->f->b, &dc, err, sizeof err) != OMNIQ_OK || got[i]->attempts != 1)
        d->errors++;
      if (d->n < d->cap) memcpy(d->ids[d->n++], got[i]->id, OMNIQ_ID_SIZE);
      omniq_result_free(r);
    }
    omniq__tasks_free(got, n);
  }
  return NULL;
}

/* A child: opens its own backend on the store, gets ready, drains with two
 * threads, hands over the ids it claimed. Exit code 0 = clean. */
static int drain_child(th_procs_t *p, int index, void *ud) {
  th_be_t *parent = ud, f;
  pthread_barrier_t start;
  pthread_t th[DRAIN_THREADS];
  drainer_t d[DRAIN_THREADS];
  int errors = 0;
  memset(&f, 0, sizeof f);
  pthread_mutex_init(&f.lock, NULL);
  th_clock_init(&f.clock, th_be_now(parent));
  f.dir = parent->dir;
  th_be_settings(&f, "file", parent->dir, 0);
  if (th_be_open(&f) != OMNIQ_OK) return 10;
  if (th_procs_ready(p) != 0) return 11;
  pthread_barrier_init(&start, NULL, DRAIN_THREADS);
  for (int i = 0; i < DRAIN_THREADS; i++) {
    d[i] = (drainer_t){&f, &start, calloc(DRAIN_TASKS, OMNIQ_ID_SIZE), 0, DRAIN_TASKS, 0};
    if (d[i].ids == NULL || pthread_create(&th[i], NULL, drain, &d[i]) != 0) return 12;
  }
  for (int i = 0; i < DRAIN_THREADS; i++) {
    pthread_join(th[i], NULL);
    errors += d[i].errors;
  }
  /* One list for the parent: the second thread's ids after the first's. */
  if (d[0].n + d[1].n > DRAIN_TASKS) errors++;
  else memcpy(d[0].ids[d[0].n], d[1].ids, d[1].n * OMNIQ_ID_SIZE);
  if (errors == 0 && th_procs_put_ids(p, index, (const char(*)[OMNIQ_ID_SIZE])d[0].ids,
                                      d[0].n + d[1].n) != 0)
    errors++;
  for (int i = 0; i < DRAIN_THREADS; i++) free(d[i].ids);
  pthread_barrier_destroy(&start);
  th_be_close(&f);
  pthread_mutex_destroy(&f.lock);
  return errors == 0 ? 0 : 1;
}

static void test_four_processes_drain_20000_tasks_each_claimed_once(void **state) {
  th_be_t *f = th_be_new("file", 0);
  char(*enq)[OMNIQ_ID_SIZE] = calloc(DRAIN_TASKS, OMNIQ_ID_SIZE);
  char(*seen)[OMNIQ_ID_SIZE] = NULL;
  size_t n = 0;
  th_procs_t p;
  (void)state;
  assert_non_null(enq);
  for (int i = 0; i < DRAIN_TASKS; i += BATCH) {
    omniq_task_t *batch[BATCH];
    for (int k = 0; k < BATCH; k++) batch[k] = th_be_task(f, NULL, 0, th_be_now(f));
    assert_int_equal(f->ops->enqueue(f->b, batch, BATCH, f->err, sizeof f->err), OMNIQ_OK);
    for (int k = 0; k < BATCH; k++) {
      memcpy(enq[i + k], batch[k]->id, OMNIQ_ID_SIZE);
      omniq_task_free(batch[k]);
    }
  }
  th_be_close(f); /* the parent holds nothing while the children run */
  th_procs_start(&p, DRAIN_PROCS, drain_child, f);
  th_procs_go(&p);
  th_procs_wait(&p);
  int busy_procs = th_procs_ids(&p, &seen, &n);
  th_procs_free(&p);

  /* Every task claimed exactly once, none lost, none invented. */
  th_assert_exactly_once(enq, DRAIN_TASKS, seen, n);
  assert_true(busy_procs >= 2);

  th_be_reopen(f);
  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], DRAIN_TASKS);
  assert_int_equal(counts[OMNIQ_PENDING] + counts[OMNIQ_RUNNING] + counts[OMNIQ_FAILED], 0);
  for (int i = 0; i < DRAIN_TASKS; i += 97) {
    omniq_task_t *t = NULL;
    assert_int_equal(f->ops->get_task(f->b, enq[i], &t, f->err, sizeof f->err), OMNIQ_OK);
    assert_int_equal(t->status, OMNIQ_SUCCESS);
    assert_int_equal(t->attempts, 1);
    assert_int_equal(t->token, 1);
    omniq_task_free(t);
  }
  free(enq);
  free(seen);
  th_be_free(f);
}

/* ---- SIGKILL ------------------------------------------------------------- */

/* Blocks until killed: hold is a pipe nobody writes to. */
static void block_forever(int hold) {
  char c;
  while (read(hold, &c, 1) != 0) {
  }
  _exit(3);
}

static void test_sigkilled_worker_tasks_run_again_after_the_lease(void **state) {
  th_be_t *f = th_be_new("file", 1);
  int report[2], hold[2];
  char ids[3][OMNIQ_ID_SIZE];
  (void)state;
  for (int i = 0; i < 5; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(pipe(report), 0);
  assert_int_equal(pipe(hold), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    /* The child: its own backend, three claims, then it hangs on to them. */
    omniq_task_t **got = NULL;
    size_t k = 0;
    omniq_claim_req_t req = {th_be_now(f), th_be_now(f) + 30000, default_queue, 1, 3};
    th_be_close(f); /* never touch cmocka here: failures are exit codes */
    if (th_be_open(f) != OMNIQ_OK || f->ops->claim(f->b, &req, &got, &k, f->err, 512) != 0 || k != 3)
      _exit(2);
    for (int i = 0; i < 3; i++)
      if (write(report[1], got[i]->id, OMNIQ_ID_SIZE) != OMNIQ_ID_SIZE) _exit(2);
    block_forever(hold[0]);
  }
  assert_int_equal(th_read_full(report[0], ids, sizeof ids), 0);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));

  omniq_task_t **lost = NULL, **got = NULL;
  size_t n = 0;
  assert_int_equal(f->ops->expired_leases(f->b, th_be_now(f), 10, &lost, &n, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 0); /* the lease still runs */
  assert_int_equal(th_be_claim(f, 10, &got), 2); /* only the two it did not take */
  for (int i = 0; i < 2; i++) {
    omniq_decision_t d = {.id = got[i]->id, .token = got[i]->token, .next_status = OMNIQ_SUCCESS};
    assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
  }
  omniq__tasks_free(got, 2);

  th_clock_advance(&f->clock, 30001);
  assert_int_equal(f->ops->expired_leases(f->b, th_be_now(f), 10, &lost, &n, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 3);
  omniq_task_error_t *e = omniq_task_error_new("WorkerLost", "lease expired", th_be_now(f), NULL, 1, 1);
  for (size_t i = 0; i < n; i++) {
    int mine = 0;
    for (int k = 0; k < 3; k++) mine |= strcmp(lost[i]->id, ids[k]) == 0;
    assert_true(mine);
    assert_int_equal(lost[i]->status, OMNIQ_RUNNING);
    assert_int_equal(lost[i]->attempts, 1);
    omniq_decision_t d = {.id = lost[i]->id, .token = lost[i]->token,
                          .next_status = OMNIQ_PENDING, .eta_ms = th_be_now(f), .error = e};
    assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
    /* The dead worker's token is spent: its late finish changes nothing. */
    d.next_status = OMNIQ_SUCCESS;
    assert_int_equal(th_be_finish(f, &d), OMNIQ_ESTATE);
  }
  assert_int_equal(th_be_claim(f, 10, &got), 3);
  for (int i = 0; i < 3; i++) {
    assert_int_equal(got[i]->attempts, 2);
    assert_int_equal(got[i]->token, 2);
    assert_string_equal(got[i]->last_error->error_type, "WorkerLost");
  }
  omniq__tasks_free(got, 3);
  omniq__tasks_free(lost, n);
  omniq_task_error_free(e);
  close(report[0]);
  close(report[1]);
  close(hold[0]);
  close(hold[1]);
  th_be_free(f);
}

/* A process that dies holding a task lock in the middle of a claim (after
 * the rename, before the rewrite): its lock dies with it, and the task goes
 * back to pending with no attempt counted. */
static void test_task_lock_dies_with_a_killed_claimer(void **state) {
  th_be_t *f = th_be_new("file", 1);
  int report[2], hold[2];
  char id[OMNIQ_ID_SIZE], name[OMNIQ__PNAME_SIZE];
  (void)state;
  th_be_add(f, NULL, 0, th_be_now(f), id);
  omniq__fname_pending(omniq__fname_iprio(0), th_be_now(f), id, name);
  assert_int_equal(pipe(report), 0);
  assert_int_equal(pipe(hold), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    char e[256], idname[OMNIQ__IDNAME_SIZE];
    th_be_close(f);
    if (th_be_open(f) != OMNIQ_OK) _exit(2);
    omniq__fs_t *fs = f->b;
    omniq__pending_t p;
    int qfd;
    if (omniq__fidx_find(fs->idx, id, 1, &p) != 1 ||
        omniq__flock_take(&fs->locks, id, e, sizeof e) != 0 ||
        omniq__fidx_open_dir(fs->idx, p.qdir, &qfd, e, sizeof e) != OMNIQ_OK)
      _exit(2);
    omniq__fname_id(id, idname);
    if (renameat(qfd, p.name, fs->running_fd, idname) != 0) _exit(2);
    if (write(report[1], "L", 1) != 1) _exit(2);
    block_forever(hold[0]);
  }
  char c;
  assert_int_equal(th_read_full(report[0], &c, 1), 0);
  omniq__fs_t *fs = f->b;
  assert_false(omniq__flock_try(&fs->locks, id)); /* held by the other process */
  omniq_task_t **lost = NULL, **got = NULL;
  size_t n = 0;
  assert_int_equal(f->ops->expired_leases(f->b, th_be_now(f), 10, &lost, &n, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 0);
  assert_true(th_be_has(f, "queue/running", id)); /* a live claim is left alone */

  assert_int_equal(kill(pid, SIGKILL), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(omniq__flock_try(&fs->locks, id));
  omniq__flock_release(&fs->locks, id);
  assert_int_equal(f->ops->expired_leases(f->b, th_be_now(f), 10, &lost, &n, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 0);
  assert_false(th_be_has(f, "queue/running", id));
  assert_int_equal(th_be_claim(f, 10, &got), 1);
  assert_string_equal(got[0]->id, id);
  assert_int_equal(got[0]->attempts, 1);
  omniq__tasks_free(got, 1);
  close(report[0]);
  close(report[1]);
  close(hold[0]);
  close(hold[1]);
  th_be_free(f);
}

/* The same story through the engine, as a program runs it: the
 * killed process's claims come back through the engine's own reaper
 * (expired_leases, then fail with the token: WorkerLost, retry). */
static void test_killed_process_tasks_run_again_through_the_engine(void **state) {
  char *dir = th_tmpdir();
  th_clock_t clock;
  omniq_settings_t s;
  omniq_t *oq = NULL;
  omniq_task_t **tasks = NULL;
  size_t n = 0;
  char ids[3][OMNIQ_ID_SIZE], lost[2][OMNIQ_ID_SIZE];
  int report[2], hold[2];
  (void)state;
  th_clock_init(&clock, TH_EPOCH_MS);
  th_settings(&s, "file", dir, &clock);
  th_ok(NULL, omniq_open(&oq, &s));
  for (int i = 0; i < 3; i++) th_ok(oq, omniq_enqueue(oq, "work", "[1]", NULL, NULL, ids[i]));
  omniq_close(oq);
  assert_int_equal(pipe(report), 0);
  assert_int_equal(pipe(hold), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    if (omniq_open(&oq, &s) != OMNIQ_OK || omniq__engine_claim(oq, NULL, 0, 2, &tasks, &n) != 0 ||
        n != 2)
      _exit(2);
    for (size_t i = 0; i < n; i++)
      if (write(report[1], tasks[i]->id, OMNIQ_ID_SIZE) != OMNIQ_ID_SIZE) _exit(2);
    block_forever(hold[0]);
  }
  assert_int_equal(th_read_full(report[0], lost, sizeof lost), 0);
  assert_int_equal(kill(pid, SIGKILL), 0);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);

  th_clock_advance(&clock, s.lease_ms + 1);
  th_ok(NULL, omniq_open(&oq, &s));
  /* This claim reaps first (WorkerLost, retried at once: the lease already
   * cost the wait), then takes the lost runs and the task nobody took. */
  th_ok(oq, omniq__engine_claim(oq, NULL, 0, 10, &tasks, &n));
  assert_int_equal(n, 3);
  omniq__run_report_t ok = {.kind = OMNIQ__RUN_OK, .value = "1"};
  for (size_t i = 0; i < n; i++) {
    int was_lost = strcmp(tasks[i]->id, lost[0]) == 0 || strcmp(tasks[i]->id, lost[1]) == 0;
    assert_int_equal(tasks[i]->attempts, was_lost ? 2 : 1);
    if (was_lost) assert_string_equal(tasks[i]->last_error->error_type, "WorkerLost");
    th_ok(oq, omniq__engine_finish(oq, tasks[i], &ok));
  }
  for (int i = 0; i < 2; i++) {
    omniq_result_t *r = NULL;
    th_ok(oq, omniq_get_result(oq, lost[i], 0, &r));
    assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
    assert_int_equal(omniq_result_attempts(r), 2);
    omniq_result_free(r);
  }
  omniq__tasks_free(tasks, n);
  omniq_close(oq);
  close(report[0]);
  close(report[1]);
  close(hold[0]);
  close(hold[1]);
  th_rmtree(dir);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_four_processes_drain_20000_tasks_each_claimed_once),
      cmocka_unit_test(test_sigkilled_worker_tasks_run_again_after_the_lease),
      cmocka_unit_test(test_task_lock_dies_with_a_killed_claimer),
      cmocka_unit_test(test_killed_process_tasks_run_again_through_the_engine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
