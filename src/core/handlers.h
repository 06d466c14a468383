/* SPDX-License-Identifier: MIT */
/* Handlers: the handle's registry of named handlers, and resolving a
 * task's func to a handler (a registered name first, else a
 * "path/to/lib.so:symbol" from an allowed library, loaded with
 * dlopen/dlsym, else the fallback). */
#ifndef OMNIQ_CORE_HANDLERS_H
#define OMNIQ_CORE_HANDLERS_H

#include <stddef.h>

#include "core/handle.h"

/* Registers (or replaces) the handler for name (copied). OMNIQ_EINVAL for
 * an empty name or a NULL fn, OMNIQ_ENOMEM; the message is oq's errmsg. */
int omniq__handlers_set(omniq_t *oq, const char *name, omniq_handler_fn fn, void *userdata);
/* Sets (fn NULL: removes) the handler for funcs with no registered
 * handler that are not library funcs. */
void omniq__handlers_set_fallback(omniq_t *oq, omniq_handler_fn fn, void *userdata);
/* Frees the registry (omniq_close, once no worker runs). */
void omniq__handlers_free(omniq_t *oq);

/* Finds the handler for func. A library func resolves only for a library
 * that oq's settings.handler_path or handler_path (the pool's; may be NULL)
 * allows. OMNIQ_OK fills fn and userdata (NULL for a library symbol; the
 * fallback's own for the fallback). OMNIQ_EHANDLER if there is none, with
 * the reason in err (a library not allowed, and which setting allows it;
 * the dlerror() text). Thread-safe. */
int omniq__handlers_resolve(omniq_t *oq, const char *func, const char *handler_path,
                            omniq_handler_fn *fn, void **userdata, char *err, size_t errlen);

/* Around a fork whose child will resolve handlers (the process-isolation
 * zygote): lock takes the library cache's lock, so the copy never holds it
 * half-changed or locked by a thread that does not exist there; unlock
 * releases it, in the parent and in the child alike. */
void omniq__handlers_fork_lock(void);
void omniq__handlers_fork_unlock(void);

#endif
