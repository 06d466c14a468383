/* SPDX-License-Identifier: MIT */
/* What the engine's two files share (core/engine.c owns each; core/enqueue.c
 * calls them): the store's clock, the next cron match a store keeps and the
 * default queue. Nothing outside the engine includes this. */
#ifndef OMNIQ_CORE_ENGINE_SHARED_H
#define OMNIQ_CORE_ENGINE_SHARED_H

#include "core/cron.h"
#include "core/handle.h"

/* The queue of a task enqueued without one, and of a worker given none:
 * {OMNIQ_DEFAULT_QUEUE, NULL}. */
extern const char *const omniq__engine_default_queues[];

/* The store's clock, if it reads an instant a store keeps; else
 * OMNIQ_ECONFIG (nothing is stored or changed). */
int omniq__engine_clock_now(omniq_t *oq, int64_t *now);

/* The next match of c after after_ms that a store keeps; OMNIQ_ENOTFOUND
 * past the last instant, as for an expression that never matches again. */
int omniq__engine_cron_next(const omniq__cron_t *c, int64_t after_ms, int64_t *next_ms);

#endif
