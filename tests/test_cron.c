/* SPDX-License-Identifier: MIT */
/* Cron schedules (core/cron.c): the next match of an expression after an
 * instant, checked against a table worked out by hand (month ends, leap
 * years, Sunday as 0 and 7, names, steps, the day-of-month/day-of-week
 * rule), and the position and reason given for each kind of bad
 * expression. All times UTC. */
#include <stdio.h>
#include <string.h>

#include "base/clock.h"
#include "core/cron.h"
#include "support/helpers.h"

static int64_t at(const char *iso) {
  int64_t ms = 0;
  if (omniq__iso8601_parse(iso, &ms) != OMNIQ_OK) fail_msg("bad time in the table: %s", iso);
  return ms;
}

static const struct {
  const char *expr, *after, *next;
} table[] = {
    /* plain fields, and "strictly after" on a match */
    {"0 0 * * *", "2024-02-28T12:00:00Z", "2024-02-29T00:00:00Z"},
    {"*/15 * * * *", "2024-03-01T10:07:30Z", "2024-03-01T10:15:00Z"},
    {"*/15 * * * *", "2024-03-01T10:15:00Z", "2024-03-01T10:30:00Z"},
    {"*/15 * * * *", "2024-03-01T10:14:59.999Z", "2024-03-01T10:15:00Z"},
    {"5/20 * * * *", "2024-03-01T10:26:00Z", "2024-03-01T10:45:00Z"},
    {"0 9-17/4 * * *", "2024-03-01T13:00:00Z", "2024-03-01T17:00:00Z"},
    {"0,30 8 * * *", "2024-03-01T08:00:00Z", "2024-03-01T08:30:00Z"},
    /* month ends and the year's end */
    {"0 0 31 * *", "2024-04-15T00:00:00Z", "2024-05-31T00:00:00Z"},
    {"0 0 31 * *", "2024-08-31T00:00:00Z", "2024-10-31T00:00:00Z"},
    {"0 0 30 * *", "2024-01-30T00:00:00Z", "2024-03-30T00:00:00Z"},
    {"0 0 1 1 *", "2024-12-31T23:59:30Z", "2025-01-01T00:00:00Z"},
    {"59 23 31 12 *", "2024-12-31T23:59:00Z", "2025-12-31T23:59:00Z"},
    /* leap years: 2100 is not one, 2000 was */
    {"0 0 29 2 *", "2023-03-01T00:00:00Z", "2024-02-29T00:00:00Z"},
    {"0 0 29 2 *", "2024-02-29T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"},
    {"0 0 29 2 *", "1999-03-01T00:00:00Z", "2000-02-29T00:00:00Z"},
    {"0 0 28 2 *", "2023-02-28T00:00:00Z", "2024-02-28T00:00:00Z"},
    /* Sunday is 0 and 7; names in any case; ranges of names */
    {"0 12 * * 0", "2024-03-13T00:00:00Z", "2024-03-17T12:00:00Z"},
    {"0 12 * * 7", "2024-03-13T00:00:00Z", "2024-03-17T12:00:00Z"},
    {"0 12 * * sun", "2024-03-13T00:00:00Z", "2024-03-17T12:00:00Z"},
    {"0 8 * * MON-FRI", "2024-03-15T09:00:00Z", "2024-03-18T08:00:00Z"},
    {"0 8 * * 5-7", "2024-03-18T00:00:00Z", "2024-03-22T08:00:00Z"},
    {"0 0 1 JAN,jul *", "2024-02-01T00:00:00Z", "2024-07-01T00:00:00Z"},
    {"0 0 1 Oct-Dec *", "2024-02-01T00:00:00Z", "2024-10-01T00:00:00Z"},
    /* both days restricted: either matches */
    {"0 9 1 * MON", "2024-04-01T10:00:00Z", "2024-04-08T09:00:00Z"},
    {"0 9 1 * MON", "2024-04-29T10:00:00Z", "2024-05-01T09:00:00Z"},
    {"0 0 13 * 5", "2024-09-06T00:00:00Z", "2024-09-13T00:00:00Z"},
    {"0 0 13 * 5", "2024-09-13T00:00:00Z", "2024-09-20T00:00:00Z"},
    /* a day field starting with "*" is not a restriction: both must match */
    {"0 0 */10 * *", "2024-01-21T00:00:00Z", "2024-01-31T00:00:00Z"},
    {"0 0 */10 * 1", "2024-01-01T00:00:00Z", "2024-03-11T00:00:00Z"}, /* 1, 11, 21, 31 and a Monday */
    {"0 0 * * 5", "2024-02-29T00:00:00Z", "2024-03-01T00:00:00Z"},
    /* shorthands */
    {"@hourly", "2024-03-01T10:07:00Z", "2024-03-01T11:00:00Z"},
    {"@daily", "2024-03-01T10:07:00Z", "2024-03-02T00:00:00Z"},
    {"@weekly", "2024-03-01T10:07:00Z", "2024-03-03T00:00:00Z"},
    {"@monthly", "2024-03-01T10:07:00Z", "2024-04-01T00:00:00Z"},
    {"@yearly", "2024-03-01T10:07:00Z", "2025-01-01T00:00:00Z"},
    {"  0   0  *  *  * ", "2024-03-01T10:07:00Z", "2024-03-02T00:00:00Z"},
};

static void test_next_match_agrees_with_the_table(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    omniq__cron_t c;
    char err[256] = "", got[OMNIQ__ISO_SIZE], want[OMNIQ__ISO_SIZE];
    int64_t next = 0;
    if (omniq__cron_parse(table[i].expr, &c, err, sizeof err) != OMNIQ_OK)
      fail_msg("'%s' refused: %s", table[i].expr, err);
    assert_int_equal(omniq__cron_next(&c, at(table[i].after), &next), OMNIQ_OK);
    omniq__iso8601(next, got);
    omniq__iso8601(at(table[i].next), want);
    if (next != at(table[i].next))
      fail_msg("'%s' after %s: got %s, expected %s", table[i].expr, table[i].after, got, want);
  }
}

static const struct {
  const char *expr;
  int position; /* 0: the message names no position */
  const char *says;
} bad[] = {
    {"60 * * * *", 1, "must be 0-59"},
    {"* 24 * * *", 3, "must be 0-23"},
    {"* * 0 * *", 5, "must be 1-31"},
    {"* * * 13 *", 7, "must be 1-12"},
    {"* * * * 8", 9, "must be 0-7"},
    {"*/0 * * * *", 3, "step"},
    {"*/61 * * * *", 3, "step"},
    {"5-2 * * * *", 3, "reversed"},
    {"* * * JANUARY *", 7, "name"},
    {"* * * * FUNDAY", 9, "name"},
    {"MON * * * *", 1, "expected a minute"},
    {"1,,2 * * * *", 3, "expected a minute"},
    {"1- * * * *", 3, "expected a minute"},
    {"* * * *", 8, "missing"},
    {"* * * * * *", 11, "more"},
    {"*x * * * *", 2, "unexpected character"},
    {"@every 5m", 1, "shorthand"},
    {"", 0, "empty"},
    {"0 0 30 2 *", 0, "no date"},
    {"0 0 31 4,6,9,11 *", 0, "no date"},
};

static void test_bad_expressions_are_refused_with_the_position(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    omniq__cron_t c;
    char err[256] = "", pos[32];
    if (omniq__cron_parse(bad[i].expr, &c, err, sizeof err) != OMNIQ_EINVAL)
      fail_msg("'%s' was accepted", bad[i].expr);
    snprintf(pos, sizeof pos, "position %d:", bad[i].position);
    if ((bad[i].position > 0 && strstr(err, pos) == NULL) || strstr(err, bad[i].says) == NULL)
      fail_msg("'%s': \"%s\" should say \"%s\" and \"%s\"", bad[i].expr, err, pos, bad[i].says);
  }
  char err[256];
  omniq__cron_t c;
  char longer[OMNIQ_CRON_MAX + 8];
  memset(longer, '1', sizeof longer - 1);
  longer[sizeof longer - 1] = '\0';
  assert_int_equal(omniq__cron_parse(longer, &c, err, sizeof err), OMNIQ_EINVAL);
  assert_int_equal(omniq__cron_parse(NULL, &c, err, sizeof err), OMNIQ_EINVAL);
}

/* A match exists at the start of the horizon; none past it. */
static void test_next_reports_no_match_past_the_horizon(void **state) {
  omniq__cron_t c;
  char err[256];
  int64_t next = 0;
  (void)state;
  /* Feb 29th on a Monday: 2016, then 2044. From 2017 the next is 27 years
   * away, within the horizon; a Sunday Feb 29th after 2020 is 2032. */
  assert_int_equal(omniq__cron_parse("0 0 29 2 *", &c, err, sizeof err), OMNIQ_OK);
  c.wday_star = 0;
  c.mday_star = 1;
  c.wdays = 1u << 1; /* Mondays, both restricted by hand: the AND rule */
  assert_int_equal(omniq__cron_next(&c, at("2017-01-01T00:00:00Z"), &next), OMNIQ_OK);
  assert_int_equal(next, at("2044-02-29T00:00:00Z"));
  c.months = 0; /* no month at all: never */
  assert_int_equal(omniq__cron_next(&c, at("2017-01-01T00:00:00Z"), &next), OMNIQ_ENOTFOUND);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_next_match_agrees_with_the_table),
      cmocka_unit_test(test_bad_expressions_are_refused_with_the_position),
      cmocka_unit_test(test_next_reports_no_match_past_the_horizon),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
