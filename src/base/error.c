/* SPDX-License-Identifier: MIT */
/* Status codes and the per-thread, per-handle last-error messages.
 *
 * Each thread keeps a few slots keyed by handle id (not pointer, so a freed
 * and reused address never shows a stale message). Slot 0 is for calls
 * without a handle. A thread that uses more handles than slots loses the
 * oldest message, never memory: there is nothing to free at thread exit. */
#include "base/error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "omniq.h"

#define SLOTS 8

typedef struct {
  uint64_t handle_id;
  int used;
  char msg[OMNIQ__ERRMSG_MAX];
} errslot_t;

static _Thread_local errslot_t slots[SLOTS];
static _Thread_local unsigned next_victim;
static _Atomic uint64_t last_handle_id;

uint64_t omniq__handle_id_next(void) { return atomic_fetch_add(&last_handle_id, 1) + 1; }

static errslot_t *slot_for(uint64_t handle_id, int create) {
  for (int i = 0; i < SLOTS; i++)
    if (slots[i].used && slots[i].handle_id == handle_id) return &slots[i];
  if (!create) return NULL;
  for (int i = 0; i < SLOTS; i++)
    if (!slots[i].used) return &slots[i];
  return &slots[next_victim++ % SLOTS];
}

int omniq__err(uint64_t handle_id, int rc, const char *fmt, ...) {
  errslot_t *s = slot_for(handle_id, 1);
  va_list ap;
  s->handle_id = handle_id;
  s->used = 1;
  va_start(ap, fmt);
  vsnprintf(s->msg, sizeof s->msg, fmt, ap);
  va_end(ap);
  return rc;
}

void omniq__err_clear(uint64_t handle_id) {
  errslot_t *s = slot_for(handle_id, 0);
  if (s != NULL) s->msg[0] = '\0';
}

const char *omniq__errmsg(uint64_t handle_id) {
  errslot_t *s = slot_for(handle_id, 0);
  return s != NULL ? s->msg : "";
}

int omniq__errno_code(int err) {
  switch (err) {
  case 0: return OMNIQ_OK;
  case ENOMEM: return OMNIQ_ENOMEM;
  case ENOENT: return OMNIQ_ENOTFOUND;
  case ENOSPC:
  case EDQUOT:
  case EFBIG: /* past RLIMIT_FSIZE or the file system's largest file: no room all the same */
    return OMNIQ_ENOSPC;
  case EINVAL: return OMNIQ_EINVAL;
  case EBUSY:
  case EAGAIN: return OMNIQ_EBUSY;
  case ETIMEDOUT: return OMNIQ_ETIMEDOUT;
  default: return OMNIQ_EIO;
  }
}

const char *omniq_strerror(int rc) {
  switch (rc) {
#define OMNIQ__ERR_TEXT(name, value, text) \
  case OMNIQ_##name: return text;
    OMNIQ_ERRNO_MAP(OMNIQ__ERR_TEXT)
#undef OMNIQ__ERR_TEXT
  default: return "unknown error";
  }
}

const char *omniq_err_name(int rc) {
  switch (rc) {
#define OMNIQ__ERR_NAME(name, value, text) \
  case OMNIQ_##name: return "OMNIQ_" #name;
    OMNIQ_ERRNO_MAP(OMNIQ__ERR_NAME)
#undef OMNIQ__ERR_NAME
  default: return "OMNIQ_UNKNOWN";
  }
}
