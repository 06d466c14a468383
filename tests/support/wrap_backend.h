/* SPDX-License-Identifier: MIT */
/* A wrapping backend: a built-in backend's storage table, registered under
 * a name of its own, whose claiming, reporting and lease calls go through
 * the test's hooks on their way to the real one. The worker tests use it
 * to see what a pool asks of the store (how many tasks a claim wants,
 * whether a report carries a claim) and to make the store fail, hang or
 * answer late on demand.
 *
 *   th_wrap_set_hooks   the hooks every wrapped table calls (one set per
 *                       test program; NULL members forward unchanged)
 *   th_wrap_register    registers a wrapped table, optionally without
 *                       finish_many or release (a store that cannot batch
 *                       reports or take a claim back)
 *
 * The hooks run in whatever thread made the call (a runner, the keeper);
 * they may block, as a call to a server behind a dead link does. */
#ifndef OMNIQ_TEST_WRAP_BACKEND_H
#define OMNIQ_TEST_WRAP_BACKEND_H

#include <stddef.h>

#include "omniq/storage.h"

/* The wrapped calls. */
typedef enum {
  TH_WRAP_CLAIM,        /* claim */
  TH_WRAP_FINISH,       /* finish */
  TH_WRAP_FINISH_CLAIM, /* finish_claim: a report with a claim riding on it */
  TH_WRAP_FINISH_MANY,  /* finish_many: a batch of reports, maybe with a claim */
  TH_WRAP_EXTEND,       /* extend_lease */
  TH_WRAP_RELEASE,      /* release */
} th_wrap_op_t;

typedef struct th_wrap_hooks {
  /* Before the call; req is its claim (NULL for none: extend, release, a
   * report without one). Returns OMNIQ_OK to forward the call, or a code
   * the call then returns at once (err filled by the hook; nothing
   * claimed). */
  int (*before)(th_wrap_op_t op, const omniq_claim_req_t *req, char *err, size_t errlen);
  /* After a forwarded claiming call (claim, finish_claim, finish_many):
   * its code and the tasks it took. */
  void (*after)(th_wrap_op_t op, int rc, omniq_task_t *const *tasks, size_t n);
} th_wrap_hooks_t;

/* Which optional calls a wrapped table leaves out (th_wrap_register). */
enum { TH_WRAP_NO_FINISH_MANY = 1, TH_WRAP_NO_RELEASE = 2 };

/* Sets the hooks (copied) of every wrapped table. */
void th_wrap_set_hooks(const th_wrap_hooks_t *hooks);

/* Registers name: the table of the built-in backend inner ("sqlite"),
 * wrapped, less the calls `without` names (TH_WRAP_NO_* bits). Returns
 * omniq_storage_register's code; at most 4 tables per program. */
int th_wrap_register(const char *name, const char *inner, unsigned without);

#endif
