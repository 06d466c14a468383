/* SPDX-License-Identifier: MIT */
#include "support/sqlite_raw.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <cmocka.h>

#include "omniq.h"

char *th_sqlite_path(const th_be_t *fx) {
  char *p = NULL;
  assert_true(asprintf(&p, "%s/%s", fx->dir, OMNIQ_DEFAULT_DB_FILE) > 0);
  return p;
}

sqlite3 *th_sqlite_open(const char *path) {
  sqlite3 *db = NULL;
  assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
  return db;
}

void th_sqlite_exec(sqlite3 *db, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) fail_msg("%s: %s", sql, msg);
}

int64_t th_sqlite_int(sqlite3 *db, const char *sql) {
  sqlite3_stmt *st = NULL;
  int64_t v;
  assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
  assert_int_equal(sqlite3_step(st), SQLITE_ROW);
  v = sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return v;
}
