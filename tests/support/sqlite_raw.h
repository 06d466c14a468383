/* SPDX-License-Identifier: MIT */
/* Reaching under the SQLite backend: its database file opened with plain
 * SQLite, for the tests that plant an older schema, damage a row or read
 * what the backend wrote (test_store_sqlite.c, test_sqlite_schema.c). Each
 * call fails the test on an SQLite error. */
#ifndef OMNIQ_TEST_SQLITE_RAW_H
#define OMNIQ_TEST_SQLITE_RAW_H

#include <sqlite3.h>
#include <stdint.h>

#include "support/backend.h"

/* The SQLite file of fx's base_dir (yours: free). */
char *th_sqlite_path(const th_be_t *fx);

/* A plain connection to path (close with sqlite3_close). */
sqlite3 *th_sqlite_open(const char *path);

/* Runs sql, which returns no rows. */
void th_sqlite_exec(sqlite3 *db, const char *sql);

/* The first column of the first row sql returns. */
int64_t th_sqlite_int(sqlite3 *db, const char *sql);

#endif
