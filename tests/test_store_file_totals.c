/* SPDX-License-Identifier: MIT */
/* The file backend's running totals (storage/file/totals.c): a file per
 * handle, written once per batch of finishes, summed when read, and folded
 * into a later handle's file once its writer is gone. (Exactly once across
 * a crash: test_store_file_batch counts the runs at every kill point.) */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/totals.h"
#include "support/backend.h"

static void add_succeeded(const char *qdir, const int64_t runs[OMNIQ_RUNS_KINDS], void *ud) {
  if (strcmp(qdir, "default") == 0) *(int64_t *)ud += runs[OMNIQ_RUNS_SUCCEEDED];
}

static int64_t succeeded(th_be_t *f) {
  int64_t n = 0;
  assert_int_equal(omniq__ftotals_each(f->b, add_succeeded, &n), OMNIQ_OK);
  return n;
}

/* Enqueues k tasks, claims them and finishes them SUCCESS in one batch. */
static void finish_batch(th_be_t *f, size_t k) {
  omniq_task_t **got, **next = NULL;
  omniq_decision_t ds[16];
  omniq_result_t *rs[16];
  int rcs[16], claimed = 0;
  size_t nnext = 0;
  assert_true(k <= 16);
  for (size_t i = 0; i < k; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, k, &got), k);
  for (size_t i = 0; i < k; i++) {
    rs[i] = th_be_result(got[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    ds[i] = (omniq_decision_t){.id = got[i]->id,
                               .token = got[i]->token,
                               .next_status = OMNIQ_SUCCESS,
                               .result = rs[i],
                               .runs = OMNIQ_RUNS_SUCCEEDED};
  }
  th_be_ok(f->err, f->ops->finish_many(f->b, ds, k, rcs, NULL, &next, &nnext, &claimed, f->err,
                                       sizeof f->err));
  for (size_t i = 0; i < k; i++) {
    assert_int_equal(rcs[i], OMNIQ_OK);
    omniq_result_free(rs[i]);
  }
  omniq__tasks_free(got, k);
}

/* How many handle files stats/ holds. */
static int handle_files(const th_be_t *f) {
  char path[2048];
  int n = 0;
  snprintf(path, sizeof path, "%s/stats", f->dir);
  DIR *d = opendir(path);
  struct dirent *de;
  assert_non_null(d);
  while ((de = readdir(d)) != NULL) n += strncmp(de->d_name, "h-", 2) == 0;
  closedir(d);
  return n;
}

static int has_own_file(const th_be_t *f) {
  char path[2048];
  snprintf(path, sizeof path, "%s/stats/h-%llu.json", f->dir,
           ((omniq__fs_t *)f->b)->io.owner);
  FILE *fp = fopen(path, "r");
  if (fp != NULL) fclose(fp);
  return fp != NULL;
}

/* Two live handles count in files of their own; each reads the sum. */
static void test_each_handle_counts_in_its_own_file_and_reads_the_sum(void **state) {
  (void)state;
  th_be_t *a = th_be_new("file", 0);
  th_be_t *b = th_be_beside(a);
  finish_batch(a, 5);
  finish_batch(b, 3);
  assert_true(has_own_file(a));
  assert_true(has_own_file(b));
  assert_int_equal(handle_files(a), 2);
  assert_int_equal(succeeded(a), 8);
  assert_int_equal(succeeded(b), 8);
  th_be_free(b);
  th_be_free(a);
}

/* A handle that closed is folded into the next one opened: its file goes,
 * the totals stay; a handle still open keeps its file. */
static void test_a_closed_handles_file_is_folded_into_the_next_open(void **state) {
  (void)state;
  th_be_t *a = th_be_new("file", 1);
  th_be_t *b = th_be_beside(a);
  finish_batch(a, 4);
  finish_batch(b, 2);
  th_be_free(b); /* gone: its owner byte is free */
  th_be_t *c = th_be_beside(a);
  assert_int_equal(succeeded(c), 6);
  assert_int_equal(handle_files(c), 2); /* a's, and c's holding b's counts */
  assert_true(has_own_file(c));
  finish_batch(c, 1);
  th_be_close(a);
  th_be_close(c);
  th_be_reopen(a); /* folds both */
  assert_int_equal(succeeded(a), 7);
  assert_int_equal(handle_files(a), 1);
  th_be_free(c);
  th_be_free(a);
}

/* How many owners the handle's own file names as absorbed. */
static size_t absorbed_named(const th_be_t *f) {
  char path[2048];
  snprintf(path, sizeof path, "%s/stats/h-%llu.json", f->dir,
           ((omniq__fs_t *)f->b)->io.owner);
  json_t *j = json_load_file(path, 0, NULL);
  assert_non_null(j);
  size_t n = json_array_size(json_object_get(j, "absorbed"));
  json_decref(j);
  return n;
}

/* Handles opened one after another (a command run again and again): each
 * folds the one before, and its file names only what it folded itself,
 * not every handle the store ever had. */
static void test_handles_one_after_another_keep_the_totals_file_small(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  for (int i = 1; i <= 40; i++) {
    finish_batch(f, 1);
    th_be_close(f);
    th_be_reopen(f); /* folds the file of the handle just closed */
  }
  finish_batch(f, 1);
  assert_int_equal(succeeded(f), 41);
  assert_int_equal(handle_files(f), 1);
  assert_true(absorbed_named(f) <= 1);
  th_be_free(f);
}

/* A batch of outcomes is one write of the handle's file, whatever its
 * size (one file per lock stripe made one write per finish). */
static void test_a_batch_of_finishes_writes_the_totals_once(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 1);
  finish_batch(f, 1);
  unsigned long writes = omniq__ftotals_writes(f->b);
  finish_batch(f, 16);
  assert_int_equal(omniq__ftotals_writes(f->b), writes + 1);
  assert_int_equal(succeeded(f), 17);
  th_be_free(f);
}

/* The succeeded count of queue "default" a totals file holds. */
static int64_t succeeded_in(int fd) {
  char buf[4096];
  ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  assert_true(n > 0);
  buf[n] = '\0';
  json_t *j = json_loads(buf, 0, NULL);
  assert_non_null(j);
  int64_t v = json_integer_value(json_array_get(json_object_get(json_object_get(j, "runs"),
                                                                "default"), OMNIQ_RUNS_SUCCEEDED));
  json_decref(j);
  return v;
}

/* The handle's two totals files take turns: each write rewrites the one
 * not at the name, then exchanges them, so a run of writes makes and frees
 * no file. A reader holding the file to be rewritten (an OFD read lock
 * taken while it was at the name, as omniq__fio_read_shared takes it)
 * keeps what it read whole, and the write does not wait for it: it makes
 * a new file instead. */
static void test_the_totals_files_take_turns_and_never_wait_for_a_reader(void **state) {
  (void)state;
  th_be_t *f = th_be_new("file", 0);
  char path[2048];
  struct stat st;
  snprintf(path, sizeof path, "%s/stats/h-%llu.json", f->dir, ((omniq__fs_t *)f->b)->io.owner);
  finish_batch(f, 1); /* the first file */
  int first = open(path, O_RDONLY | O_CLOEXEC);
  assert_true(first >= 0);
  finish_batch(f, 1); /* the second: the first is now the spare */
  assert_int_equal(stat(path, &st), 0);
  ino_t second = st.st_ino;
  finish_batch(f, 1); /* the first again, rewritten: no new file */
  int again = open(path, O_RDONLY | O_CLOEXEC);
  struct stat fst;
  assert_int_equal(fstat(first, &fst), 0);
  assert_int_equal(fstat(again, &st), 0);
  assert_int_equal(st.st_ino, fst.st_ino);
  assert_int_equal(succeeded_in(again), 3);
  close(again);
  finish_batch(f, 1); /* the second again */
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(st.st_ino, second);

  /* A reader holds the first (now the spare, written next). */
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  assert_int_equal(fcntl(first, F_OFD_SETLK, &fl), 0);
  finish_batch(f, 1);
  assert_int_equal(succeeded_in(first), 3); /* what the reader holds stays whole */
  assert_int_equal(stat(path, &st), 0);
  assert_true(st.st_ino != fst.st_ino && st.st_ino != second); /* a new file */
  assert_int_equal(succeeded(f), 5);
  close(first);
  th_be_reopen(f);
  assert_int_equal(succeeded(f), 5);
  th_be_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_each_handle_counts_in_its_own_file_and_reads_the_sum),
      cmocka_unit_test(test_a_closed_handles_file_is_folded_into_the_next_open),
      cmocka_unit_test(test_a_batch_of_finishes_writes_the_totals_once),
      cmocka_unit_test(test_the_totals_files_take_turns_and_never_wait_for_a_reader),
      cmocka_unit_test(test_handles_one_after_another_keep_the_totals_file_small),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
