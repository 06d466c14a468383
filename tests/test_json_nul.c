/* SPDX-License-Identifier: MIT */
/* "\u0000" in args, kwargs, object keys and results is accepted and comes
 * back byte for byte on each backend (argv[1], "sqlite" by default): to the
 * handler, from omniq_get_task and omniq_get_result, after a retry rewrote
 * the task and after the store was closed and opened again. The texts stay
 * JSON text: a NUL is the six bytes of its escape, so each accessor's C
 * string holds all of it. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "support/helpers.h"

static const char *backend = "sqlite";

typedef th_store_t fx_t;

static const char ARGS[] = "[\"nul:\\u0000:end\", {\"k\\u0000\": \"\\u0000\"}, \"\\\\u0000\"]";
static const char KWARGS[] = "{\"a\\u0000b\": [\"\\u0000\\u0000\"], \"a\\u0000c\": 1}";
static const char VALUE[] = "{\"r\\u0000\": \"x\\u0000y\", \"\\u0000\": null}";

static atomic_int runs, args_exact;

/* Fails its first run (so the task is rewritten for a retry), then
 * returns VALUE; records whether it saw ARGS and KWARGS exactly. */
static int handler(omniq_job_t *job, void *ud) {
  (void)ud;
  int exact = strcmp(omniq_job_args(job), ARGS) == 0 && strcmp(omniq_job_kwargs(job), KWARGS) == 0;
  atomic_store(&args_exact, exact);
  if (atomic_fetch_add(&runs, 1) == 0) {
    omniq_job_fail(job, "Again", "first run fails", 1);
    return OMNIQ_OK;
  }
  return omniq_job_return(job, VALUE);
}

static void assert_task_exact(omniq_t *oq, const char *id) {
  omniq_task_t *t = NULL;
  th_ok(oq, omniq_get_task(oq, id, &t));
  assert_string_equal(omniq_task_args(t), ARGS);
  assert_string_equal(omniq_task_kwargs(t), KWARGS);
  omniq_task_free(t);
}

static void assert_result_exact(omniq_t *oq, const char *id) {
  omniq_result_t *r = NULL;
  th_ok(oq, omniq_get_result(oq, id, 0, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(r), VALUE);
  omniq_result_free(r);
}

static void test_nul_in_args_kwargs_keys_and_results_round_trips_exactly(void **state) {
  fx_t *fx = *state;
  char id[OMNIQ_ID_SIZE], batch[2][OMNIQ_ID_SIZE];
  omniq_enqueue_opts_t o;
  omniq_worker_opts_t wo;
  long done = 0;
  atomic_store(&runs, 0);
  omniq_enqueue_opts_init(&o);
  o.max_retries = 2;
  th_ok(fx->oq, omniq_enqueue(fx->oq, "nul", ARGS, KWARGS, &o, id));
  assert_task_exact(fx->oq, id);

  th_ok(fx->oq, omniq_register(fx->oq, "nul", handler, NULL));
  omniq_worker_opts_init(&wo);
  wo.concurrency = 1;
  th_ok(fx->oq, omniq_worker_process(fx->oq, &wo, 1, &done)); /* fails, retry stored */
  assert_true(atomic_load(&args_exact));
  assert_task_exact(fx->oq, id);
  th_clock_advance(&fx->clock, 60000); /* past the backoff */
  th_ok(fx->oq, omniq_worker_process(fx->oq, &wo, 1, &done));
  assert_int_equal(atomic_load(&runs), 2);
  assert_true(atomic_load(&args_exact));
  assert_result_exact(fx->oq, id);

  /* A batch, and everything again from a freshly opened store. */
  omniq_enqueue_item_t items[2] = {{"nul", ARGS, KWARGS, NULL}, {"nul", ARGS, KWARGS, NULL}};
  th_ok(fx->oq, omniq_enqueue_many(fx->oq, items, 2, batch));
  omniq_close(fx->oq);
  th_ok(NULL, omniq_open(&fx->oq, &fx->settings));
  assert_task_exact(fx->oq, id);
  assert_result_exact(fx->oq, id);
  assert_task_exact(fx->oq, batch[0]);
  assert_task_exact(fx->oq, batch[1]);
}

int main(int argc, char **argv) {
  if (argc > 1) backend = argv[1];
  const struct CMUnitTest tests[] = {
#define T(name) \
  cmocka_unit_test_prestate_setup_teardown(name, th_store_setup, th_store_teardown, (void *)backend)
      T(test_nul_in_args_kwargs_keys_and_results_round_trips_exactly),
#undef T
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
