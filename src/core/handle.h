/* The handle: what omniq_open builds and every layer above storage shares.
 *
 * Locks: `lock` guards the handler table and the worker list. Storage
 * backends do their own locking; the queue engine holds no lock of its own
 * while calling storage.
 */
#ifndef OMNIQ_CORE_H
#define OMNIQ_CORE_H

#include <pthread.h>
#include <stdint.h>

#include "base/log.h"
#include "omniq/storage.h"

typedef struct omniq__handler {
  char *name;
  omniq_handler_fn fn;
  void *userdata;
  struct omniq__handler *next;
} omniq__handler_t;

struct omniq {
  uint64_t id; /* for omniq_errmsg slots */
  omniq_settings_t settings;
  omniq__log_t log;
  const omniq_storage_ops_t *ops;
  void *backend;

  pthread_mutex_t lock;
  omniq__handler_t *handlers;
  struct omniq_worker *workers; /* started and not yet stopped */
  int threads_alive;            /* worker threads still running, incl. detached */
  pthread_cond_t threads_cond;  /* signalled when threads_alive drops */

  pthread_mutex_t reap_lock;
  int64_t next_reap_ms; /* next time (store clock) to look for lost leases */
};

/* Looks up a registered handler; returns 1 and fills fn/userdata if found. */
int omniq__handler_find(omniq_t *oq, const char *name, omniq_handler_fn *fn, void **userdata);

#endif
