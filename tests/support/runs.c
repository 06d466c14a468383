/* SPDX-License-Identifier: MIT */
/* Acting as a worker through the engine (see runs.h). */
#include "support/runs.h"

#include "base/records.h"
#include "core/engine.h"

void th_enqueue(th_store_t *st, const omniq_enqueue_opts_t *opts, char id[OMNIQ_ID_SIZE]) {
  th_ok(st->oq, omniq_enqueue(st->oq, "work", "[1]", NULL, opts, id));
}

omniq_task_t *th_claim(th_store_t *st, const char *queue) {
  const char *const qs[1] = {queue};
  omniq_task_t **tasks = NULL;
  size_t n = 0;
  th_ok(st->oq, omniq__engine_claim(st->oq, qs, queue != NULL ? 1 : 0, 1, &tasks, &n));
  omniq_task_t *t = n == 1 ? tasks[0] : NULL;
  if (n == 1) tasks[0] = NULL;
  omniq__tasks_free(tasks, n);
  return t;
}

int th_end(th_store_t *st, const omniq_task_t *t, omniq__run_kind_t kind) {
  omniq__run_report_t r = {.kind = kind, .message = "what happened"};
  if (kind == OMNIQ__RUN_OK) r.value = "1";
  if (kind == OMNIQ__RUN_HANDLER_FAILED) {
    r.error_type = "ValueError";
    r.retryable = 1;
  }
  return omniq__engine_finish(st->oq, t, &r);
}

omniq_task_t *th_task(th_store_t *st, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(st->oq, omniq_get_task(st->oq, id, &t));
  return t;
}

int th_status(th_store_t *st, const char *id) {
  omniq_task_t *t = th_task(st, id);
  int s = omniq_task_status(t);
  omniq_task_free(t);
  return s;
}
