/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: one time base for every host (timebase.c).
 *
 * The database server's clock decides when a task is due and when a lease
 * has expired. Each handle measures offset = server clock - its own clock
 * when it opens and maps every time it is given into server time with it;
 * docs/storage-postgres.md says why and when the offset is measured again. */
#ifndef OMNIQ_PG_TIMEBASE_H
#define OMNIQ_PG_TIMEBASE_H

#include <libpq-fe.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "omniq.h"

/* How often a handle on the system clock measures its offset again. */
#define OMNIQ__PG_RESYNC_MS 60000
/* An offset smaller than this is taken as none: it is within what one
 * measurement can tell (half a round trip, ms rounding), and handles on one
 * host must agree exactly. */
#define OMNIQ__PG_SKEW_IGNORED_MS 100

typedef struct omniq__pg_timebase {
  omniq_clock_fn clock; /* the handle's clock (settings.clock_fn or the system's) */
  void *clock_userdata;
  int follows_system;   /* 1: the system clock, re-measured every OMNIQ__PG_RESYNC_MS */
  _Atomic int64_t offset_ms;
  _Atomic int64_t next_sync_ms; /* monotonic */
} omniq__pg_timebase_t;

/* Takes the clock from settings (borrowed for the call). */
void omniq__pg_timebase_init(omniq__pg_timebase_t *tb, const omniq_settings_t *s);

/* Measures the offset on pg: the best of a few round trips, taking the
 * server's clock_timestamp() against the middle of the handle's clock
 * readings around it. OMNIQ_ESTORAGE with err if the query fails. */
int omniq__pg_timebase_measure(omniq__pg_timebase_t *tb, PGconn *pg, char *err, size_t errlen);

/* 1 when a handle on the system clock is due to measure again; claims the
 * turn, so of several threads asking at once one gets 1. Always 0 for an
 * injected clock: its jumps are the caller's intent, not skew. */
int omniq__pg_timebase_resync_due(omniq__pg_timebase_t *tb);

/* handle_ms (a time by the handle's clock) on the server's clock,
 * saturating instead of overflowing. */
int64_t omniq__pg_server_ms(const omniq__pg_timebase_t *tb, int64_t handle_ms);

#endif
