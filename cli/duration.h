/* SPDX-License-Identifier: MIT */
/* Durations ("250ms", "10s", "1h30m") and RFC 3339 times, read and written
 * the way every omniq subcommand shows them. */
#ifndef OMNIQ_CLI_DURATION_H
#define OMNIQ_CLI_DURATION_H

#include <stddef.h>
#include <stdint.h>

/* The longest duration accepted: 100 years of 365.25 days, the bound the
 * library puts on OMNIQ_* durations, so eta = now + delay never overflows. */
#define CLI_DURATION_MAX_MS INT64_C(3155760000000)

/* Room for "YYYY-MM-DDTHH:MM:SS.mmmZ" and its NUL (and for any int64 year,
 * which the compiler cannot rule out). */
#define CLI_TIME_SIZE 48
/* Room for the longest duration cli_format_duration writes. */
#define CLI_DURATION_SIZE 48

/* Parses one or more NUMBER UNIT pairs ("1h30m", "1.5s", "250ms"); units
 * ms s m h d; NUMBER is digits with an optional fraction. A lone "0" needs
 * no unit. Returns 0 and sets *ms, or -1 with a one-line reason in why. */
int cli_parse_duration(const char *text, int64_t *ms, char *why, size_t whylen);

/* Parses an RFC 3339 date-time ("2026-12-01T08:00:00Z",
 * "2026-12-01 09:00:00.5+01:00") into ms since the epoch, UTC. Years
 * 1970-9999. Returns 0, or -1 with a reason in why. */
int cli_parse_time(const char *text, int64_t *ms, char *why, size_t whylen);

/* Writes ms since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ". */
void cli_format_time(int64_t ms, char out[CLI_TIME_SIZE]);

/* Writes a duration the way cli_parse_duration reads it: "1h30m", "250ms",
 * "0s". Negative values get a leading '-'. */
void cli_format_duration(int64_t ms, char out[CLI_DURATION_SIZE]);

/* Wall-clock now, ms since the epoch. */
int64_t cli_now_ms(void);

#endif
