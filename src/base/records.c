/* SPDX-License-Identifier: MIT */
/* Records: statuses and their transition table, task/result/TaskError
 * allocation, accessors, and the JSON forms every backend stores.
 *
 * To change a JSON form: add keys only, keep reading records without them
 * (older files), and add a test with an old record. */
#include "base/records.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"

/* ---- statuses ------------------------------------------------------------ */

static const char *const status_names[OMNIQ_STATUS_COUNT] = {"PENDING", "RUNNING", "SUCCESS",
                                                             "FAILED", "CANCELLED"};

/* DESIGN §3: the only allowed transitions. FAILED and CANCELLED go back to
 * PENDING only by hand (omniq_retry). */
static const unsigned char allowed[OMNIQ_STATUS_COUNT][OMNIQ_STATUS_COUNT] = {
    /*               PEND RUN SUCC FAIL CANC */
    /* PENDING   */ {0, 1, 0, 0, 1},
    /* RUNNING   */ {1, 0, 1, 1, 1},
    /* SUCCESS   */ {0, 0, 0, 0, 0},
    /* FAILED    */ {1, 0, 0, 0, 0},
    /* CANCELLED */ {1, 0, 0, 0, 0},
};

static int status_valid(int s) { return s >= 0 && s < OMNIQ_STATUS_COUNT; }

const char *omniq_status_name(int status) {
  return status_valid(status) ? status_names[status] : "UNKNOWN";
}

int omniq_status_parse(const char *name, int *status_out) {
  for (int i = 0; name != NULL && i < OMNIQ_STATUS_COUNT; i++)
    if (strcmp(name, status_names[i]) == 0) {
      *status_out = i;
      return OMNIQ_OK;
    }
  return OMNIQ_EINVAL;
}

int omniq_transition_allowed(int from, int to) {
  return status_valid(from) && status_valid(to) && allowed[from][to];
}

int omniq_status_is_terminal(int status) {
  return status == OMNIQ_SUCCESS || status == OMNIQ_FAILED || status == OMNIQ_CANCELLED;
}

/* ---- TaskError ----------------------------------------------------------- */

omniq_task_error_t *omniq_task_error_new(const char *type, const char *message,
                                         int64_t timestamp, const char *traceback,
                                         int retry_count, int is_retryable) {
  omniq_task_error_t *e = omniq__calloc(1, sizeof *e);
  if (e == NULL) return NULL;
  e->error_type = omniq__strdup(type != NULL ? type : "Error");
  e->message = omniq__strdup(message != NULL ? message : "");
  e->traceback = omniq__strdup(traceback);
  e->timestamp = timestamp;
  e->retry_count = retry_count;
  e->is_retryable = is_retryable != 0;
  if (e->error_type == NULL || e->message == NULL || (traceback != NULL && e->traceback == NULL)) {
    omniq_task_error_free(e);
    return NULL;
  }
  return e;
}

omniq_task_error_t *omniq_task_error_dup(const omniq_task_error_t *e) {
  if (e == NULL) return NULL;
  return omniq_task_error_new(e->error_type, e->message, e->timestamp, e->traceback,
                              e->retry_count, e->is_retryable);
}

void omniq_task_error_free(omniq_task_error_t *e) {
  if (e == NULL) return;
  omniq__free(e->error_type);
  omniq__free(e->message);
  omniq__free(e->traceback);
  omniq__free(e);
}

const char *omniq_error_type(const omniq_task_error_t *e) { return e ? e->error_type : NULL; }
const char *omniq_error_message(const omniq_task_error_t *e) { return e ? e->message : NULL; }
int64_t omniq_error_timestamp(const omniq_task_error_t *e) { return e ? e->timestamp : 0; }
const char *omniq_error_traceback(const omniq_task_error_t *e) { return e ? e->traceback : NULL; }
int omniq_error_retry_count(const omniq_task_error_t *e) { return e ? e->retry_count : 0; }
int omniq_error_is_retryable(const omniq_task_error_t *e) { return e ? e->is_retryable : 0; }

/* ---- JSON helpers -------------------------------------------------------- */

static json_t *time_json(int64_t ms) {
  char buf[OMNIQ__ISO_SIZE];
  omniq__iso8601(ms, buf);
  return json_string(buf);
}

static int time_from(json_t *obj, const char *key, int64_t *out) {
  json_t *v = json_object_get(obj, key);
  if (v == NULL || json_is_null(v)) {
    *out = 0;
    return OMNIQ_OK;
  }
  return json_is_string(v) ? omniq__iso8601_parse(json_string_value(v), out) : OMNIQ_EINVAL;
}

/* A nullable string member: NULL -> null. */
static json_t *str_or_null(const char *s) { return s != NULL ? json_string(s) : json_null(); }

/* Copies a string member (or NULL for null/absent when nullable). */
static int str_from(json_t *obj, const char *key, int nullable, char **out) {
  json_t *v = json_object_get(obj, key);
  *out = NULL;
  if (v == NULL || json_is_null(v)) return nullable ? OMNIQ_OK : OMNIQ_ESERIALIZE;
  if (!json_is_string(v)) return OMNIQ_ESERIALIZE;
  *out = omniq__strdup(json_string_value(v));
  return *out != NULL ? OMNIQ_OK : OMNIQ_ENOMEM;
}

static int int_from(json_t *obj, const char *key, int64_t *out) {
  json_t *v = json_object_get(obj, key);
  if (!json_is_integer(v)) return OMNIQ_ESERIALIZE;
  *out = json_integer_value(v);
  return OMNIQ_OK;
}

/* Dumped into a buffer on the stack, then copied once into memory of
 * ours: json_dumps grows its own buffer from 16 bytes (five reallocs for a
 * task) and its text then had to be copied anyway. A text that does not
 * fit is dumped again into memory of its size. */
static char *dump(json_t *j) {
  const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
  char buf[2048], *text = NULL;
  if (j == NULL) return NULL;
  size_t n = json_dumpb(j, buf, sizeof buf, flags);
  if (n > 0 && (text = omniq__malloc(n + 1)) != NULL) {
    if (n <= sizeof buf)
      memcpy(text, buf, n);
    else if (json_dumpb(j, text, n, flags) != n) {
      omniq__free(text);
      text = NULL;
    }
    if (text != NULL) text[n] = '\0';
  }
  json_decref(j);
  return text;
}

static json_t *error_json(const omniq_task_error_t *e) {
  if (e == NULL) return json_null();
  return json_pack("{s:s, s:s, s:o, s:o, s:i, s:b}", "error_type", e->error_type, "message",
                   e->message, "timestamp", time_json(e->timestamp), "traceback",
                   str_or_null(e->traceback), "retry_count", e->retry_count, "is_retryable",
                   e->is_retryable);
}

static int error_from(json_t *j, omniq_task_error_t **out) {
  omniq_task_error_t *e = NULL;
  int64_t retry_count;
  json_t *retryable = json_object_get(j, "is_retryable");
  *out = NULL;
  if (!json_is_object(j) || !json_is_boolean(retryable)) return OMNIQ_ESERIALIZE;
  e = omniq__calloc(1, sizeof *e);
  if (e == NULL) return OMNIQ_ENOMEM;
  int rc = str_from(j, "error_type", 0, &e->error_type);
  if (rc == OMNIQ_OK) rc = str_from(j, "message", 0, &e->message);
  if (rc == OMNIQ_OK) rc = str_from(j, "traceback", 1, &e->traceback);
  if (rc == OMNIQ_OK && time_from(j, "timestamp", &e->timestamp) != OMNIQ_OK)
    rc = OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK) rc = int_from(j, "retry_count", &retry_count);
  if (rc != OMNIQ_OK) {
    omniq_task_error_free(e);
    return rc == OMNIQ_EINVAL ? OMNIQ_ESERIALIZE : rc;
  }
  e->retry_count = (int)retry_count;
  e->is_retryable = json_is_true(retryable);
  *out = e;
  return OMNIQ_OK;
}

static int parse_object(const char *text, json_t **out) {
  json_error_t jerr;
  *out = text != NULL ? json_loads(text, JSON_REJECT_DUPLICATES, &jerr) : NULL;
  if (*out == NULL || !json_is_object(*out)) {
    json_decref(*out);
    *out = NULL;
    return OMNIQ_ESERIALIZE;
  }
  return OMNIQ_OK;
}

char *omniq_task_error_to_json(const omniq_task_error_t *e) {
  return e != NULL ? dump(error_json(e)) : NULL;
}

int omniq_task_error_from_json(const char *json, omniq_task_error_t **out) {
  json_t *j;
  *out = NULL;
  int rc = parse_object(json, &j);
  if (rc != OMNIQ_OK) return rc;
  rc = error_from(j, out);
  json_decref(j);
  return rc;
}

/* ---- tasks --------------------------------------------------------------- */

omniq_task_t *omniq_task_new(void) { return omniq__calloc(1, sizeof(omniq_task_t)); }

void omniq_task_free(omniq_task_t *t) {
  if (t == NULL) return;
  omniq__free(t->func);
  omniq__free(t->queue);
  omniq__free(t->args);
  omniq__free(t->kwargs);
  omniq__free(t->unique_key);
  omniq__free(t->cron);
  omniq_task_error_free(t->last_error);
  omniq__free(t);
}

void omniq__tasks_free(omniq_task_t **tasks, size_t n) {
  if (tasks == NULL) return;
  for (size_t i = 0; i < n; i++) omniq_task_free(tasks[i]);
  omniq__free(tasks);
}

omniq_task_t *omniq_task_dup(const omniq_task_t *t) {
  if (t == NULL) return NULL;
  omniq_task_t *d = omniq_task_new();
  if (d == NULL) return NULL;
  *d = *t;
  d->func = omniq__strdup(t->func);
  d->queue = omniq__strdup(t->queue);
  d->args = omniq__strdup(t->args);
  d->kwargs = omniq__strdup(t->kwargs);
  d->last_error = omniq_task_error_dup(t->last_error);
  d->unique_key = omniq__strdup(t->unique_key);
  d->cron = omniq__strdup(t->cron);
  if ((t->func && !d->func) || (t->queue && !d->queue) || (t->args && !d->args) ||
      (t->kwargs && !d->kwargs) || (t->last_error && !d->last_error) ||
      (t->unique_key && !d->unique_key) || (t->cron && !d->cron)) {
    omniq_task_free(d);
    return NULL;
  }
  return d;
}

const char *omniq_task_id(const omniq_task_t *t) { return t ? t->id : NULL; }
const char *omniq_task_func(const omniq_task_t *t) { return t ? t->func : NULL; }
const char *omniq_task_queue(const omniq_task_t *t) { return t ? t->queue : NULL; }
const char *omniq_task_args(const omniq_task_t *t) { return t ? t->args : NULL; }
const char *omniq_task_kwargs(const omniq_task_t *t) { return t ? t->kwargs : NULL; }
int omniq_task_status(const omniq_task_t *t) { return t ? t->status : -1; }
int omniq_task_attempts(const omniq_task_t *t) { return t ? t->attempts : 0; }
int omniq_task_max_retries(const omniq_task_t *t) { return t ? t->max_retries : 0; }
int omniq_task_priority(const omniq_task_t *t) { return t ? t->priority : 0; }
int64_t omniq_task_eta(const omniq_task_t *t) { return t ? t->eta_ms : 0; }
int64_t omniq_task_interval(const omniq_task_t *t) { return t ? t->interval_ms : 0; }
int64_t omniq_task_timeout(const omniq_task_t *t) { return t ? t->timeout_ms : 0; }
int64_t omniq_task_created_at(const omniq_task_t *t) { return t ? t->created_at_ms : 0; }
const omniq_task_error_t *omniq_task_last_error(const omniq_task_t *t) {
  return t ? t->last_error : NULL;
}
int64_t omniq_task_started_at(const omniq_task_t *t) { return t ? t->started_at_ms : 0; }
int64_t omniq_task_finished_at(const omniq_task_t *t) { return t ? t->finished_at_ms : 0; }
const char *omniq_task_unique_key(const omniq_task_t *t) { return t ? t->unique_key : NULL; }
const char *omniq_task_cron(const omniq_task_t *t) { return t ? t->cron : NULL; }
int omniq_task_crashes(const omniq_task_t *t) { return t ? t->crashes : 0; }

/* The keys added with storage ABI 3 are written only when they differ from
 * their default, so a task that uses none of them keeps the exact bytes it
 * had before; a reader treats a missing key as its default. */
static json_t *task_json(const omniq_task_t *t) {
  json_t *j = json_pack(
      "{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:i, s:i, s:o, s:I, s:I, s:o, s:o, s:o, s:I, "
      "s:o}",
      "format", 1, "id", t->id, "func", t->func, "queue", t->queue, "args", t->args, "kwargs",
      t->kwargs, "status", omniq_status_name(t->status), "priority", t->priority, "attempts",
      t->attempts, "max_retries", t->max_retries, "eta", time_json(t->eta_ms), "interval_ms",
      (json_int_t)t->interval_ms, "timeout_ms", (json_int_t)t->timeout_ms, "created_at",
      time_json(t->created_at_ms), "started_at", time_json(t->started_at_ms), "lease_until",
      time_json(t->lease_until_ms), "token", (json_int_t)t->token, "last_error",
      error_json(t->last_error));
  int bad = j == NULL;
  if (!bad && t->unique_key != NULL)
    bad = json_object_set_new(j, "unique_key", json_string(t->unique_key)) != 0 ||
          json_object_set_new(j, "unique_for_ms", json_integer(t->unique_for_ms)) != 0;
  if (!bad && t->cron != NULL) bad = json_object_set_new(j, "cron", json_string(t->cron)) != 0;
  if (!bad && t->crashes != 0) bad = json_object_set_new(j, "crashes", json_integer(t->crashes));
  if (!bad && t->finished_at_ms != 0)
    bad = json_object_set_new(j, "finished_at", time_json(t->finished_at_ms)) != 0;
  if (bad) {
    json_decref(j);
    return NULL;
  }
  return j;
}

char *omniq_task_to_json(const omniq_task_t *t) { return t != NULL ? dump(task_json(t)) : NULL; }

/* An optional integer member: absent or null is 0. */
static int opt_int_from(json_t *obj, const char *key, int64_t *out) {
  json_t *v = json_object_get(obj, key);
  *out = 0;
  if (v == NULL || json_is_null(v)) return OMNIQ_OK;
  return int_from(obj, key, out);
}

int omniq_task_from_json(const char *json, omniq_task_t **out) {
  json_t *j;
  int64_t v[8];
  json_t *status = NULL, *id = NULL, *err = NULL;
  *out = NULL;
  int rc = parse_object(json, &j);
  if (rc != OMNIQ_OK) return rc;
  omniq_task_t *t = omniq_task_new();
  if (t == NULL) {
    json_decref(j);
    return OMNIQ_ENOMEM;
  }
  id = json_object_get(j, "id");
  status = json_object_get(j, "status");
  err = json_object_get(j, "last_error");
  rc = json_is_string(id) && omniq_id_valid(json_string_value(id)) ? OMNIQ_OK : OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK) {
    memcpy(t->id, json_string_value(id), OMNIQ_ID_SIZE);
    rc = json_is_string(status) &&
                 omniq_status_parse(json_string_value(status), &t->status) == OMNIQ_OK
             ? OMNIQ_OK
             : OMNIQ_ESERIALIZE;
  }
  if (rc == OMNIQ_OK) rc = str_from(j, "func", 0, &t->func);
  if (rc == OMNIQ_OK) rc = str_from(j, "queue", 0, &t->queue);
  if (rc == OMNIQ_OK) rc = str_from(j, "args", 0, &t->args);
  if (rc == OMNIQ_OK) rc = str_from(j, "kwargs", 0, &t->kwargs);
  if (rc == OMNIQ_OK) rc = int_from(j, "priority", &v[0]);
  if (rc == OMNIQ_OK) rc = int_from(j, "attempts", &v[1]);
  if (rc == OMNIQ_OK) rc = int_from(j, "max_retries", &v[2]);
  if (rc == OMNIQ_OK) rc = int_from(j, "interval_ms", &v[3]);
  if (rc == OMNIQ_OK) rc = int_from(j, "timeout_ms", &v[4]);
  if (rc == OMNIQ_OK) rc = int_from(j, "token", &v[5]);
  if (rc == OMNIQ_OK &&
      (time_from(j, "eta", &t->eta_ms) || time_from(j, "created_at", &t->created_at_ms) ||
       time_from(j, "started_at", &t->started_at_ms) ||
       time_from(j, "lease_until", &t->lease_until_ms)))
    rc = OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK && err != NULL && !json_is_null(err)) rc = error_from(err, &t->last_error);
  if (rc == OMNIQ_OK) rc = str_from(j, "unique_key", 1, &t->unique_key);
  if (rc == OMNIQ_OK) rc = opt_int_from(j, "unique_for_ms", &v[6]);
  if (rc == OMNIQ_OK) rc = str_from(j, "cron", 1, &t->cron);
  if (rc == OMNIQ_OK) rc = opt_int_from(j, "crashes", &v[7]);
  if (rc == OMNIQ_OK && time_from(j, "finished_at", &t->finished_at_ms) != OMNIQ_OK)
    rc = OMNIQ_ESERIALIZE;
  json_decref(j);
  if (rc != OMNIQ_OK) {
    omniq_task_free(t);
    return rc;
  }
  t->unique_for_ms = v[6];
  t->crashes = (int)v[7];
  t->priority = (int)v[0];
  t->attempts = (int)v[1];
  t->max_retries = (int)v[2];
  t->interval_ms = v[3];
  t->timeout_ms = v[4];
  t->token = v[5];
  *out = t;
  return OMNIQ_OK;
}

/* ---- results ------------------------------------------------------------- */

omniq_result_t *omniq_result_new(void) { return omniq__calloc(1, sizeof(omniq_result_t)); }

void omniq_result_free(omniq_result_t *r) {
  if (r == NULL) return;
  omniq__free(r->value);
  omniq_task_error_free(r->error);
  omniq__free(r);
}

omniq_result_t *omniq_result_dup(const omniq_result_t *r) {
  if (r == NULL) return NULL;
  omniq_result_t *d = omniq_result_new();
  if (d == NULL) return NULL;
  *d = *r;
  d->value = omniq__strdup(r->value);
  d->error = omniq_task_error_dup(r->error);
  if ((r->value && !d->value) || (r->error && !d->error)) {
    omniq_result_free(d);
    return NULL;
  }
  return d;
}

const char *omniq_result_task_id(const omniq_result_t *r) { return r ? r->task_id : NULL; }
int omniq_result_status(const omniq_result_t *r) { return r ? r->status : -1; }
const char *omniq_result_value(const omniq_result_t *r) { return r ? r->value : NULL; }
const omniq_task_error_t *omniq_result_error(const omniq_result_t *r) {
  return r ? r->error : NULL;
}
int omniq_result_attempts(const omniq_result_t *r) { return r ? r->attempts : 0; }
int64_t omniq_result_finished_at(const omniq_result_t *r) { return r ? r->finished_at_ms : 0; }
int64_t omniq_result_last_attempt_at(const omniq_result_t *r) {
  return r ? r->last_attempt_at_ms : 0;
}

char *omniq_result_to_json(const omniq_result_t *r) {
  if (r == NULL) return NULL;
  return dump(json_pack("{s:i, s:s, s:s, s:o, s:o, s:i, s:o, s:o}", "format", 1, "task_id",
                        r->task_id, "status", omniq_status_name(r->status), "value",
                        str_or_null(r->value), "error", error_json(r->error), "attempts",
                        r->attempts, "finished_at", time_json(r->finished_at_ms),
                        "last_attempt_at", time_json(r->last_attempt_at_ms)));
}

int omniq_result_from_json(const char *json, omniq_result_t **out) {
  json_t *j, *id, *status, *err;
  int64_t attempts;
  *out = NULL;
  int rc = parse_object(json, &j);
  if (rc != OMNIQ_OK) return rc;
  omniq_result_t *r = omniq_result_new();
  if (r == NULL) {
    json_decref(j);
    return OMNIQ_ENOMEM;
  }
  id = json_object_get(j, "task_id");
  status = json_object_get(j, "status");
  err = json_object_get(j, "error");
  rc = json_is_string(id) && omniq_id_valid(json_string_value(id)) && json_is_string(status) &&
               omniq_status_parse(json_string_value(status), &r->status) == OMNIQ_OK
           ? OMNIQ_OK
           : OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK) {
    memcpy(r->task_id, json_string_value(id), OMNIQ_ID_SIZE);
    rc = str_from(j, "value", 1, &r->value);
  }
  if (rc == OMNIQ_OK) rc = int_from(j, "attempts", &attempts);
  if (rc == OMNIQ_OK && (time_from(j, "finished_at", &r->finished_at_ms) ||
                         time_from(j, "last_attempt_at", &r->last_attempt_at_ms)))
    rc = OMNIQ_ESERIALIZE;
  if (rc == OMNIQ_OK && err != NULL && !json_is_null(err)) rc = error_from(err, &r->error);
  json_decref(j);
  if (rc != OMNIQ_OK) {
    omniq_result_free(r);
    return rc;
  }
  r->attempts = (int)attempts;
  *out = r;
  return OMNIQ_OK;
}

omniq_queue_info_t *omniq__queue_info_of(omniq_queue_info_t **q, size_t *n, size_t *cap,
                                         const char *name) {
  if (name == NULL || strlen(name) >= OMNIQ_NAME_MAX) return NULL;
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*q)[i].name, name) == 0) return &(*q)[i];
  if (*n == *cap) {
    size_t more = *cap ? *cap * 2 : 8;
    omniq_queue_info_t *grown = realloc(*q, more * sizeof *grown);
    if (grown == NULL) return NULL;
    *q = grown;
    *cap = more;
  }
  omniq_queue_info_t *r = &(*q)[(*n)++];
  memset(r, 0, sizeof *r);
  memcpy(r->name, name, strlen(name) + 1);
  return r;
}
