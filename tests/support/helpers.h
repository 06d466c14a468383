/* SPDX-License-Identifier: MIT */
/* Shared test helpers: a manual clock, test settings, and a store opened
 * on a fresh directory for one test. Includes cmocka and the other support
 * headers most tests need. */
#ifndef OMNIQ_TEST_HELPERS_H
#define OMNIQ_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "omniq.h"
#include "support/files.h"
#include "support/records.h"

/* A clock tests move by hand. Thread-safe. */
typedef struct th_clock {
  _Atomic int64_t now_ms;
} th_clock_t;

#define TH_EPOCH_MS INT64_C(1800000000000) /* 2027-01-15, a fixed "now" */

void th_clock_init(th_clock_t *c, int64_t start_ms);
/* Moves the store's clock, and wakes the pools of this process to look at
 * it at once (a deadline passes by the store's clock too). */
void th_clock_advance(th_clock_t *c, int64_t ms);
int64_t th_clock_now(void *userdata); /* an omniq_clock_fn over th_clock_t */

/* The pool's clock (leases, extensions, the lease margin, deadlines, the
 * batch's delay, report retries), frozen for the whole process: no time
 * passes for a pool until the test moves it, so nothing in a pool happens
 * by time alone (an outcome waits in its batch until a runner commits it,
 * a lease never runs out). Freeze with no pool running; thaw in teardown. */
void th_pool_clock_freeze(void);
void th_pool_clock_thaw(void);
/* Moves the frozen pool clock on by ms and wakes every pool to look at it:
 * the keeper acts at once on what has come due. Any thread. */
void th_pool_clock_advance(int64_t ms);
/* Moves the store's clock and the pool's together, as real time would. */
void th_time_advance(th_clock_t *c, int64_t ms);

/* Settings for a test store under dir, on the manual clock, logging only
 * errors (so test output stays readable). backend: "sqlite", "file" or
 * "postgres" (a fresh schema on OMNIQ_DB_URL: support/postgres.h). */
void th_settings(omniq_settings_t *s, const char *backend, const char *dir, th_clock_t *clock);

/* A store for one test: a fresh directory, the manual clock at TH_EPOCH_MS,
 * th_settings, and an open handle. */
typedef struct th_store {
  char *dir;
  const char *backend;
  th_clock_t clock;
  omniq_settings_t settings;
  omniq_t *oq;
} th_store_t;

/* cmocka setup: *state names the backend on entry (NULL = "sqlite", as with
 * cmocka_unit_test_prestate_setup_teardown) and holds the th_store_t on
 * success. A store that cannot open fails the test and leaves nothing. */
int th_store_setup(void **state);
/* cmocka teardown: closes the handle, removes the directory (and a
 * postgres store's schema). */
int th_store_teardown(void **state);
/* th_store_setup and th_store_teardown with the pool's clock frozen
 * (th_pool_clock_freeze) from before the store opens to after it closes. */
int th_store_setup_frozen(void **state);
int th_store_teardown_frozen(void **state);

/* Claims at most one due task of the default queue through the engine, as
 * a worker would: the task (yours: omniq_task_free) or NULL. Fails the test
 * on an error. */
omniq_task_t *th_claim_one(omniq_t *oq);

/* Enqueues func(args_json) with max_retries 3, runs the queue dry with one
 * runner in the given isolation, and returns the task's result (yours:
 * omniq_result_free). Fails the test unless exactly that task ran. */
omniq_result_t *th_run_one(th_store_t *st, const char *func, const char *args_json,
                           int isolation);
/* The same with the worker options o (a drain of them). */
omniq_result_t *th_run_with(th_store_t *st, const char *func, const char *args_json,
                            const omniq_worker_opts_t *o);

/* A handler and the name it is registered under, for tables of them. */
typedef struct th_handler {
  const char *name;
  omniq_handler_fn fn;
} th_handler_t;

/* th_store_setup, then registers the n handlers (NULL userdata). */
int th_store_setup_handlers(void **state, const th_handler_t *handlers, size_t n);

/* Worker options: defaults, concurrency runners, process isolation. */
void th_process_opts(omniq_worker_opts_t *o, int concurrency);

/* Enqueues func(args) for a single run (max_retries 1) with timeout_ms
 * (-1 = the settings' default). */
void th_enqueue_once(omniq_t *oq, const char *func, const char *args, int64_t timeout_ms,
                     char id[OMNIQ_ID_SIZE]);

/* Reads exactly n bytes (retrying short reads and EINTR); 0, or -1 on EOF
 * or error. For pipes between a test and the processes it forks. */
int th_read_full(int fd, void *buf, size_t n);

/* Sets (value != NULL) or unsets an environment variable. */
void th_setenv(const char *name, const char *value);

/* Asserts rc == OMNIQ_OK, printing the handle's message otherwise. */
#define th_ok(oq, expr)                                                          \
  do {                                                                           \
    int th_rc_ = (expr);                                                         \
    if (th_rc_ != OMNIQ_OK)                                                      \
      fail_msg("%s -> %s: %s", #expr, omniq_err_name(th_rc_), omniq_errmsg(oq)); \
  } while (0)

/* Asserts a storage operation returned OMNIQ_OK, showing the backend's
 * message (written to err) if not. err is cleared first. */
#define th_be_ok(err, expr)                                                              \
  do {                                                                                   \
    (err)[0] = '\0';                                                                     \
    int th_be_rc_ = (expr);                                                              \
    if (th_be_rc_ != OMNIQ_OK)                                                           \
      fail_msg("%s -> %s: %s", #expr, omniq_err_name(th_be_rc_), (err));                \
  } while (0)

#endif
