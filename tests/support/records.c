/* SPDX-License-Identifier: MIT */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/records.h"

void th_assert_error_equal(const omniq_task_error_t *a, const omniq_task_error_t *b) {
  if (a == NULL || b == NULL) {
    assert_ptr_equal(a, b);
    return;
  }
  assert_string_equal(a->error_type, b->error_type);
  assert_string_equal(a->message, b->message);
  assert_int_equal(a->timestamp, b->timestamp);
  if (a->traceback == NULL || b->traceback == NULL)
    assert_ptr_equal(a->traceback, b->traceback);
  else
    assert_string_equal(a->traceback, b->traceback);
  assert_int_equal(a->retry_count, b->retry_count);
  assert_int_equal(a->is_retryable, b->is_retryable);
}

void th_assert_as_enqueued(const omniq_task_t *got, const omniq_task_t *want) {
  assert_string_equal(got->id, want->id);
  assert_string_equal(got->func, want->func);
  assert_string_equal(got->queue, want->queue);
  assert_string_equal(got->args, want->args);
  assert_string_equal(got->kwargs, want->kwargs);
  assert_int_equal(got->status, OMNIQ_PENDING);
  assert_int_equal(got->priority, want->priority);
  assert_int_equal(got->attempts, 0);
  assert_int_equal(got->max_retries, want->max_retries);
  assert_int_equal(got->eta_ms, want->eta_ms);
  assert_int_equal(got->interval_ms, want->interval_ms);
  assert_int_equal(got->timeout_ms, want->timeout_ms);
  assert_int_equal(got->created_at_ms, want->created_at_ms);
  assert_int_equal(got->token, 0);
  th_assert_error_equal(got->last_error, want->last_error);
}

void th_assert_result_equal(const omniq_result_t *got, const omniq_result_t *want) {
  assert_string_equal(got->task_id, want->task_id);
  assert_int_equal(got->status, want->status);
  if (got->value == NULL || want->value == NULL)
    assert_ptr_equal(got->value, want->value);
  else
    assert_string_equal(got->value, want->value);
  th_assert_error_equal(got->error, want->error);
  assert_int_equal(got->attempts, want->attempts);
  assert_int_equal(got->finished_at_ms, want->finished_at_ms);
  assert_int_equal(got->last_attempt_at_ms, want->last_attempt_at_ms);
}
