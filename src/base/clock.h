/* SPDX-License-Identifier: MIT */
/* Time. Lifecycle times come from the settings' injectable clock, and a
 * worker pool's own bookkeeping from the pool's injectable monotonic
 * clock, so tests move time instead of sleeping; other waits with a real
 * duration use the monotonic clock. */
#ifndef OMNIQ_BASE_CLOCK_H
#define OMNIQ_BASE_CLOCK_H

#include <stdint.h>
#include <pthread.h>
#include <time.h>
#include "omniq.h"

/* Now, by the settings' clock (or the system clock when none is set). */
int64_t omniq__now(const omniq_settings_t *s);
/* Monotonic milliseconds, for measuring real waits. */
int64_t omniq__mono_ms(void);
/* Monotonic microseconds, by the pool's clock. CLOCK_MONOTONIC unless a
 * test has set its own with omniq__set_pool_clock_us, so that run times,
 * leases and deadlines are what it says. */
int64_t omniq__pool_clock_us(void);
/* Sets the pool's microsecond clock for the whole process (NULL: back to
 * CLOCK_MONOTONIC). For tests; call it with no pool running. */
void omniq__set_pool_clock_us(int64_t (*fn)(void));
/* Milliseconds by the pool's clock: the one time a worker pool measures
 * and plans by (src/worker/: leases, extensions and the lease margin,
 * deadlines, the batch's delay, report retries, held runs). */
int64_t omniq__pool_ms(void);

/* Waiting for a moment of the pool's clock. The sleep itself is a real
 * one (a condition variable's timed wait, as long as the pool's clock has
 * left to go), so a clock a test holds still would wake nobody: a pool
 * watches its lock and condition variable (omniq__pool_clock_watch), and a
 * test that moves its clock calls omniq__pool_clock_moved, which
 * broadcasts every watched condition under its lock. A waiter looks at
 * the clock under that lock before it sleeps, so no move is missed.
 * Lock order: the registry's lock, then a watched lock; so neither
 * function below may be called with a watched lock held. */
typedef struct omniq__clock_watch {
  pthread_mutex_t *lock;
  pthread_cond_t *cond; /* made with omniq__cond_init_monotonic */
  /* Called (if set) after the broadcast, outside lock: for a waiter that
   * sleeps elsewhere than on cond (a pool's leader waits for new work, and
   * a task the store's clock made due is new work to it). */
  void (*moved)(void *arg);
  void *arg;
  struct omniq__clock_watch *next;
} omniq__clock_watch_t;
void omniq__pool_clock_watch(omniq__clock_watch_t *w);
void omniq__pool_clock_unwatch(omniq__clock_watch_t *w);
/* Wakes every watched waiter to look at the pool's clock (and at the
 * store's: a deadline passes by either). For tests, after they moved
 * either clock. */
void omniq__pool_clock_moved(void);
/* With lock held: sleeps on cond until it is signalled or a real time as
 * long as the pool's clock has left to reach until_ms has gone by
 * (INT64_MAX: until signalled; a moment already reached: no sleep). The
 * caller looks again at what it waits for, the clock included. */
void omniq__pool_clock_wait(pthread_cond_t *cond, pthread_mutex_t *lock, int64_t until_ms);
/* An absolute CLOCK_MONOTONIC timespec ms from now, for condvars created
 * with omniq__cond_init_monotonic. */
struct timespec omniq__mono_deadline(int64_t ms_from_now);
/* Initialises a condition variable that waits on CLOCK_MONOTONIC. */
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
