/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: connections, statements and errors (conn.c).
 *
 * A backend handle owns one pool of libpq connections. Every operation
 * borrows one connection for its statement and gives it back, so threads
 * sharing a handle (a worker pool's runners, its keeper) run their
 * statements side by side and their commits share the server's WAL flushes;
 * one connection behind a mutex would serialise every commit's fsync.
 */
#ifndef OMNIQ_PG_CONN_H
#define OMNIQ_PG_CONN_H

#include <libpq-fe.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Statements are prepared on a connection the first time it runs them;
 * a pool knows at most this many. */
#define OMNIQ__PG_MAX_STMTS 32

/* Connections a pool opens at most; callers past it wait for a free one.
 * A pool needs one per thread that runs statements at the same time. */
#define OMNIQ__PG_POOL_MAX 32

/* Reconnect backoff after a failed connection attempt: from MIN doubling to
 * MAX, back to MIN after a success. */
#define OMNIQ__PG_BACKOFF_MIN_MS 50
#define OMNIQ__PG_BACKOFF_MAX_MS 2000

/* A statement the pool prepares by name. */
typedef struct omniq__pg_stmt {
  const char *name;
  char *sql; /* owned by whoever built the table */
} omniq__pg_stmt_t;

typedef struct omniq__pg_conn {
  PGconn *pg;
  uint64_t gen;      /* the pool's generation when it was made */
  uint32_t prepared; /* bit i: stmts[i] is prepared on this connection */
  struct omniq__pg_conn *next;
} omniq__pg_conn_t;

/* Guarded by lock: idle, open, gen, retry_at_ms, backoff_ms, down_msg. */
typedef struct omniq__pg_pool {
  char *conninfo;                /* the user's URL or key=value string */
  const omniq__pg_stmt_t *stmts; /* borrowed, nstmts long */
  size_t nstmts;
  pthread_mutex_t lock;
  pthread_cond_t cond; /* a connection came back or a slot freed */
  omniq__pg_conn_t *idle;
  int open;            /* connections made and not yet closed */
  uint64_t gen;        /* bumped when a connection dies: older idle ones are dropped */
  int64_t retry_at_ms; /* monotonic; no connection attempt before it */
  int64_t backoff_ms;
  char down_msg[256];  /* why the last attempt failed */
} omniq__pg_pool_t;

/* Connects with OmniQ's defaults (timeouts, keepalives, application_name)
 * under conninfo, which overrides any of them. On OMNIQ_OK *out is yours
 * (PQfinish). On error *out is NULL and err says why (the server's text). */
int omniq__pg_connect(const char *conninfo, PGconn **out, char *err, size_t errlen);

/* Checks that conninfo parses as a libpq URL or key=value string, without
 * connecting. OMNIQ_ECONFIG with libpq's reason otherwise. */
int omniq__pg_conninfo_check(const char *conninfo, char *err, size_t errlen);

/* Sets up an empty pool (no connection yet); conninfo is copied, stmts
 * borrowed until omniq__pg_pool_free. OMNIQ_ENOMEM. */
int omniq__pg_pool_init(omniq__pg_pool_t *pool, const char *conninfo,
                        const omniq__pg_stmt_t *stmts, size_t nstmts);
/* Closes every idle connection; all borrowed ones must be back. */
void omniq__pg_pool_free(omniq__pg_pool_t *pool);

/* Borrows a connection: an idle one, a new one, or (at the limit) the next
 * one given back. While the server is unreachable, a new connection is
 * tried at most once per backoff step; in between this fails at once with
 * OMNIQ_ESTORAGE and the last failure's text, so callers never hang on a
 * dead server. */
int omniq__pg_acquire(omniq__pg_pool_t *pool, omniq__pg_conn_t **out, char *err, size_t errlen);
/* Gives a connection back; a broken one is closed and the pool's
 * generation bumped, so idle connections from before the failure are not
 * trusted either (a restarted server has closed them all). */
void omniq__pg_release(omniq__pg_pool_t *pool, omniq__pg_conn_t *c);

/* Drops every idle connection at its next borrowing: the caller learnt
 * that the server went away (the listener's connection died), so they are
 * all dead, and finding it out one failed statement at a time would cost
 * errors. */
void omniq__pg_pool_invalidate(omniq__pg_pool_t *pool);

/* Parameters of one statement. Integers go as text (the server parses
 * them); payloads go as binary, so raw bytes need no escaping. The arrays
 * point at the inline ones unless a caller with many parameters (a batch
 * insert) points them at its own. */
#define OMNIQ__PG_MAX_PARAMS 24
typedef struct omniq__pg_params {
  int n;
  const char **values; /* what is sent: the inline arrays, or a caller's */
  int *lengths;
  int *formats;
  const char *values_[OMNIQ__PG_MAX_PARAMS];
  int lengths_[OMNIQ__PG_MAX_PARAMS];
  int formats_[OMNIQ__PG_MAX_PARAMS];
  char num[OMNIQ__PG_MAX_PARAMS][24];
} omniq__pg_params_t;

/* Empty parameters on the inline arrays; the adders below append to them
 * (at most OMNIQ__PG_MAX_PARAMS). */
void omniq__pg_params_init(omniq__pg_params_t *p);

void omniq__pg_param_i64(omniq__pg_params_t *p, int64_t v);
void omniq__pg_param_text(omniq__pg_params_t *p, const char *s); /* NULL = SQL NULL */
void omniq__pg_param_bytes(omniq__pg_params_t *p, const char *s, size_t n);

/* How a statement may be repeated after its connection died under it
 * (IDEMPOTENT: repeating it is harmless whether or not it had committed).
 * A statement the server provably did not commit (it was refused by a
 * shutting-down server, or the connection was dead before it was sent) is
 * always run again once on a fresh connection. When the connection died
 * with the statement in flight, its outcome is unknown: IDEMPOTENT
 * statements (reads, a lease set to a value) run again; the others fail
 * with OMNIQ_ESTORAGE saying so, and the caller decides. */
enum { OMNIQ__PG_ONCE = 0, OMNIQ__PG_IDEMPOTENT = 1 };

/* Runs prepared statement `stmt` of the pool with p (NULL = none), binary
 * results. notify (NULL, or up to two channel names and a NULL) names
 * channels that get a pg_notify right after the statement commits, in the
 * same round trip but in a transaction of its own: a NOTIFY inside the
 * statement's transaction would hold PostgreSQL's global notify lock across
 * the commit's WAL flush and so serialise every notifying commit in the
 * cluster. A statement that fails sends its notifications all the same;
 * they are hints, and a spurious one costs a waiter one look.
 * On OMNIQ_OK *res is yours (PQclear); on error *res is NULL and err holds
 * "postgres: WHAT: server text". */
int omniq__pg_exec(omniq__pg_pool_t *pool, int stmt, const omniq__pg_params_t *p, int retry,
                   const char *const *notify, const char *what, PGresult **res, char *err,
                   size_t errlen);

/* The same for an unprepared statement (a batch insert, whose text depends
 * on the batch size); never repeated after a lost connection. */
int omniq__pg_exec_sql(omniq__pg_pool_t *pool, const char *sql, const omniq__pg_params_t *p,
                       const char *const *notify, const char *what, PGresult **res, char *err,
                       size_t errlen);

/* Runs prepared statement stmts[i] with ps[i], for i < n, in one
 * transaction and one round trip (a pipeline), then notify as
 * omniq__pg_exec does. On OMNIQ_OK every res[i] is yours (PQclear).
 * Otherwise nothing is left in res and err says why: the batch was rolled back (an error in any
 * statement, or nothing could be sent), or, with *unknown set, the
 * connection died with the batch in flight and it may have committed.
 * Never repeated. */
int omniq__pg_exec_batch(omniq__pg_pool_t *pool, const int *stmts,
                         const omniq__pg_params_t *const *ps, size_t n,
                         const char *const *notify, const char *what, PGresult **res,
                         int *unknown, char *err, size_t errlen);

/* Runs stmt on a connection the caller holds (for multi-statement
 * transactions). Returns an OMNIQ code; *res as above. */
int omniq__pg_exec_on(omniq__pg_pool_t *pool, omniq__pg_conn_t *c, int stmt,
                      const omniq__pg_params_t *p, const char *what, PGresult **res, char *err,
                      size_t errlen);

/* The same for an unprepared statement on a held connection. */
int omniq__pg_exec_sql_on(omniq__pg_pool_t *pool, omniq__pg_conn_t *c, const char *sql,
                          const omniq__pg_params_t *p, const char *what, PGresult **res,
                          char *err, size_t errlen);

/* Runs a plain SQL command (no parameters, no result rows wanted) on c. */
int omniq__pg_command(PGconn *pg, const char *sql, const char *what, char *err, size_t errlen);

/* The OMNIQ code for a failed result (by SQLSTATE) or a dead connection. */
int omniq__pg_code(const PGresult *res, const PGconn *pg);

/* ---- reading binary result columns ---------------------------------------- */

int64_t omniq__pg_i64(const PGresult *r, int row, int col); /* int2/int4/int8 */
/* Copies a text or bytea column into a NUL-terminated string from the
 * library's allocator; SQL NULL gives NULL with OMNIQ_OK. OMNIQ_ENOMEM. */
int omniq__pg_str(const PGresult *r, int row, int col, char **out);
/* Formats a uuid column as the canonical lowercase text of a task id. */
void omniq__pg_uuid(const PGresult *r, int row, int col, char out[37]);

#endif
