/* SPDX-License-Identifier: MIT */
/* Faults through the public API, on each backend (argv[1], "sqlite" by
 * default): a full disk, a locked database, the Nth allocation failing while
 * a worker claims or finishes. Each fault must give a clear code and message
 * and lose nothing stored before it (DESIGN §7).
 *
 * A full disk is simulated with RLIMIT_FSIZE in a forked child, so nothing
 * is mounted and the limit cannot leak into other tests: past the limit
 * write(2) fails with EFBIG (SIGXFSZ is ignored, or it would kill the
 * child). The child reports through a pipe; the parent, without the limit,
 * reopens the store and checks what it holds. The child uses no cmocka
 * assertions: a failed one would unwind into the parent's copy of the test
 * runner. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include <unistd.h>

#include <sqlite3.h>

#include "support/helpers.h"
#include "support/gate.h"
#include "worker/job.h"
#include "base/alloc.h"
#include "base/records.h"
#include "core/engine.h"
#include "storage/sqlite/backend.h"

/* The backend under test: argv[1], "sqlite" by default. */
static const char *backend = "sqlite";

typedef th_store_t fx_t;

#define MSG_MAX 512

/* ---- helpers --------------------------------------------------------------- */

static void quiet_log(void *userdata, int level, const char *line) {
  (void)userdata;
  (void)level;
  (void)line;
}

/* Closes the handle and opens it again with fx->settings: for settings and
 * test hooks that only apply to a fresh open. */
static void reopen(fx_t *fx) {
  omniq_close(fx->oq);
  fx->oq = NULL;
  if (omniq_open(&fx->oq, &fx->settings) != OMNIQ_OK)
    fail_msg("reopen: %s", omniq_errmsg(NULL));
}

static void enqueue(fx_t *fx, const char *args, char id[OMNIQ_ID_SIZE]) {
  th_ok(fx->oq, omniq_enqueue(fx->oq, "work", args, NULL, NULL, id));
}

static int status_of(omniq_t *oq, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(oq, omniq_get_task(oq, id, &t));
  int s = omniq_task_status(t);
  omniq_task_free(t);
  return s;
}

static int64_t total_tasks(omniq_t *oq) {
  int64_t c[OMNIQ_STATUS_COUNT], sum = 0;
  th_ok(oq, omniq_count_by_status(oq, c));
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) sum += c[i];
  return sum;
}

static int work(omniq_job_t *job, void *userdata) {
  (void)userdata;
  /* Under an allocation failure the copy of the value may fail: report it
   * as the run's failure rather than succeeding without the value. */
  return omniq_job_return(job, "42");
}

/* Runs one drain pass of a single-threaded worker; returns its code. */
static int process(fx_t *fx, long limit, long *done) {
  omniq_worker_opts_t wo;
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  return omniq_worker_process(fx->oq, &wo, limit, done);
}

/* Undoes the process-wide test hooks even when a test fails part-way. */
static int teardown(void **state) {
  omniq__alloc_fail_after(-1);
  omniq__sqlite_set_busy_timeout(OMNIQ__SQLITE_BUSY_MS);
  int rc = th_store_teardown(state);
  th_pool_clock_thaw();
  return rc;
}

/* ---- full disk --------------------------------------------------------------- */

/* What the child saw, sent whole through the pipe. */
typedef struct disk_report {
  int stage;      /* how far the child got; DONE when it finished */
  int open_rc;
  int big_rc;     /* the enqueue that needs more room than the limit allows */
  char big_msg[MSG_MAX];
  int small_rc;   /* a small enqueue that still fits */
  int cancel_rc;  /* a cancel once not one more byte fits */
  char cancel_msg[MSG_MAX];
  int read_rc;    /* count_by_status, get_task, get_result under the limit */
  int64_t counts[OMNIQ_STATUS_COUNT];
  int kept[3];    /* status of each task stored before the limit */
  char value[16]; /* the stored result of the finished one */
} disk_report_t;

enum { STAGE_DONE = 100 };

/* The size of the largest file under dir (recursively). */
static off_t largest_file(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *de;
  off_t max = 0;
  if (d == NULL) return 0;
  while ((de = readdir(d)) != NULL) {
    char path[OMNIQ_PATH_MAX + 256];
    struct stat st;
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (lstat(path, &st) != 0) continue;
    off_t n = S_ISDIR(st.st_mode) ? largest_file(path) : st.st_size;
    if (n > max) max = n;
  }
  closedir(d);
  return max;
}

static void set_fsize_limit(rlim_t bytes) {
  struct rlimit rl;
  getrlimit(RLIMIT_FSIZE, &rl);
  rl.rlim_cur = bytes;
  setrlimit(RLIMIT_FSIZE, &rl);
}

/* A JSON array holding one string of n 'x's; yours (free). */
static char *big_args(size_t n) {
  char *s = malloc(n + 5);
  if (s == NULL) return NULL;
  memcpy(s, "[\"", 2);
  memset(s + 2, 'x', n);
  memcpy(s + 2 + n, "\"]", 3);
  return s;
}

/* The child's side: opens the store under a file-size limit and tries what
 * a full disk must refuse. Fills *r as it goes. */
static void disk_child(const fx_t *fx, char ids[3][OMNIQ_ID_SIZE], disk_report_t *r) {
  omniq_t *oq = NULL;
  omniq_task_t *t = NULL;
  omniq_result_t *res = NULL;
  signal(SIGXFSZ, SIG_IGN);
  r->stage = 1;
  if ((r->open_rc = omniq_open(&oq, &fx->settings)) != OMNIQ_OK) return;

  /* Room for every file as it is now plus a little, but not for a task
   * twice that size: the enqueue must be refused part-way through a write. */
  rlim_t limit = (rlim_t)largest_file(fx->dir) + 64 * 1024;
  char *args = big_args(2 * (size_t)limit);
  set_fsize_limit(limit);
  r->stage = 2;
  r->big_rc = args != NULL ? omniq_enqueue(oq, "work", args, NULL, NULL, NULL) : -1000;
  snprintf(r->big_msg, sizeof r->big_msg, "%s", omniq_errmsg(oq));
  free(args);
  r->stage = 3;
  r->small_rc = omniq_enqueue(oq, "work", "[4]", NULL, NULL, NULL);

  /* Now not one more byte: even a small change must fail cleanly. */
  set_fsize_limit(1);
  r->stage = 4;
  r->cancel_rc = omniq_cancel(oq, ids[1]);
  snprintf(r->cancel_msg, sizeof r->cancel_msg, "%s", omniq_errmsg(oq));

  r->stage = 5;
  r->read_rc = omniq_count_by_status(oq, r->counts);
  for (int i = 0; i < 3 && r->read_rc == OMNIQ_OK; i++) {
    r->read_rc = omniq_get_task(oq, ids[i], &t);
    r->kept[i] = t != NULL ? omniq_task_status(t) : -1;
    omniq_task_free(t);
    t = NULL;
  }
  if (r->read_rc == OMNIQ_OK && (r->read_rc = omniq_get_result(oq, ids[0], 0, &res)) == OMNIQ_OK)
    snprintf(r->value, sizeof r->value, "%s", omniq_result_value(res));
  omniq_result_free(res);
  omniq_close(oq); /* under the limit still: closing must not harm the store */
  r->stage = STAGE_DONE;
}

static void test_full_disk_refuses_writes_and_keeps_every_stored_task(void **state) {
  fx_t *fx = *state;
  char ids[3][OMNIQ_ID_SIZE];
  disk_report_t r;
  int fds[2], status = 0;
  long done = 0;

  fx->settings.log_fn = quiet_log; /* the child's failures are expected */
  reopen(fx);
  th_ok(fx->oq, omniq_register(fx->oq, "work", work, NULL));
  for (int i = 0; i < 3; i++) enqueue(fx, "[1]", ids[i]);
  th_ok(fx->oq, process(fx, 1, &done)); /* ids[0] finishes with a result */
  assert_int_equal(done, 1);
  assert_int_equal(status_of(fx->oq, ids[0]), OMNIQ_SUCCESS);
  /* The child opens its own handle: an SQLite connection must not cross a
   * fork, and no thread of ours may be running when we fork. */
  omniq_close(fx->oq);
  fx->oq = NULL;

  assert_int_equal(pipe(fds), 0);
  fflush(NULL);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    memset(&r, 0, sizeof r);
    close(fds[0]);
    disk_child(fx, ids, &r);
    _exit(write(fds[1], &r, sizeof r) == (ssize_t)sizeof r ? 0 : 1);
  }
  close(fds[1]);
  memset(&r, 0, sizeof r);
  ssize_t got = read(fds[0], &r, sizeof r);
  close(fds[0]);
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != (ssize_t)sizeof r)
    fail_msg("child died or did not report (status %#x, %zd bytes)", status, got);

  assert_int_equal(r.stage, STAGE_DONE);
  assert_int_equal(r.open_rc, OMNIQ_OK);
  if (r.big_rc != OMNIQ_ENOSPC) fail_msg("big enqueue: %s: %s", omniq_err_name(r.big_rc), r.big_msg);
  assert_non_null(strstr(r.big_msg, "too large")); /* strerror(EFBIG) says why */
  th_ok(NULL, r.small_rc);
  if (r.cancel_rc != OMNIQ_ENOSPC)
    fail_msg("cancel: %s: %s", omniq_err_name(r.cancel_rc), r.cancel_msg);
  assert_string_not_equal(r.cancel_msg, "");
  th_ok(NULL, r.read_rc);
  assert_int_equal(r.counts[OMNIQ_SUCCESS], 1);
  assert_int_equal(r.counts[OMNIQ_PENDING], 3); /* ids[1], ids[2] and the small one */
  assert_int_equal(r.counts[OMNIQ_CANCELLED], 0);
  assert_int_equal(r.kept[0], OMNIQ_SUCCESS);
  assert_int_equal(r.kept[1], OMNIQ_PENDING);
  assert_int_equal(r.kept[2], OMNIQ_PENDING);
  assert_string_equal(r.value, "42");

  /* Without the limit the store holds the same, and takes writes again. */
  reopen(fx);
  th_ok(fx->oq, omniq_register(fx->oq, "work", work, NULL));
  assert_int_equal(total_tasks(fx->oq), 4);
  assert_int_equal(status_of(fx->oq, ids[0]), OMNIQ_SUCCESS);
  assert_int_equal(status_of(fx->oq, ids[1]), OMNIQ_PENDING);
  assert_int_equal(status_of(fx->oq, ids[2]), OMNIQ_PENDING);
  omniq_result_t *res = NULL;
  th_ok(fx->oq, omniq_get_result(fx->oq, ids[0], 0, &res));
  assert_string_equal(omniq_result_value(res), "42");
  omniq_result_free(res);
  th_ok(fx->oq, omniq_cancel(fx->oq, ids[1]));
  th_ok(fx->oq, process(fx, 0, &done));
  assert_int_equal(done, 2); /* ids[2] and the small one */
  assert_int_equal(status_of(fx->oq, ids[2]), OMNIQ_SUCCESS);
}

/* ---- locked database ------------------------------------------------------- */

static void test_locked_database_gives_busy_and_loses_nothing(void **state) {
  fx_t *fx = *state;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], path[OMNIQ_PATH_MAX + 16];
  sqlite3 *db = NULL;
  long done = -1;
  if (strcmp(backend, "sqlite") != 0) skip(); /* the file backend locks per task */

  /* Each refused call waits out the busy timeout once: keep it short. */
  omniq__sqlite_set_busy_timeout(50);
  reopen(fx);
  th_ok(fx->oq, omniq_register(fx->oq, "work", work, NULL));
  enqueue(fx, "[1]", a);

  snprintf(path, sizeof path, "%s/%s", fx->dir, OMNIQ_DEFAULT_DB_FILE);
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

  assert_int_equal(omniq_enqueue(fx->oq, "work", "[2]", NULL, NULL, b), OMNIQ_EBUSY);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "locked"));
  assert_int_equal(omniq_cancel(fx->oq, a), OMNIQ_EBUSY);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "locked"));
  assert_int_equal(process(fx, 1, &done), OMNIQ_EBUSY); /* the claim cannot take the lock */
  assert_int_equal(done, 0);
  /* WAL: reads go on beside the other writer. */
  assert_int_equal(total_tasks(fx->oq), 1);
  assert_int_equal(status_of(fx->oq, a), OMNIQ_PENDING);

  assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_close(db), SQLITE_OK);
  enqueue(fx, "[2]", b);
  th_ok(fx->oq, process(fx, 1, &done));
  assert_int_equal(done, 1);
  assert_int_equal(status_of(fx->oq, a), OMNIQ_SUCCESS);
  th_ok(fx->oq, omniq_cancel(fx->oq, b));
  assert_int_equal(total_tasks(fx->oq), 2);
}

/* ---- out of memory during a worker run ---------------------------------------- */

/* The engine's own claim and finish, as a worker calls them: each failed
 * call is OMNIQ_ENOMEM with a message and changes nothing. */
static void test_out_of_memory_in_claim_or_finish_changes_nothing(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE];
  omniq_task_t **tasks = NULL, *t = NULL;
  omniq_result_t *res = NULL;
  size_t n = 0;
  int failed = 0, rc;
  fx->settings.log_fn = quiet_log; /* unfinished steps are logged as errors */
  reopen(fx);
  enqueue(fx, "[1]", id);

  for (long k = 0; n == 0; k++) {
    assert_true(k < 1000);
    omniq__alloc_fail_after(k);
    rc = omniq__engine_claim(fx->oq, NULL, 0, 1, &tasks, &n);
    omniq__alloc_fail_after(-1);
    if (rc != OMNIQ_OK) {
      assert_int_equal(rc, OMNIQ_ENOMEM);
      assert_string_not_equal(omniq_errmsg(fx->oq), "");
      assert_null(tasks);
      failed++;
    } else if (n == 0) {
      fail_msg("claim with allocation %ld failing found nothing due and said OMNIQ_OK", k);
    }
    th_ok(fx->oq, omniq_get_task(fx->oq, id, &t));
    assert_int_equal(omniq_task_status(t), n == 1 ? OMNIQ_RUNNING : OMNIQ_PENDING);
    assert_int_equal(omniq_task_attempts(t), n == 1 ? 1 : 0); /* no attempt without a run */
    omniq_task_free(t);
  }
  assert_true(failed > 0);
  assert_int_equal(n, 1);

  /* A final failure: the error record is allocated, and stored as JSON. */
  omniq__run_report_t run = {.kind = OMNIQ__RUN_HANDLER_FAILED, .error_type = "ValueError",
                             .message = "boom"};
  failed = 0;
  for (long k = 0;; k++) {
    assert_true(k < 1000);
    omniq__alloc_fail_after(k);
    rc = omniq__engine_finish(fx->oq, tasks[0], &run);
    omniq__alloc_fail_after(-1);
    if (rc == OMNIQ_OK) break;
    assert_int_equal(rc, OMNIQ_ENOMEM);
    assert_string_not_equal(omniq_errmsg(fx->oq), "");
    failed++;
    assert_int_equal(status_of(fx->oq, id), OMNIQ_RUNNING);
    assert_int_equal(omniq_get_result(fx->oq, id, 0, &res), OMNIQ_ENOTFOUND);
  }
  assert_true(failed > 0);
  omniq__tasks_free(tasks, n);
  /* The result first, before any other lookup of the task: a finish that
   * said OMNIQ_OK must have its result readable at once. */
  th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &res));
  assert_int_equal(omniq_result_status(res), OMNIQ_FAILED);
  assert_string_equal(omniq_error_type(omniq_result_error(res)), "ValueError");
  assert_int_equal(omniq_result_attempts(res), 1);
  omniq_result_free(res);
  assert_int_equal(status_of(fx->oq, id), OMNIQ_FAILED);
}

/* omniq_worker_process with the Nth allocation failing, for every N until a
 * run gets through: the call returns OMNIQ_OK or OMNIQ_ENOMEM, and the task
 * is PENDING, RUNNING (its finish was lost: the lease brings it back) or
 * done. A clean pass after moving the clock past lease and backoff must then
 * finish it, with its result. */
static void test_out_of_memory_in_a_worker_run_loses_no_task(void **state) {
  fx_t *fx = *state;
  const int64_t lease = fx->settings.lease_ms;
  int seen[OMNIQ_STATUS_COUNT] = {0}, enomem = 0;
  fx->settings.log_fn = quiet_log; /* lost finishes are logged as errors */
  reopen(fx);
  th_ok(fx->oq, omniq_register(fx->oq, "work", work, NULL));

  for (long k = 0;; k++) {
    char id[OMNIQ_ID_SIZE];
    long done = -1;
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.max_retries = 10; /* a run that failed for want of memory is retried */
    th_ok(fx->oq, omniq_enqueue(fx->oq, "work", "[1]", NULL, &o, id));
    assert_true(k < 2000);

    omniq__alloc_fail_after(k);
    int rc = process(fx, 1, &done);
    omniq__alloc_fail_after(-1);
    if (rc != OMNIQ_OK) {
      if (rc != OMNIQ_ENOMEM) fail_msg("k=%ld: %s: %s", k, omniq_err_name(rc), omniq_errmsg(fx->oq));
      assert_string_not_equal(omniq_errmsg(fx->oq), "");
      enomem++;
    }
    int s = status_of(fx->oq, id);
    assert_true(s == OMNIQ_PENDING || s == OMNIQ_RUNNING || s == OMNIQ_SUCCESS);
    seen[s]++;
    if (s == OMNIQ_SUCCESS && rc == OMNIQ_OK) {
      assert_int_equal(done, 1);
      break; /* enough memory for a whole run */
    }

    /* Recovery, with no fault: past the lease (and any backoff). */
    for (int pass = 0; s != OMNIQ_SUCCESS; pass++) {
      assert_true(pass < 3);
      th_clock_advance(&fx->clock, lease + 1);
      th_ok(fx->oq, process(fx, 0, &done));
      s = status_of(fx->oq, id);
    }
    omniq_result_t *res = NULL;
    th_ok(fx->oq, omniq_get_result(fx->oq, id, 0, &res));
    assert_string_equal(omniq_result_value(res), "42");
    omniq_result_free(res);
  }
  /* The sweep met each kind of fault, or it proved little. */
  assert_true(enomem > 0);
  assert_true(seen[OMNIQ_PENDING] > 0);
  assert_true(seen[OMNIQ_RUNNING] > 0);
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  assert_int_equal(c[OMNIQ_PENDING] + c[OMNIQ_RUNNING] + c[OMNIQ_FAILED], 0);
}

/* ---- a store that refuses outcomes ---------------------------------------------- */

/* The backend under test behind a table whose finish fails on demand, as
 * a store with a damaged page did: claims and extensions go through, every
 * outcome is refused, also one that carries the next claim or a batch. */
static const omniq_storage_ops_t *inner;
static omniq_storage_ops_t refusing_ops;
static atomic_int refuse_finish;
static atomic_int report_failed_lines;

static _Atomic int64_t refusal_ms; /* how long a refusal takes to come, by the pool's clock */

/* A refusal comes after a whole lease (the pool's clock is frozen, and
 * moves by that much): the pool tries the report again only while the
 * lease holds, so it gives up at once, without waiting out a lease of
 * real time. */
static int refused(char *err, size_t errlen) {
  th_pool_clock_advance(atomic_load(&refusal_ms));
  snprintf(err, errlen, "test store: writes refused on demand");
  return OMNIQ_EIO;
}

static int refusing_finish(void *b, const omniq_decision_t *d, char *err, size_t errlen) {
  if (!atomic_load(&refuse_finish)) return inner->finish(b, d, err, errlen);
  return refused(err, errlen);
}

static int refusing_finish_claim(void *b, const omniq_decision_t *d, const omniq_claim_req_t *req,
                                 omniq_task_t ***out, size_t *n, int *claimed, char *err,
                                 size_t errlen) {
  if (!atomic_load(&refuse_finish)) return inner->finish_claim(b, d, req, out, n, claimed, err, errlen);
  *out = NULL;
  *n = 0;
  *claimed = 0;
  return refused(err, errlen);
}

static int refusing_finish_many(void *b, const omniq_decision_t *ds, size_t n, int *rcs,
                                const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                                int *claimed, char *err, size_t errlen) {
  if (!atomic_load(&refuse_finish))
    return inner->finish_many(b, ds, n, rcs, req, out, nout, claimed, err, errlen);
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  return refused(err, errlen);
}

static void count_report_failed(void *userdata, int level, const char *line) {
  (void)userdata;
  if (level == OMNIQ_LOG_ERROR && strstr(line, "task.report_failed") != NULL &&
      strstr(line, "RUNNING until its lease expires") != NULL)
    atomic_fetch_add(&report_failed_lines, 1);
}

/* Reopens fx on the refusing table over the backend under test. */
static void use_refusing_store(fx_t *fx) {
  if (inner == NULL) {
    inner = omniq_storage_find(backend);
    refusing_ops = *inner;
    refusing_ops.name = "refusing";
    refusing_ops.finish = refusing_finish;
    if (inner->finish_claim != NULL) refusing_ops.finish_claim = refusing_finish_claim;
    if (inner->finish_many != NULL) refusing_ops.finish_many = refusing_finish_many;
    th_ok(NULL, omniq_storage_register(&refusing_ops));
  }
  atomic_store(&refuse_finish, 0);
  atomic_store(&report_failed_lines, 0);
  atomic_store(&refusal_ms, fx->settings.lease_ms + 1);
  th_pool_clock_freeze();
  snprintf(fx->settings.backend, sizeof fx->settings.backend, "refusing");
  fx->settings.log_fn = count_report_failed;
  reopen(fx);
}

/* Moves the store's clock past its own deadline, then waits to be
 * cancelled: the keeper reports the timeout. */
static int overrun(omniq_job_t *job, void *userdata) {
  fx_t *fx = userdata;
  th_clock_advance(&fx->clock, 2000);
  omniq__job_wait_cancelled(job, TH_WAIT_MS); /* woken by the cancel, not by polling */
  return OMNIQ_OK;
}

static void assert_counts(fx_t *fx, int64_t pending, int64_t running, int64_t success) {
  int64_t c[OMNIQ_STATUS_COUNT];
  th_ok(fx->oq, omniq_count_by_status(fx->oq, c));
  assert_int_equal(c[OMNIQ_PENDING], pending);
  assert_int_equal(c[OMNIQ_RUNNING], running);
  assert_int_equal(c[OMNIQ_SUCCESS], success);
}

/* Without the check, omniq_worker_process returned OMNIQ_OK and counted
 * every run done while every outcome was lost. */
static void refused_outcomes_are_not_done(fx_t *fx, const char *func, int64_t timeout_ms) {
  omniq_enqueue_opts_t o;
  long done = -1;
  omniq_enqueue_opts_init(&o);
  o.timeout_ms = timeout_ms;
  o.max_retries = 5;
  for (int i = 0; i < 5; i++) th_ok(fx->oq, omniq_enqueue(fx->oq, func, "[1]", NULL, &o, NULL));

  atomic_store(&refuse_finish, 1);
  assert_int_equal(process(fx, 0, &done), OMNIQ_EIO);
  assert_int_equal(done, 0);
  assert_non_null(strstr(omniq_errmsg(fx->oq), "refused their outcome"));
  assert_non_null(strstr(omniq_errmsg(fx->oq), "writes refused on demand"));
  assert_int_equal(atomic_load(&report_failed_lines), 1);
  assert_counts(fx, 4, 1, 0); /* the drain stopped at the first refusal */

  /* The store takes writes again: past the lease, the stranded run comes
   * back and everything finishes. */
  atomic_store(&refuse_finish, 0);
  th_clock_advance(&fx->clock, fx->settings.lease_ms + 1);
  th_ok(fx->oq, omniq_register(fx->oq, func, work, NULL));
  th_ok(fx->oq, process(fx, 0, &done));
  assert_int_equal(done, 5);
  assert_counts(fx, 0, 0, 5);
}

static void test_run_whose_outcome_the_store_refuses_is_not_done(void **state) {
  fx_t *fx = *state;
  use_refusing_store(fx);
  th_ok(fx->oq, omniq_register(fx->oq, "work", work, NULL));
  refused_outcomes_are_not_done(fx, "work", -1);
}

static void test_timeout_whose_report_the_store_refuses_is_not_done(void **state) {
  fx_t *fx = *state;
  use_refusing_store(fx);
  th_ok(fx->oq, omniq_register(fx->oq, "overrun", overrun, fx));
  refused_outcomes_are_not_done(fx, "overrun", 1000);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, teardown, (void *)backend)
      T(test_full_disk_refuses_writes_and_keeps_every_stored_task),
      T(test_locked_database_gives_busy_and_loses_nothing),
      T(test_out_of_memory_in_claim_or_finish_changes_nothing),
      T(test_out_of_memory_in_a_worker_run_loses_no_task),
      T(test_run_whose_outcome_the_store_refuses_is_not_done),
      T(test_timeout_whose_report_the_store_refuses_is_not_done),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
