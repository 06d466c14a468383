/* SPDX-License-Identifier: MIT */
/* Test support for the PostgreSQL backend. The server is OMNIQ_DB_URL (set
 * by scripts/pg-cluster.sh run, which ctest wraps every PostgreSQL test
 * in), and every store is a fresh schema, "t_<pid>_<n>", so tests never see
 * one another's rows. */
#ifndef OMNIQ_TEST_POSTGRES_H
#define OMNIQ_TEST_POSTGRES_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "omniq.h"

/* db_url from OMNIQ_DB_URL ("" if unset) and a fresh db_schema. */
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
 * dies, the child sees EOF and exits too. No thread may run in the caller
 * when it forks. */
pid_t th_spawn_echo_pool(const omniq_settings_t *s, int64_t poll_ms, int *stop_fd);
/* Stops that process; its exit status (0 = clean). */
int th_stop_echo_pool(pid_t pid, int stop_fd);
/* Enqueues "tests.echo" with args on oq and asserts its result, the same
 * args, arrives within wait_seconds. */
void th_echo_round_trip(omniq_t *oq, const char *args, double wait_seconds);

#endif
