/* SPDX-License-Identifier: MIT */
/* A handle's wake-ups: through the store's wake file when it has one,
 * else through the process-wide notifications.
 *
 * The wake file (base/wakefile.c) reaches every process that maps it,
 * this one included, so a handle with one uses it alone: an enqueue wakes
 * the idle workers of every process on the store and a finish wakes every
 * result waiter, each with one futex. A handle without one (a store that
 * is not shared, a backend of ABI < 4, or a file that could not be
 * opened) uses notify.c, which reaches this process only; PostgreSQL's
 * listener feeds notify.c from LISTEN/NOTIFY, so one hook serves every
 * backend. Either way a waiter wakes to look at storage, and keeps its
 * poll as the fallback for what no commit announces (a task whose eta
 * comes due, a store written by a program that does not bump the file). */
#include "core/wake.h"

#include <limits.h>

#include "base/wakefile.h"
#include "core/store.h"

void omniq__wake_open(omniq_t *oq) {
  char path[PATH_MAX + 16];
  char err[PATH_MAX + 128];
  oq->wake = NULL;
  if (omniq__store_wake_path(oq, path, sizeof path) != OMNIQ_OK) return;
  if (omniq__wakefile_open(path, &oq->wake, err, sizeof err) != OMNIQ_OK)
    omniq__log(&oq->log, OMNIQ_LOG_WARNING, "store.wake_file", NULL,
               "%s; other processes on this store are found by polling", err);
}

void omniq__wake_close(omniq_t *oq) {
  omniq__wakefile_close(oq->wake);
  oq->wake = NULL;
}

uint64_t omniq__wake_gen(omniq_t *oq, omniq__event_t ev) {
  return oq->wake != NULL ? omniq__wakefile_gen(oq->wake, ev) : omniq__notify_gen(ev);
}

void omniq__wake(omniq_t *oq, omniq__event_t ev) {
  if (oq->wake != NULL)
    omniq__wakefile_bump(oq->wake, ev);
  else
    omniq__notify(ev);
}

void omniq__wake_wait(omniq_t *oq, omniq__event_t ev, uint64_t seen, int64_t timeout_ms) {
  if (oq->wake != NULL)
    omniq__wakefile_wait(oq->wake, ev, (uint32_t)seen, timeout_ms);
  else
    omniq__notify_wait(ev, seen, timeout_ms);
}
