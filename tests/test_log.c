/* SPDX-License-Identifier: MIT */
/* Logging: level filtering, the text and JSON line forms, the user sink, and
 * whole lines under concurrent logging (to the sink and to stderr). */
#include "support/helpers.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"

#define TS "2027-01-15T08:00:00.000Z" /* TH_EPOCH_MS */
#define ID "01890a5d-ac96-774b-bcce-b302099a8057"

/* A sink that keeps every line it receives. */
typedef struct sink {
  pthread_mutex_t lock;
  size_t n;
  char *lines[4096];
  int levels[4096];
} sink_t;

static void sink_fn(void *userdata, int level, const char *line) {
  sink_t *k = userdata;
  pthread_mutex_lock(&k->lock);
  if (k->n < sizeof k->lines / sizeof k->lines[0]) {
    k->levels[k->n] = level;
    k->lines[k->n++] = strdup(line);
  }
  pthread_mutex_unlock(&k->lock);
}

typedef struct fixture {
  th_clock_t clock;
  omniq_settings_t settings;
  omniq__log_t log;
  sink_t sink;
} fixture_t;

static int setup(void **state) {
  fixture_t *f = calloc(1, sizeof *f);
  if (f == NULL) return -1;
  pthread_mutex_init(&f->sink.lock, NULL);
  th_clock_init(&f->clock, TH_EPOCH_MS);
  omniq_settings_init(&f->settings);
  f->settings.clock_fn = th_clock_now;
  f->settings.clock_userdata = &f->clock;
  f->settings.log_fn = sink_fn;
  f->settings.log_userdata = &f->sink;
  omniq__log_init(&f->log, &f->settings);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  fixture_t *f = *state;
  for (size_t i = 0; i < f->sink.n; i++) free(f->sink.lines[i]);
  pthread_mutex_destroy(&f->sink.lock);
  free(f);
  return 0;
}

/* Re-reads the settings after a test changed them. */
static void reinit(fixture_t *f, int level, int format) {
  f->settings.log_level = level;
  f->settings.log_format = format;
  omniq__log_init(&f->log, &f->settings);
}

/* Parses a JSON line, failing the test if it is not one object. */
static json_t *parse_line(const char *line) {
  json_error_t err;
  json_t *j = json_loads(line, 0, &err);
  if (j == NULL || !json_is_object(j))
    fail_msg("not a JSON object (%s): %s", j == NULL ? err.text : "wrong type", line);
  return j;
}

static void test_debug_line_dropped_at_info(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_TEXT);
  omniq__log(&f->log, OMNIQ_LOG_DEBUG, "task.claimed", ID, "attempt %d", 1);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "task.enqueued", ID, NULL);
  omniq__log(&f->log, OMNIQ_LOG_WARNING, "task.retry", ID, NULL);
  omniq__log(&f->log, OMNIQ_LOG_ERROR, "task.failed", ID, NULL);
  assert_int_equal(f->sink.n, 3);
  assert_int_equal(f->sink.levels[0], OMNIQ_LOG_INFO);
  assert_int_equal(f->sink.levels[1], OMNIQ_LOG_WARNING);
  assert_int_equal(f->sink.levels[2], OMNIQ_LOG_ERROR);
  assert_null(strstr(f->sink.lines[0], "task.claimed"));
}

static void test_error_level_keeps_only_errors(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_ERROR, OMNIQ_LOG_TEXT);
  omniq__log(&f->log, OMNIQ_LOG_DEBUG, "a", NULL, NULL);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "b", NULL, NULL);
  omniq__log(&f->log, OMNIQ_LOG_WARNING, "c", NULL, NULL);
  omniq__log(&f->log, OMNIQ_LOG_ERROR, "d", NULL, NULL);
  assert_int_equal(f->sink.n, 1);
  assert_string_equal(f->sink.lines[0], TS " ERROR d");
}

static void test_debug_level_keeps_everything(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_DEBUG, OMNIQ_LOG_TEXT);
  omniq__log(&f->log, OMNIQ_LOG_DEBUG, "a", NULL, NULL);
  omniq__log(&f->log, OMNIQ_LOG_ERROR, "b", NULL, NULL);
  assert_int_equal(f->sink.n, 2);
}

static void test_text_line_has_time_level_event_id_and_message(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_TEXT);
  th_clock_advance(&f->clock, 123);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "task.enqueued", ID, "func=%s queue=%s", "add", "default");
  assert_int_equal(f->sink.n, 1);
  assert_string_equal(f->sink.lines[0], "2027-01-15T08:00:00.123Z INFO task.enqueued id=" ID
                                        " func=add queue=default");
}

static void test_text_line_leaves_out_missing_id_and_message(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_TEXT);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "worker.started", NULL, NULL);
  omniq__log(&f->log, OMNIQ_LOG_WARNING, "lease.recovered", NULL, "%d task(s)", 2);
  assert_int_equal(f->sink.n, 2);
  assert_string_equal(f->sink.lines[0], TS " INFO worker.started");
  assert_string_equal(f->sink.lines[1], TS " WARNING lease.recovered 2 task(s)");
}

static void test_text_line_stays_one_line(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_TEXT);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "task.failed", ID, "boom\nsecond line\r\tend");
  assert_int_equal(f->sink.n, 1);
  assert_null(strchr(f->sink.lines[0], '\n'));
  assert_null(strchr(f->sink.lines[0], '\r'));
  assert_non_null(strstr(f->sink.lines[0], "boom second line  end"));
}

static void test_json_line_parses_with_expected_keys(void **state) {
  fixture_t *f = *state;
  static const char *const keys[] = {"ts", "level", "event", "task_id", "msg"};
  size_t i = 0;
  const char *key;
  json_t *value;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "task.succeeded", ID, "in %d ms", 12);
  assert_int_equal(f->sink.n, 1);
  json_t *j = parse_line(f->sink.lines[0]);
  assert_int_equal(json_object_size(j), 5);
  json_object_foreach(j, key, value) {
    assert_string_equal(key, keys[i++]);
    assert_true(json_is_string(value));
  }
  assert_string_equal(json_string_value(json_object_get(j, "ts")), TS);
  assert_string_equal(json_string_value(json_object_get(j, "level")), "INFO");
  assert_string_equal(json_string_value(json_object_get(j, "event")), "task.succeeded");
  assert_string_equal(json_string_value(json_object_get(j, "task_id")), ID);
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "in 12 ms");
  json_decref(j);
}

static void test_json_line_omits_task_id_when_null(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "worker.stopped", NULL, NULL);
  json_t *j = parse_line(f->sink.lines[0]);
  assert_int_equal(json_object_size(j), 4);
  assert_null(json_object_get(j, "task_id"));
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "");
  json_decref(j);
}

static void test_json_line_escapes_quotes_backslashes_and_newlines(void **state) {
  fixture_t *f = *state;
  const char *msg = "say \"hi\"\\ then\nnew line\tand \x01";
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "task.failed", ID, "%s", msg);
  assert_null(strchr(f->sink.lines[0], '\n'));
  json_t *j = parse_line(f->sink.lines[0]);
  assert_string_equal(json_string_value(json_object_get(j, "msg")), msg);
  json_decref(j);
}

static void test_json_line_survives_bytes_that_are_not_utf8(void **state) {
  fixture_t *f = *state;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "store.opened", NULL, "path=/tmp/caf\xe9");
  assert_int_equal(f->sink.n, 1);
  json_t *j = parse_line(f->sink.lines[0]);
  assert_string_equal(json_string_value(json_object_get(j, "msg")), "path=/tmp/caf?");
  json_decref(j);
}

static void test_json_line_longer_than_the_buffer_is_whole(void **state) {
  fixture_t *f = *state;
  char msg[1000];
  /* Each control byte becomes a six-byte \u escape: ~6 KB of JSON. */
  memset(msg, 0x01, sizeof msg - 1);
  msg[sizeof msg - 1] = '\0';
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  omniq__log(&f->log, OMNIQ_LOG_INFO, "task.failed", ID, "%s", msg);
  assert_int_equal(f->sink.n, 1);
  assert_true(strlen(f->sink.lines[0]) > 6 * (sizeof msg - 1));
  json_t *j = parse_line(f->sink.lines[0]);
  assert_string_equal(json_string_value(json_object_get(j, "msg")), msg);
  json_decref(j);
}

static void test_init_reads_settings_and_keeps_their_clock(void **state) {
  fixture_t *f = *state;
  omniq__log_t lg;
  assert_int_equal(f->log.level, f->settings.log_level);
  assert_int_equal(f->log.format, f->settings.log_format);
  assert_ptr_equal(f->log.fn, sink_fn);
  assert_ptr_equal(f->log.userdata, &f->sink);
  assert_ptr_equal(f->log.clock, &f->settings);
  omniq__log_init(&lg, NULL);
  assert_int_equal(lg.level, OMNIQ_DEFAULT_LOG_LEVEL);
  assert_int_equal(lg.format, OMNIQ_DEFAULT_LOG_FORMAT);
  assert_null(lg.fn);
  assert_null(lg.clock);
  omniq__log(NULL, OMNIQ_LOG_ERROR, "ignored", NULL, NULL); /* a no-op */
}

static void test_level_names_parse_in_any_case(void **state) {
  int level = 0;
  (void)state;
  assert_int_equal(omniq__log_level_parse("debug", &level), OMNIQ_OK);
  assert_int_equal(level, OMNIQ_LOG_DEBUG);
  assert_int_equal(omniq__log_level_parse("Info", &level), OMNIQ_OK);
  assert_int_equal(level, OMNIQ_LOG_INFO);
  assert_int_equal(omniq__log_level_parse("WARNING", &level), OMNIQ_OK);
  assert_int_equal(level, OMNIQ_LOG_WARNING);
  assert_int_equal(omniq__log_level_parse("error", &level), OMNIQ_OK);
  assert_int_equal(level, OMNIQ_LOG_ERROR);
  assert_int_equal(omniq__log_level_parse("LOUD", &level), OMNIQ_EINVAL);
  assert_int_equal(omniq__log_level_parse(NULL, &level), OMNIQ_EINVAL);
  assert_string_equal(omniq__log_level_name(OMNIQ_LOG_WARNING), "WARNING");
  assert_string_equal(omniq__log_level_name(25), "UNKNOWN");
}

/* ---- concurrency ------------------------------------------------------------ */

#define THREADS 4
#define LINES_PER_THREAD 500

typedef struct worker_arg {
  const omniq__log_t *log;
  pthread_barrier_t *start;
  int index;
} worker_arg_t;

/* Logs LINES_PER_THREAD JSON lines once every thread is ready, so the
 * threads really do log at the same time. */
static void *log_many(void *p) {
  worker_arg_t *a = p;
  pthread_barrier_wait(a->start);
  for (int i = 0; i < LINES_PER_THREAD; i++)
    omniq__log(a->log, OMNIQ_LOG_INFO, "task.enqueued", ID, "thread=%d line=%d %s", a->index,
               i, "a message long enough that a torn write would show in the middle of it");
  return NULL;
}

static void run_threads(const omniq__log_t *lg) {
  pthread_t threads[THREADS];
  worker_arg_t args[THREADS];
  pthread_barrier_t start;
  pthread_barrier_init(&start, NULL, THREADS);
  for (int i = 0; i < THREADS; i++) {
    args[i] = (worker_arg_t){lg, &start, i};
    assert_int_equal(pthread_create(&threads[i], NULL, log_many, &args[i]), 0);
  }
  for (int i = 0; i < THREADS; i++) pthread_join(threads[i], NULL);
  pthread_barrier_destroy(&start);
}

/* Checks one line from log_many and counts it for its thread. */
static void count_line(const char *line, int per_thread[THREADS]) {
  int thread = -1, index = -1;
  json_t *j = parse_line(line);
  const char *msg = json_string_value(json_object_get(j, "msg"));
  assert_non_null(msg);
  assert_int_equal(sscanf(msg, "thread=%d line=%d", &thread, &index), 2);
  assert_in_range(thread, 0, THREADS - 1);
  assert_int_equal(index, per_thread[thread]); /* one thread's lines keep their order */
  per_thread[thread]++;
  json_decref(j);
}

static void test_callback_gets_one_whole_line_per_event_from_many_threads(void **state) {
  fixture_t *f = *state;
  int per_thread[THREADS] = {0};
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  run_threads(&f->log);
  assert_int_equal(f->sink.n, THREADS * LINES_PER_THREAD);
  for (size_t i = 0; i < f->sink.n; i++) count_line(f->sink.lines[i], per_thread);
  for (int t = 0; t < THREADS; t++) assert_int_equal(per_thread[t], LINES_PER_THREAD);
}

static void test_stderr_lines_stay_whole_under_concurrent_logging(void **state) {
  fixture_t *f = *state;
  int per_thread[THREADS] = {0};
  size_t lines = 0, cap = 0;
  char *line = NULL;
  char *dir = th_tmpdir();
  char path[512];
  assert_non_null(dir);
  snprintf(path, sizeof path, "%s/stderr.log", dir);

  /* Point fd 2 at a file for the duration of the run; no assertion may
   * print while it is redirected. */
  FILE *capture = fopen(path, "w+");
  assert_non_null(capture);
  int saved = dup(STDERR_FILENO);
  assert_true(saved >= 0);
  fflush(stderr);
  dup2(fileno(capture), STDERR_FILENO);
  f->settings.log_fn = NULL;
  reinit(f, OMNIQ_LOG_INFO, OMNIQ_LOG_JSON);
  run_threads(&f->log);
  fflush(stderr);
  dup2(saved, STDERR_FILENO);
  close(saved);

  rewind(capture);
  while (getline(&line, &cap, capture) > 0) {
    size_t len = strlen(line);
    assert_true(len > 0 && line[len - 1] == '\n');
    line[len - 1] = '\0';
    count_line(line, per_thread);
    lines++;
  }
  free(line);
  fclose(capture);
  th_rmtree(dir);
  assert_int_equal(lines, THREADS * LINES_PER_THREAD);
  for (int t = 0; t < THREADS; t++) assert_int_equal(per_thread[t], LINES_PER_THREAD);
}

int main(void) {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
  const struct CMUnitTest tests[] = {
      T(test_debug_line_dropped_at_info),
      T(test_error_level_keeps_only_errors),
      T(test_debug_level_keeps_everything),
      T(test_text_line_has_time_level_event_id_and_message),
      T(test_text_line_leaves_out_missing_id_and_message),
      T(test_text_line_stays_one_line),
      T(test_json_line_parses_with_expected_keys),
      T(test_json_line_omits_task_id_when_null),
      T(test_json_line_escapes_quotes_backslashes_and_newlines),
      T(test_json_line_survives_bytes_that_are_not_utf8),
      T(test_json_line_longer_than_the_buffer_is_whole),
      T(test_init_reads_settings_and_keeps_their_clock),
      T(test_level_names_parse_in_any_case),
      T(test_callback_gets_one_whole_line_per_event_from_many_threads),
      T(test_stderr_lines_stay_whole_under_concurrent_logging),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
