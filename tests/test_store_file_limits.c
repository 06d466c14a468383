/* SPDX-License-Identifier: MIT */
/* The file backend at its limits: any number of queues under a small
 * descriptor limit, a count that cannot list a folder, and enqueue of many
 * stopped by SIGKILL at each of its steps.
 *
 * Each case runs in a forked child (a lowered RLIMIT_NOFILE, or a kill,
 * must not reach the test runner); children report through a pipe and use
 * no cmocka assertion. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/backend.h"
#include "base/records.h"
#include "storage/file/batch.h"
#include "storage/file/owner.h"
#include "storage/file/names.h"

#define QUEUES 400
#define FD_LIMIT 40 /* the store keeps 24; stdio and the test a few more */
#define KEYED 100

/* Forks; the child runs fn(f, fd) and exits with its return value. The
 * parent returns the child's wait status. */
static int in_child(th_be_t *f, int (*fn)(th_be_t *, int), int report[2]) {
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(report[0]);
    _exit(fn(f, report[1]));
  }
  close(report[1]);
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  return status;
}

static void set_fd_limit(rlim_t n) {
  struct rlimit rl = {n, n};
  setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- descriptors --------------------------------------------------------------- */

typedef struct {
  int enqueue_rc, enqueued;
  int count_rc;
  int64_t pending;
  int reopen_rc, recount_rc;
  int64_t repending;
  int claim_rc;
  long claimed;
  char err[256];
} queues_report_t;

static void queue_name(int i, char out[16]) { snprintf(out, 16, "q%03d", i); }

static int many_queues(th_be_t *f, int out) {
  queues_report_t r;
  memset(&r, 0, sizeof r);
  set_fd_limit(FD_LIMIT);
  if (th_be_open(f) != OMNIQ_OK) return 2;
  for (int i = 0; i < QUEUES && r.enqueue_rc == OMNIQ_OK; i++) {
    char q[16];
    queue_name(i, q);
    omniq_task_t *t = th_be_task(f, q, 0, th_be_now(f));
    r.enqueue_rc = f->ops->enqueue(f->b, &t, 1, r.err, sizeof r.err);
    r.enqueued += r.enqueue_rc == OMNIQ_OK;
    omniq_task_free(t);
  }
  int64_t c[OMNIQ_STATUS_COUNT];
  r.count_rc = f->ops->count_by_status(f->b, c, r.err, sizeof r.err);
  r.pending = c[OMNIQ_PENDING];
  th_be_close(f);
  r.reopen_rc = th_be_open(f);
  if (r.reopen_rc == OMNIQ_OK) {
    r.recount_rc = f->ops->count_by_status(f->b, c, r.err, sizeof r.err);
    r.repending = c[OMNIQ_PENDING];
    /* Claim everything, OMNIQ_MAX_QUEUES queues at a time. */
    for (int i = 0; i < QUEUES && r.claim_rc == OMNIQ_OK; i += OMNIQ_MAX_QUEUES) {
      char names[OMNIQ_MAX_QUEUES][16];
      const char *qs[OMNIQ_MAX_QUEUES];
      for (int k = 0; k < OMNIQ_MAX_QUEUES; k++) {
        queue_name(i + k, names[k]);
        qs[k] = names[k];
      }
      omniq_claim_req_t req = {th_be_now(f), th_be_now(f) + 30000, qs, OMNIQ_MAX_QUEUES,
                               OMNIQ_MAX_QUEUES};
      omniq_task_t **got = NULL;
      size_t n = 0;
      r.claim_rc = f->ops->claim(f->b, &req, &got, &n, r.err, sizeof r.err);
      r.claimed += (long)n;
      for (size_t k = 0; k < n; k++) omniq_task_free(got[k]);
      free(got);
    }
    th_be_close(f);
  }
  return write(out, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 2;
}

/* Before, the index kept a descriptor per queue folder: the 38th queue met
 * EMFILE, and a reopened store counted the queues it could still open. */
static void test_four_hundred_queues_fit_in_forty_descriptors(void **state) {
  th_be_t *f = th_be_unopened("file", 0);
  int report[2];
  queues_report_t r;
  (void)state;
  assert_int_equal(pipe(report), 0);
  int status = in_child(f, many_queues, report);
  assert_int_equal(th_read_full(report[0], &r, sizeof r), 0);
  close(report[0]);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (r.enqueue_rc != OMNIQ_OK)
    fail_msg("enqueue #%d: %s: %s", r.enqueued + 1, omniq_err_name(r.enqueue_rc), r.err);
  assert_int_equal(r.count_rc, OMNIQ_OK);
  assert_int_equal(r.pending, QUEUES);
  assert_int_equal(r.reopen_rc, OMNIQ_OK);
  assert_int_equal(r.recount_rc, OMNIQ_OK);
  assert_int_equal(r.repending, QUEUES);
  if (r.claim_rc != OMNIQ_OK) fail_msg("claim: %s: %s", omniq_err_name(r.claim_rc), r.err);
  assert_int_equal(r.claimed, QUEUES);
  th_be_free(f);
}

typedef struct {
  int rc;
  int64_t pending;
  char err[256];
} count_report_t;

/* One batch of KEYED tasks, each with its own unique key. */
static int keyed_batch(th_be_t *f, int out) {
  count_report_t r;
  omniq_task_t *ts[KEYED];
  memset(&r, 0, sizeof r);
  set_fd_limit(FD_LIMIT);
  if (th_be_open(f) != OMNIQ_OK) return 2;
  for (int i = 0; i < KEYED; i++) {
    char key[16];
    snprintf(key, sizeof key, "key-%d", i);
    ts[i] = th_be_task(f, NULL, 0, th_be_now(f));
    if ((ts[i]->unique_key = strdup(key)) == NULL) return 2;
  }
  r.rc = f->ops->enqueue_unique(f->b, ts, KEYED, NULL, r.err, sizeof r.err);
  int64_t c[OMNIQ_STATUS_COUNT];
  if (r.rc == OMNIQ_OK) r.rc = f->ops->count_by_status(f->b, c, r.err, sizeof r.err);
  r.pending = r.rc == OMNIQ_OK ? c[OMNIQ_PENDING] : -1;
  for (int i = 0; i < KEYED; i++) omniq_task_free(ts[i]);
  th_be_close(f);
  return write(out, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 2;
}

/* Before, the batch held its key folder open once per task until the end:
 * with 16 descriptors to spare, a key soon met EMFILE. */
static void test_batch_of_a_hundred_keyed_tasks_fits_in_forty_descriptors(void **state) {
  th_be_t *f = th_be_unopened("file", 0);
  int report[2];
  count_report_t r;
  (void)state;
  assert_int_equal(pipe(report), 0);
  int status = in_child(f, keyed_batch, report);
  assert_int_equal(th_read_full(report[0], &r, sizeof r), 0);
  close(report[0]);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (r.rc != OMNIQ_OK) fail_msg("%s: %s", omniq_err_name(r.rc), r.err);
  assert_int_equal(r.pending, KEYED);
  th_be_free(f);
}

static th_be_t *other_handle;

/* The other handle makes queues this one has never seen; then this one
 * counts with one descriptor left. */
static int count_short_of_descriptors(th_be_t *f, int out) {
  count_report_t r;
  int64_t c[OMNIQ_STATUS_COUNT];
  int fds[1024], n = 0;
  memset(&r, 0, sizeof r);
  if (th_be_open(f) != OMNIQ_OK) return 2;
  for (int i = 0; i < 5; i++) {
    char q[16];
    queue_name(i, q);
    omniq_task_t *t = th_be_task(other_handle, q, 0, th_be_now(f));
    if (other_handle->ops->enqueue(other_handle->b, &t, 1, r.err, sizeof r.err) != OMNIQ_OK)
      return 2;
    omniq_task_free(t);
  }
  set_fd_limit(256);
  while (n < 1024 && (fds[n] = dup(0)) >= 0) n++;
  if (n > 0) close(fds[--n]); /* one left */
  r.rc = f->ops->count_by_status(f->b, c, r.err, sizeof r.err);
  r.pending = c[OMNIQ_PENDING];
  while (n > 0) close(fds[--n]);
  return write(out, &r, sizeof r) == (ssize_t)sizeof r ? 0 : 2;
}

static void test_count_that_cannot_list_a_folder_is_an_error_not_a_smaller_number(void **state) {
  th_be_t *f = th_be_unopened("file", 0);
  int report[2];
  count_report_t r;
  (void)state;
  assert_int_equal(th_be_open(f), OMNIQ_OK); /* makes the store */
  th_be_close(f);
  other_handle = th_be_beside(f);
  assert_int_equal(pipe(report), 0);
  int status = in_child(f, count_short_of_descriptors, report);
  assert_int_equal(th_read_full(report[0], &r, sizeof r), 0);
  close(report[0]);
  assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (r.rc == OMNIQ_OK && r.pending != 5)
    fail_msg("count said OMNIQ_OK with %lld pending; 5 are", (long long)r.pending);
  assert_int_not_equal(r.rc, OMNIQ_OK);
  assert_non_null(strstr(r.err, "queue/pending"));
  th_be_free(other_handle);
  th_be_free(f);
}

/* ---- a producer killed inside enqueue of many ----------------------------------- */

static omniq_task_t **batch_tasks;
static size_t batch_n;
static long kill_at;

static int enqueue_until_killed(th_be_t *f, int out) {
  (void)out;
  if (th_be_open(f) != OMNIQ_OK) return 2;
  omniq__fbatch_crash_after(kill_at);
  return f->ops->enqueue(f->b, batch_tasks, batch_n, f->err, sizeof f->err) == OMNIQ_OK ? 0 : 3;
}

/* What a reopened store holds of the batch: all of it, whole, claimable,
 * or none of it. Returns how many it holds. */
static size_t assert_all_or_none(th_be_t *f, long k) {
  size_t found = 0;
  th_be_reopen(f); /* recovery runs at open */
  for (size_t i = 0; i < batch_n; i++) {
    omniq_task_t *t = NULL;
    int rc = f->ops->get_task(f->b, batch_tasks[i]->id, &t, f->err, sizeof f->err);
    if (rc == OMNIQ_OK) {
      th_assert_as_enqueued(t, batch_tasks[i]);
      found++;
    } else if (rc != OMNIQ_ENOTFOUND) {
      fail_msg("kill at step %ld: %s: %s", k, omniq_err_name(rc), f->err);
    }
    omniq_task_free(t);
  }
  if (found != 0 && found != batch_n)
    fail_msg("kill at step %ld: %zu of %zu tasks stored", k, found, batch_n);
  assert_int_equal(th_be_count(f, "batches"), 0);
  assert_int_equal(th_be_count(f, "quarantine"), 0);
  static const char *const queues[] = {"default", "mail"};
  omniq_claim_req_t req = {th_be_now(f), th_be_now(f) + 30000, queues, 2, batch_n + 1};
  omniq_task_t **got = NULL;
  size_t n = 0;
  th_be_ok(f->err, f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err));
  assert_int_equal(n, found);
  omniq__tasks_free(got, n);
  return found;
}

/* Kills the producer at every kill_every-th step of an enqueue of n
 * tasks, until one runs to the end. */
static void kill_inside_batches(size_t n, long kill_every) {
  long k = 1;
  size_t all = 0, none = 0;
  for (int finished = 0; !finished; k += kill_every) {
    th_be_t *f = th_be_unopened("file", 0);
    int report[2];
    assert_int_equal(pipe(report), 0);
    batch_n = n;
    batch_tasks = calloc(n, sizeof *batch_tasks);
    for (size_t i = 0; i < n; i++)
      batch_tasks[i] = th_be_task(f, i % 3 == 0 ? "mail" : "default", (int)(i % 4), th_be_now(f));
    kill_at = k;
    int status = in_child(f, enqueue_until_killed, report);
    close(report[0]);
    finished = WIFEXITED(status);
    if (finished) assert_int_equal(WEXITSTATUS(status), 0);
    else assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    if (assert_all_or_none(f, k) == n) all++;
    else none++;
    omniq__tasks_free(batch_tasks, n);
    th_be_free(f);
  }
  /* Every step was a kill point, and kills met both sides of the commit. */
  assert_true(k > (long)(2 * n));
  assert_true(all > 1 && none > 1);
}

static void test_enqueue_of_twenty_killed_at_every_step_is_all_or_none(void **state) {
  (void)state;
  kill_inside_batches(20, 1);
}

static void test_enqueue_of_two_hundred_killed_at_many_steps_is_all_or_none(void **state) {
  (void)state;
  kill_inside_batches(200, 23);
}

/* A batch staged by a producer that died before its commit is nothing: a
 * stale tmp folder (its owner number locked by no handle), removed at a
 * later open. */
static void test_uncommitted_batch_leaves_nothing(void **state) {
  th_be_t *f = th_be_new("file", 0);
  (void)state;
  char path[2048], name[64], file[96];
  snprintf(name, sizeof name, "batch-%llu-1", OMNIQ__OWNER_MIN + 7);
  snprintf(path, sizeof path, "%s/tmp/%s", f->dir, name);
  assert_int_equal(mkdir(path, 0777), 0);
  snprintf(file, sizeof file, "tmp/%s/x.tmp", name);
  th_be_plant(f, file, "{}", 2);
  struct timespec old[2] = {{0, 0}, {0, 0}};
  assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "tmp"), 0);
  int64_t c[OMNIQ_STATUS_COUNT];
  th_be_ok(f->err, f->ops->count_by_status(f->b, c, f->err, sizeof f->err));
  assert_int_equal(c[OMNIQ_PENDING], 0);
  th_be_free(f);
}

/* A task file whose eta is before 1970 (written by hand, or by an old
 * version under a clock that read before 1970): every rewrite of it would
 * fail, so each claim failed on it and the queue behind it was stuck. It is
 * quarantined instead, and the next task is claimed. */
static void test_task_file_with_a_time_out_of_range_is_quarantined_not_blocking(void **state) {
  th_be_t *f = th_be_new("file", 0);
  char good[OMNIQ_ID_SIZE], name[OMNIQ__PNAME_SIZE], rel[256];
  (void)state;
  th_be_add(f, NULL, 0, th_be_now(f), good);
  omniq_task_t *bad = th_be_task(f, NULL, 0, -86400000); /* 1969-12-31 */
  char *json = omniq_task_to_json(bad);
  omniq__fname_pending(omniq__fname_iprio(0), 0, bad->id, name);
  snprintf(rel, sizeof rel, "queue/pending/default/%s", name);
  th_be_plant(f, rel, json, strlen(json));
  free(json);
  th_be_reopen(f);
  omniq_task_t **got = NULL;
  assert_int_equal(th_be_claim(f, 2, &got), 1);
  assert_string_equal(got[0]->id, good);
  omniq__tasks_free(got, 1);
  assert_int_equal(th_be_count(f, "quarantine"), 1);
  omniq_task_free(bad);
  th_be_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_four_hundred_queues_fit_in_forty_descriptors),
      cmocka_unit_test(test_batch_of_a_hundred_keyed_tasks_fits_in_forty_descriptors),
      cmocka_unit_test(test_count_that_cannot_list_a_folder_is_an_error_not_a_smaller_number),
      cmocka_unit_test(test_enqueue_of_twenty_killed_at_every_step_is_all_or_none),
      cmocka_unit_test(test_enqueue_of_two_hundred_killed_at_many_steps_is_all_or_none),
      cmocka_unit_test(test_uncommitted_batch_leaves_nothing),
      cmocka_unit_test(test_task_file_with_a_time_out_of_range_is_quarantined_not_blocking),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
