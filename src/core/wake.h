/* SPDX-License-Identifier: MIT */
/* Wake-ups of a handle's waiters (wake.c): idle workers and result
 * waiters, in this process and in every other process on the same store. */
#ifndef OMNIQ_CORE_WAKE_H
#define OMNIQ_CORE_WAKE_H

#include <stdint.h>

#include "base/notify.h"
#include "core/handle.h"

/* Maps the store's wake file when the backend names one (storage ABI 4).
 * Never fails: a file that cannot be used is logged as a warning and the
 * handle falls back to this process's notifications and polling. */
void omniq__wake_open(omniq_t *oq);
/* Unmaps it; no thread of oq may be waiting. */
void omniq__wake_close(omniq_t *oq);

/* The current generation of ev, to pass to omniq__wake_wait. */
uint64_t omniq__wake_gen(omniq_t *oq, omniq__event_t ev);
/* After a commit that ev's waiters care about: wakes them everywhere. */
void omniq__wake(omniq_t *oq, omniq__event_t ev);
/* Sleeps until ev moves past seen or timeout_ms passes (< 0 = forever);
 * callers then look at storage, which alone says what happened. */
void omniq__wake_wait(omniq_t *oq, omniq__event_t ev, uint64_t seen, int64_t timeout_ms);

#endif
