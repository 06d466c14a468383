/* SPDX-License-Identifier: MIT */
/* Codec: what the json serializer accepts for args, kwargs and values, what
 * it refuses and how it says so, and the raw serializer's opt-out. */
#include "support/helpers.h"

#include <string.h>

#include "base/codec.h"

static char err[512];

static int check(int serializer, omniq__json_kind_t kind, const char *text) {
  err[0] = '\0';
  return omniq__codec_check(serializer, kind, text, err, sizeof err);
}

static int json(omniq__json_kind_t kind, const char *text) {
  return check(OMNIQ_SERIALIZER_JSON, kind, text);
}

static void assert_err_contains(const char *needle) {
  if (strstr(err, needle) == NULL) fail_msg("\"%s\" not in \"%s\"", needle, err);
}

static void test_args_must_be_an_array(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[]"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[1, \"two\", {\"three\": [3]}, null]"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_ARGS, "  [1]\n"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_ARGS, "{\"a\": 1}"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "args: must be a JSON array, got object");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "{}"), OMNIQ_ESERIALIZE); /* the kwargs shortcut */
  assert_string_equal(err, "args: must be a JSON array, got object");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[] x"), OMNIQ_ESERIALIZE);
  assert_int_equal(json(OMNIQ__JSON_ARGS, "42"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "args: must be a JSON array, got number");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "\"x\""), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "args: must be a JSON array, got string");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "null"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "args: must be a JSON array, got null");
}

static void test_kwargs_must_be_an_object(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{}"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"n\": 1, \"s\": \"x\", \"l\": []}"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "[]"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "kwargs: must be a JSON object, got array");
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{}}"), OMNIQ_ESERIALIZE);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "true"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "kwargs: must be a JSON object, got boolean");
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "1.5"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "kwargs: must be a JSON object, got number");
}

static void test_value_may_be_any_json_value(void **state) {
  static const char *const values[] = {"null", "true", "false", "0",  "-1.5e3", "\"text\"",
                                       "[]",   "{}",   "[1,2]", "{\"a\":{\"b\":null}}"};
  (void)state;
  for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
    if (json(OMNIQ__JSON_VALUE, values[i]) != OMNIQ_OK)
      fail_msg("value %s refused: %s", values[i], err);
}

static void test_truncated_json_is_refused_with_its_position(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[1, 2"), OMNIQ_ESERIALIZE);
  assert_err_contains("args: invalid JSON at line 1, column 5 (position 5): ");
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"a\": "), OMNIQ_ESERIALIZE);
  assert_err_contains("kwargs: invalid JSON at line 1, column 6 (position 6): ");
  assert_int_equal(json(OMNIQ__JSON_VALUE, "\"open string"), OMNIQ_ESERIALIZE);
  assert_err_contains("value: invalid JSON at line 1");
}

static void test_error_points_at_the_faulty_line_and_column(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[1,\n 2,\n x]"), OMNIQ_ESERIALIZE);
  assert_err_contains("at line 3, column 2 (position 10)");
}

static void test_trailing_garbage_is_refused(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[1] x"), OMNIQ_ESERIALIZE);
  assert_err_contains("args: invalid JSON at line 1, column 5 (position 5)");
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{} {}"), OMNIQ_ESERIALIZE);
  assert_int_equal(json(OMNIQ__JSON_VALUE, "1 2"), OMNIQ_ESERIALIZE);
}

static void test_empty_and_blank_text_are_refused(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, ""), OMNIQ_ESERIALIZE);
  assert_err_contains("position 0");
  assert_int_equal(json(OMNIQ__JSON_VALUE, "   "), OMNIQ_ESERIALIZE);
}

static void test_duplicate_keys_are_refused(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"a\": 1, \"a\": 2}"), OMNIQ_ESERIALIZE);
  assert_err_contains("kwargs: invalid JSON");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[{\"k\": 1, \"k\": 1}]"), OMNIQ_ESERIALIZE);
}

static void test_invalid_utf8_is_refused(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[\"caf\xe9\"]"), OMNIQ_ESERIALIZE);
}

static void test_escaped_nul_is_accepted_in_values_and_keys(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[\"nul:\\u0000:end\"]"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_VALUE, "\"\\u0000\""), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"k\\u0000ey\": \"v\\u0000\"}"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[{\"\\u0000\": [{\"a\\u0000\": 1}]}]"), OMNIQ_OK);
  /* Keys that differ only around the NUL are different keys. */
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"a\\u0000\": 1, \"a\\u0001\\u0002\": 2}"),
                   OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"a\\u0000\": 1, \"a\\u0001\": 2}"), OMNIQ_OK);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"\\u0000\": 1, \"\\u0000\\u0000\": 2}"), OMNIQ_OK);
  /* An escaped backslash before "u0000" is no NUL escape. */
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"\\\\u0000\": 1, \"\\u0000\": 2}"), OMNIQ_OK);
}

static void test_keys_with_nul_are_still_checked_for_duplicates_and_errors(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"a\\u0000b\": 1, \"a\\u0000b\": 2}"),
                   OMNIQ_ESERIALIZE);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"\\u0000\": 1, \"\\u0000\": 2}"), OMNIQ_ESERIALIZE);
  assert_int_equal(json(OMNIQ__JSON_KWARGS, "{\"a\\u0000\": 1,}"), OMNIQ_ESERIALIZE);
  assert_err_contains("kwargs: invalid JSON");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "{\"a\\u0000\": 1}"), OMNIQ_ESERIALIZE);
  assert_string_equal(err, "args: must be a JSON array, got object");
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[\"\\u0000\" 1]"), OMNIQ_ESERIALIZE);
  assert_int_equal(json(OMNIQ__JSON_ARGS, "[\"\\uD800\\u0000\"]"), OMNIQ_ESERIALIZE);
}

static void test_null_text_is_invalid_argument_in_both_modes(void **state) {
  (void)state;
  assert_int_equal(json(OMNIQ__JSON_ARGS, NULL), OMNIQ_EINVAL);
  assert_string_equal(err, "args: text is NULL");
  assert_int_equal(check(OMNIQ_SERIALIZER_RAW, OMNIQ__JSON_KWARGS, NULL), OMNIQ_EINVAL);
  assert_string_equal(err, "kwargs: text is NULL");
}

static void test_raw_mode_accepts_any_text_unchecked(void **state) {
  static const char *const texts[] = {"", "not json", "[1, 2", "{} {}", "\xff\xfe", "42"};
  (void)state;
  for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
    assert_int_equal(check(OMNIQ_SERIALIZER_RAW, OMNIQ__JSON_ARGS, texts[i]), OMNIQ_OK);
    assert_int_equal(check(OMNIQ_SERIALIZER_RAW, OMNIQ__JSON_KWARGS, texts[i]), OMNIQ_OK);
    assert_int_equal(check(OMNIQ_SERIALIZER_RAW, OMNIQ__JSON_VALUE, texts[i]), OMNIQ_OK);
  }
}

static void test_unknown_serializer_is_invalid_argument(void **state) {
  (void)state;
  assert_int_equal(check(7, OMNIQ__JSON_ARGS, "[]"), OMNIQ_EINVAL);
  assert_err_contains("unknown serializer 7");
}

static void test_no_error_buffer_is_fine(void **state) {
  (void)state;
  assert_int_equal(omniq__codec_check(OMNIQ_SERIALIZER_JSON, OMNIQ__JSON_ARGS, "{", NULL, 0),
                   OMNIQ_ESERIALIZE);
  assert_int_equal(omniq__codec_check(OMNIQ_SERIALIZER_JSON, OMNIQ__JSON_ARGS, "[]", NULL, 0),
                   OMNIQ_OK);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_args_must_be_an_array),
      cmocka_unit_test(test_kwargs_must_be_an_object),
      cmocka_unit_test(test_value_may_be_any_json_value),
      cmocka_unit_test(test_truncated_json_is_refused_with_its_position),
      cmocka_unit_test(test_error_points_at_the_faulty_line_and_column),
      cmocka_unit_test(test_trailing_garbage_is_refused),
      cmocka_unit_test(test_empty_and_blank_text_are_refused),
      cmocka_unit_test(test_duplicate_keys_are_refused),
      cmocka_unit_test(test_invalid_utf8_is_refused),
      cmocka_unit_test(test_escaped_nul_is_accepted_in_values_and_keys),
      cmocka_unit_test(test_keys_with_nul_are_still_checked_for_duplicates_and_errors),
      cmocka_unit_test(test_null_text_is_invalid_argument_in_both_modes),
      cmocka_unit_test(test_raw_mode_accepts_any_text_unchecked),
      cmocka_unit_test(test_unknown_serializer_is_invalid_argument),
      cmocka_unit_test(test_no_error_buffer_is_fine),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
