/* SPDX-License-Identifier: MIT */
/* Cron schedules: parsing a five-field expression and finding its next
 * match, in UTC. The engine uses it at enqueue (to refuse a bad expression
 * and to place the first run) and when a cron task's run finishes (to
 * re-arm it). See cron.c for the grammar. */
#ifndef OMNIQ_CORE_CRON_H
#define OMNIQ_CORE_CRON_H

#include <stddef.h>
#include <stdint.h>

/* A parsed expression: one bit per allowed value of each field. */
typedef struct omniq__cron {
  uint64_t minutes; /* bits 0..59 */
  uint32_t hours;   /* bits 0..23 */
  uint32_t mdays;   /* bits 1..31 */
  uint16_t months;  /* bits 1..12 */
  uint8_t wdays;    /* bits 0..6, Sunday = 0 */
  /* Whether day-of-month / day-of-week was written starting with "*": the
   * two day fields then combine with AND (the starred one allows every
   * day), otherwise a day matches if either field matches. */
  int mday_star, wday_star;
} omniq__cron_t;

/* Parses expr. OMNIQ_EINVAL with err saying where ("position 7: ...", the
 * 1-based byte of expr) and what is wrong; also for an expression that
 * matches no date at all (February 30th). */
int omniq__cron_parse(const char *expr, omniq__cron_t *out, char *err, size_t errlen);

/* The first matching minute strictly after after_ms (ms since the epoch,
 * UTC), in *next_ms. OMNIQ_ENOTFOUND if there is none in the next
 * OMNIQ__CRON_HORIZON_YEARS years (only for expressions that match rare
 * dates, such as February 29th on a given weekday). */
#define OMNIQ__CRON_HORIZON_YEARS 30
int omniq__cron_next(const omniq__cron_t *c, int64_t after_ms, int64_t *next_ms);

#endif
