/* SPDX-License-Identifier: MIT */
/* Cron schedules: the five-field expression of cron(5), evaluated in UTC.
 *
 *   minute hour day-of-month month day-of-week
 *   0-59   0-23 1-31         1-12  0-7 (0 and 7 are Sunday)
 *
 * Each field is a list of items separated by commas; an item is "*", a
 * value, or a range "a-b", optionally followed by a step "/n" ("*\/15",
 * "8-18/2"; "5/15" means 5 to the field's maximum by 15, as Vixie cron
 * reads it). Months and days of the week may be written as their first
 * three letters in any case (JAN-DEC, SUN-SAT), also in ranges (MON-FRI).
 * The shorthands @yearly (@annually), @monthly, @weekly, @daily (@midnight)
 * and @hourly stand for their usual five fields. A reversed range (5-2) is
 * refused rather than wrapped around.
 *
 * Day-of-month and day-of-week combine as in Vixie cron: if either field
 * starts with "*" a day must match both (so the starred one allows every
 * day, or every n-th with a step); if both are restricted a day matches if
 * either does ("0 0 1 * MON" runs on the 1st and on every Monday).
 *
 * Only UTC: a time zone would need the tz database and a rule for the hour
 * that a DST change skips or repeats, and getting that wrong runs a job
 * twice or never. Callers convert their local schedule to UTC.
 *
 * The next match is found field by field, coarse to fine: a month that is
 * not allowed skips to the next month's first day, a day to the next day,
 * an hour to the next hour, so a search visits at most a few thousand
 * candidates even for an expression that matches once in years. */
#include "core/cron.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base/clock.h"
#include "omniq.h"

#define MIN_MS INT64_C(60000)
#define DAY_MS INT64_C(86400000)

typedef struct field {
  const char *name;
  int lo, hi;               /* values as written (day of week: 0..7) */
  const char *const *names; /* 3-letter names for lo, lo + 1, ...; NULL = none */
} field_t;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const wday_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};

static const field_t fields[5] = {
    {"minute", 0, 59, NULL},     {"hour", 0, 23, NULL},        {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names}, {"day of week", 0, 7, wday_names},
};

static const struct {
  const char *name, *fields;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* The parser's state: the whole text (for positions) and where it is. */
typedef struct parser {
  const char *text, *p;
  char *err;
  size_t errlen;
} parser_t;

/* "position N: <why> <what>" (what may be ""), at the byte `at` points to. */
static int fail(parser_t *ps, const char *at, const char *why, const char *what) {
  snprintf(ps->err, ps->errlen, "position %d: %s%s%s", (int)(at - ps->text) + 1, why,
           what[0] != '\0' ? " " : "", what);
  return OMNIQ_EINVAL;
}

/* A number or (for fields with names) a 3-letter name. */
static int value(parser_t *ps, const field_t *f, int *out) {
  const char *start = ps->p;
  if (isdigit((unsigned char)*ps->p)) {
    long v = 0;
    while (isdigit((unsigned char)*ps->p) && v <= 1000) v = v * 10 + (*ps->p++ - '0');
    if (isdigit((unsigned char)*ps->p) || v < f->lo || v > f->hi) {
      char range[64];
      snprintf(range, sizeof range, "must be %d-%d", f->lo, f->hi);
      return fail(ps, start, f->name, range);
    }
    *out = (int)v;
    return OMNIQ_OK;
  }
  if (f->names != NULL && isalpha((unsigned char)*ps->p)) {
    size_t n = 0;
    while (isalpha((unsigned char)ps->p[n])) n++;
    for (int i = 0; n == 3 && f->names[i] != NULL; i++)
      if (strncasecmp(ps->p, f->names[i], 3) == 0) {
        ps->p += 3;
        *out = f->lo + i;
        return OMNIQ_OK;
      }
    return fail(ps, start, "not a name of a", f->name);
  }
  return fail(ps, start, "expected a", f->name);
}

/* One item: "*", "v", "a-b", each with an optional "/step". */
static int item(parser_t *ps, const field_t *f, uint64_t *bits, int *star) {
  const char *start = ps->p;
  int lo = f->lo, hi = f->hi, step = 1, rc;
  if (*ps->p == '*') {
    ps->p++;
    if (start == ps->text || start[-1] == ' ' || start[-1] == '\t') *star = 1;
  } else {
    if ((rc = value(ps, f, &lo)) != OMNIQ_OK) return rc;
    hi = lo;
    if (*ps->p == '-') {
      const char *at = ++ps->p;
      if ((rc = value(ps, f, &hi)) != OMNIQ_OK) return rc;
      if (hi < lo) return fail(ps, at, "reversed range in the field", f->name);
    } else if (*ps->p == '/') {
      hi = f->hi; /* "5/15": from 5 to the end */
    }
  }
  if (*ps->p == '/') {
    const char *at = ++ps->p;
    long s = 0;
    if (!isdigit((unsigned char)*ps->p)) return fail(ps, at, "expected a step after '/'", "");
    while (isdigit((unsigned char)*ps->p) && s <= 1000) s = s * 10 + (*ps->p++ - '0');
    if (s < 1 || s > f->hi) return fail(ps, at, "step out of range (1 to the maximum) for", f->name);
    step = (int)s;
  }
  for (int v = lo; v <= hi; v += step) *bits |= UINT64_C(1) << v;
  return OMNIQ_OK;
}

static int field(parser_t *ps, const field_t *f, uint64_t *bits, int *star) {
  int rc;
  *bits = 0;
  *star = 0;
  for (;;) {
    if ((rc = item(ps, f, bits, star)) != OMNIQ_OK) return rc;
    if (*ps->p != ',') break;
    ps->p++;
  }
  if (*ps->p != '\0' && *ps->p != ' ' && *ps->p != '\t')
    return fail(ps, ps->p, "unexpected character in the field", f->name);
  return OMNIQ_OK;
}

static void skip_blanks(parser_t *ps) {
  while (*ps->p == ' ' || *ps->p == '\t') ps->p++;
}

static int parse_fields(parser_t *ps, omniq__cron_t *c) {
  uint64_t bits[5];
  int star[5], rc;
  skip_blanks(ps);
  for (int i = 0; i < 5; i++) {
    if (*ps->p == '\0')
      return fail(ps, ps->p, "expected five fields; missing the field", fields[i].name);
    if ((rc = field(ps, &fields[i], &bits[i], &star[i])) != OMNIQ_OK) return rc;
    skip_blanks(ps);
  }
  if (*ps->p != '\0') return fail(ps, ps->p, "expected five fields; found more", "");
  c->minutes = bits[0];
  c->hours = (uint32_t)bits[1];
  c->mdays = (uint32_t)bits[2];
  c->months = (uint16_t)bits[3];
  c->wdays = (uint8_t)((bits[4] | bits[4] >> 7) & 0x7F); /* 7 is Sunday too */
  c->mday_star = star[2];
  c->wday_star = star[4];
  return OMNIQ_OK;
}

int omniq__cron_parse(const char *expr, omniq__cron_t *out, char *err, size_t errlen) {
  parser_t ps = {expr, expr, err, errlen};
  omniq__cron_t c;
  int64_t next;
  int rc;
  memset(out, 0, sizeof *out);
  if (expr == NULL || expr[0] == '\0') {
    snprintf(err, errlen, "the expression is empty");
    return OMNIQ_EINVAL;
  }
  if (strlen(expr) > OMNIQ_CRON_MAX) {
    snprintf(err, errlen, "longer than %d bytes", OMNIQ_CRON_MAX);
    return OMNIQ_EINVAL;
  }
  memset(&c, 0, sizeof c);
  const char *p = expr;
  while (*p == ' ' || *p == '\t') p++;
  if (*p == '@') {
    size_t n = strcspn(p, " \t");
    for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++)
      if (strlen(macros[i].name) == n && strncasecmp(p, macros[i].name, n) == 0 &&
          p[n + strspn(p + n, " \t")] == '\0') {
        parser_t mp = {macros[i].fields, macros[i].fields, err, errlen};
        parse_fields(&mp, &c); /* the macros' own text always parses */
        *out = c;
        return OMNIQ_OK;
      }
    return fail(&ps, p, "unknown shorthand (@yearly, @monthly, @weekly, @daily, @hourly)", "");
  }
  if ((rc = parse_fields(&ps, &c)) != OMNIQ_OK) return rc;
  /* From 2000-01-01 the horizon spans a whole cycle of weekdays against
   * leap days, so an expression with no match here never matches. */
  if (omniq__cron_next(&c, INT64_C(946684800000), &next) != OMNIQ_OK) {
    snprintf(err, errlen, "matches no date (a day that the months given do not have)");
    return OMNIQ_EINVAL;
  }
  *out = c;
  return OMNIQ_OK;
}

/* ---- the next match -------------------------------------------------------- */

static int day_matches(const omniq__cron_t *c, int64_t days, unsigned mday) {
  int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
  if (w < 0) w += 7;
  int dom = (c->mdays >> mday) & 1, dow = (c->wdays >> w) & 1;
  return c->mday_star || c->wday_star ? dom && dow : dom || dow;
}

int omniq__cron_next(const omniq__cron_t *c, int64_t after_ms, int64_t *next_ms) {
  /* The first whole minute after after_ms. */
  int64_t t = (after_ms >= 0 ? after_ms / MIN_MS : -((-after_ms + MIN_MS - 1) / MIN_MS)) + 1;
  int64_t days = t >= 0 ? t / 1440 : -((-t + 1439) / 1440);
  int minute_of_day = (int)(t - days * 1440);
  int64_t y0, y;
  unsigned m, d;
  omniq__civil_from_days(days, &y0, &m, &d);
  y = y0;
  int hour = minute_of_day / 60, minute = minute_of_day % 60;
  while (y - y0 <= OMNIQ__CRON_HORIZON_YEARS) {
    if (!((c->months >> m) & 1)) { /* next month, its first minute */
      if (++m > 12) m = 1, y++;
      d = 1, hour = 0, minute = 0;
      continue;
    }
    days = omniq__days_from_civil(y, m, d);
    if (!day_matches(c, days, d)) {
      if (++d > (unsigned)omniq__days_in_month(y, (int)m)) {
        d = 1;
        if (++m > 12) m = 1, y++;
      }
      hour = 0, minute = 0;
      continue;
    }
    while (hour < 24 && !((c->hours >> hour) & 1)) hour++, minute = 0;
    while (hour < 24 && minute < 60 && !((c->minutes >> minute) & 1)) minute++;
    if (hour < 24 && minute == 60) { /* no minute left in this hour */
      hour++, minute = 0;
      continue;
    }
    if (hour >= 24) { /* no hour left today: the next day */
      if (++d > (unsigned)omniq__days_in_month(y, (int)m)) {
        d = 1;
        if (++m > 12) m = 1, y++;
      }
      hour = 0, minute = 0;
      continue;
    }
    *next_ms = days * DAY_MS + (int64_t)(hour * 60 + minute) * MIN_MS;
    return OMNIQ_OK;
  }
  return OMNIQ_ENOTFOUND;
}
