/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: the connection pool, statement execution, errors.
 *
 * Pool. Connections are made on demand, up to OMNIQ__PG_POOL_MAX, and kept
 * idle between operations; each borrowed connection serves one thread at a
 * time (libpq connections are not thread-safe). `lock` guards the idle
 * list and the counters, never a network call: connecting and running
 * statements happen with it released.
 *
 * Failures. A statement whose connection broke marks the connection dead;
 * giving it back closes it and bumps the pool's generation, so idle
 * connections made before are dropped too instead of each failing once
 * (after a server restart they are all dead). New connections are then
 * attempted at most once per backoff step (OMNIQ__PG_BACKOFF_MIN_MS
 * doubling to _MAX_MS); between steps operations fail at once with the last
 * failure's text, and the callers above decide how to wait (the pool's
 * leader polls, the worker keeps reporting an outcome until its lease ends).
 *
 * Repeating a statement. Whether a statement whose connection died had
 * committed is knowable in two cases: the server answered it with a
 * shutdown error (SQLSTATE 57P01-57P03: the transaction was rolled back or
 * never began), or nothing could be sent. Those are run again once on a
 * fresh connection, whatever they are. Otherwise only IDEMPOTENT statements
 * are; for the others the error says the outcome is unknown.
 *
 * Timeouts. The defaults put in front of the user's conninfo (which
 * overrides them) bound how long a dead network can hold a call:
 * connect_timeout, TCP keepalives and tcp_user_timeout on the client, and
 * the same keepalives plus idle_in_transaction_session_timeout on the
 * server side, so a host that vanished mid-transaction does not keep its
 * row locks for the kernel's two hours.
 */
#include "storage/postgres/conn.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "omniq.h"

/* Client-side defaults; any of them can be overridden in the conninfo. */
static const char *const default_keys[] = {
    "connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
    "keepalives_count", "tcp_user_timeout", "application_name", NULL};
static const char *const default_values[] = {"10", "1", "5", "2", "3", "10000", "omniq", NULL};

/* Server-side session settings, sent once per connection. */
static const char session_sql[] =
    "SET client_min_messages = warning; SET idle_in_transaction_session_timeout = 60000;"
    "SET tcp_keepalives_idle = 5; SET tcp_keepalives_interval = 2;"
    "SET tcp_keepalives_count = 3; SET tcp_user_timeout = 10000";

/* Copies libpq's message without its trailing newline. */
static void copy_msg(char *dst, size_t n, const char *msg) {
  snprintf(dst, n, "%s", msg != NULL && msg[0] ? msg : "no message");
  size_t len = strlen(dst);
  while (len > 0 && (dst[len - 1] == '\n' || dst[len - 1] == ' ')) dst[--len] = '\0';
}

int omniq__pg_conninfo_check(const char *conninfo, char *err, size_t errlen) {
  char *why = NULL;
  PQconninfoOption *opts = PQconninfoParse(conninfo != NULL ? conninfo : "", &why);
  if (opts == NULL) {
    char msg[256];
    copy_msg(msg, sizeof msg, why != NULL ? why : "out of memory");
    snprintf(err, errlen, "OMNIQ_DB_URL is not a PostgreSQL connection string: %s", msg);
    PQfreemem(why);
    return OMNIQ_ECONFIG;
  }
  PQconninfoFree(opts);
  return OMNIQ_OK;
}

static void ignore_notice(void *arg, const char *message) { (void)arg, (void)message; }

int omniq__pg_connect(const char *conninfo, PGconn **out, char *err, size_t errlen) {
  const char *keys[16], *values[16];
  size_t n = 0;
  char msg[256];
  for (; default_keys[n] != NULL; n++) {
    keys[n] = default_keys[n];
    values[n] = default_values[n];
  }
  /* Keywords are applied in order and the conninfo is expanded where its
   * dbname entry stands, so everything it says overrides the defaults. */
  keys[n] = "dbname";
  values[n++] = conninfo;
  keys[n] = values[n] = NULL;

  *out = NULL;
  PGconn *pg = PQconnectdbParams(keys, values, 1);
  if (pg == NULL) {
    snprintf(err, errlen, "postgres: connect: out of memory");
    return OMNIQ_ENOMEM;
  }
  if (PQstatus(pg) != CONNECTION_OK) {
    copy_msg(msg, sizeof msg, PQerrorMessage(pg));
    snprintf(err, errlen, "postgres: connect: %s", msg);
    PQfinish(pg);
    return OMNIQ_ESTORAGE;
  }
  /* libpq prints notices to stderr by default; the library never prints. */
  PQsetNoticeProcessor(pg, ignore_notice, NULL);
  int rc = omniq__pg_command(pg, session_sql, "session settings", err, errlen);
  if (rc != OMNIQ_OK) {
    PQfinish(pg);
    return rc;
  }
  *out = pg;
  return OMNIQ_OK;
}

/* ---- pool ------------------------------------------------------------------- */

int omniq__pg_pool_init(omniq__pg_pool_t *pool, const char *conninfo,
                        const omniq__pg_stmt_t *stmts, size_t nstmts) {
  memset(pool, 0, sizeof *pool);
  if (nstmts > OMNIQ__PG_MAX_STMTS) return OMNIQ_EINVAL;
  pool->conninfo = omniq__strdup(conninfo != NULL ? conninfo : "");
  if (pool->conninfo == NULL) return OMNIQ_ENOMEM;
  if (pthread_mutex_init(&pool->lock, NULL) != 0) goto fail;
  if (pthread_cond_init(&pool->cond, NULL) != 0) {
    pthread_mutex_destroy(&pool->lock);
    goto fail;
  }
  pool->stmts = stmts;
  pool->nstmts = nstmts;
  pool->backoff_ms = OMNIQ__PG_BACKOFF_MIN_MS;
  return OMNIQ_OK;
fail:
  omniq__free(pool->conninfo);
  pool->conninfo = NULL;
  return OMNIQ_ENOMEM;
}

static void conn_close(omniq__pg_conn_t *c) {
  PQfinish(c->pg);
  omniq__free(c);
}

void omniq__pg_pool_free(omniq__pg_pool_t *pool) {
  if (pool->conninfo == NULL) return;
  while (pool->idle != NULL) {
    omniq__pg_conn_t *c = pool->idle;
    pool->idle = c->next;
    conn_close(c);
  }
  pthread_cond_destroy(&pool->cond);
  pthread_mutex_destroy(&pool->lock);
  omniq__free(pool->conninfo);
  pool->conninfo = NULL;
}

/* Makes a connection for a slot the caller reserved (pool->open counts
 * it). Called without the lock. */
static int conn_open(omniq__pg_pool_t *pool, uint64_t gen, omniq__pg_conn_t **out, char *err,
                     size_t errlen) {
  PGconn *pg = NULL;
  int rc = omniq__pg_connect(pool->conninfo, &pg, err, errlen);
  omniq__pg_conn_t *c = NULL;
  if (rc == OMNIQ_OK && (c = omniq__calloc(1, sizeof *c)) == NULL) {
    PQfinish(pg);
    snprintf(err, errlen, "postgres: out of memory");
    rc = OMNIQ_ENOMEM;
  }
  pthread_mutex_lock(&pool->lock);
  if (rc != OMNIQ_OK) {
    pool->open--;
    pool->retry_at_ms = omniq__mono_ms() + pool->backoff_ms;
    pool->backoff_ms *= 2;
    if (pool->backoff_ms > OMNIQ__PG_BACKOFF_MAX_MS) pool->backoff_ms = OMNIQ__PG_BACKOFF_MAX_MS;
    snprintf(pool->down_msg, sizeof pool->down_msg, "%s", err);
    pthread_cond_broadcast(&pool->cond); /* a waiter may take the freed slot */
  } else {
    pool->backoff_ms = OMNIQ__PG_BACKOFF_MIN_MS;
    pool->retry_at_ms = 0;
    c->pg = pg;
    c->gen = gen;
  }
  pthread_mutex_unlock(&pool->lock);
  *out = c;
  return rc;
}

int omniq__pg_acquire(omniq__pg_pool_t *pool, omniq__pg_conn_t **out, char *err, size_t errlen) {
  omniq__pg_conn_t *stale = NULL;
  int rc = OMNIQ_OK, make = 0;
  uint64_t gen = 0;
  *out = NULL;
  pthread_mutex_lock(&pool->lock);
  for (;;) {
    /* Idle connections older than the last failure are dead: set aside. */
    while (pool->idle != NULL && pool->idle->gen < pool->gen) {
      omniq__pg_conn_t *c = pool->idle;
      pool->idle = c->next;
      c->next = stale;
      stale = c;
      pool->open--;
    }
    if (pool->idle != NULL) {
      *out = pool->idle;
      pool->idle = (*out)->next;
      (*out)->next = NULL;
      break;
    }
    if (pool->open < OMNIQ__PG_POOL_MAX) {
      int64_t wait = pool->retry_at_ms - omniq__mono_ms();
      if (wait > 0) {
        snprintf(err, errlen, "postgres unreachable, next attempt in %lld ms; last error: %s",
                 (long long)wait, pool->down_msg);
        rc = OMNIQ_ESTORAGE;
      } else {
        pool->open++; /* the slot is ours while we connect */
        gen = pool->gen;
        make = 1;
      }
      break;
    }
    pthread_cond_wait(&pool->cond, &pool->lock);
  }
  pthread_mutex_unlock(&pool->lock);
  while (stale != NULL) {
    omniq__pg_conn_t *c = stale;
    stale = c->next;
    conn_close(c);
  }
  return make ? conn_open(pool, gen, out, err, errlen) : rc;
}

void omniq__pg_release(omniq__pg_pool_t *pool, omniq__pg_conn_t *c) {
  if (c == NULL) return;
  /* A connection left inside a transaction (a caller's error path) is not
   * reused: closing it is the rollback. */
  int dead = PQstatus(c->pg) != CONNECTION_OK || PQtransactionStatus(c->pg) != PQTRANS_IDLE;
  pthread_mutex_lock(&pool->lock);
  if (dead) {
    pool->open--;
    if (c->gen == pool->gen) pool->gen++;
  } else {
    c->next = pool->idle;
    pool->idle = c;
  }
  pthread_cond_signal(&pool->cond);
  pthread_mutex_unlock(&pool->lock);
  if (dead) conn_close(c);
}

void omniq__pg_pool_invalidate(omniq__pg_pool_t *pool) {
  pthread_mutex_lock(&pool->lock);
  pool->gen++;
  pthread_mutex_unlock(&pool->lock);
}

/* ---- parameters --------------------------------------------------------------- */

void omniq__pg_params_init(omniq__pg_params_t *p) {
  p->n = 0;
  p->values = p->values_;
  p->lengths = p->lengths_;
  p->formats = p->formats_;
}

static void param_add(omniq__pg_params_t *p, const char *v, int len, int format) {
  int i = p->n++;
  p->values_[i] = v;
  p->lengths_[i] = len;
  p->formats_[i] = format;
}

void omniq__pg_param_i64(omniq__pg_params_t *p, int64_t v) {
  snprintf(p->num[p->n], sizeof p->num[p->n], "%lld", (long long)v);
  param_add(p, p->num[p->n], 0, 0);
}

void omniq__pg_param_text(omniq__pg_params_t *p, const char *s) { param_add(p, s, 0, 0); }

void omniq__pg_param_bytes(omniq__pg_params_t *p, const char *s, size_t n) {
  param_add(p, s, (int)n, 1);
}

/* ---- errors ----------------------------------------------------------------- */

int omniq__pg_code(const PGresult *res, const PGconn *pg) {
  const char *st = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  (void)pg; /* a dead connection has no SQLSTATE: a storage error */
  if (st == NULL) return OMNIQ_ESTORAGE;
  if (strcmp(st, "23505") == 0 || strncmp(st, "22P02", 5) == 0 || strcmp(st, "22003") == 0)
    return OMNIQ_EINVAL;
  if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0 || strcmp(st, "55P03") == 0 ||
      strcmp(st, "53300") == 0)
    return OMNIQ_EBUSY;
  if (strcmp(st, "53100") == 0) return OMNIQ_ENOSPC;
  if (strcmp(st, "53200") == 0) return OMNIQ_ENOMEM;
  if (strcmp(st, "22021") == 0 || strcmp(st, "22P05") == 0) return OMNIQ_ESERIALIZE;
  /* A missing or duplicate table or column: the schema is not OmniQ's. */
  if (strcmp(st, "42P01") == 0 || strcmp(st, "3F000") == 0 || strcmp(st, "42703") == 0 ||
      strcmp(st, "42P07") == 0)
    return OMNIQ_ECORRUPT;
  return OMNIQ_ESTORAGE;
}

/* 1 if the server reported that it ended the session before committing
 * anything of the statement (shutdown, crash, not accepting connections). */
static int refused_by_shutdown(const PGresult *res) {
  const char *st = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
  return st != NULL && strncmp(st, "57P0", 4) == 0;
}

static int fail_result(const PGresult *res, const PGconn *pg, const char *what, char *err,
                       size_t errlen) {
  char msg[300];
  const char *primary = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
  copy_msg(msg, sizeof msg, primary != NULL ? primary : PQerrorMessage(pg));
  snprintf(err, errlen, "postgres: %s: %s", what, msg);
  return omniq__pg_code(res, pg);
}

int omniq__pg_command(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen) {
  PGresult *r = PQexec(pg, sql);
  ExecStatusType st = PQresultStatus(r);
  int rc = OMNIQ_OK;
  if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) rc = fail_result(r, pg, what, err, errlen);
  PQclear(r);
  return rc;
}

/* ---- running statements --------------------------------------------------- */

static int ensure_prepared(omniq__pg_pool_t *pool, omniq__pg_conn_t *c, int stmt, char *err,
                           size_t errlen) {
  if (c->prepared & (1u << stmt)) return OMNIQ_OK;
  PGresult *r = PQprepare(c->pg, pool->stmts[stmt].name, pool->stmts[stmt].sql, 0, NULL);
  int rc = OMNIQ_OK;
  if (PQresultStatus(r) != PGRES_COMMAND_OK)
    rc = fail_result(r, c->pg, pool->stmts[stmt].name, err, errlen);
  else
    c->prepared |= 1u << stmt;
  PQclear(r);
  return rc;
}

/* The last result of a statement sent with send_one (like PQexec). */
static PGresult *collect(PGconn *pg) {
  PGresult *last = NULL, *x;
  while ((x = PQgetResult(pg)) != NULL) {
    PQclear(last);
    last = x;
  }
  return last;
}

/* Collects the results of a pipeline of n statements and a sync, then
 * (nsyncs 2) a notification and its sync: the statements' go to res[],
 * the notification's are dropped. 0 once the sync came
 * back, -1 if the connection broke first. res[i] may be NULL or an error. */
static int batch_collect(PGconn *pg, PGresult **res, size_t n, int nsyncs) {
  size_t got = 0;
  int syncs = 0, nulls = 0;
  while (syncs < nsyncs && nulls < 2) {
    PGresult *x = PQgetResult(pg);
    if (x == NULL) {
      if (PQstatus(pg) != CONNECTION_OK) break;
      nulls++;
      continue;
    }
    nulls = 0;
    if (PQresultStatus(x) == PGRES_PIPELINE_SYNC) {
      syncs++;
      PQclear(x);
    } else if (syncs == 0 && got < n) {
      res[got++] = x;
    } else {
      PQclear(x);
    }
  }
  return syncs >= 1 ? 0 : -1;
}

/* The result of one statement sent with a notification (run_with_notify);
 * NULL if the connection broke before it arrived. */
static PGresult *pipeline_collect(PGconn *pg) {
  PGresult *first = NULL;
  batch_collect(pg, &first, 1, 2);
  return first;
}

/* Sends one statement: prepared `name`, or `sql` with its parameters. */
static int send_one(PGconn *pg, const char *name, const char *sql, const omniq__pg_params_t *p) {
  int n = p != NULL ? p->n : 0;
  const char *const *values = p != NULL ? p->values : NULL;
  const int *lengths = p != NULL ? p->lengths : NULL, *formats = p != NULL ? p->formats : NULL;
  if (sql != NULL) return PQsendQueryParams(pg, sql, n, NULL, values, lengths, formats, 1);
  return PQsendQueryPrepared(pg, name, n, values, lengths, formats, 1);
}

static PGresult *run_with_notify(PGconn *pg, const char *name, const char *sql,
                                 const omniq__pg_params_t *p, const char *const *notify,
                                 int *sent) {
  int nch = notify[1] != NULL ? 2 : 1;
  if (!PQenterPipelineMode(pg)) return NULL;
  if (!send_one(pg, name, sql, p) || !PQpipelineSync(pg) ||
      !PQsendQueryParams(pg,
                         nch == 2 ? "SELECT pg_notify($1, ''), pg_notify($2, '')"
                                  : "SELECT pg_notify($1, '')",
                         nch, NULL, notify, NULL, NULL, 0) ||
      !PQpipelineSync(pg)) {
    PQexitPipelineMode(pg);
    return NULL; /* not (fully) sent: the server runs no half message */
  }
  *sent = 1;
  PGresult *r = pipeline_collect(pg);
  PQexitPipelineMode(pg);
  return r;
}

/* Runs stmt on c. *unknown is set when the connection died with the
 * statement in flight and it may have committed. */
static int run_on(omniq__pg_pool_t *pool, omniq__pg_conn_t *c, int stmt, const char *sql,
                  const omniq__pg_params_t *p, const char *const *notify, const char *what,
                  PGresult **res, int *unknown, char *err, size_t errlen) {
  PGresult *r;
  int sent = 0, rc;
  const char *name = sql != NULL ? NULL : pool->stmts[stmt].name;
  *res = NULL;
  *unknown = 0;
  if (sql == NULL && (rc = ensure_prepared(pool, c, stmt, err, errlen)) != OMNIQ_OK) return rc;
  if (notify != NULL && notify[0] != NULL) {
    r = run_with_notify(c->pg, name, sql, p, notify, &sent);
  } else if (send_one(c->pg, name, sql, p)) {
    sent = 1;
    r = collect(c->pg);
  } else {
    r = NULL;
  }
  ExecStatusType st = PQresultStatus(r);
  if (r != NULL && (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)) {
    *res = r;
    return OMNIQ_OK;
  }
  rc = fail_result(r, c->pg, what, err, errlen);
  *unknown = sent && PQstatus(c->pg) != CONNECTION_OK && !refused_by_shutdown(r);
  PQclear(r);
  return rc;
}

int omniq__pg_exec_on(omniq__pg_pool_t *pool, omniq__pg_conn_t *c, int stmt,
                      const omniq__pg_params_t *p, const char *what, PGresult **res, char *err,
                      size_t errlen) {
  int unknown;
  return run_on(pool, c, stmt, NULL, p, NULL, what, res, &unknown, err, errlen);
}

int omniq__pg_exec_sql_on(omniq__pg_pool_t *pool, omniq__pg_conn_t *c, const char *sql,
                          const omniq__pg_params_t *p, const char *what, PGresult **res,
                          char *err, size_t errlen) {
  int unknown;
  return run_on(pool, c, -1, sql, p, NULL, what, res, &unknown, err, errlen);
}

/* omniq__pg_exec and omniq__pg_exec_sql: stmt, or sql when it is set. */
static int exec_any(omniq__pg_pool_t *pool, int stmt, const char *sql,
                    const omniq__pg_params_t *p, int retry, const char *const *notify,
                    const char *what, PGresult **res, char *err, size_t errlen) {
  *res = NULL;
  for (int attempt = 0;; attempt++) {
    omniq__pg_conn_t *c;
    int unknown, rc = omniq__pg_acquire(pool, &c, err, errlen);
    if (rc != OMNIQ_OK) return rc;
    rc = run_on(pool, c, stmt, sql, p, notify, what, res, &unknown, err, errlen);
    int dead = PQstatus(c->pg) != CONNECTION_OK;
    omniq__pg_release(pool, c);
    if (rc == OMNIQ_OK || !dead || attempt > 0) return rc;
    if (unknown && retry != OMNIQ__PG_IDEMPOTENT) {
      size_t len = strlen(err);
      snprintf(err + len, errlen - len,
               " (connection lost with the statement in flight: it may or may not have "
               "taken effect)");
      return rc;
    }
  }
}

int omniq__pg_exec(omniq__pg_pool_t *pool, int stmt, const omniq__pg_params_t *p, int retry,
                   const char *const *notify, const char *what, PGresult **res, char *err,
                   size_t errlen) {
  return exec_any(pool, stmt, NULL, p, retry, notify, what, res, err, errlen);
}

int omniq__pg_exec_sql(omniq__pg_pool_t *pool, const char *sql, const omniq__pg_params_t *p,
                       const char *const *notify, const char *what, PGresult **res, char *err,
                       size_t errlen) {
  return exec_any(pool, -1, sql, p, OMNIQ__PG_ONCE, notify, what, res, err, errlen);
}

/* ---- a batch in one transaction --------------------------------------------- */

int omniq__pg_exec_batch(omniq__pg_pool_t *pool, const int *stmts,
                         const omniq__pg_params_t *const *ps, size_t n,
                         const char *const *notify, const char *what, PGresult **res,
                         int *unknown, char *err, size_t errlen) {
  omniq__pg_conn_t *c;
  int rc = OMNIQ_OK, sent = 0, nsyncs = notify != NULL && notify[0] != NULL ? 2 : 1;
  *unknown = 0;
  for (size_t i = 0; i < n; i++) res[i] = NULL;
  if ((rc = omniq__pg_acquire(pool, &c, err, errlen)) != OMNIQ_OK) return rc;
  for (size_t i = 0; rc == OMNIQ_OK && i < n; i++)
    rc = ensure_prepared(pool, c, stmts[i], err, errlen);
  if (rc != OMNIQ_OK) {
    omniq__pg_release(pool, c);
    return rc;
  }
  /* Statements up to a sync are one implicit transaction: it commits at
   * the sync, or, after any error, none of it does. */
  int ok = PQenterPipelineMode(c->pg);
  for (size_t i = 0; ok && i < n; i++)
    ok = send_one(c->pg, pool->stmts[stmts[i]].name, NULL, ps[i]);
  ok = ok && PQpipelineSync(c->pg);
  if (ok && nsyncs == 2)
    ok = PQsendQueryParams(c->pg,
                           notify[1] != NULL ? "SELECT pg_notify($1, ''), pg_notify($2, '')"
                                             : "SELECT pg_notify($1, '')",
                           notify[1] != NULL ? 2 : 1, NULL, notify, NULL, NULL, 0) &&
         PQpipelineSync(c->pg);
  if (ok) {
    sent = 1;
    ok = batch_collect(c->pg, res, n, nsyncs) == 0;
  }
  PQexitPipelineMode(c->pg);
  rc = OMNIQ_OK;
  int refused = 0;
  for (size_t i = 0; i < n && rc == OMNIQ_OK; i++) {
    ExecStatusType st = PQresultStatus(res[i]);
    if (res[i] == NULL || (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK)) {
      rc = fail_result(res[i], c->pg, what, err, errlen);
      refused = refused_by_shutdown(res[i]);
    }
  }
  if (rc == OMNIQ_OK && !ok) rc = fail_result(NULL, c->pg, what, err, errlen);
  if (rc != OMNIQ_OK) {
    /* An error result rolled the batch back (a shutdown's too); a
     * connection that died otherwise with the batch sent leaves its
     * commit unknown. */
    *unknown = sent && PQstatus(c->pg) != CONNECTION_OK && !refused;
    for (size_t i = 0; i < n; i++) {
      PQclear(res[i]);
      res[i] = NULL;
    }
  }
  omniq__pg_release(pool, c);
  return rc;
}

/* ---- reading binary columns ------------------------------------------------ */

int64_t omniq__pg_i64(const PGresult *r, int row, int col) {
  const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
  uint64_t x = 0;
  int len = PQgetlength(r, row, col);
  if (PQgetisnull(r, row, col)) return 0;
  for (int i = 0; i < len && i < 8; i++) x = x << 8 | v[i];
  /* Sign-extend int2 and int4. */
  if (len == 2) return (int16_t)x;
  if (len == 4) return (int32_t)x;
  return (int64_t)x;
}

int omniq__pg_str(const PGresult *r, int row, int col, char **out) {
  *out = NULL;
  if (PQgetisnull(r, row, col)) return OMNIQ_OK;
  int len = PQgetlength(r, row, col);
  char *s = omniq__malloc((size_t)len + 1);
  if (s == NULL) return OMNIQ_ENOMEM;
  memcpy(s, PQgetvalue(r, row, col), (size_t)len);
  s[len] = '\0';
  *out = s;
  return OMNIQ_OK;
}

void omniq__pg_uuid(const PGresult *r, int row, int col, char out[37]) {
  static const char hex[] = "0123456789abcdef";
  const unsigned char *v = (const unsigned char *)PQgetvalue(r, row, col);
  size_t o = 0;
  out[0] = '\0';
  if (PQgetlength(r, row, col) != 16) return;
  for (int i = 0; i < 16; i++) {
    if (i == 4 || i == 6 || i == 8 || i == 10) out[o++] = '-';
    out[o++] = hex[v[i] >> 4];
    out[o++] = hex[v[i] & 15];
  }
  out[o] = '\0';
}
