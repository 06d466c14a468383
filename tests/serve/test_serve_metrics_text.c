/* SPDX-License-Identifier: MIT */
/* cli/metrics.c on its own: label escaping and the histogram's lines, which
 * the end-to-end tests cannot reach (queue names hold no quotes today, and
 * the pool's timings are whatever the machine took). The histogram is fed
 * here by a stand-in for serve_worker.c's counters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "serve.h"

/* ---- a stand-in for serve_worker.c ------------------------------------------ */

const double serve_run_bucket_le[SERVE_RUN_BUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                       0.5,   1,    2.5,   5,    10,  30,
                                                       60,    300,  900,   3600};
struct serve_runs {
  int unused;
};

/* Two succeeded runs (0.003 s, 0.2 s), one failed (7200 s: past every bucket). */
void serve_runs_read(serve_runs_t *r, uint64_t counts[SERVE_RUN_OUTCOMES][SERVE_RUN_BUCKETS],
                     uint64_t total[SERVE_RUN_OUTCOMES], double sum_s[SERVE_RUN_OUTCOMES]) {
  for (int b = 0; b < SERVE_RUN_BUCKETS; b++) {
    counts[0][b] = 1 + (serve_run_bucket_le[b] >= 0.2);
    counts[1][b] = 0;
  }
  total[0] = 2;
  total[1] = 1;
  sum_s[0] = 0.203;
  sum_s[1] = 7200;
}

/* ---- helpers ------------------------------------------------------------------ */

typedef struct {
  char *text;
  size_t len;
  FILE *f;
} sink_t;

static void sink_open(sink_t *s) {
  s->text = NULL;
  s->f = open_memstream(&s->text, &s->len);
  assert_non_null(s->f);
}

static char *sink_close(sink_t *s) {
  assert_int_equal(fclose(s->f), 0);
  return s->text;
}

/* An empty store's statistics: no queue, so only the process's families. */
static omniq_stats_t *empty_stats(omniq_t **oq) {
  omniq_settings_t s;
  omniq_stats_t *st = NULL;
  omniq_settings_init(&s);
  snprintf(s.backend, sizeof s.backend, "sqlite");
  snprintf(s.db_url, sizeof s.db_url, ":memory:");
  s.log_level = OMNIQ_LOG_ERROR;
  assert_int_equal(omniq_open(oq, &s), OMNIQ_OK);
  assert_int_equal(omniq_stats(*oq, &st), OMNIQ_OK);
  return st;
}

/* ---- tests ---------------------------------------------------------------------- */

static void test_label_values_escape_backslash_quote_and_newline(void **state) {
  sink_t s;
  sink_open(&s);
  serve_metrics_label(s.f, "a\"b\\c\nd e{}=,");
  char *text = sink_close(&s);
  assert_string_equal(text, "a\\\"b\\\\c\\nd e{}=,");
  free(text);
}

static void test_histogram_is_cumulative_and_ends_with_inf_sum_and_count(void **state) {
  omniq_t *oq;
  omniq_stats_t *st = empty_stats(&oq);
  serve_runs_t runs;
  sink_t s;
  sink_open(&s);
  assert_int_equal(serve_metrics_write(s.f, st, 12, &runs), 0);
  char *text = sink_close(&s);
  static const char *const want[] = {
      "# TYPE omniq_run_duration_seconds histogram\n",
      "omniq_run_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.005\"} 1\n",
      "omniq_run_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.1\"} 1\n",
      "omniq_run_duration_seconds_bucket{outcome=\"succeeded\",le=\"0.25\"} 2\n",
      "omniq_run_duration_seconds_bucket{outcome=\"succeeded\",le=\"3600\"} 2\n",
      "omniq_run_duration_seconds_bucket{outcome=\"succeeded\",le=\"+Inf\"} 2\n",
      "omniq_run_duration_seconds_sum{outcome=\"succeeded\"} 0.203\n",
      "omniq_run_duration_seconds_count{outcome=\"succeeded\"} 2\n",
      "omniq_run_duration_seconds_bucket{outcome=\"failed\",le=\"3600\"} 0\n",
      "omniq_run_duration_seconds_bucket{outcome=\"failed\",le=\"+Inf\"} 1\n",
      "omniq_run_duration_seconds_sum{outcome=\"failed\"} 7200\n",
      "omniq_run_duration_seconds_count{outcome=\"failed\"} 1\n",
      "omniq_stats_duration_seconds 0.012\n",
  };
  for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
    if (strstr(text, want[i]) == NULL) fail_msg("missing: %s\nin:\n%s", want[i], text);
  /* The +Inf bucket comes after every finite one of its outcome. */
  assert_true(strstr(text, "le=\"3600\"} 2") < strstr(text, "le=\"+Inf\"} 2"));
  assert_null(strstr(text, "omniq_tasks{")); /* no queue, no task samples */
  free(text);
  omniq_stats_free(st);
  omniq_close(oq);
}

static void test_without_a_pool_there_is_no_histogram(void **state) {
  omniq_t *oq;
  omniq_stats_t *st = empty_stats(&oq);
  sink_t s;
  sink_open(&s);
  assert_int_equal(serve_metrics_write(s.f, st, 0, NULL), 0);
  char *text = sink_close(&s);
  assert_null(strstr(text, "omniq_run_duration_seconds"));
  assert_non_null(strstr(text, "# TYPE omniq_tasks gauge\n"));
  assert_non_null(strstr(text, "# TYPE omniq_runs_total counter\n"));
  free(text);
  omniq_stats_free(st);
  omniq_close(oq);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_label_values_escape_backslash_quote_and_newline),
      cmocka_unit_test(test_histogram_is_cumulative_and_ends_with_inf_sum_and_count),
      cmocka_unit_test(test_without_a_pool_there_is_no_histogram),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
