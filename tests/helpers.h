/* Shared test helpers: temporary directories, a manual clock, and opening a
 * store on them. Include after <cmocka.h>'s prerequisites. */
#ifndef OMNIQ_TEST_HELPERS_H
#define OMNIQ_TEST_HELPERS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <cmocka.h>

#include "omniq.h"

/* A clock tests move by hand. Thread-safe. */
typedef struct th_clock {
  _Atomic int64_t now_ms;
} th_clock_t;

#define TH_EPOCH_MS INT64_C(1800000000000) /* 2027-01-15, a fixed "now" */

void th_clock_init(th_clock_t *c, int64_t start_ms);
void th_clock_advance(th_clock_t *c, int64_t ms);
int64_t th_clock_now(void *userdata); /* an omniq_clock_fn over th_clock_t */

/* Makes a fresh directory under $TMPDIR (or /tmp); returns a malloc'd path. */
char *th_tmpdir(void);
/* Removes a directory tree; NULL is a no-op. Frees path. */
void th_rmtree(char *path);

/* Settings for a test store under dir, on the manual clock, logging only
 * errors (so test output stays readable). backend: "sqlite", "file" or
 * "postgres" (see th_pg_settings). */
void th_settings(omniq_settings_t *s, const char *backend, const char *dir, th_clock_t *clock);

/* A store for one test: a fresh directory, the manual clock at TH_EPOCH_MS,
 * th_settings, and an open handle. */
typedef struct th_store {
  char *dir;
  const char *backend;
  th_clock_t clock;
  omniq_settings_t settings;
  omniq_t *oq;
} th_store_t;

/* cmocka setup: *state names the backend on entry (NULL = "sqlite", as with
 * cmocka_unit_test_prestate_setup_teardown) and holds the th_store_t on
 * success. A store that cannot open fails the test and leaves nothing. */
int th_store_setup(void **state);
/* cmocka teardown: closes the handle, removes the directory. */
int th_store_teardown(void **state);

/* Field-by-field equality of records (NULL equals only NULL). */
void th_assert_error_equal(const omniq_task_error_t *a, const omniq_task_error_t *b);
void th_assert_result_equal(const omniq_result_t *got, const omniq_result_t *want);

/* Reads exactly n bytes (retrying short reads and EINTR); 0, or -1 on EOF
 * or error. For pipes between a test and the processes it forks. */
int th_read_full(int fd, void *buf, size_t n);
/* qsort comparator for arrays of char[OMNIQ_ID_SIZE]. */
int th_cmp_id(const void *a, const void *b);

/* PostgreSQL: the server is OMNIQ_DB_URL (set by scripts/pg-cluster.sh run,
 * which ctest wraps every PostgreSQL test in), and every store is a fresh
 * schema, "t_<pid>_<n>", so tests never see one another's rows. */
void th_pg_settings(omniq_settings_t *s);
/* Runs one SQL command on s's server; its rows (fields joined by '|',
 * rows by '\n') or the error go to out. 0 on success, -1 on failure. */
int th_pg_sql(const omniq_settings_t *s, const char *sql, char *out, size_t outlen);
/* Drops s's schema (a postgres store's teardown); other backends: no-op. */
void th_pg_drop(const omniq_settings_t *s);
/* The server's clock_timestamp() as text, for th_pg_wait_idle_pool. */
void th_pg_server_now(const omniq_settings_t *s, char *out, size_t outlen);
/* Waits until a claim on s's schema that started after `since` has
 * returned: a pool found nothing and now sleeps until its poll interval or
 * a notification. (pg_stat_activity shows each connection's last statement
 * and whether it is still running.) Fails the test after a minute. */
void th_pg_wait_idle_pool(const omniq_settings_t *s, const char *since);
/* Forks a process with its own handle on s and a pool of two threads
 * polling every poll_ms, running "tests.echo" (returns its args); returns
 * once the pool runs. *stop_fd ends it (th_stop_echo_pool); if the test
 * dies, the child sees EOF and exits too. */
pid_t th_spawn_echo_pool(const omniq_settings_t *s, int64_t poll_ms, int *stop_fd);
/* Stops that process; its exit status (0 = clean). */
int th_stop_echo_pool(pid_t pid, int stop_fd);
/* A libpq notice processor that drops notices. */
void th_pg_quiet(void *arg, const char *message);

/* Sets (value != NULL) or unsets an environment variable. */
void th_setenv(const char *name, const char *value);

/* Asserts rc == OMNIQ_OK, printing the handle's message otherwise. */
#define th_ok(oq, expr)                                                          \
  do {                                                                           \
    int th_rc_ = (expr);                                                         \
    if (th_rc_ != OMNIQ_OK)                                                      \
      fail_msg("%s -> %s: %s", #expr, omniq_err_name(th_rc_), omniq_errmsg(oq)); \
  } while (0)

/* Asserts a storage operation returned OMNIQ_OK, showing the backend's
 * message (written to err) if not. err is cleared first. */
#define th_be_ok(err, expr)                                                              \
  do {                                                                                   \
    (err)[0] = '\0';                                                                     \
    int th_be_rc_ = (expr);                                                              \
    if (th_be_rc_ != OMNIQ_OK)                                                           \
      fail_msg("%s -> %s: %s", #expr, omniq_err_name(th_be_rc_), (err));                \
  } while (0)

#endif
