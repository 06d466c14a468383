/* SPDX-License-Identifier: MIT */
/* Retries from C: the code of docs/howto/retries.md, as one program that
 * runs. A handler fails twice and then succeeds; another fails in a way
 * that must not be retried; a third always fails. Exits 0 when each ends
 * as the max_retries table says. */
#include <stdio.h>

#include <omniq.h>

/* doc:begin handler */
/* Calls a service that is down for the first two attempts. */
static int fetch(omniq_job_t *job, void *userdata) {
  (void)userdata;
  if (omniq_job_attempt(job) < 3)
    return omniq_job_fail(job, "ConnectionError", "service unavailable", 1); /* retry */
  return omniq_job_return(job, "\"fetched\"");
}

/* Bad input stays bad: fail for good, whatever max_retries allows. */
static int parse(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_fail(job, "ValueError", "not a number", 0); /* no retry */
}
/* doc:end handler */

static int always_fails(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_fail(job, "ConnectionError", "still down", 1);
}

/* Waits for id's result; returns its status and sets *attempts. */
static int outcome(omniq_t *oq, const char *id, int *attempts) {
  omniq_result_t *r = NULL;
  int status = -1;
  if (omniq_get_result(oq, id, 30.0, &r) == OMNIQ_OK) {
    status = omniq_result_status(r);
    *attempts = omniq_result_attempts(r);
  }
  omniq_result_free(r);
  return status;
}

int main(void) {
  omniq_t *oq;
  omniq_worker_t *w;
  char a[OMNIQ_ID_SIZE], b[OMNIQ_ID_SIZE], c[OMNIQ_ID_SIZE];
  int attempts_a = 0, attempts_b = 0, attempts_c = 0;

  /* doc:begin settings */
  omniq_settings_t s;
  omniq_settings_init(&s);
  omniq_settings_from_env(&s);
  s.retry_base_ms = 10; /* backoff 10 ms, 20 ms, ... (default 1 s) */
  s.retry_cap_ms = 100; /* never more than 100 ms (default 60 s) */
  /* doc:end settings */
  if (omniq_open(&oq, &s) != OMNIQ_OK) {
    fprintf(stderr, "open: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  omniq_register(oq, "fetch", fetch, NULL);
  omniq_register(oq, "parse", parse, NULL);
  omniq_register(oq, "always_fails", always_fails, NULL);

  /* doc:begin enqueue */
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.max_retries = 5; /* at most 5 runs in all, the first included */
  omniq_enqueue(oq, "fetch", NULL, NULL, &o, a);  /* runs 3 times: fails, fails, succeeds */
  omniq_enqueue(oq, "parse", NULL, NULL, &o, b);  /* runs once: not retryable */
  o.max_retries = 2;
  omniq_enqueue(oq, "always_fails", NULL, NULL, &o, c); /* runs twice, then FAILED */
  /* doc:end enqueue */

  omniq_worker_opts_t wo;
  omniq_worker_opts_init(&wo);
  wo.poll_interval_ms = 20; /* retries come due within the backoff */
  if (omniq_worker_start(oq, &wo, &w) != OMNIQ_OK) return 1;
  int ok = outcome(oq, a, &attempts_a) == OMNIQ_SUCCESS && attempts_a == 3;
  ok &= outcome(oq, b, &attempts_b) == OMNIQ_FAILED && attempts_b == 1;
  ok &= outcome(oq, c, &attempts_c) == OMNIQ_FAILED && attempts_c == 2;
  omniq_worker_stop(w);
  printf("fetch: %d attempts, parse: %d, always_fails: %d: %s\n", attempts_a, attempts_b,
         attempts_c, ok ? "ok" : "NOT AS EXPECTED");
  omniq_close(oq);
  return ok ? 0 : 1;
}
