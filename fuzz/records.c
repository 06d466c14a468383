/* SPDX-License-Identifier: MIT */
/* Fuzz target: the JSON forms of tasks, results and TaskErrors that every
 * backend stores (base/records.c), and the ISO-8601 times inside them. The
 * first byte picks the form; the rest is the text. Property: text that
 * parses encodes to text that parses back to the same record, field by
 * field; anything else is refused with OMNIQ_ESERIALIZE, never a crash. */
#include <string.h>

#include "base/clock.h"
#include "fuzz.h"
#include "omniq/storage.h"

static int same_str(const char *a, const char *b) {
  return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static int same_error(const omniq_task_error_t *a, const omniq_task_error_t *b) {
  if (a == NULL || b == NULL) return a == b;
  return same_str(a->error_type, b->error_type) && same_str(a->message, b->message) &&
         a->timestamp == b->timestamp && same_str(a->traceback, b->traceback) &&
         a->retry_count == b->retry_count && a->is_retryable == b->is_retryable;
}

static int same_task(const omniq_task_t *a, const omniq_task_t *b) {
  return strcmp(a->id, b->id) == 0 && same_str(a->func, b->func) && same_str(a->queue, b->queue) &&
         same_str(a->args, b->args) && same_str(a->kwargs, b->kwargs) && a->status == b->status &&
         a->priority == b->priority && a->attempts == b->attempts &&
         a->max_retries == b->max_retries && a->eta_ms == b->eta_ms &&
         a->interval_ms == b->interval_ms && a->timeout_ms == b->timeout_ms &&
         a->created_at_ms == b->created_at_ms && a->started_at_ms == b->started_at_ms &&
         a->lease_until_ms == b->lease_until_ms && a->token == b->token &&
         same_error(a->last_error, b->last_error);
}

static int same_result(const omniq_result_t *a, const omniq_result_t *b) {
  return strcmp(a->task_id, b->task_id) == 0 && a->status == b->status &&
         same_str(a->value, b->value) && same_error(a->error, b->error) &&
         a->attempts == b->attempts && a->finished_at_ms == b->finished_at_ms &&
         a->last_attempt_at_ms == b->last_attempt_at_ms;
}

static void task_round_trip(const char *text) {
  omniq_task_t *t = NULL, *back = NULL;
  int rc = omniq_task_from_json(text, &t);
  FUZZ_CHECK(rc == OMNIQ_OK || rc == OMNIQ_ESERIALIZE || rc == OMNIQ_ENOMEM);
  if (rc != OMNIQ_OK) return;
  char *again = omniq_task_to_json(t);
  if (again != NULL) {
    FUZZ_CHECK(omniq_task_from_json(again, &back) == OMNIQ_OK);
    FUZZ_CHECK(same_task(t, back));
  }
  free(again);
  omniq_task_free(t);
  omniq_task_free(back);
}

static void result_round_trip(const char *text) {
  omniq_result_t *r = NULL, *back = NULL;
  int rc = omniq_result_from_json(text, &r);
  FUZZ_CHECK(rc == OMNIQ_OK || rc == OMNIQ_ESERIALIZE || rc == OMNIQ_ENOMEM);
  if (rc != OMNIQ_OK) return;
  char *again = omniq_result_to_json(r);
  if (again != NULL) {
    FUZZ_CHECK(omniq_result_from_json(again, &back) == OMNIQ_OK);
    FUZZ_CHECK(same_result(r, back));
  }
  free(again);
  omniq_result_free(r);
  omniq_result_free(back);
}

static void error_round_trip(const char *text) {
  omniq_task_error_t *e = NULL, *back = NULL;
  int rc = omniq_task_error_from_json(text, &e);
  FUZZ_CHECK(rc == OMNIQ_OK || rc == OMNIQ_ESERIALIZE || rc == OMNIQ_ENOMEM);
  if (rc != OMNIQ_OK) return;
  char *again = omniq_task_error_to_json(e);
  if (again != NULL) {
    FUZZ_CHECK(omniq_task_error_from_json(again, &back) == OMNIQ_OK);
    FUZZ_CHECK(same_error(e, back));
  }
  free(again);
  omniq_task_error_free(e);
  omniq_task_error_free(back);
}

/* A time text that parses formats back to the same instant; an instant a
 * store keeps formats to text that parses back to it. */
static void time_round_trip(const char *text, const uint8_t *data, size_t size) {
  int64_t ms, again;
  char buf[OMNIQ__ISO_SIZE];
  if (omniq__iso8601_parse(text, &ms) == OMNIQ_OK) {
    omniq__iso8601(ms, buf);
    FUZZ_CHECK(omniq__iso8601_parse(buf, &again) == OMNIQ_OK && again == ms);
  }
  uint64_t raw = 0;
  for (size_t i = 0; i < size && i < 8; i++) raw = raw << 8 | data[i];
  ms = (int64_t)raw;
  omniq__iso8601(ms, buf); /* any int64: no overflow, no crash */
  if (ms >= 0 && ms <= OMNIQ_TIME_MAX_MS)
    FUZZ_CHECK(omniq__iso8601_parse(buf, &again) == OMNIQ_OK && again == ms);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  char *text = fuzz_cstr(data + 1, size - 1);
  switch (data[0] % 4) {
  case 0: task_round_trip(text); break;
  case 1: result_round_trip(text); break;
  case 2: error_round_trip(text); break;
  default: time_round_trip(text, data + 1, size - 1); break;
  }
  free(text);
  return 0;
}
