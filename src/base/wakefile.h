/* SPDX-License-Identifier: MIT */
/* A wake file: wake-ups shared by every process that maps the same file
 * (wakefile.c has the design). One counter per event; a commit bumps it,
 * a waiter sleeps on it with a futex until it moves. */
#ifndef OMNIQ_BASE_WAKEFILE_H
#define OMNIQ_BASE_WAKEFILE_H

#include <stddef.h>
#include <stdint.h>

#include "base/notify.h"

typedef struct omniq__wakefile omniq__wakefile_t;

/* Opens (creating if missing, mode 0666 less the umask) and maps the wake
 * file at path. *out (yours, omniq__wakefile_close) is NULL on error.
 * Returns OMNIQ_OK, OMNIQ_EIO (err says why: the file cannot be opened,
 * grown or mapped) or OMNIQ_ENOMEM. */
int omniq__wakefile_open(const char *path, omniq__wakefile_t **out, char *err, size_t errlen);
/* Unmaps and frees w (NULL is fine). No thread may be waiting on it. */
void omniq__wakefile_close(omniq__wakefile_t *w);

/* The current count of ev. */
uint32_t omniq__wakefile_gen(omniq__wakefile_t *w, omniq__event_t ev);
/* Moves ev's count on and wakes every waiter on it in every process; the
 * FUTEX_WAKE call is skipped when no one waits. */
void omniq__wakefile_bump(omniq__wakefile_t *w, omniq__event_t ev);
/* Sleeps until ev's count differs from seen or timeout_ms passes (< 0 =
 * forever); a signal may end it early. Returns the count on return. */
uint32_t omniq__wakefile_wait(omniq__wakefile_t *w, omniq__event_t ev, uint32_t seen,
                              int64_t timeout_ms);
/* How many threads of all processes wait on ev now (or were killed while
 * waiting). For tests and diagnostics: it says a waiter is asleep. */
uint32_t omniq__wakefile_waiters(omniq__wakefile_t *w, omniq__event_t ev);

#endif
