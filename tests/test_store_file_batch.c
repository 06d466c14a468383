/* SPDX-License-Identifier: MIT */
/* The file backend's finish_many (a batch of outcomes, then a claim of
 * many, each paying one sync round) stopped by SIGKILL at each of its
 * steps: after recovery every task of the batch is in exactly one valid
 * state, and every task the batch claimed is claimed or pending again.
 *
 * A forked child (the kill must not reach the test runner) opens the
 * store the parent filled, claims the batch, arms the kill
 * (omniq__fbatch_crash_after) and calls finish_many; it uses no cmocka
 * assertion. The parent reopens the store (recovery runs at open) and
 * checks it, for kill points 1, 2, ... until a child runs to the end;
 * also that the running totals count every run of the batch exactly once
 * (the child's handle file, the roll-forwards and the parent's own). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/backend.h"
#include "base/alloc.h"
#include "base/records.h"
#include "storage/file/batch.h"
#include "storage/file/totals.h"

#define BATCH 8 /* claimed, then finished in one finish_many */
#define AHEAD 4 /* pending behind them, for the claim that rides along */

static omniq_task_t *tasks[BATCH + AHEAD];
static long kill_at;

static const char *const queues[] = {OMNIQ_DEFAULT_QUEUE};

/* The child: claim the batch, then finish every run of it with a claim
 * of AHEAD more, killed at step kill_at. 0 when all of it was done. */
static int finish_until_killed(th_be_t *f) {
  omniq_task_t **got = NULL, **next = NULL;
  omniq_decision_t ds[BATCH];
  omniq_result_t *rs[BATCH];
  int rcs[BATCH], claimed = 0;
  size_t n = 0, nnext = 0;
  if (th_be_open(f) != OMNIQ_OK) return 2;
  int64_t now = th_be_now(f);
  omniq_claim_req_t req = {now, now + 30000, queues, 1, BATCH};
  if (f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err) != OMNIQ_OK || n != BATCH)
    return 3;
  for (size_t i = 0; i < n; i++) {
    rs[i] = omniq_result_new();
    memcpy(rs[i]->task_id, got[i]->id, OMNIQ_ID_SIZE);
    rs[i]->status = OMNIQ_SUCCESS;
    rs[i]->value = omniq__strdup("42");
    rs[i]->attempts = 1;
    rs[i]->finished_at_ms = rs[i]->last_attempt_at_ms = now + 1;
    ds[i] = (omniq_decision_t){.id = got[i]->id,
                               .token = got[i]->token,
                               .next_status = OMNIQ_SUCCESS,
                               .result = rs[i],
                               .runs = OMNIQ_RUNS_SUCCEEDED};
  }
  req.max = AHEAD;
  omniq__fbatch_crash_after(kill_at);
  int rc = f->ops->finish_many(f->b, ds, n, rcs, &req, &next, &nnext, &claimed, f->err,
                               sizeof f->err);
  omniq__fbatch_crash_after(0);
  for (size_t i = 0; i < n && rc == OMNIQ_OK; i++) rc = rcs[i];
  return rc == OMNIQ_OK && claimed && nnext == AHEAD ? 0 : 4;
}

/* How a reopened store holds the tasks. */
typedef struct seen {
  size_t done, running;   /* of the batch: finished, or still under its claim */
  size_t ahead_claimed;   /* of the tasks behind it: claimed by the batch's claim */
} seen_t;

static void add_succeeded(const char *qdir, const int64_t runs[OMNIQ_RUNS_KINDS], void *ud) {
  if (strcmp(qdir, "default") == 0) *(int64_t *)ud += runs[OMNIQ_RUNS_SUCCEEDED];
}

/* Runs counted as succeeded in queue "default", over every handle. */
static int64_t succeeded_total(th_be_t *f) {
  int64_t n = 0;
  assert_int_equal(omniq__ftotals_each(f->b, add_succeeded, &n), OMNIQ_OK);
  return n;
}

/* Every task of the batch SUCCESS with its result, or RUNNING under its
 * claim with none (and then still finishable under that claim); every
 * task behind it PENDING, or RUNNING with one attempt; nothing else. */
static seen_t assert_one_valid_state_each(th_be_t *f, long k) {
  seen_t s = {0, 0, 0};
  int64_t c[OMNIQ_STATUS_COUNT];
  th_be_reopen(f); /* recovery runs at open */
  th_be_ok(f->err, f->ops->count_by_status(f->b, c, f->err, sizeof f->err));
  if (c[OMNIQ_PENDING] + c[OMNIQ_RUNNING] + c[OMNIQ_SUCCESS] != BATCH + AHEAD ||
      c[OMNIQ_FAILED] + c[OMNIQ_CANCELLED] != 0)
    fail_msg("kill at step %ld: %lld pending, %lld running, %lld succeeded of %d", k,
             (long long)c[OMNIQ_PENDING], (long long)c[OMNIQ_RUNNING],
             (long long)c[OMNIQ_SUCCESS], BATCH + AHEAD);
  assert_int_equal(th_be_count(f, "quarantine"), 0);
  for (size_t i = 0; i < BATCH + AHEAD; i++) {
    omniq_task_t *t = NULL;
    omniq_result_t *r = NULL;
    th_be_ok(f->err, f->ops->get_task(f->b, tasks[i]->id, &t, f->err, sizeof f->err));
    int has = f->ops->get_result(f->b, tasks[i]->id, &r, f->err, sizeof f->err);
    if (i >= BATCH) { /* behind the batch */
      if (t->status == OMNIQ_RUNNING && t->attempts == 1) s.ahead_claimed++;
      else if (t->status != OMNIQ_PENDING || t->attempts != 0)
        fail_msg("kill at step %ld: a task behind the batch is %s with %d attempts", k,
                 omniq_status_name(t->status), t->attempts);
      assert_int_equal(has, OMNIQ_ENOTFOUND);
    } else if (t->status == OMNIQ_SUCCESS) {
      assert_int_equal(has, OMNIQ_OK);
      assert_int_equal(r->status, OMNIQ_SUCCESS);
      assert_string_equal(r->value, "42");
      s.done++;
    } else {
      if (t->status != OMNIQ_RUNNING || t->token != tasks[i]->token + 1 || t->attempts != 1)
        fail_msg("kill at step %ld: a task of the batch is %s, token %lld", k,
                 omniq_status_name(t->status), (long long)t->token);
      assert_int_equal(has, OMNIQ_ENOTFOUND);
      omniq_result_t *again = th_be_result(t->id, OMNIQ_SUCCESS, th_be_now(f));
      omniq_decision_t d = {.id = t->id, .token = t->token, .next_status = OMNIQ_SUCCESS,
                            .result = again, .runs = OMNIQ_RUNS_SUCCEEDED};
      th_be_ok(f->err, th_be_finish(f, &d));
      omniq_result_free(again);
      s.running++;
    }
    omniq_result_free(r);
    omniq_task_free(t);
  }
  /* Each run of the batch ended once, before the kill or just above. */
  if (succeeded_total(f) != BATCH)
    fail_msg("kill at step %ld: %lld runs counted as succeeded of %d", k,
             (long long)succeeded_total(f), BATCH);
  return s;
}

static void test_finish_many_killed_at_every_step_leaves_each_task_in_one_state(void **state) {
  (void)state;
  long k = 1;
  size_t cut = 0, none = 0, all = 0, claim_cut = 0;
  for (int finished = 0; !finished; k++) {
    th_be_t *f = th_be_unopened("file", 1); /* fsync on: the batched rounds */
    assert_int_equal(th_be_open(f), OMNIQ_OK);
    for (size_t i = 0; i < BATCH + AHEAD; i++) {
      tasks[i] = th_be_task(f, NULL, i < BATCH ? 5 : 0, th_be_now(f));
      th_be_ok(f->err, f->ops->enqueue(f->b, &tasks[i], 1, f->err, sizeof f->err));
    }
    th_be_close(f);
    kill_at = k;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) _exit(finish_until_killed(f));
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    finished = WIFEXITED(status);
    if (finished) assert_int_equal(WEXITSTATUS(status), 0);
    else assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    seen_t s = assert_one_valid_state_each(f, k);
    if (finished) {
      assert_int_equal(s.done, BATCH);
      assert_int_equal(s.ahead_claimed, AHEAD);
    }
    if (s.done == 0) none++;
    else if (s.done == BATCH) all++;
    else cut++;
    if (s.done == BATCH && s.ahead_claimed > 0 && s.ahead_claimed < AHEAD) claim_cut++;
    for (size_t i = 0; i < BATCH + AHEAD; i++) omniq_task_free(tasks[i]);
    th_be_free(f);
  }
  /* The kills met every side: before any commit, between commits, after
   * all of them, and inside the claim of many. */
  assert_true(k > 2 * BATCH + AHEAD);
  assert_true(none > 0 && cut > 0 && all > 0 && claim_cut > 0);
}

/* Two decisions for one run in a batch: the first ends it, the second
 * finds it no longer RUNNING, as two finishes in turn would. */
static void test_a_run_decided_twice_in_one_batch_is_ended_once(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 0);
  omniq_task_t **got = NULL, **next = NULL;
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq_result_t *ok = th_be_result(got[0]->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_result_t *bad = th_be_result(got[0]->id, OMNIQ_FAILED, th_be_now(f));
  omniq_decision_t ds[2] = {
      {.id = got[0]->id, .token = got[0]->token, .next_status = OMNIQ_SUCCESS, .result = ok},
      {.id = got[0]->id, .token = got[0]->token, .next_status = OMNIQ_FAILED, .result = bad}};
  int rcs[2] = {-1, -1}, claimed = 1;
  size_t n = 0;
  th_be_ok(f->err, f->ops->finish_many(f->b, ds, 2, rcs, NULL, &next, &n, &claimed, f->err,
                                       sizeof f->err));
  assert_int_equal(rcs[0], OMNIQ_OK);
  assert_int_equal(rcs[1], OMNIQ_ESTATE);
  omniq_task_t *t = NULL;
  th_be_ok(f->err, f->ops->get_task(f->b, got[0]->id, &t, f->err, sizeof f->err));
  assert_int_equal(t->status, OMNIQ_SUCCESS);
  omniq_task_free(t);
  omniq_result_free(ok);
  omniq_result_free(bad);
  omniq__tasks_free(got, 1);
  th_be_free(f);
}

/* finish_claim: the claim comes after the finish, and only after one
 * that applied; a finish under a stale token claims nothing. */
static void test_finish_claim_claims_only_after_a_finish_that_applied(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 0);
  omniq_task_t **got = NULL, **next = NULL;
  char second[OMNIQ_ID_SIZE];
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  th_be_add(f, NULL, 0, th_be_now(f), second);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq_result_t *ok = th_be_result(got[0]->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t d = {
      .id = got[0]->id, .token = got[0]->token + 1, .next_status = OMNIQ_SUCCESS, .result = ok};
  int64_t now = th_be_now(f);
  omniq_claim_req_t req = {now, now + 30000, queues, 1, 4};
  int claimed = 1;
  size_t n = 9;
  assert_int_equal(f->ops->finish_claim(f->b, &d, &req, &next, &n, &claimed, f->err,
                                        sizeof f->err),
                   OMNIQ_ESTATE);
  assert_int_equal(claimed, 0);
  assert_int_equal(n, 0);
  d.token = got[0]->token;
  th_be_ok(f->err, f->ops->finish_claim(f->b, &d, &req, &next, &n, &claimed, f->err,
                                        sizeof f->err));
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 1);
  assert_string_equal(next[0]->id, second);
  omniq_task_t *t = NULL;
  th_be_ok(f->err, f->ops->get_task(f->b, got[0]->id, &t, f->err, sizeof f->err));
  assert_int_equal(t->status, OMNIQ_SUCCESS);
  omniq_task_free(t);
  omniq_result_free(ok);
  omniq__tasks_free(got, 1);
  omniq__tasks_free(next, n);
  th_be_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_finish_claim_claims_only_after_a_finish_that_applied),
      cmocka_unit_test(test_a_run_decided_twice_in_one_batch_is_ended_once),
      cmocka_unit_test(test_finish_many_killed_at_every_step_leaves_each_task_in_one_state),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
