/* OmniQ demo: a worker pool running a mix of tasks on the embedded store.
 *
 *   make demo
 *
 * Opens the store named by the environment (by default SQLite under
 * ./omniq-data; OMNIQ_BACKEND=file OMNIQ_BASE_DIR=/tmp/q for the file
 * backend), enqueues tasks that succeed, fail and retry, fail for good, wait
 * for a delay, and repeat on an interval; runs four worker threads; waits
 * for every result and prints a summary. Exits 0 if every task ended as
 * expected. OMNIQ_LOG_LEVEL=INFO shows the lifecycle as it happens.
 */
#define _POSIX_C_SOURCE 200809L
#include <omniq.h>

#include <pthread.h>
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

  printf("OmniQ demo: %s store under %s, 4 worker threads\n\n", s.backend, s.base_dir);
  ok &= check(oq, omniq_register(oq, "add", add, NULL), "register");
  ok &= check(oq, omniq_register(oq, "flaky", flaky, NULL), "register");
  ok &= check(oq, omniq_register(oq, "broken", broken, NULL), "register");
  ok &= check(oq, omniq_register(oq, "heartbeat", heartbeat, &beats), "register");

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

  omniq_worker_opts_init(&wo);
  wo.concurrency = 4;
  wo.poll_interval_ms = 100; /* retries come due by time; look often */
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
  omniq_close(oq);

  printf("\n%zu tasks in %.1f s: %d succeeded (%d after retries), %d failed for good, "
         "1 interval task ran %d times and was cancelled.\n",
         ntasks + 1, seconds_since(t0), succeeded, retried, failed, beat_count);
  printf("%s\n", ok ? "Every task ended as expected." : "Something did not go as expected.");
  return ok ? 0 : 1;
}
