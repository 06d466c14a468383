/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: a page of a listing (storage ABI 3).
 *
 * A page is ordered by id (uuid order is the ids' text order) and starts
 * after the cursor's id. The statement has one arm per status of the set;
 * each arm names its status literally, so the partial indexes of its phase
 * apply (schema.c, version 3), and walks one whose leading columns its
 * equalities fix and whose next column is id: for PENDING
 * tasks_pending_queue_id, _func_id or _id, for a terminal status
 * tasks_done_queue_id, _func_id or _id (queue if named, else func if
 * named), from the cursor, stopping after `limit` matching rows. RUNNING
 * tasks (at most the workers' slots) are read from tasks_running in id
 * order, filters applied to each. The arms' rows (at most statuses x limit) are
 * merged by id and cut to the page, in the same statement, so one snapshot
 * sees each task once, in one status. A page costs O(statuses x (log n +
 * rows walked)); rows walked exceed the page only when a filter the index
 * does not hold (a time range) skips rows.
 *
 * The text depends on which filters are set, so it is planned per page
 * with the actual values (no generic plan to drift to a scan). */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/records.h"
#include "storage/postgres/postgres.h"

/* The filters' SQL, whose parameters are numbered in the order they are
 * added to p. */
typedef struct {
  char cond[512];
  size_t len;
  omniq__pg_params_t *p;
} filters_t;

/* Appends "<what> $<the parameter just added>::<type>", or what alone. */
static void add(filters_t *f, const char *what, const char *type) {
  if (type == NULL)
    f->len += (size_t)snprintf(f->cond + f->len, sizeof f->cond - f->len, "%s", what);
  else
    f->len += (size_t)snprintf(f->cond + f->len, sizeof f->cond - f->len, "%s $%d::%s", what,
                               f->p->n, type);
}

static void build_filters(const omniq_list_req_t *req, filters_t *f) {
  omniq__pg_params_t *p = f->p;
  f->len = 0;
  f->cond[0] = '\0';
  omniq__pg_params_init(p);
  omniq__pg_param_i64(p, req->limit > INT64_MAX ? INT64_MAX : (int64_t)req->limit); /* $1 */
  if (req->after_id != NULL) {
    omniq__pg_param_text(p, req->after_id);
    add(f, req->newest_first ? " AND id <" : " AND id >", "uuid");
  }
  if (req->queue != NULL) {
    omniq__pg_param_text(p, req->queue);
    add(f, " AND queue =", "text");
  }
  if (req->func != NULL) {
    omniq__pg_param_text(p, req->func);
    add(f, " AND func =", "text");
  }
  if (req->created_from_ms != 0) {
    omniq__pg_param_i64(p, req->created_from_ms);
    add(f, " AND created_at_ms >=", "int8");
  }
  if (req->created_to_ms != 0) {
    omniq__pg_param_i64(p, req->created_to_ms);
    add(f, " AND created_at_ms <", "int8");
  }
  if (req->finished_from_ms != 0 || req->finished_to_ms != 0)
    add(f, " AND finished_at_ms > 0", NULL);
  if (req->finished_from_ms != 0) {
    omniq__pg_param_i64(p, req->finished_from_ms);
    add(f, " AND finished_at_ms >=", "int8");
  }
  if (req->finished_to_ms != 0) {
    omniq__pg_param_i64(p, req->finished_to_ms);
    add(f, " AND finished_at_ms <", "int8");
  }
}

char *omniq__pg_list_sql(const char *schema, const omniq_list_req_t *req,
                         omniq__pg_params_t *p) {
  filters_t f = {.p = p};
  build_filters(req, &f);
  const char *order = req->newest_first ? "id DESC" : "id";
  size_t cap = 256 + OMNIQ_STATUS_COUNT * (sizeof OMNIQ__PG_TASK_COLS + f.len + 128);
  char *tmpl = omniq__malloc(cap), *o = tmpl;
  int arms = 0;
  if (tmpl == NULL) return NULL;
  o += snprintf(o, cap, "SELECT * FROM (");
  for (int st = 0; st < OMNIQ_STATUS_COUNT; st++) {
    if (!(req->statuses & OMNIQ_STATUS_BIT(st))) continue;
    o += snprintf(o, cap - (size_t)(o - tmpl),
                  "%s(SELECT " OMNIQ__PG_TASK_COLS " FROM @S.tasks WHERE status = %d%s"
                  " ORDER BY %s LIMIT $1::int8)",
                  arms++ ? " UNION ALL " : "", st, f.cond, order);
  }
  snprintf(o, cap - (size_t)(o - tmpl), ") page ORDER BY %s LIMIT $1::int8", order);
  char *sql = omniq__pg_sql(tmpl, schema);
  omniq__free(tmpl);
  return sql;
}

int omniq__pg_list(void *backend, const omniq_list_req_t *req, omniq_task_t ***out, size_t *n,
                   char *err, size_t errlen) {
  omniq__pg_t *pg = backend;
  omniq__pg_params_t p;
  PGresult *r;
  *out = NULL;
  *n = 0;
  if (req == NULL || req->limit == 0 ||
      (req->statuses & ((1u << OMNIQ_STATUS_COUNT) - 1)) == 0 ||
      (req->after_id != NULL && !omniq_id_valid(req->after_id)))
    return omniq__pg_errf(OMNIQ_EINVAL, err, errlen, "list: malformed request");
  char *sql = omniq__pg_list_sql(pg->schema, req, &p);
  if (sql == NULL) return omniq__pg_errf(OMNIQ_ENOMEM, err, errlen, "postgres: list: out of memory");
  int rc = omniq__pg_exec_sql(&pg->pool, sql, &p, NULL, "list", &r, err, errlen);
  omniq__free(sql);
  if (rc != OMNIQ_OK) return rc;
  rc = omniq__pg_rows_tasks(r, out, n);
  PQclear(r);
  if (rc != OMNIQ_OK) omniq__pg_errf(rc, err, errlen, "postgres: list: cannot read a row");
  return rc;
}
