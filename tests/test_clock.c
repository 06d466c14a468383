/* SPDX-License-Identifier: MIT */
/* Time text: ISO-8601 formatting and parsing agree on every date, including
 * the epoch, leap days and times before 1970, and junk is refused. Also the
 * injectable clock and the monotonic helpers. */
#include "support/helpers.h"

#include <stdio.h>
#include <string.h>

#include "base/clock.h"

static const struct {
  int64_t ms;
  const char *text;
} dates[] = {
    {0, "1970-01-01T00:00:00.000Z"},
    {1, "1970-01-01T00:00:00.001Z"},
    {-1, "1969-12-31T23:59:59.999Z"},
    {-86400000, "1969-12-31T00:00:00.000Z"},
    {951782400000, "2000-02-29T00:00:00.000Z"},  /* divisible by 400: leap */
    {951868799999, "2000-02-29T23:59:59.999Z"},
    {1709210096789, "2024-02-29T12:34:56.789Z"}, /* ordinary leap year */
    {1709251200000, "2024-03-01T00:00:00.000Z"},
    {4107456000000, "2100-02-28T00:00:00.000Z"}, /* divisible by 100: not leap */
    {4107542400000, "2100-03-01T00:00:00.000Z"},
    {TH_EPOCH_MS, "2027-01-15T08:00:00.000Z"},
    {253402300799999, "9999-12-31T23:59:59.999Z"},
};
#define NDATES (sizeof dates / sizeof dates[0])

static void test_iso8601_formats_known_dates(void **state) {
  char buf[OMNIQ__ISO_SIZE];
  (void)state;
  for (size_t i = 0; i < NDATES; i++) {
    omniq__iso8601(dates[i].ms, buf);
    assert_string_equal(buf, dates[i].text);
    assert_int_equal(strlen(buf), 24);
  }
}

static void test_iso8601_parses_known_dates(void **state) {
  int64_t ms = 0;
  (void)state;
  for (size_t i = 0; i < NDATES; i++) {
    if (omniq__iso8601_parse(dates[i].text, &ms) != OMNIQ_OK)
      fail_msg("refused %s", dates[i].text);
    assert_int_equal(ms, dates[i].ms);
  }
}

static void test_iso8601_round_trips_every_day_of_four_centuries(void **state) {
  char buf[OMNIQ__ISO_SIZE];
  int64_t back;
  (void)state;
  /* 1900-01-01 to 2300-01-01, one sample a day at a varying time of day:
   * covers every month length and every kind of leap rule. */
  for (int64_t ms = -2208988800000; ms < 10413792000000; ms += 86400000 + 1234) {
    omniq__iso8601(ms, buf);
    if (omniq__iso8601_parse(buf, &back) != OMNIQ_OK || back != ms)
      fail_msg("%lld -> %s -> %lld", (long long)ms, buf, (long long)back);
  }
}

/* The digits written by hand are the text snprintf wrote before, for
 * times across the years 0..9999 and past either end (garbage a clock may
 * hand over is still written, in the general form). */
static void test_iso8601_writes_what_the_general_form_writes(void **state) {
  (void)state;
  const int64_t first = -62167219200000LL - 86400000LL * 3; /* a few days before year 0 */
  const int64_t last = 253402300799999LL + 86400000LL * 400;
  const int64_t step = 7919LL * 86400000LL + 3661001LL; /* ~22 years, odd h:m:s.ms */
  for (int64_t ms = first; ms <= last; ms += step / 97) {
    char got[OMNIQ__ISO_SIZE], want[OMNIQ__ISO_SIZE];
    omniq__iso8601(ms, got);
    int64_t days = ms >= 0 ? ms / 86400000 : -((-ms + 86399999) / 86400000);
    int64_t sod_ms = ms - days * 86400000, y;
    unsigned m, d;
    omniq__civil_from_days(days, &y, &m, &d);
    snprintf(want, sizeof want, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(sod_ms / 3600000), (int)(sod_ms / 60000 % 60), (int)(sod_ms / 1000 % 60),
             (int)(sod_ms % 1000));
    if (strcmp(got, want) != 0)
      fail_msg("%lld: wrote %s, the general form %s", (long long)ms, got, want);
  }
}

static void test_iso8601_parse_accepts_seconds_without_fraction(void **state) {
  int64_t ms = 0;
  (void)state;
  assert_int_equal(omniq__iso8601_parse("2024-02-29T12:34:56Z", &ms), OMNIQ_OK);
  assert_int_equal(ms, 1709210096000);
  assert_int_equal(omniq__iso8601_parse("2024-02-29T12:34:56.7Z", &ms), OMNIQ_OK);
  assert_int_equal(ms, 1709210096700);
  assert_int_equal(omniq__iso8601_parse("2024-02-29T12:34:56.789123Z", &ms), OMNIQ_OK);
  assert_int_equal(ms, 1709210096789); /* digits past the millisecond are dropped */
}

static void test_iso8601_parse_rejects_junk(void **state) {
  static const char *const junk[] = {
      "",
      "now",
      "2024-02-29",
      "2024-02-29T12:34:56",       /* no zone */
      "2024-02-29T12:34:56+01:00", /* only UTC is written */
      "2024-02-29 12:34:56Z",
      "2024-02-29T12:34:56.Z",
      "2024-02-29T12:34:56.789Zjunk",
      "2024-13-01T00:00:00.000Z",
      "2024-00-01T00:00:00.000Z",
      "2024-01-00T00:00:00.000Z",
      "2024-01-32T00:00:00.000Z",
      "2023-02-29T00:00:00.000Z", /* not a leap year */
      "2100-02-29T00:00:00.000Z", /* not a leap year either */
      "2024-04-31T00:00:00.000Z",
      "2024-01-01T24:00:00.000Z",
      "2024-01-01T00:60:00.000Z",
      "24-01-01T00:00:00.000Z",
      "+024-01-01T00:00:00.000Z",
      "2024-+1-01T00:00:00.000Z",
      "2024- 1-01T00:00:00.000Z",
      "2024-01-01T-1:00:00.000Z",
      " 2024-01-01T00:00:00.000Z",
  };
  (void)state;
  for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
    int64_t ms = 77;
    if (omniq__iso8601_parse(junk[i], &ms) != OMNIQ_EINVAL)
      fail_msg("accepted \"%s\" as %lld", junk[i], (long long)ms);
    assert_int_equal(ms, 77);
  }
  int64_t ms = 0;
  assert_int_equal(omniq__iso8601_parse(NULL, &ms), OMNIQ_EINVAL);
}

/* Found by fuzz/records.c: a leap second in the very last minute parsed to
 * an instant of the year 10000, which formats to text that does not parse. */
static void test_iso8601_parse_refuses_a_leap_second_past_the_last_instant(void **state) {
  int64_t ms = -1;
  (void)state;
  assert_int_equal(omniq__iso8601_parse("9999-12-31T23:59:60.999Z", &ms), OMNIQ_EINVAL);
  assert_int_equal(omniq__iso8601_parse("9999-12-31T23:59:60Z", &ms), OMNIQ_EINVAL);
  assert_int_equal(ms, -1);
  assert_int_equal(omniq__iso8601_parse("9999-12-31T23:59:59.999Z", &ms), OMNIQ_OK);
  assert_int_equal(ms, OMNIQ_TIME_MAX_MS);
  assert_int_equal(omniq__iso8601_parse("2016-12-31T23:59:60Z", &ms), OMNIQ_OK); /* a real one */
}

static void test_now_uses_the_injected_clock(void **state) {
  th_clock_t clock;
  omniq_settings_t s;
  (void)state;
  th_clock_init(&clock, TH_EPOCH_MS);
  omniq_settings_init(&s);
  s.clock_fn = th_clock_now;
  s.clock_userdata = &clock;
  assert_int_equal(omniq__now(&s), TH_EPOCH_MS);
  th_clock_advance(&clock, 90000);
  assert_int_equal(omniq__now(&s), TH_EPOCH_MS + 90000);
  /* Without a clock: the system's, which is well past 2020. */
  s.clock_fn = NULL;
  assert_true(omniq__now(&s) > 1577836800000);
  assert_true(omniq__now(NULL) > 1577836800000);
}

static void test_monotonic_deadline_lies_ahead(void **state) {
  struct timespec now, deadline;
  (void)state;
  clock_gettime(CLOCK_MONOTONIC, &now);
  deadline = omniq__mono_deadline(1500);
  assert_true(deadline.tv_nsec >= 0 && deadline.tv_nsec < 1000000000L);
  int64_t ahead = (int64_t)(deadline.tv_sec - now.tv_sec) * 1000 +
                  (deadline.tv_nsec - now.tv_nsec) / 1000000;
  assert_in_range(ahead, 1500, 60000); /* not seconds taken for ms */
  deadline = omniq__mono_deadline(-5); /* a negative wait is no wait */
  assert_true(deadline.tv_sec <= now.tv_sec + 1);
  int64_t a = omniq__mono_ms(), b = omniq__mono_ms();
  assert_true(b >= a);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_iso8601_formats_known_dates),
      cmocka_unit_test(test_iso8601_parses_known_dates),
      cmocka_unit_test(test_iso8601_round_trips_every_day_of_four_centuries),
      cmocka_unit_test(test_iso8601_writes_what_the_general_form_writes),
      cmocka_unit_test(test_iso8601_parse_accepts_seconds_without_fraction),
      cmocka_unit_test(test_iso8601_parse_rejects_junk),
      cmocka_unit_test(test_iso8601_parse_refuses_a_leap_second_past_the_last_instant),
      cmocka_unit_test(test_now_uses_the_injected_clock),
      cmocka_unit_test(test_monotonic_deadline_lies_ahead),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
