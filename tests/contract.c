/* The storage contract: what "a backend works" means.
 *
 * One suite, written against the omniq_storage_ops_t table alone, run once
 * per backend (`contract sqlite`, `contract file`). It knows nothing about
 * how a backend stores things; it checks only the semantics omniq/storage.h
 * and DESIGN.md §3-4 promise: atomic enqueue batches, claims that count one
 * attempt and one token, claim order (priority desc, eta, insertion),
 * token-checked outcomes that change nothing when stale, cancellation,
 * leases, results, and that a claim is won once under threads and processes.
 * A new backend is done when this passes; backend-specific checks (paths,
 * query plans, file formats) belong in that backend's own test file.
 *
 * Each test gets a fresh directory and an open backend (setup), and closes
 * it and removes the directory (teardown). Time is passed explicitly in
 * every request, so nothing waits on the clock. */
#include "helpers.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "omniq/storage.h"

#define NOW TH_EPOCH_MS
#define LEASE_MS 30000
#define ERRLEN 512

static const omniq_storage_ops_t *ops;

typedef struct fx {
  char *dir;
  th_clock_t clock;
  omniq_settings_t settings;
  void *be;
  char err[ERRLEN];
} fx_t;

#define OK(fx, expr) th_be_ok((fx)->err, expr)

/* Asserts an operation failed with a given code. */
#define FAILS(fx, code, expr)                                                  \
  do {                                                                         \
    int fails_rc_ = (expr);                                                    \
    if (fails_rc_ != (code))                                                   \
      fail_msg("%s -> %s, expected %s (%s)", #expr, omniq_err_name(fails_rc_), \
               omniq_err_name(code), (fx)->err);                               \
  } while (0)

/* Test settings with fsync off: durability against power loss is not
 * observable in a test, and the 20,000-task test would otherwise spend its
 * time in fsync on a real disk. */
static void contract_settings(omniq_settings_t *s, const char *backend, const char *dir,
                              th_clock_t *clock) {
  th_settings(s, backend, dir, clock);
  s->lease_ms = LEASE_MS;
  s->fsync = 0;
}

static int setup(void **state) {
  fx_t *fx = calloc(1, sizeof *fx);
  assert_non_null(fx);
  fx->dir = th_tmpdir();
  assert_non_null(fx->dir);
  th_clock_init(&fx->clock, NOW);
  contract_settings(&fx->settings, ops->name, fx->dir, &fx->clock);
  int rc = ops->open(&fx->settings, &fx->be, fx->err, ERRLEN);
  if (rc != OMNIQ_OK) {
    print_error("open %s: %s: %s\n", ops->name, omniq_err_name(rc), fx->err);
    th_rmtree(fx->dir);
    free(fx);
    return -1;
  }
  *state = fx;
  return 0;
}

static int teardown(void **state) {
  fx_t *fx = *state;
  if (fx == NULL) return 0;
  if (fx->be != NULL) ops->close(fx->be);
  th_rmtree(fx->dir);
  free(fx);
  return 0;
}

static void reopen(fx_t *fx) {
  ops->close(fx->be);
  fx->be = NULL;
  OK(fx, ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
}

/* ---- records ------------------------------------------------------------- */

static omniq_task_t *mk_task(const char *queue, int priority, int64_t eta) {
  omniq_task_t *t = omniq_task_new();
  assert_non_null(t);
  omniq__id_new(NOW, t->id);
  t->func = omniq__strdup("tests.echo");
  t->queue = omniq__strdup(queue);
  t->args = omniq__strdup("[1,\"two\",{\"three\":3}]");
  t->kwargs = omniq__strdup("{\"k\":\"v\"}");
  assert_true(t->func && t->queue && t->args && t->kwargs);
  t->status = OMNIQ_PENDING;
  t->priority = priority;
  t->max_retries = 3;
  t->eta_ms = eta;
  t->timeout_ms = 5000;
  t->created_at_ms = NOW - 1000;
  return t;
}

static omniq_task_error_t *mk_error(const char *type, int retry_count, int retryable) {
  omniq_task_error_t *e = omniq_task_error_new(type, "it went wrong", NOW + 5,
                                               "trace line 1\nline 2", retry_count, retryable);
  assert_non_null(e);
  return e;
}

static omniq_result_t *mk_result(const char *id, int status, const char *value,
                                 const omniq_task_error_t *error, int attempts,
                                 int64_t finished_at) {
  omniq_result_t *r = omniq_result_new();
  assert_non_null(r);
  memcpy(r->task_id, id, OMNIQ_ID_SIZE);
  r->status = status;
  r->value = omniq__strdup(value);
  r->error = omniq_task_error_dup(error);
  r->attempts = attempts;
  r->finished_at_ms = finished_at;
  r->last_attempt_at_ms = finished_at - 1;
  return r;
}

/* Every field a task keeps from enqueue to its first claim. */
static void assert_task_as_enqueued(const omniq_task_t *got, const omniq_task_t *want) {
  assert_string_equal(got->id, want->id);
  assert_string_equal(got->func, want->func);
  assert_string_equal(got->queue, want->queue);
  assert_string_equal(got->args, want->args);
  assert_string_equal(got->kwargs, want->kwargs);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->priority, want->priority);
  assert_int_equal(got->attempts, 0);
  assert_int_equal(got->max_retries, want->max_retries);
  assert_int_equal(got->eta_ms, want->eta_ms);
  assert_int_equal(got->interval_ms, want->interval_ms);
  assert_int_equal(got->timeout_ms, want->timeout_ms);
  assert_int_equal(got->created_at_ms, want->created_at_ms);
  assert_int_equal(got->token, 0);
  th_assert_error_equal(got->last_error, want->last_error);
}

/* ---- operations ---------------------------------------------------------- */

static int enqueue(fx_t *fx, omniq_task_t **tasks, size_t n) {
  return ops->enqueue(fx->be, tasks, n, fx->err, ERRLEN);
}

static void enqueue1(fx_t *fx, omniq_task_t *t) { OK(fx, enqueue(fx, &t, 1)); }

static int claim_q(fx_t *fx, const char *const *queues, size_t nqueues, int64_t now, size_t max,
                   omniq_task_t ***out, size_t *n) {
  omniq_claim_req_t req = {.now_ms = now,
                           .lease_until_ms = now + LEASE_MS,
                           .queues = queues,
                           .nqueues = nqueues,
                           .max = max};
  return ops->claim(fx->be, &req, out, n, fx->err, ERRLEN);
}

static int claim(fx_t *fx, int64_t now, size_t max, omniq_task_t ***out, size_t *n) {
  static const char *const def[] = {OMNIQ_DEFAULT_QUEUE};
  return claim_q(fx, def, 1, now, max, out, n);
}

/* Claims exactly one task, which must be id. */
static omniq_task_t *claim_one(fx_t *fx, const char *id, int64_t now) {
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, claim(fx, now, 1, &got, &n));
  assert_int_equal(n, 1);
  assert_string_equal(got[0]->id, id);
  omniq_task_t *t = got[0];
  omniq__free(got);
  return t;
}

static void assert_nothing_due(fx_t *fx, int64_t now) {
  omniq_task_t **got = NULL;
  size_t n = 99;
  OK(fx, claim(fx, now, 10, &got, &n));
  assert_int_equal(n, 0);
  omniq__tasks_free(got, n);
}

static omniq_task_t *get(fx_t *fx, const char *id) {
  omniq_task_t *t = NULL;
  OK(fx, ops->get_task(fx->be, id, &t, fx->err, ERRLEN));
  assert_non_null(t);
  return t;
}

static omniq_result_t *get_result(fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  OK(fx, ops->get_result(fx->be, id, &r, fx->err, ERRLEN));
  assert_non_null(r);
  return r;
}

static void assert_no_result(fx_t *fx, const char *id) {
  omniq_result_t *r = NULL;
  FAILS(fx, OMNIQ_ENOTFOUND, ops->get_result(fx->be, id, &r, fx->err, ERRLEN));
  assert_null(r);
}

static omniq_outcome_t outcome(const omniq_task_t *claimed, int next_status) {
  omniq_outcome_t o = {.id = claimed->id, .token = claimed->token, .next_status = next_status};
  return o;
}

static int complete(fx_t *fx, const omniq_outcome_t *o) {
  return ops->complete(fx->be, o, fx->err, ERRLEN);
}

static int fail_run(fx_t *fx, const omniq_outcome_t *o) {
  return (ops->fail)(fx->be, o, fx->err, ERRLEN); /* cmocka defines fail() */
}

static void counts(fx_t *fx, int64_t c[OMNIQ_STATUS_COUNT]) {
  OK(fx, ops->count_by_status(fx->be, c, fx->err, ERRLEN));
}

/* ---- enqueue ------------------------------------------------------------- */

static void test_enqueue_one_then_get_returns_same_fields(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 7, NOW + 123);
  t->interval_ms = 60000;
  t->max_retries = 5;
  enqueue1(fx, t);
  omniq_task_t *got = get(fx, t->id);
  assert_task_as_enqueued(got, t);
  omniq_task_free(got);
  omniq_task_free(t);
}

static void test_enqueue_many_then_get_returns_each(void **state) {
  fx_t *fx = *state;
  omniq_task_t *tasks[25];
  for (int i = 0; i < 25; i++) tasks[i] = mk_task(i % 2 ? "default" : "other", i - 12, NOW + i);
  OK(fx, enqueue(fx, tasks, 25));
  for (int i = 0; i < 25; i++) {
    omniq_task_t *got = get(fx, tasks[i]->id);
    assert_task_as_enqueued(got, tasks[i]);
    omniq_task_free(got);
    omniq_task_free(tasks[i]);
  }
  int64_t c[OMNIQ_STATUS_COUNT];
  counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 25);
}

static void test_enqueue_batch_with_duplicate_id_stores_none(void **state) {
  fx_t *fx = *state;
  omniq_task_t *batch[3] = {mk_task("default", 0, NOW), mk_task("default", 0, NOW), NULL};
  batch[2] = omniq_task_dup(batch[0]); /* same id twice in one batch */
  FAILS(fx, OMNIQ_EINVAL, enqueue(fx, batch, 3));
  for (int i = 0; i < 3; i++) {
    omniq_task_t *got = NULL;
    FAILS(fx, OMNIQ_ENOTFOUND, ops->get_task(fx->be, batch[i]->id, &got, fx->err, ERRLEN));
    omniq_task_free(batch[i]);
  }
  assert_nothing_due(fx, NOW);
}

static void test_enqueue_batch_with_existing_id_stores_none(void **state) {
  fx_t *fx = *state;
  omniq_task_t *first = mk_task("default", 0, NOW);
  enqueue1(fx, first);
  omniq_task_t *batch[2] = {mk_task("default", 0, NOW), omniq_task_dup(first)};
  batch[1]->priority = 9; /* a different task under a taken id */
  FAILS(fx, OMNIQ_EINVAL, enqueue(fx, batch, 2));
  omniq_task_t *got = NULL;
  FAILS(fx, OMNIQ_ENOTFOUND, ops->get_task(fx->be, batch[0]->id, &got, fx->err, ERRLEN));
  got = get(fx, first->id);
  assert_task_as_enqueued(got, first); /* the stored one is untouched */
  int64_t c[OMNIQ_STATUS_COUNT];
  counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 1);
  omniq_task_free(got);
  omniq_task_free(first);
  omniq_task_free(batch[0]);
  omniq_task_free(batch[1]);
}

/* ---- claim --------------------------------------------------------------- */

static void test_claim_counts_one_attempt_and_one_token(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW - 10);
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  assert_int_equal(c->status, OMNIQ_RUNNING);
  assert_int_equal(c->attempts, 1);
  assert_int_equal(c->started_at_ms, NOW);
  assert_int_equal(c->lease_until_ms, NOW + LEASE_MS);
  assert_string_equal(c->args, t->args);
  assert_string_equal(c->kwargs, t->kwargs);
  assert_string_equal(c->func, t->func);

  /* What the claim returned is what was stored. */
  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->attempts, 1);
  assert_int_equal(got->token, c->token);
  assert_int_equal(got->started_at_ms, NOW);
  assert_int_equal(got->lease_until_ms, NOW + LEASE_MS);
  assert_nothing_due(fx, NOW + 1000); /* a running task is not claimed again */

  /* A second run after a retry counts exactly one more, with a new token. */
  omniq_outcome_t o = outcome(c, OMNIQ_PENDING);
  o.eta_ms = NOW + 50;
  OK(fx, fail_run(fx, &o));
  omniq_task_t *again = get(fx, t->id);
  assert_int_equal(again->attempts, 1); /* failing does not count */
  omniq_task_t *c2 = claim_one(fx, t->id, NOW + 50);
  assert_int_equal(c2->attempts, 2);
  assert_int_equal(c2->token, c->token + 1);
  assert_int_equal(c2->started_at_ms, NOW + 50);
  omniq_task_free(c2);
  omniq_task_free(again);
  omniq_task_free(got);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_claim_respects_eta(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW + 5000);
  enqueue1(fx, t);
  assert_nothing_due(fx, NOW);
  assert_nothing_due(fx, NOW + 4999);
  omniq_task_t *c = claim_one(fx, t->id, NOW + 5000);
  omniq_task_free(c);
  omniq_task_free(t);
}

typedef struct {
  int priority;
  int64_t eta;
  size_t index;
} order_key_t;

static int order_cmp(const void *pa, const void *pb) {
  const order_key_t *a = pa, *b = pb;
  if (a->priority != b->priority) return a->priority > b->priority ? -1 : 1;
  if (a->eta != b->eta) return a->eta < b->eta ? -1 : 1;
  return (a->index > b->index) - (a->index < b->index);
}

#define ORDER_N 1000
#define ORDER_BATCH 7

static void test_claim_order_is_priority_then_eta_then_insertion(void **state) {
  fx_t *fx = *state;
  omniq_task_t **tasks = calloc(ORDER_N, sizeof *tasks);
  order_key_t *due = calloc(ORDER_N, sizeof *due);
  size_t ndue = 0, nclaimed = 0;
  uint64_t rng = 0x9E3779B97F4A7C15ULL;
  assert_true(tasks && due);
  for (size_t i = 0; i < ORDER_N; i++) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    int priority = (int)(rng % 5) - 2;
    /* Few distinct etas so ties reach the insertion-order rule; one task in
     * ten is not yet due and must be left alone. */
    int64_t eta =
        i % 10 == 3 ? NOW + 1 + (int64_t)(rng >> 20) % 100 : NOW - (int64_t)((rng >> 8) % 4) * 1000;
    tasks[i] = mk_task("default", priority, eta);
    if (eta <= NOW) due[ndue++] = (order_key_t){priority, eta, i};
  }
  OK(fx, enqueue(fx, tasks, ORDER_N));
  qsort(due, ndue, sizeof *due, order_cmp);

  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    OK(fx, claim(fx, NOW, ORDER_BATCH, &got, &n));
    assert_true(n <= ORDER_BATCH);
    for (size_t i = 0; i < n; i++, nclaimed++) {
      assert_true(nclaimed < ndue);
      if (strcmp(got[i]->id, tasks[due[nclaimed].index]->id) != 0)
        fail_msg(
            "claim %zu: got %s (priority %d, eta %lld), expected task %zu (priority %d, "
            "eta %lld)",
            nclaimed, got[i]->id, got[i]->priority, (long long)got[i]->eta_ms, due[nclaimed].index,
            due[nclaimed].priority, (long long)due[nclaimed].eta);
    }
    omniq__tasks_free(got, n);
    if (n == 0) break;
  }
  assert_int_equal(nclaimed, ndue);
  int64_t c[OMNIQ_STATUS_COUNT];
  counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], ORDER_N - ndue);
  assert_int_equal(c[OMNIQ_RUNNING], ndue);
  for (size_t i = 0; i < ORDER_N; i++) omniq_task_free(tasks[i]);
  free(tasks);
  free(due);
}

static void test_claim_returns_at_most_max(void **state) {
  fx_t *fx = *state;
  omniq_task_t *tasks[10];
  for (int i = 0; i < 10; i++) tasks[i] = mk_task("default", 0, NOW);
  OK(fx, enqueue(fx, tasks, 10));
  size_t sizes[] = {3, 1, 4, 10, 10}, want[] = {3, 1, 4, 2, 0};
  for (size_t k = 0; k < 5; k++) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    OK(fx, claim(fx, NOW, sizes[k], &got, &n));
    assert_int_equal(n, want[k]);
    omniq__tasks_free(got, n);
  }
  for (int i = 0; i < 10; i++) omniq_task_free(tasks[i]);
}

static void test_claim_takes_only_named_queues(void **state) {
  fx_t *fx = *state;
  static const char *const names[] = {"alpha", "beta", "gamma"};
  omniq_task_t *tasks[9];
  for (int i = 0; i < 9; i++) tasks[i] = mk_task(names[i % 3], i, NOW);
  OK(fx, enqueue(fx, tasks, 9));

  static const char *const ag[] = {"alpha", "gamma"};
  omniq_task_t **got = NULL;
  size_t n = 0;
  OK(fx, claim_q(fx, ag, 2, NOW, 100, &got, &n));
  /* Priority order across both queues: tasks 8, 6, 5, 3, 2, 0. */
  static const int want[] = {8, 6, 5, 3, 2, 0};
  assert_int_equal(n, 6);
  for (size_t i = 0; i < n; i++) assert_string_equal(got[i]->id, tasks[want[i]]->id);
  omniq__tasks_free(got, n);

  static const char *const nobody[] = {"delta"};
  OK(fx, claim_q(fx, nobody, 1, NOW, 100, &got, &n));
  assert_int_equal(n, 0);
  omniq__tasks_free(got, n);
  assert_nothing_due(fx, NOW); /* nothing is in "default" */

  static const char *const b[] = {"beta"};
  OK(fx, claim_q(fx, b, 1, NOW, 100, &got, &n));
  assert_int_equal(n, 3);
  for (size_t i = 0; i < n; i++) assert_string_equal(got[i]->queue, "beta");
  omniq__tasks_free(got, n);
  for (int i = 0; i < 9; i++) omniq_task_free(tasks[i]);
}

/* ---- complete and fail --------------------------------------------------- */

static void test_complete_with_result_is_success_and_result_readable(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  assert_no_result(fx, t->id);
  omniq_result_t *r = mk_result(t->id, OMNIQ_SUCCESS, "{\"answer\":42}", NULL, 1, NOW + 100);
  omniq_outcome_t o = outcome(c, OMNIQ_SUCCESS);
  o.result = r;
  OK(fx, complete(fx, &o));

  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  assert_int_equal(got->attempts, 1);
  omniq_result_t *stored = get_result(fx, t->id);
  th_assert_result_equal(stored, r);
  assert_nothing_due(fx, NOW + 100000);
  /* A finished run cannot be finished twice. */
  FAILS(fx, OMNIQ_ESTATE, complete(fx, &o));
  omniq_result_free(stored);
  omniq_task_free(got);
  omniq_result_free(r);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_complete_rearm_keeps_id_and_replaces_result(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  t->interval_ms = 1000;
  enqueue1(fx, t);

  omniq_task_t *c1 = claim_one(fx, t->id, NOW);
  omniq_result_t *r1 = mk_result(t->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 10);
  omniq_outcome_t o = outcome(c1, OMNIQ_PENDING);
  o.eta_ms = NOW + 1010;
  o.reset_attempts = 1;
  o.result = r1;
  OK(fx, complete(fx, &o));
  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + 1010);
  assert_int_equal(got->attempts, 0);
  assert_int_equal(got->interval_ms, 1000);
  omniq_result_t *stored = get_result(fx, t->id);
  th_assert_result_equal(stored, r1);
  omniq_result_free(stored);
  omniq_task_free(got);

  assert_nothing_due(fx, NOW + 1009);
  omniq_task_t *c2 = claim_one(fx, t->id, NOW + 1010);
  assert_int_equal(c2->attempts, 1); /* counted from the re-arm */
  assert_true(c2->token > c1->token);
  omniq_result_t *r2 = mk_result(t->id, OMNIQ_SUCCESS, "2", NULL, 1, NOW + 1020);
  o = outcome(c2, OMNIQ_PENDING);
  o.eta_ms = NOW + 2020;
  o.reset_attempts = 1;
  o.result = r2;
  OK(fx, complete(fx, &o));
  stored = get_result(fx, t->id);
  th_assert_result_equal(stored, r2);
  got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + 2020);
  omniq_task_free(got);
  omniq_result_free(stored);
  omniq_result_free(r2);
  omniq_task_free(c2);
  omniq_result_free(r1);
  omniq_task_free(c1);
  omniq_task_free(t);
}

static void test_fail_with_retry_requeues_with_last_error_and_no_result(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  omniq_task_error_t *e = mk_error("ValueError", 1, 1);
  omniq_outcome_t o = outcome(c, OMNIQ_PENDING);
  o.eta_ms = NOW + 2000;
  o.error = e;
  OK(fx, fail_run(fx, &o));

  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->eta_ms, NOW + 2000);
  assert_int_equal(got->attempts, 1);
  th_assert_error_equal(got->last_error, e);
  assert_no_result(fx, t->id);
  assert_nothing_due(fx, NOW + 1999);
  omniq_task_t *c2 = claim_one(fx, t->id, NOW + 2000);
  assert_int_equal(c2->attempts, 2);
  th_assert_error_equal(c2->last_error, e);
  omniq_task_free(c2);
  omniq_task_free(got);
  omniq_task_error_free(e);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_fail_final_is_failed_with_result(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  t->max_retries = 1;
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  omniq_task_error_t *e = mk_error("Crash", 1, 0);
  omniq_result_t *r = mk_result(t->id, OMNIQ_FAILED, NULL, e, 1, NOW + 30);
  omniq_outcome_t o = outcome(c, OMNIQ_FAILED);
  o.error = e;
  o.result = r;
  OK(fx, fail_run(fx, &o));

  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_FAILED);
  assert_int_equal(got->attempts, 1);
  th_assert_error_equal(got->last_error, e);
  omniq_result_t *stored = get_result(fx, t->id);
  th_assert_result_equal(stored, r);
  assert_null(stored->value);
  assert_nothing_due(fx, NOW + 100000);
  omniq_result_free(stored);
  omniq_task_free(got);
  omniq_result_free(r);
  omniq_task_error_free(e);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_outcome_without_error_keeps_last_error(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  omniq_task_error_t *e = mk_error("Flaky", 1, 1);
  omniq_outcome_t o = outcome(c, OMNIQ_PENDING);
  o.eta_ms = NOW;
  o.error = e;
  OK(fx, fail_run(fx, &o));
  omniq_task_t *c2 = claim_one(fx, t->id, NOW);
  o = outcome(c2, OMNIQ_SUCCESS);
  OK(fx, complete(fx, &o));
  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  th_assert_error_equal(got->last_error, e);
  omniq_task_free(got);
  omniq_task_free(c2);
  omniq_task_error_free(e);
  omniq_task_free(c);
  omniq_task_free(t);
}

/* A worker presumed dead comes back with the token of an old claim. */
static void test_stale_token_changes_nothing(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_task_t *old = claim_one(fx, t->id, NOW);
  omniq_task_error_t *lost = mk_error("WorkerLost", 1, 1);
  omniq_outcome_t o = outcome(old, OMNIQ_PENDING);
  o.eta_ms = NOW + 10;
  o.error = lost;
  OK(fx, fail_run(fx, &o));
  omniq_task_t *cur = claim_one(fx, t->id, NOW + 10);
  omniq_task_t *before = get(fx, t->id);

  omniq_task_error_t *e = mk_error("Late", 1, 0);
  omniq_result_t *r = mk_result(t->id, OMNIQ_SUCCESS, "\"late\"", NULL, 1, NOW + 20);
  omniq_outcome_t stale = outcome(old, OMNIQ_SUCCESS);
  stale.result = r;
  stale.error = e;
  FAILS(fx, OMNIQ_ESTATE, complete(fx, &stale));
  stale.next_status = OMNIQ_FAILED;
  FAILS(fx, OMNIQ_ESTATE, fail_run(fx, &stale));
  stale.next_status = OMNIQ_PENDING;
  stale.eta_ms = NOW + 99999;
  stale.reset_attempts = 1;
  FAILS(fx, OMNIQ_ESTATE, fail_run(fx, &stale));
  FAILS(fx, OMNIQ_ESTATE,
        ops->extend_lease(fx->be, t->id, old->token, NOW + 999999, fx->err, ERRLEN));

  omniq_task_t *after = get(fx, t->id);
  assert_int_equal(after->status, OMNIQ_RUNNING);
  assert_int_equal(after->token, before->token);
  assert_int_equal(after->attempts, 2);
  assert_int_equal(after->eta_ms, before->eta_ms);
  assert_int_equal(after->lease_until_ms, before->lease_until_ms);
  assert_int_equal(after->started_at_ms, before->started_at_ms);
  th_assert_error_equal(after->last_error, lost);
  assert_no_result(fx, t->id);

  /* The current claim still finishes. */
  o = outcome(cur, OMNIQ_SUCCESS);
  OK(fx, complete(fx, &o));
  omniq_task_free(after);
  omniq_result_free(r);
  omniq_task_error_free(e);
  omniq_task_free(before);
  omniq_task_free(cur);
  omniq_task_error_free(lost);
  omniq_task_free(old);
  omniq_task_free(t);
}

static void test_outcome_for_unclaimed_task_is_state_error(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_outcome_t o = outcome(t, OMNIQ_SUCCESS); /* token 0: never claimed */
  FAILS(fx, OMNIQ_ESTATE, complete(fx, &o));
  o.next_status = OMNIQ_FAILED;
  FAILS(fx, OMNIQ_ESTATE, fail_run(fx, &o));
  FAILS(fx, OMNIQ_ESTATE, ops->extend_lease(fx->be, t->id, 0, NOW + 1, fx->err, ERRLEN));
  omniq_task_t *got = get(fx, t->id);
  assert_task_as_enqueued(got, t);
  omniq_task_free(got);
  omniq_task_free(t);
}

static void test_unknown_id_is_not_found(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq__id_new(NOW, id);
  omniq_outcome_t o = {.id = id, .token = 1, .next_status = OMNIQ_SUCCESS};
  omniq_task_t *t = NULL;
  omniq_result_t *r = mk_result(id, OMNIQ_CANCELLED, NULL, NULL, 0, NOW);
  FAILS(fx, OMNIQ_ENOTFOUND, complete(fx, &o));
  o.next_status = OMNIQ_FAILED;
  FAILS(fx, OMNIQ_ENOTFOUND, fail_run(fx, &o));
  FAILS(fx, OMNIQ_ENOTFOUND, ops->extend_lease(fx->be, id, 1, NOW, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ENOTFOUND, ops->cancel(fx->be, id, r, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ENOTFOUND, ops->get_task(fx->be, id, &t, fx->err, ERRLEN));
  assert_null(t);
  assert_no_result(fx, id); /* and cancel stored no result */
  omniq_result_free(r);
}

/* ---- cancel -------------------------------------------------------------- */

static void test_cancel_pending_and_running_stores_result(void **state) {
  fx_t *fx = *state;
  omniq_task_t *p = mk_task("default", 0, NOW + 100), *run = mk_task("default", 0, NOW);
  enqueue1(fx, p);
  enqueue1(fx, run);
  omniq_task_t *c = claim_one(fx, run->id, NOW);

  omniq_task_t *ids[2] = {p, run};
  for (int i = 0; i < 2; i++) {
    omniq_result_t *r = mk_result(ids[i]->id, OMNIQ_CANCELLED, NULL, NULL, i, NOW + 5);
    OK(fx, ops->cancel(fx->be, ids[i]->id, r, fx->err, ERRLEN));
    omniq_task_t *got = get(fx, ids[i]->id);
    assert_int_equal(got->status, OMNIQ_CANCELLED);
    omniq_result_t *stored = get_result(fx, ids[i]->id);
    th_assert_result_equal(stored, r);
    omniq_result_free(stored);
    omniq_task_free(got);
    omniq_result_free(r);
  }
  /* The running handler's outcome is discarded. */
  omniq_result_t *late = mk_result(run->id, OMNIQ_SUCCESS, "1", NULL, 1, NOW + 9);
  omniq_outcome_t o = outcome(c, OMNIQ_SUCCESS);
  o.result = late;
  FAILS(fx, OMNIQ_ESTATE, complete(fx, &o));
  FAILS(fx, OMNIQ_ESTATE, ops->extend_lease(fx->be, run->id, c->token, NOW + 1, fx->err, ERRLEN));
  omniq_result_t *stored = get_result(fx, run->id);
  assert_int_equal(stored->status, OMNIQ_CANCELLED);
  omniq_task_t *got = get(fx, run->id);
  assert_int_equal(got->status, OMNIQ_CANCELLED);
  omniq_task_free(got);
  omniq_result_free(stored);
  omniq_result_free(late);
  omniq_task_free(c);
  omniq_task_free(p);
  omniq_task_free(run);
}

static void test_cancel_terminal_is_state_error(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  omniq_result_t *done = mk_result(t->id, OMNIQ_SUCCESS, "true", NULL, 1, NOW + 1);
  omniq_outcome_t o = outcome(c, OMNIQ_SUCCESS);
  o.result = done;
  OK(fx, complete(fx, &o));
  omniq_result_t *r = mk_result(t->id, OMNIQ_CANCELLED, NULL, NULL, 1, NOW + 2);
  FAILS(fx, OMNIQ_ESTATE, ops->cancel(fx->be, t->id, r, fx->err, ERRLEN));
  omniq_result_t *stored = get_result(fx, t->id);
  th_assert_result_equal(stored, done); /* the cancel stored nothing */
  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);

  /* Cancelling twice: the second finds a terminal task. */
  omniq_task_t *t2 = mk_task("default", 0, NOW);
  enqueue1(fx, t2);
  omniq_result_t *r2 = mk_result(t2->id, OMNIQ_CANCELLED, NULL, NULL, 0, NOW + 3);
  OK(fx, ops->cancel(fx->be, t2->id, r2, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ESTATE, ops->cancel(fx->be, t2->id, r2, fx->err, ERRLEN));
  omniq_result_free(r2);
  omniq_task_free(t2);
  omniq_task_free(got);
  omniq_result_free(stored);
  omniq_result_free(r);
  omniq_result_free(done);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void test_cancelled_task_is_never_claimed(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 5, NOW), *other = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  enqueue1(fx, other);
  OK(fx, ops->cancel(fx->be, t->id, NULL, fx->err, ERRLEN));
  omniq_task_t *c = claim_one(fx, other->id, NOW + 100000);
  assert_nothing_due(fx, NOW + 100000);
  int64_t cnt[OMNIQ_STATUS_COUNT];
  counts(fx, cnt);
  assert_int_equal(cnt[OMNIQ_CANCELLED], 1);
  assert_int_equal(cnt[OMNIQ_RUNNING], 1);
  omniq_task_free(c);
  omniq_task_free(other);
  omniq_task_free(t);
}

/* ---- leases -------------------------------------------------------------- */

static void test_extend_lease_checks_token(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t = mk_task("default", 0, NOW);
  enqueue1(fx, t);
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  OK(fx, ops->extend_lease(fx->be, t->id, c->token, NOW + 77777, fx->err, ERRLEN));
  omniq_task_t *got = get(fx, t->id);
  assert_int_equal(got->lease_until_ms, NOW + 77777);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->attempts, 1);
  omniq_task_free(got);
  FAILS(fx, OMNIQ_ESTATE,
        ops->extend_lease(fx->be, t->id, c->token + 1, NOW + 88888, fx->err, ERRLEN));
  FAILS(fx, OMNIQ_ESTATE,
        ops->extend_lease(fx->be, t->id, c->token - 1, NOW + 88888, fx->err, ERRLEN));
  got = get(fx, t->id);
  assert_int_equal(got->lease_until_ms, NOW + 77777);
  omniq_task_free(got);
  omniq_task_free(c);
  omniq_task_free(t);
}

static void assert_expired(fx_t *fx, int64_t now, size_t max, omniq_task_t *const *want,
                           size_t nwant) {
  omniq_task_t **got = NULL;
  size_t n = 99;
  OK(fx, ops->expired_leases(fx->be, now, max, &got, &n, fx->err, ERRLEN));
  assert_int_equal(n, nwant);
  for (size_t i = 0; i < n; i++) {
    assert_string_equal(got[i]->id, want[i]->id);
    assert_int_equal(got[i]->status, OMNIQ_RUNNING);
  }
  omniq__tasks_free(got, n);
}

static void test_expired_leases_are_running_tasks_past_their_lease(void **state) {
  fx_t *fx = *state;
  omniq_task_t *a = mk_task("default", 3, NOW), *b = mk_task("default", 2, NOW),
               *c = mk_task("default", 1, NOW), *done = mk_task("default", 0, NOW),
               *pending = mk_task("default", 0, NOW + 10);
  omniq_task_t *all[] = {a, b, c, done, pending};
  OK(fx, enqueue(fx, all, 5));
  omniq_task_t *ca = claim_one(fx, a->id, NOW);       /* lease NOW + L */
  omniq_task_t *cb = claim_one(fx, b->id, NOW + 100); /* lease NOW + L + 100 */
  omniq_task_t *cc = claim_one(fx, c->id, NOW + 200);
  OK(fx, ops->extend_lease(fx->be, c->id, cc->token, NOW + LEASE_MS + 50, fx->err, ERRLEN));
  omniq_task_t *cd = claim_one(fx, done->id, NOW + 300);
  omniq_outcome_t o = outcome(cd, OMNIQ_SUCCESS);
  OK(fx, complete(fx, &o));

  assert_expired(fx, NOW + LEASE_MS, 10, NULL, 0); /* lease_until < now, strictly */
  assert_expired(fx, NOW + LEASE_MS + 1, 10, (omniq_task_t *[]){a}, 1);
  assert_expired(fx, NOW + LEASE_MS + 101, 10, (omniq_task_t *[]){a, c, b}, 3);
  assert_expired(fx, NOW + LEASE_MS + 101, 2, (omniq_task_t *[]){a, c}, 2);
  assert_expired(fx, INT64_MAX / 2, 10, (omniq_task_t *[]){a, c, b}, 3);

  /* Looking does not change them. */
  omniq_task_t *got = get(fx, a->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->token, ca->token);
  assert_int_equal(got->attempts, 1);
  omniq_task_free(got);
  omniq_task_free(ca);
  omniq_task_free(cb);
  omniq_task_free(cc);
  omniq_task_free(cd);
  for (int i = 0; i < 5; i++) omniq_task_free(all[i]);
}

/* ---- results, counts, persistence ---------------------------------------- */

/* Finishes task t (claimed now) with a result finished at finished_at. */
static void finish_with_result(fx_t *fx, const omniq_task_t *t, int64_t finished_at) {
  omniq_task_t *c = claim_one(fx, t->id, NOW);
  omniq_result_t *r = mk_result(t->id, OMNIQ_SUCCESS, "null", NULL, 1, finished_at);
  omniq_outcome_t o = outcome(c, OMNIQ_SUCCESS);
  o.result = r;
  OK(fx, complete(fx, &o));
  omniq_result_free(r);
  omniq_task_free(c);
}

static void test_purge_removes_exactly_results_older_than_cutoff(void **state) {
  fx_t *fx = *state;
  omniq_task_t *t[4];
  int64_t finished[4] = {NOW + 10, NOW + 20, NOW + 20, NOW + 30};
  for (int i = 0; i < 4; i++) {
    t[i] = mk_task("default", 0, NOW);
    enqueue1(fx, t[i]);
    finish_with_result(fx, t[i], finished[i]);
  }
  int64_t count = -1;
  OK(fx, ops->purge_results(fx->be, NOW + 10, &count, fx->err, ERRLEN));
  assert_int_equal(count, 0); /* finished_at < cutoff, strictly */
  OK(fx, ops->purge_results(fx->be, NOW + 21, &count, fx->err, ERRLEN));
  assert_int_equal(count, 3);
  for (int i = 0; i < 3; i++) assert_no_result(fx, t[i]->id);
  omniq_result_t *kept = get_result(fx, t[3]->id);
  assert_int_equal(kept->finished_at_ms, NOW + 30);
  omniq_result_free(kept);
  OK(fx, ops->purge_results(fx->be, NOW + 21, &count, fx->err, ERRLEN));
  assert_int_equal(count, 0);
  /* Purging results leaves the tasks. */
  omniq_task_t *got = get(fx, t[0]->id);
  assert_int_equal(got->status, OMNIQ_SUCCESS);
  omniq_task_free(got);
  for (int i = 0; i < 4; i++) omniq_task_free(t[i]);
}

static void test_count_by_status_counts_each_status(void **state) {
  fx_t *fx = *state;
  int64_t c[OMNIQ_STATUS_COUNT];
  counts(fx, c);
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) assert_int_equal(c[i], 0);

  omniq_task_t *t[9];
  for (int i = 0; i < 9; i++) t[i] = mk_task("default", 9 - i, NOW); /* claimed in index order */
  OK(fx, enqueue(fx, t, 9));
  finish_with_result(fx, t[0], NOW + 1); /* SUCCESS */
  finish_with_result(fx, t[1], NOW + 1); /* SUCCESS */
  omniq_task_t *f = claim_one(fx, t[2]->id, NOW);
  omniq_outcome_t o = outcome(f, OMNIQ_FAILED);
  OK(fx, fail_run(fx, &o)); /* FAILED */
  omniq_task_t *r1 = claim_one(fx, t[3]->id, NOW), *r2 = claim_one(fx, t[4]->id, NOW);
  OK(fx, ops->cancel(fx->be, t[5]->id, NULL, fx->err, ERRLEN)); /* CANCELLED */
  counts(fx, c);
  assert_int_equal(c[OMNIQ_PENDING], 3);
  assert_int_equal(c[OMNIQ_RUNNING], 2);
  assert_int_equal(c[OMNIQ_SUCCESS], 2);
  assert_int_equal(c[OMNIQ_FAILED], 1);
  assert_int_equal(c[OMNIQ_CANCELLED], 1);
  omniq_task_free(r1);
  omniq_task_free(r2);
  omniq_task_free(f);
  for (int i = 0; i < 9; i++) omniq_task_free(t[i]);
}

static void test_reopen_keeps_everything(void **state) {
  fx_t *fx = *state;
  omniq_task_t *waiting = mk_task("default", 0, NOW + 500), *done = mk_task("default", 1, NOW),
               *running = mk_task("default", 0, NOW);
  omniq_task_t *all[] = {waiting, done, running};
  OK(fx, enqueue(fx, all, 3));
  omniq_task_t *c = claim_one(fx, done->id, NOW);
  omniq_task_error_t *e = mk_error("Oops", 1, 0);
  omniq_result_t *r = mk_result(done->id, OMNIQ_FAILED, NULL, e, 1, NOW + 7);
  omniq_outcome_t o = outcome(c, OMNIQ_FAILED);
  o.error = e;
  o.result = r;
  OK(fx, fail_run(fx, &o));
  omniq_task_t *cr = claim_one(fx, running->id, NOW);

  reopen(fx);

  omniq_task_t *got = get(fx, waiting->id);
  assert_task_as_enqueued(got, waiting);
  omniq_task_free(got);
  got = get(fx, done->id);
  assert_int_equal(got->status, OMNIQ_FAILED);
  th_assert_error_equal(got->last_error, e);
  omniq_task_free(got);
  omniq_result_t *stored = get_result(fx, done->id);
  th_assert_result_equal(stored, r);
  omniq_result_free(stored);
  got = get(fx, running->id);
  assert_int_equal(got->status, OMNIQ_RUNNING);
  assert_int_equal(got->token, cr->token);
  assert_int_equal(got->lease_until_ms, cr->lease_until_ms);
  omniq_task_free(got);
  /* The running claim is still valid across the reopen, and work goes on. */
  o = outcome(cr, OMNIQ_SUCCESS);
  OK(fx, complete(fx, &o));
  omniq_task_t *cw = claim_one(fx, waiting->id, NOW + 500);
  omniq_task_free(cw);
  omniq_task_free(cr);
  omniq_result_free(r);
  omniq_task_error_free(e);
  omniq_task_free(c);
  for (int i = 0; i < 3; i++) omniq_task_free(all[i]);
}

/* ---- atomic claim under threads and processes ----------------------------
 *
 * CONC_TASKS tasks; CONC_THREADS threads in this process, each with its own
 * backend, and CONC_PROCS child processes, each with one backend shared by
 * CONC_PROC_THREADS threads, claim in batches until nothing is due. Threads
 * mark what they claim in a shared bitmap under a mutex; children write
 * their ids to a file the parent reads afterwards. Every task must be
 * claimed exactly once.
 *
 * Children are forked before any thread starts and while this process has
 * no backend open: a forked child must not inherit open database state
 * (SQLite's POSIX locks are per process) nor other threads. A pipe is the
 * start gate for the children and a barrier for the threads, so all
 * claimers start together; nothing sleeps. */

#define CONC_TASKS 20000
#define CONC_THREADS 8
#define CONC_PROCS 4
#define CONC_PROC_THREADS 2
/* Small batches mean many claim rounds (about 2,500), so claimers collide
 * often; the whole test still takes a few seconds under the sanitizers. */
#define CONC_BATCH 8

typedef struct tally {
  pthread_mutex_t lock;
  char (*ids)[OMNIQ_ID_SIZE]; /* sorted */
  unsigned char *seen;
  size_t twice, unknown, total;
} tally_t;

static int id_cmp(const void *a, const void *b) { return strcmp(a, b); }

static void tally_mark(tally_t *t, const char *id) {
  char(*hit)[OMNIQ_ID_SIZE] = bsearch(id, t->ids, CONC_TASKS, sizeof *t->ids, id_cmp);
  pthread_mutex_lock(&t->lock);
  t->total++;
  if (hit == NULL)
    t->unknown++;
  else if (t->seen[hit - t->ids]++ != 0)
    t->twice++;
  pthread_mutex_unlock(&t->lock);
}

/* What a child collects before writing it out. */
typedef struct sink {
  pthread_mutex_t lock;
  char (*ids)[OMNIQ_ID_SIZE];
  size_t n;
} sink_t;

typedef struct claimer {
  void *be;                 /* own backend, or the child's shared one */
  pthread_barrier_t *start; /* NULL: already started */
  tally_t *tally;           /* parent threads mark here... */
  sink_t *sink;             /* ...children collect here */
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
  if (cl->start != NULL) pthread_barrier_wait(cl->start);
  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    cl->rc = ops->claim(cl->be, &req, &got, &n, cl->err, ERRLEN);
    if (cl->rc != OMNIQ_OK || n == 0) break;
    for (size_t i = 0; i < n; i++) {
      if (cl->tally != NULL) {
        tally_mark(cl->tally, got[i]->id);
      } else {
        pthread_mutex_lock(&cl->sink->lock);
        memcpy(cl->sink->ids[cl->sink->n++], got[i]->id, OMNIQ_ID_SIZE);
        pthread_mutex_unlock(&cl->sink->lock);
      }
    }
    omniq__tasks_free(got, n);
  }
  return NULL;
}

/* A child: own backend shared by its threads; ids to path. Never returns. */
static void child_main(const omniq_settings_t *settings, int gate, const char *path) {
  sink_t sink = {.ids = malloc(CONC_TASKS * sizeof *sink.ids)};
  claimer_t cl[CONC_PROC_THREADS];
  pthread_t th[CONC_PROC_THREADS];
  void *be = NULL;
  char err[ERRLEN], c;
  int status = 0;
  if (sink.ids == NULL || pthread_mutex_init(&sink.lock, NULL) != 0) _exit(10);
  if (ops->open(settings, &be, err, ERRLEN) != OMNIQ_OK) {
    fprintf(stderr, "child open: %s\n", err);
    _exit(11);
  }
  while (read(gate, &c, 1) < 0 && errno == EINTR) {
  } /* EOF: go */
  for (int i = 0; i < CONC_PROC_THREADS; i++) {
    cl[i] = (claimer_t){.be = be, .sink = &sink};
    if (pthread_create(&th[i], NULL, claimer_main, &cl[i]) != 0) _exit(12);
  }
  for (int i = 0; i < CONC_PROC_THREADS; i++) {
    pthread_join(th[i], NULL);
    if (cl[i].rc != OMNIQ_OK) {
      fprintf(stderr, "child claim: %s: %s\n", omniq_err_name(cl[i].rc), cl[i].err);
      status = 13;
    }
  }
  ops->close(be);
  FILE *f = fopen(path, "w");
  if (f == NULL) _exit(14);
  for (size_t i = 0; i < sink.n; i++) fprintf(f, "%s\n", sink.ids[i]);
  if (fclose(f) != 0) _exit(15);
  free(sink.ids);
  _exit(status);
}

static void test_concurrent_claims_take_each_task_exactly_once(void **state) {
  fx_t *fx = *state;
  tally_t tally = {.ids = calloc(CONC_TASKS, sizeof *tally.ids), .seen = calloc(CONC_TASKS, 1)};
  assert_true(tally.ids && tally.seen);
  assert_int_equal(pthread_mutex_init(&tally.lock, NULL), 0);

  /* Enqueue in batches, then close: nothing open across fork. */
  for (size_t done = 0; done < CONC_TASKS;) {
    omniq_task_t *batch[1000];
    size_t n = CONC_TASKS - done < 1000 ? CONC_TASKS - done : 1000;
    for (size_t i = 0; i < n; i++) {
      batch[i] = mk_task("default", (int)((done + i) % 3), NOW - (int64_t)((done + i) % 7));
      memcpy(tally.ids[done + i], batch[i]->id, OMNIQ_ID_SIZE);
    }
    OK(fx, enqueue(fx, batch, n));
    for (size_t i = 0; i < n; i++) omniq_task_free(batch[i]);
    done += n;
  }
  qsort(tally.ids, CONC_TASKS, sizeof *tally.ids, id_cmp);
  ops->close(fx->be);
  fx->be = NULL;

  int gate[2];
  pid_t pids[CONC_PROCS];
  char paths[CONC_PROCS][OMNIQ_PATH_MAX + 32];
  assert_int_equal(pipe(gate), 0);
  for (int p = 0; p < CONC_PROCS; p++) {
    snprintf(paths[p], sizeof paths[p], "%s/claimed-%d.txt", fx->dir, p);
    pids[p] = fork();
    assert_true(pids[p] >= 0);
    if (pids[p] == 0) {
      close(gate[1]);
      child_main(&fx->settings, gate[0], paths[p]);
    }
  }
  close(gate[0]);

  pthread_barrier_t start;
  pthread_t th[CONC_THREADS];
  claimer_t *cl = calloc(CONC_THREADS, sizeof *cl);
  assert_non_null(cl);
  assert_int_equal(pthread_barrier_init(&start, NULL, CONC_THREADS + 1), 0);
  for (int i = 0; i < CONC_THREADS; i++) {
    cl[i] = (claimer_t){.start = &start, .tally = &tally};
    OK(fx, ops->open(&fx->settings, &cl[i].be, fx->err, ERRLEN));
  }
  for (int i = 0; i < CONC_THREADS; i++)
    assert_int_equal(pthread_create(&th[i], NULL, claimer_main, &cl[i]), 0);
  pthread_barrier_wait(&start);
  close(gate[1]); /* the children's read sees EOF: everyone goes */

  for (int i = 0; i < CONC_THREADS; i++) {
    pthread_join(th[i], NULL);
    if (cl[i].rc != OMNIQ_OK) fail_msg("thread %d: %s: %s", i, omniq_err_name(cl[i].rc), cl[i].err);
    ops->close(cl[i].be);
  }
  for (int p = 0; p < CONC_PROCS; p++) {
    int status = 0;
    assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      fail_msg("child %d ended with status %#x", p, status);
    FILE *f = fopen(paths[p], "r");
    char line[OMNIQ_ID_SIZE + 2];
    assert_non_null(f);
    while (fgets(line, sizeof line, f) != NULL) {
      line[strcspn(line, "\n")] = '\0';
      tally_mark(&tally, line);
    }
    fclose(f);
  }

  assert_int_equal(tally.unknown, 0);
  assert_int_equal(tally.twice, 0);
  assert_int_equal(tally.total, CONC_TASKS);
  for (size_t i = 0; i < CONC_TASKS; i++)
    if (!tally.seen[i]) fail_msg("task %s was never claimed", tally.ids[i]);

  OK(fx, ops->open(&fx->settings, &fx->be, fx->err, ERRLEN));
  int64_t c[OMNIQ_STATUS_COUNT];
  counts(fx, c);
  assert_int_equal(c[OMNIQ_RUNNING], CONC_TASKS);
  assert_int_equal(c[OMNIQ_PENDING], 0);
  pthread_barrier_destroy(&start);
  pthread_mutex_destroy(&tally.lock);
  free(cl);
  free(tally.ids);
  free(tally.seen);
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(int argc, char **argv) {
  const struct CMUnitTest tests[] = {
      T(test_enqueue_one_then_get_returns_same_fields),
      T(test_enqueue_many_then_get_returns_each),
      T(test_enqueue_batch_with_duplicate_id_stores_none),
      T(test_enqueue_batch_with_existing_id_stores_none),
      T(test_claim_counts_one_attempt_and_one_token),
      T(test_claim_respects_eta),
      T(test_claim_order_is_priority_then_eta_then_insertion),
      T(test_claim_returns_at_most_max),
      T(test_claim_takes_only_named_queues),
      T(test_complete_with_result_is_success_and_result_readable),
      T(test_complete_rearm_keeps_id_and_replaces_result),
      T(test_fail_with_retry_requeues_with_last_error_and_no_result),
      T(test_fail_final_is_failed_with_result),
      T(test_outcome_without_error_keeps_last_error),
      T(test_stale_token_changes_nothing),
      T(test_outcome_for_unclaimed_task_is_state_error),
      T(test_unknown_id_is_not_found),
      T(test_cancel_pending_and_running_stores_result),
      T(test_cancel_terminal_is_state_error),
      T(test_cancelled_task_is_never_claimed),
      T(test_extend_lease_checks_token),
      T(test_expired_leases_are_running_tasks_past_their_lease),
      T(test_purge_removes_exactly_results_older_than_cutoff),
      T(test_count_by_status_counts_each_status),
      T(test_reopen_keeps_everything),
      T(test_concurrent_claims_take_each_task_exactly_once),
  };
  if (argc != 2 || (ops = omniq_storage_find(argv[1])) == NULL) {
    fprintf(stderr, "usage: contract BACKEND (a registered storage backend, e.g. sqlite)\n");
    return 2;
  }
  char group[64];
  snprintf(group, sizeof group, "storage contract: %s", ops->name);
  return _cmocka_run_group_tests(group, tests, sizeof tests / sizeof tests[0], NULL, NULL);
}
