/* SPDX-License-Identifier: MIT */
/* A finish trusts the task its own claim remembered only while the slot is
 * still the file that claim wrote (claimed.c): one fstatat of its size and
 * the mark the claim set on its time. A slot another handle took over
 * (lease expired and claimed again, cancelled, retried by hand) is
 * refused as before, with fsync on (the claim of many stages its
 * rewrites) and off. A second handle on the same directory stands for
 * another process: its locks, spares and owner number are its own. */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/records.h"
#include "support/backend.h"

static int setup_off(void **state) {
  *state = th_be_new("file", 0);
  return 0;
}

static int setup_on(void **state) {
  *state = th_be_new("file", 1);
  return 0;
}

static int teardown(void **state) {
  th_be_free(*state);
  return 0;
}

static omniq_decision_t ends(const omniq_task_t *t, int status, omniq_result_t *r) {
  return (omniq_decision_t){.id = t->id,
                            .token = t->token,
                            .next_status = status,
                            .result = r,
                            .queue = t->queue,
                            .runs = OMNIQ_RUNS_SUCCEEDED};
}

/* Finishes t SUCCESS through finish_many, as a pool reports: the decision's
 * own code. */
static int finish_many_one(th_be_t *f, const omniq_task_t *t) {
  omniq_result_t *r = th_be_result(t->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t d = ends(t, OMNIQ_SUCCESS, r);
  omniq_task_t **none = NULL;
  size_t nnone = 0;
  int rcs[1] = {-1}, claimed = 0;
  assert_int_equal(f->ops->finish_many(f->b, &d, 1, rcs, NULL, &none, &nnone, &claimed, f->err,
                                       sizeof f->err),
                   OMNIQ_OK);
  omniq_result_free(r);
  return rcs[0];
}

static int finish_one(th_be_t *f, const omniq_task_t *t) {
  omniq_result_t *r = th_be_result(t->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t d = ends(t, OMNIQ_SUCCESS, r);
  int rc = th_be_finish(f, &d);
  omniq_result_free(r);
  return rc;
}

static int status_of(th_be_t *f, const char *id) {
  omniq_task_t *t = NULL;
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  int s = t->status;
  omniq_task_free(t);
  return s;
}

/* Claims the one task waiting: two at a time, so with fsync on the claim
 * of many (staged rewrites) is the one taken. */
static omniq_task_t *claim_it(th_be_t *f, const char *id) {
  omniq_task_t **got = NULL;
  assert_int_equal(th_be_claim(f, 2, &got), 1);
  assert_string_equal(got[0]->id, id);
  omniq_task_t *t = got[0];
  omniq__free(got);
  return t;
}

/* Enqueues a task (its id to id) and claims it. */
static omniq_task_t *add_and_claim(th_be_t *f, char id[OMNIQ_ID_SIZE]) {
  th_be_add(f, NULL, 0, th_be_now(f), id);
  return claim_it(f, id);
}

/* The task is RUNNING under b's claim theirs: a's earlier claim mine is
 * refused, b's finishes the task; both are freed. */
static void assert_taken_over(th_be_t *a, omniq_task_t *mine, th_be_t *b, omniq_task_t *theirs) {
  assert_true(theirs->token != mine->token);
  assert_int_equal(finish_many_one(a, mine), OMNIQ_ESTATE);
  assert_int_equal(finish_one(a, mine), OMNIQ_ESTATE);
  assert_int_equal(status_of(a, mine->id), OMNIQ_RUNNING);
  assert_int_equal(finish_many_one(b, theirs), OMNIQ_OK);
  assert_int_equal(status_of(a, mine->id), OMNIQ_SUCCESS);
  assert_int_equal(th_be_count(a, "queue/success"), 1);
  assert_int_equal(th_be_count(a, "queue/running"), 0);
  omniq_task_free(mine);
  omniq_task_free(theirs);
}

/* by cancels task id and retries it by hand, due at once (the time of
 * clock's fixture, the one the store reads). */
static void cancel_and_retry(th_be_t *by, th_be_t *clock, const char *id) {
  char holder[OMNIQ_ID_SIZE];
  int prev = -1;
  assert_int_equal(by->ops->cancel(by->b, id, th_be_now(clock), &prev, by->err, sizeof by->err),
                   OMNIQ_OK);
  assert_int_equal(prev, OMNIQ_RUNNING);
  assert_int_equal(by->ops->retry(by->b, id, th_be_now(clock), th_be_now(clock), &prev, holder,
                                  by->err, sizeof by->err),
                   OMNIQ_OK);
}

/* The lease runs out, the second handle finds it, puts the task back as
 * the engine does (a retry under the expired claim's token) and claims it
 * again: the first handle's claim is over, whatever it remembers. */
static void test_a_run_claimed_again_after_its_lease_is_refused(void **state) {
  th_be_t *a = *state;
  th_be_t *b = th_be_beside(a);
  char id[OMNIQ_ID_SIZE];
  omniq_task_t *mine = add_and_claim(a, id);

  th_clock_advance(&a->clock, 60000);
  th_clock_advance(&b->clock, 60000); /* its claims' "now" */
  omniq_task_t **lost = NULL;
  size_t nlost = 0;
  assert_int_equal(b->ops->expired_leases(b->b, th_be_now(a), 8, &lost, &nlost, b->err,
                                          sizeof b->err),
                   OMNIQ_OK);
  assert_int_equal(nlost, 1);
  assert_int_equal(lost[0]->token, mine->token);
  omniq_decision_t back = {.id = id, .token = lost[0]->token, .next_status = OMNIQ_PENDING,
                           .eta_ms = th_be_now(a), .queue = lost[0]->queue};
  assert_int_equal(th_be_finish(b, &back), OMNIQ_OK);
  omniq__tasks_free(lost, nlost);
  assert_taken_over(a, mine, b, claim_it(b, id));
  th_be_free(b);
}

/* Cancelled by another handle while it runs: the slot is gone, the task
 * is CANCELLED and stays so. */
static void test_a_run_cancelled_by_another_handle_is_refused(void **state) {
  th_be_t *a = *state;
  th_be_t *b = th_be_beside(a);
  char id[OMNIQ_ID_SIZE];
  int prev = -1;
  omniq_task_t *mine = add_and_claim(a, id);
  assert_int_equal(b->ops->cancel(b->b, id, th_be_now(a), &prev, b->err, sizeof b->err),
                   OMNIQ_OK);
  assert_int_equal(prev, OMNIQ_RUNNING);

  assert_int_equal(finish_many_one(a, mine), OMNIQ_ESTATE);
  assert_int_equal(status_of(a, id), OMNIQ_CANCELLED);
  assert_int_equal(th_be_count(a, "queue/success"), 0);
  assert_int_equal(th_be_count(a, "queue/running"), 0);
  omniq_task_free(mine);
  th_be_free(b);
}

/* Cancelled, retried by hand, and claimed again by another handle, whose
 * rewrite has the size of the first claim's: refused while PENDING and
 * once RUNNING under the new claim, and the new claim finishes. */
static void test_a_run_retried_by_hand_and_claimed_elsewhere_is_refused(void **state) {
  th_be_t *a = *state;
  th_be_t *b = th_be_beside(a);
  char id[OMNIQ_ID_SIZE];
  omniq_task_t *mine = add_and_claim(a, id);
  cancel_and_retry(b, a, id);
  assert_int_equal(finish_one(a, mine), OMNIQ_ESTATE);
  assert_int_equal(status_of(a, id), OMNIQ_PENDING);

  assert_taken_over(a, mine, b, claim_it(b, id));
  th_be_free(b);
}

/* The same handle, its own cancel and retry by hand, then its own claim
 * again: the old run is refused, the new one finishes, after a lease
 * extension too. */
static void test_the_same_handle_refuses_its_own_earlier_run(void **state) {
  th_be_t *a = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_task_t *old = add_and_claim(a, id);
  cancel_and_retry(a, a, id);
  omniq_task_t *now = claim_it(a, id);
  assert_int_equal(finish_many_one(a, old), OMNIQ_ESTATE);
  assert_int_equal(a->ops->extend_lease(a->b, id, now->token, th_be_now(a) + 90000, a->err,
                                        sizeof a->err),
                   OMNIQ_OK);
  assert_int_equal(finish_one(a, old), OMNIQ_ESTATE);
  assert_int_equal(finish_many_one(a, now), OMNIQ_OK);
  assert_int_equal(status_of(a, id), OMNIQ_SUCCESS);
  assert_int_equal(finish_many_one(a, now), OMNIQ_ESTATE);
  omniq_task_free(old);
  omniq_task_free(now);
}

/* The slot's time moved by hand (as any write moves it), its bytes kept:
 * the finish reads the slot, and the run still finishes. */
static void test_a_slot_whose_time_moved_is_read_again(void **state) {
  th_be_t *a = *state;
  char id[OMNIQ_ID_SIZE], rel[128], path[2048];
  omniq_task_t *mine = add_and_claim(a, id);
  snprintf(rel, sizeof rel, "queue/running/%s.json", id);
  snprintf(path, sizeof path, "%s/%s", a->dir, rel);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  /* The claim's mark: a time no clock of today gives. */
  assert_true(st.st_mtim.tv_sec < 1000000000);
  assert_int_equal(utimensat(AT_FDCWD, path, NULL, 0), 0);
  assert_int_equal(finish_many_one(a, mine), OMNIQ_OK);
  assert_int_equal(status_of(a, id), OMNIQ_SUCCESS);
  omniq_task_free(mine);
}

#define BOTH(fn)                                                     \
  cmocka_unit_test_setup_teardown(fn, setup_off, teardown),          \
      cmocka_unit_test_setup_teardown(fn, setup_on, teardown)

int main(void) {
  const struct CMUnitTest tests[] = {
      BOTH(test_a_run_claimed_again_after_its_lease_is_refused),
      BOTH(test_a_run_cancelled_by_another_handle_is_refused),
      BOTH(test_a_run_retried_by_hand_and_claimed_elsewhere_is_refused),
      BOTH(test_the_same_handle_refuses_its_own_earlier_run),
      BOTH(test_a_slot_whose_time_moved_is_read_again),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
