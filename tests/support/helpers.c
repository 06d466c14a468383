/* SPDX-License-Identifier: MIT */
#include "support/helpers.h"

#include "support/postgres.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/records.h"
#include "core/engine.h"

void th_clock_init(th_clock_t *c, int64_t start_ms) { c->now_ms = start_ms; }

void th_clock_advance(th_clock_t *c, int64_t ms) {
  c->now_ms += ms;
  omniq__pool_clock_moved();
}

static _Atomic int64_t frozen_pool_us;

static int64_t frozen_pool_clock(void) { return atomic_load(&frozen_pool_us); }

void th_pool_clock_freeze(void) {
  atomic_store(&frozen_pool_us, INT64_C(1000000000)); /* far from 0: "no time" stays 0 */
  omniq__set_pool_clock_us(frozen_pool_clock);
}

void th_pool_clock_thaw(void) { omniq__set_pool_clock_us(NULL); }

void th_pool_clock_advance(int64_t ms) {
  atomic_fetch_add(&frozen_pool_us, ms * 1000);
  omniq__pool_clock_moved();
}

void th_time_advance(th_clock_t *c, int64_t ms) {
  c->now_ms += ms;
  th_pool_clock_advance(ms);
}

int th_store_setup_frozen(void **state) {
  th_pool_clock_freeze();
  return th_store_setup(state);
}

int th_store_teardown_frozen(void **state) {
  int rc = th_store_teardown(state);
  th_pool_clock_thaw();
  return rc;
}

int64_t th_clock_now(void *userdata) { return ((th_clock_t *)userdata)->now_ms; }

void th_settings(omniq_settings_t *s, const char *backend, const char *dir, th_clock_t *clock) {
  omniq_settings_init(s);
  snprintf(s->backend, sizeof s->backend, "%s", backend);
  snprintf(s->base_dir, sizeof s->base_dir, "%s", dir);
  if (strcmp(backend, "postgres") == 0) th_pg_settings(s);
  s->log_level = OMNIQ_LOG_ERROR;
  s->retry_base_ms = 10;
  s->retry_cap_ms = 100;
  if (clock != NULL) {
    s->clock_fn = th_clock_now;
    s->clock_userdata = clock;
  }
}

int th_read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

void th_setenv(const char *name, const char *value) {
  if (value != NULL)
    setenv(name, value, 1);
  else
    unsetenv(name);
}

int th_store_setup(void **state) {
  th_store_t *st = calloc(1, sizeof *st);
  if (st == NULL) return -1;
  st->backend = *state != NULL ? *state : "sqlite";
  st->dir = th_tmpdir();
  th_clock_init(&st->clock, TH_EPOCH_MS);
  th_settings(&st->settings, st->backend, st->dir, &st->clock);
  if (st->dir == NULL || omniq_open(&st->oq, &st->settings) != OMNIQ_OK) {
    print_error("omniq_open: %s\n", omniq_errmsg(NULL));
    th_rmtree(st->dir);
    free(st);
    return -1;
  }
  *state = st;
  return 0;
}

int th_store_teardown(void **state) {
  th_store_t *st = *state;
  if (st == NULL) return 0;
  omniq_close(st->oq);
  th_pg_drop(&st->settings);
  th_rmtree(st->dir);
  free(st);
  return 0;
}

omniq_task_t *th_claim_one(omniq_t *oq) {
  omniq_task_t **tasks = NULL;
  size_t n = 0;
  th_ok(oq, omniq__engine_claim(oq, NULL, 0, 1, &tasks, &n));
  omniq_task_t *t = n == 1 ? tasks[0] : NULL;
  if (n == 1) tasks[0] = NULL;
  omniq__tasks_free(tasks, n);
  return t;
}

omniq_result_t *th_run_with(th_store_t *st, const char *func, const char *args_json,
                            const omniq_worker_opts_t *o) {
  omniq_enqueue_opts_t eo;
  omniq_result_t *r = NULL;
  char id[OMNIQ_ID_SIZE];
  long done = 0;
  omniq_enqueue_opts_init(&eo);
  eo.max_retries = 3;
  th_ok(st->oq, omniq_enqueue(st->oq, func, args_json, NULL, &eo, id));
  th_ok(st->oq, omniq_worker_process(st->oq, o, 0, &done));
  assert_int_equal(done, 1);
  th_ok(st->oq, omniq_get_result(st->oq, id, 0, &r));
  return r;
}

omniq_result_t *th_run_one(th_store_t *st, const char *func, const char *args_json,
                           int isolation) {
  omniq_worker_opts_t o;
  omniq_worker_opts_init(&o);
  o.concurrency = 1;
  o.isolation = isolation;
  return th_run_with(st, func, args_json, &o);
}

int th_store_setup_handlers(void **state, const th_handler_t *handlers, size_t n) {
  if (th_store_setup(state) != 0) return -1;
  th_store_t *st = *state;
  for (size_t i = 0; i < n; i++)
    th_ok(st->oq, omniq_register(st->oq, handlers[i].name, handlers[i].fn, NULL));
  return 0;
}

void th_process_opts(omniq_worker_opts_t *o, int concurrency) {
  omniq_worker_opts_init(o);
  o->concurrency = concurrency;
  o->isolation = OMNIQ_ISOLATION_PROCESS;
}

void th_enqueue_once(omniq_t *oq, const char *func, const char *args, int64_t timeout_ms,
                     char id[OMNIQ_ID_SIZE]) {
  omniq_enqueue_opts_t o;
  omniq_enqueue_opts_init(&o);
  o.max_retries = 1;
  o.timeout_ms = timeout_ms;
  th_ok(oq, omniq_enqueue(oq, func, args, NULL, &o, id));
}
