/* SPDX-License-Identifier: MIT */
/* Building a worker pool from its options and freeing it (setup.c). */
#ifndef OMNIQ_WORKER_SETUP_H
#define OMNIQ_WORKER_SETUP_H

#include "worker/pool_state.h"

/* Checks opts (NULL = defaults) and builds a pool with no thread yet, one
 * reference held by the caller; errors name fn. On OMNIQ_OK *out is the
 * caller's, to release with omniq__pool_unref; on error *out is NULL and
 * the handle's message says why. */
int omniq__pool_new(omniq_t *oq, const char *fn, const omniq_worker_opts_t *opts,
                    omniq_worker_t **out);

/* Drops a reference to p; the last frees it, with what its slots, queues
 * and `ready` still hold. Takes p->lock. */
void omniq__pool_unref(omniq_worker_t *p);

#endif
