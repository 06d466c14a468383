/* SPDX-License-Identifier: MIT */
/* Process-wide wake-ups. A result landing or a task being enqueued bumps a
 * generation counter and wakes every waiter in this process, whatever handle
 * it uses; waiters then re-check storage. Other processes are not reached:
 * their waiters poll. */
#ifndef OMNIQ_BASE_NOTIFY_H
#define OMNIQ_BASE_NOTIFY_H

#include <stdint.h>

typedef enum { OMNIQ__EV_RESULT = 0, OMNIQ__EV_WORK = 1 } omniq__event_t;

/* The current generation of ev. */
uint64_t omniq__notify_gen(omniq__event_t ev);
/* Bumps ev's generation and wakes its waiters. */
void omniq__notify(omniq__event_t ev);
/* Waits until ev's generation differs from seen or timeout_ms passes
 * (< 0 = forever). Returns the generation seen on return. */
uint64_t omniq__notify_wait(omniq__event_t ev, uint64_t seen, int64_t timeout_ms);

#endif
