#include "helpers.h"

#include "omniq/storage.h"

#include <libpq-fe.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>


void th_clock_init(th_clock_t *c, int64_t start_ms) { c->now_ms = start_ms; }

void th_clock_advance(th_clock_t *c, int64_t ms) { c->now_ms += ms; }

int64_t th_clock_now(void *userdata) { return ((th_clock_t *)userdata)->now_ms; }

char *th_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char *path = NULL;
  if (base == NULL || *base == '\0') base = "/tmp";
  if (asprintf(&path, "%s/omniq-test-XXXXXX", base) < 0) return NULL;
  if (mkdtemp(path) == NULL) {
    free(path);
    return NULL;
  }
  return path;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void th_rmtree(char *path) {
  if (path == NULL) return;
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(path);
}

void th_settings(omniq_settings_t *s, const char *backend, const char *dir, th_clock_t *clock) {
  omniq_settings_init(s);
  snprintf(s->backend, sizeof s->backend, "%s", backend);
  snprintf(s->base_dir, sizeof s->base_dir, "%s", dir);
  if (strcmp(backend, "postgres") == 0) th_pg_settings(s);
  s->log_level = OMNIQ_LOG_ERROR;
  s->retry_base_ms = 10;
  s->retry_cap_ms = 100;
  if (clock != NULL) {
    s->clock_fn = th_clock_now;
    s->clock_userdata = clock;
  }
}

int th_read_full(int fd, void *buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = read(fd, (char *)buf + got, n - got);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    got += (size_t)r;
  }
  return 0;
}

int th_cmp_id(const void *a, const void *b) { return memcmp(a, b, OMNIQ_ID_SIZE); }

void th_setenv(const char *name, const char *value) {
  if (value != NULL)
    setenv(name, value, 1);
  else
    unsetenv(name);
}

int th_store_setup(void **state) {
  th_store_t *st = calloc(1, sizeof *st);
  if (st == NULL) return -1;
  st->backend = *state != NULL ? *state : "sqlite";
  st->dir = th_tmpdir();
  th_clock_init(&st->clock, TH_EPOCH_MS);
  th_settings(&st->settings, st->backend, st->dir, &st->clock);
  if (st->dir == NULL || omniq_open(&st->oq, &st->settings) != OMNIQ_OK) {
    print_error("omniq_open: %s\n", omniq_errmsg(NULL));
    th_rmtree(st->dir);
    free(st);
    return -1;
  }
  *state = st;
  return 0;
}

int th_store_teardown(void **state) {
  th_store_t *st = *state;
  if (st == NULL) return 0;
  omniq_close(st->oq);
  th_pg_drop(&st->settings);
  th_rmtree(st->dir);
  free(st);
  return 0;
}

void th_assert_error_equal(const omniq_task_error_t *a, const omniq_task_error_t *b) {
  if (a == NULL || b == NULL) {
    assert_ptr_equal(a, b);
    return;
  }
  assert_string_equal(a->error_type, b->error_type);
  assert_string_equal(a->message, b->message);
  assert_int_equal(a->timestamp, b->timestamp);
  if (a->traceback == NULL || b->traceback == NULL)
    assert_ptr_equal(a->traceback, b->traceback);
  else
    assert_string_equal(a->traceback, b->traceback);
  assert_int_equal(a->retry_count, b->retry_count);
  assert_int_equal(a->is_retryable, b->is_retryable);
}

void th_assert_result_equal(const omniq_result_t *got, const omniq_result_t *want) {
  assert_string_equal(got->task_id, want->task_id);
  assert_int_equal(got->status, want->status);
  if (got->value == NULL || want->value == NULL)
    assert_ptr_equal(got->value, want->value);
  else
    assert_string_equal(got->value, want->value);
  th_assert_error_equal(got->error, want->error);
  assert_int_equal(got->attempts, want->attempts);
  assert_int_equal(got->finished_at_ms, want->finished_at_ms);
  assert_int_equal(got->last_attempt_at_ms, want->last_attempt_at_ms);
}

/* ---- PostgreSQL ------------------------------------------------------------ */

void th_pg_settings(omniq_settings_t *s) {
  static _Atomic unsigned counter;
  const char *url = getenv("OMNIQ_DB_URL");
  snprintf(s->db_url, sizeof s->db_url, "%s", url != NULL ? url : "");
  snprintf(s->db_schema, sizeof s->db_schema, "t_%ld_%u", (long)getpid(), counter++);
}

int th_pg_sql(const omniq_settings_t *s, const char *sql, char *out, size_t outlen) {
  PGconn *pg = PQconnectdb(s->db_url);
  int rc = -1;
  if (out != NULL && outlen > 0) out[0] = '\0';
  if (PQstatus(pg) == CONNECTION_OK) {
    PQsetNoticeProcessor(pg, th_pg_quiet, NULL);
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
      rc = 0;
      if (out != NULL && outlen > 0) {
        size_t used = 0;
        for (int i = 0; i < PQntuples(r) && used < outlen; i++)
          for (int j = 0; j < PQnfields(r) && used < outlen; j++)
            used += (size_t)snprintf(out + used, outlen - used, "%s%s", PQgetvalue(r, i, j),
                                     j + 1 < PQnfields(r) ? "|" : "\n");
      }
    } else if (out != NULL && outlen > 0) {
      snprintf(out, outlen, "%s", PQresultErrorMessage(r));
    }
    PQclear(r);
  } else if (out != NULL && outlen > 0) {
    snprintf(out, outlen, "%s", PQerrorMessage(pg));
  }
  PQfinish(pg);
  return rc;
}

void th_pg_quiet(void *arg, const char *message) { (void)arg, (void)message; }

void th_pg_drop(const omniq_settings_t *s) {
  char sql[OMNIQ_NAME_MAX + 48];
  if (strcmp(s->backend, "postgres") != 0 || s->db_schema[0] == '\0') return;
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", s->db_schema);
  th_pg_sql(s, sql, NULL, 0);
}

void th_pg_server_now(const omniq_settings_t *s, char *out, size_t outlen) {
  if (th_pg_sql(s, "SELECT clock_timestamp()", out, outlen) != 0) fail_msg("clock_timestamp: %s", out);
  out[strcspn(out, "\n")] = '\0';
}

void th_pg_wait_idle_pool(const omniq_settings_t *s, const char *since) {
  char sql[512], out[256];
  snprintf(sql, sizeof sql,
           "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle'"
           " AND query LIKE '%%%s.tasks%%SKIP LOCKED%%' AND query_start > '%s'",
           s->db_schema, since);
  for (int i = 0; i < 6000; i++) {
    if (th_pg_sql(s, sql, out, sizeof out) != 0) fail_msg("%s: %s", sql, out);
    if (strcmp(out, "0\n") != 0) return;
    struct timespec ts = {0, 10 * 1000000};
    nanosleep(&ts, NULL);
  }
  fail_msg("no pool claimed on %s after %s", s->db_schema, since);
}

static int echo_handler(omniq_job_t *job, void *userdata) {
  (void)userdata;
  return omniq_job_return(job, omniq_job_args(job));
}

pid_t th_spawn_echo_pool(const omniq_settings_t *s, int64_t poll_ms, int *stop_fd) {
  int ready[2], stop[2];
  char c = 'r';
  if (pipe(ready) != 0 || pipe(stop) != 0) fail_msg("pipe: %s", strerror(errno));
  pid_t pid = fork();
  if (pid < 0) fail_msg("fork: %s", strerror(errno));
  if (pid == 0) {
    omniq_t *oq = NULL;
    omniq_worker_t *w = NULL;
    omniq_worker_opts_t o;
    /* Only the parent holds stop's write end: if it dies, this reads EOF. */
    close(ready[0]);
    close(stop[1]);
    if (omniq_open(&oq, s) != OMNIQ_OK ||
        omniq_register(oq, "tests.echo", echo_handler, NULL) != OMNIQ_OK)
      _exit(10);
    omniq_worker_opts_init(&o);
    o.concurrency = 2;
    o.poll_interval_ms = poll_ms;
    if (omniq_worker_start(oq, &o, &w) != OMNIQ_OK) _exit(11);
    if (write(ready[1], &c, 1) != 1) _exit(12);
    th_read_full(stop[0], &c, 1); /* a byte or EOF: stop */
    omniq_worker_stop(w);
    omniq_close(oq);
    _exit(0);
  }
  close(ready[1]);
  close(stop[0]);
  if (th_read_full(ready[0], &c, 1) != 0) fail_msg("the pool process did not start");
  close(ready[0]);
  *stop_fd = stop[1];
  return pid;
}

int th_stop_echo_pool(pid_t pid, int stop_fd) {
  int status = 0;
  if (write(stop_fd, "s", 1) != 1) return -1;
  close(stop_fd);
  if (waitpid(pid, &status, 0) != pid) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
