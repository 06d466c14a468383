/* SPDX-License-Identifier: MIT */
/* The file backend's pending snapshot (queue/snapshot): a store closed
 * whole opens from it without listing its folders and hands out the same
 * tasks in the same order; a snapshot made stale by a later change, by a
 * process killed after its change, or damaged (cut short, a flipped byte,
 * empty) is never used: the folders are listed and every task is there
 * once; a store holding one id under two pending names, or a stray file
 * beside its queue folders, saves none. Lookups,
 * cancel, statistics and listings on a store opened from it are exact. Every test saves a snapshot whatever the store's size
 * (omniq__fsnap_min_tasks = 0). */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/index.h"
#include "storage/file/snapshot.h"
#include "support/backend.h"

#define N 40

typedef struct {
  char id[OMNIQ_ID_SIZE];
  int priority;
  int64_t eta;
  int gone;
} want_t;

typedef struct {
  th_be_t *f;
  want_t w[N + 8];
  int n;
} fix_t;

static const char *const queues[] = {"a", "b"};

static int setup(void **state) {
  fix_t *x = calloc(1, sizeof *x);
  omniq__fsnap_min_tasks = 0;
  omniq__fsnap_use = 1;
  x->f = th_be_new("file", 1);
  *state = x;
  return 0;
}

static int teardown(void **state) {
  fix_t *x = *state;
  th_be_free(x->f);
  free(x);
  omniq__fsnap_min_tasks = 10000;
  return 0;
}

static unsigned long scans(th_be_t *f) { return omniq__fidx_scans(((omniq__fs_t *)f->b)->idx); }

static void add(fix_t *x, int priority, int64_t eta) {
  want_t *w = &x->w[x->n++];
  w->priority = priority;
  w->eta = eta;
  th_be_add(x->f, queues[x->n % 2], priority, eta, w->id);
}

/* N due tasks in two queues, four priorities, many equal etas. */
static void fill(fix_t *x) {
  static const int prios[] = {-5, 0, 3, 9};
  int64_t now = th_be_now(x->f);
  for (int i = 0; i < N; i++) add(x, prios[(i * 7) % 4], now - 1 - (i * 13) % 5);
}

static int want_cmp(const void *a, const void *b) {
  const want_t *x = a, *y = b;
  if (x->priority != y->priority) return x->priority > y->priority ? -1 : 1;
  if (x->eta != y->eta) return x->eta < y->eta ? -1 : 1;
  return strcmp(x->id, y->id);
}

/* Claims one task at a time from both queues and checks they come out as
 * the wanted ones not gone, in claim order, each once. */
static void assert_claims_in_order(fix_t *x) {
  th_be_t *f = x->f;
  int64_t now = th_be_now(f);
  qsort(x->w, (size_t)x->n, sizeof x->w[0], want_cmp);
  int k = 0;
  for (;;) {
    omniq_task_t **got = NULL;
    size_t n = 0;
    omniq_claim_req_t req = {now, now + 60000, queues, 2, 1};
    assert_int_equal(f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err), OMNIQ_OK);
    if (n == 0) break;
    while (k < x->n && x->w[k].gone) k++;
    assert_true(k < x->n);
    assert_string_equal(got[0]->id, x->w[k].id);
    k++;
    omniq__tasks_free(got, n);
  }
  while (k < x->n && x->w[k].gone) k++;
  assert_int_equal(k, x->n);
}

static void snapshot_path(const th_be_t *f, char out[2048]) {
  snprintf(out, 2048, "%s/queue/%s", f->dir, OMNIQ__SNAPSHOT_NAME);
}

static off_t snapshot_size(const th_be_t *f) {
  char path[2048];
  struct stat st;
  snapshot_path(f, path);
  return stat(path, &st) == 0 ? st.st_size : -1;
}

static void test_a_closed_store_opens_from_its_snapshot_with_the_same_claim_order(void **state) {
  fix_t *x = *state;
  fill(x);
  th_be_close(x->f);
  assert_true(snapshot_size(x->f) > 0);
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 0); /* not one folder listed */
  assert_claims_in_order(x);
}

/* Without the snapshot the same store is listed: the snapshot is what
 * spares it (the test above cannot pass by some other shortcut). */
static void test_an_open_that_ignores_the_snapshot_lists_the_folders(void **state) {
  fix_t *x = *state;
  fill(x);
  th_be_close(x->f);
  omniq__fsnap_use = 0;
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  omniq__fsnap_use = 1;
  assert_int_equal(scans(x->f), 1);
  assert_claims_in_order(x);
}

/* A handle that saves nothing at its close (a small store in real use)
 * changes the folders after the snapshot: one task enqueued, one claimed. */
static void test_a_snapshot_older_than_a_change_is_not_used(void **state) {
  fix_t *x = *state;
  omniq_task_t **got = NULL;
  fill(x);
  th_be_close(x->f);
  omniq__fsnap_min_tasks = (size_t)-1;
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 0);
  add(x, 20, th_be_now(x->f) - 1);
  omniq_claim_req_t req = {th_be_now(x->f), th_be_now(x->f) + 60000, queues, 2, 1};
  size_t n = 0;
  assert_int_equal(x->f->ops->claim(x->f->b, &req, &got, &n, x->f->err, sizeof x->f->err),
                   OMNIQ_OK);
  assert_int_equal(n, 1);
  for (int i = 0; i < x->n; i++)
    if (strcmp(x->w[i].id, got[0]->id) == 0) x->w[i].gone = 1;
  omniq__tasks_free(got, n);
  th_be_close(x->f);
  omniq__fsnap_min_tasks = 0;
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 1);
  assert_claims_in_order(x);
}

/* A process killed after its changes never closes: its snapshot-era
 * folders changed under it, so the next open lists them. */
static void test_a_process_killed_after_a_change_leaves_no_usable_snapshot(void **state) {
  fix_t *x = *state;
  fill(x);
  th_be_close(x->f);
  int p[2];
  assert_int_equal(pipe(p), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    close(p[0]);
    if (th_be_open(x->f) != OMNIQ_OK) _exit(1);
    add(x, 20, th_be_now(x->f) - 1);
    if (write(p[1], x->w[x->n - 1].id, OMNIQ_ID_SIZE) != OMNIQ_ID_SIZE) _exit(1);
    raise(SIGKILL);
    _exit(1);
  }
  close(p[1]);
  want_t *w = &x->w[x->n];
  assert_int_equal(read(p[0], w->id, OMNIQ_ID_SIZE), OMNIQ_ID_SIZE);
  close(p[0]);
  w->priority = 20;
  w->eta = th_be_now(x->f) - 1;
  x->n++;
  int status;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  assert_true(WIFSIGNALED(status));
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 1);
  assert_claims_in_order(x);
}

/* Rewrites the snapshot: cut to len bytes (len < 0: keep the size and
 * flip one byte of the last record). */
static void damage(const th_be_t *f, off_t len) {
  char path[2048];
  snapshot_path(f, path);
  int fd = open(path, O_RDWR);
  assert_true(fd >= 0);
  if (len >= 0) {
    assert_int_equal(ftruncate(fd, len), 0);
  } else {
    struct stat st;
    unsigned char b;
    assert_int_equal(fstat(fd, &st), 0);
    assert_int_equal(pread(fd, &b, 1, st.st_size - 20), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, st.st_size - 20), 1);
  }
  close(fd);
}

static void test_a_damaged_snapshot_is_ignored_and_the_folders_listed(void **state) {
  fix_t *x = *state;
  fill(x);
  th_be_close(x->f);
  off_t size = snapshot_size(x->f);
  const off_t cuts[] = {-1, size - 32, size - 1, 40, 0};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    damage(x->f, cuts[i]);
    int warned = atomic_load(&x->f->warnings);
    assert_int_equal(th_be_open(x->f), OMNIQ_OK);
    assert_int_equal(scans(x->f), 1);
    assert_true(atomic_load(&x->f->warnings) > warned); /* said why */
    th_be_close(x->f); /* saves a good one again */
    assert_int_equal(snapshot_size(x->f), size);
  }
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 0);
  assert_claims_in_order(x);
}

/* Lookups of pending tasks, cancel, counts and listings read the folders
 * or the index; opened from the snapshot, each is exact. */
static void test_lookups_cancel_counts_and_listing_are_exact_after_a_snapshot_open(void **state) {
  fix_t *x = *state;
  th_be_t *f = x->f;
  fill(x);
  th_be_close(f);
  assert_int_equal(th_be_open(f), OMNIQ_OK);
  assert_int_equal(scans(f), 0);
  omniq_task_t *t = NULL;
  assert_int_equal(f->ops->get_task(f->b, x->w[3].id, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->priority, x->w[3].priority);
  omniq_task_free(t);
  int prev = 0;
  assert_int_equal(f->ops->cancel(f->b, x->w[3].id, th_be_now(f), &prev, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(prev, OMNIQ_PENDING);
  x->w[3].gone = 1;
  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_PENDING], N - 1);
  assert_int_equal(counts[OMNIQ_CANCELLED], 1);
  omniq_list_req_t req = {.statuses = OMNIQ_STATUS_BIT(OMNIQ_PENDING), .limit = 100};
  omniq_task_t **got = NULL;
  size_t k = 0;
  assert_int_equal(f->ops->list(f->b, &req, &got, &k, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(k, N - 1);
  omniq__tasks_free(got, k);
  assert_claims_in_order(x);
}

/* A task file copied by hand under a second pending name: the listing
 * open decides which copy the index keeps, so no snapshot is saved. */
static void test_an_id_pending_twice_saves_no_snapshot(void **state) {
  fix_t *x = *state;
  char name[256], from[2048], to[2048];
  th_be_add(x->f, NULL, 0, th_be_now(x->f) - 5, NULL);
  th_be_only_name(x->f, "queue/pending/default", name);
  snprintf(from, sizeof from, "%s/queue/pending/default/%s", x->f->dir, name);
  snprintf(to, sizeof to, "%s/queue/pending/default/%s", x->f->dir, name);
  memcpy(strstr(to, "_00") + 1, "000000000000001", 15); /* another eta, same id */
  FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
  assert_non_null(in);
  assert_non_null(out);
  for (int c; (c = fgetc(in)) != EOF;) fputc(c, out);
  fclose(in);
  fclose(out);
  th_be_close(x->f);
  assert_int_equal(snapshot_size(x->f), -1);
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 1);
}

/* A stray file in queue/pending/ is quarantined by a listing open: a
 * store holding one saves no snapshot, so the next open lists and moves it. */
static void test_a_stray_file_beside_the_queue_folders_saves_no_snapshot(void **state) {
  fix_t *x = *state;
  fill(x);
  th_be_plant(x->f, "queue/pending/stray.txt", "x", 1);
  th_be_close(x->f);
  assert_int_equal(snapshot_size(x->f), -1);
  assert_int_equal(th_be_open(x->f), OMNIQ_OK);
  assert_int_equal(scans(x->f), 1);
  assert_int_equal(th_be_count(x->f, "queue/pending"), 2); /* a and b, the stray gone */
  assert_claims_in_order(x);
}

int main(void) {
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
      T(test_a_closed_store_opens_from_its_snapshot_with_the_same_claim_order),
      T(test_an_open_that_ignores_the_snapshot_lists_the_folders),
      T(test_a_snapshot_older_than_a_change_is_not_used),
      T(test_a_process_killed_after_a_change_leaves_no_usable_snapshot),
      T(test_a_damaged_snapshot_is_ignored_and_the_folders_listed),
      T(test_lookups_cancel_counts_and_listing_are_exact_after_a_snapshot_open),
      T(test_an_id_pending_twice_saves_no_snapshot),
      T(test_a_stray_file_beside_the_queue_folders_saves_no_snapshot),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
