/* SPDX-License-Identifier: MIT */
/* The handle: what omniq_open builds and the façade, the engine and the
 * workers share. Storage never sees it: a backend gets the settings and
 * keeps its own state.
 *
 * Locks: `lock` guards the handler table, the worker list and
 * threads_alive; `reap_lock` guards next_reap_ms and next_retain_ms. Storage backends do their
 * own locking; the engine holds no lock of its own while calling storage.
 */
#ifndef OMNIQ_CORE_HANDLE_H
#define OMNIQ_CORE_HANDLE_H

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
  struct omniq__wakefile *wake; /* the store's wake file (core/wake.c); NULL = none */

  pthread_mutex_t lock;
  omniq__handler_t *handlers;
  omniq_handler_fn fallback_fn; /* omniq_register_fallback; NULL = none */
  void *fallback_userdata;
  struct omniq_worker *workers; /* started and not yet stopped */
  int threads_alive;            /* worker threads still running, incl. detached */
  pthread_cond_t threads_cond;  /* signalled when threads_alive drops */

  pthread_mutex_t reap_lock;
  int64_t next_reap_ms;   /* next time (store clock) to look for lost leases */
  int64_t next_retain_ms; /* next time (store clock) to offer to run retention */
};

#endif
