/* SPDX-License-Identifier: MIT */
/* Clocks and time text. */
#include "base/clock.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "omniq.h"

int64_t omniq_clock_system(void *userdata) {
  struct timespec ts;
  (void)userdata;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t omniq__now(const omniq_settings_t *s) {
  if (s != NULL && s->clock_fn != NULL) return s->clock_fn(s->clock_userdata);
  return omniq_clock_system(NULL);
}

int64_t omniq__mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static _Atomic(int64_t (*)(void)) pool_clock_us;

int64_t omniq__pool_clock_us(void) {
  int64_t (*fn)(void) = atomic_load_explicit(&pool_clock_us, memory_order_relaxed);
  if (fn != NULL) return fn();
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

void omniq__set_pool_clock_us(int64_t (*fn)(void)) { atomic_store(&pool_clock_us, fn); }

int64_t omniq__pool_ms(void) { return omniq__pool_clock_us() / 1000; }

/* The watched pools, for omniq__pool_clock_moved. */
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static omniq__clock_watch_t *watches;

void omniq__pool_clock_watch(omniq__clock_watch_t *w) {
  pthread_mutex_lock(&watch_lock);
  w->next = watches;
  watches = w;
  pthread_mutex_unlock(&watch_lock);
}

void omniq__pool_clock_unwatch(omniq__clock_watch_t *w) {
  pthread_mutex_lock(&watch_lock);
  for (omniq__clock_watch_t **pw = &watches; *pw != NULL; pw = &(*pw)->next)
    if (*pw == w) {
      *pw = w->next;
      break;
    }
  pthread_mutex_unlock(&watch_lock);
}

void omniq__pool_clock_moved(void) {
  pthread_mutex_lock(&watch_lock);
  for (omniq__clock_watch_t *w = watches; w != NULL; w = w->next) {
    pthread_mutex_lock(w->lock);
    pthread_cond_broadcast(w->cond);
    pthread_mutex_unlock(w->lock);
    if (w->moved != NULL) w->moved(w->arg);
  }
  pthread_mutex_unlock(&watch_lock);
}

void omniq__pool_clock_wait(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t until_ms) {
  if (until_ms == INT64_MAX) {
    pthread_cond_wait(cond, lock);
    return;
  }
  int64_t left = until_ms - omniq__pool_ms();
  if (left <= 0) return;
  struct timespec ts = omniq__mono_deadline(left);
  pthread_cond_timedwait(cond, lock, &ts);
}

struct timespec omniq__mono_deadline(int64_t ms_from_now) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  if (ms_from_now < 0) ms_from_now = 0;
  ts.tv_sec += ms_from_now / 1000;
  ts.tv_nsec += (long)(ms_from_now % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec += 1;
    ts.tv_nsec -= 1000000000L;
  }
  return ts;
}

int omniq__cond_init_monotonic(pthread_cond_t *c) {
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);
  if (rc != 0) return rc;
  rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
  if (rc == 0) rc = pthread_cond_init(c, &attr);
  pthread_condattr_destroy(&attr);
  return rc;
}

/* Days since 1970-01-01 for a proleptic Gregorian date, and back (Howard
 * Hinnant's civil-date algorithms): no timegm/gmtime_r, so no time zone or
 * locale state is touched. */
int64_t omniq__days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = (unsigned)(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + (int64_t)doe - 719468;
}

void omniq__civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = (unsigned)(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

int64_t omniq__add_ms(int64_t a, int64_t b) {
  if (b > 0 && a > INT64_MAX - b) return INT64_MAX;
  if (b < 0 && a < INT64_MIN - b) return INT64_MIN;
  return a + b;
}

/* Floor division and its remainder, without negating (-INT64_MIN
 * overflows): any int64, even a clock's garbage, formats without UB. */
static int64_t floor_div(int64_t a, int64_t b, int64_t *rem) {
  int64_t q = a / b, r = a % b;
  if (r < 0) {
    q--;
    r += b;
  }
  *rem = r;
  return q;
}

/* v in exactly n decimal digits (v < 10^n). */
static void put_digits(char *out, unsigned v, int n) {
  for (int i = n - 1; i >= 0; i--, v /= 10) out[i] = (char)('0' + v % 10);
}

/* The n digits at s, whose shape was checked. */
static int get_digits(const char *s, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) v = v * 10 + (s[i] - '0');
  return v;
}

void omniq__iso8601(int64_t ms, char out[OMNIQ__ISO_SIZE]) {
  int64_t frac, sod;
  int64_t secs = floor_div(ms, 1000, &frac);
  int64_t days = floor_div(secs, 86400, &sod);
  int64_t y;
  unsigned m, d;
  omniq__civil_from_days(days, &y, &m, &d);
  if (y < 0 || y > 9999) { /* only a clock's garbage: the general form */
    snprintf(out, OMNIQ__ISO_SIZE, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(sod / 3600), (int)(sod / 60 % 60), (int)(sod % 60), (int)frac);
    return;
  }
  /* Every stored time is written this way, several per record: digits by
   * hand cost a tenth of snprintf, byte for byte the same text. */
  put_digits(out, (unsigned)y, 4);
  out[4] = '-';
  put_digits(out + 5, m, 2);
  out[7] = '-';
  put_digits(out + 8, d, 2);
  out[10] = 'T';
  put_digits(out + 11, (unsigned)(sod / 3600), 2);
  out[13] = ':';
  put_digits(out + 14, (unsigned)(sod / 60 % 60), 2);
  out[16] = ':';
  put_digits(out + 17, (unsigned)(sod % 60), 2);
  out[19] = '.';
  put_digits(out + 20, (unsigned)frac, 3);
  out[23] = 'Z';
  out[24] = '\0';
}

/* The fixed shape: digits where digits go, nothing else (no signs or
 * blanks, which "%d" would take). */
static int iso_shape_ok(const char *s) {
  static const char shape[] = "dddd-dd-ddTdd:dd:dd";
  for (int i = 0; shape[i] != '\0'; i++)
    if (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i]) return 0;
  return 1;
}

int omniq__days_in_month(int64_t y, int m) {
  static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : days[m - 1];
}

int omniq__iso8601_parse(const char *s, int64_t *ms_out) {
  /* The shape is checked first, so the fields are read as plain digits
   * (sscanf cost more than the rest of a record's parse). */
  if (s == NULL || !iso_shape_ok(s)) return OMNIQ_EINVAL;
  int y = get_digits(s, 4), mo = get_digits(s + 5, 2), d = get_digits(s + 8, 2);
  int h = get_digits(s + 11, 2), mi = get_digits(s + 14, 2), sec = get_digits(s + 17, 2);
  const int n = 19;
  /* A day past the month's end (2023-02-29) would silently become another
   * date, so it is refused like any other out-of-range field. */
  if (mo < 1 || mo > 12 || d < 1 || d > omniq__days_in_month(y, mo) || h > 23 || mi > 59 || sec > 60)
    return OMNIQ_EINVAL;
  const char *p = s + n;
  int frac = 0;
  if (*p == '.') {
    int digits = 0;
    for (p++; *p >= '0' && *p <= '9'; p++, digits++)
      if (digits < 3) frac = frac * 10 + (*p - '0');
    if (digits == 0) return OMNIQ_EINVAL;
    for (; digits < 3; digits++) frac *= 10;
  }
  if (strcmp(p, "Z") != 0) return OMNIQ_EINVAL;
  int64_t days = omniq__days_from_civil(y, (unsigned)mo, (unsigned)d);
  int64_t ms = ((days * 86400) + h * 3600 + mi * 60 + sec) * 1000 + frac;
  /* A leap second in the last minute of 9999 names an instant of 10000,
   * which this form cannot write back: refused, like any text it would not
   * produce. */
  if (ms > OMNIQ_TIME_MAX_MS) return OMNIQ_EINVAL;
  *ms_out = ms;
  return OMNIQ_OK;
}
