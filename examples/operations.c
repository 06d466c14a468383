/* SPDX-License-Identifier: MIT */
/* Operating a queue from C: the code of docs/operations.md and of the
 * how-to docs/howto/failures.md, as one program that runs.
 *
 * Opens the store named by the environment (a fresh one, please: it makes
 * tasks fail on purpose), lets a task fail, finds it by listing, retries
 * it, pauses and resumes a queue, sets a rate limit, enqueues a unique and
 * a cron task, and reads the statistics. Each block between "doc:begin"
 * and "doc:end" is shown in the docs exactly as it is here (a ctest test
 * compares them). Exits 0 when every step did what the docs say. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <omniq.h>

/* Fails until the service it calls is "back" (userdata). */
static int send_email(omniq_job_t *job, void *userdata) {
  if (!*(int *)userdata) return omniq_job_fail(job, "ConnectionError", "mail server down", 1);
  return omniq_job_return(job, "\"sent\"");
}

static int check(int ok, const char *what) {
  if (!ok) fprintf(stderr, "operations: %s\n", what);
  return ok;
}

/* Lists the failed tasks of "emails", newest first, page by page. */
static int list_failed(omniq_t *oq) {
  int seen = 0;
  char cursor[256] = "";
  /* doc:begin list */
  omniq_list_opts_t o;
  omniq_list_opts_init(&o);
  o.statuses = OMNIQ_STATUS_BIT(OMNIQ_FAILED);
  o.queue = "emails";
  o.newest_first = 1;
  omniq_task_list_t *page = NULL;
  if (omniq_list_tasks(oq, &o, &page) == OMNIQ_OK) {
    for (size_t i = 0; i < omniq_task_list_count(page); i++) {
      const omniq_task_t *t = omniq_task_list_at(page, i);
      printf("%s %s\n", omniq_task_id(t), omniq_error_type(omniq_task_last_error(t)));
    }
    /* next page: o.cursor = a copy of omniq_task_list_next_cursor(page) */
    omniq_task_list_free(page);
  }
  /* doc:end list */
  /* The same walk to the last page, counting. */
  o.limit = 1;
  do {
    page = NULL;
    o.cursor = cursor[0] != '\0' ? cursor : NULL;
    if (omniq_list_tasks(oq, &o, &page) != OMNIQ_OK) return -1;
    seen += (int)omniq_task_list_count(page);
    const char *next = omniq_task_list_next_cursor(page);
    snprintf(cursor, sizeof cursor, "%s", next != NULL ? next : "");
    omniq_task_list_free(page);
  } while (cursor[0] != '\0');
  return seen;
}

static int retry_failed(omniq_t *oq, const char *id) {
  /* doc:begin retry */
  omniq_retry(oq, id, 0);            /* now; or an absolute time in ms */
  omniq_list_opts_t f;
  omniq_list_opts_init(&f);
  f.queue = "emails";                /* every FAILED or CANCELLED task of "emails" */
  int64_t n;
  omniq_retry_many(oq, &f, 0, &n);
  /* doc:end retry */
  return (int)n;
}

int main(void) {
  omniq_t *oq;
  omniq_result_t *r = NULL;
  omniq_enqueue_opts_t once;
  int back = 0, ok = 1;
  char failing[OMNIQ_ID_SIZE];

  if (omniq_open(&oq, NULL) != OMNIQ_OK) {
    fprintf(stderr, "open: %s\n", omniq_errmsg(NULL));
    return 1;
  }
  omniq_register(oq, "send_email", send_email, &back);
  omniq_enqueue_opts_init(&once);
  once.queue = "emails";
  once.max_retries = 1; /* one run: it fails for good at once */
  omniq_enqueue(oq, "send_email", "[\"ada@example.com\"]", NULL, &once, failing);

  omniq_worker_opts_t wo;
  omniq_worker_opts_init(&wo);
  wo.queues[0] = "emails";
  omniq_worker_process(oq, &wo, 0, NULL);
  ok &= check(list_failed(oq) == 1, "one failed task listed");

  back = 1; /* the mail server is back: run it again */
  ok &= check(retry_failed(oq, failing) == 0, "retry_many found nothing left to retry");
  omniq_worker_process(oq, &wo, 0, NULL);
  ok &= check(omniq_get_result(oq, failing, 0, &r) == OMNIQ_OK &&
                  omniq_result_status(r) == OMNIQ_SUCCESS,
              "the retried task succeeded");
  omniq_result_free(r);

  /* doc:begin pause */
  omniq_queue_pause(oq, "emails");   /* the mail server is down */
  omniq_queue_resume(oq, "emails");
  /* doc:end pause */

  /* doc:begin rate */
  omniq_queue_set_rate(oq, "api", 50, 1000);   /* at most 50 starts per second */
  omniq_queue_set_rate(oq, "api", 0, 0);       /* no limit */
  /* doc:end rate */

  {
    /* doc:begin unique */
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.unique_key = "invoice:4711";     /* 1-255 bytes of UTF-8 */
    o.unique_for_ms = 3600000;         /* and for an hour after it finished */
    char id[OMNIQ_ID_SIZE];
    int rc = omniq_enqueue(oq, "send_invoice", "[4711]", NULL, &o, id);
    if (rc == OMNIQ_EEXISTS) { /* id is the task that has the key */ }
    /* doc:end unique */
    char again[OMNIQ_ID_SIZE];
    ok &= check(rc == OMNIQ_OK && omniq_enqueue(oq, "send_invoice", "[4711]", NULL, &o, again) ==
                                      OMNIQ_EEXISTS && strcmp(id, again) == 0,
                "a second invoice:4711 is refused and names the first");
  }
  {
    char id[OMNIQ_ID_SIZE];
    /* doc:begin cron */
    omniq_enqueue_opts_t o;
    omniq_enqueue_opts_init(&o);
    o.cron = "30 2 * * MON-FRI";       /* 02:30 UTC on weekdays */
    omniq_enqueue(oq, "nightly_export", NULL, NULL, &o, id);
    /* doc:end cron */
    omniq_task_t *t = NULL;
    ok &= check(omniq_get_task(oq, id, &t) == OMNIQ_OK && omniq_task_eta(t) % 60000 == 0,
                "the cron task is due on a whole minute");
    omniq_task_free(t);
  }
  {
    /* doc:begin stats */
    omniq_queue_info_t *q;
    omniq_queue_info(oq, "emails", &q);
    omniq_queue_info_paused(q);
    omniq_queue_info_count(q, OMNIQ_PENDING);
    omniq_queue_info_oldest_due_ms(q);        /* how long the oldest due task has waited */
    omniq_queue_info_rate_limit(q);
    omniq_queue_info_runs(q, OMNIQ_RUNS_FAILED);
    omniq_queue_info_free(q);

    omniq_stats_t *s;                         /* every queue, sorted by name */
    omniq_stats(oq, &s);
    /* doc:end stats */
    ok &= check(omniq_stats_count(s) >= 2, "stats lists the queues");
    for (size_t i = 0; i < omniq_stats_count(s); i++) {
      const omniq_queue_info_t *qi = omniq_stats_queue(s, i);
      printf("%-8s pending %lld, runs failed %lld, succeeded %lld\n", omniq_queue_info_name(qi),
             (long long)omniq_queue_info_count(qi, OMNIQ_PENDING),
             (long long)omniq_queue_info_runs(qi, OMNIQ_RUNS_FAILED),
             (long long)omniq_queue_info_runs(qi, OMNIQ_RUNS_SUCCEEDED));
    }
    omniq_stats_free(s);
  }
  omniq_close(oq);
  return ok ? 0 : 1;
}
