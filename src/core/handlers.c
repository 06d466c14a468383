/* SPDX-License-Identifier: MIT */
/* Handlers: the registry and resolution.
 *
 * The registry is a short list on the handle, guarded by oq->lock; a
 * handler registered again replaces the old one in place, so a worker that
 * is resolving never sees a name missing. The fallback handler
 * (omniq_register_fallback) sits beside it under the same lock.
 *
 * A func is looked up among the handlers registered on the handle first, so
 * a name may never be shadowed by a file of the same name. Otherwise a func
 * of the form "path/to/lib.so:symbol" (split at the last ':') may be loaded,
 * but only from what the worker is allowed: the settings' handler_path
 * (OMNIQ_HANDLER_PATH) and the pool's own, ':'-separated folders and files,
 * none by default. Whoever can write the store chooses every func, so
 * without this any writer could make every worker run any exported symbol
 * of any library ("libc.so.6:getpid" did). The library's path is made
 * canonical first (realpath: symlinks and ".." resolved) and must then be a
 * listed file or lie under a listed folder, itself made canonical, so no
 * path can climb out of an allowed folder; the canonical path is what is
 * loaded. A path without a '/' is looked for in the listed folders, in
 * order, never where dlopen would search. Then dlopen(RTLD_NOW |
 * RTLD_LOCAL) and dlsym(symbol). A library refused or not found fails the
 * task as HandlerNotFound (not retryable), the message naming the setting.
 * Any other func goes to the handle's fallback handler, if one is set; a
 * library func never does, so the fallback cannot widen what may be loaded.
 *
 * Opened libraries are kept in a small process-wide cache and never closed:
 * a handler from the library may still be running (or be deferred) when
 * the last task naming it ends, and dlclose under it would unmap its code.
 * The cache only saves the dlopen call and its loader lock; past
 * CACHE_MAX entries a library is still opened (dlopen bumps its count),
 * just not remembered. Failures are never cached, so a library that
 * appears later is found.
 *
 * Locks: cache_lock guards the cache and brackets dlopen/dlsym/dlerror so
 * the dlerror() text read belongs to this caller's call.
 */
#include "core/handlers.h"

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/error.h"

/* ---- the registry --------------------------------------------------------- */

int omniq__handlers_set(omniq_t *oq, const char *name, omniq_handler_fn fn, void *userdata) {
  if (name == NULL || name[0] == '\0' || fn == NULL)
    return omniq__err(oq->id, OMNIQ_EINVAL, "omniq_register: name and fn are required");
  pthread_mutex_lock(&oq->lock);
  omniq__handler_t *h = oq->handlers;
  while (h != NULL && strcmp(h->name, name) != 0) h = h->next;
  if (h == NULL) {
    h = omniq__calloc(1, sizeof *h);
    if (h != NULL && (h->name = omniq__strdup(name)) == NULL) {
      omniq__free(h);
      h = NULL;
    }
    if (h == NULL) {
      pthread_mutex_unlock(&oq->lock);
      return omniq__err(oq->id, OMNIQ_ENOMEM, "omniq_register: out of memory");
    }
    h->next = oq->handlers;
    oq->handlers = h;
  }
  h->fn = fn;
  h->userdata = userdata;
  pthread_mutex_unlock(&oq->lock);
  return OMNIQ_OK;
}

void omniq__handlers_free(omniq_t *oq) {
  for (omniq__handler_t *h = oq->handlers, *next; h != NULL; h = next) {
    next = h->next;
    omniq__free(h->name);
    omniq__free(h);
  }
  oq->handlers = NULL;
}

/* Looks up a registered handler; 1 and fn/userdata filled if found. */
static int registered(omniq_t *oq, const char *name, omniq_handler_fn *fn, void **userdata) {
  int found = 0;
  pthread_mutex_lock(&oq->lock);
  for (omniq__handler_t *h = oq->handlers; h != NULL && !found; h = h->next)
    if (strcmp(h->name, name) == 0) {
      *fn = h->fn;
      *userdata = h->userdata;
      found = 1;
    }
  pthread_mutex_unlock(&oq->lock);
  return found;
}

void omniq__handlers_set_fallback(omniq_t *oq, omniq_handler_fn fn, void *userdata) {
  pthread_mutex_lock(&oq->lock);
  oq->fallback_fn = fn;
  oq->fallback_userdata = fn != NULL ? userdata : NULL;
  pthread_mutex_unlock(&oq->lock);
}

/* The fallback handler; 1 and fn/userdata filled if one is set. */
static int fallback(omniq_t *oq, omniq_handler_fn *fn, void **userdata) {
  pthread_mutex_lock(&oq->lock);
  *fn = oq->fallback_fn;
  *userdata = oq->fallback_userdata;
  pthread_mutex_unlock(&oq->lock);
  return *fn != NULL;
}

/* ---- libraries ------------------------------------------------------------ */

#define CACHE_MAX 64

typedef struct lib {
  char *path;
  void *handle;
  struct lib *next;
} lib_t;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static lib_t *cache;
static int cache_len;

/* The library for path, opened if needed. Call with cache_lock held. */
static void *open_locked(const char *path, char *err, size_t errlen) {
  for (lib_t *l = cache; l != NULL; l = l->next)
    if (strcmp(l->path, path) == 0) return l->handle;
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *why = dlerror();
    snprintf(err, errlen, "cannot load handler library '%s': %s", path,
             why != NULL ? why : "unknown error");
    return NULL;
  }
  if (cache_len < CACHE_MAX) {
    lib_t *l = omniq__malloc(sizeof *l);
    char *p = omniq__strdup(path);
    if (l != NULL && p != NULL) {
      l->path = p;
      l->handle = h;
      l->next = cache;
      cache = l;
      cache_len++;
    } else {
      omniq__free(l);
      omniq__free(p);
    }
  }
  return h;
}

/* ---- what may be loaded --------------------------------------------------- */

#define ALLOW_HINT                                                                         \
  "add its folder or the file to OMNIQ_HANDLER_PATH (settings.handler_path) or to the "   \
  "worker's handler_path to allow it"

typedef struct allow {
  const char *lists[2]; /* the settings' handler_path, the pool's; each may be NULL */
} allow_t;

/* Calls fn(canonical entry, is_dir, ud) for each entry of the lists that
 * exists, until fn returns non-zero; returns that, or 0. */
static int each_allowed(const allow_t *a, int (*fn)(const char *, int, void *), void *ud) {
  for (int l = 0; l < 2; l++) {
    for (const char *p = a->lists[l]; p != NULL && *p != '\0';) {
      const char *end = strchr(p, ':');
      size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
      char entry[PATH_MAX], canon[PATH_MAX];
      struct stat st;
      if (n > 0 && n < sizeof entry) {
        memcpy(entry, p, n);
        entry[n] = '\0';
        if (realpath(entry, canon) != NULL && stat(canon, &st) == 0) {
          int r = fn(canon, S_ISDIR(st.st_mode), ud);
          if (r != 0) return r;
        }
      }
      p += n + (end != NULL);
    }
  }
  return 0;
}

/* Whether canonical path `lib` is a listed file or under a listed folder. */
static int allows(const char *entry, int is_dir, void *lib) {
  size_t n = strlen(entry);
  if (!is_dir) return strcmp(entry, lib) == 0;
  if (n == 1) return 1; /* "/" itself */
  return strncmp(entry, lib, n) == 0 && ((const char *)lib)[n] == '/';
}

typedef struct {
  const char *name;      /* a bare file name */
  char found[PATH_MAX];  /* its canonical path in the first folder holding it */
} lookup_t;

static int look_in(const char *entry, int is_dir, void *ud) {
  lookup_t *lk = ud;
  char path[PATH_MAX + 256];
  if (!is_dir) return 0;
  snprintf(path, sizeof path, "%s/%s", entry, lk->name);
  return realpath(path, lk->found) != NULL;
}

/* The canonical path of library `path` if the worker may load it, in
 * canon; else OMNIQ_EHANDLER with the reason. */
static int allowed_library(const allow_t *a, const char *path, char canon[PATH_MAX], char *err,
                           size_t errlen) {
  if (strchr(path, '/') == NULL) {
    lookup_t lk = {.name = path};
    if (!each_allowed(a, look_in, &lk)) {
      snprintf(err, errlen, "handler library '%s' is in no folder a worker may load from; %s",
               path, ALLOW_HINT);
      return OMNIQ_EHANDLER;
    }
    memcpy(canon, lk.found, PATH_MAX);
  } else if (realpath(path, canon) == NULL) {
    snprintf(err, errlen, "cannot load handler library '%s': %s", path, strerror(errno));
    return OMNIQ_EHANDLER;
  }
  if (!each_allowed(a, allows, canon)) {
    snprintf(err, errlen, "handler library '%s' (%s) is not allowed; %s", path, canon,
             ALLOW_HINT);
    return OMNIQ_EHANDLER;
  }
  return OMNIQ_OK;
}

static int resolve_symbol(const allow_t *a, const char *func, omniq_handler_fn *fn, char *err,
                          size_t errlen) {
  const char *colon = strrchr(func, ':');
  size_t plen = (size_t)(colon - func);
  char given[OMNIQ_PATH_MAX], path[PATH_MAX];
  if (plen == 0 || colon[1] == '\0') {
    snprintf(err, errlen, "handler '%s' is not registered and is not a path/to/lib.so:symbol",
             func);
    return OMNIQ_EHANDLER;
  }
  if (plen >= sizeof given) {
    snprintf(err, errlen, "handler library path is longer than %d bytes", OMNIQ_PATH_MAX - 1);
    return OMNIQ_EHANDLER;
  }
  memcpy(given, func, plen);
  given[plen] = '\0';
  int rc = allowed_library(a, given, path, err, errlen);
  if (rc != OMNIQ_OK) return rc;

  pthread_mutex_lock(&cache_lock);
  void *h = open_locked(path, err, errlen);
  void *sym = NULL;
  if (h != NULL) {
    dlerror(); /* clear, so a NULL symbol is told from an error */
    sym = dlsym(h, colon + 1);
    if (sym == NULL) {
      const char *why = dlerror();
      snprintf(err, errlen, "handler library '%s' has no symbol '%s': %s", path, colon + 1,
               why != NULL ? why : "symbol is NULL");
    }
  }
  pthread_mutex_unlock(&cache_lock);
  if (sym == NULL) return OMNIQ_EHANDLER;
  /* ISO C has no object-to-function pointer cast; POSIX guarantees the
   * representation, so copy the bytes. */
  memcpy(fn, &sym, sizeof *fn);
  return OMNIQ_OK;
}

void omniq__handlers_fork_lock(void) { pthread_mutex_lock(&cache_lock); }
void omniq__handlers_fork_unlock(void) { pthread_mutex_unlock(&cache_lock); }

/* ---- resolution ----------------------------------------------------------- */

int omniq__handlers_resolve(omniq_t *oq, const char *func, const char *handler_path,
                            omniq_handler_fn *fn, void **userdata, char *err, size_t errlen) {
  const allow_t allow = {{oq->settings.handler_path, handler_path}};
  *fn = NULL;
  *userdata = NULL;
  if (func == NULL || *func == '\0') {
    snprintf(err, errlen, "task has no func");
    return OMNIQ_EHANDLER;
  }
  if (registered(oq, func, fn, userdata)) return OMNIQ_OK;
  /* A library func never reaches the fallback: whether it may be loaded is
   * decided here alone. */
  if (strchr(func, ':') != NULL) return resolve_symbol(&allow, func, fn, err, errlen);
  if (fallback(oq, fn, userdata)) return OMNIQ_OK;
  snprintf(err, errlen, "no handler registered for '%s'", func);
  return OMNIQ_EHANDLER;
}
