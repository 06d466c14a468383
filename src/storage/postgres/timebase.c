/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: mapping a handle's clock onto the server's.
 *
 * Why the server's clock. Hosts disagree about the time by whatever their
 * synchronisation leaves (seconds on a badly kept host). If each claimer
 * compared due times with its own clock, a host running ahead would start
 * tasks early, and one running ahead by more than a lease would take
 * running tasks from live workers. The one clock every host shares is the
 * database server's, so every decision is made in server time: a handle
 * measures offset = server - own clock once, and adds it to each time it
 * passes for a decision (due_ms, lease_due_ms, finished_due_ms, and the
 * "now" of a claim or a lease scan).
 *
 * Why an offset and not the server's now() in SQL. The handle's clock stays
 * the one that moves time for the handle: a test's manual clock advanced by
 * a lease expires the lease in the store too, and a time a caller wrote
 * (an eta, a lease_until) reads back exactly as written.
 *
 * Small offsets. One measurement is off by up to half its round trip, so
 * two handles on one host would each find a slightly different offset and
 * disagree by a millisecond or two about a boundary (is a task due at
 * exactly its eta?). An offset under OMNIQ__PG_SKEW_IGNORED_MS is therefore
 * taken as zero: handles on one host agree exactly, and a host whose clock
 * is off by less than that may act that much early or late.
 *
 * When it is measured again. A jump of an injected clock is what the
 * caller meant (a test moving time), so its offset is measured once, at
 * open, and never again. The system clock is measured again every minute,
 * which follows a host clock that is stepped or drifts; between two
 * measurements the mapping is off by the drift since the last one. Either
 * way a measurement is off by at most half the round trip it took (the
 * best of three is kept).
 */
#include "storage/postgres/timebase.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"

#define SAMPLES 3

void omniq__pg_timebase_init(omniq__pg_timebase_t *tb, const omniq_settings_t *s) {
  tb->clock = s->clock_fn != NULL ? s->clock_fn : omniq_clock_system;
  tb->clock_userdata = s->clock_fn != NULL ? s->clock_userdata : NULL;
  tb->follows_system = tb->clock == omniq_clock_system;
  atomic_store(&tb->offset_ms, 0);
  atomic_store(&tb->next_sync_ms, INT64_MAX);
}

int omniq__pg_timebase_measure(omniq__pg_timebase_t *tb, PGconn *pg, char *err, size_t errlen) {
  int64_t best_rtt = INT64_MAX, best = 0;
  for (int i = 0; i < SAMPLES; i++) {
    int64_t m0 = omniq__mono_ms(), t0 = tb->clock(tb->clock_userdata);
    PGresult *r = PQexec(pg, "SELECT round(extract(epoch FROM clock_timestamp()) * 1000)::int8");
    int64_t t1 = tb->clock(tb->clock_userdata), m1 = omniq__mono_ms();
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
      snprintf(err, errlen, "postgres: reading the server's clock: %s", PQerrorMessage(pg));
      PQclear(r);
      return OMNIQ_ESTORAGE;
    }
    int64_t server = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    if (m1 - m0 < best_rtt) {
      best_rtt = m1 - m0;
      best = server - (t0 + (t1 - t0) / 2);
    }
  }
  if (best > -OMNIQ__PG_SKEW_IGNORED_MS && best < OMNIQ__PG_SKEW_IGNORED_MS) best = 0;
  atomic_store(&tb->offset_ms, best);
  if (tb->follows_system) atomic_store(&tb->next_sync_ms, omniq__mono_ms() + OMNIQ__PG_RESYNC_MS);
  return OMNIQ_OK;
}

int omniq__pg_timebase_resync_due(omniq__pg_timebase_t *tb) {
  int64_t due = atomic_load(&tb->next_sync_ms), now = omniq__mono_ms();
  if (!tb->follows_system || now < due) return 0;
  /* Whoever moves next_sync_ms on measures; a failed measurement keeps
   * the old offset and tries again a period later. */
  return atomic_compare_exchange_strong(&tb->next_sync_ms, &due, now + OMNIQ__PG_RESYNC_MS);
}

int64_t omniq__pg_server_ms(const omniq__pg_timebase_t *tb, int64_t handle_ms) {
  int64_t off = atomic_load(&tb->offset_ms), out;
  if (__builtin_add_overflow(handle_ms, off, &out)) return off > 0 ? INT64_MAX : INT64_MIN;
  return out;
}
