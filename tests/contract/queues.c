/* SPDX-License-Identifier: MIT */
/* Contract (storage ABI 3): queues as a whole. A paused queue gives no
 * task to any claim, here or in another process; a rate limit caps starts
 * per window, counted inside the claim, across processes, without holding
 * up other queues; queue_stats reports counts, the oldest due task,
 * settings and running totals that count each run exactly once; a chore
 * has one winner until its next time. */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "support/procs.h"

static void enqueue_n(ct_fx_t *fx, const char *queue, int n, int64_t eta) {
  for (int i = 0; i < n; i++) {
    omniq_task_t *t = ct_task(queue, 0, eta);
    ct_enqueue1(fx, t);
    omniq_task_free(t);
  }
}

/* Claims up to max from the named queues at now; returns how many came
 * from `queue` (and frees them). */
static size_t claim_from(ct_fx_t *fx, const char *const *queues, size_t nq, int64_t now,
                         size_t max, const char *queue, size_t *total) {
  omniq_task_t **got = NULL;
  size_t n = 0, from = 0;
  OK(fx, ct_claim_q(fx, queues, nq, now, max, &got, &n));
  for (size_t i = 0; i < n; i++) from += strcmp(got[i]->queue, queue) == 0;
  if (total != NULL) *total = n;
  ct_tasks_free(got, n);
  return from;
}

static void test_paused_queue_gives_nothing_and_others_go_on(void **state) {
  ct_fx_t *fx = *state;
  const char *const both[] = {"mail", "default"};
  size_t total = 0;
  enqueue_n(fx, "mail", 3, NOW);
  enqueue_n(fx, "default", 3, NOW);
  OK(fx, ct_ops->set_paused(fx->be, "mail", 1, fx->err, ERRLEN));
  OK(fx, ct_ops->set_paused(fx->be, "mail", 1, fx->err, ERRLEN)); /* idempotent */
  assert_int_equal(claim_from(fx, both, 2, NOW, 10, "mail", &total), 0);
  assert_int_equal(total, 3);
  enqueue_n(fx, "mail", 1, NOW); /* enqueue still works */
  ct_reopen(fx);                 /* and the pause is in the store */
  assert_int_equal(claim_from(fx, both, 2, NOW, 10, "mail", &total), 0);
  assert_int_equal(total, 0);
  omniq_queue_info_t q = ct_queue(fx, "mail", NOW);
  assert_true(q.paused);
  assert_int_equal(q.counts[OMNIQ_PENDING], 4);
  OK(fx, ct_ops->set_paused(fx->be, "mail", 0, fx->err, ERRLEN));
  assert_int_equal(claim_from(fx, both, 2, NOW, 10, "mail", &total), 4);
  assert_false(ct_queue(fx, "mail", NOW).paused);
}

/* Windows of period aligned to multiples of it: at most limit starts in
 * each, whatever the claims ask for; the next window starts afresh. */
static void test_rate_limit_caps_starts_in_each_window(void **state) {
  ct_fx_t *fx = *state;
  const char *const q[] = {"api"};
  const int64_t w0 = NOW - NOW % 1000; /* a window boundary */
  enqueue_n(fx, "api", 20, w0);
  OK(fx, ct_ops->set_rate(fx->be, "api", 3, 1000, fx->err, ERRLEN));
  assert_int_equal(claim_from(fx, q, 1, w0 + 10, 2, "api", NULL), 2);
  assert_int_equal(claim_from(fx, q, 1, w0 + 20, 5, "api", NULL), 1);
  assert_int_equal(claim_from(fx, q, 1, w0 + 999, 5, "api", NULL), 0);
  ct_reopen(fx); /* the window's count is in the store */
  assert_int_equal(claim_from(fx, q, 1, w0 + 999, 5, "api", NULL), 0);
  assert_int_equal(claim_from(fx, q, 1, w0 + 1000, 5, "api", NULL), 3);
  /* A claim with a clock behind the window now counting takes nothing,
   * and leaves that window's count alone. */
  assert_int_equal(claim_from(fx, q, 1, w0 + 2000, 1, "api", NULL), 1);
  assert_int_equal(claim_from(fx, q, 1, w0 + 1999, 5, "api", NULL), 0);
  assert_int_equal(claim_from(fx, q, 1, w0 + 2001, 5, "api", NULL), 2);
  assert_int_equal(claim_from(fx, q, 1, w0 + 3500, 1, "api", NULL), 1);
  omniq_queue_info_t info = ct_queue(fx, "api", w0 + 3500);
  assert_int_equal(info.rate_limit, 3);
  assert_int_equal(info.rate_period_ms, 1000);
  OK(fx, ct_ops->set_rate(fx->be, "api", 0, 0, fx->err, ERRLEN));
  assert_int_equal(claim_from(fx, q, 1, w0 + 3500, 20, "api", NULL), 10);
  assert_int_equal(ct_queue(fx, "api", w0 + 3500).rate_limit, 0);
}

static void test_rate_limited_queue_does_not_hold_up_other_queues(void **state) {
  ct_fx_t *fx = *state;
  const char *const both[] = {"slow", "default"};
  size_t total = 0;
  omniq_task_t *t = ct_task("slow", 10, NOW); /* higher priority than the others */
  ct_enqueue1(fx, t);
  omniq_task_free(t);
  enqueue_n(fx, "slow", 5, NOW);
  enqueue_n(fx, "default", 5, NOW);
  OK(fx, ct_ops->set_rate(fx->be, "slow", 1, 60000, fx->err, ERRLEN));
  assert_int_equal(claim_from(fx, both, 2, NOW, 4, "slow", &total), 1);
  assert_int_equal(total, 4); /* one from slow, the rest from default */
  assert_int_equal(claim_from(fx, both, 2, NOW, 4, "slow", &total), 0);
  assert_int_equal(total, 2);
}

/* Counts by status, the oldest due task, and only the queue asked for. */
static void test_queue_stats_counts_statuses_and_the_oldest_due_task(void **state) {
  ct_fx_t *fx = *state;
  const int sts[] = {OMNIQ_RUNNING, OMNIQ_SUCCESS, OMNIQ_SUCCESS, OMNIQ_FAILED,
                     OMNIQ_CANCELLED};
  for (size_t i = 0; i < 5; i++) omniq_task_free(ct_bring(fx, ct_task("q1", 0, NOW), sts[i], NOW));
  enqueue_n(fx, "q1", 1, NOW - 700); /* the oldest due */
  enqueue_n(fx, "q1", 1, NOW - 100);
  enqueue_n(fx, "q1", 1, NOW + 5000); /* not due */
  enqueue_n(fx, "q2", 2, NOW - 9000);
  omniq_queue_info_t q = ct_queue(fx, "q1", NOW);
  const int64_t want[OMNIQ_STATUS_COUNT] = {3, 1, 2, 1, 1};
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) assert_int_equal(q.counts[st], want[st]);
  assert_int_equal(q.oldest_due_eta_ms, NOW - 700);
  assert_false(q.paused);
  omniq_queue_info_t none = ct_queue(fx, "nosuch", NOW);
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) assert_int_equal(none.counts[st], 0);
  assert_int_equal(none.oldest_due_eta_ms, 0);
  for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) assert_int_equal(none.runs[k], 0);
  /* Every queue, sorted by name. */
  omniq_queue_info_t *all = NULL;
  size_t n = 0;
  OK(fx, ct_ops->queue_stats(fx->be, NULL, NOW, &all, &n, fx->err, ERRLEN));
  assert_int_equal(n, 2);
  assert_string_equal(all[0].name, "q1");
  assert_string_equal(all[1].name, "q2");
  assert_int_equal(all[1].counts[OMNIQ_PENDING], 2);
  assert_int_equal(all[1].oldest_due_eta_ms, NOW - 9000);
  free(all);
}

/* Each finish adds one run to its queue's total of its kind, in the same
 * step; a finish under a stale token adds nothing. */
static void test_running_totals_count_each_finished_run_once(void **state) {
  ct_fx_t *fx = *state;
  const int kinds[] = {OMNIQ_RUNS_SUCCEEDED, OMNIQ_RUNS_RETRIED, OMNIQ_RUNS_RETRIED,
                       OMNIQ_RUNS_LOST, OMNIQ_RUNS_FAILED};
  omniq_task_t *t = ct_bring(fx, ct_task("w", 0, NOW), OMNIQ_RUNNING, NOW);
  const char *const q[] = {"w"};
  for (size_t i = 0; i < 5; i++) {
    int last = i == 4;
    omniq_task_t **got = NULL;
    size_t n = 0;
    ct_end_run(fx, t, last ? OMNIQ_FAILED : OMNIQ_PENDING, NOW + (int64_t)i, kinds[i]);
    omniq_decision_t stale = ct_decision(t, OMNIQ_SUCCESS);
    stale.runs = OMNIQ_RUNS_SUCCEEDED;
    FAILS(fx, OMNIQ_ESTATE, ct_finish(fx, &stale));
    if (last) break;
    OK(fx, ct_claim_q(fx, q, 1, NOW + (int64_t)i, 1, &got, &n));
    assert_int_equal(n, 1);
    omniq_task_free(t);
    t = got[0];
    free(got);
  }
  ct_reopen(fx);
  omniq_queue_info_t info = ct_queue(fx, "w", NOW);
  assert_int_equal(info.runs[OMNIQ_RUNS_SUCCEEDED], 1);
  assert_int_equal(info.runs[OMNIQ_RUNS_RETRIED], 2);
  assert_int_equal(info.runs[OMNIQ_RUNS_LOST], 1);
  assert_int_equal(info.runs[OMNIQ_RUNS_FAILED], 1);
  /* Totals outlive the tasks they counted. */
  int64_t purged = 0;
  OK(fx, ct_ops->purge_tasks(fx->be, NOW + 1000, 100, &purged, fx->err, ERRLEN));
  assert_int_equal(purged, 1);
  assert_int_equal(ct_queue(fx, "w", NOW).runs[OMNIQ_RUNS_RETRIED], 2);
  omniq_task_free(t);
}

static void test_a_chore_has_one_winner_until_its_next_time(void **state) {
  ct_fx_t *fx = *state;
  int won = -1;
  OK(fx, ct_ops->claim_chore(fx->be, "retention", NOW, NOW + 60000, &won, fx->err, ERRLEN));
  assert_int_equal(won, 1);
  OK(fx, ct_ops->claim_chore(fx->be, "retention", NOW + 1, NOW + 60001, &won, fx->err, ERRLEN));
  assert_int_equal(won, 0);
  ct_reopen(fx);
  OK(fx, ct_ops->claim_chore(fx->be, "retention", NOW + 59999, NOW + 2, &won, fx->err, ERRLEN));
  assert_int_equal(won, 0);
  OK(fx, ct_ops->claim_chore(fx->be, "other", NOW + 1, NOW + 2, &won, fx->err, ERRLEN));
  assert_int_equal(won, 1); /* chores are independent */
  OK(fx, ct_ops->claim_chore(fx->be, "retention", NOW + 60000, NOW + 120000, &won, fx->err,
                             ERRLEN));
  assert_int_equal(won, 1);
}

/* ---- across processes ------------------------------------------------------- */

#define RATE_PROCS 4
#define RATE_LIMIT 25

/* A child claiming one task at a time at a fixed now until the queue
 * gives nothing; it reports how many it got as its ids. */
static int rate_child(th_procs_t *p, int index, void *ud) {
  const omniq_settings_t *s = ud;
  const char *const q[] = {"api"};
  char err[ERRLEN], (*ids)[OMNIQ_ID_SIZE] = calloc(RATE_LIMIT * 2, OMNIQ_ID_SIZE);
  void *be = NULL;
  size_t got = 0;
  if (ids == NULL || ct_ops->open(s, &be, err, ERRLEN) != OMNIQ_OK) return 10;
  if (th_procs_ready(p) != 0) return 11;
  omniq_claim_req_t req = {.now_ms = NOW, .lease_until_ms = NOW + LEASE_MS, .queues = q,
                           .nqueues = 1, .max = 1};
  for (int busy = 0; busy < 100 && got < RATE_LIMIT * 2;) {
    omniq_task_t **out = NULL;
    size_t n = 0;
    int rc = ct_ops->claim(be, &req, &out, &n, err, ERRLEN);
    if (rc == OMNIQ_EBUSY) {
      busy++;
      continue;
    }
    if (rc != OMNIQ_OK) return 12;
    if (n == 0) break;
    memcpy(ids[got++], out[0]->id, OMNIQ_ID_SIZE);
    omniq_task_free(out[0]);
    free(out);
  }
  ct_ops->close(be);
  int rc = th_procs_put_ids(p, index, (const char(*)[OMNIQ_ID_SIZE])ids, got);
  free(ids);
  return rc == 0 ? 0 : 13;
}

/* Four processes claiming from one rate-limited queue at the same moment
 * take exactly the limit between them. */
static void test_rate_limit_holds_across_processes(void **state) {
  ct_fx_t *fx = *state;
  th_procs_t p;
  char(*ids)[OMNIQ_ID_SIZE] = NULL;
  size_t n = 0;
  if (ct_env->single_process) skip();
  enqueue_n(fx, "api", RATE_LIMIT * 3, NOW);
  OK(fx, ct_ops->set_rate(fx->be, "api", RATE_LIMIT, 3600000, fx->err, ERRLEN));
  ct_ops->close(fx->be);
  fx->be = NULL;
  th_procs_start(&p, RATE_PROCS, rate_child, &fx->settings);
  th_procs_go(&p);
  th_procs_wait(&p);
  th_procs_ids(&p, &ids, &n);
  th_procs_free(&p);
  assert_int_equal(n, RATE_LIMIT);
  for (size_t i = 0; i < n; i++)
    for (size_t k = 0; k < i; k++) assert_string_not_equal(ids[i], ids[k]);
  free(ids);
  OK(fx, ct_ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
  assert_int_equal(ct_queue(fx, "api", NOW).counts[OMNIQ_RUNNING], RATE_LIMIT);
}

/* A claim in another process, after the pause returned, takes nothing. */
static int paused_child(th_procs_t *p, int index, void *ud) {
  const omniq_settings_t *s = ud;
  char err[ERRLEN];
  void *be = NULL;
  omniq_task_t **out = NULL;
  size_t n = 0;
  const char *const q[] = {"mail"};
  omniq_claim_req_t req = {.now_ms = NOW, .lease_until_ms = NOW + LEASE_MS, .queues = q,
                           .nqueues = 1, .max = 10};
  if (ct_ops->open(s, &be, err, ERRLEN) != OMNIQ_OK) return 10;
  if (th_procs_ready(p) != 0) return 11; /* the parent pauses, then lets us go */
  int rc = ct_ops->claim(be, &req, &out, &n, err, ERRLEN);
  for (size_t i = 0; i < n; i++) omniq_task_free(out[i]);
  free(out);
  ct_ops->close(be);
  (void)index;
  return rc == OMNIQ_OK && n == 0 ? 0 : 12;
}

static void test_pause_holds_for_claims_in_other_processes(void **state) {
  ct_fx_t *fx = *state;
  th_procs_t p;
  if (ct_env->single_process) skip();
  enqueue_n(fx, "mail", 5, NOW);
  ct_ops->close(fx->be);
  fx->be = NULL;
  th_procs_start(&p, 2, paused_child, &fx->settings); /* they opened before the pause */
  OK(fx, ct_ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
  OK(fx, ct_ops->set_paused(fx->be, "mail", 1, fx->err, ERRLEN));
  th_procs_go(&p);
  th_procs_wait(&p);
  th_procs_free(&p);
  assert_int_equal(ct_queue(fx, "mail", NOW).counts[OMNIQ_PENDING], 5);
}

static const struct CMUnitTest tests[] = {
    CT_TEST(test_paused_queue_gives_nothing_and_others_go_on),
    CT_TEST(test_rate_limit_caps_starts_in_each_window),
    CT_TEST(test_rate_limited_queue_does_not_hold_up_other_queues),
    CT_TEST(test_queue_stats_counts_statuses_and_the_oldest_due_task),
    CT_TEST(test_running_totals_count_each_finished_run_once),
    CT_TEST(test_a_chore_has_one_winner_until_its_next_time),
    CT_TEST(test_rate_limit_holds_across_processes),
    CT_TEST(test_pause_holds_for_claims_in_other_processes),
};

const ct_section_t ct_section_queues = {tests, sizeof tests / sizeof tests[0], 3};
