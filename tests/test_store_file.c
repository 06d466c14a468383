/* SPDX-License-Identifier: MIT */
/* The file backend's own behaviour, beyond the shared contract: the layout
 * an operator sees, atomic writes, quarantine, path safety, open errors,
 * crash windows, the journal that feeds other backends' indexes. The
 * multi-process tests are in test_store_file_procs.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <linux/fs.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"
#include "storage/file/backend.h"
#include "storage/file/batch.h"
#include "storage/file/journal.h"
#include "storage/file/locks.h"
#include "storage/file/names.h"
#include "storage/file/owner.h"
#include "storage/file/record.h"
#include "support/backend.h"

static int setup(void **state) {
  *state = th_be_new("file", 1);
  return 0;
}

static int teardown(void **state) {
  th_be_free(*state);
  return 0;
}

static omniq_decision_t decision(const omniq_task_t *t, int next, int64_t eta,
                                 const omniq_result_t *r, const omniq_task_error_t *e) {
  omniq_decision_t d = {.id = t->id, .token = t->token, .next_status = next, .eta_ms = eta,
                        .error = e, .result = r};
  return d;
}

/* Writes f->dir/dir/name with the backend's own record writer: t's file,
 * with r embedded as a commit leaves the slot when r != NULL. For planting
 * the files a crash or a tampering leaves behind. */
static void write_record(th_be_t *f, const char *dir, const char *name, const omniq_task_t *t,
                         const omniq_result_t *r) {
  omniq__fs_t *fs = f->b;
  omniq__frec_t rec;
  char path[2048];
  snprintf(path, sizeof path, "%s/%s", f->dir, dir);
  int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true(fd >= 0);
  assert_int_equal(omniq__frec_encode(&rec, t, r, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(
      omniq__frec_write(&fs->io, fd, name, &rec, OMNIQ__FREC_SLOT, f->err, sizeof f->err),
      OMNIQ_OK);
  omniq__frec_free(&rec);
  close(fd);
}

/* The whole text of f->dir/rel (yours: free). */
static char *read_text(const th_be_t *f, const char *rel) {
  char path[2048], *text = NULL;
  size_t cap = 0;
  assert_true(snprintf(path, sizeof path, "%s/%s", f->dir, rel) < (int)sizeof path);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  assert_true(getdelim(&text, &cap, '\0', fp) > 0);
  fclose(fp);
  return text;
}

static void test_layout_shows_each_state_in_its_folder(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], c[OMNIQ_ID_SIZE];
  th_be_add(f, NULL, 0, th_be_now(f), a);
  th_be_add(f, NULL, 0, th_be_now(f), b);
  th_be_add(f, NULL, 0, th_be_now(f), c);
  assert_int_equal(th_be_count(f, "queue/pending/default"), 3);

  assert_int_equal(th_be_claim(f, 2, &got), 2);
  assert_string_equal(got[0]->id, a);
  assert_int_equal(th_be_count(f, "queue/pending/default"), 1);
  assert_true(th_be_has(f, "queue/running", a));
  assert_true(th_be_has(f, "queue/running", b));

  omniq_result_t *r = th_be_result(a, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t o = decision(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(th_be_has(f, "queue/success", a));
  assert_false(th_be_has(f, "queue/running", a));
  assert_true(th_be_has(f, "results", a));
  assert_int_equal(th_be_count(f, "queue/running"), 1);

  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_PENDING], 1);
  assert_int_equal(counts[OMNIQ_RUNNING], 1);
  assert_int_equal(counts[OMNIQ_SUCCESS], 1);
  omniq_result_free(r);
  omniq__tasks_free(got, 2);
}

static void test_pending_names_sort_in_claim_order(void **state) {
  th_be_t *f = *state;
  char lo[OMNIQ_ID_SIZE], hi[OMNIQ_ID_SIZE], late[OMNIQ_ID_SIZE], early[OMNIQ_ID_SIZE];
  char name[256];
  omniq_task_t **got;
  th_be_add(f, NULL, 0, th_be_now(f), lo);
  th_be_add(f, NULL, 0, th_be_now(f) - 5, early); /* same priority, earlier eta */
  th_be_add(f, NULL, 7, th_be_now(f), hi);
  th_be_add(f, NULL, 9, th_be_now(f) + 1000, late); /* best priority, not due yet */
  omniq__fname_pending(omniq__fname_iprio(7), th_be_now(f), hi, name);
  assert_int_equal(strncmp(name, "2147483640_", 11), 0);

  assert_int_equal(th_be_claim(f, 10, &got), 3);
  assert_string_equal(got[0]->id, hi);
  assert_string_equal(got[1]->id, early);
  assert_string_equal(got[2]->id, lo);
  assert_int_equal(got[0]->attempts, 1);
  assert_int_equal(got[0]->token, 1);
  assert_int_equal(got[0]->status, OMNIQ_RUNNING);
  omniq__tasks_free(got, 3);
  th_clock_advance(&f->clock, 1000);
  assert_int_equal(th_be_claim(f, 10, &got), 1);
  assert_string_equal(got[0]->id, late);
  omniq__tasks_free(got, 1);
}

/* Names written by hand are what the printf forms wrote, at the ends of
 * every field's range. */
static void test_names_are_the_printf_forms(void **state) {
  (void)state;
  static const uint32_t iprios[] = {0, 1, 2147483647u, 4294967295u};
  static const int64_t etas[] = {-5, 0, 1, 1800000000000LL, OMNIQ__ETA_NAME_MAX,
                                 OMNIQ__ETA_NAME_MAX + 1, INT64_MAX};
  const char *id = "01a3185c-5000-7003-b2e4-8f9a0b1c2d44";
  char got[OMNIQ__PNAME_SIZE], want[OMNIQ__PNAME_SIZE + 16];
  for (size_t i = 0; i < sizeof iprios / sizeof iprios[0]; i++)
    for (size_t j = 0; j < sizeof etas / sizeof etas[0]; j++) {
      omniq__fname_pending(iprios[i], etas[j], id, got);
      snprintf(want, sizeof want, "%010lu_%015lld_%.36s.json", (unsigned long)iprios[i],
               (long long)omniq__fname_eta(etas[j]), id);
      assert_string_equal(got, want);
    }
  char idname[OMNIQ__IDNAME_SIZE];
  assert_int_equal(omniq__fname_id(id, idname), OMNIQ_OK);
  assert_string_equal(idname, "01a3185c-5000-7003-b2e4-8f9a0b1c2d44.json");
}

static void test_writes_leave_no_tmp_files(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got;
  char id[OMNIQ_ID_SIZE];
  for (int i = 0; i < 5; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  th_be_add(f, NULL, 0, th_be_now(f) + 10, id);
  assert_int_equal(th_be_claim(f, 3, &got), 3);
  omniq_result_t *r = th_be_result(got[0]->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t o = decision(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
  o = decision(got[1], OMNIQ_PENDING, th_be_now(f) + 50, NULL, NULL);
  assert_int_equal(th_be_finish(f, &o), OMNIQ_OK);
  assert_int_equal(f->ops->extend_lease(f->b, got[2]->id, got[2]->token, th_be_now(f) + 60000,
                                        f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(f->ops->cancel(f->b, id, th_be_now(f), NULL, f->err, sizeof f->err), OMNIQ_OK);
  /* While open, tmp/ holds only the backend's spares, a bounded few; they
   * go when it closes. */
  assert_true(th_be_count(f, "tmp") <= OMNIQ__SPARES_MAX);
  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "tmp"), 0);

  /* A tmp file left by a writer that died long ago goes at the next open;
   * a fresh one (a live writer's) stays. */
  th_be_plant(f, "tmp/999999-1.tmp", "{", 1);
  th_be_plant(f, "tmp/999999-2.tmp", "{", 1);
  char path[2048];
  struct timespec old[2] = {{0, 0}, {0, 0}};
  snprintf(path, sizeof path, "%s/tmp/999999-1.tmp", f->dir);
  assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "tmp"), 1);

  /* An old file of a live process may be one of its spares: it stays. */
  char mine[64];
  snprintf(mine, sizeof mine, "tmp/%ld-1.tmp", (long)getpid());
  th_be_plant(f, mine, "{", 1);
  snprintf(path, sizeof path, "%s/%s", f->dir, mine);
  assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "tmp"), 2);

  /* An old file of a handle that is gone (nobody holds its owner byte)
   * goes; so does an old one whose name starts with a dead pid. */
  char gone[64];
  snprintf(gone, sizeof gone, "tmp/%llu-1.tmp", OMNIQ__OWNER_MIN + 12345);
  th_be_plant(f, gone, "{", 1);
  snprintf(path, sizeof path, "%s/%s", f->dir, gone);
  assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "tmp"), 2);
  omniq_result_free(r);
  omniq__tasks_free(got, 3);
}

/* Sets the times of every entry in f->dir/tmp two hours back, as if the
 * handle that owns them had not written them for that long; returns how
 * many there are. */
static int age_tmp(const th_be_t *f) {
  char path[2048];
  struct timespec old[2] = {{0, 0}, {0, 0}};
  int n = 0;
  old[0].tv_sec = old[1].tv_sec = time(NULL) - 7200;
  snprintf(path, sizeof path, "%s/tmp", f->dir);
  DIR *d = opendir(path);
  assert_non_null(d);
  for (struct dirent *de; (de = readdir(d)) != NULL;) {
    if (de->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/tmp/%s", f->dir, de->d_name);
    assert_int_equal(utimensat(AT_FDCWD, path, old, AT_SYMLINK_NOFOLLOW), 0);
    n++;
  }
  closedir(d);
  return n;
}

/* A producer staging a batch for long (a huge enqueue_many on a slow disk)
 * keeps its folder in tmp/: another handle's open must not empty it under
 * it, however old it looks. Before, folders were removed on age alone. */
static void test_open_keeps_the_batch_folder_of_a_live_handle(void **state) {
  th_be_t *f = *state;
  omniq__fs_t *fs = f->b;
  omniq__fbatch_t b;
  omniq__fio_t io;
  char tmp[OMNIQ__TMP_NAME_SIZE], rel[128];
  assert_int_equal(omniq__fbatch_begin(fs, &b, &io, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(omniq__fio_stage(&io, "{}", 2, tmp, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(age_tmp(f) >= 1);
  th_be_t *g = th_be_beside(f);
  snprintf(rel, sizeof rel, "tmp/%s", b.name);
  assert_int_equal(th_be_count(f, rel), 1);
  omniq__fbatch_end(fs, &b);
  /* Once its handle is closed, the same old folder is a dead writer's. */
  assert_int_equal(omniq__fbatch_begin(fs, &b, &io, f->err, sizeof f->err), OMNIQ_OK);
  snprintf(rel, sizeof rel, "tmp/%s", b.name);
  close(b.fd);
  th_be_close(f);
  assert_true(age_tmp(f) >= 1);
  th_be_reopen(g);
  assert_int_equal(th_be_count(f, rel), -1);
  th_be_free(g);
  assert_int_equal(th_be_open(f), OMNIQ_OK);
}

/* The open of a handle in another pid namespace (a container sharing the
 * store's volume) runs in a forked child: it sees this process's pid as
 * dead. Exit 0: the open and close went well; 77: no namespace could be
 * made here (the test is skipped); else a failure. No cmocka in the
 * children. */
static int open_in_other_pid_namespace(const th_be_t *f) {
  pid_t child = fork();
  assert_true(child >= 0);
  if (child == 0) {
    if (unshare(CLONE_NEWUSER | CLONE_NEWPID) != 0) _exit(77);
    pid_t inner = fork(); /* pid 1 of the new namespace */
    if (inner < 0) _exit(2);
    if (inner == 0) {
      void *b = NULL;
      char err[512];
      if (f->ops->open(&f->s, &b, err, sizeof err) != OMNIQ_OK) _exit(3);
      f->ops->close(b);
      _exit(getpid() == 1 ? 0 : 4);
    }
    int st;
    if (waitpid(inner, &st, 0) != inner || !WIFEXITED(st)) _exit(5);
    _exit(WEXITSTATUS(st));
  }
  int st;
  assert_int_equal(waitpid(child, &st, 0), child);
  assert_true(WIFEXITED(st));
  return WEXITSTATUS(st);
}

/* A handle's spare files in tmp/ may go unwritten for hours; a process
 * that cannot see the owner's pid must still leave them (before, it
 * removed them, and one removed between a writer opening it and renaming
 * it failed that write with OMNIQ_ESTORAGE). */
static void test_open_in_another_pid_namespace_keeps_a_live_handles_spares(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got;
  for (int i = 0; i < 3; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 3, &got), 3);
  for (int i = 0; i < 3; i++) {
    omniq_decision_t d = decision(got[i], OMNIQ_FAILED, 0, NULL, NULL);
    assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
  }
  omniq__tasks_free(got, 3);
  int n = age_tmp(f);
  assert_true(n >= 1);
  int rc = open_in_other_pid_namespace(f);
  if (rc == 77) skip();
  assert_int_equal(rc, 0);
  assert_int_equal(th_be_count(f, "tmp"), n);
  /* And the handle goes on writing from them. */
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  omniq_decision_t d = decision(got[0], OMNIQ_FAILED, 0, NULL, NULL);
  assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
  omniq__tasks_free(got, 1);
}

static void test_unreadable_files_are_quarantined_and_the_queue_goes_on(void **state) {
  th_be_t *f = *state;
  char ids[4][OMNIQ_ID_SIZE], name[256], path[2048], junk_name[OMNIQ__PNAME_SIZE];
  unsigned char junk[300];
  omniq_task_t **got;
  for (int i = 0; i < 4; i++) th_be_add(f, NULL, 0, th_be_now(f), ids[i]);

  /* Truncate the second task's file to half its bytes. */
  omniq__fname_pending(omniq__fname_iprio(0), th_be_now(f), ids[1], name);
  snprintf(path, sizeof path, "%s/queue/pending/default/%s", f->dir, name);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  assert_int_equal(truncate(path, st.st_size / 2), 0);
  /* Random bytes under a task-like name (found by claiming) and under a
   * name that is no task name (found by the folder scan). */
  for (size_t i = 0; i < sizeof junk; i++) junk[i] = (unsigned char)(i * 131 + 7);
  char jid[OMNIQ_ID_SIZE];
  omniq__id_new(th_be_now(f) - 1000, jid);
  omniq__fname_pending(omniq__fname_iprio(0), 0, jid, junk_name);
  snprintf(path, sizeof path, "queue/pending/default/%s", junk_name);
  th_be_plant(f, path, junk, sizeof junk);
  th_be_plant(f, "queue/pending/default/garbage.bin", junk, sizeof junk);
  th_be_plant(f, "queue/stray.bin", junk, sizeof junk);
  th_be_reopen(f);
  int warned = atomic_load(&f->warnings);
  assert_true(warned >= 2);

  assert_int_equal(th_be_claim(f, 10, &got), 3);
  assert_string_equal(got[0]->id, ids[0]);
  assert_string_equal(got[1]->id, ids[2]);
  assert_string_equal(got[2]->id, ids[3]);
  assert_int_equal(th_be_count(f, "quarantine"), 4);
  assert_int_equal(atomic_load(&f->warnings), warned + 2);
  assert_non_null(strstr(f->last_line, "quarantine"));
  assert_int_equal(th_be_count(f, "queue/pending/default"), 0);
  for (size_t i = 0; i < 3; i++) {
    omniq_result_t *r = th_be_result(got[i]->id, OMNIQ_SUCCESS, th_be_now(f));
    omniq_decision_t o = decision(got[i], OMNIQ_SUCCESS, 0, r, NULL);
    assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
    omniq_result_free(r);
  }
  assert_int_equal(th_be_count(f, "queue/success"), 3);
  omniq__tasks_free(got, 3);
}

static void test_ids_and_names_from_outside_never_become_paths(void **state) {
  th_be_t *f = *state;
  static const char *const bad[] = {"../../etc/passwd", "", "0190a4d2-0000-7000-8000-00000000000",
                                    "0190A4D2-0000-7000-8000-000000000000",
                                    "0190a4d2-0000-7000-8000-000000000000/../x"};
  omniq_task_t *t = NULL;
  omniq_result_t *r = NULL;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq_decision_t o = {.id = bad[i], .token = 1, .next_status = OMNIQ_SUCCESS};
    assert_int_equal(f->ops->get_task(f->b, bad[i], &t, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->get_result(f->b, bad[i], &r, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->cancel(f->b, bad[i], 0, NULL, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_EINVAL);
    assert_int_equal(f->ops->extend_lease(f->b, bad[i], 1, 0, f->err, sizeof f->err),
                     OMNIQ_EINVAL);
  }
  /* A task whose id is not an id is refused before anything is written. */
  t = th_be_task(f, NULL, 0, th_be_now(f));
  snprintf(t->id, sizeof t->id, "../../../tmp/x");
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_EINVAL);
  omniq_task_free(t);
  assert_int_equal(th_be_count(f, "tmp"), 0);
  assert_int_equal(th_be_count(f, "queue/pending"), 0);

  /* A queue name is encoded, never used as a path. */
  th_be_add(f, "../../escape", 0, th_be_now(f), NULL);
  assert_int_equal(th_be_count(f, "queue/pending/%2E%2E%2F%2E%2E%2Fescape"), 1);

  /* Journal lines are bytes from disk: a crafted one is ignored. */
  char line[512], name[OMNIQ__PNAME_SIZE], id[OMNIQ_ID_SIZE];
  omniq__id_new(th_be_now(f), id);
  omniq__fname_pending(0, 0, id, name);
  int n = snprintf(line, sizeof line, "../../..%s/%s\n..\n%s\n", f->dir, name, name);
  char path[2048];
  snprintf(path, sizeof path, "%s/queue/journal", f->dir);
  int fd = open(path, O_WRONLY | O_APPEND);
  assert_true(fd >= 0);
  assert_int_equal(write(fd, line, (size_t)n), n);
  close(fd);
  omniq_task_t **got;
  assert_int_equal(th_be_claim(f, 5, &got), 0);

  /* A file whose content names another task is not taken as that task. */
  char victim[OMNIQ_ID_SIZE], other[OMNIQ_ID_SIZE], vname[OMNIQ__PNAME_SIZE];
  th_be_add(f, NULL, 0, th_be_now(f), victim);
  t = th_be_task(f, NULL, 0, th_be_now(f));
  memcpy(other, t->id, OMNIQ_ID_SIZE);
  memcpy(t->id, victim, OMNIQ_ID_SIZE); /* content says victim ... */
  omniq__fname_pending(omniq__fname_iprio(0), th_be_now(f), other, vname); /* ... name says other */
  write_record(f, "queue/pending/default", vname, t, NULL);
  omniq_task_free(t);
  /* A symlink and a FIFO under task names are not followed or opened as
   * tasks: quarantined, and the file the link points at is untouched. */
  char target[2048], link_rel[256];
  th_be_plant(f, "outside.txt", "keep", 4);
  snprintf(target, sizeof target, "%s/outside.txt", f->dir);
  omniq__id_new(th_be_now(f) - 5000, id);
  omniq__fname_pending(omniq__fname_iprio(0), 0, id, name);
  snprintf(path, sizeof path, "%s/queue/pending/default/%s", f->dir, name);
  assert_int_equal(symlink(target, path), 0);
  omniq__id_new(th_be_now(f) - 4000, id);
  omniq__fname_pending(omniq__fname_iprio(0), 0, id, name);
  snprintf(link_rel, sizeof link_rel, "queue/pending/default/%s", name);
  snprintf(path, sizeof path, "%s/%s", f->dir, link_rel);
  assert_int_equal(mkfifo(path, 0600), 0);
  th_be_reopen(f);
  assert_int_equal(th_be_claim(f, 5, &got), 1);
  assert_string_equal(got[0]->id, victim);
  assert_int_equal(got[0]->attempts, 1);
  omniq__tasks_free(got, 1);
  assert_int_equal(th_be_count(f, "quarantine"), 3);
  FILE *fp = fopen(target, "r");
  char keep[8] = "";
  assert_non_null(fp);
  assert_non_null(fgets(keep, sizeof keep, fp));
  fclose(fp);
  assert_string_equal(keep, "keep");
}

static void test_open_fails_clearly_when_base_dir_cannot_be_made(void **state) {
  th_be_t *f = *state;
  char path[2048];
  th_be_plant(f, "plainfile", "x", 1);
  th_be_close(f);
  snprintf(path, sizeof path, "%s/plainfile/store", f->dir);
  th_be_settings(f, "file", path, 1);
  assert_int_not_equal(th_be_open(f), OMNIQ_OK);
  assert_null(f->b);
  assert_non_null(strstr(f->err, "base_dir"));
  assert_non_null(strstr(f->err, "plainfile/store"));

  snprintf(path, sizeof path, "%s/plainfile", f->dir);
  th_be_settings(f, "file", path, 1);
  assert_int_not_equal(th_be_open(f), OMNIQ_OK);
  assert_non_null(strstr(f->err, "base_dir"));

  th_be_settings(f, "file", "", 1);
  assert_int_equal(th_be_open(f), OMNIQ_ECONFIG);

  th_be_settings(f, "file", f->dir, 1);
  assert_int_equal(th_be_open(f), OMNIQ_OK);
}

static void test_open_refuses_another_format_and_changes_nothing(void **state) {
  th_be_t *f = *state;
  char path[2048];
  th_be_close(f);
  snprintf(path, sizeof path, "%s/newer", f->dir);
  assert_int_equal(mkdir(path, 0700), 0);
  th_be_plant(f, "newer/FORMAT", "omniq-file-store 3\n", 19);
  th_be_settings(f, "file", path, 1);
  assert_int_equal(th_be_open(f), OMNIQ_ECORRUPT);
  assert_non_null(strstr(f->err, "omniq-file-store 3"));
  assert_int_equal(th_be_count(f, "newer"), 1); /* only FORMAT: nothing created */
  th_be_settings(f, "file", f->dir, 1);
  assert_int_equal(th_be_open(f), OMNIQ_OK);
}

static void test_open_fails_clearly_on_a_read_only_base_dir(void **state) {
  th_be_t *f = *state;
  char path[2048];
  if (geteuid() == 0) skip(); /* root writes through any mode bits */
  th_be_close(f);
  snprintf(path, sizeof path, "%s/ro", f->dir);
  assert_int_equal(mkdir(path, 0500), 0);
  th_be_settings(f, "file", path, 1);
  assert_int_not_equal(th_be_open(f), OMNIQ_OK);
  assert_non_null(strstr(f->err, "not writable"));
  chmod(path, 0700);
  th_be_settings(f, "file", f->dir, 1);
  assert_int_equal(th_be_open(f), OMNIQ_OK);
}

/* A claimer that died between its rename and its rewrite left a PENDING
 * file in running/: it is not a claim (no attempt counted), and the task
 * goes back to pending/. */
static void test_claim_interrupted_after_rename_goes_back_to_pending(void **state) {
  th_be_t *f = *state;
  char id[OMNIQ_ID_SIZE], name[OMNIQ__PNAME_SIZE], from[2048], to[2048];
  omniq_task_t **got, *t;
  omniq_task_t **lost;
  size_t nlost;
  th_be_add(f, NULL, 0, th_be_now(f), id);
  omniq__fname_pending(omniq__fname_iprio(0), th_be_now(f), id, name);
  snprintf(from, sizeof from, "%s/queue/pending/default/%s", f->dir, name);
  snprintf(to, sizeof to, "%s/queue/running/%s.json", f->dir, id);
  assert_int_equal(rename(from, to), 0);

  /* Another claimer loses the rename and moves on. */
  assert_int_equal(th_be_claim(f, 1, &got), 0);
  /* The reaper's pass finishes the interrupted step and reports nothing. */
  assert_int_equal(f->ops->expired_leases(f->b, th_be_now(f) + 1000000, 10, &lost, &nlost, f->err,
                                          sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(nlost, 0);
  assert_false(th_be_has(f, "queue/running", id));
  assert_int_equal(th_be_count(f, "queue/pending/default"), 1);
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->attempts, 0);
  omniq_task_free(t);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  assert_int_equal(got[0]->attempts, 1);
  assert_int_equal(got[0]->token, 1);
  omniq__tasks_free(got, 1);

  /* Same window, found by a lookup and by open instead of the reaper. */
  th_be_add(f, NULL, 0, th_be_now(f), id);
  omniq__fname_pending(omniq__fname_iprio(0), th_be_now(f), id, name);
  snprintf(from, sizeof from, "%s/queue/pending/default/%s", f->dir, name);
  snprintf(to, sizeof to, "%s/queue/running/%s.json", f->dir, id);
  assert_int_equal(rename(from, to), 0);
  assert_int_equal(f->ops->get_task(f->b, id, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  omniq_task_free(t);
  assert_false(th_be_has(f, "queue/running", id));
  assert_int_equal(rename(from, to), 0);
  th_be_reopen(f);
  assert_false(th_be_has(f, "queue/running", id));
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  assert_string_equal(got[0]->id, id);
  assert_int_equal(got[0]->attempts, 1);
  omniq__tasks_free(got, 1);
}

/* A transition committed in the slot but not finished (result not yet
 * published, file not yet moved) is rolled forward. */
static void test_committed_transition_is_finished_after_a_crash(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got;
  char path[2048], rel[256];
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 2, &got), 2);

  /* Task 0: SUCCESS with its result, stopped right after the commit. */
  omniq_result_t *r = th_be_result(got[0]->id, OMNIQ_SUCCESS, th_be_now(f));
  got[0]->status = OMNIQ_SUCCESS;
  snprintf(rel, sizeof rel, "%s.json", got[0]->id);
  write_record(f, "queue/running", rel, got[0], r);
  /* The slot's bytes are the file format stores already hold: the task's
   * JSON opened up before its last brace, the result under commit_result. */
  char *tj = omniq_task_to_json(got[0]), *rj = omniq_result_to_json(r), *want = NULL;
  assert_true(asprintf(&want, "%.*s,\"commit_result\":%s}\n", (int)strlen(tj) - 1, tj, rj) > 0);
  snprintf(path, sizeof path, "queue/running/%s.json", got[0]->id);
  char *slot = read_text(f, path);
  assert_string_equal(slot, want);
  free(slot);
  free(want);
  omniq__free(tj);
  /* Task 1: a retry (PENDING, later eta) stopped before its move. */
  got[1]->status = OMNIQ_PENDING;
  got[1]->eta_ms = th_be_now(f) + 500;
  snprintf(rel, sizeof rel, "%s.json", got[1]->id);
  write_record(f, "queue/running", rel, got[1], NULL);

  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "queue/running"), 0);
  assert_true(th_be_has(f, "queue/success", got[0]->id));
  omniq_result_t *back = NULL;
  assert_int_equal(f->ops->get_result(f->b, got[0]->id, &back, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(back->status, OMNIQ_SUCCESS);
  assert_string_equal(back->value, "42");
  /* The result file is the same result JSON, on a line of its own. */
  snprintf(path, sizeof path, "results/%s.json", got[0]->id);
  char *rtext = read_text(f, path);
  assert_int_equal(strlen(rtext), strlen(rj) + 1);
  assert_memory_equal(rtext, rj, strlen(rj));
  assert_int_equal(rtext[strlen(rj)], '\n');
  free(rtext);
  omniq__free(rj);
  char name[OMNIQ__PNAME_SIZE];
  omniq__fname_pending(omniq__fname_iprio(0), th_be_now(f) + 500, got[1]->id, name);
  snprintf(path, sizeof path, "queue/pending/default/%s", name);
  char only[256];
  th_be_only_name(f, "queue/pending/default", only);
  assert_string_equal(only, name);
  omniq_result_free(back);
  omniq_result_free(r);
  omniq__tasks_free(got, 2);
}

static void test_each_transition_leaves_one_file_per_task(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got, *t;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE];
  omniq_task_error_t *e = omniq_task_error_new("Boom", "bad", th_be_now(f), NULL, 1, 1);
  th_be_add(f, NULL, 0, th_be_now(f), a);
  th_be_add(f, NULL, 0, th_be_now(f), b);
  assert_int_equal(th_be_claim(f, 1, &got), 1);

  /* Retry: back to pending with the error, in one step. */
  omniq_decision_t o = decision(got[0], OMNIQ_PENDING, th_be_now(f) + 100, NULL, e);
  assert_int_equal(th_be_finish(f, &o), OMNIQ_OK);
  assert_int_equal(th_be_finish(f, &o), OMNIQ_ESTATE);
  assert_int_equal(f->ops->get_task(f->b, a, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->eta_ms, th_be_now(f) + 100);
  assert_string_equal(t->last_error->error_type, "Boom");
  omniq_task_free(t);
  assert_int_equal(th_be_count(f, "queue/running"), 0);
  assert_int_equal(th_be_count(f, "queue/pending/default"), 2);
  omniq__tasks_free(got, 1);

  /* Interval re-arm: result stored, back to pending, attempts reset. */
  th_clock_advance(&f->clock, 100);
  assert_int_equal(th_be_claim(f, 2, &got), 2);
  assert_string_equal(got[1]->id, a);
  assert_int_equal(got[1]->attempts, 2);
  omniq_result_t *r = th_be_result(a, OMNIQ_SUCCESS, th_be_now(f));
  o = decision(got[1], OMNIQ_PENDING, th_be_now(f) + 1000, r, NULL);
  o.reset_attempts = 1;
  assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(th_be_has(f, "results", a));
  assert_int_equal(f->ops->get_task(f->b, a, &t, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(t->status, OMNIQ_PENDING);
  assert_int_equal(t->attempts, 0);
  omniq_task_free(t);
  omniq_result_free(r);

  /* Stale tokens change nothing; extend needs the current one. */
  assert_int_equal(f->ops->extend_lease(f->b, b, got[0]->token + 1, 0, f->err, sizeof f->err),
                   OMNIQ_ESTATE);
  assert_int_equal(f->ops->extend_lease(f->b, b, got[0]->token, th_be_now(f) + 99, f->err,
                                        sizeof f->err),
                   OMNIQ_OK);
  /* Cancel while running: the late finish is refused. */
  int64_t now = th_be_now(f);
  assert_int_equal(f->ops->cancel(f->b, b, now, NULL, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(f->ops->cancel(f->b, b, now, NULL, f->err, sizeof f->err), OMNIQ_ESTATE);
  o = decision(got[0], OMNIQ_SUCCESS, 0, NULL, NULL);
  assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_ESTATE);
  assert_true(th_be_has(f, "queue/cancelled", b));
  /* Cancel while pending. */
  assert_int_equal(f->ops->cancel(f->b, a, now, NULL, f->err, sizeof f->err), OMNIQ_OK);
  assert_true(th_be_has(f, "queue/cancelled", a));

  assert_int_equal(th_be_count(f, "queue/pending/default"), 0);
  assert_int_equal(th_be_count(f, "queue/running"), 0);
  assert_int_equal(th_be_count(f, "queue/cancelled"), 2);
  char unknown[OMNIQ_ID_SIZE];
  omniq__id_new(th_be_now(f), unknown);
  o.id = unknown;
  assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_ENOTFOUND);
  assert_int_equal(f->ops->cancel(f->b, unknown, 0, NULL, f->err, sizeof f->err),
                   OMNIQ_ENOTFOUND);
  omniq_task_error_free(e);
  omniq__tasks_free(got, 2);
}

static void test_enqueue_many_is_all_or_none(void **state) {
  th_be_t *f = *state;
  omniq_task_t *batch[3];
  char existing[OMNIQ_ID_SIZE];
  th_be_add(f, NULL, 0, th_be_now(f), existing);
  for (int i = 0; i < 3; i++) batch[i] = th_be_task(f, i == 1 ? "other" : NULL, 0, th_be_now(f));
  memcpy(batch[2]->id, existing, OMNIQ_ID_SIZE);
  assert_int_not_equal(f->ops->enqueue(f->b, batch, 3, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(th_be_count(f, "queue/pending/default"), 1);
  assert_true(th_be_count(f, "queue/pending/other") <= 0);
  assert_int_equal(th_be_count(f, "tmp"), 0);
  memcpy(batch[2]->id, batch[0]->id, OMNIQ_ID_SIZE); /* twice in one batch */
  assert_int_equal(f->ops->enqueue(f->b, batch, 3, f->err, sizeof f->err), OMNIQ_EINVAL);
  omniq__id_new(th_be_now(f), batch[2]->id);
  assert_int_equal(f->ops->enqueue(f->b, batch, 3, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(th_be_count(f, "queue/pending/default"), 3);
  assert_int_equal(th_be_count(f, "queue/pending/other"), 1);
  for (int i = 0; i < 3; i++) omniq_task_free(batch[i]);
}

/* Two backends on one directory: what one enqueues, the other claims
 * through the journal, without listing the folders again. */
static void test_other_backend_learns_new_tasks_from_the_journal(void **state) {
  th_be_t *f = *state;
  th_be_t *g = th_be_beside(f);
  omniq_task_t **got;
  char id[OMNIQ_ID_SIZE];
  omniq__fs_t *gfs = g->b;
  unsigned long scans = omniq__fidx_scans(gfs->idx);

  th_be_add(f, NULL, 0, th_be_now(f), id);
  assert_int_equal(th_be_claim(g, 5, &got), 1);
  assert_string_equal(got[0]->id, id);
  assert_int_equal(omniq__fidx_scans(gfs->idx), scans);
  /* g's retry reaches f the same way. */
  omniq_decision_t o = decision(got[0], OMNIQ_PENDING, th_be_now(f), NULL, NULL);
  assert_int_equal(th_be_finish(g, &o), OMNIQ_OK);
  omniq__tasks_free(got, 1);
  assert_int_equal(th_be_claim(f, 5, &got), 1);
  assert_int_equal(got[0]->attempts, 2);
  omniq__tasks_free(got, 1);

  /* Rotation: readers notice the new journal, rescan, and miss nothing. */
  long saved = omniq__fjournal_rotate_bytes;
  omniq__fjournal_rotate_bytes = 300;
  for (int i = 0; i < 40; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  size_t total = 0, n;
  while ((n = th_be_claim(g, 7, &got)) > 0) {
    total += n;
    omniq__tasks_free(got, n);
  }
  assert_int_equal(total, 40);
  assert_true(omniq__fidx_scans(gfs->idx) > scans);
  omniq__fjournal_rotate_bytes = saved;
  th_be_free(g);
}

static void test_purge_deletes_only_older_results(void **state) {
  th_be_t *f = *state;
  omniq_task_t **got;
  int64_t purged = -1;
  for (int i = 0; i < 3; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 3, &got), 3);
  for (int i = 0; i < 3; i++) {
    omniq_result_t *r = th_be_result(got[i]->id, OMNIQ_SUCCESS, th_be_now(f) + i * 10);
    omniq_decision_t o = decision(got[i], OMNIQ_SUCCESS, 0, r, NULL);
    assert_int_equal(f->ops->finish(f->b, &o, f->err, sizeof f->err), OMNIQ_OK);
    omniq_result_free(r);
  }
  assert_int_equal(f->ops->purge_results(f->b, th_be_now(f) + 15, &purged, f->err, sizeof f->err),
                   OMNIQ_OK);
  assert_int_equal(purged, 2);
  assert_int_equal(th_be_count(f, "results"), 1);
  assert_true(th_be_has(f, "results", got[2]->id));
  omniq__tasks_free(got, 3);
}

/* The Nth allocation failing: each call either does all of its work or
 * none, and reports OMNIQ_ENOMEM. */
static void test_out_of_memory_leaves_every_task_whole(void **state) {
  th_be_t *f = *state;
  int stored = 0, failed = 0;
  for (long n = 0; n < 40; n++) {
    omniq_task_t *t = th_be_task(f, n % 2 ? "q2" : NULL, 0, th_be_now(f));
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
  assert_int_equal(th_be_count(f, "queue/pending/default") + th_be_count(f, "queue/pending/q2"), stored);
  assert_int_equal(th_be_count(f, "tmp"), 0);

  /* Claim: a failed claim leaves the task pending with no attempt. */
  static const char *const q[] = {OMNIQ_DEFAULT_QUEUE};
  omniq_task_t **got = NULL, *t = NULL;
  size_t n = 0;
  for (long k = 0; n == 0; k++) {
    omniq_claim_req_t req = {th_be_now(f), th_be_now(f) + 30000, q, 1, 1};
    omniq__alloc_fail_after(k);
    int rc = f->ops->claim(f->b, &req, &got, &n, f->err, sizeof f->err);
    omniq__alloc_fail_after(-1);
    assert_true(rc == OMNIQ_OK || rc == OMNIQ_ENOMEM);
    assert_int_equal(th_be_count(f, "queue/running"), (int)n);
  }
  assert_int_equal(got[0]->attempts, 1);

  /* Complete: RUNNING until the call succeeds, then SUCCESS with its result. */
  omniq_result_t *r = th_be_result(got[0]->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t o = decision(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  for (long k = 0;; k++) {
    omniq__alloc_fail_after(k);
    int rc = f->ops->finish(f->b, &o, f->err, sizeof f->err);
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
  th_be_t *f = *state;
  omniq_task_t *t = th_be_task(f, NULL, 0, th_be_now(f));
  omniq__free(t->args);
  t->args = omniq__strdup("[\"\xff\xfe\"]");
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_ESERIALIZE);
  assert_non_null(strstr(f->err, "UTF-8"));
  assert_true(th_be_count(f, "queue/pending/default") <= 0);
  assert_int_equal(th_be_count(f, "tmp"), 0);
  omniq__free(t->args);
  t->args = omniq__strdup("[\"\xc3\xa9t\xc3\xa9\"]"); /* "été" */
  assert_int_equal(f->ops->enqueue(f->b, &t, 1, f->err, sizeof f->err), OMNIQ_OK);
  omniq_task_free(t);
}

/* ---- inodes a task's life frees -------------------------------------------- */

/* A file's identity: its inode number and, where the file system keeps
 * one, the inode's generation (which changes when a freed number is
 * used again). */
typedef struct inode_id {
  unsigned long long ino;
  unsigned gen;
} inode_id_t;

static struct {
  inode_id_t *v;
  size_t n, cap;
} seen;

static int collect_file(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)ftw;
  if (flag != FTW_F || !S_ISREG(st->st_mode)) return 0;
  inode_id_t id = {(unsigned long long)st->st_ino, 0};
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) {
    unsigned gen = 0;
    if (ioctl(fd, FS_IOC_GETVERSION, &gen) == 0) id.gen = gen;
    close(fd);
  }
  if (seen.n == seen.cap) {
    seen.cap = seen.cap ? seen.cap * 2 : 256;
    seen.v = realloc(seen.v, seen.cap * sizeof *seen.v);
    assert_non_null(seen.v);
  }
  seen.v[seen.n++] = id;
  return 0;
}

static int cmp_inode(const void *a, const void *b) {
  const inode_id_t *x = a, *y = b;
  if (x->ino != y->ino) return x->ino < y->ino ? -1 : 1;
  return x->gen < y->gen ? -1 : x->gen > y->gen;
}

/* Every regular file's identity under dir, sorted; *n of them (yours). */
static inode_id_t *store_inodes(const char *dir, size_t *n) {
  seen.v = NULL;
  seen.n = seen.cap = 0;
  assert_int_equal(nftw(dir, collect_file, 16, FTW_PHYS), 0);
  qsort(seen.v, seen.n, sizeof *seen.v, cmp_inode);
  *n = seen.n;
  return seen.v;
}

/* How many of before[] are not in after[] (both sorted): files freed. */
static size_t gone(const inode_id_t *before, size_t nb, const inode_id_t *after, size_t na) {
  size_t k = 0, j = 0;
  for (size_t i = 0; i < nb; i++) {
    while (j < na && cmp_inode(&after[j], &before[i]) < 0) j++;
    if (j == na || cmp_inode(&after[j], &before[i]) != 0) k++;
  }
  return k;
}

/* Files seen before the latest step, and how many of them went away. */
typedef struct watch {
  const char *dir;
  inode_id_t *before;
  size_t nb, freed;
} watch_t;

/* Looks at the store after a step: counts the files gone since the last. */
static void step_done(watch_t *w) {
  size_t na;
  inode_id_t *after = store_inodes(w->dir, &na);
  if (w->before != NULL) w->freed += gone(w->before, w->nb, after, na);
  free(w->before);
  w->before = after;
  w->nb = na;
}

/* One task's whole life, the store looked at after each step: enqueued,
 * claimed, finished with a result. */
static void one_life(th_be_t *f, watch_t *w) {
  omniq_task_t **got;
  th_be_add(f, NULL, 0, th_be_now(f), NULL);
  step_done(w);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  step_done(w);
  omniq_result_t *r = th_be_result(got[0]->id, OMNIQ_SUCCESS, th_be_now(f));
  omniq_decision_t d = decision(got[0], OMNIQ_SUCCESS, 0, r, NULL);
  assert_int_equal(th_be_finish(f, &d), OMNIQ_OK);
  step_done(w);
  omniq_result_free(r);
  omniq__tasks_free(got, 1);
}

/* The store's files, looked at after every step of a task's life: once
 * warm, no file that was there goes away (its inode freed), and markers
 * make no file of their own. Each rewrite of a task's slot keeps the
 * replaced file as a spare in tmp/, and the next write reuses a spare.
 * Before, every claim, finish and count freed the file it replaced: three
 * inodes per task; then the handle's totals file alone, one per batch of
 * finishes, until its two files took turns (totals.c). */
static void lives_free_no_files(th_be_t *f) {
  watch_t w = {f->dir, NULL, 0, 0};
  for (int i = 0; i < 4; i++) one_life(f, &w); /* warm-up: the first spares, the stats file */
  w.freed = 0;
  for (int i = 0; i < 30; i++) one_life(f, &w);
  free(w.before);
  assert_int_equal(w.freed, 0);
  int64_t counts[OMNIQ_STATUS_COUNT];
  assert_int_equal(f->ops->count_by_status(f->b, counts, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(counts[OMNIQ_SUCCESS], 34);

  /* The listing markers (two a task) are links to one empty file: index/
   * holds that file and READY, whatever the number of tasks. */
  char index[2048];
  size_t n, distinct = 0;
  snprintf(index, sizeof index, "%s/index", f->dir);
  inode_id_t *marks = store_inodes(index, &n);
  for (size_t i = 0; i < n; i++) distinct += i == 0 || cmp_inode(&marks[i - 1], &marks[i]) != 0;
  free(marks);
  assert_true(n >= 2 * 34);
  assert_int_equal(distinct, 2);
}

/* With fsync on, spares wait for a sync of tmp/ before reuse (spares.c):
 * still none is freed. */
static void test_task_lives_free_no_files_once_warm(void **state) {
  lives_free_no_files(*state);
}

static void test_task_lives_free_no_files_with_fsync_off(void **state) {
  th_be_t *f = th_be_new("file", 0);
  (void)state;
  lives_free_no_files(f);
  th_be_free(f);
}

/* Counts the syncs of tmp/ among the group sync's rounds (and syncs
 * nothing: durability itself is not under test here, the order is). */
typedef struct tmp_syncs {
  int tmp_fd, n;
} tmp_syncs_t;

static int count_tmp_syncs(const omniq__fsync_item_t *items, size_t n, void *ud) {
  tmp_syncs_t *t = ud;
  for (size_t i = 0; i < n; i++) t->n += items[i].dir && items[i].fd == t->tmp_fd;
  return 0;
}

/* The text of the file in f->dir/tmp whose inode is ino, or NULL when
 * tmp/ holds none (yours: free). */
static char *tmp_text_of(const th_be_t *f, ino_t ino) {
  char path[2048], *text = NULL;
  snprintf(path, sizeof path, "%s/tmp", f->dir);
  DIR *d = opendir(path);
  struct dirent *de;
  assert_non_null(d);
  while (text == NULL && (de = readdir(d)) != NULL) {
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, 0) != 0 || st.st_ino != ino) continue;
    snprintf(path, sizeof path, "tmp/%s", de->d_name);
    text = st.st_size > 0 ? read_text(f, path) : omniq__strdup("");
  }
  closedir(d);
  return text;
}

/* What the sync rounds of an enqueue_many held: the most data files (not
 * folders) in one round, and how many tasks were in pending/ then. */
typedef struct data_rounds {
  const th_be_t *f;
  size_t most;
  int pending_then;
} data_rounds_t;

static int count_data_round(const omniq__fsync_item_t *items, size_t n, void *ud) {
  data_rounds_t *r = ud;
  size_t data = 0;
  for (size_t i = 0; i < n; i++) data += !items[i].dir;
  if (data > r->most) {
    r->most = data;
    r->pending_then = th_be_count(r->f, "queue/pending/default");
  }
  for (size_t i = 0; i < n; i++)
    if ((items[i].dir ? fsync(items[i].fd) : fdatasync(items[i].fd)) != 0) return errno;
  return 0;
}

/* With fsync on, an enqueue of many syncs the data of all its files in
 * one group round, before any of them is placed, not one wait per file. */
static void test_enqueue_many_syncs_every_file_in_one_round(void **state) {
  th_be_t *f = *state;
  omniq__fs_t *fs = f->b;
  enum { N = 12 };
  omniq_task_t *batch[N];
  data_rounds_t r = {f, 0, -1};
  for (int i = 0; i < N; i++) batch[i] = th_be_task(f, NULL, 0, th_be_now(f));
  omniq__fsyncq_set_fn(fs->io.syncq, count_data_round, &r);
  assert_int_equal(f->ops->enqueue(f->b, batch, N, f->err, sizeof f->err), OMNIQ_OK);
  omniq__fsyncq_set_fn(fs->io.syncq, NULL, NULL);
  assert_int_equal(r.most, N);
  assert_true(r.pending_then <= 0);
  assert_int_equal(th_be_count(f, "queue/pending/default"), N);
  for (int i = 0; i < N; i++) omniq_task_free(batch[i]);
}

/* A batch larger than OMNIQ__FS_HELD_MAX holds at most that many files
 * open for a round, and every task of it is enqueued. */
static void test_enqueue_many_holds_a_bounded_number_of_files(void **state) {
  th_be_t *f = *state;
  omniq__fs_t *fs = f->b;
  enum { N = OMNIQ__FS_HELD_MAX + 20 };
  omniq_task_t **batch = calloc(N, sizeof *batch);
  data_rounds_t r = {f, 0, -1};
  assert_non_null(batch);
  for (int i = 0; i < N; i++) batch[i] = th_be_task(f, NULL, 0, th_be_now(f));
  omniq__fsyncq_set_fn(fs->io.syncq, count_data_round, &r);
  assert_int_equal(f->ops->enqueue(f->b, batch, N, f->err, sizeof f->err), OMNIQ_OK);
  omniq__fsyncq_set_fn(fs->io.syncq, NULL, NULL);
  assert_int_equal(r.most, OMNIQ__FS_HELD_MAX);
  assert_int_equal(th_be_count(f, "queue/pending/default"), N);
  for (int i = 0; i < N; i++) omniq_task_free(batch[i]);
  free(batch);
}

/* An enqueue of many stages in its batch's folder, never in a spare (a
 * file in tmp/ kept for reuse): a spare it took would drop out of the
 * pool and stay in tmp/ for the backend's life. (fsync off: spares are
 * ready at once.) */
static void test_enqueue_many_loses_no_spare(void **state) {
  th_be_t *f = th_be_new("file", 0);
  omniq__fs_t *fs = f->b;
  omniq_task_t *batch[4];
  char name[OMNIQ__TMP_NAME_SIZE];
  (void)state;
  for (int i = 0; i < 3; i++) { /* as a finish's exchange leaves them */
    snprintf(name, sizeof name, "%ld-spare%d.tmp", (long)getpid(), i);
    int fd = openat(fs->tmp_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(omniq__spares_put(fs->io.spares, name), 1);
  }
  for (int i = 0; i < 4; i++) batch[i] = th_be_task(f, NULL, 0, th_be_now(f));
  assert_int_equal(f->ops->enqueue(f->b, batch, 4, f->err, sizeof f->err), OMNIQ_OK);
  assert_int_equal(th_be_count(f, "tmp"), fs->io.spares->n); /* each file there is a spare */
  for (int i = 0; i < 4; i++) omniq_task_free(batch[i]);
  th_be_free(f);
}

/* With fsync on, the file a claim's rewrite replaced (the task's pending
 * file) is written over only after a sync of tmp/ that began after the
 * exchange: a power loss cannot leave the task's old name on a file that
 * holds another task's bytes (spares.c). */
static void test_a_spare_is_written_over_only_after_tmp_is_synced(void **state) {
  th_be_t *f = *state;
  omniq__fs_t *fs = f->b;
  omniq_task_t **got;
  char id[OMNIQ_ID_SIZE], path[2048];
  tmp_syncs_t ts = {fs->tmp_fd, 0};
  watch_t w = {f->dir, NULL, 0, 0};
  one_life(f, &w);
  free(w.before);
  omniq__fsyncq_set_fn(fs->io.syncq, count_tmp_syncs, &ts);
  th_be_add(f, NULL, 0, th_be_now(f), id);
  omniq__pending_t p;
  assert_int_equal(omniq__fidx_find(fs->idx, id, 0, &p), 1);
  snprintf(path, sizeof path, "%s/queue/pending/default/%s", f->dir, p.name);
  struct stat st;
  assert_int_equal(stat(path, &st), 0);
  char *pending = read_text(f, path + strlen(f->dir) + 1);
  assert_int_equal(th_be_claim(f, 1, &got), 1);
  assert_string_equal(got[0]->id, id);
  int synced_before = ts.n, written_over = 0;
  char *kept = tmp_text_of(f, st.st_ino);
  assert_non_null(kept); /* the claim kept it as a spare */
  assert_string_equal(kept, pending);
  free(kept);
  w = (watch_t){f->dir, NULL, 0, 0};
  for (int i = 0; i < 40 && !written_over; i++) {
    one_life(f, &w);
    kept = tmp_text_of(f, st.st_ino);
    written_over = kept == NULL || strcmp(kept, pending) != 0;
    if (written_over) assert_true(ts.n > synced_before);
    free(kept);
  }
  free(w.before);
  assert_true(written_over); /* it was reused in the end */
  free(pending);
  omniq__tasks_free(got, 1);
}

static void test_fsync_off_keeps_the_same_layout(void **state) {
  th_be_t *f = th_be_new("file", 0);
  omniq_task_t **got;
  (void)state;
  for (int i = 0; i < 3; i++) th_be_add(f, NULL, 0, th_be_now(f), NULL);
  assert_int_equal(th_be_claim(f, 2, &got), 2);
  assert_int_equal(th_be_count(f, "queue/running"), 2);
  assert_true(th_be_count(f, "tmp") <= OMNIQ__SPARES_MAX);
  th_be_reopen(f);
  assert_int_equal(th_be_count(f, "tmp"), 0);
  omniq__tasks_free(got, 2);
  th_be_free(f);
}

/* What another thread of the process tries while a set holds its locks. */
typedef struct other_try {
  omniq__flock_t *locks;
  const char *id;
  int got;
} other_try_t;

static void *try_other(void *arg) {
  other_try_t *o = arg;
  o->got = omniq__flock_try(o->locks, o->id);
  if (o->got) omniq__flock_release(o->locks, o->id);
  return NULL;
}

/* Two ids whose stripes differ from each other and from third's. */
static void ids_on_other_stripes(th_be_t *f, char a[OMNIQ_ID_SIZE], char b[OMNIQ_ID_SIZE],
                                 char c[OMNIQ_ID_SIZE]) {
  omniq__id_new(th_be_now(f), a);
  do omniq__id_new(th_be_now(f), b);
  while (omniq__flock_stripe(b) == omniq__flock_stripe(a));
  do omniq__id_new(th_be_now(f), c);
  while (omniq__flock_stripe(c) == omniq__flock_stripe(a) ||
         omniq__flock_stripe(c) == omniq__flock_stripe(b));
}

/* A small set of task locks (a pool's batch of outcomes) keeps the other
 * threads of its process off its own stripes only: a claim of another
 * task goes on meanwhile. A large set (an enqueue of many) still keeps
 * them off every task lock. */
static void test_a_small_lock_set_leaves_other_tasks_free(void **state) {
  th_be_t *f = *state;
  omniq__fs_t *fs = f->b;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], c[OMNIQ_ID_SIZE];
  ids_on_other_stripes(f, a, b, c);
  const char *two[] = {a, b};
  uint16_t *set = NULL;
  size_t nset = 0;
  pthread_t th;
  assert_int_equal(omniq__flock_take_set(&fs->locks, two, 2, &set, &nset, f->err, sizeof f->err),
                   OMNIQ_OK);
  other_try_t other = {&fs->locks, c, 0}, same = {&fs->locks, b, 1};
  assert_int_equal(pthread_create(&th, NULL, try_other, &other), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  assert_int_equal(pthread_create(&th, NULL, try_other, &same), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  omniq__flock_release_set(&fs->locks, set, nset);
  assert_true(other.got);  /* another stripe: free */
  assert_false(same.got);  /* a stripe of the set: held */

  enum { LARGE = OMNIQ__FLOCK_SMALL_SET + 1 };
  char many[LARGE][OMNIQ_ID_SIZE];
  const char *ptrs[LARGE];
  size_t k = 0;
  while (k < LARGE) { /* LARGE distinct stripes, none of them c's */
    omniq__id_new(th_be_now(f), many[k]);
    int fresh = omniq__flock_stripe(many[k]) != omniq__flock_stripe(c);
    for (size_t j = 0; j < k && fresh; j++)
      fresh = omniq__flock_stripe(many[j]) != omniq__flock_stripe(many[k]);
    if (fresh) ptrs[k] = many[k], k++;
  }
  assert_int_equal(
      omniq__flock_take_set(&fs->locks, ptrs, LARGE, &set, &nset, f->err, sizeof f->err),
      OMNIQ_OK);
  other.got = 1;
  assert_int_equal(pthread_create(&th, NULL, try_other, &other), 0);
  assert_int_equal(pthread_join(th, NULL), 0);
  omniq__flock_release_set(&fs->locks, set, nset);
  assert_false(other.got);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_layout_shows_each_state_in_its_folder, setup, teardown),
      cmocka_unit_test_setup_teardown(test_a_small_lock_set_leaves_other_tasks_free, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_pending_names_sort_in_claim_order, setup, teardown),
      cmocka_unit_test(test_names_are_the_printf_forms),
      cmocka_unit_test_setup_teardown(test_writes_leave_no_tmp_files, setup, teardown),
      cmocka_unit_test_setup_teardown(test_open_keeps_the_batch_folder_of_a_live_handle, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(
          test_open_in_another_pid_namespace_keeps_a_live_handles_spares, setup, teardown),
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
      cmocka_unit_test_setup_teardown(test_task_lives_free_no_files_once_warm, setup, teardown),
      cmocka_unit_test(test_task_lives_free_no_files_with_fsync_off),
      cmocka_unit_test_setup_teardown(test_a_spare_is_written_over_only_after_tmp_is_synced,
                                      setup, teardown),
      cmocka_unit_test(test_fsync_off_keeps_the_same_layout),
      cmocka_unit_test_setup_teardown(test_enqueue_many_syncs_every_file_in_one_round, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_enqueue_many_holds_a_bounded_number_of_files, setup,
                                      teardown),
      cmocka_unit_test(test_enqueue_many_loses_no_spare),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
