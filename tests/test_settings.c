/* SPDX-License-Identifier: MIT */
/* Settings: defaults, every OMNIQ_* variable (valid, invalid, unset or
 * empty), the all-or-nothing rule, duration parsing, and the range checks
 * omniq_open relies on. */
#include "support/helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/settings.h"

extern char **environ;

/* Removes every OMNIQ_* variable, so the host's environment cannot leak
 * into a test. Names are copied first: unsetenv rewrites environ. */
static void unset_omniq_env(void) {
  char names[64][128];
  size_t n = 0;
  for (char **e = environ; *e != NULL && n < 64; e++) {
    const char *eq = strchr(*e, '=');
    size_t len = eq != NULL ? (size_t)(eq - *e) : strlen(*e);
    if (strncmp(*e, "OMNIQ_", 6) == 0 && len < sizeof names[0]) {
      memcpy(names[n], *e, len);
      names[n++][len] = '\0';
    }
  }
  for (size_t i = 0; i < n; i++) unsetenv(names[i]);
}

static int setup(void **state) {
  (void)state;
  unset_omniq_env();
  return 0;
}

static int teardown(void **state) {
  (void)state;
  unset_omniq_env();
  return 0;
}

/* Field by field, since struct assignment need not copy padding bytes. */
static void assert_settings_equal(const omniq_settings_t *a, const omniq_settings_t *b) {
  assert_string_equal(a->backend, b->backend);
  assert_string_equal(a->db_url, b->db_url);
  assert_string_equal(a->base_dir, b->base_dir);
  assert_int_equal(a->default_timeout_ms, b->default_timeout_ms);
  assert_int_equal(a->default_max_retries, b->default_max_retries);
  assert_int_equal(a->lease_ms, b->lease_ms);
  assert_int_equal(a->result_ttl_ms, b->result_ttl_ms);
  assert_int_equal(a->serializer, b->serializer);
  assert_int_equal(a->log_level, b->log_level);
  assert_int_equal(a->log_format, b->log_format);
  assert_int_equal(a->retry_base_ms, b->retry_base_ms);
  assert_int_equal(a->retry_cap_ms, b->retry_cap_ms);
  assert_int_equal(a->fsync, b->fsync);
  assert_int_equal(a->task_ttl_ms, b->task_ttl_ms);
  assert_int_equal(a->crash_budget, b->crash_budget);
  assert_ptr_equal(a->log_fn, b->log_fn);
  assert_ptr_equal(a->log_userdata, b->log_userdata);
  assert_ptr_equal(a->clock_fn, b->clock_fn);
  assert_ptr_equal(a->clock_userdata, b->clock_userdata);
}

/* Loads one variable over the defaults; returns the code and leaves the
 * result in *s. */
static int load(omniq_settings_t *s, const char *name, const char *value) {
  omniq_settings_init(s);
  th_setenv(name, value);
  int rc = omniq_settings_from_env(s);
  th_setenv(name, NULL);
  return rc;
}

/* Asserts that name=value is refused: ECONFIG, the struct untouched, and a
 * message that names both the variable and the value. */
static void assert_rejected(const char *name, const char *value) {
  omniq_settings_t s, before;
  omniq_settings_init(&s);
  before = s;
  th_setenv(name, value);
  int rc = omniq_settings_from_env(&s);
  th_setenv(name, NULL);
  if (rc != OMNIQ_ECONFIG)
    fail_msg("%s=%s -> %s, expected OMNIQ_ECONFIG", name, value, omniq_err_name(rc));
  assert_settings_equal(&s, &before);
  /* A long value is cut short in the message; its start must be there. */
  char head[101];
  snprintf(head, sizeof head, "'%.98s", value);
  const char *msg = omniq_errmsg(NULL);
  if (strstr(msg, name) == NULL || strstr(msg, head) == NULL)
    fail_msg("message for %s=%s does not name both: \"%s\"", name, head, msg);
}

/* Asserts that an unset and an empty variable both keep what the caller had. */
static void assert_unset_and_empty_keep(const char *name) {
  omniq_settings_t s, before;
  omniq_settings_init(&s);
  /* Non-default values, so "kept" cannot be confused with "reset". */
  strcpy(s.backend, "file");
  strcpy(s.db_url, "sqlite:////tmp/kept.db");
  strcpy(s.base_dir, "/tmp/kept");
  s.default_timeout_ms = 7000;
  s.default_max_retries = 9;
  s.lease_ms = 8000;
  s.result_ttl_ms = 9000;
  s.serializer = OMNIQ_SERIALIZER_RAW;
  s.log_level = OMNIQ_LOG_ERROR;
  s.log_format = OMNIQ_LOG_JSON;
  s.retry_base_ms = 2000;
  s.retry_cap_ms = 3000;
  s.fsync = 0;
  s.task_ttl_ms = 10000;
  s.crash_budget = 5;
  before = s;
  assert_int_equal(omniq_settings_from_env(&s), OMNIQ_OK);
  assert_settings_equal(&s, &before);
  th_setenv(name, "");
  assert_int_equal(omniq_settings_from_env(&s), OMNIQ_OK);
  th_setenv(name, NULL);
  assert_settings_equal(&s, &before);
}

static void test_init_fills_every_default(void **state) {
  omniq_settings_t s;
  (void)state;
  memset(&s, 0x5a, sizeof s);
  omniq_settings_init(&s);
  assert_string_equal(s.backend, OMNIQ_DEFAULT_BACKEND);
  assert_string_equal(s.db_url, "");
  assert_string_equal(s.base_dir, OMNIQ_DEFAULT_BASE_DIR);
  assert_int_equal(s.default_timeout_ms, OMNIQ_DEFAULT_TIMEOUT_MS);
  assert_int_equal(s.default_max_retries, OMNIQ_DEFAULT_MAX_RETRIES);
  assert_int_equal(s.lease_ms, OMNIQ_DEFAULT_LEASE_MS);
  assert_int_equal(s.result_ttl_ms, OMNIQ_DEFAULT_RESULT_TTL_MS);
  assert_int_equal(s.serializer, OMNIQ_DEFAULT_SERIALIZER);
  assert_int_equal(s.log_level, OMNIQ_DEFAULT_LOG_LEVEL);
  assert_int_equal(s.log_format, OMNIQ_DEFAULT_LOG_FORMAT);
  assert_int_equal(s.retry_base_ms, OMNIQ_DEFAULT_RETRY_BASE_MS);
  assert_int_equal(s.retry_cap_ms, OMNIQ_DEFAULT_RETRY_CAP_MS);
  assert_int_equal(s.fsync, OMNIQ_DEFAULT_FSYNC);
  assert_int_equal(s.task_ttl_ms, OMNIQ_DEFAULT_TASK_TTL_MS);
  assert_int_equal(s.task_ttl_ms, INT64_C(7) * 24 * 3600 * 1000);
  assert_int_equal(s.crash_budget, OMNIQ_DEFAULT_CRASH_BUDGET);
  assert_int_equal(s.crash_budget, 2);
  assert_null(s.log_fn);
  assert_null(s.log_userdata);
  assert_null(s.clock_fn);
  assert_null(s.clock_userdata);
  assert_int_equal(omniq__settings_validate(&s, NULL, 0), OMNIQ_OK);
}

static void test_empty_environment_changes_nothing(void **state) {
  omniq_settings_t s, before;
  (void)state;
  omniq_settings_init(&s);
  before = s;
  assert_int_equal(omniq_settings_from_env(&s), OMNIQ_OK);
  assert_settings_equal(&s, &before);
}

static void test_backend_accepts_registered_names_only(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_BACKEND", "file"), OMNIQ_OK);
  assert_string_equal(s.backend, "file");
  assert_int_equal(load(&s, "OMNIQ_BACKEND", "sqlite"), OMNIQ_OK);
  assert_string_equal(s.backend, "sqlite");
  assert_rejected("OMNIQ_BACKEND", "redis");
  assert_rejected("OMNIQ_BACKEND", "SQLITE");
  assert_unset_and_empty_keep("OMNIQ_BACKEND");
}

static void test_db_url_and_base_dir_take_text_up_to_their_size(void **state) {
  omniq_settings_t s;
  char longest[OMNIQ_PATH_MAX], too_long[OMNIQ_PATH_MAX + 1];
  (void)state;
  memset(longest, 'a', sizeof longest - 1);
  longest[sizeof longest - 1] = '\0';
  memset(too_long, 'b', sizeof too_long - 1);
  too_long[sizeof too_long - 1] = '\0';

  assert_int_equal(load(&s, "OMNIQ_DB_URL", "sqlite:////var/lib/q.db"), OMNIQ_OK);
  assert_string_equal(s.db_url, "sqlite:////var/lib/q.db");
  assert_int_equal(load(&s, "OMNIQ_DB_URL", longest), OMNIQ_OK);
  assert_string_equal(s.db_url, longest);
  assert_rejected("OMNIQ_DB_URL", too_long);
  assert_unset_and_empty_keep("OMNIQ_DB_URL");

  assert_int_equal(load(&s, "OMNIQ_BASE_DIR", "/srv/omniq"), OMNIQ_OK);
  assert_string_equal(s.base_dir, "/srv/omniq");
  assert_int_equal(load(&s, "OMNIQ_BASE_DIR", longest), OMNIQ_OK);
  assert_string_equal(s.base_dir, longest);
  assert_rejected("OMNIQ_BASE_DIR", too_long);
  assert_unset_and_empty_keep("OMNIQ_BASE_DIR");
}

static void test_timeout_accepts_decimal_seconds_and_zero(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_DEFAULT_TIMEOUT", "2.5"), OMNIQ_OK);
  assert_int_equal(s.default_timeout_ms, 2500);
  assert_int_equal(load(&s, "OMNIQ_DEFAULT_TIMEOUT", "0"), OMNIQ_OK);
  assert_int_equal(s.default_timeout_ms, 0);
  assert_unset_and_empty_keep("OMNIQ_DEFAULT_TIMEOUT");
}

static void test_timeout_rejects_non_number(void **state) {
  (void)state;
  assert_rejected("OMNIQ_DEFAULT_TIMEOUT", "abc");
  assert_rejected("OMNIQ_DEFAULT_TIMEOUT", "-1");
  assert_rejected("OMNIQ_DEFAULT_TIMEOUT", "10s");
  assert_string_equal(omniq_errmsg(NULL), "OMNIQ_DEFAULT_TIMEOUT: '10s' is not a number of "
                                          "seconds (0 or more, up to 3155760000)");
}

static void test_max_retries_accepts_whole_numbers_only(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_DEFAULT_MAX_RETRIES", "0"), OMNIQ_OK);
  assert_int_equal(s.default_max_retries, 0);
  assert_int_equal(load(&s, "OMNIQ_DEFAULT_MAX_RETRIES", "12"), OMNIQ_OK);
  assert_int_equal(s.default_max_retries, 12);
  assert_rejected("OMNIQ_DEFAULT_MAX_RETRIES", "-1");
  assert_rejected("OMNIQ_DEFAULT_MAX_RETRIES", "2.5");
  assert_rejected("OMNIQ_DEFAULT_MAX_RETRIES", "three");
  assert_rejected("OMNIQ_DEFAULT_MAX_RETRIES", "99999999999");
  assert_unset_and_empty_keep("OMNIQ_DEFAULT_MAX_RETRIES");
}

static void test_lease_must_be_more_than_zero(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_LEASE", "45"), OMNIQ_OK);
  assert_int_equal(s.lease_ms, 45000);
  assert_int_equal(load(&s, "OMNIQ_LEASE", "0.25"), OMNIQ_OK);
  assert_int_equal(s.lease_ms, 250);
  assert_rejected("OMNIQ_LEASE", "0");
  assert_non_null(strstr(omniq_errmsg(NULL), "more than 0"));
  assert_rejected("OMNIQ_LEASE", "0.0001");
  assert_rejected("OMNIQ_LEASE", "-5");
  assert_rejected("OMNIQ_LEASE", "soon");
  assert_unset_and_empty_keep("OMNIQ_LEASE");
}

static void test_result_ttl_accepts_zero_and_more(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_RESULT_TTL", "3600"), OMNIQ_OK);
  assert_int_equal(s.result_ttl_ms, 3600000);
  assert_int_equal(load(&s, "OMNIQ_RESULT_TTL", "0"), OMNIQ_OK);
  assert_int_equal(s.result_ttl_ms, 0);
  assert_rejected("OMNIQ_RESULT_TTL", "-1");
  assert_rejected("OMNIQ_RESULT_TTL", "1e3");
  assert_unset_and_empty_keep("OMNIQ_RESULT_TTL");
}

static void test_task_ttl_takes_seconds_and_zero_keeps_forever(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_TASK_TTL", "86400"), OMNIQ_OK);
  assert_int_equal(s.task_ttl_ms, INT64_C(86400000));
  assert_int_equal(load(&s, "OMNIQ_TASK_TTL", "0"), OMNIQ_OK);
  assert_int_equal(s.task_ttl_ms, 0);
  assert_rejected("OMNIQ_TASK_TTL", "-5");
  assert_rejected("OMNIQ_TASK_TTL", "7d");
  assert_unset_and_empty_keep("OMNIQ_TASK_TTL");
}

static void test_crash_budget_takes_whole_numbers(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_CRASH_BUDGET", "5"), OMNIQ_OK);
  assert_int_equal(s.crash_budget, 5);
  assert_int_equal(load(&s, "OMNIQ_CRASH_BUDGET", "0"), OMNIQ_OK);
  assert_int_equal(s.crash_budget, 0);
  assert_rejected("OMNIQ_CRASH_BUDGET", "-1");
  assert_rejected("OMNIQ_CRASH_BUDGET", "two");
  assert_unset_and_empty_keep("OMNIQ_CRASH_BUDGET");
}

static void test_serializer_is_json_or_raw(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_SERIALIZER", "raw"), OMNIQ_OK);
  assert_int_equal(s.serializer, OMNIQ_SERIALIZER_RAW);
  assert_int_equal(load(&s, "OMNIQ_SERIALIZER", "json"), OMNIQ_OK);
  assert_int_equal(s.serializer, OMNIQ_SERIALIZER_JSON);
  assert_rejected("OMNIQ_SERIALIZER", "pickle");
  assert_non_null(strstr(omniq_errmsg(NULL), "json, raw"));
  assert_unset_and_empty_keep("OMNIQ_SERIALIZER");
}

static void test_log_level_takes_names_in_any_case(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_LOG_LEVEL", "DEBUG"), OMNIQ_OK);
  assert_int_equal(s.log_level, OMNIQ_LOG_DEBUG);
  assert_int_equal(load(&s, "OMNIQ_LOG_LEVEL", "warning"), OMNIQ_OK);
  assert_int_equal(s.log_level, OMNIQ_LOG_WARNING);
  assert_int_equal(load(&s, "OMNIQ_LOG_LEVEL", "Error"), OMNIQ_OK);
  assert_int_equal(s.log_level, OMNIQ_LOG_ERROR);
  assert_int_equal(load(&s, "OMNIQ_LOG_LEVEL", "info"), OMNIQ_OK);
  assert_int_equal(s.log_level, OMNIQ_LOG_INFO);
  assert_rejected("OMNIQ_LOG_LEVEL", "LOUD");
  assert_rejected("OMNIQ_LOG_LEVEL", "20");
  assert_unset_and_empty_keep("OMNIQ_LOG_LEVEL");
}

static void test_log_format_is_text_or_json(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_LOG_FORMAT", "json"), OMNIQ_OK);
  assert_int_equal(s.log_format, OMNIQ_LOG_JSON);
  assert_int_equal(load(&s, "OMNIQ_LOG_FORMAT", "text"), OMNIQ_OK);
  assert_int_equal(s.log_format, OMNIQ_LOG_TEXT);
  assert_rejected("OMNIQ_LOG_FORMAT", "xml");
  assert_unset_and_empty_keep("OMNIQ_LOG_FORMAT");
}

static void test_retry_base_and_cap_are_positive_seconds(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_RETRY_BASE", "0.01"), OMNIQ_OK);
  assert_int_equal(s.retry_base_ms, 10);
  assert_int_equal(load(&s, "OMNIQ_RETRY_CAP", "5"), OMNIQ_OK);
  assert_int_equal(s.retry_cap_ms, 5000);
  assert_rejected("OMNIQ_RETRY_BASE", "0");
  assert_rejected("OMNIQ_RETRY_BASE", "fast");
  assert_rejected("OMNIQ_RETRY_CAP", "0");
  assert_rejected("OMNIQ_RETRY_CAP", "-60");
  assert_unset_and_empty_keep("OMNIQ_RETRY_BASE");
  assert_unset_and_empty_keep("OMNIQ_RETRY_CAP");
}

static void test_retry_cap_below_base_is_refused(void **state) {
  (void)state;
  /* Cap set below the default base (1 s): the cap is blamed. */
  assert_rejected("OMNIQ_RETRY_CAP", "0.5");
  /* Base set above the default cap (60 s): the base is blamed. */
  assert_rejected("OMNIQ_RETRY_BASE", "120");
  /* Both set and consistent: accepted. */
  omniq_settings_t s;
  omniq_settings_init(&s);
  th_setenv("OMNIQ_RETRY_BASE", "120");
  th_setenv("OMNIQ_RETRY_CAP", "600");
  assert_int_equal(omniq_settings_from_env(&s), OMNIQ_OK);
  assert_int_equal(s.retry_base_ms, 120000);
  assert_int_equal(s.retry_cap_ms, 600000);
}

static void test_fsync_takes_zero_one_true_false(void **state) {
  omniq_settings_t s;
  (void)state;
  assert_int_equal(load(&s, "OMNIQ_FSYNC", "0"), OMNIQ_OK);
  assert_int_equal(s.fsync, 0);
  assert_int_equal(load(&s, "OMNIQ_FSYNC", "1"), OMNIQ_OK);
  assert_int_equal(s.fsync, 1);
  assert_int_equal(load(&s, "OMNIQ_FSYNC", "false"), OMNIQ_OK);
  assert_int_equal(s.fsync, 0);
  assert_int_equal(load(&s, "OMNIQ_FSYNC", "TRUE"), OMNIQ_OK);
  assert_int_equal(s.fsync, 1);
  assert_rejected("OMNIQ_FSYNC", "2");
  assert_rejected("OMNIQ_FSYNC", "maybe");
  assert_unset_and_empty_keep("OMNIQ_FSYNC");
}

static void test_one_bad_variable_leaves_struct_unchanged(void **state) {
  omniq_settings_t s, before;
  (void)state;
  omniq_settings_init(&s);
  before = s;
  /* Good values on rows read before the bad one must not be committed. */
  th_setenv("OMNIQ_BACKEND", "file");
  th_setenv("OMNIQ_LEASE", "45");
  th_setenv("OMNIQ_LOG_FORMAT", "json");
  th_setenv("OMNIQ_FSYNC", "perhaps");
  assert_int_equal(omniq_settings_from_env(&s), OMNIQ_ECONFIG);
  assert_settings_equal(&s, &before);
  assert_string_equal(omniq_errmsg(NULL),
                      "OMNIQ_FSYNC: 'perhaps' is not one of 0, 1, false, true");
}

static void test_all_variables_apply_together(void **state) {
  omniq_settings_t s;
  (void)state;
  omniq_settings_init(&s);
  th_setenv("OMNIQ_BACKEND", "file");
  th_setenv("OMNIQ_DB_URL", ":memory:");
  th_setenv("OMNIQ_BASE_DIR", "/tmp/q");
  th_setenv("OMNIQ_DEFAULT_TIMEOUT", "1.5");
  th_setenv("OMNIQ_DEFAULT_MAX_RETRIES", "5");
  th_setenv("OMNIQ_LEASE", "10");
  th_setenv("OMNIQ_RESULT_TTL", "60");
  th_setenv("OMNIQ_SERIALIZER", "raw");
  th_setenv("OMNIQ_LOG_LEVEL", "debug");
  th_setenv("OMNIQ_LOG_FORMAT", "json");
  th_setenv("OMNIQ_RETRY_BASE", "0.1");
  th_setenv("OMNIQ_RETRY_CAP", "2");
  th_setenv("OMNIQ_FSYNC", "0");
  assert_int_equal(omniq_settings_from_env(&s), OMNIQ_OK);
  assert_string_equal(s.backend, "file");
  assert_string_equal(s.db_url, ":memory:");
  assert_string_equal(s.base_dir, "/tmp/q");
  assert_int_equal(s.default_timeout_ms, 1500);
  assert_int_equal(s.default_max_retries, 5);
  assert_int_equal(s.lease_ms, 10000);
  assert_int_equal(s.result_ttl_ms, 60000);
  assert_int_equal(s.serializer, OMNIQ_SERIALIZER_RAW);
  assert_int_equal(s.log_level, OMNIQ_LOG_DEBUG);
  assert_int_equal(s.log_format, OMNIQ_LOG_JSON);
  assert_int_equal(s.retry_base_ms, 100);
  assert_int_equal(s.retry_cap_ms, 2000);
  assert_int_equal(s.fsync, 0);
  assert_int_equal(omniq__settings_validate(&s, NULL, 0), OMNIQ_OK);
}

static void test_from_env_rejects_null_settings(void **state) {
  (void)state;
  assert_int_equal(omniq_settings_from_env(NULL), OMNIQ_EINVAL);
  omniq_settings_init(NULL); /* a no-op, not a crash */
}

static void test_parse_seconds_reads_plain_decimals_only(void **state) {
  int64_t ms = -1;
  (void)state;
  static const struct {
    const char *text;
    int64_t ms;
  } good[] = {{"0", 0},         {"30", 30000},      {"0.5", 500},         {"1.25", 1250},
              {"007", 7000},    {"2.0009", 2000},   {"3155760000", 3155760000000}};
  static const char *const bad_texts[] = {"",     "abc", "-1",   "+1",   " 1",  "1 ",   "1.",
                                          ".5",   "1e3", "0x10", "inf",  "nan", "1,5",  "1..2",
                                          "3155760000.001", "99999999999999999999999"};
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    assert_int_equal(omniq__parse_seconds(good[i].text, &ms), OMNIQ_OK);
    assert_int_equal(ms, good[i].ms);
  }
  for (size_t i = 0; i < sizeof bad_texts / sizeof bad_texts[0]; i++) {
    ms = -7;
    if (omniq__parse_seconds(bad_texts[i], &ms) != OMNIQ_EINVAL)
      fail_msg("'%s' was accepted as %lld ms", bad_texts[i], (long long)ms);
    assert_int_equal(ms, -7);
  }
  assert_int_equal(omniq__parse_seconds(NULL, &ms), OMNIQ_EINVAL);
}

/* Asserts validate refuses s with a message naming field. */
static void assert_invalid(const omniq_settings_t *s, const char *field) {
  char err[256] = "";
  assert_int_equal(omniq__settings_validate(s, err, sizeof err), OMNIQ_ECONFIG);
  if (strstr(err, field) == NULL) fail_msg("message does not name %s: \"%s\"", field, err);
}

static void test_validate_refuses_each_out_of_range_field(void **state) {
  omniq_settings_t s;
  (void)state;
#define CASE(stmt, field) \
  omniq_settings_init(&s); \
  stmt;                    \
  assert_invalid(&s, field)
  CASE(strcpy(s.backend, "nosuch"), "backend");
  CASE(memset(s.backend, 'x', sizeof s.backend), "backend");
  CASE(memset(s.db_url, 'x', sizeof s.db_url), "db_url");
  CASE(memset(s.base_dir, 'x', sizeof s.base_dir), "base_dir");
  CASE(s.base_dir[0] = '\0', "base_dir");
  CASE(s.default_timeout_ms = -1, "default_timeout_ms");
  CASE(s.default_max_retries = -1, "default_max_retries");
  CASE(s.lease_ms = 0, "lease_ms");
  CASE(s.result_ttl_ms = -1, "result_ttl_ms");
  CASE(s.result_ttl_ms = INT64_MAX, "result_ttl_ms");
  CASE(s.retry_base_ms = 0, "retry_base_ms");
  CASE(s.retry_cap_ms = 0, "retry_cap_ms");
  CASE((s.retry_base_ms = 5000, s.retry_cap_ms = 4000), "retry_cap_ms");
  CASE(s.serializer = 2, "serializer");
  CASE(s.log_level = 25, "log_level");
  CASE(s.log_format = -1, "log_format");
  CASE(s.fsync = 2, "fsync");
  CASE(s.task_ttl_ms = -1, "task_ttl_ms");
  CASE(s.task_ttl_ms = INT64_MAX, "task_ttl_ms");
  CASE(s.crash_budget = -1, "crash_budget");
#undef CASE
  assert_int_equal(omniq__settings_validate(NULL, NULL, 0), OMNIQ_ECONFIG);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_init_fills_every_default, setup, teardown),
      cmocka_unit_test_setup_teardown(test_empty_environment_changes_nothing, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_accepts_registered_names_only, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_db_url_and_base_dir_take_text_up_to_their_size,
                                      setup, teardown),
      cmocka_unit_test_setup_teardown(test_timeout_accepts_decimal_seconds_and_zero, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_timeout_rejects_non_number, setup, teardown),
      cmocka_unit_test_setup_teardown(test_max_retries_accepts_whole_numbers_only, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_lease_must_be_more_than_zero, setup, teardown),
      cmocka_unit_test_setup_teardown(test_result_ttl_accepts_zero_and_more, setup, teardown),
      cmocka_unit_test_setup_teardown(test_task_ttl_takes_seconds_and_zero_keeps_forever, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_crash_budget_takes_whole_numbers, setup, teardown),
      cmocka_unit_test_setup_teardown(test_serializer_is_json_or_raw, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_level_takes_names_in_any_case, setup, teardown),
      cmocka_unit_test_setup_teardown(test_log_format_is_text_or_json, setup, teardown),
      cmocka_unit_test_setup_teardown(test_retry_base_and_cap_are_positive_seconds, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_retry_cap_below_base_is_refused, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fsync_takes_zero_one_true_false, setup, teardown),
      cmocka_unit_test_setup_teardown(test_one_bad_variable_leaves_struct_unchanged, setup,
                                      teardown),
      cmocka_unit_test_setup_teardown(test_all_variables_apply_together, setup, teardown),
      cmocka_unit_test_setup_teardown(test_from_env_rejects_null_settings, setup, teardown),
      cmocka_unit_test(test_parse_seconds_reads_plain_decimals_only),
      cmocka_unit_test(test_validate_refuses_each_out_of_range_field),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
