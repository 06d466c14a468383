/* SPDX-License-Identifier: MIT */
/* Runs the storage contract on a built-in backend, the way any backend runs
 * it (docs/storage-custom.md): `contract sqlite`, `contract file`,
 * `contract postgres`, and optionally a filter, `contract file cancel`.
 *
 * postgres: the server is OMNIQ_DB_URL (ctest runs this inside its
 * throwaway cluster) and each test's fresh store is a fresh schema,
 * dropped afterwards. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "omniq/contract.h"

static int pg_setup(void *userdata, omniq_settings_t *s) {
  static unsigned counter;
  const char *url = getenv("OMNIQ_DB_URL");
  (void)userdata;
  if (url == NULL || url[0] == '\0') {
    fprintf(stderr, "contract postgres: OMNIQ_DB_URL is not set\n");
    return -1;
  }
  snprintf(s->db_url, sizeof s->db_url, "%s", url);
  snprintf(s->db_schema, sizeof s->db_schema, "contract_%ld_%u", (long)getpid(), counter++);
  return 0;
}

static void quiet(void *arg, const char *message) { (void)arg, (void)message; }

static void pg_teardown(void *userdata, const omniq_settings_t *s) {
  char sql[OMNIQ_NAME_MAX + 48];
  (void)userdata;
  PGconn *c = PQconnectdb(s->db_url);
  PQsetNoticeProcessor(c, quiet, NULL);
  snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", s->db_schema);
  PQclear(PQexec(c, sql));
  PQfinish(c);
}

int main(int argc, char **argv) {
  const omniq_storage_ops_t *ops = argc > 1 ? omniq_storage_find(argv[1]) : NULL;
  omniq_contract_env_t env;
  if (ops == NULL || argc > 3) {
    fprintf(stderr, "usage: contract BACKEND [FILTER] (a registered backend, e.g. sqlite)\n");
    return 2;
  }
  omniq_contract_env_init(&env);
  if (strcmp(ops->name, "postgres") == 0) {
    env.setup = pg_setup;
    env.teardown = pg_teardown;
  }
  if (argc > 2) env.filter = argv[2];
  return omniq_contract_run(ops, &env) == 0 ? 0 : 1;
}
