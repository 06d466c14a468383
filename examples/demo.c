/* SPDX-License-Identifier: MIT */
/* OmniQ demo: a worker pool running a mix of tasks on the embedded store.
 *
 *   make demo
 *
 * Opens the store named by the environment (by default SQLite under
 * ./omniq-data; OMNIQ_BACKEND=file OMNIQ_BASE_DIR=/tmp/q for the file
 * backend), enqueues tasks that succeed, fail and retry, fail for good, wait
 * for a delay, and repeat on an interval; runs four worker threads; waits
 * for every result and prints a summary. Then it operates the queue
 * (docs/operations.md): a failure retried by hand once its service is back,
 * a queue paused while its work waits, and a unique task enqueued twice.
 * Exits 0 if every task ended as expected. OMNIQ_LOG_LEVEL=INFO shows the
 * lifecycle as it happens.
 */
#define _POSIX_C_SOURCE 200809L
#include <omniq.h>

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- handlers --------------------------------------------------------------- */

/* add([a, b]) -> a + b */
static int add(omniq_job_t *job, void *userdata) {
  long a, b;
  char out[32];
  (void)userdata;
  if (sscanf(omniq_job_args(job), " [ %ld , %ld ]", &a, &b) != 2)
    return omniq_job_fail(job, "TypeError", "add takes two integers", 0);
  snprintf(out, sizeof out, "%ld", a + b);
  return omniq_job_return(job, out);
}

/* flaky([n]): a service that answers only on the n-th try. Its failures
 * are retryable, so the queue retries it with backoff. */
static int flaky(omniq_job_t *job, void *userdata) {
  int n = 1;
  char out[64];
  (void)userdata;
  sscanf(omniq_job_args(job), " [ %d ]", &n);
  if (omniq_job_attempt(job) < n)
    return omniq_job_fail(job, "ConnectionError", "service unavailable, try again", 1);
  snprintf(out, sizeof out, "\"answered on try %d\"", omniq_job_attempt(job));
  return omniq_job_return(job, out);
}

/* broken: always fails; it is retried until max_retries runs are used. */
static int broken(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_fail(job, "ValueError", "cannot parse 'seventeen' as a number", 1);
}

/* export([n]): talks to a service that is down until main says it is back;
 * its failure is not retryable, so the task fails for good at once. */
static atomic_int service_up;

static int export_rows(omniq_job_t *job, void *userdata) {
  (void)userdata;
  if (!atomic_load(&service_up))
    return omniq_job_fail(job, "ServiceDown", "warehouse offline for maintenance", 0);
  return omniq_job_return(job, "\"exported\"");
}

/* heartbeat: an interval task; counts its runs so main can watch it. */
typedef struct {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  int beats;
} beats_t;

static int heartbeat(omniq_job_t *job, void *userdata) {
  beats_t *b = userdata;
  char out[32];
  pthread_mutex_lock(&b->lock);
  int n = ++b->beats;
  pthread_cond_broadcast(&b->cond);
  pthread_mutex_unlock(&b->lock);
  snprintf(out, sizeof out, "{\"beat\": %d}", n);
  return omniq_job_return(job, out);
}

/* ---- the demo ------------------------------------------------------------- */

typedef struct {
  const char *label;
  const char *func;
  const char *args;
  int max_retries;    /* -1 = default */
  int64_t delay_ms;
  int expect;         /* status it should end with */
  int expect_runs;
  char id[OMNIQ_ID_SIZE];
} demo_task_t;

static int check(omniq_t *oq, int rc, const char *what) {
  if (rc != OMNIQ_OK)
    fprintf(stderr, "demo: %s: %s (%s)\n", what, omniq_strerror(rc), omniq_errmsg(oq));
  return rc == OMNIQ_OK;
}

/* A task retried by hand keeps its last result until the new run replaces
 * it: wait for a result that finished at `since` or later. */
static int wait_newer_result(omniq_t *oq, const char *id, int64_t since, omniq_result_t **out) {
  for (int tries = 0; tries < 300; tries++) {
    int rc = omniq_get_result(oq, id, 0.1, out);
    if (rc != OMNIQ_OK) return rc;
    if (omniq_result_finished_at(*out) >= since) return OMNIQ_OK;
    omniq_result_free(*out);
    *out = NULL;
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
  }
  return OMNIQ_ETIMEDOUT;
}

/* What names the store, for the first line: the folder (file, SQLite), the
 * database file (SQLite with OMNIQ_DB_URL), or the schema and the server
 * (PostgreSQL: its URL or key=value string parsed by libpq, shown without
 * the password or any other option). */
static void describe_store(const omniq_settings_t *s, char *out, size_t len) {
  if (strcmp(s->backend, "postgres") != 0) {
    snprintf(out, len, "%s store %s %s", s->backend, s->db_url[0] != '\0' ? "in" : "under",
             s->db_url[0] != '\0' ? s->db_url : s->base_dir);
    return;
  }
  const char *host = "", *port = "", *user = "", *dbname = "";
  PQconninfoOption *opts = PQconninfoParse(s->db_url, NULL);
  for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++) {
    if (o->val == NULL) continue;
    if (strcmp(o->keyword, "host") == 0) host = o->val;
    if (strcmp(o->keyword, "port") == 0) port = o->val;
    if (strcmp(o->keyword, "user") == 0) user = o->val;
    if (strcmp(o->keyword, "dbname") == 0) dbname = o->val;
  }
  snprintf(out, len, "postgres store in schema %s on %s%s%s%s%s%s%s",
           s->db_schema[0] != '\0' ? s->db_schema : OMNIQ_DEFAULT_DB_SCHEMA, user,
           user[0] != '\0' ? "@" : "", host[0] != '\0' ? host : "the local socket",
           port[0] != '\0' ? ":" : "", port, dbname[0] != '\0' ? "/" : "", dbname);
  PQconninfoFree(opts);
}

static double seconds_since(int64_t t0_ms) {
  return (double)(omniq_clock_system(NULL) - t0_ms) / 1000.0;
}

int main(void) {
  demo_task_t tasks[] = {
      {"add(2, 3)", "add", "[2, 3]", -1, 0, OMNIQ_SUCCESS, 1, ""},
      {"add(40, 2)", "add", "[40, 2]", -1, 0, OMNIQ_SUCCESS, 1, ""},
      {"add(7, 8)", "add", "[7, 8]", -1, 0, OMNIQ_SUCCESS, 1, ""},
      {"flaky: answers on try 3", "flaky", "[3]", 3, 0, OMNIQ_SUCCESS, 3, ""},
      {"flaky: answers on try 2", "flaky", "[2]", 3, 0, OMNIQ_SUCCESS, 2, ""},
      {"broken (2 runs allowed)", "broken", "[]", 2, 0, OMNIQ_FAILED, 2, ""},
      {"add(1, 1), 1.5 s delay", "add", "[1, 1]", -1, 1500, OMNIQ_SUCCESS, 1, ""},
  };
  const size_t ntasks = sizeof tasks / sizeof tasks[0];
  beats_t beats = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};
  omniq_settings_t s;
  omniq_t *oq = NULL;
  omniq_worker_t *w = NULL;
  omniq_worker_opts_t wo;
  omniq_enqueue_opts_t eo;
  char beat_id[OMNIQ_ID_SIZE];
  int ok = 1;

  /* Defaults and OMNIQ_* variables, then demo-sized retry delays. */
  omniq_settings_init(&s);
  if (!check(NULL, omniq_settings_from_env(&s), "settings")) return 1;
  s.retry_base_ms = 200;
  s.retry_cap_ms = 1000;
  if (getenv("OMNIQ_LOG_LEVEL") == NULL) s.log_level = OMNIQ_LOG_ERROR; /* keep it readable */
  if (!check(NULL, omniq_open(&oq, &s), "open")) return 1;

  char store[2 * OMNIQ_PATH_MAX];
  describe_store(&s, store, sizeof store);
  printf("OmniQ demo: %s, 4 worker threads\n\n", store);
  ok &= check(oq, omniq_register(oq, "add", add, NULL), "register");
  ok &= check(oq, omniq_register(oq, "flaky", flaky, NULL), "register");
  ok &= check(oq, omniq_register(oq, "broken", broken, NULL), "register");
  ok &= check(oq, omniq_register(oq, "heartbeat", heartbeat, &beats), "register");
  ok &= check(oq, omniq_register(oq, "export", export_rows, NULL), "register");

  int64_t t0 = omniq_clock_system(NULL);
  for (size_t i = 0; ok && i < ntasks; i++) {
    omniq_enqueue_opts_init(&eo);
    eo.max_retries = tasks[i].max_retries;
    eo.delay_ms = tasks[i].delay_ms;
    ok &= check(oq, omniq_enqueue(oq, tasks[i].func, tasks[i].args, NULL, &eo, tasks[i].id),
                "enqueue");
  }
  omniq_enqueue_opts_init(&eo);
  eo.interval_ms = 400;
  ok &= check(oq, omniq_enqueue(oq, "heartbeat", NULL, NULL, &eo, beat_id), "enqueue");

  /* Operating the queue: a task bound to fail while its service is down,
   * and a "reports" queue paused before its (unique) report is enqueued. */
  char export_id[OMNIQ_ID_SIZE], report_id[OMNIQ_ID_SIZE], dup_id[OMNIQ_ID_SIZE];
  omniq_enqueue_opts_init(&eo);
  eo.max_retries = 1;
  ok &= check(oq, omniq_enqueue(oq, "export", "[1]", NULL, &eo, export_id), "enqueue");
  ok &= check(oq, omniq_queue_pause(oq, "reports"), "pause reports");
  omniq_enqueue_opts_init(&eo);
  eo.queue = "reports";
  eo.unique_key = "report:daily";
  ok &= check(oq, omniq_enqueue(oq, "add", "[20, 22]", NULL, &eo, report_id), "enqueue report");
  int dup = omniq_enqueue(oq, "add", "[20, 22]", NULL, &eo, dup_id);
  ok &= dup == OMNIQ_EEXISTS && strcmp(dup_id, report_id) == 0;

  omniq_worker_opts_init(&wo);
  wo.concurrency = 4;
  wo.poll_interval_ms = 100; /* retries come due by time; look often */
  wo.queues[0] = OMNIQ_DEFAULT_QUEUE;
  wo.queues[1] = "reports";
  if (ok) ok &= check(oq, omniq_worker_start(oq, &wo, &w), "start workers");

  printf("  %-26s %-9s %4s  %-7s  %s\n", "task", "status", "runs", "done at", "result");
  int succeeded = 0, retried = 0, failed = 0;
  for (size_t i = 0; ok && i < ntasks; i++) {
    omniq_result_t *r = NULL;
    if (!check(oq, omniq_get_result(oq, tasks[i].id, 30, &r), "wait for result")) {
      ok = 0;
      break;
    }
    int st = omniq_result_status(r), runs = omniq_result_attempts(r);
    const omniq_task_error_t *e = omniq_result_error(r);
    char shown[128], when[16];
    if (e != NULL)
      snprintf(shown, sizeof shown, "%s: %s", omniq_error_type(e), omniq_error_message(e));
    else
      snprintf(shown, sizeof shown, "%s", omniq_result_value(r));
    snprintf(when, sizeof when, "+%.2fs", (double)(omniq_result_finished_at(r) - t0) / 1000.0);
    printf("  %-26s %-9s %4d  %-7s  %s\n", tasks[i].label, omniq_status_name(st), runs, when,
           shown);
    succeeded += st == OMNIQ_SUCCESS;
    retried += st == OMNIQ_SUCCESS && runs > 1;
    failed += st == OMNIQ_FAILED;
    ok &= st == tasks[i].expect && runs == tasks[i].expect_runs;
    omniq_result_free(r);
  }

  /* The failure, found by listing, retried by hand once the service is
   * back; the paused queue, still holding its report, resumed. */
  printf("\nOperating the queue\n");
  int export_runs = 0, export_ok = 0, reports_waited = 0, report_ok = 0;
  omniq_result_t *er = NULL;
  if (ok && check(oq, omniq_get_result(oq, export_id, 30, &er), "wait for export")) {
    const omniq_task_error_t *e = omniq_result_error(er);
    printf("  export failed for good: %s: %s\n", omniq_error_type(e), omniq_error_message(e));
    ok &= omniq_result_status(er) == OMNIQ_FAILED;
    omniq_result_free(er);
  }
  omniq_list_opts_t lo;
  omniq_list_opts_init(&lo);
  lo.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED);
  lo.func = "export";
  omniq_task_list_t *failures = NULL;
  if (ok && check(oq, omniq_list_tasks(oq, &lo, &failures), "list failures")) {
    ok &= omniq_task_list_count(failures) == 1 &&
          strcmp(omniq_task_id(omniq_task_list_at(failures, 0)), export_id) == 0;
    printf("  listed %zu failed export task(s); the service is back, retrying it by hand\n",
           omniq_task_list_count(failures));
    omniq_task_list_free(failures);
  }
  atomic_store(&service_up, 1);
  int64_t retried_at = omniq_clock_system(NULL);
  if (ok) ok &= check(oq, omniq_retry(oq, export_id, 0), "retry");
  if (ok && check(oq, wait_newer_result(oq, export_id, retried_at, &er), "wait for export")) {
    export_ok = omniq_result_status(er) == OMNIQ_SUCCESS;
    export_runs = omniq_result_attempts(er);
    printf("  export retried by hand: %s %s (same id, run %d of a fresh budget)\n",
           omniq_status_name(omniq_result_status(er)), omniq_result_value(er), export_runs);
    omniq_result_free(er);
  }
  ok &= export_ok && export_runs == 1;
  omniq_queue_info_t *qi = NULL;
  if (ok && check(oq, omniq_queue_info(oq, "reports", &qi), "queue info")) {
    reports_waited = omniq_queue_info_paused(qi) &&
                     omniq_queue_info_count(qi, OMNIQ_PENDING) == 1;
    printf("  queue reports: %s, %lld pending while every other task ran; a second\n"
           "  enqueue of the unique report was refused (%s) and named the first\n",
           omniq_queue_info_paused(qi) ? "paused" : "running",
           (long long)omniq_queue_info_count(qi, OMNIQ_PENDING), omniq_err_name(dup));
    omniq_queue_info_free(qi);
  }
  ok &= reports_waited;
  if (ok) ok &= check(oq, omniq_queue_resume(oq, "reports"), "resume reports");
  if (ok && check(oq, omniq_get_result(oq, report_id, 30, &er), "wait for report")) {
    report_ok = omniq_result_status(er) == OMNIQ_SUCCESS;
    printf("  resumed: the report ran: %s\n", omniq_result_value(er));
    omniq_result_free(er);
  }
  ok &= report_ok;

  /* The interval task: let it beat three times, then cancel it. */
  int beat_count = 0;
  if (ok) {
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 30;
    pthread_mutex_lock(&beats.lock);
    while (beats.beats < 3 &&
           pthread_cond_timedwait(&beats.cond, &beats.lock, &until) == 0) {
    }
    beat_count = beats.beats;
    pthread_mutex_unlock(&beats.lock);
    ok &= beat_count >= 3;
    ok &= check(oq, omniq_cancel(oq, beat_id), "cancel heartbeat");
  }
  if (w != NULL) ok &= check(oq, omniq_worker_stop(w), "stop workers");
  if (beat_count > 0) {
    pthread_mutex_lock(&beats.lock); /* a run in flight at the cancel still counts */
    beat_count = beats.beats;
    pthread_mutex_unlock(&beats.lock);
    char when[16];
    snprintf(when, sizeof when, "+%.2fs", seconds_since(t0));
    printf("  %-26s %-9s %4d  %-7s  ran every 0.4 s until cancelled\n", "heartbeat (interval)",
           "CANCELLED", beat_count, when);
  }
  omniq_stats_t *st = NULL;
  if (check(oq, omniq_stats(oq, &st), "stats")) {
    printf("\n  %-10s %9s %6s %7s %4s  (runs since the store was created)\n", "queue",
           "succeeded", "failed", "retried", "lost");
    for (size_t i = 0; i < omniq_stats_count(st); i++) {
      const omniq_queue_info_t *q = omniq_stats_queue(st, i);
      printf("  %-10s %9lld %6lld %7lld %4lld\n", omniq_queue_info_name(q),
             (long long)omniq_queue_info_runs(q, OMNIQ_RUNS_SUCCEEDED),
             (long long)omniq_queue_info_runs(q, OMNIQ_RUNS_FAILED),
             (long long)omniq_queue_info_runs(q, OMNIQ_RUNS_RETRIED),
             (long long)omniq_queue_info_runs(q, OMNIQ_RUNS_LOST));
    }
    omniq_stats_free(st);
  }
  omniq_close(oq);

  printf("\n%zu tasks in %.1f s: %d succeeded (%d after retries), %d failed for good, "
         "1 interval task ran %d times and was cancelled; 1 failure retried by hand, "
         "1 unique report run after its queue was resumed.\n",
         ntasks + 3, seconds_since(t0), succeeded, retried, failed, beat_count);
  printf("%s\n", ok ? "Every task ended as expected." : "Something did not go as expected.");
  return ok ? 0 : 1;
}
