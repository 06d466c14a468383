/* SPDX-License-Identifier: MIT */
/* The storage contract's own fixture and helpers, shared by its sections.
 *
 * The contract is written against the omniq_storage_ops_t table and the
 * public record helpers alone: it is installed as libomniq_contract and
 * runs backends that live outside this tree, so nothing here may use the
 * library's internals. Each test gets a fresh, empty store from the
 * environment's setup and an open backend on it; time is passed explicitly
 * in every request, so nothing waits on a clock.
 *
 * Sections (one file each): enqueue.c, claim.c, finish.c, cancel.c,
 * leases.c, results.c, concurrency.c; for storage ABI 3, list.c, manage.c
 * (retry, delete, retention, finished_at and crashes), queues.c (pause,
 * rate limits, statistics, running totals, chores) and unique.c; for
 * storage ABI 6, batch.c (finish_many and release). A section
 * lists its tests in an array that run.c gathers. */
#ifndef OMNIQ_CONTRACT_SUITE_H
#define OMNIQ_CONTRACT_SUITE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "omniq/contract.h"
#include "support/records.h"

#define NOW INT64_C(1800000000000) /* 2027-01-15: a fixed "now" */
#define LEASE_MS 30000
#define ERRLEN 512

/* The run's table and environment (set by omniq_contract_run). */
extern const omniq_storage_ops_t *ct_ops;
extern const omniq_contract_env_t *ct_env;

typedef struct ct_fx {
  omniq_settings_t settings;
  void *be; /* the open backend, or NULL */
  char err[ERRLEN];
} ct_fx_t;

/* A section: its tests, how many, and the storage ABI that has what they
 * test (0 = 2): a table written for an older ABI skips the section. */
typedef struct ct_section {
  const struct CMUnitTest *tests;
  size_t n;
  uint32_t abi;
} ct_section_t;

extern const ct_section_t ct_section_enqueue, ct_section_claim, ct_section_finish,
    ct_section_cancel, ct_section_leases, ct_section_results, ct_section_concurrency;
/* Storage ABI 3: operating a queue. */
extern const ct_section_t ct_section_list, ct_section_manage, ct_section_queues,
    ct_section_unique;
/* Storage ABI 6: many outcomes in one step, and release (optional). */
extern const ct_section_t ct_section_batch;

/* cmocka setup and teardown: a fresh store and an open backend on it. */
int ct_setup(void **state);
int ct_teardown(void **state);
#define CT_TEST(name) cmocka_unit_test_setup_teardown(name, ct_setup, ct_teardown)

/* Asserts an operation returned OMNIQ_OK, showing the backend's message. */
#define OK(fx, expr)                                                                     \
  do {                                                                                   \
    (fx)->err[0] = '\0';                                                                 \
    int ok_rc_ = (expr);                                                                 \
    if (ok_rc_ != OMNIQ_OK) fail_msg("%s -> %s: %s", #expr, omniq_err_name(ok_rc_), (fx)->err); \
  } while (0)

/* Asserts an operation failed with a given code. */
#define FAILS(fx, code, expr)                                                  \
  do {                                                                         \
    int fails_rc_ = (expr);                                                    \
    if (fails_rc_ != (code))                                                   \
      fail_msg("%s -> %s, expected %s (%s)", #expr, omniq_err_name(fails_rc_), \
               omniq_err_name(code), (fx)->err);                               \
  } while (0)

/* Closes the backend and opens it again on the same store. */
void ct_reopen(ct_fx_t *fx);

/* ---- records (the caller frees them) ---- */
/* A fresh id, greater than every id made before it in this process (a
 * backend may break claim-order ties by id). */
void ct_new_id(char out[OMNIQ_ID_SIZE]);
omniq_task_t *ct_task(const char *queue, int priority, int64_t eta);
omniq_task_error_t *ct_error(const char *type, int retry_count, int retryable);
omniq_result_t *ct_result(const char *id, int status, const char *value,
                          const omniq_task_error_t *error, int attempts, int64_t finished_at);
/* Frees n tasks and the array, as a backend hands them out. */
void ct_tasks_free(omniq_task_t **tasks, size_t n);
/* Every field a task keeps from enqueue to its first claim. */
void ct_assert_as_enqueued(const omniq_task_t *got, const omniq_task_t *want);

/* A task of queue (priority 0, due at NOW) carrying a unique key (NULL =
 * none) held for_ms after it finishes; yours. */
omniq_task_t *ct_task_keyed(const char *queue, const char *key, int64_t for_ms);

/* ---- operations ---- */
int ct_enqueue(ct_fx_t *fx, omniq_task_t **tasks, size_t n);
void ct_enqueue1(ct_fx_t *fx, omniq_task_t *t);
int ct_claim_q(ct_fx_t *fx, const char *const *queues, size_t nqueues, int64_t now, size_t max,
               omniq_task_t ***out, size_t *n);
/* Claims from "default". */
int ct_claim(ct_fx_t *fx, int64_t now, size_t max, omniq_task_t ***out, size_t *n);
/* Claims exactly one task, which must be id; yours. */
omniq_task_t *ct_claim_one(ct_fx_t *fx, const char *id, int64_t now);
void ct_assert_nothing_due(ct_fx_t *fx, int64_t now);
omniq_task_t *ct_get(ct_fx_t *fx, const char *id);
omniq_result_t *ct_get_result(ct_fx_t *fx, const char *id);
void ct_assert_no_result(ct_fx_t *fx, const char *id);
/* A decision for the run `claimed` was claimed for. */
omniq_decision_t ct_decision(const omniq_task_t *claimed, int next_status);
int ct_finish(ct_fx_t *fx, const omniq_decision_t *d);
int ct_cancel(ct_fx_t *fx, const char *id, int64_t finished_at, int *prev_status);
void ct_counts(ct_fx_t *fx, int64_t c[OMNIQ_STATUS_COUNT]);

/* ---- storage ABI 3 ---- */
/* Ends the run `claimed` was claimed for at `at`: SUCCESS or FAILED with a
 * result finished at `at`, or PENDING (a retry due at `at`); the run adds
 * to the running total `runs`. */
void ct_end_run(ct_fx_t *fx, const omniq_task_t *claimed, int next_status, int64_t at, int runs);
/* Enqueues t (taken: freed here) with a priority above every other task
 * (and above every task brought before) and brings it to status at `at`: RUNNING by a claim, SUCCESS or FAILED
 * by a claim and a finish, CANCELLED by a cancel; PENDING leaves it. The
 * task as stored afterwards (yours). */
omniq_task_t *ct_bring(ct_fx_t *fx, omniq_task_t *t, int status, int64_t at);
int ct_list(ct_fx_t *fx, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n);
/* The stats record of one queue (asserts exactly one came back). */
omniq_queue_info_t ct_queue(ct_fx_t *fx, const char *queue, int64_t now);

#endif
