/* SPDX-License-Identifier: MIT */
/* Per-thread, per-handle last error messages (see omniq_errmsg). */
#ifndef OMNIQ_BASE_ERROR_H
#define OMNIQ_BASE_ERROR_H

#include <stddef.h>
#include <stdint.h>

#define OMNIQ__ERRMSG_MAX 512

/* Records the calling thread's message for the handle with this id (0 = no
 * handle) and returns rc, so callers can write `return omniq__err(...)`. */
int omniq__err(uint64_t handle_id, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Clears the calling thread's message for the handle. */
void omniq__err_clear(uint64_t handle_id);
/* The calling thread's message for the handle, or "". */
const char *omniq__errmsg(uint64_t handle_id);

/* A fresh, process-unique handle id (never 0). */
uint64_t omniq__handle_id_next(void);

/* Maps an errno value to an OMNIQ_E* code. */
int omniq__errno_code(int err);

#endif
