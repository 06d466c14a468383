/* SPDX-License-Identifier: MIT */
/* Durations and RFC 3339 times for the command line.
 *
 * Both grammars are written out by hand rather than left to strtod or
 * strptime: strtod takes signs, blanks, hex, exponents and the locale's
 * decimal comma, none of which belongs in "--delay 10s"; strptime has no
 * portable way to read a numeric UTC offset and depends on the TZ of the
 * machine. Every field is range-checked, so "2026-02-30" is refused instead
 * of quietly becoming March 2.
 *
 * Dates use the proleptic Gregorian calendar through days_from_civil /
 * civil_from_days (the well-known era arithmetic), valid for any year we
 * accept. Sums are bounded by CLI_DURATION_MAX_MS at every step, so no
 * arithmetic here can overflow. */
#include "duration.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int complain(char *why, size_t whylen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, whylen, fmt, ap);
  va_end(ap);
  return -1;
}

/* ---- durations ------------------------------------------------------------ */

static const struct {
  const char *name;
  int64_t ms;
} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};

/* Reads a unit name at *p (longest match: "ms" before "m"). */
static int64_t read_unit(const char **p) {
  int64_t best = 0;
  size_t bestlen = 0;
  for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
    size_t n = strlen(units[i].name);
    if (n > bestlen && strncmp(*p, units[i].name, n) == 0) {
      best = units[i].ms;
      bestlen = n;
    }
  }
  *p += bestlen;
  return best;
}

int cli_parse_duration(const char *text, int64_t *ms, char *why, size_t whylen) {
  const char *p = text;
  int64_t total = 0;
  if (text == NULL || *text == '\0')
    return complain(why, whylen, "empty duration (examples: 500ms, 10s, 5m, 1h30m, 7d)");
  if (strcmp(text, "0") == 0) {
    *ms = 0;
    return 0;
  }
  while (*p != '\0') {
    /* NUMBER: whole part and up to 9 fraction digits kept as a ratio. */
    int64_t whole = 0, frac = 0, scale = 1;
    int digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++) {
      whole = whole * 10 + (*p - '0');
      if (whole > CLI_DURATION_MAX_MS) return complain(why, whylen, "'%s' is too long", text);
    }
    if (*p == '.') {
      int fdigits = 0;
      for (p++; *p >= '0' && *p <= '9'; p++, fdigits++)
        if (scale < 1000000000) {
          frac = frac * 10 + (*p - '0');
          scale *= 10;
        }
      if (fdigits == 0) digits = 0;
    }
    if (digits == 0)
      return complain(why, whylen, "'%s' is not a duration (examples: 500ms, 10s, 5m, 1h30m, 7d)",
                      text);
    int64_t unit = read_unit(&p);
    if (unit == 0)
      return complain(why, whylen, "'%s' needs a unit: ms, s, m, h or d (as in 10s)", text);
    if (whole > (CLI_DURATION_MAX_MS - total) / unit)
      return complain(why, whylen, "'%s' is too long (at most 100 years)", text);
    /* frac/scale < 1 and unit <= 86400000, so frac * unit fits easily. */
    total += whole * unit + (frac * unit) / scale;
    if (total > CLI_DURATION_MAX_MS)
      return complain(why, whylen, "'%s' is too long (at most 100 years)", text);
  }
  *ms = total;
  return 0;
}

void cli_format_duration(int64_t ms, char out[CLI_DURATION_SIZE]) {
  size_t n = 0;
  if (ms < 0) {
    out[n++] = '-';
    ms = ms == INT64_MIN ? INT64_MAX : -ms;
  }
  if (ms == 0) {
    snprintf(out + n, CLI_DURATION_SIZE - n, "0s");
    return;
  }
  out[n] = '\0';
  for (size_t i = sizeof units / sizeof units[0]; i-- > 0 && ms > 0;) {
    int64_t count = ms / units[i].ms;
    if (count == 0) continue;
    n += (size_t)snprintf(out + n, CLI_DURATION_SIZE - n, "%lld%s", (long long)count,
                          units[i].name);
    ms -= count * units[i].ms;
  }
}

/* ---- calendar ------------------------------------------------------------- */

static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const int64_t yoe = y - era * 400;
  const int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const int64_t doe = z - era * 146097;
  const int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const int64_t mp = (5 * doy + 2) / 153;
  *d = (int)(doy - (153 * mp + 2) / 5 + 1);
  *m = (int)(mp < 10 ? mp + 3 : mp - 9);
  *y = yoe + era * 400 + (*m <= 2);
}

static int days_in_month(int y, int m) {
  static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

/* Reads exactly n digits at *p. */
static int digits(const char **p, int n, int *out) {
  int v = 0;
  for (int i = 0; i < n; i++, (*p)++) {
    if (**p < '0' || **p > '9') return -1;
    v = v * 10 + (**p - '0');
  }
  *out = v;
  return 0;
}

static int expect(const char **p, const char *any) {
  if (**p == '\0' || strchr(any, **p) == NULL) return -1;
  (*p)++;
  return 0;
}

int cli_parse_time(const char *text, int64_t *ms, char *why, size_t whylen) {
  const char *p = text;
  int y, mo, d, h, mi, s, frac = 0, off = 0;
  static const char example[] = "(as in 2026-12-01T08:00:00Z or 2026-12-01T09:00:00+01:00)";
  if (text == NULL || digits(&p, 4, &y) || expect(&p, "-") || digits(&p, 2, &mo) ||
      expect(&p, "-") || digits(&p, 2, &d) || expect(&p, "Tt ") || digits(&p, 2, &h) ||
      expect(&p, ":") || digits(&p, 2, &mi) || expect(&p, ":") || digits(&p, 2, &s))
    return complain(why, whylen, "'%s' is not an RFC 3339 time %s", text ? text : "", example);
  if (*p == '.') {
    int n = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, n++)
      if (n < 3) frac = frac * 10 + (*p - '0');
    if (n == 0) return complain(why, whylen, "'%s': no digits after the '.'", text);
    for (; n < 3; n++) frac *= 10;
  }
  if (*p == 'Z' || *p == 'z') {
    p++;
  } else if (*p == '+' || *p == '-') {
    int sign = *p++ == '-' ? -1 : 1, oh, om;
    if (digits(&p, 2, &oh) || expect(&p, ":") || digits(&p, 2, &om) || oh > 23 || om > 59)
      return complain(why, whylen, "'%s': the UTC offset must be +HH:MM or -HH:MM", text);
    off = sign * (oh * 60 + om);
  } else {
    return complain(why, whylen, "'%s' needs a UTC offset: Z or +HH:MM %s", text, example);
  }
  if (*p != '\0') return complain(why, whylen, "'%s' has extra text after the time", text);
  if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
      s > 60)
    return complain(why, whylen, "'%s' is not a valid date and time (years 1970-9999)", text);
  int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - off * 60;
  if (secs < 0) return complain(why, whylen, "'%s' is before 1970-01-01T00:00:00Z", text);
  *ms = secs * 1000 + frac;
  return 0;
}

void cli_format_time(int64_t ms, char out[CLI_TIME_SIZE]) {
  int64_t secs = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
  int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  int64_t sod = secs - days * 86400, y;
  int m, d;
  civil_from_days(days, &y, &m, &d);
  snprintf(out, CLI_TIME_SIZE, "%04lld-%02d-%02dT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
           (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)(ms - secs * 1000));
}

int64_t cli_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
