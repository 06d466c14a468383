/* SPDX-License-Identifier: MIT */
/* The wrapping backend (wrap_backend.h). Each wrapped call asks the hook
 * before it, forwards to the inner table, and shows the hook what a
 * claiming call took. The wrappers cannot tell which table called them
 * (they get the backend's own pointer), so every table of a program wraps
 * the same inner backend; the registry keeps a pointer to each table, so
 * the tables live here for the whole program. */
#include "support/wrap_backend.h"

#include <stdio.h>

#define MAX_TABLES 4

static omniq_storage_ops_t tables[MAX_TABLES];
static char names[MAX_TABLES][OMNIQ_NAME_MAX];
static size_t ntables;
static th_wrap_hooks_t hooks;
static const omniq_storage_ops_t *inner; /* every table of a program wraps one backend */

void th_wrap_set_hooks(const th_wrap_hooks_t *h) { hooks = *h; }

static int before(th_wrap_op_t op, const omniq_claim_req_t *req, char *err, size_t errlen) {
  return hooks.before != NULL ? hooks.before(op, req, err, errlen) : OMNIQ_OK;
}

static void after(th_wrap_op_t op, int rc, omniq_task_t *const *tasks, size_t n) {
  if (hooks.after != NULL) hooks.after(op, rc, tasks, n);
}

static int wrap_claim(void *b, const omniq_claim_req_t *req, omniq_task_t ***out, size_t *n,
                      char *err, size_t errlen) {
  *out = NULL;
  *n = 0;
  int rc = before(TH_WRAP_CLAIM, req, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = inner->claim(b, req, out, n, err, errlen);
  after(TH_WRAP_CLAIM, rc, *out, *n);
  return rc;
}

static int wrap_finish(void *b, const omniq_decision_t *d, char *err, size_t errlen) {
  int rc = before(TH_WRAP_FINISH, NULL, err, errlen);
  return rc != OMNIQ_OK ? rc : inner->finish(b, d, err, errlen);
}

static int wrap_finish_claim(void *b, const omniq_decision_t *d, const omniq_claim_req_t *req,
                             omniq_task_t ***out, size_t *n, int *claimed, char *err,
                             size_t errlen) {
  *out = NULL;
  *n = 0;
  *claimed = 0;
  int rc = before(TH_WRAP_FINISH_CLAIM, req, err, errlen);
  if (rc != OMNIQ_OK) return rc;
  rc = inner->finish_claim(b, d, req, out, n, claimed, err, errlen);
  after(TH_WRAP_FINISH_CLAIM, rc, *out, *n);
  return rc;
}

static int wrap_finish_many(void *b, const omniq_decision_t *ds, size_t n, int *rcs,
                            const omniq_claim_req_t *req, omniq_task_t ***out, size_t *nout,
                            int *claimed, char *err, size_t errlen) {
  *out = NULL;
  *nout = 0;
  *claimed = 0;
  int rc = before(TH_WRAP_FINISH_MANY, req, err, errlen);
  if (rc != OMNIQ_OK) {
    for (size_t i = 0; i < n; i++) rcs[i] = rc;
    return rc;
  }
  rc = inner->finish_many(b, ds, n, rcs, req, out, nout, claimed, err, errlen);
  after(TH_WRAP_FINISH_MANY, rc, *out, *nout);
  return rc;
}

static int wrap_extend(void *b, const char *id, int64_t token, int64_t until, char *err,
                       size_t errlen) {
  int rc = before(TH_WRAP_EXTEND, NULL, err, errlen);
  return rc != OMNIQ_OK ? rc : inner->extend_lease(b, id, token, until, err, errlen);
}

static int wrap_release(void *b, const char *id, int64_t token, char *err, size_t errlen) {
  int rc = before(TH_WRAP_RELEASE, NULL, err, errlen);
  return rc != OMNIQ_OK ? rc : inner->release(b, id, token, err, errlen);
}

int th_wrap_register(const char *name, const char *inner_name, unsigned without) {
  const omniq_storage_ops_t *in = omniq_storage_find(inner_name);
  if (in == NULL || ntables == MAX_TABLES || (inner != NULL && inner != in)) return OMNIQ_EINVAL;
  inner = in;
  omniq_storage_ops_t *t = &tables[ntables];
  *t = *in;
  snprintf(names[ntables], sizeof names[ntables], "%s", name);
  t->name = names[ntables++];
  t->claim = wrap_claim;
  t->finish = wrap_finish;
  if (in->finish_claim != NULL) t->finish_claim = wrap_finish_claim;
  if (in->finish_many != NULL) t->finish_many = wrap_finish_many;
  if (in->release != NULL) t->release = wrap_release;
  t->extend_lease = wrap_extend;
  if (without & TH_WRAP_NO_FINISH_MANY) t->finish_many = NULL;
  if (without & TH_WRAP_NO_RELEASE) t->release = NULL;
  return omniq_storage_register(t);
}
