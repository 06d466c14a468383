/* Resolving a task's func to a handler: a registered name first, else a
 * "path/to/lib.so:symbol" loaded with dlopen/dlsym. */
#ifndef OMNIQ_RESOLVE_H
#define OMNIQ_RESOLVE_H

#include <stddef.h>

#include "core/handle.h"

/* Finds the handler for func. OMNIQ_OK fills fn and userdata (NULL for a
 * library symbol). OMNIQ_EHANDLER if there is none, with the reason in err
 * (for a library: the dlerror() text). Thread-safe. */
int omniq__resolve(omniq_t *oq, const char *func, omniq_handler_fn *fn, void **userdata,
                   char *err, size_t errlen);

#endif
