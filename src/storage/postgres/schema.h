/* SPDX-License-Identifier: MIT */
/* PostgreSQL backend: schema name, SQL texts and migrations (schema.c). */
#ifndef OMNIQ_PG_SCHEMA_H
#define OMNIQ_PG_SCHEMA_H

#include <libpq-fe.h>
#include <stddef.h>

#include "omniq.h"

#define OMNIQ__PG_DEFAULT_SCHEMA OMNIQ_DEFAULT_DB_SCHEMA
/* Longest schema name: the LISTEN channels append "_result" and must stay
 * within PostgreSQL's 63-byte identifiers. */
#define OMNIQ__PG_SCHEMA_MAX 48

/* The schema version this build writes. */
int omniq__pg_schema_version(void);

/* OMNIQ_OK if name is 1-48 characters of [a-z0-9_], not starting with a
 * digit nor with "pg_" (reserved by PostgreSQL); else OMNIQ_ECONFIG with
 * the reason. Such a name needs no quoting anywhere. */
int omniq__pg_schema_check(const char *name, char *err, size_t errlen);

/* tmpl with every "@S" replaced by schema. Yours: omniq__free(). NULL on
 * out of memory. */
char *omniq__pg_sql(const char *tmpl, const char *schema);

/* Brings the schema to the latest version: creates it in a fresh database,
 * runs the missing steps in an existing one, and does nothing (one read) in
 * an up-to-date one. Safe when many processes open a fresh database at
 * once: the steps run in one transaction under an advisory lock keyed by
 * the schema name, which re-reads the version. OMNIQ_ECORRUPT for a schema
 * written by a newer OmniQ or holding tables OmniQ did not make. */
int omniq__pg_migrate(PGconn *pg, const char *schema, char *err, size_t errlen);

#endif
