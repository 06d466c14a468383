/* SPDX-License-Identifier: MIT */
/* The file backend's listing index and what FORMAT 2 added, beyond the
 * shared contract: a FORMAT 1 store is upgraded with every task listed; a
 * marker a crash left in the wrong tree is repaired by the listing that
 * meets it; a retry by hand cut short leaves one copy of the task; a page
 * reads folders around its cursor, not the store. And the pending index:
 * a handle that learned every change as it happened and one built by a
 * fresh scan hand out the same tasks, each once, in claim order; and a
 * peek at the next due tasks (what a claim reads ahead) takes nothing. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/record.h"
#include "support/backend.h"

static int setup(void **state) {
  *state = th_be_new("file", 0);
  return 0;
}

static int teardown(void **state) {
  th_be_free(*state);
  return 0;
}

/* Claims id and ends its run as status, with a result. */
static void finish_as(th_be_t *f, const char *id, int status) {
  omniq_task_t **got = NULL;
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  assert_string_equal(got[0]->id, id);
  omniq_result_t *r = th_be_result(id, status, th_be_now(f));
  omniq_decision_t d = {.id = id, .token = got[0]->token, .next_status = status, .result = r};
  assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
  omniq_result_free(r);
  omniq__tasks_free(got, 1);
}

/* Lists every status; checks ids[i] is listed as sts[i], and nothing else. */
static void assert_listed(th_be_t *f, char (*ids)[OMNIQ_ID_SIZE], const int *sts, size_t n) {
  omniq_list_req_t req = {.statuses = OMNIQ_STATUS_ALL, .limit = 100};
  omniq_task_t **got = NULL;
  size_t k = 0;
  assert_int_equal(f->ops->list(f->b, &req, &got, &k, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(k, n);
  for (size_t i = 0; i < k; i++) {
    size_t j = 0;
    while (j < n && strcmp(ids[j], got[i]->id) != 0) j++;
    assert_true(j < n);
    assert_int_equal(got[i]->status, sts[j]);
  }
  omniq__tasks_free(got, k);
}

static void path_of(const th_be_t *f, const char *rel, char out[2048]) {
  snprintf(out, 2048, "%s/%s", f->dir, rel);
}

/* A store written by an older OmniQ (FORMAT 1: no index/, keys/, queues/,
 * stats/, chores/) opens, gets its index built from its folders, and says
 * FORMAT 2 from then on, so the older library refuses it. */
static void test_a_format_1_store_is_upgraded_and_every_task_listed(void **state) {
  th_be_t *f = *state;
  char ids[3][OMNIQ_ID_SIZE], path[2048];
  const int sts[3] = {OMNIQ_SUCCESS, OMNIQ_RUNNING, OMNIQ_PENDING};
  omniq_task_t **got = NULL;
  for (int i = 0; i < 3; i++) th_be_add(f, NULL, 0, th_be_now(f), ids[i]);
  finish_as(f, ids[0], OMNIQ_SUCCESS);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq__tasks_free(got, 1);
  th_be_close(f);
  const char *added[] = {"index", "keys", "queues", "stats", "chores", "meta.lock"};
  for (size_t i = 0; i < sizeof added / sizeof added[0]; i++) {
    path_of(f, added[i], path);
    th_rmtree(strdup(path));
  }
  th_be_plant(f, "FORMAT", "omniq-file-store 1\n", 19);
  th_be_reopen(f);
  path_of(f, "FORMAT", path);
  FILE *fp = fopen(path, "r");
  char line[64] = "";
  assert_non_null(fgets(line, sizeof line, fp));
  fclose(fp);
  assert_string_equal(line, "omniq-file-store 2\n");
  assert_listed(f, ids, sts, 3);
  int64_t n = 0;
  assert_int_equal(f->ops->purge_tasks(f->b, th_be_now(f) + 1, 10, &n, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 1); /* the finish-time index was built too */
}

/* A marker left in the wrong tree (a crash between a commit and the
 * marker's move) is repaired by the listing that meets it. */
static void test_a_listing_repairs_a_marker_a_crash_left_behind(void **state) {
  th_be_t *f = *state;
  char ids[1][OMNIQ_ID_SIZE], rel[256], from[2048], to[2048], dir[2048];
  const int done[1] = {OMNIQ_SUCCESS};
  th_be_add(f, NULL, 0, th_be_now(f), ids[0]);
  finish_as(f, ids[0], OMNIQ_SUCCESS);
  /* Put the marker back in the active tree, as if its move never ran. */
  const char *id = ids[0];
  snprintf(rel, sizeof rel, "%.6s/%.2s/%.2s/%.2s/%s.default", id, id + 6, id + 9, id + 11, id);
  snprintf(from, sizeof from, "%s/index/2/%s", f->dir, rel);
  snprintf(to, sizeof to, "%s/index/0/%s", f->dir, rel);
  snprintf(dir, sizeof dir, "%s/index/0/%.6s", f->dir, id);
  mkdir(dir, 0777);
  snprintf(dir, sizeof dir, "%s/index/0/%.6s/%.2s", f->dir, id, id + 6);
  mkdir(dir, 0777);
  snprintf(dir, sizeof dir, "%s/index/0/%.6s/%.2s/%.2s", f->dir, id, id + 6, id + 9);
  mkdir(dir, 0777);
  snprintf(dir, sizeof dir, "%s/index/0/%.6s/%.2s/%.2s/%.2s", f->dir, id, id + 6, id + 9, id + 11);
  mkdir(dir, 0777);
  assert_int_equal(rename(from, to), 0);
  omniq_list_req_t pending = {.statuses = OMNIQ_STATUS_BIT(OMNIQ_PENDING), .limit = 10};
  omniq_task_t **none = NULL;
  size_t k = 9;
  assert_int_equal(f->ops->list(f->b, &pending, &none, &k, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(k, 0); /* not pending: skipped, and its marker put right */
  assert_int_equal(access(to, F_OK), -1);
  assert_int_equal(access(from, F_OK), 0);
  assert_listed(f, ids, done, 1);
}

/* A retry by hand writes the PENDING slot before the terminal file goes; a
 * crash between leaves both, and the roll-forward keeps the new state
 * only. */
static void test_a_retry_cut_short_is_finished_with_one_copy(void **state) {
  th_be_t *f = *state;
  omniq__fs_t *fs;
  omniq__frec_t rec;
  omniq_task_t *t = NULL;
  char id[OMNIQ_ID_SIZE], idname[64];
  th_be_add(f, NULL, 0, th_be_now(f), id);
  finish_as(f, id, OMNIQ_FAILED);
  assert_true(th_be_has(f, "queue/failed", id));
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  t->status = OMNIQ_PENDING; /* what the retry's commit writes */
  t->attempts = 0;
  t->finished_at_ms = 0;
  fs = f->b;
  snprintf(idname, sizeof idname, "%s.json", id);
  assert_int_equal(omniq__frec_encode(&rec, t, NULL, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(omniq__frec_write(&fs->io, fs->running_fd, idname, &rec, OMNIQ__FREC_SLOT,
                                     f->err, sizeof f->err),
                   OMNIQ_OK);
  omniq__frec_free(&rec);
  omniq_task_free(t);
  th_be_reopen(f); /* recovery at open rolls it forward */
  assert_false(th_be_has(f, "queue/failed", id));
  assert_false(th_be_has(f, "queue/running", id));
  assert_int_equal(th_be_count(f, "queue/pending/default"), 1);
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  omniq_task_free(t);
}

/* With the store's five tasks finished: tree 0 holds no folder, and once
 * they are purged neither do the others. */
static void assert_five_finished_leave_no_folder(th_be_t *f) {
  assert_int_equal(th_be_count(f, "index/0"), 0); /* the active tree emptied */
  int64_t n = 0;
  assert_int_equal(f->ops->purge_tasks(f->b, th_be_now(f) + 1, 10, &n, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 5);
  assert_int_equal(th_be_count(f, "index/2"), 0);
  assert_int_equal(th_be_count(f, "index/done"), 0);
}

/* A batch of outcomes prunes the folders its markers leave once, after
 * its moves (marks.c): every folder emptied is gone all the same. */
static void test_a_batch_of_outcomes_leaves_no_emptied_folder(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got = NULL, **none = NULL;
  omniq_decision_t ds[5];
  omniq_result_t *rs[5];
  int rcs[5], claimed = 0;
  size_t nnone = 0;
  for (int i = 0; i < 5; i++) {
    th_be_add(f, NULL, 0, th_be_now(f), NULL);
    th_clock_advance(&f->clock, 300000); /* five minutes: another folder */
  }
  assert_int_equal(th_be_claim(f, 5, &got), 5);
  for (int i = 0; i < 5; i++) {
    rs[i] = th_be_result(got[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    ds[i] = (omniq_decision_t){.id = got[i]->id, .token = got[i]->token,
                               .next_status = OMNIQ_SUCCESS, .result = rs[i]};
  }
  assert_int_equal(f->ops->finish_many(f->b, ds, 5, rcs, NULL, &none, &nnone, &claimed, f->err,
                                       sizeof f->err),
                   OMNIQ_OK);
  for (int i = 0; i < 5; i++) {
    assert_int_equal(rcs[i], OMNIQ_OK);
    omniq_result_free(rs[i]);
  }
  omniq__tasks_free(got, 5);
  assert_five_finished_leave_no_folder(f);
}

/* Folders come and go with the tasks in them: once every task of a time
 * span is gone, so are its folders. */
static void test_the_index_keeps_no_folder_for_tasks_that_are_gone(void **state) {
  th_be_t *f = *state;
  char ids[5][OMNIQ_ID_SIZE];
  for (int i = 0; i < 5; i++) {
    th_be_add(f, NULL, 0, th_be_now(f), ids[i]);
    th_clock_advance(&f->clock, 300000); /* five minutes: another folder */
  }
  for (int i = 0; i < 5; i++) finish_as(f, ids[i], OMNIQ_SUCCESS);
  assert_five_finished_leave_no_folder(f);
}

typedef struct {
  char id[OMNIQ_ID_SIZE];
  int priority;
  int64_t eta;
  int gone; /* cancelled */
} want_t;

static int want_cmp(const void *x, const void *y) {
  const want_t *a = x, *b = y;
  if (a->priority != b->priority) return a->priority > b->priority ? -1 : 1;
  if (a->eta != b->eta) return a->eta < b->eta ? -1 : 1;
  return strcmp(a->id, b->id);
}

/* Claims one task of queue a or b with f; 0 when nothing is due. */
static int claim_one(th_be_t *f, char id[OMNIQ_ID_SIZE]) {
  static const char *const qs[] = {"a", "b"};
  omniq_claim_req_t req = {th_be_now(f), th_be_now(f) + 60000, qs, 2, 1};
  omniq_task_t **got = NULL;
  size_t n = 0;
  assert_int_equal(f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err), OMNIQ_OK);
  if (n == 1) memcpy(id, got[0]->id, OMNIQ_ID_SIZE);
  omniq__tasks_free(got, n);
  return (int)n;
}

static void test_a_live_index_and_a_fresh_scan_claim_every_task_once_in_order(void **state) {
  enum { N = 600, RETRIED = 20 };
  static const int prios[] = {-5, 0, 3, 9};
  th_be_t *f = *state;
  want_t *w = calloc(N, sizeof *w);
  int64_t now = th_be_now(f);
  unsigned seed = 7;
  assert_non_null(w);
  for (int i = 0; i < N; i++) {
    seed = seed * 1103515245u + 12345u;
    w[i].priority = prios[(seed >> 16) % 4];
    w[i].eta = now - 1 - (int64_t)((seed >> 8) % 50); /* due, with many equal etas */
    th_be_add(f, i % 3 ? "a" : "b", w[i].priority, w[i].eta, w[i].id);
  }
  /* f's index forgets the cancelled tasks... */
  for (int i = 0; i < N; i += 7) {
    int prev = 0;
    assert_int_equal(f->ops->cancel(f->b, w[i].id, now, &prev, f->err, sizeof f->err), OMNIQ_OK);
    w[i].gone = 1;
  }
  /* ...and replaces the entries of tasks that come back with a new eta. */
  for (int i = 0; i < RETRIED; i++) {
    omniq_task_t **got = NULL;
    static const char *const qs[] = {"a", "b"};
    omniq_claim_req_t req = {now, now + 60000, qs, 2, 1};
    size_t n = 0;
    assert_int_equal(f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err), OMNIQ_OK);
    assert_int_equal(n, 1);
    int j = 0;
    while (strcmp(w[j].id, got[0]->id) != 0) j++;
    w[j].eta = now - 1000 + i;
    omniq_decision_t d = {.id = w[j].id, .token = got[0]->token, .next_status = OMNIQ_PENDING,
                          .eta_ms = w[j].eta};
    assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
    omniq__tasks_free(got, n);
  }
  /* g builds its index from one scan of the folders. */
  th_be_t *g = th_be_beside(f);
  qsort(w, N, sizeof *w, want_cmp);
  char id[OMNIQ_ID_SIZE];
  int k = 0;
  for (int turn = 0;; turn++) {
    if (!claim_one(turn % 2 ? g : f, id) && !claim_one(turn % 2 ? f : g, id)) break;
    while (k < N && w[k].gone) k++;
    assert_true(k < N);
    assert_string_equal(id, w[k].id);
    k++;
  }
  while (k < N && w[k].gone) k++;
  assert_int_equal(k, N);
  th_be_free(g);
  free(w);
}

/* What a claim reads ahead is what the next claims take: a peek hands out
 * the best due tasks in claim order, leaves them in the index (a second
 * peek sees the same), and skips tasks not yet due. */
static void test_a_peek_shows_the_next_claims_and_leaves_them_in_place(void **state) {
  enum { DUE = 12, LATER = 3, PEEK = 8 };
  static const char *const qs[] = {"a", "b"};
  th_be_t *f = *state;
  omniq__fs_t *fs = f->b;
  int64_t now = th_be_now(f);
  char id[OMNIQ_ID_SIZE], later[LATER][OMNIQ_ID_SIZE];
  omniq__pending_t first[PEEK], again[PEEK];
  for (int i = 0; i < DUE; i++)
    th_be_add(f, i % 2 ? "a" : "b", i % 3, now - 1 - i, NULL);
  for (int i = 0; i < LATER; i++) th_be_add(f, "a", 9, now + 60000, later[i]);
  assert_int_equal(omniq__fidx_peek_due(fs->idx, qs, 2, now, first, PEEK), PEEK);
  assert_int_equal(omniq__fidx_peek_due(fs->idx, qs, 2, now, again, PEEK), PEEK);
  for (int i = 0; i < PEEK; i++) assert_string_equal(again[i].id, first[i].id);
  for (int i = 0; i < PEEK; i++) {
    assert_int_equal(claim_one(f, id), 1);
    assert_string_equal(id, first[i].id);
  }
  /* The rest of the due ones, and none of the later ones. */
  assert_int_equal(omniq__fidx_peek_due(fs->idx, qs, 2, now, first, PEEK), DUE - PEEK);
  for (int i = 0; i < DUE - PEEK; i++)
    for (int j = 0; j < LATER; j++) assert_string_not_equal(first[i].id, later[j]);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_a_format_1_store_is_upgraded_and_every_task_listed),
      T(test_a_listing_repairs_a_marker_a_crash_left_behind),
      T(test_a_retry_cut_short_is_finished_with_one_copy),
      T(test_the_index_keeps_no_folder_for_tasks_that_are_gone),
      T(test_a_batch_of_outcomes_leaves_no_emptied_folder),
      T(test_a_live_index_and_a_fresh_scan_claim_every_task_once_in_order),
      T(test_a_peek_shows_the_next_claims_and_leaves_them_in_place),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
