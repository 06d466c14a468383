/* SPDX-License-Identifier: MIT */
/* omniq serve's routes: the JSON API the page uses, /metrics, and the
 * page's embedded assets. docs/monitoring.md documents each route.
 *
 *   GET  /metrics                    Prometheus text (metrics.c)
 *   GET  /api/overview               queues: counts, paused, rate, totals
 *   GET  /api/throughput             the last hour of samples, for the chart
 *   GET  /api/tasks?FILTERS          one page of omniq_list_tasks
 *   GET  /api/tasks/ID               one task, its last error and result
 *   POST /api/tasks/ID/retry|cancel|delete
 *   POST /api/queues/NAME/pause|resume
 *   GET  /, /app.js, /style.css      the page
 *
 * Cost per call, whatever the store's size: overview and throughput read
 * the sampler's copy (sampler.c); a task list is one page from an index
 * (the library's own contract for omniq_list_tasks); one task is a lookup
 * by id. Only /metrics waits for a count, which the sampler takes for it.
 *
 * Inputs. Every parameter, id, queue name, cursor and limit is checked here
 * before the library sees it, and the library checks again; a bad one is a
 * 400 whose message names it, as is a parameter we do not know or one given
 * twice. What a client sent is echoed in messages only as printable ASCII.
 *
 * Secrets. A task's args and kwargs and a result's value are left out of
 * every reply unless the server was started with --show-args: they are the
 * user's data and may hold credentials. Errors, messages and tracebacks are
 * shown: they are what the page is for. */
#include <ctype.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "command_task.h"
#include "duration.h"
#include "http.h"
#include "output.h"

enum {
  HTTP_OK = 200,
  HTTP_BAD_REQUEST = 400,
  HTTP_NOT_FOUND = 404,
  HTTP_METHOD_NOT_ALLOWED = 405,
  HTTP_CONFLICT = 409,
  HTTP_SERVER_ERROR = 500,
  HTTP_NOT_IMPLEMENTED = 501
};

#define CURSOR_MAX 128
#define LIST_MESSAGE_MAX 300 /* bytes of an error message in a task list */

static const char *const run_kinds[OMNIQ_RUNS_KINDS] = {"succeeded", "failed", "retried",
                                                        "lost"};

/* ---- small helpers ---------------------------------------------------------- */

/* Client input as it may appear in a message: printable ASCII, at most 60. */
static const char *shown(const char *s, char out[64]) {
  size_t i = 0;
  for (; s != NULL && s[i] != '\0' && i < 60; i++)
    out[i] = s[i] >= 0x20 && s[i] < 0x7f ? s[i] : '?';
  out[i] = '\0';
  return out;
}

/* Text from the store as JSON; bytes that are not UTF-8 (a handler may
 * fail with any bytes) become '?' rather than losing the reply. */
static json_t *text_json(const char *s) {
  if (s == NULL) return json_null();
  json_t *j = json_string(s);
  if (j != NULL) return j;
  char *copy = strdup(s);
  if (copy == NULL) return NULL;
  for (char *p = copy; *p != '\0'; p++)
    if ((unsigned char)*p >= 0x80) *p = '?';
  j = json_string(copy);
  free(copy);
  return j;
}

static json_t *time_json(int64_t ms) {
  char buf[CLI_TIME_SIZE];
  if (ms <= 0) return json_null();
  cli_format_time(ms, buf);
  return json_string(buf);
}

static int is_task_id(const char *s) {
  if (strlen(s) != OMNIQ_ID_LEN) return 0;
  for (int i = 0; i < OMNIQ_ID_LEN; i++)
    if (i == 8 || i == 13 || i == 18 || i == 23 ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
      return 0;
  return 1;
}

static int is_queue_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n >= OMNIQ_NAME_MAX) return 0;
  return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/* 1..max bytes of UTF-8 without control characters. */
static int is_text(const char *s, size_t max) {
  size_t n = strlen(s);
  if (n == 0 || n > max) return 0;
  for (size_t i = 0; i < n; i++)
    if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) return 0;
  json_t *j = json_string(s); /* jansson checks UTF-8 */
  json_decref(j);
  return j != NULL;
}

static unsigned status_for(int rc) {
  switch (rc) {
  case OMNIQ_EINVAL:
    return HTTP_BAD_REQUEST;
  case OMNIQ_ENOTFOUND:
    return HTTP_NOT_FOUND;
  case OMNIQ_ESTATE:
  case OMNIQ_EEXISTS:
    return HTTP_CONFLICT;
  case OMNIQ_ENOTSUP:
    return HTTP_NOT_IMPLEMENTED;
  default:
    return HTTP_SERVER_ERROR;
  }
}

/* A failed library call: its message, after what we were doing unless it
 * is about a value the client sent (a 400 says what was wrong with it). */
static void reply_call(http_reply_t *r, const serve_t *sv, int rc, const char *what) {
  const char *msg = omniq_errmsg(sv->oq);
  if (msg == NULL || msg[0] == '\0') msg = omniq_strerror(rc);
  if (rc == OMNIQ_EINVAL)
    http_reply_error(r, HTTP_BAD_REQUEST, "%s", msg);
  else
    http_reply_error(r, status_for(rc), "%s: %s", what, msg);
}

/* ---- JSON forms --------------------------------------------------------------- */

/* The six TaskError keys, the message cut to max bytes (0 = whole) on a
 * character boundary. */
static json_t *error_json(const omniq_task_error_t *e, size_t max) {
  if (e == NULL) return json_null();
  const char *msg = omniq_error_message(e);
  char cut[LIST_MESSAGE_MAX + 1];
  if (max > 0 && msg != NULL && strlen(msg) > max) {
    size_t n = max;
    while (n > 0 && ((unsigned char)msg[n] & 0xC0) == 0x80) n--;
    memcpy(cut, msg, n);
    cut[n] = '\0';
    msg = cut;
  }
  return json_pack("{s:o*, s:o*, s:o, s:o*, s:i, s:b}", "error_type",
                   text_json(omniq_error_type(e)), "message", text_json(msg), "timestamp",
                   time_json(omniq_error_timestamp(e)), "traceback",
                   max > 0 ? json_null() : text_json(omniq_error_traceback(e)), "retry_count",
                   omniq_error_retry_count(e), "is_retryable", omniq_error_is_retryable(e));
}

/* A task in a list: no args, the error's message cut short and no
 * traceback (the task's own route has them whole). */
static json_t *task_summary(const omniq_task_t *t) {
  return json_pack("{s:s, s:o*, s:s, s:s, s:i, s:i, s:i, s:o, s:o, s:o, s:o, s:o*}", "id",
                   omniq_task_id(t), "func", text_json(omniq_task_func(t)), "queue",
                   omniq_task_queue(t), "status", omniq_status_name(omniq_task_status(t)),
                   "attempts", omniq_task_attempts(t), "max_retries",
                   omniq_task_max_retries(t), "priority", omniq_task_priority(t), "eta",
                   time_json(omniq_task_eta(t)), "created_at",
                   time_json(omniq_task_created_at(t)), "started_at",
                   time_json(omniq_task_started_at(t)), "finished_at",
                   time_json(omniq_task_finished_at(t)), "last_error",
                   error_json(omniq_task_last_error(t), LIST_MESSAGE_MAX));
}

/* Stored JSON embedded as JSON, or as a string if it does not parse (the
 * raw serializer). */
static json_t *embed(const char *text) {
  if (text == NULL) return json_null();
  json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
  return j != NULL ? j : text_json(text);
}

/* The keys of `omniq show --json`, and more; args and kwargs only with
 * --show-args. */
static json_t *task_detail(const serve_t *sv, const omniq_task_t *t) {
  json_t *j = task_summary(t);
  if (j == NULL) return NULL;
  json_object_set_new(j, "last_error", error_json(omniq_task_last_error(t), 0));
  json_object_set_new(j, "interval_ms", json_integer(omniq_task_interval(t)));
  json_object_set_new(j, "timeout_ms", json_integer(omniq_task_timeout(t)));
  json_object_set_new(j, "cron", text_json(omniq_task_cron(t)));
  json_object_set_new(j, "unique_key", text_json(omniq_task_unique_key(t)));
  json_object_set_new(j, "crashes", json_integer(omniq_task_crashes(t)));
  json_object_set_new(j, "command", json_boolean(strcmp(omniq_task_func(t), CLI_COMMAND_FUNC) == 0));
  if (sv->show_args) {
    json_object_set_new(j, "args", embed(omniq_task_args(t)));
    json_object_set_new(j, "kwargs", embed(omniq_task_kwargs(t)));
  }
  return j;
}

static json_t *result_json(const serve_t *sv, const omniq_result_t *r) {
  json_t *j = json_pack("{s:s, s:s, s:o*, s:i, s:o, s:o}", "task_id", omniq_result_task_id(r),
                        "status", omniq_status_name(omniq_result_status(r)), "error",
                        error_json(omniq_result_error(r), 0), "attempts",
                        omniq_result_attempts(r), "finished_at",
                        time_json(omniq_result_finished_at(r)), "last_attempt_at",
                        time_json(omniq_result_last_attempt_at(r)));
  if (j != NULL && sv->show_args) json_object_set_new(j, "value", embed(omniq_result_value(r)));
  return j;
}

/* ---- reads ----------------------------------------------------------------------- */

typedef struct {
  serve_runs_t *runs;
  char *text;
  size_t len;
  const char *error; /* set when there are no numbers to show */
} metrics_arg_t;

/* Under the sampler's lock, with a sample newer than the request. */
static void *metrics_text(const omniq_stats_t *st, int64_t taken_ms, int64_t cost_ms,
                          const char *error, void *arg) {
  metrics_arg_t *m = arg;
  if (error[0] != '\0' || st == NULL) {
    m->error = error[0] != '\0' ? error : "no sample";
    return NULL;
  }
  FILE *f = open_memstream(&m->text, &m->len);
  int bad = f == NULL || serve_metrics_write(f, st, cost_ms, m->runs) != 0;
  if (f != NULL) bad |= fclose(f) != 0;
  if (bad) m->error = "out of memory";
  return NULL;
}

/* A scrape waits for a count that started after it arrived (shared with
 * the page and with scrapes arriving together: sampler.c). */
static void get_metrics(serve_t *sv, const http_req_t *rq, const char *arg, http_reply_t *r) {
  metrics_arg_t m = {sv->runs, NULL, 0, NULL};
  serve_sampler_fresh(sv->sampler, metrics_text, &m);
  if (m.error != NULL) {
    free(m.text);
    http_reply_error(r, HTTP_SERVER_ERROR, "cannot count the store: %s", m.error);
    return;
  }
  r->type = "text/plain; version=0.0.4; charset=utf-8";
  r->body = m.text;
  r->len = m.len;
}

static json_t *by_status(const int64_t counts[OMNIQ_STATUS_COUNT]) {
  json_t *j = json_object();
  for (int s = 0; j != NULL && s < OMNIQ_STATUS_COUNT; s++)
    json_object_set_new(j, omniq_status_name(s), json_integer(counts[s]));
  return j;
}

static json_t *by_run_kind(const int64_t runs[OMNIQ_RUNS_KINDS]) {
  json_t *j = json_object();
  for (int k = 0; j != NULL && k < OMNIQ_RUNS_KINDS; k++)
    json_object_set_new(j, run_kinds[k], json_integer(runs[k]));
  return j;
}

static json_t *queue_json(const omniq_queue_info_t *q, int64_t counts[OMNIQ_STATUS_COUNT],
                          int64_t runs[OMNIQ_RUNS_KINDS]) {
  for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) counts[s] = omniq_queue_info_count(q, s);
  for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) runs[k] = omniq_queue_info_runs(q, k);
  return json_pack("{s:s, s:b, s:o, s:I, s:{s:I, s:I}, s:o}", "name", omniq_queue_info_name(q),
                   "paused", omniq_queue_info_paused(q), "counts", by_status(counts),
                   "oldest_due_ms", (json_int_t)omniq_queue_info_oldest_due_ms(q), "rate",
                   "limit", (json_int_t)omniq_queue_info_rate_limit(q), "period_ms",
                   (json_int_t)omniq_queue_info_rate_period_ms(q), "runs", by_run_kind(runs));
}

/* Under the sampler's lock: only builds JSON from its copy. */
static void *overview_json(const omniq_stats_t *st, int64_t taken_ms, int64_t cost_ms,
                           const char *error, void *arg) {
  const serve_t *sv = arg;
  int64_t counts[OMNIQ_STATUS_COUNT], runs[OMNIQ_RUNS_KINDS];
  int64_t all_counts[OMNIQ_STATUS_COUNT] = {0}, all_runs[OMNIQ_RUNS_KINDS] = {0};
  json_t *queues = json_array();
  for (size_t i = 0; queues != NULL && st != NULL && i < omniq_stats_count(st); i++) {
    json_array_append_new(queues, queue_json(omniq_stats_queue(st, i), counts, runs));
    for (int s = 0; s < OMNIQ_STATUS_COUNT; s++) all_counts[s] += counts[s];
    for (int k = 0; k < OMNIQ_RUNS_KINDS; k++) all_runs[k] += runs[k];
  }
  return json_pack("{s:s, s:b, s:b, s:o, s:I, s:I, s:o, s:o, s:{s:o, s:o}}", "version",
                   OMNIQ_VERSION_STRING, "read_only", sv->token[0] == '\0', "show_args",
                   sv->show_args, "sampled_at", time_json(st != NULL ? taken_ms : 0),
                   "sample_cost_ms", (json_int_t)cost_ms, "sample_interval_ms",
                   (json_int_t)sv->sample_ms, "sample_error",
                   error[0] != '\0' ? text_json(error) : json_null(), "queues", queues,
                   "totals", "counts", by_status(all_counts), "runs", by_run_kind(all_runs));
}

static void get_overview(serve_t *sv, const http_req_t *rq, const char *arg, http_reply_t *r) {
  http_reply_json(r, HTTP_OK, serve_sampler_with_stats(sv->sampler, overview_json, sv));
}

static void get_throughput(serve_t *sv, const http_req_t *rq, const char *arg, http_reply_t *r) {
  serve_sample_t *xs;
  int64_t interval;
  long n = serve_sampler_series(sv->sampler, cli_now_ms() - SERVE_WINDOW_MS, &xs, &interval);
  json_t *samples = json_array();
  for (long i = 0; samples != NULL && i < n; i++) {
    const serve_sample_t *x = &xs[i];
    json_array_append_new(samples, json_pack("[I, I, I, I, I, I, I]", (json_int_t)x->t_ms,
                                             (json_int_t)x->runs[0], (json_int_t)x->runs[1],
                                             (json_int_t)x->runs[2], (json_int_t)x->runs[3],
                                             (json_int_t)x->counts[OMNIQ_PENDING],
                                             (json_int_t)x->counts[OMNIQ_RUNNING]));
  }
  free(xs);
  if (n < 0) {
    json_decref(samples);
    http_reply_error(r, HTTP_SERVER_ERROR, "out of memory");
    return;
  }
  http_reply_json(r, HTTP_OK,
                  json_pack("{s:I, s:I, s:[s, s, s, s, s, s, s], s:o}", "interval_ms",
                            (json_int_t)interval, "window_ms", (json_int_t)SERVE_WINDOW_MS,
                            "fields", "t_ms", "succeeded", "failed", "retried", "lost",
                            "pending", "running", "samples", samples));
}

/* ---- task lists ------------------------------------------------------------------ */

static const char *const list_keys[] = {"status",      "queue",       "func",
                                        "created_from", "created_to",  "finished_from",
                                        "finished_to",  "limit",       "cursor",
                                        "order"};
#define NLIST_KEYS (sizeof list_keys / sizeof list_keys[0])

typedef struct {
  omniq_list_opts_t o;
  unsigned seen; /* bit i: list_keys[i] */
  char msg[256];
} list_params_t;

static int bad(list_params_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(list_params_t *p, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->msg, sizeof p->msg, fmt, ap);
  va_end(ap);
  return 1;
}

static int parse_statuses(list_params_t *p, const char *value) {
  char one[16], x[64];
  for (const char *s = value;; s++) {
    size_t n = strcspn(s, ",");
    int st;
    if (n == 0 || n >= sizeof one)
      return bad(p, "status: '%s' is not a list of statuses (FAILED,CANCELLED)", shown(value, x));
    for (size_t i = 0; i < n; i++) one[i] = (char)toupper((unsigned char)s[i]);
    one[n] = '\0';
    if (omniq_status_parse(one, &st) != OMNIQ_OK)
      return bad(p, "status: '%s' is not PENDING, RUNNING, SUCCESS, FAILED or CANCELLED",
                 shown(one, x));
    p->o.statuses |= OMNIQ_STATUS_BIT(st);
    s += n;
    if (*s == '\0') return 0;
  }
}

static int parse_time(list_params_t *p, const char *key, const char *value, int64_t *ms) {
  char why[200];
  if (cli_parse_time(value, ms, why, sizeof why) == 0) return 0;
  return bad(p, "%s: %s", key, why);
}

static int parse_limit(list_params_t *p, const char *value) {
  char *end, x[64];
  long n = strtol(value, &end, 10);
  if (!isdigit((unsigned char)value[0]) || *end != '\0' || n < 1 || n > OMNIQ_LIST_MAX_LIMIT)
    return bad(p, "limit: '%s' is not a number from 1 to %d", shown(value, x),
               OMNIQ_LIST_MAX_LIMIT);
  p->o.limit = (size_t)n;
  return 0;
}

/* The library checks a cursor's shape; this only keeps junk away from it. */
static int parse_cursor(list_params_t *p, const char *value) {
  char x[64];
  size_t n = strlen(value);
  for (size_t k = 0; k < n; k++)
    if (value[k] <= 0x20 || value[k] >= 0x7f) n = CURSOR_MAX + 1;
  if (n > CURSOR_MAX) return bad(p, "cursor: '%s' is not a cursor this server gave", shown(value, x));
  p->o.cursor = value;
  return 0;
}

static int list_param(void *arg, const char *key, const char *value) {
  list_params_t *p = arg;
  char x[64];
  size_t i = 0;
  while (i < NLIST_KEYS && strcmp(key, list_keys[i]) != 0) i++;
  if (i == NLIST_KEYS) return bad(p, "unknown parameter '%s'", shown(key, x));
  if (p->seen & (1u << i)) return bad(p, "parameter '%s' given twice", key);
  p->seen |= 1u << i;
  if (value == NULL || value[0] == '\0') return bad(p, "parameter '%s' needs a value", key);
  if (strcmp(key, "status") == 0) return parse_statuses(p, value);
  if (strcmp(key, "created_from") == 0) return parse_time(p, key, value, &p->o.created_from_ms);
  if (strcmp(key, "created_to") == 0) return parse_time(p, key, value, &p->o.created_to_ms);
  if (strcmp(key, "finished_from") == 0) return parse_time(p, key, value, &p->o.finished_from_ms);
  if (strcmp(key, "finished_to") == 0) return parse_time(p, key, value, &p->o.finished_to_ms);
  if (strcmp(key, "limit") == 0) return parse_limit(p, value);
  if (strcmp(key, "cursor") == 0) return parse_cursor(p, value);
  if (strcmp(key, "queue") == 0) {
    if (!is_queue_name(value))
      return bad(p, "queue: '%s' is not a queue name (1-%d of A-Z a-z 0-9 _ . -)",
                 shown(value, x), OMNIQ_NAME_MAX - 1);
    p->o.queue = value;
    return 0;
  }
  if (strcmp(key, "func") == 0) {
    if (!is_text(value, OMNIQ_PATH_MAX - 1))
      return bad(p, "func: '%s' is not 1-%d bytes of UTF-8 text", shown(value, x),
                 OMNIQ_PATH_MAX - 1);
    p->o.func = value;
    return 0;
  }
  /* order */
  if (strcmp(value, "newest") != 0 && strcmp(value, "oldest") != 0)
    return bad(p, "order: '%s' is not newest or oldest", shown(value, x));
  p->o.newest_first = value[0] == 'n';
  return 0;
}

static void get_tasks(serve_t *sv, const http_req_t *rq, const char *arg, http_reply_t *r) {
  list_params_t p;
  omniq_task_list_t *l = NULL;
  memset(&p, 0, sizeof p);
  omniq_list_opts_init(&p.o);
  if (http_args_each(rq, list_param, &p) != 0) {
    http_reply_error(r, HTTP_BAD_REQUEST, "%s", p.msg);
    return;
  }
  int rc = omniq_list_tasks(sv->oq, &p.o, &l);
  if (rc != OMNIQ_OK) {
    reply_call(r, sv, rc, "cannot list tasks");
    return;
  }
  json_t *tasks = json_array();
  for (size_t i = 0; tasks != NULL && i < omniq_task_list_count(l); i++)
    json_array_append_new(tasks, task_summary(omniq_task_list_at(l, i)));
  const char *next = omniq_task_list_next_cursor(l);
  http_reply_json(r, HTTP_OK, json_pack("{s:o, s:o}", "tasks", tasks, "next_cursor",
                                        next != NULL ? json_string(next) : json_null()));
  omniq_task_list_free(l);
}

static void get_task(serve_t *sv, const http_req_t *rq, const char *id, http_reply_t *r) {
  omniq_task_t *t = NULL;
  omniq_result_t *res = NULL;
  int rc = omniq_get_task(sv->oq, id, &t);
  if (rc == OMNIQ_ENOTFOUND) {
    http_reply_error(r, HTTP_NOT_FOUND, "no task %s", id);
    return;
  }
  if (rc != OMNIQ_OK) {
    reply_call(r, sv, rc, "cannot read the task");
    return;
  }
  rc = omniq_get_result(sv->oq, id, 0, &res);
  if (rc != OMNIQ_OK && rc != OMNIQ_ENOTFOUND) {
    omniq_task_free(t);
    reply_call(r, sv, rc, "cannot read the task's result");
    return;
  }
  http_reply_json(r, HTTP_OK, json_pack("{s:o, s:o, s:b}", "task", task_detail(sv, t), "result",
                                        res != NULL ? result_json(sv, res) : json_null(),
                                        "args_shown", sv->show_args));
  omniq_result_free(res);
  omniq_task_free(t);
}

/* ---- actions ----------------------------------------------------------------------- */

static void acted(serve_t *sv, http_reply_t *r, int rc, const char *what, const char *arg) {
  if (rc == OMNIQ_ENOTFOUND) {
    http_reply_error(r, HTTP_NOT_FOUND, "no task %s", arg);
    return;
  }
  if (rc != OMNIQ_OK) {
    reply_call(r, sv, rc, what);
    return;
  }
  serve_sampler_poke(sv->sampler); /* the page's counts catch up soon */
  http_reply_json(r, HTTP_OK, json_pack("{s:b}", "ok", 1));
}

static void post_retry(serve_t *sv, const http_req_t *rq, const char *id, http_reply_t *r) {
  acted(sv, r, omniq_retry(sv->oq, id, 0), "cannot retry", id);
}
static void post_cancel(serve_t *sv, const http_req_t *rq, const char *id, http_reply_t *r) {
  acted(sv, r, omniq_cancel(sv->oq, id), "cannot cancel", id);
}
static void post_delete(serve_t *sv, const http_req_t *rq, const char *id, http_reply_t *r) {
  acted(sv, r, omniq_delete(sv->oq, id), "cannot delete", id);
}
static void post_pause(serve_t *sv, const http_req_t *rq, const char *q, http_reply_t *r) {
  acted(sv, r, omniq_queue_pause(sv->oq, q), "cannot pause", q);
}
static void post_resume(serve_t *sv, const http_req_t *rq, const char *q, http_reply_t *r) {
  acted(sv, r, omniq_queue_resume(sv->oq, q), "cannot resume", q);
}

/* ---- dispatch ------------------------------------------------------------------------ */

typedef void (*route_fn)(serve_t *sv, const http_req_t *rq, const char *arg, http_reply_t *r);
typedef enum { ARG_NONE, ARG_TASK, ARG_QUEUE } arg_kind_t;

static const struct route {
  const char *method; /* GET routes answer HEAD too */
  const char *prefix;
  arg_kind_t arg;     /* a path segment after the prefix */
  const char *suffix; /* what follows the segment */
  int action;
  route_fn fn;
} routes[] = {
    {"GET", "/metrics", ARG_NONE, "", 0, get_metrics},
    {"GET", "/api/overview", ARG_NONE, "", 0, get_overview},
    {"GET", "/api/throughput", ARG_NONE, "", 0, get_throughput},
    {"GET", "/api/tasks", ARG_NONE, "", 0, get_tasks},
    {"GET", "/api/tasks/", ARG_TASK, "", 0, get_task},
    {"POST", "/api/tasks/", ARG_TASK, "/retry", 1, post_retry},
    {"POST", "/api/tasks/", ARG_TASK, "/cancel", 1, post_cancel},
    {"POST", "/api/tasks/", ARG_TASK, "/delete", 1, post_delete},
    {"POST", "/api/queues/", ARG_QUEUE, "/pause", 1, post_pause},
    {"POST", "/api/queues/", ARG_QUEUE, "/resume", 1, post_resume},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* Does path have route's shape? The segment goes to seg. */
static int matches(const struct route *rt, const char *path, char seg[OMNIQ_PATH_MAX]) {
  size_t n = strlen(rt->prefix);
  seg[0] = '\0';
  if (strncmp(path, rt->prefix, n) != 0) return 0;
  path += n;
  if (rt->arg != ARG_NONE) {
    size_t len = strcspn(path, "/");
    if (len == 0 || len >= OMNIQ_PATH_MAX) return 0;
    memcpy(seg, path, len);
    seg[len] = '\0';
    path += len;
  }
  return strcmp(path, rt->suffix) == 0;
}

static int no_param(void *arg, const char *key, const char *value) {
  char x[64];
  snprintf(arg, 256, "unknown parameter '%s'", shown(key, x));
  return 1;
}

static void serve_asset(const http_req_t *rq, http_reply_t *r) {
  const serve_asset_t *a = serve_asset_find(rq->path);
  if (a == NULL) {
    http_reply_error(r, HTTP_NOT_FOUND, "no such page");
    return;
  }
  r->type = a->type;
  r->static_body = a->data;
  r->len = a->size;
  r->cacheable = 1;
}

void serve_api_dispatch(serve_t *sv, const http_req_t *rq, http_reply_t *r) {
  char seg[OMNIQ_PATH_MAX], x[64], msg[256];
  const char *method = strcmp(rq->method, "HEAD") == 0 ? "GET" : rq->method;
  const struct route *rt = NULL;
  const char *why;
  for (size_t i = 0; i < NROUTES && rt == NULL; i++)
    if (matches(&routes[i], rq->path, seg) && strcmp(routes[i].method, method) == 0)
      rt = &routes[i];
  if (rt == NULL) {
    for (size_t i = 0; i < NROUTES; i++)
      if (matches(&routes[i], rq->path, seg)) { /* the path exists, not for this method */
        http_reply_error(r, HTTP_METHOD_NOT_ALLOWED, "%s only", routes[i].method);
        r->allow = strcmp(routes[i].method, "GET") == 0 ? "GET, HEAD" : routes[i].method;
        return;
      }
    if (strcmp(method, "GET") == 0)
      serve_asset(rq, r);
    else
      http_reply_error(r, HTTP_NOT_FOUND, "no such route");
    return;
  }
  unsigned refused = rt->action ? http_action_allowed(sv, rq, &why) : 0;
  if (refused != 0) {
    http_reply_error(r, refused, "%s", why);
  } else if (rt->arg == ARG_TASK && !is_task_id(seg)) {
    http_reply_error(r, HTTP_BAD_REQUEST, "'%s' is not a task id", shown(seg, x));
  } else if (rt->arg == ARG_QUEUE && !is_queue_name(seg)) {
    http_reply_error(r, HTTP_BAD_REQUEST, "'%s' is not a queue name", shown(seg, x));
  } else if (rt->fn != get_tasks && http_args_each(rq, no_param, msg) != 0) {
    http_reply_error(r, HTTP_BAD_REQUEST, "%s", msg);
  } else {
    rt->fn(sv, rq, seg, r);
  }
}
