/* SPDX-License-Identifier: MIT */
/* Settings: defaults, the OMNIQ_* environment, and the range checks that
 * omniq_open runs on whatever the caller built.
 *
 * The environment is read through one table, a row per variable: its name,
 * the parser for its kind of value, and where the value lands in the struct.
 * Adding a variable is adding a row (and a line in docs/settings.md); the
 * loop that reads them never changes. omniq__settings_validate takes the
 * duration ranges from the same rows, so a value set in code and one read
 * from the environment meet the same limits.
 *
 * omniq_settings_from_env is all or nothing: it parses into a copy and
 * commits the copy only when every variable was good, so a caller that gets
 * OMNIQ_ECONFIG still holds exactly the settings it passed in. Unset and
 * empty variables keep the current value, so `OMNIQ_LEASE= prog` is the same
 * as not setting it.
 *
 * Durations are written in seconds ("30", "0.5") and kept in milliseconds;
 * digits past the millisecond are dropped. They are capped at
 * OMNIQ_DURATION_MAX_MS (100 years), the limit every duration in OmniQ
 * shares, so that `now + duration` can never overflow an int64 of
 * milliseconds, wherever the core adds them. */
#include "core/settings.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/error.h"
#include "base/log.h"
#include "omniq/storage.h"

#define SECONDS_MAX (OMNIQ_DURATION_MAX_MS / 1000)
#define MS_MAX OMNIQ_DURATION_MAX_MS
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Writes a message to buf (which may be NULL) and returns OMNIQ_ECONFIG. */
static int bad(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int bad(char *buf, size_t len, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (buf != NULL && len > 0) vsnprintf(buf, len, fmt, ap);
  va_end(ap);
  return OMNIQ_ECONFIG;
}

void omniq_settings_init(omniq_settings_t *s) {
  if (s == NULL) return;
  memset(s, 0, sizeof *s);
  snprintf(s->backend, sizeof s->backend, "%s", OMNIQ_DEFAULT_BACKEND);
  /* db_url stays "": the backend puts OMNIQ_DEFAULT_DB_FILE in base_dir. */
  snprintf(s->base_dir, sizeof s->base_dir, "%s", OMNIQ_DEFAULT_BASE_DIR);
  s->default_timeout_ms = OMNIQ_DEFAULT_TIMEOUT_MS;
  s->default_max_retries = OMNIQ_DEFAULT_MAX_RETRIES;
  s->lease_ms = OMNIQ_DEFAULT_LEASE_MS;
  s->result_ttl_ms = OMNIQ_DEFAULT_RESULT_TTL_MS;
  s->serializer = OMNIQ_DEFAULT_SERIALIZER;
  s->log_level = OMNIQ_DEFAULT_LOG_LEVEL;
  s->log_format = OMNIQ_DEFAULT_LOG_FORMAT;
  s->retry_base_ms = OMNIQ_DEFAULT_RETRY_BASE_MS;
  s->retry_cap_ms = OMNIQ_DEFAULT_RETRY_CAP_MS;
  s->fsync = OMNIQ_DEFAULT_FSYNC;
  s->task_ttl_ms = OMNIQ_DEFAULT_TASK_TTL_MS;
  s->crash_budget = OMNIQ_DEFAULT_CRASH_BUDGET;
}

int omniq__parse_seconds(const char *text, int64_t *ms_out) {
  int64_t whole = 0, frac_ms = 0;
  int digits = 0;
  const char *p = text;

  /* A hand-written grammar, DIGITS [ "." DIGITS ], rather than strtod:
   * strtod also takes spaces, signs, hex, exponents, "inf" and the locale's
   * decimal comma, none of which belongs in a duration. */
  if (text == NULL) return OMNIQ_EINVAL;
  for (; *p >= '0' && *p <= '9'; p++, digits++) {
    whole = whole * 10 + (*p - '0');
    if (whole > SECONDS_MAX) return OMNIQ_EINVAL;
  }
  if (digits == 0) return OMNIQ_EINVAL;
  if (*p == '.') {
    int scale = 100;
    for (digits = 0, p++; *p >= '0' && *p <= '9'; p++, digits++, scale /= 10)
      frac_ms += (*p - '0') * scale; /* scale reaches 0 after milliseconds */
    if (digits == 0) return OMNIQ_EINVAL;
  }
  if (*p != '\0') return OMNIQ_EINVAL;
  if (whole * 1000 + frac_ms > MS_MAX) return OMNIQ_EINVAL;
  *ms_out = whole * 1000 + frac_ms;
  return OMNIQ_OK;
}

/* ---- the environment table ------------------------------------------------ */

/* A fixed set of names for an enumerated setting. */
typedef struct choice {
  const char *name;
  int value;
} choice_t;

static const choice_t serializer_choices[] = {
    {"json", OMNIQ_SERIALIZER_JSON}, {"raw", OMNIQ_SERIALIZER_RAW}, {NULL, 0}};
static const choice_t format_choices[] = {
    {"text", OMNIQ_LOG_TEXT}, {"json", OMNIQ_LOG_JSON}, {NULL, 0}};
static const choice_t bool_choices[] = {
    {"0", 0}, {"1", 1}, {"false", 0}, {"true", 1}, {NULL, 0}};

typedef struct setting setting_t;

/* Parses text into field (which belongs to row); on a bad value writes the
 * complaint, a phrase that follows "VAR: 'value' ", to why. */
typedef int (*parse_fn)(const setting_t *row, const char *text, void *field, char *why,
                        size_t whylen);

struct setting {
  const char *env;
  parse_fn parse;
  const char *field;       /* the struct member's name, for omniq__settings_validate */
  size_t offset;
  size_t size;             /* string fields: capacity including the NUL */
  const choice_t *choices; /* parse_choice only */
  int64_t min_ms;          /* parse_seconds only: 0, or 1 for "more than 0" */
};

static int parse_text(const setting_t *row, const char *text, void *field, char *why,
                      size_t whylen) {
  size_t len = strlen(text);
  if (len >= row->size)
    return bad(why, whylen, "is longer than %zu bytes", row->size - 1);
  memcpy(field, text, len + 1);
  return OMNIQ_OK;
}

static int parse_backend(const setting_t *row, const char *text, void *field, char *why,
                         size_t whylen) {
  if (strlen(text) >= row->size || omniq_storage_find(text) == NULL)
    return bad(why, whylen, "is not a registered backend (built in: sqlite, file, postgres)");
  return parse_text(row, text, field, why, whylen);
}

/* A duration in seconds, at least row->min_ms once in milliseconds. */
static int parse_seconds(const setting_t *row, const char *text, void *field, char *why,
                         size_t whylen) {
  int64_t ms;
  if (omniq__parse_seconds(text, &ms) != OMNIQ_OK || ms < row->min_ms)
    return bad(why, whylen, "is not a number of seconds (%s, up to %lld)",
               row->min_ms > 0 ? "more than 0" : "0 or more", (long long)SECONDS_MAX);
  memcpy(field, &ms, sizeof ms);
  return OMNIQ_OK;
}

static int parse_count(const setting_t *row, const char *text, void *field, char *why,
                       size_t whylen) {
  long long n = 0;
  const char *p = text;
  (void)row;
  for (; *p >= '0' && *p <= '9' && n <= INT_MAX; p++) n = n * 10 + (*p - '0');
  if (p == text || *p != '\0' || n > INT_MAX)
    return bad(why, whylen, "is not a whole number (0 or more)");
  *(int *)field = (int)n;
  return OMNIQ_OK;
}

static int parse_level(const setting_t *row, const char *text, void *field, char *why,
                       size_t whylen) {
  (void)row;
  if (omniq__log_level_parse(text, field) != OMNIQ_OK)
    return bad(why, whylen, "is not a level (DEBUG, INFO, WARNING, ERROR)");
  return OMNIQ_OK;
}

/* Names match case-insensitively, like the log level. */
static int parse_choice(const setting_t *row, const char *text, void *field, char *why,
                        size_t whylen) {
  size_t used;
  for (const choice_t *c = row->choices; c->name != NULL; c++)
    if (strcasecmp(text, c->name) == 0) {
      *(int *)field = c->value;
      return OMNIQ_OK;
    }
  used = (size_t)snprintf(why, whylen, "is not one of");
  for (const choice_t *c = row->choices; c->name != NULL && used < whylen; c++)
    used += (size_t)snprintf(why + used, whylen - used, "%s %s", c == row->choices ? "" : ",",
                             c->name);
  return OMNIQ_ECONFIG;
}

#define FIELD(f) #f, offsetof(omniq_settings_t, f), sizeof(((omniq_settings_t *)0)->f)

static const setting_t table[] = {
    {"OMNIQ_BACKEND", parse_backend, FIELD(backend), NULL, 0},
    {"OMNIQ_DB_URL", parse_text, FIELD(db_url), NULL, 0},
    {"OMNIQ_BASE_DIR", parse_text, FIELD(base_dir), NULL, 0},
    {"OMNIQ_DEFAULT_TIMEOUT", parse_seconds, FIELD(default_timeout_ms), NULL, 0},
    {"OMNIQ_DEFAULT_MAX_RETRIES", parse_count, FIELD(default_max_retries), NULL, 0},
    {"OMNIQ_LEASE", parse_seconds, FIELD(lease_ms), NULL, 1},
    {"OMNIQ_RESULT_TTL", parse_seconds, FIELD(result_ttl_ms), NULL, 0},
    {"OMNIQ_SERIALIZER", parse_choice, FIELD(serializer), serializer_choices, 0},
    {"OMNIQ_LOG_LEVEL", parse_level, FIELD(log_level), NULL, 0},
    {"OMNIQ_LOG_FORMAT", parse_choice, FIELD(log_format), format_choices, 0},
    {"OMNIQ_RETRY_BASE", parse_seconds, FIELD(retry_base_ms), NULL, 1},
    {"OMNIQ_RETRY_CAP", parse_seconds, FIELD(retry_cap_ms), NULL, 1},
    {"OMNIQ_FSYNC", parse_choice, FIELD(fsync), bool_choices, 0},
    {"OMNIQ_TASK_TTL", parse_seconds, FIELD(task_ttl_ms), NULL, 0},
    {"OMNIQ_CRASH_BUDGET", parse_count, FIELD(crash_budget), NULL, 0},
    {"OMNIQ_DB_SCHEMA", parse_text, FIELD(db_schema), NULL, 0},
    {"OMNIQ_HANDLER_PATH", parse_text, FIELD(handler_path), NULL, 0},
};

/* The value of an OMNIQ_* variable that counts as set, or NULL. */
static const char *env_value(const char *name) {
  const char *v = getenv(name);
  return v != NULL && v[0] != '\0' ? v : NULL;
}

int omniq_settings_from_env(omniq_settings_t *s) {
  omniq_settings_t next;
  char why[160];
  const char *base, *cap;

  if (s == NULL) return omniq__err(0, OMNIQ_EINVAL, "omniq_settings_from_env: settings is NULL");
  next = *s;
  for (size_t i = 0; i < ARRAY_LEN(table); i++) {
    const setting_t *row = &table[i];
    const char *text = env_value(row->env);
    if (text == NULL) continue;
    if (row->parse(row, text, (char *)&next + row->offset, why, sizeof why) != OMNIQ_OK)
      return omniq__err(0, OMNIQ_ECONFIG, "%s: '%.200s' %s", row->env, text, why);
  }
  /* The one rule that spans two variables. Blame the one that was set, so
   * the message points at something the user wrote; a pair that only the
   * caller's code got wrong is left to omniq__settings_validate. */
  cap = env_value("OMNIQ_RETRY_CAP");
  base = env_value("OMNIQ_RETRY_BASE");
  if ((cap != NULL || base != NULL) && next.retry_cap_ms < next.retry_base_ms) {
    if (cap != NULL)
      return omniq__err(0, OMNIQ_ECONFIG,
                        "OMNIQ_RETRY_CAP: '%.200s' is less than the retry base (%g s)", cap,
                        (double)next.retry_base_ms / 1000);
    return omniq__err(0, OMNIQ_ECONFIG,
                      "OMNIQ_RETRY_BASE: '%.200s' is more than the retry cap (%g s)", base,
                      (double)next.retry_cap_ms / 1000);
  }
  *s = next;
  return OMNIQ_OK;
}

/* ---- validation of a finished struct -------------------------------------- */

static int terminated(const char *field, size_t size) { return memchr(field, '\0', size) != NULL; }

int omniq__settings_validate(const omniq_settings_t *s, char *err, size_t errlen) {
  if (s == NULL) return bad(err, errlen, "settings is NULL");
  if (!terminated(s->backend, sizeof s->backend) || omniq_storage_find(s->backend) == NULL)
    return bad(err, errlen, "backend: '%.*s' is not a registered backend",
               (int)sizeof s->backend - 1, s->backend);
  if (!terminated(s->db_url, sizeof s->db_url)) return bad(err, errlen, "db_url: not terminated");
  if (!terminated(s->db_schema, sizeof s->db_schema))
    return bad(err, errlen, "db_schema: not terminated");
  if (!terminated(s->base_dir, sizeof s->base_dir))
    return bad(err, errlen, "base_dir: not terminated");
  if (s->base_dir[0] == '\0') return bad(err, errlen, "base_dir: must not be empty");
  if (!terminated(s->handler_path, sizeof s->handler_path))
    return bad(err, errlen, "handler_path: not terminated");
  /* Durations: the range their variables accept, from the same table. */
  for (size_t i = 0; i < ARRAY_LEN(table); i++) {
    const setting_t *row = &table[i];
    int64_t v;
    if (row->parse != parse_seconds) continue;
    memcpy(&v, (const char *)s + row->offset, sizeof v);
    if (v < row->min_ms || v > MS_MAX)
      return bad(err, errlen, "%s: %lld is out of range (%lld to %lld)", row->field,
                 (long long)v, (long long)row->min_ms, (long long)MS_MAX);
  }
  if (s->retry_cap_ms < s->retry_base_ms)
    return bad(err, errlen, "retry_cap_ms: %lld is less than retry_base_ms (%lld)",
               (long long)s->retry_cap_ms, (long long)s->retry_base_ms);
  if (s->default_max_retries < 0)
    return bad(err, errlen, "default_max_retries: %d is negative", s->default_max_retries);
  if (s->crash_budget < 0)
    return bad(err, errlen, "crash_budget: %d is negative", s->crash_budget);
  if (s->serializer != OMNIQ_SERIALIZER_JSON && s->serializer != OMNIQ_SERIALIZER_RAW)
    return bad(err, errlen, "serializer: %d is not json (0) or raw (1)", s->serializer);
  if (strcmp(omniq__log_level_name(s->log_level), "UNKNOWN") == 0)
    return bad(err, errlen, "log_level: %d is not a level (10, 20, 30, 40)", s->log_level);
  if (s->log_format != OMNIQ_LOG_TEXT && s->log_format != OMNIQ_LOG_JSON)
    return bad(err, errlen, "log_format: %d is not text (0) or json (1)", s->log_format);
  if (s->fsync != 0 && s->fsync != 1) return bad(err, errlen, "fsync: %d is not 0 or 1", s->fsync);
  return OMNIQ_OK;
}
