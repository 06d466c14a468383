/* SPDX-License-Identifier: MIT */
/* Finishes committed together (storage/sqlite/group.c), and what a commit
 * promises across a crash.
 *
 * Batching is made certain, not hoped for: the test holds the connection,
 * so the first finisher blocks inside its commit while the others queue up
 * behind it, and lets go only once every one of them is on the list; they
 * then form one batch. Durability: a worker process reports each finished
 * run through its log (the line comes after the finish returned) and each
 * enqueue after omniq_enqueue returned; the test SIGKILLs it at once and
 * finds every reported task and result in the store.
 *
 * A finish may carry the runner's next claim (finish_claim): the tests
 * count the connection's commits with a commit hook, so "one transaction"
 * is checked, not inferred from speed. So is a batch of finishes handed
 * over at once (finish_many), and release, which gives a claimed task
 * back. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/records.h"
#include "core/handle.h"
#include "storage/sqlite/backend.h"
#include "support/backend.h"
#include "support/gate.h"
#include "support/crash.h"
#include "support/helpers.h"
#include "support/runs.h"

#define N 8

typedef struct {
  th_be_t *f;
  omniq_decision_t d;
  omniq_result_t *r;
  int rc;
  pthread_t tid;
} finisher_t;

static void *finish_main(void *arg) {
  finisher_t *x = arg;
  x->rc = th_be_finish(x->f, &x->d);
  return NULL;
}

static int committing(omniq__sqlite_t *sq) {
  pthread_mutex_lock(&sq->group.lock);
  int c = sq->group.committing;
  pthread_mutex_unlock(&sq->group.lock);
  return c;
}

/* What the group did, told by its test hook: finishes joined the list,
 * or a thread started committing. */
static th_gate_t joined, started_committing;

static void group_noted(int is_committing) {
  th_gate_add(is_committing ? &started_committing : &joined, 1);
}

static int queued(omniq__sqlite_t *sq) {
  int n = 0;
  pthread_mutex_lock(&sq->group.lock);
  for (omniq__sqlite_fin_t *f = sq->group.head; f != NULL; f = f->next) n++;
  pthread_mutex_unlock(&sq->group.lock);
  return n;
}

/* N runs end at once, one of them under a stale token: the N-1 that queue
 * behind the first commit as one batch; the stale one alone is refused
 * and changes nothing, every other one is stored. */
static void test_finishes_queued_together_commit_each_with_its_own_outcome(void **state) {
  (void)state;
  th_be_t *f = th_be_new("sqlite", 1);
  omniq__sqlite_t *sq = f->b;
  omniq_task_t **t = NULL;
  finisher_t x[N];
  for (int i = 0; i < N; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, N, &t), N);
  for (int i = 0; i < N; i++) {
    x[i] = (finisher_t){.f = f};
    x[i].r = th_be_result(t[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    x[i].d = (omniq_decision_t){.id = t[i]->id,
                                .token = t[i]->token + (i == N / 2), /* a stale claim */
                                .next_status = OMNIQ_SUCCESS,
                                .result = x[i].r,
                                .runs = OMNIQ_RUNS_SUCCEEDED};
  }
  th_gate_init(&joined);
  th_gate_init(&started_committing);
  omniq__sqlite_set_group_hook(group_noted);
  pthread_mutex_lock(&sq->lock); /* the first committer will wait here */
  assert_int_equal(pthread_create(&x[0].tid, NULL, finish_main, &x[0]), 0);
  if (!th_gate_wait(&started_committing, 1, TH_WAIT_MS))
    fail_msg("the first finish never started committing");
  assert_true(committing(sq));
  for (int i = 1; i < N; i++)
    assert_int_equal(pthread_create(&x[i].tid, NULL, finish_main, &x[i]), 0);
  if (!th_gate_wait(&joined, N, TH_WAIT_MS)) fail_msg("only %d finishes queued", queued(sq));
  assert_int_equal(queued(sq), N - 1); /* the first is committing, alone */
  assert_int_equal(th_gate_get(&started_committing), 1);
  pthread_mutex_unlock(&sq->lock);
  for (int i = 0; i < N; i++) pthread_join(x[i].tid, NULL);
  omniq__sqlite_set_group_hook(NULL);
  th_gate_destroy(&joined);
  th_gate_destroy(&started_committing);

  int64_t counts[OMNIQ_STATUS_COUNT];
  char err[256];
  assert_int_equal(f->ops->count_by_status(f->b, counts, err, sizeof err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], N - 1);
  assert_int_equal(counts[OMNIQ_RUNNING], 1);
  for (int i = 0; i < N; i++) {
    omniq_result_t *r = NULL;
    int rc = f->ops->get_result(f->b, t[i]->id, &r, err, sizeof err);
    if (i == N / 2) {
      assert_int_equal(x[i].rc, OMNIQ_ESTATE);
      assert_int_equal(rc, OMNIQ_ENOTFOUND);
    } else {
      assert_int_equal(x[i].rc, OMNIQ_OK);
      assert_int_equal(rc, OMNIQ_OK);
      assert_int_equal(r->status, OMNIQ_SUCCESS);
    }
    omniq_result_free(r);
    omniq_result_free(x[i].r);
  }
  for (int i = 0; i < N; i++) omniq_task_free(t[i]);
  free(t);
  th_be_free(f);
}

/* ---- a crash right after the report ------------------------------------------ */

static void test_what_was_reported_survives_a_sigkill_right_after(void **state) {
  th_assert_reports_survive_sigkill(*state, 200);
}

/* ---- a finish that carries the next claim ------------------------------------ */

static int count_commit(void *ud) {
  (*(int *)ud)++;
  return 0; /* let the commit go ahead */
}

/* A decision that the run of t succeeded; r is the result it points to. */
static omniq_decision_t succeeded(th_be_t *f, const omniq_task_t *t, omniq_result_t **r) {
  *r = th_be_result(t->id, OMNIQ_SUCCESS, th_be_now(f));
  return (omniq_decision_t){.id = t->id,
                            .token = t->token,
                            .next_status = OMNIQ_SUCCESS,
                            .result = *r,
                            .runs = OMNIQ_RUNS_SUCCEEDED};
}

static omniq_claim_req_t claim_of(th_be_t *f, size_t max) {
  static const char *const queues[] = {"default"};
  return (omniq_claim_req_t){.now_ms = th_be_now(f),
                             .lease_until_ms = th_be_now(f) + 30000,
                             .queues = queues,
                             .nqueues = 1,
                             .max = max};
}

static void test_finish_claim_stores_the_outcome_and_claims_the_next_in_one_commit(void **state) {
  (void)state;
  th_be_t *f = th_be_new("sqlite", 1);
  omniq__sqlite_t *sq = f->b;
  omniq_task_t **t = NULL, **next = NULL;
  omniq_result_t *r, *stored = NULL;
  size_t n = 0;
  int claimed = 0, commits = 0;
  char err[256];
  for (int i = 0; i < 3; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 1, &t), 1);
  omniq_decision_t d = succeeded(f, t[0], &r);
  omniq_claim_req_t req = claim_of(f, 2);
  sqlite3_commit_hook(sq->db, count_commit, &commits);
  assert_int_equal(f->ops->finish_claim(f->b, &d, &req, &next, &n, &claimed, err, sizeof err),
                   OMNIQ_OK);
  sqlite3_commit_hook(sq->db, NULL, NULL);
  assert_int_equal(commits, 1);
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 2);
  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, err, sizeof err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], 1);
  assert_int_equal(counts[OMNIQ_RUNNING], 2);
  assert_int_equal(counts[OMNIQ_PENDING], 0);
  assert_int_equal(f->ops->get_result(f->b, t[0]->id, &stored, err, sizeof err), OMNIQ_OK);
  assert_int_equal(stored->status, OMNIQ_SUCCESS);
  for (size_t i = 0; i < n; i++) {
    assert_string_not_equal(next[i]->id, t[0]->id);
    assert_int_equal(next[i]->status, OMNIQ_RUNNING);
  }
  omniq__tasks_free(next, n);
  omniq_result_free(stored);
  omniq_result_free(r);
  omniq__tasks_free(t, 1);
  th_be_free(f);
}

/* The claim rides only on a finish that applies: under a stale token the
 * finish is refused and nothing is claimed, so no task is left RUNNING
 * that the caller does not know of. */
static void test_finish_claim_under_a_stale_token_claims_nothing(void **state) {
  (void)state;
  th_be_t *f = th_be_new("sqlite", 1);
  omniq_task_t **t = NULL, **next = NULL;
  omniq_result_t *r;
  size_t n = 5;
  int claimed = 1;
  char err[256];
  for (int i = 0; i < 2; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 1, &t), 1);
  omniq_decision_t d = succeeded(f, t[0], &r);
  d.token++;
  omniq_claim_req_t req = claim_of(f, 1);
  assert_int_equal(f->ops->finish_claim(f->b, &d, &req, &next, &n, &claimed, err, sizeof err),
                   OMNIQ_ESTATE);
  assert_int_equal(claimed, 0);
  assert_int_equal(n, 0);
  assert_null(next);
  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, err, sizeof err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_RUNNING], 1);
  assert_int_equal(counts[OMNIQ_PENDING], 1);
  omniq_result_free(r);
  omniq__tasks_free(t, 1);
  th_be_free(f);
}

/* Many outcomes handed over at once (finish_many) and the next claim go
 * into one commit; a decision under a stale token is refused alone and
 * the others, and the claim, commit. */
static void test_finish_many_with_a_stale_decision_commits_the_others_and_the_claim(void **state) {
  (void)state;
  th_be_t *f = th_be_new("sqlite", 1);
  omniq__sqlite_t *sq = f->b;
  omniq_task_t **t = NULL, **next = NULL;
  omniq_result_t *r[3], *stored = NULL;
  omniq_decision_t d[3];
  int rcs[3], claimed = 0, commits = 0;
  size_t n = 0;
  char err[256];
  for (int i = 0; i < 5; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 3, &t), 3);
  for (int i = 0; i < 3; i++) d[i] = succeeded(f, t[i], &r[i]);
  d[1].token++; /* its claim was lost */
  omniq_claim_req_t req = claim_of(f, 2);
  sqlite3_commit_hook(sq->db, count_commit, &commits);
  assert_int_equal(
      f->ops->finish_many(f->b, d, 3, rcs, &req, &next, &n, &claimed, err, sizeof err), OMNIQ_OK);
  sqlite3_commit_hook(sq->db, NULL, NULL);
  assert_int_equal(commits, 1);
  assert_int_equal(rcs[0], OMNIQ_OK);
  assert_int_equal(rcs[1], OMNIQ_ESTATE);
  assert_int_equal(rcs[2], OMNIQ_OK);
  assert_non_null(strstr(err, t[1]->id)); /* the refusal's message */
  assert_int_equal(claimed, 1);
  assert_int_equal(n, 2);
  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, err, sizeof err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], 2);
  assert_int_equal(counts[OMNIQ_RUNNING], 3); /* the stale one's, and the two claimed */
  assert_int_equal(counts[OMNIQ_PENDING], 0);
  assert_int_equal(f->ops->get_result(f->b, t[1]->id, &stored, err, sizeof err), OMNIQ_ENOTFOUND);
  omniq__tasks_free(next, n);
  for (int i = 0; i < 3; i++) omniq_result_free(r[i]);
  omniq__tasks_free(t, 3);
  th_be_free(f);
}

/* A fresh store with `pending` due tasks, `claimed` of them claimed into
 * *t. */
static th_be_t *with_claimed(int pending, int claimed, omniq_task_t ***t) {
  th_be_t *f = th_be_new("sqlite", 1);
  for (int i = 0; i < pending; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, (size_t)claimed, t), claimed);
  return f;
}

/* The store holds `success` SUCCESS and `running` RUNNING tasks. */
static void assert_done_and_running(th_be_t *f, int64_t success, int64_t running) {
  int64_t counts[OMNIQ_STATUS_COUNT];
  char err[256];
  assert_int_equal(f->ops->count_by_status(f->b, counts, err, sizeof err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], success);
  assert_int_equal(counts[OMNIQ_RUNNING], running);
}

/* Counts the statements that update task rows (the finish's). */
static int count_updates(unsigned type, void *ud, void *stmt, void *sql) {
  (void)type, (void)stmt;
  const char *text = sql;
  if (strncmp(text, "UPDATE tasks", 12) == 0 || strncmp(text, "WITH v ", 7) == 0) (*(int *)ud)++;
  return 0;
}

/* n decisions that the runs of t[0..n) succeeded, naming their queue. */
static void succeeded_in_queue(th_be_t *f, omniq_task_t **t, size_t n, omniq_decision_t *d,
                               omniq_result_t **r) {
  for (size_t i = 0; i < n; i++) {
    d[i] = succeeded(f, t[i], &r[i]);
    d[i].queue = t[i]->queue;
  }
}

static void test_finishes_naming_their_queue_update_their_rows_in_one_statement(void **state) {
  (void)state;
  omniq_task_t **t = NULL, **next = NULL;
  th_be_t *f = with_claimed(4, 4, &t);
  omniq__sqlite_t *sq = f->b;
  omniq_result_t *r[4], *stored = NULL;
  omniq_decision_t d[4];
  int rcs[4], claimed = 0, updates = 0;
  size_t n = 0;
  char err[256];
  succeeded_in_queue(f, t, 4, d, r);
  sqlite3_trace_v2(sq->db, SQLITE_TRACE_STMT, count_updates, &updates);
  assert_int_equal(
      f->ops->finish_many(f->b, d, 4, rcs, NULL, &next, &n, &claimed, err, sizeof err), OMNIQ_OK);
  sqlite3_trace_v2(sq->db, 0, NULL, NULL);
  assert_int_equal(updates, 1);
  /* Each row is found by its id (with its queue or alone), never by a
   * walk of the table. */
  assert_non_null(sq->finish_rows[2]);
  char *q = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sqlite3_sql(sq->finish_rows[2]));
  sqlite3_stmt *plan = NULL;
  int by_id = 0, scans = 0;
  assert_int_equal(sqlite3_prepare_v2(sq->db, q, -1, &plan, NULL), SQLITE_OK);
  while (sqlite3_step(plan) == SQLITE_ROW) {
    const char *detail = (const char *)sqlite3_column_text(plan, 3);
    by_id += strncmp(detail, "SEARCH tasks USING INDEX ", 25) == 0 && strstr(detail, "id=?") != NULL;
    scans += strstr(detail, "SCAN tasks") != NULL;
  }
  sqlite3_finalize(plan);
  sqlite3_free(q);
  assert_int_equal(by_id, 1);
  assert_int_equal(scans, 0);
  for (int i = 0; i < 4; i++) {
    assert_int_equal(rcs[i], OMNIQ_OK);
    assert_int_equal(f->ops->get_result(f->b, t[i]->id, &stored, err, sizeof err), OMNIQ_OK);
    th_assert_result_equal(stored, r[i]);
    omniq_result_free(stored);
  }
  assert_done_and_running(f, 4, 0);
  for (int i = 0; i < 4; i++) omniq_result_free(r[i]);
  omniq__tasks_free(t, 4);
  th_be_free(f);
}

/* Counts the statements with a RETURNING clause. */
static int count_returning(unsigned type, void *ud, void *stmt, void *sql) {
  (void)type, (void)stmt;
  if (strstr((const char *)sql, "RETURNING") != NULL) (*(int *)ud)++;
  return 0;
}

/* A claim reads its rows and takes them with a plain UPDATE (a RETURNING
 * clause runs a trigger program per row); the records it hands out are
 * what it stored. */
static void test_a_claim_takes_its_rows_without_returning_and_hands_out_what_it_stored(
    void **state) {
  (void)state;
  th_be_t *f = th_be_new("sqlite", 1);
  omniq__sqlite_t *sq = f->b;
  omniq_task_t **t = NULL;
  int returning = 0;
  char err[256];
  for (int i = 0; i < 3; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  sqlite3_trace_v2(sq->db, SQLITE_TRACE_STMT, count_returning, &returning);
  assert_int_equal(th_be_claim(f, 3, &t), 3);
  sqlite3_trace_v2(sq->db, 0, NULL, NULL);
  assert_int_equal(returning, 0);
  for (int i = 0; i < 3; i++) {
    omniq_task_t *stored = NULL;
    assert_int_equal(f->ops->get_task(f->b, t[i]->id, &stored, err, sizeof err), OMNIQ_OK);
    assert_int_equal(t[i]->status, OMNIQ_RUNNING);
    assert_int_equal(stored->status, OMNIQ_RUNNING);
    assert_int_equal(t[i]->attempts, stored->attempts);
    assert_int_equal(t[i]->token, stored->token);
    assert_int_equal(t[i]->started_at_ms, stored->started_at_ms);
    assert_int_equal(t[i]->lease_until_ms, stored->lease_until_ms);
    omniq_task_free(stored);
  }
  assert_done_and_running(f, 0, 3);
  omniq__tasks_free(t, 3);
  th_be_free(f);
}

/* One statement for the batch must not blur the outcomes: a stale token
 * and the same task finished twice each get their own refusal, the rest
 * apply, in one commit. */
static void test_a_batch_statement_that_misses_leaves_each_finish_its_own_outcome(void **state) {
  (void)state;
  omniq_task_t **t = NULL, **next = NULL;
  th_be_t *f = with_claimed(3, 3, &t);
  omniq__sqlite_t *sq = f->b;
  omniq_result_t *r[4], *stored = NULL;
  omniq_decision_t d[4];
  int rcs[4], claimed = 0, commits = 0;
  size_t n = 0;
  char err[256];
  succeeded_in_queue(f, t, 3, d, r);
  d[3] = d[0]; /* the same run reported twice */
  r[3] = NULL;
  d[1].token++; /* its claim was lost */
  sqlite3_commit_hook(sq->db, count_commit, &commits);
  assert_int_equal(
      f->ops->finish_many(f->b, d, 4, rcs, NULL, &next, &n, &claimed, err, sizeof err), OMNIQ_OK);
  sqlite3_commit_hook(sq->db, NULL, NULL);
  assert_int_equal(commits, 1);
  assert_int_equal(rcs[0], OMNIQ_OK);
  assert_int_equal(rcs[1], OMNIQ_ESTATE);
  assert_int_equal(rcs[2], OMNIQ_OK);
  assert_int_equal(rcs[3], OMNIQ_ESTATE);
  assert_non_null(strstr(err, t[1]->id)); /* the first refusal's message */
  assert_done_and_running(f, 2, 1);
  assert_int_equal(f->ops->get_result(f->b, t[1]->id, &stored, err, sizeof err), OMNIQ_ENOTFOUND);
  omniq_task_t *kept = NULL;
  assert_int_equal(f->ops->get_task(f->b, t[1]->id, &kept, err, sizeof err), OMNIQ_OK);
  assert_int_equal(kept->status, OMNIQ_RUNNING);
  assert_int_equal(kept->token, t[1]->token);
  omniq_task_free(kept);
  for (int i = 0; i < 3; i++) omniq_result_free(r[i]);
  omniq__tasks_free(t, 3);
  th_be_free(f);
}

/* release gives a claimed task back as if never claimed (its attempt
 * undone), fenced by the claim's token; the old claim is void after. */
static void test_release_returns_a_claimed_task_to_pending_with_its_attempt_undone(void **state) {
  (void)state;
  th_be_t *f = th_be_new("sqlite", 1);
  omniq_task_t **t = NULL, *got = NULL;
  omniq_result_t *r;
  char err[256];
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 1, &t), 1);
  assert_int_equal(f->ops->release(f->b, t[0]->id, t[0]->token + 1, err, sizeof err),
                   OMNIQ_ESTATE);
  assert_int_equal(f->ops->release(f->b, t[0]->id, t[0]->token, err, sizeof err), OMNIQ_OK);
  assert_int_equal(f->ops->get_task(f->b, t[0]->id, &got, err, sizeof err), OMNIQ_OK);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->attempts, 0);
  omniq_task_free(got);
  omniq_decision_t d = succeeded(f, t[0], &r);
  assert_int_equal(th_be_finish(f, &d), OMNIQ_ESTATE); /* the claim is void */
  assert_int_equal(f->ops->release(f->b, t[0]->id, t[0]->token, err, sizeof err), OMNIQ_ESTATE);
  omniq_task_t **again = NULL;
  assert_int_equal(th_be_claim(f, 1, &again), 1);
  assert_int_equal(again[0]->attempts, 1);
  omniq__tasks_free(again, 1);
  omniq_result_free(r);
  omniq__tasks_free(t, 1);
  th_be_free(f);
}

static int noop(omniq_job_t *job, void *ud) {
  (void)job, (void)ud;
  return OMNIQ_OK;
}

/* A lone runner reports each run and claims its next task in one commit:
 * draining N tasks costs about N + 1 commits (each report with the next
 * claim, the first claim, the enqueue, a housekeeping chore), where a
 * claim and a report apart cost 2N + 2. */
static void test_a_lone_runner_drains_with_one_commit_per_task(void **state) {
  enum { TASKS = 20 };
  th_store_t *st = *state;
  omniq__sqlite_t *sq = st->oq->backend;
  omniq_enqueue_item_t items[TASKS];
  omniq_worker_opts_t wo;
  long done = 0;
  int commits = 0;
  th_ok(st->oq, omniq_register(st->oq, "noop", noop, NULL));
  for (int i = 0; i < TASKS; i++) items[i] = (omniq_enqueue_item_t){.func = "noop"};
  th_ok(st->oq, omniq_enqueue_many(st->oq, items, TASKS, NULL));
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  wo.isolation = OMNIQ_ISOLATION_THREAD;
  pthread_mutex_lock(&sq->lock);
  sqlite3_commit_hook(sq->db, count_commit, &commits);
  pthread_mutex_unlock(&sq->lock);
  th_ok(st->oq, omniq_worker_process(st->oq, &wo, 0, &done));
  pthread_mutex_lock(&sq->lock);
  sqlite3_commit_hook(sq->db, NULL, NULL);
  pthread_mutex_unlock(&sq->lock);
  assert_int_equal(done, TASKS);
  int64_t counts[OMNIQ_STATUS_COUNT];
  th_ok(st->oq, omniq_count_by_status(st->oq, counts));
  assert_int_equal(counts[OMNIQ_SUCCESS], TASKS);
  if (commits > TASKS + 4) fail_msg("%d commits to drain %d tasks", commits, TASKS);
}

static int setup(void **state) {
  *state = (void *)"sqlite";
  return th_store_setup(state);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_finishes_queued_together_commit_each_with_its_own_outcome),
      cmocka_unit_test(test_finish_claim_stores_the_outcome_and_claims_the_next_in_one_commit),
      cmocka_unit_test(test_finish_claim_under_a_stale_token_claims_nothing),
      cmocka_unit_test(test_finish_many_with_a_stale_decision_commits_the_others_and_the_claim),
      cmocka_unit_test(test_finishes_naming_their_queue_update_their_rows_in_one_statement),
      cmocka_unit_test(test_a_batch_statement_that_misses_leaves_each_finish_its_own_outcome),
      cmocka_unit_test(
          test_a_claim_takes_its_rows_without_returning_and_hands_out_what_it_stored),
      cmocka_unit_test(test_release_returns_a_claimed_task_to_pending_with_its_attempt_undone),
      cmocka_unit_test_setup_teardown(test_a_lone_runner_drains_with_one_commit_per_task, setup,
                                      th_store_teardown),
      cmocka_unit_test_setup_teardown(test_what_was_reported_survives_a_sigkill_right_after,
                                      setup, th_store_teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
