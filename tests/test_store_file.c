/* The file backend's own behaviour, beyond the shared contract: the layout
 * an operator sees, atomic writes, quarantine, path safety, open errors,
 * crash windows, the journal that feeds other backends' indexes. The
 * multi-process tests are in test_store_file_procs.c. */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "file_fixture.h"
#include "storage/file/journal.h"
#include "storage/file/names.h"

static int setup(void **state) {
  *state = fx_new(1);
  return 0;
}

static int teardown(void **state) {
  fx_free(*state);
  return 0;
}

static omniq_outcome_t outcome(const omniq_task_t *t, int next, int64_t eta,
                               const omniq_result_t *r, const omniq_task_error_t *e) {
  omniq_outcome_t o = {t->id, t->token, next, eta, 0, e, r};
  return o;
}

static void test_layout_shows_each_state_in_its_folder(void **state) {
  fx_t *f = *state;
  omniq_task_t **got;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], c[OMNIQ_ID_SIZE];
  fx_add(f, NULL, 0, fx_now(f), a);
  fx_add(f, NULL, 0, fx_now(f), b);
  fx_add(f, NULL, 0, fx_now(f), c);
  assert_int_equal(fx_count(f, "queue/pending/default"), 3);

  assert_int_equal(fx_claim(f, 2, &got), 2);
  assert_string_equal(got[0]->id, a);
  assert_int_equal(fx_count(f, "queue/pending/default"), 1);
  assert_true(fx_has(f, "queue/running", a));
  assert_true(fx_has(f, "queue/running", b));

  omniq_result_t *r = fx_result(a, OMNIQ_SUCCESS, fx_now(f));
  omniq_outcome_t o = outcome(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(fx_has(f, "queue/success", a));
  assert_false(fx_has(f, "queue/running", a));
  assert_true(fx_has(f, "results", a));
  assert_int_equal(fx_count(f, "queue/running"), 1);

  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_PENDING], 1);
  assert_int_equal(counts[OMNIQ_RUNNING], 1);
  assert_int_equal(counts[OMNIQ_SUCCESS], 1);
  omniq_result_free(r);
  omniq__tasks_free(got, 2);
}

static void test_pending_names_sort_in_claim_order(void **state) {
  fx_t *f = *state;
  char lo[OMNIQ_ID_SIZE], hi[OMNIQ_ID_SIZE], late[OMNIQ_ID_SIZE], early[OMNIQ_ID_SIZE];
  char name[256];
  omniq_task_t **got;
  fx_add(f, NULL, 0, fx_now(f), lo);
  fx_add(f, NULL, 0, fx_now(f) - 5, early); /* same priority, earlier eta */
  fx_add(f, NULL, 7, fx_now(f), hi);
  fx_add(f, NULL, 9, fx_now(f) + 1000, late); /* best priority, not due yet */
  omniq__fname_pending(omniq__fname_iprio(7), fx_now(f), hi, name);
  assert_int_equal(strncmp(name, "2147483640_", 11), 0);

  assert_int_equal(fx_claim(f, 10, &got), 3);
  assert_string_equal(got[0]->id, hi);
  assert_string_equal(got[1]->id, early);
  assert_string_equal(got[2]->id, lo);
  assert_int_equal(got[0]->attempts, 1);
  assert_int_equal(got[0]->token, 1);
  assert_int_equal(got[0]->status, OMNIQ_RUNNING);
  omniq__tasks_free(got, 3);
  th_clock_advance(&f->clock, 1000);
  assert_int_equal(fx_claim(f, 10, &got), 1);
  assert_string_equal(got[0]->id, late);
  omniq__tasks_free(got, 1);
}

static void test_writes_leave_no_tmp_files(void **state) {
  fx_t *f = *state;
  omniq_task_t **got;
  char id[OMNIQ_ID_SIZE];
  for (int i = 0; i < 5; i++) fx_add(f, NULL, 0, fx_now(f), NULL);
  fx_add(f, NULL, 0, fx_now(f) + 10, id);
  assert_int_equal(fx_claim(f, 3, &got), 3);
  omniq_result_t *r = fx_result(got[0]->id, OMNIQ_SUCCESS, fx_now(f));
  omniq_outcome_t o = outcome(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
  o = outcome(got[1], OMNIQ_PENDING, fx_now(f) + 50, NULL, NULL);
  assert_int_equal(fx_fail(f, &o), OMNIQ_OK);
  assert_int_equal(f->ops->extend_lease(f->b, got[2]->id, got[2]->token, fx_now(f) + 60000,
                                        f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(f->ops->cancel(f->b, id, NULL, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(fx_count(f, "tmp"), 0);

  /* A tmp file left by a writer that died long ago goes at the next open;
   * a fresh one (a live writer's) stays. */
  fx_plant(f, "tmp/999999-1.tmp", "{", 1);
  fx_plant(f, "tmp/999999-2.tmp", "{", 1);
  char path[2048];
  struct timespec old[2] = {{0, 0}, {0, 0}};
  snprintf(path, sizeof path, "%s/tmp/999999-1.tmp", f->dir);
  assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
  fx_reopen(f);
  assert_int_equal(fx_count(f, "tmp"), 1);
  omniq_result_free(r);
  omniq__tasks_free(got, 3);
}

static void test_unreadable_files_are_quarantined_and_the_queue_goes_on(void **state) {
  fx_t *f = *state;
  char ids[4][OMNIQ_ID_SIZE], name[256], path[2048], junk_name[OMNIQ__PNAME_SIZE];
  unsigned char junk[300];
  omniq_task_t **got;
  for (int i = 0; i < 4; i++) fx_add(f, NULL, 0, fx_now(f), ids[i]);

  /* Truncate the second task's file to half its bytes. */
  omniq__fname_pending(omniq__fname_iprio(0), fx_now(f), ids[1], name);
  snprintf(path, sizeof path, "%s/queue/pending/default/%s", f->dir, name);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size / 2), 0);
  /* Random bytes under a task-like name (found by claiming) and under a
   * name that is no task name (found by the folder scan). */
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
  char jid[OMNIQ_ID_SIZE];
  omniq__id_new(fx_now(f) - 1000, jid);
  omniq__fname_pending(omniq__fname_iprio(0), 0, jid, junk_name);
  snprintf(path, sizeof path, "queue/pending/default/%s", junk_name);
  fx_plant(f, path, junk, sizeof junk);
  fx_plant(f, "queue/pending/default/garbage.bin", junk, sizeof junk);
  fx_plant(f, "queue/stray.bin", junk, sizeof junk);
  fx_reopen(f);
  int warned = atomic_load(&f->warnings);
  assert_true(warned >= 2);

  assert_int_equal(fx_claim(f, 10, &got), 3);
  assert_string_equal(got[0]->id, ids[0]);
  assert_string_equal(got[1]->id, ids[2]);
  assert_string_equal(got[2]->id, ids[3]);
  assert_int_equal(fx_count(f, "quarantine"), 4);
  assert_int_equal(atomic_load(&f->warnings), warned + 2);
  assert_non_null(strstr(f->last_line, "quarantine"));
  assert_int_equal(fx_count(f, "queue/pending/default"), 0);
  for (size_t i = 0; i < 3; i++) {
    omniq_result_t *r = fx_result(got[i]->id, OMNIQ_SUCCESS, fx_now(f));
    omniq_outcome_t o = outcome(got[i], OMNIQ_SUCCESS, 0, r, NULL);
    assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
    omniq_result_free(r);
  }
  assert_int_equal(fx_count(f, "queue/success"), 3);
  omniq__tasks_free(got, 3);
}

static void test_ids_and_names_from_outside_never_become_paths(void **state) {
  fx_t *f = *state;
  static const char *const bad[] = {"../../etc/passwd", "", "0190a4d2-0000-7000-8000-00000000000",
                                    "0190A4D2-0000-7000-8000-000000000000",
                                    "0190a4d2-0000-7000-8000-000000000000/../x"};
  omniq_task_t *t = NULL;
  omniq_result_t *r = NULL;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq_outcome_t o = {bad[i], 1, OMNIQ_SUCCESS, 0, 0, NULL, NULL};
    assert_int_equal(f->ops->get_task(f->b, bad[i], &t, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->get_result(f->b, bad[i], &r, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->cancel(f->b, bad[i], NULL, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->extend_lease(f->b, bad[i], 1, 0, f->err, sizeof f->err),
                     OMNIQ_EINVAL);
  }
  /* A task whose id is not an id is refused before anything is written. */
  t = fx_task(f, NULL, 0, fx_now(f));
  snprintf(t->id, sizeof t->id, "../../../tmp/x");
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_EINVAL);
  omniq_task_free(t);
  assert_int_equal(fx_count(f, "tmp"), 0);
  assert_int_equal(fx_count(f, "queue/pending"), 0);

  /* A queue name is encoded, never used as a path. */
  fx_add(f, "../../escape", 0, fx_now(f), NULL);
  assert_int_equal(fx_count(f, "queue/pending/%2E%2E%2F%2E%2E%2Fescape"), 1);

  /* Journal lines are bytes from disk: a crafted one is ignored. */
  char line[512], name[OMNIQ__PNAME_SIZE], id[OMNIQ_ID_SIZE];
  omniq__id_new(fx_now(f), id);
  omniq__fname_pending(0, 0, id, name);
  int n = snprintf(line, sizeof line, "../../..%s/%s\n..\n%s\n", f->dir, name, name);
  char path[2048];
  snprintf(path, sizeof path, "%s/queue/journal", f->dir);
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, line, (size_t)n), n);
  close(fd);
  omniq_task_t **got;
  assert_int_equal(fx_claim(f, 5, &got), 0);

  /* A file whose content names another task is not taken as that task. */
  char victim[OMNIQ_ID_SIZE], other[OMNIQ_ID_SIZE], vname[OMNIQ__PNAME_SIZE];
  fx_add(f, NULL, 0, fx_now(f), victim);
  t = fx_task(f, NULL, 0, fx_now(f));
  memcpy(other, t->id, OMNIQ_ID_SIZE);
  memcpy(t->id, victim, OMNIQ_ID_SIZE); /* content says victim ... */
  size_t len;
  char *text = omniq__fs_encode(t, NULL, &len);
  omniq__fname_pending(omniq__fname_iprio(0), fx_now(f), other, vname); /* ... name says other */
  snprintf(path, sizeof path, "queue/pending/default/%s", vname);
  fx_plant(f, path, text, len);
  omniq__free(text);
  omniq_task_free(t);
  /* A symlink and a FIFO under task names are not followed or opened as
   * tasks: quarantined, and the file the link points at is untouched. */
  char target[2048], link_rel[256];
  fx_plant(f, "outside.txt", "keep", 4);
  snprintf(target, sizeof target, "%s/outside.txt", f->dir);
  omniq__id_new(fx_now(f) - 5000, id);
  omniq__fname_pending(omniq__fname_iprio(0), 0, id, name);
  snprintf(path, sizeof path, "%s/queue/pending/default/%s", f->dir, name);
  assert_int_equal(symlink(target, path), 0);
  omniq__id_new(fx_now(f) - 4000, id);
  omniq__fname_pending(omniq__fname_iprio(0), 0, id, name);
  snprintf(link_rel, sizeof link_rel, "queue/pending/default/%s", name);
  snprintf(path, sizeof path, "%s/%s", f->dir, link_rel);
  assert_int_equal(mkfifo(path, 0600), 0);
  fx_reopen(f);
  assert_int_equal(fx_claim(f, 5, &got), 1);
  assert_string_equal(got[0]->id, victim);
  assert_int_equal(got[0]->attempts, 1);
  omniq__tasks_free(got, 1);
  assert_int_equal(fx_count(f, "quarantine"), 3);
  FILE *fp = fopen(target, "r");
  char keep[8] = "";
  assert_non_null(fp);
  assert_non_null(fgets(keep, sizeof keep, fp));
  fclose(fp);
  assert_string_equal(keep, "keep");
}

static void test_open_fails_clearly_when_base_dir_cannot_be_made(void **state) {
  fx_t *f = *state;
  char path[2048];
  fx_plant(f, "plainfile", "x", 1);
  fx_close(f);
  snprintf(path, sizeof path, "%s/plainfile/store", f->dir);
  fx_settings(f, path, 1);
  assert_int_not_equal(fx_open(f), OMNIQ_OK);
  assert_null(f->b);
  assert_non_null(strstr(f->err, "base_dir"));
  assert_non_null(strstr(f->err, "plainfile/store"));

  snprintf(path, sizeof path, "%s/plainfile", f->dir);
  fx_settings(f, path, 1);
  assert_int_not_equal(fx_open(f), OMNIQ_OK);
  assert_non_null(strstr(f->err, "base_dir"));

  fx_settings(f, "", 1);
  assert_int_equal(fx_open(f), OMNIQ_ECONFIG);

  fx_settings(f, f->dir, 1);
  assert_int_equal(fx_open(f), OMNIQ_OK);
}

static void test_open_refuses_another_format_and_changes_nothing(void **state) {
  fx_t *f = *state;
  char path[2048];
  fx_close(f);
  snprintf(path, sizeof path, "%s/newer", f->dir);
  assert_int_equal(mkdir(path, 0700), 0);
  fx_plant(f, "newer/FORMAT", "omniq-file-store 2\n", 19);
  fx_settings(f, path, 1);
  assert_int_equal(fx_open(f), OMNIQ_ECORRUPT);
  assert_non_null(strstr(f->err, "omniq-file-store 2"));
  assert_int_equal(fx_count(f, "newer"), 1); /* only FORMAT: nothing created */
  fx_settings(f, f->dir, 1);
  assert_int_equal(fx_open(f), OMNIQ_OK);
}

static void test_open_fails_clearly_on_a_read_only_base_dir(void **state) {
  fx_t *f = *state;
  char path[2048];
  if (geteuid() == 0) skip(); /* root writes through any mode bits */
  fx_close(f);
  snprintf(path, sizeof path, "%s/ro", f->dir);
  assert_int_equal(mkdir(path, 0500), 0);
  fx_settings(f, path, 1);
  assert_int_not_equal(fx_open(f), OMNIQ_OK);
  assert_non_null(strstr(f->err, "not writable"));
  chmod(path, 0700);
  fx_settings(f, f->dir, 1);
  assert_int_equal(fx_open(f), OMNIQ_OK);
}

/* A claimer that died between its rename and its rewrite left a PENDING
 * file in running/: it is not a claim (no attempt counted), and the task
 * goes back to pending/. */
static void test_claim_interrupted_after_rename_goes_back_to_pending(void **state) {
  fx_t *f = *state;
  char id[OMNIQ_ID_SIZE], name[OMNIQ__PNAME_SIZE], from[2048], to[2048];
  omniq_task_t **got, *t;
  omniq_task_t **lost;
  size_t nlost;
  fx_add(f, NULL, 0, fx_now(f), id);
  omniq__fname_pending(omniq__fname_iprio(0), fx_now(f), id, name);
  snprintf(from, sizeof from, "%s/queue/pending/default/%s", f->dir, name);
  snprintf(to, sizeof to, "%s/queue/running/%s.json", f->dir, id);
  assert_int_equal(rename(from, to), 0);

  /* Another claimer loses the rename and moves on. */
  assert_int_equal(fx_claim(f, 1, &got), 0);
  /* The reaper's pass finishes the interrupted step and reports nothing. */
  assert_int_equal(f->ops->expired_leases(f->b, fx_now(f) + 1000000, 10, &lost, &nlost, f->err,
                                          sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(nlost, 0);
  assert_false(fx_has(f, "queue/running", id));
  assert_int_equal(fx_count(f, "queue/pending/default"), 1);
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->attempts, 0);
  omniq_task_free(t);
  assert_int_equal(fx_claim(f, 1, &got), 1);
  assert_int_equal(got[0]->attempts, 1);
  assert_int_equal(got[0]->token, 1);
  omniq__tasks_free(got, 1);

  /* Same window, found by a lookup and by open instead of the reaper. */
  fx_add(f, NULL, 0, fx_now(f), id);
  omniq__fname_pending(omniq__fname_iprio(0), fx_now(f), id, name);
  snprintf(from, sizeof from, "%s/queue/pending/default/%s", f->dir, name);
  snprintf(to, sizeof to, "%s/queue/running/%s.json", f->dir, id);
  assert_int_equal(rename(from, to), 0);
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  omniq_task_free(t);
  assert_false(fx_has(f, "queue/running", id));
  assert_int_equal(rename(from, to), 0);
  fx_reopen(f);
  assert_false(fx_has(f, "queue/running", id));
  assert_int_equal(fx_claim(f, 1, &got), 1);
  assert_string_equal(got[0]->id, id);
  assert_int_equal(got[0]->attempts, 1);
  omniq__tasks_free(got, 1);
}

/* A transition committed in the slot but not finished (result not yet
 * published, file not yet moved) is rolled forward. */
static void test_committed_transition_is_finished_after_a_crash(void **state) {
  fx_t *f = *state;
  omniq_task_t **got;
  char path[2048], rel[256];
  fx_add(f, NULL, 0, fx_now(f), NULL);
  fx_add(f, NULL, 0, fx_now(f), NULL);
  assert_int_equal(fx_claim(f, 2, &got), 2);

  /* Task 0: SUCCESS with its result, stopped right after the commit. */
  omniq_result_t *r = fx_result(got[0]->id, OMNIQ_SUCCESS, fx_now(f));
  got[0]->status = OMNIQ_SUCCESS;
  size_t len;
  char *text = omniq__fs_encode(got[0], r, &len);
  snprintf(rel, sizeof rel, "queue/running/%s.json", got[0]->id);
  fx_plant(f, rel, text, len);
  omniq__free(text);
  /* Task 1: a retry (PENDING, later eta) stopped before its move. */
  got[1]->status = OMNIQ_PENDING;
  got[1]->eta_ms = fx_now(f) + 500;
  text = omniq__fs_encode(got[1], NULL, &len);
  snprintf(rel, sizeof rel, "queue/running/%s.json", got[1]->id);
  fx_plant(f, rel, text, len);
  omniq__free(text);

  fx_reopen(f);
  assert_int_equal(fx_count(f, "queue/running"), 0);
  assert_true(fx_has(f, "queue/success", got[0]->id));
  omniq_result_t *back = NULL;
  assert_int_equal(f->ops->get_result(f->b, got[0]->id, &back, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(back->status, OMNIQ_SUCCESS);
  assert_string_equal(back->value, "42");
  char name[OMNIQ__PNAME_SIZE];
  omniq__fname_pending(omniq__fname_iprio(0), fx_now(f) + 500, got[1]->id, name);
  snprintf(path, sizeof path, "queue/pending/default/%s", name);
  char only[256];
  fx_only_name(f, "queue/pending/default", only);
  assert_string_equal(only, name);
  omniq_result_free(back);
  omniq_result_free(r);
  omniq__tasks_free(got, 2);
}

static void test_each_transition_leaves_one_file_per_task(void **state) {
  fx_t *f = *state;
  omniq_task_t **got, *t;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE];
  omniq_task_error_t *e = omniq_task_error_new("Boom", "bad", fx_now(f), NULL, 1, 1);
  fx_add(f, NULL, 0, fx_now(f), a);
  fx_add(f, NULL, 0, fx_now(f), b);
  assert_int_equal(fx_claim(f, 1, &got), 1);

  /* Retry: back to pending with the error, in one step. */
  omniq_outcome_t o = outcome(got[0], OMNIQ_PENDING, fx_now(f) + 100, NULL, e);
  assert_int_equal(fx_fail(f, &o), OMNIQ_OK);
  assert_int_equal(fx_fail(f, &o), OMNIQ_ESTATE);
  assert_int_equal(f->ops->get_task(f->b, a, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->eta_ms, fx_now(f) + 100);
  assert_string_equal(t->last_error->error_type, "Boom");
  omniq_task_free(t);
  assert_int_equal(fx_count(f, "queue/running"), 0);
  assert_int_equal(fx_count(f, "queue/pending/default"), 2);
  omniq__tasks_free(got, 1);

  /* Interval re-arm: result stored, back to pending, attempts reset. */
  th_clock_advance(&f->clock, 100);
  assert_int_equal(fx_claim(f, 2, &got), 2);
  assert_string_equal(got[1]->id, a);
  assert_int_equal(got[1]->attempts, 2);
  omniq_result_t *r = fx_result(a, OMNIQ_SUCCESS, fx_now(f));
  o = outcome(got[1], OMNIQ_PENDING, fx_now(f) + 1000, r, NULL);
  o.reset_attempts = 1;
  assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(fx_has(f, "results", a));
  assert_int_equal(f->ops->get_task(f->b, a, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->attempts, 0);
  omniq_task_free(t);
  omniq_result_free(r);

  /* Stale tokens change nothing; extend needs the current one. */
  assert_int_equal(f->ops->extend_lease(f->b, b, got[0]->token + 1, 0, f->err, sizeof f->err),
                   OMNIQ_ESTATE);
  assert_int_equal(f->ops->extend_lease(f->b, b, got[0]->token, fx_now(f) + 99, f->err,
                                        sizeof f->err),
                   OMNIQ_OK);
  /* Cancel while running: the late finish is refused. */
  r = fx_result(b, OMNIQ_CANCELLED, fx_now(f));
  assert_int_equal(f->ops->cancel(f->b, b, r, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(f->ops->cancel(f->b, b, r, f->err, sizeof f->err), OMNIQ_ESTATE);
  o = outcome(got[0], OMNIQ_SUCCESS, 0, NULL, NULL);
  assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_ESTATE);
  assert_true(fx_has(f, "queue/cancelled", b));
  omniq_result_free(r);
  /* Cancel while pending. */
  r = fx_result(a, OMNIQ_CANCELLED, fx_now(f));
  assert_int_equal(f->ops->cancel(f->b, a, r, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(fx_has(f, "queue/cancelled", a));
  omniq_result_free(r);

  assert_int_equal(fx_count(f, "queue/pending/default"), 0);
  assert_int_equal(fx_count(f, "queue/running"), 0);
  assert_int_equal(fx_count(f, "queue/cancelled"), 2);
  char unknown[OMNIQ_ID_SIZE];
  omniq__id_new(fx_now(f), unknown);
  o.id = unknown;
  assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_ENOTFOUND);
  assert_int_equal(f->ops->cancel(f->b, unknown, NULL, f->err, sizeof f->err), OMNIQ_ENOTFOUND);
  omniq_task_error_free(e);
  omniq__tasks_free(got, 2);
}

static void test_enqueue_many_is_all_or_none(void **state) {
  fx_t *f = *state;
  omniq_task_t *batch[3];
  char existing[OMNIQ_ID_SIZE];
  fx_add(f, NULL, 0, fx_now(f), existing);
  for (int i = 0; i < 3; i++) batch[i] = fx_task(f, i == 1 ? "other" : NULL, 0, fx_now(f));
  memcpy(batch[2]->id, existing, OMNIQ_ID_SIZE);
  assert_int_not_equal(f->ops->enqueue(f->b, batch, 3, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(fx_count(f, "queue/pending/default"), 1);
  assert_true(fx_count(f, "queue/pending/other") <= 0);
  assert_int_equal(fx_count(f, "tmp"), 0);
  memcpy(batch[2]->id, batch[0]->id, OMNIQ_ID_SIZE); /* twice in one batch */
  assert_int_equal(f->ops->enqueue(f->b, batch, 3, f->err, sizeof f->err), OMNIQ_EINVAL);
  omniq__id_new(fx_now(f), batch[2]->id);
  assert_int_equal(f->ops->enqueue(f->b, batch, 3, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(fx_count(f, "queue/pending/default"), 3);
  assert_int_equal(fx_count(f, "queue/pending/other"), 1);
  for (int i = 0; i < 3; i++) omniq_task_free(batch[i]);
}

/* Two backends on one directory: what one enqueues, the other claims
 * through the journal, without listing the folders again. */
static void test_other_backend_learns_new_tasks_from_the_journal(void **state) {
  fx_t *f = *state;
  fx_t *g = calloc(1, sizeof *g);
  omniq_task_t **got;
  char id[OMNIQ_ID_SIZE];
  pthread_mutex_init(&g->lock, NULL);
  g->clock = f->clock;
  g->ops = f->ops;
  g->dir = f->dir;
  fx_settings(g, f->dir, 1);
  assert_int_equal(fx_open(g), OMNIQ_OK);
  omniq__fs_t *gfs = g->b;
  unsigned long scans = omniq__fidx_scans(gfs->idx);

  fx_add(f, NULL, 0, fx_now(f), id);
  assert_int_equal(fx_claim(g, 5, &got), 1);
  assert_string_equal(got[0]->id, id);
  assert_int_equal(omniq__fidx_scans(gfs->idx), scans);
  /* g's retry reaches f the same way. */
  omniq_outcome_t o = outcome(got[0], OMNIQ_PENDING, fx_now(f), NULL, NULL);
  assert_int_equal(fx_fail(g, &o), OMNIQ_OK);
  omniq__tasks_free(got, 1);
  assert_int_equal(fx_claim(f, 5, &got), 1);
  assert_int_equal(got[0]->attempts, 2);
  omniq__tasks_free(got, 1);

  /* Rotation: readers notice the new journal, rescan, and miss nothing. */
  long saved = omniq__fjournal_rotate_bytes;
  omniq__fjournal_rotate_bytes = 300;
  for (int i = 0; i < 40; i++) fx_add(f, NULL, 0, fx_now(f), NULL);
  size_t total = 0, n;
  while ((n = fx_claim(g, 7, &got)) > 0) {
    total += n;
    omniq__tasks_free(got, n);
  }
  assert_int_equal(total, 40);
  assert_true(omniq__fidx_scans(gfs->idx) > scans);
  omniq__fjournal_rotate_bytes = saved;
  fx_close(g);
  pthread_mutex_destroy(&g->lock);
  free(g);
}

static void test_purge_deletes_only_older_results(void **state) {
  fx_t *f = *state;
  omniq_task_t **got;
  int64_t purged = -1;
  for (int i = 0; i < 3; i++) fx_add(f, NULL, 0, fx_now(f), NULL);
  assert_int_equal(fx_claim(f, 3, &got), 3);
  for (int i = 0; i < 3; i++) {
    omniq_result_t *r = fx_result(got[i]->id, OMNIQ_SUCCESS, fx_now(f) + i * 10);
    omniq_outcome_t o = outcome(got[i], OMNIQ_SUCCESS, 0, r, NULL);
    assert_int_equal(f->ops->complete(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
    omniq_result_free(r);
  }
  assert_int_equal(f->ops->purge_results(f->b, fx_now(f) + 15, &purged, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(purged, 2);
  assert_int_equal(fx_count(f, "results"), 1);
  assert_true(fx_has(f, "results", got[2]->id));
  omniq__tasks_free(got, 3);
}

/* The Nth allocation failing: each call either does all of its work or
 * none, and reports OMNIQ_ENOMEM. */
static void test_out_of_memory_leaves_every_task_whole(void **state) {
  fx_t *f = *state;
  int stored = 0, failed = 0;
  for (long n = 0; n < 40; n++) {
    omniq_task_t *t = fx_task(f, n % 2 ? "q2" : NULL, 0, fx_now(f));
    omniq__alloc_fail_after(n);
    int rc = f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err);
    omniq__alloc_fail_after(-1);
    omniq_task_free(t);
    if (rc == OMNIQ_OK)
      stored++;
    else
      assert_int_equal(rc, OMNIQ_ENOMEM), failed++;
  }
  assert_true(failed > 0 && stored > 0);
  assert_int_equal(fx_count(f, "queue/pending/default") + fx_count(f, "queue/pending/q2"), stored);
  assert_int_equal(fx_count(f, "tmp"), 0);

  /* Claim: a failed claim leaves the task pending with no attempt. */
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  omniq_task_t **got = NULL, *t = NULL;
  size_t n = 0;
  for (long k = 0; n == 0; k++) {
    omniq_claim_req_t req = {fx_now(f), fx_now(f) + 30000, q, 1, 1};
    omniq__alloc_fail_after(k);
    int rc = f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err);
    omniq__alloc_fail_after(-1);
    assert_true(rc == OMNIQ_OK || rc == OMNIQ_ENOMEM);
    assert_int_equal(fx_count(f, "queue/running"), (int)n);
  }
  assert_int_equal(got[0]->attempts, 1);

  /* Complete: RUNNING until the call succeeds, then SUCCESS with its result. */
  omniq_result_t *r = fx_result(got[0]->id, OMNIQ_SUCCESS, fx_now(f));
  omniq_outcome_t o = outcome(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  for (long k = 0;; k++) {
    omniq__alloc_fail_after(k);
    int rc = f->ops->complete(f->b, &o, f->err, sizeof f->err);
    omniq__alloc_fail_after(-1);
    assert_int_equal(f->ops->get_task(f->b, got[0]->id, &t, f->err, sizeof f->err), OMNIQ_OK);
    if (rc == OMNIQ_OK) break;
    assert_int_equal(rc, OMNIQ_ENOMEM);
    assert_int_equal(t->status, OMNIQ_RUNNING);
    omniq_task_free(t);
  }
  assert_int_equal(t->status, OMNIQ_SUCCESS);
  omniq_task_free(t);
  omniq_result_t *back = NULL;
  assert_int_equal(f->ops->get_result(f->b, got[0]->id, &back, f->err, sizeof f->err), OMNIQ_OK);
  omniq_result_free(back);
  omniq_result_free(r);
  omniq__tasks_free(got, n);
}

/* Raw mode stores bytes unchecked; JSON files cannot carry bytes that are
 * not UTF-8, so the file backend refuses them and stores nothing. */
static void test_bytes_that_are_not_utf8_are_refused(void **state) {
  fx_t *f = *state;
  omniq_task_t *t = fx_task(f, NULL, 0, fx_now(f));
  omniq__free(t->args);
  t->args = omniq__strdup("[\"\xff\xfe\"]");
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_ESERIALIZE);
  assert_non_null(strstr(f->err, "UTF-8"));
  assert_true(fx_count(f, "queue/pending/default") <= 0);
  assert_int_equal(fx_count(f, "tmp"), 0);
  omniq__free(t->args);
  t->args = omniq__strdup("[\"\xc3\xa9t\xc3\xa9\"]"); /* "été" */
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_OK);
  omniq_task_free(t);
}

static void test_fsync_off_keeps_the_same_layout(void **state) {
  fx_t *f = fx_new(0);
  omniq_task_t **got;
  (void)state;
  for (int i = 0; i < 3; i++) fx_add(f, NULL, 0, fx_now(f), NULL);
  assert_int_equal(fx_claim(f, 2, &got), 2);
  assert_int_equal(fx_count(f, "queue/running"), 2);
  assert_int_equal(fx_count(f, "tmp"), 0);
  omniq__tasks_free(got, 2);
  fx_free(f);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_layout_shows_each_state_in_its_folder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_pending_names_sort_in_claim_order, setup, teardown),
      cmocka_unit_test_setup_teardown(test_writes_leave_no_tmp_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_unreadable_files_are_quarantined_and_the_queue_goes_on,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_ids_and_names_from_outside_never_become_paths, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_open_fails_clearly_when_base_dir_cannot_be_made, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_open_refuses_another_format_and_changes_nothing, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_open_fails_clearly_on_a_read_only_base_dir, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_claim_interrupted_after_rename_goes_back_to_pending,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_committed_transition_is_finished_after_a_crash, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_each_transition_leaves_one_file_per_task, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_enqueue_many_is_all_or_none, setup, teardown),
      cmocka_unit_test_setup_teardown(test_other_backend_learns_new_tasks_from_the_journal, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_purge_deletes_only_older_results, setup, teardown),
      cmocka_unit_test_setup_teardown(test_out_of_memory_leaves_every_task_whole, setup, teardown),
      cmocka_unit_test_setup_teardown(test_bytes_that_are_not_utf8_are_refused, setup, teardown),
      cmocka_unit_test(test_fsync_off_keeps_the_same_layout),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
