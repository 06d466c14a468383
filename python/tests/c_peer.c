/* SPDX-License-Identifier: MIT */
/* A C program on the same queue as the Python tests: it serves tasks that
 * Python enqueued, enqueues tasks for a Python worker, reads results, and
 * prints the layout of the structs the Python package mirrors. Settings come
 * from the OMNIQ_* environment, as any OmniQ program's do.
 *
 *   c_peer layout                   struct sizes and field offsets
 *   c_peer serve FUNC N             registers FUNC (sums its JSON arguments)
 *                                   and runs tasks until N have finished or
 *                                   none is due; prints how many ran
 *   c_peer enqueue FUNC ARGS_JSON   prints the new task's id
 *   c_peer result ID                waits up to 30 s; prints STATUS VALUE
 *                                   or STATUS ERROR_TYPE
 *
 * Exit status: 0 done, 1 an OmniQ call failed (message on stderr), 2 usage. */
#include <jansson.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omniq.h"

static int fail(omniq_t *oq, const char *what, int rc) {
  fprintf(stderr, "c_peer: %s: %s (%s)\n", what, omniq_strerror(rc), omniq_errmsg(oq));
  omniq_close(oq);
  return 1;
}

#define FIELD(type, f) printf(" %s=%zu", #f, offsetof(type, f))

static int layout(void) {
  printf("omniq_settings_t %zu", sizeof(omniq_settings_t));
  FIELD(omniq_settings_t, backend);
  FIELD(omniq_settings_t, db_url);
  FIELD(omniq_settings_t, base_dir);
  FIELD(omniq_settings_t, default_timeout_ms);
  FIELD(omniq_settings_t, default_max_retries);
  FIELD(omniq_settings_t, lease_ms);
  FIELD(omniq_settings_t, result_ttl_ms);
  FIELD(omniq_settings_t, serializer);
  FIELD(omniq_settings_t, log_level);
  FIELD(omniq_settings_t, log_format);
  FIELD(omniq_settings_t, retry_base_ms);
  FIELD(omniq_settings_t, retry_cap_ms);
  FIELD(omniq_settings_t, fsync);
  FIELD(omniq_settings_t, log_fn);
  FIELD(omniq_settings_t, log_userdata);
  FIELD(omniq_settings_t, clock_fn);
  FIELD(omniq_settings_t, clock_userdata);
  FIELD(omniq_settings_t, task_ttl_ms);
  FIELD(omniq_settings_t, crash_budget);
  FIELD(omniq_settings_t, db_schema);
  FIELD(omniq_settings_t, handler_path);
  printf("\nomniq_enqueue_opts_t %zu", sizeof(omniq_enqueue_opts_t));
  FIELD(omniq_enqueue_opts_t, eta_ms);
  FIELD(omniq_enqueue_opts_t, delay_ms);
  FIELD(omniq_enqueue_opts_t, interval_ms);
  FIELD(omniq_enqueue_opts_t, max_retries);
  FIELD(omniq_enqueue_opts_t, timeout_ms);
  FIELD(omniq_enqueue_opts_t, queue);
  FIELD(omniq_enqueue_opts_t, priority);
  FIELD(omniq_enqueue_opts_t, unique_key);
  FIELD(omniq_enqueue_opts_t, unique_for_ms);
  FIELD(omniq_enqueue_opts_t, cron);
  printf("\nomniq_enqueue_item_t %zu", sizeof(omniq_enqueue_item_t));
  FIELD(omniq_enqueue_item_t, func);
  FIELD(omniq_enqueue_item_t, args_json);
  FIELD(omniq_enqueue_item_t, kwargs_json);
  FIELD(omniq_enqueue_item_t, opts);
  printf("\nomniq_worker_opts_t %zu", sizeof(omniq_worker_opts_t));
  FIELD(omniq_worker_opts_t, concurrency);
  FIELD(omniq_worker_opts_t, poll_interval_ms);
  FIELD(omniq_worker_opts_t, shutdown_timeout_ms);
  FIELD(omniq_worker_opts_t, isolation);
  FIELD(omniq_worker_opts_t, queues);
  FIELD(omniq_worker_opts_t, max_tasks_per_child);
  FIELD(omniq_worker_opts_t, memory_limit_bytes);
  FIELD(omniq_worker_opts_t, cpu_limit_ms);
  FIELD(omniq_worker_opts_t, files_limit);
  FIELD(omniq_worker_opts_t, handler_path);
  printf("\nomniq_list_opts_t %zu", sizeof(omniq_list_opts_t));
  FIELD(omniq_list_opts_t, statuses);
  FIELD(omniq_list_opts_t, queue);
  FIELD(omniq_list_opts_t, func);
  FIELD(omniq_list_opts_t, created_from_ms);
  FIELD(omniq_list_opts_t, created_to_ms);
  FIELD(omniq_list_opts_t, finished_from_ms);
  FIELD(omniq_list_opts_t, finished_to_ms);
  FIELD(omniq_list_opts_t, limit);
  FIELD(omniq_list_opts_t, cursor);
  FIELD(omniq_list_opts_t, newest_first);
  printf("\n");
  return 0;
}

/* The sum of the task's arguments, which must be numbers. */
static int sum(omniq_job_t *job, void *userdata) {
  json_error_t err;
  json_t *args = json_loads(omniq_job_args(job), 0, &err), *v;
  double total = 0;
  size_t i;
  char out[64];
  (void)userdata;
  if (!json_is_array(args)) {
    json_decref(args);
    omniq_job_fail(job, "TypeError", "arguments are not an array", 0);
    return OMNIQ_EFAILED;
  }
  json_array_foreach(args, i, v) {
    if (!json_is_number(v)) {
      json_decref(args);
      omniq_job_fail(job, "TypeError", "an argument is not a number", 0);
      return OMNIQ_EFAILED;
    }
    total += json_number_value(v);
  }
  json_decref(args);
  snprintf(out, sizeof out, "%.17g", total);
  return omniq_job_return(job, out);
}

int main(int argc, char **argv) {
  omniq_t *oq;
  int rc;
  if (argc == 2 && strcmp(argv[1], "layout") == 0) return layout();
  if (argc < 3) {
    fprintf(stderr, "usage: c_peer layout | serve FUNC N | enqueue FUNC ARGS | result ID\n");
    return 2;
  }
  if ((rc = omniq_open(&oq, NULL)) != OMNIQ_OK) return fail(NULL, "open", rc);

  if (strcmp(argv[1], "serve") == 0 && argc == 4) {
    omniq_worker_opts_t wo;
    long want = atol(argv[3]), done = 0, n;
    if ((rc = omniq_register(oq, argv[2], sum, NULL)) != OMNIQ_OK) return fail(oq, "register", rc);
    omniq_worker_opts_init(&wo);
    wo.concurrency = 1;
    while (done < want) { /* the Python side enqueues before starting us */
      if ((rc = omniq_worker_process(oq, &wo, want - done, &n)) != OMNIQ_OK)
        return fail(oq, "process", rc);
      if (n == 0) break;
      done += n;
    }
    printf("%ld\n", done);
  } else if (strcmp(argv[1], "enqueue") == 0 && argc == 4) {
    char id[OMNIQ_ID_SIZE];
    if ((rc = omniq_enqueue(oq, argv[2], argv[3], NULL, NULL, id)) != OMNIQ_OK)
      return fail(oq, "enqueue", rc);
    printf("%s\n", id);
  } else if (strcmp(argv[1], "result") == 0 && argc == 3) {
    omniq_result_t *r;
    if ((rc = omniq_get_result(oq, argv[2], 30.0, &r)) != OMNIQ_OK) return fail(oq, "result", rc);
    const omniq_task_error_t *e = omniq_result_error(r);
    printf("%s %s\n", omniq_status_name(omniq_result_status(r)),
           e != NULL ? omniq_error_type(e) : omniq_result_value(r));
    omniq_result_free(r);
  } else {
    omniq_close(oq);
    fprintf(stderr, "c_peer: unknown command '%s'\n", argv[1]);
    return 2;
  }
  omniq_close(oq);
  return 0;
}
