/* SPDX-License-Identifier: MIT */
/* Test support for the PostgreSQL backend (support/postgres.h). */
#include "support/postgres.h"

#include <errno.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "support/helpers.h"

static void quiet(void *arg, const char *message) { (void)arg, (void)message; }

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
    PQsetNoticeProcessor(pg, quiet, NULL);
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

void th_echo_round_trip(omniq_t *oq, const char *args, double wait_seconds) {
  omniq_result_t *r = NULL;
  char id[OMNIQ_ID_SIZE];
  th_ok(oq, omniq_enqueue(oq, "tests.echo", args, NULL, NULL, id));
  th_ok(oq, omniq_get_result(oq, id, wait_seconds, &r));
  assert_int_equal(omniq_result_status(r), OMNIQ_SUCCESS);
  assert_string_equal(omniq_result_value(r), args);
  omniq_result_free(r);
}
