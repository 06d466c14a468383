/* SPDX-License-Identifier: MIT */
/* Time. Lifecycle times come from the settings' injectable clock so tests
 * move time instead of sleeping; waits with a real duration use the
 * monotonic clock. */
#ifndef OMNIQ_BASE_CLOCK_H
#define OMNIQ_BASE_CLOCK_H

#include <stdint.h>
#include <time.h>
#include "omniq.h"

/* Now, by the settings' clock (or the system clock when none is set). */
int64_t omniq__now(const omniq_settings_t *s);
/* Monotonic milliseconds, for measuring real waits. */
int64_t omniq__mono_ms(void);
/* Monotonic microseconds, by the pool's clock: how long handlers run
 * (worker/run.c). CLOCK_MONOTONIC unless a test has set its own with
 * omniq__set_pool_clock_us, so that run times are what it says. */
int64_t omniq__pool_clock_us(void);
/* Sets the pool's microsecond clock for the whole process (NULL: back to
 * CLOCK_MONOTONIC). For tests; call it with no pool running. */
void omniq__set_pool_clock_us(int64_t (*fn)(void));
/* An absolute CLOCK_MONOTONIC timespec ms from now, for condvars created
 * with omniq__cond_init_monotonic. */
struct timespec omniq__mono_deadline(int64_t ms_from_now);
/* Initialises a condition variable that waits on CLOCK_MONOTONIC. */
#include <pthread.h>
int omniq__cond_init_monotonic(pthread_cond_t *c);

/* a + b, saturated at INT64_MIN and INT64_MAX instead of overflowing: for
 * sums of values read from a store, which need not be ones the engine
 * accepted. */
int64_t omniq__add_ms(int64_t a, int64_t b);

/* The proleptic Gregorian calendar, in UTC: days since 1970-01-01 for a
 * date and back, and the length of a month (m 1..12). */
int64_t omniq__days_from_civil(int64_t y, unsigned m, unsigned d);
void omniq__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);
int omniq__days_in_month(int64_t y, int m);

/* ISO-8601 UTC with milliseconds: "2026-11-26T09:07:24.123Z" (24 chars). */
#define OMNIQ__ISO_SIZE 64
void omniq__iso8601(int64_t ms, char out[OMNIQ__ISO_SIZE]);
/* Parses the form above (also without fraction, and second 60 for a leap
 * second); OMNIQ_EINVAL if not, or if it names an instant past
 * OMNIQ_TIME_MAX_MS (which the form above could not write back). */
int omniq__iso8601_parse(const char *s, int64_t *ms_out);

#endif
