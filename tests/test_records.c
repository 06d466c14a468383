/* SPDX-License-Identifier: MIT */
/* Records: the status transition table, status names, and the JSON forms of
 * TaskError, task and result (round trips and malformed records). */
#include "support/helpers.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/ids.h"
#include "base/records.h"

#define P OMNIQ_PENDING
#define R OMNIQ_RUNNING
#define S OMNIQ_SUCCESS
#define F OMNIQ_FAILED
#define C OMNIQ_CANCELLED

/* DESIGN §3, written out again on purpose: the library's table must agree
 * with this one for all 25 pairs. */
static const struct {
  int from, to, allowed;
} transitions[] = {
    {P, P, 0}, {P, R, 1}, {P, S, 0}, {P, F, 0}, {P, C, 1},  /* claim, cancel */
    {R, P, 1}, {R, R, 0}, {R, S, 1}, {R, F, 1}, {R, C, 1},  /* retry/re-arm/lease, ends */
    {S, P, 0}, {S, R, 0}, {S, S, 0}, {S, F, 0}, {S, C, 0},  /* terminal */
    {F, P, 1}, {F, R, 0}, {F, S, 0}, {F, F, 0}, {F, C, 0},  /* manual retry only */
    {C, P, 1}, {C, R, 0}, {C, S, 0}, {C, F, 0}, {C, C, 0},  /* manual retry only */
};

static void test_transition_table_matches_design_for_all_25_pairs(void **state) {
  (void)state;
  assert_int_equal(sizeof transitions / sizeof transitions[0], 25);
  for (size_t i = 0; i < 25; i++) {
    int got = omniq_transition_allowed(transitions[i].from, transitions[i].to);
    if (got != transitions[i].allowed)
      fail_msg("%s -> %s: got %d, expected %d", omniq_status_name(transitions[i].from),
               omniq_status_name(transitions[i].to), got, transitions[i].allowed);
  }
}

static void test_transitions_from_or_to_unknown_statuses_are_refused(void **state) {
  (void)state;
  assert_false(omniq_transition_allowed(-1, R));
  assert_false(omniq_transition_allowed(P, OMNIQ_STATUS_COUNT));
  assert_false(omniq_transition_allowed(99, 99));
}

static void test_only_success_failed_cancelled_are_terminal(void **state) {
  (void)state;
  assert_false(omniq_status_is_terminal(P));
  assert_false(omniq_status_is_terminal(R));
  assert_true(omniq_status_is_terminal(S));
  assert_true(omniq_status_is_terminal(F));
  assert_true(omniq_status_is_terminal(C));
  assert_false(omniq_status_is_terminal(-1));
}

static void test_status_names_parse_back(void **state) {
  static const char *const names[] = {"PENDING", "RUNNING", "SUCCESS", "FAILED", "CANCELLED"};
  int status = -1;
  (void)state;
  for (int i = 0; i < OMNIQ_STATUS_COUNT; i++) {
    assert_string_equal(omniq_status_name(i), names[i]);
    assert_int_equal(omniq_status_parse(names[i], &status), OMNIQ_OK);
    assert_int_equal(status, i);
  }
  assert_string_equal(omniq_status_name(-1), "UNKNOWN");
  assert_string_equal(omniq_status_name(OMNIQ_STATUS_COUNT), "UNKNOWN");
  status = 42;
  assert_int_equal(omniq_status_parse("pending", &status), OMNIQ_EINVAL);
  assert_int_equal(omniq_status_parse("UNKNOWN", &status), OMNIQ_EINVAL);
  assert_int_equal(omniq_status_parse("", &status), OMNIQ_EINVAL);
  assert_int_equal(omniq_status_parse(NULL, &status), OMNIQ_EINVAL);
  assert_int_equal(status, 42);
}

/* ---- TaskError ------------------------------------------------------------ */

static void test_task_error_json_has_exactly_six_keys(void **state) {
  static const char *const keys[] = {"error_type", "message",     "timestamp",
                                     "traceback",  "retry_count", "is_retryable"};
  (void)state;
  omniq_task_error_t *e =
      omniq_task_error_new("ValueError", "bad input", TH_EPOCH_MS + 5, "at line 3", 2, 1);
  assert_non_null(e);
  char *text = omniq_task_error_to_json(e);
  assert_non_null(text);
  json_t *j = json_loads(text, 0, NULL);
  assert_non_null(j);
  assert_int_equal(json_object_size(j), 6);
  for (size_t i = 0; i < 6; i++)
    if (json_object_get(j, keys[i]) == NULL) fail_msg("key %s missing in %s", keys[i], text);
  assert_string_equal(json_string_value(json_object_get(j, "timestamp")),
                      "2027-01-15T08:00:00.005Z");
  assert_true(json_is_true(json_object_get(j, "is_retryable")));
  assert_int_equal(json_integer_value(json_object_get(j, "retry_count")), 2);
  json_decref(j);

  omniq_task_error_t *back = NULL;
  assert_int_equal(omniq_task_error_from_json(text, &back), OMNIQ_OK);
  th_assert_error_equal(back, e);
  omniq_task_error_free(back);
  omniq__free(text);
  omniq_task_error_free(e);
}

static void test_task_error_null_traceback_round_trips_as_null(void **state) {
  (void)state;
  omniq_task_error_t *e = omniq_task_error_new(NULL, NULL, 0, NULL, 0, 0);
  assert_non_null(e);
  assert_string_equal(e->error_type, "Error"); /* the documented default */
  assert_string_equal(e->message, "");
  char *text = omniq_task_error_to_json(e);
  json_t *j = json_loads(text, 0, NULL);
  assert_true(json_is_null(json_object_get(j, "traceback")));
  assert_true(json_is_false(json_object_get(j, "is_retryable")));
  json_decref(j);
  omniq_task_error_t *back = NULL;
  assert_int_equal(omniq_task_error_from_json(text, &back), OMNIQ_OK);
  assert_null(back->traceback);
  th_assert_error_equal(back, e);
  omniq_task_error_free(back);
  omniq__free(text);
  omniq_task_error_free(e);
}

static void test_task_error_from_json_rejects_malformed(void **state) {
  static const char *const bad[] = {
      NULL, "", "[]", "{", "null",
      /* is_retryable missing, or not a boolean */
      "{\"error_type\":\"E\",\"message\":\"m\",\"timestamp\":null,\"traceback\":null,"
      "\"retry_count\":0}",
      "{\"error_type\":\"E\",\"message\":\"m\",\"timestamp\":null,\"traceback\":null,"
      "\"retry_count\":0,\"is_retryable\":1}",
      /* error_type missing; message not a string; retry_count not an integer */
      "{\"message\":\"m\",\"traceback\":null,\"retry_count\":0,\"is_retryable\":true}",
      "{\"error_type\":\"E\",\"message\":5,\"retry_count\":0,\"is_retryable\":true}",
      "{\"error_type\":\"E\",\"message\":\"m\",\"retry_count\":\"0\",\"is_retryable\":true}",
      /* timestamp not ISO-8601 */
      "{\"error_type\":\"E\",\"message\":\"m\",\"timestamp\":\"yesterday\",\"retry_count\":0,"
      "\"is_retryable\":true}",
  };
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq_task_error_t *e = (omniq_task_error_t *)1;
    if (omniq_task_error_from_json(bad[i], &e) != OMNIQ_ESERIALIZE)
      fail_msg("accepted: %s", bad[i] != NULL ? bad[i] : "(null)");
    assert_null(e);
  }
}

/* ---- tasks ----------------------------------------------------------------- */

static omniq_task_t *full_task(void) {
  omniq_task_t *t = omniq_task_new();
  assert_non_null(t);
  omniq__id_new(TH_EPOCH_MS, t->id);
  t->func = omniq__strdup("reports.build");
  t->queue = omniq__strdup("slow");
  t->args = omniq__strdup("[1,\"two\",{\"3\":[4]}]");
  t->kwargs = omniq__strdup("{\"k\":\"v \\\"quoted\\\"\"}");
  t->status = OMNIQ_RUNNING;
  t->priority = -3;
  t->attempts = 2;
  t->max_retries = 5;
  t->eta_ms = TH_EPOCH_MS + 1001;
  t->interval_ms = 60000;
  t->timeout_ms = 2500;
  t->created_at_ms = TH_EPOCH_MS - 7;
  t->started_at_ms = TH_EPOCH_MS + 1002;
  t->lease_until_ms = TH_EPOCH_MS + 31002;
  t->token = 9;
  t->last_error = omniq_task_error_new("TimeoutError", "too slow", TH_EPOCH_MS + 3, NULL, 1, 1);
  assert_non_null(t->last_error);
  return t;
}

static void assert_task_equal(const omniq_task_t *a, const omniq_task_t *b) {
  assert_string_equal(a->id, b->id);
  assert_string_equal(a->func, b->func);
  assert_string_equal(a->queue, b->queue);
  assert_string_equal(a->args, b->args);
  assert_string_equal(a->kwargs, b->kwargs);
  assert_int_equal(a->status, b->status);
  assert_int_equal(a->priority, b->priority);
  assert_int_equal(a->attempts, b->attempts);
  assert_int_equal(a->max_retries, b->max_retries);
  assert_int_equal(a->eta_ms, b->eta_ms);
  assert_int_equal(a->interval_ms, b->interval_ms);
  assert_int_equal(a->timeout_ms, b->timeout_ms);
  assert_int_equal(a->created_at_ms, b->created_at_ms);
  assert_int_equal(a->started_at_ms, b->started_at_ms);
  assert_int_equal(a->lease_until_ms, b->lease_until_ms);
  assert_int_equal(a->token, b->token);
  if (a->last_error == NULL || b->last_error == NULL)
    assert_ptr_equal(a->last_error, b->last_error);
  else
    th_assert_error_equal(a->last_error, b->last_error);
}

/* t to JSON and back: every field the same. */
static void assert_round_trip(const omniq_task_t *t) {
  omniq_task_t *back = NULL;
  char *text = omniq_task_to_json(t);
  assert_non_null(text);
  assert_int_equal(omniq_task_from_json(text, &back), OMNIQ_OK);
  assert_task_equal(back, t);
  omniq__free(text);
  omniq_task_free(back);
}

static void test_task_json_round_trip_preserves_every_field(void **state) {
  (void)state;
  omniq_task_t *t = full_task();
  assert_round_trip(t);
  /* And without a last error (assert_task_equal checks it is NULL). */
  omniq_task_error_free(t->last_error);
  t->last_error = NULL;
  assert_round_trip(t);
  omniq_task_free(t);
}

/* Texts around the size of the encoder's first buffer, and far past it,
 * come out whole. */
static void test_task_json_of_any_length_round_trips(void **state) {
  (void)state;
  static const size_t lens[] = {0, 1500, 1700, 1800, 1900, 2000, 2100, 100000};
  for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    omniq_task_t *t = full_task();
    char *args = omniq__malloc(lens[i] + 3);
    assert_non_null(args);
    args[0] = '"';
    memset(args + 1, 'a', lens[i]);
    strcpy(args + 1 + lens[i], "\"");
    omniq__free(t->args);
    t->args = args;
    assert_round_trip(t);
    omniq_task_free(t);
  }
}

static void test_task_dup_copies_every_field(void **state) {
  (void)state;
  omniq_task_t *t = full_task(), *d = omniq_task_dup(t);
  assert_non_null(d);
  assert_ptr_not_equal(d->func, t->func);
  assert_ptr_not_equal(d->last_error, t->last_error);
  assert_task_equal(d, t);
  omniq_task_free(d);
  omniq_task_free(t);
  assert_null(omniq_task_dup(NULL));
  assert_null(omniq_task_to_json(NULL));
}

/* The task's JSON with one change made through jansson: key removed
 * (value NULL) or replaced. Returns malloc'd text. */
static char *task_json_with(const char *key, json_t *value) {
  omniq_task_t *t = full_task();
  char *text = omniq_task_to_json(t);
  json_t *j = json_loads(text, 0, NULL);
  assert_non_null(j);
  if (value == NULL)
    json_object_del(j, key);
  else
    json_object_set_new(j, key, value);
  char *out = json_dumps(j, JSON_COMPACT);
  json_decref(j);
  omniq__free(text);
  omniq_task_free(t);
  return out;
}

static void assert_task_rejected(char *text, const char *what) {
  omniq_task_t *t = (omniq_task_t *)1;
  if (omniq_task_from_json(text, &t) != OMNIQ_ESERIALIZE) fail_msg("accepted %s: %s", what, text);
  assert_null(t);
  free(text);
}

static void test_task_from_json_rejects_malformed_records(void **state) {
  static const char *const required[] = {"id",          "status",      "func",       "queue",
                                         "args",        "kwargs",      "priority",   "attempts",
                                         "max_retries", "interval_ms", "timeout_ms", "token"};
  static const char *const bad_ids[] = {"../x", "", "../../etc/passwd",
                                        "01890A5D-AC96-774B-BCCE-B302099A8057",
                                        "01890a5d-ac96-774b-bcce-b302099a805",
                                        "01890a5d-ac96-774b-bcce-b302099a80577",
                                        "01890a5dac96-774b-bcce-b302099a8057-"};
  omniq_task_t *t = (omniq_task_t *)1;
  (void)state;
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++)
    assert_task_rejected(task_json_with("id", json_string(bad_ids[i])), bad_ids[i]);
  for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
    assert_task_rejected(task_json_with(required[i], NULL), required[i]);
  assert_task_rejected(task_json_with("id", json_integer(7)), "numeric id");
  assert_task_rejected(task_json_with("status", json_string("BOGUS")), "unknown status");
  assert_task_rejected(task_json_with("status", json_integer(1)), "numeric status");
  assert_task_rejected(task_json_with("func", json_integer(1)), "numeric func");
  assert_task_rejected(task_json_with("args", json_pack("[i]", 1)), "args as array");
  assert_task_rejected(task_json_with("attempts", json_string("2")), "attempts as text");
  assert_task_rejected(task_json_with("token", json_real(1.5)), "fractional token");
  assert_task_rejected(task_json_with("eta", json_integer(5)), "numeric eta");
  assert_task_rejected(task_json_with("eta", json_string("tomorrow")), "eta not ISO-8601");
  assert_task_rejected(task_json_with("last_error", json_string("oops")), "error as text");
  assert_task_rejected(task_json_with("last_error", json_object()), "empty error");
  assert_int_equal(omniq_task_from_json(NULL, &t), OMNIQ_ESERIALIZE);
  assert_null(t);
  assert_int_equal(omniq_task_from_json("[]", &t), OMNIQ_ESERIALIZE);
  assert_int_equal(omniq_task_from_json("{\"id\":", &t), OMNIQ_ESERIALIZE);
  assert_int_equal(omniq_task_from_json("{} {}", &t), OMNIQ_ESERIALIZE);
  assert_int_equal(omniq_task_from_json("{\"id\":\"a\",\"id\":\"b\"}", &t), OMNIQ_ESERIALIZE);
}

/* ---- results ---------------------------------------------------------------- */

static void round_trip_result(const omniq_result_t *r) {
  omniq_result_t *back = NULL;
  char *text = omniq_result_to_json(r);
  assert_non_null(text);
  assert_int_equal(omniq_result_from_json(text, &back), OMNIQ_OK);
  th_assert_result_equal(back, r);
  omniq_result_free(back);
  omniq__free(text);
}

static void test_result_json_round_trip_preserves_every_field(void **state) {
  (void)state;
  omniq_result_t *r = omniq_result_new();
  assert_non_null(r);
  omniq__id_new(TH_EPOCH_MS, r->task_id);
  r->status = OMNIQ_SUCCESS;
  r->value = omniq__strdup("{\"total\":42,\"items\":[1,2]}");
  r->attempts = 3;
  r->finished_at_ms = TH_EPOCH_MS + 999;
  r->last_attempt_at_ms = TH_EPOCH_MS + 500;
  round_trip_result(r);

  /* A failure: no value, an error with a traceback. */
  omniq__free(r->value);
  r->value = NULL;
  r->status = OMNIQ_FAILED;
  r->error = omniq_task_error_new("Crash", "signal 9", TH_EPOCH_MS, "SIGKILL", 3, 0);
  round_trip_result(r);

  omniq_result_t *d = omniq_result_dup(r);
  assert_non_null(d);
  assert_ptr_not_equal(d->error, r->error);
  th_assert_result_equal(d, r);
  omniq_result_free(d);
  omniq_result_free(r);
}

static void test_result_from_json_rejects_malformed_records(void **state) {
  static const char *const bad[] = {
      "{\"task_id\":\"../x\",\"status\":\"SUCCESS\",\"attempts\":1}",
      "{\"status\":\"SUCCESS\",\"attempts\":1}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"attempts\":1}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"status\":\"SUCCESS\"}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"status\":\"DONE\",\"attempts\":1}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"status\":\"SUCCESS\","
      "\"attempts\":\"1\"}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"status\":\"SUCCESS\","
      "\"attempts\":1,\"value\":42}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"status\":\"FAILED\","
      "\"attempts\":1,\"error\":[]}",
      "{\"task_id\":\"01890a5d-ac96-774b-bcce-b302099a8057\",\"status\":\"SUCCESS\","
      "\"attempts\":1,\"finished_at\":12}",
      NULL, "", "[]", "{\"task_id\":"};
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq_result_t *r = (omniq_result_t *)1;
    if (omniq_result_from_json(bad[i], &r) != OMNIQ_ESERIALIZE)
      fail_msg("accepted: %s", bad[i] != NULL ? bad[i] : "(null)");
    assert_null(r);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_transition_table_matches_design_for_all_25_pairs),
      cmocka_unit_test(test_transitions_from_or_to_unknown_statuses_are_refused),
      cmocka_unit_test(test_only_success_failed_cancelled_are_terminal),
      cmocka_unit_test(test_status_names_parse_back),
      cmocka_unit_test(test_task_error_json_has_exactly_six_keys),
      cmocka_unit_test(test_task_error_null_traceback_round_trips_as_null),
      cmocka_unit_test(test_task_error_from_json_rejects_malformed),
      cmocka_unit_test(test_task_json_round_trip_preserves_every_field),
      cmocka_unit_test(test_task_json_of_any_length_round_trips),
      cmocka_unit_test(test_task_dup_copies_every_field),
      cmocka_unit_test(test_task_from_json_rejects_malformed_records),
      cmocka_unit_test(test_result_json_round_trip_preserves_every_field),
      cmocka_unit_test(test_result_from_json_rejects_malformed_records),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
