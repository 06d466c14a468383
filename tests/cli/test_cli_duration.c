/* SPDX-License-Identifier: MIT */
/* cli/duration.c: the duration and RFC 3339 grammars every option uses. */
#include <stdio.h>
#include <string.h>

#include "../../cli/duration.h"
#include "harness.h"

static int64_t dur(const char *text) {
  int64_t ms = -1;
  char why[200];
  if (cli_parse_duration(text, &ms, why, sizeof why) != 0) fail_msg("'%s': %s", text, why);
  return ms;
}

static void refused(const char *text, const char *why_part) {
  int64_t ms = 12345;
  char why[200] = "";
  if (cli_parse_duration(text, &ms, why, sizeof why) == 0)
    fail_msg("'%s' was accepted as %lld ms", text, (long long)ms);
  assert_int_equal(ms, 12345); /* untouched */
  if (strstr(why, why_part) == NULL) fail_msg("'%s': reason '%s' lacks '%s'", text, why, why_part);
}

static void test_durations_take_every_unit_and_sums(void **state) {
  (void)state;
  assert_int_equal(dur("0"), 0);
  assert_int_equal(dur("250ms"), 250);
  assert_int_equal(dur("10s"), 10000);
  assert_int_equal(dur("5m"), 300000);
  assert_int_equal(dur("2h"), 7200000);
  assert_int_equal(dur("7d"), 604800000);
  assert_int_equal(dur("1h30m"), 5400000);
  assert_int_equal(dur("1.5s"), 1500);
  assert_int_equal(dur("0.25m"), 15000);
  assert_int_equal(dur("1m0.5s"), 60500);
  assert_int_equal(dur("36525d"), CLI_DURATION_MAX_MS); /* 100 years of 365.25 days */
}

static void test_bad_durations_are_refused_with_a_reason(void **state) {
  (void)state;
  refused("", "empty");
  refused("10", "needs a unit");
  refused("10x", "needs a unit");
  refused("s", "not a duration");
  refused("-5s", "not a duration");
  refused("+5s", "not a duration");
  refused(" 5s", "not a duration");
  refused("5s ", "not a duration");
  refused("1.s", "not a duration");
  refused("1e3s", "needs a unit");
  refused("36525d1ms", "too long");
  refused("99999999999999999999d", "too long");
}

static void test_durations_print_as_they_are_read(void **state) {
  (void)state;
  char out[CLI_DURATION_SIZE];
  static const char *const back[] = {"0s", "250ms", "10s", "1h30m", "7d", "1d2h3m4s5ms"};
  for (size_t i = 0; i < sizeof back / sizeof back[0]; i++) {
    cli_format_duration(dur(back[i]), out);
    assert_string_equal(out, back[i]);
  }
}

static int64_t when(const char *text) {
  int64_t ms = -1;
  char why[200];
  if (cli_parse_time(text, &ms, why, sizeof why) != 0) fail_msg("'%s': %s", text, why);
  return ms;
}

static void test_rfc3339_times_with_offsets_and_fractions(void **state) {
  (void)state;
  char out[CLI_TIME_SIZE];
  assert_int_equal(when("1970-01-01T00:00:00Z"), 0);
  assert_int_equal(when("2026-12-01T08:00:00Z"), INT64_C(1796112000000));
  assert_int_equal(when("2026-12-01T09:00:00+01:00"), INT64_C(1796112000000));
  assert_int_equal(when("2026-12-01 02:30:00-05:30"), INT64_C(1796112000000));
  assert_int_equal(when("2026-12-01t08:00:00.5z"), INT64_C(1796112000500));
  assert_int_equal(when("2026-12-01T08:00:00.123456Z"), INT64_C(1796112000123));
  assert_int_equal(when("2024-02-29T00:00:00Z"), INT64_C(1709164800000)); /* leap day */
  cli_format_time(INT64_C(1796112000500), out);
  assert_string_equal(out, "2026-12-01T08:00:00.500Z");
  cli_format_time(when("9999-12-31T23:59:59.999Z"), out);
  assert_string_equal(out, "9999-12-31T23:59:59.999Z");
}

static void test_bad_times_are_refused(void **state) {
  (void)state;
  static const char *const bad[] = {
      "",       "tomorrow",           "2026-12-01",           "2026-12-01T08:00:00",
      "2026-12-01T08:00Z",            "2026-02-29T00:00:00Z", "2026-13-01T00:00:00Z",
      "2026-12-32T00:00:00Z",         "2026-12-01T24:00:00Z", "2026-12-01T08:60:00Z",
      "2026-12-01T08:00:00+1:00",     "2026-12-01T08:00:00Z junk",
      "1969-12-31T23:59:59Z",         "1970-01-01T00:30:00+01:00", "2026-12-01T08:00:00.Z",
      "+2026-12-01T08:00:00Z"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int64_t ms = 7;
    char why[200] = "";
    if (cli_parse_time(bad[i], &ms, why, sizeof why) == 0)
      fail_msg("'%s' was accepted as %lld", bad[i], (long long)ms);
    assert_int_equal(ms, 7);
    assert_true(why[0] != '\0');
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_durations_take_every_unit_and_sums),
      cmocka_unit_test(test_bad_durations_are_refused_with_a_reason),
      cmocka_unit_test(test_durations_print_as_they_are_read),
      cmocka_unit_test(test_rfc3339_times_with_offsets_and_fractions),
      cmocka_unit_test(test_bad_times_are_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
