/* SPDX-License-Identifier: MIT */
/* Messages, exit codes, and the text and JSON forms of tasks and results.
 *
 * Errors go to stderr as one line, "omniq SUBCOMMAND: what happened", so a
 * script can log them and a person can read them; answers go to stdout.
 * --json prints exactly one document per answer, on one line, built with
 * jansson (never by hand), with the TaskError object in the library's own
 * six-key form. Text output is for people and may change; JSON keys only
 * grow. */
#include "output.h"

#include <stdarg.h>
#include <string.h>

#include "cli.h"
#include "command_task.h"
#include "duration.h"

/* ---- messages and exit codes ----------------------------------------------- */

static void vmessage(const cli_t *cli, const char *fmt, va_list ap) {
  char msg[1024];
  vsnprintf(msg, sizeof msg, fmt, ap);
  /* One line: a library message never spans lines, but a value may. */
  for (char *p = msg; *p != '\0'; p++)
    if (*p == '\n' || *p == '\r') *p = ' ';
  fprintf(stderr, "omniq%s%s: %s\n", cli->cmd ? " " : "", cli->cmd ? cli->cmd : "", msg);
}

int cli_error(const cli_t *cli, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vmessage(cli, fmt, ap);
  va_end(ap);
  return code;
}

int cli_usage(const cli_t *cli, const char *fmt, ...) {
  char msg[900];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  return cli_error(cli, CLI_EXIT_USAGE, "%s (see 'omniq%s%s --help')", msg, cli->cmd ? " " : "",
                   cli->cmd ? cli->cmd : "");
}

int cli_exit_for(int rc) {
  switch (rc) {
  case OMNIQ_OK:
    return CLI_EXIT_OK;
  case OMNIQ_EINVAL:
  case OMNIQ_ECONFIG:
  case OMNIQ_ESERIALIZE:
    return CLI_EXIT_USAGE;
  case OMNIQ_ENOTFOUND:
    return CLI_EXIT_NOTFOUND;
  case OMNIQ_ETIMEDOUT:
    return CLI_EXIT_TIMEOUT;
  case OMNIQ_ESTATE:
  case OMNIQ_EFAILED:
    return CLI_EXIT_FAILED;
  default: /* storage, I/O, memory: the store could not do it */
    return CLI_EXIT_STORAGE;
  }
}

const char *cli_status_now(omniq_t *oq, const char *id) {
  omniq_task_t *t = NULL;
  int status = omniq_get_task(oq, id, &t) == OMNIQ_OK ? omniq_task_status(t) : -1;
  omniq_task_free(t);
  return omniq_status_name(status);
}

int cli_fail_call(const cli_t *cli, omniq_t *oq, int rc, const char *what, const char *id) {
  const char *msg = omniq_errmsg(oq);
  if (msg == NULL || msg[0] == '\0') msg = omniq_strerror(rc);
  if (rc == OMNIQ_ENOTFOUND && id != NULL) return cli_error(cli, CLI_EXIT_NOTFOUND, "no task %s", id);
  /* A bad value the user typed ("'x' is not a task id") needs no preamble. */
  if (cli_exit_for(rc) == CLI_EXIT_USAGE) return cli_error(cli, CLI_EXIT_USAGE, "%s", msg);
  return cli_error(cli, cli_exit_for(rc), "%s: %s", what, msg);
}

/* ---- JSON ------------------------------------------------------------------ */

static json_t *time_json(int64_t ms) {
  char buf[CLI_TIME_SIZE];
  if (ms <= 0) return json_null();
  cli_format_time(ms, buf);
  return json_string(buf);
}

/* Embeds stored JSON text; text that does not parse (the raw serializer)
 * is embedded as a string rather than lost. */
static json_t *embed(const char *text) {
  if (text == NULL) return json_null();
  json_t *j = json_loads(text, JSON_DECODE_ANY, NULL);
  return j != NULL ? j : json_string(text);
}

static json_t *str_or_null(const char *s) { return s != NULL ? json_string(s) : json_null(); }

json_t *cli_error_json(const omniq_task_error_t *e) {
  if (e == NULL) return json_null();
  return json_pack("{s:o, s:o, s:o, s:o, s:i, s:b}", "error_type",
                   str_or_null(omniq_error_type(e)), "message",
                   str_or_null(omniq_error_message(e)), "timestamp",
                   time_json(omniq_error_timestamp(e)), "traceback",
                   str_or_null(omniq_error_traceback(e)), "retry_count",
                   omniq_error_retry_count(e), "is_retryable", omniq_error_is_retryable(e));
}

json_t *cli_task_json(const omniq_task_t *t) {
  json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:i, s:i, s:i, s:o, s:I, s:I, s:o, s:o}",
                   "id", omniq_task_id(t), "func", omniq_task_func(t), "queue",
                   omniq_task_queue(t), "status", omniq_status_name(omniq_task_status(t)), "args",
                   embed(omniq_task_args(t)), "kwargs", embed(omniq_task_kwargs(t)), "attempts",
                   omniq_task_attempts(t), "max_retries", omniq_task_max_retries(t), "priority",
                   omniq_task_priority(t), "eta", time_json(omniq_task_eta(t)), "interval_ms",
                   (json_int_t)omniq_task_interval(t), "timeout_ms",
                   (json_int_t)omniq_task_timeout(t), "created_at",
                   time_json(omniq_task_created_at(t)), "last_error",
                   cli_error_json(omniq_task_last_error(t)));
  /* Keys added with queue operations (they only grow): a cron task's eta
   * above is its next match. */
  if (j != NULL &&
      json_object_update_new(
          j, json_pack("{s:o, s:o, s:o, s:o, s:i}", "cron", str_or_null(omniq_task_cron(t)),
                       "unique_key", str_or_null(omniq_task_unique_key(t)), "started_at",
                       time_json(omniq_task_started_at(t)), "finished_at",
                       time_json(omniq_task_finished_at(t)), "crashes",
                       omniq_task_crashes(t))) != 0) {
    json_decref(j);
    return NULL;
  }
  return j;
}

json_t *cli_result_json(const omniq_result_t *r) {
  return json_pack("{s:s, s:s, s:o, s:o, s:i, s:o, s:o}", "task_id", omniq_result_task_id(r),
                   "status", omniq_status_name(omniq_result_status(r)), "value",
                   embed(omniq_result_value(r)), "error", cli_error_json(omniq_result_error(r)),
                   "attempts", omniq_result_attempts(r), "finished_at",
                   time_json(omniq_result_finished_at(r)), "last_attempt_at",
                   time_json(omniq_result_last_attempt_at(r)));
}

int cli_print_json(json_t *j) {
  if (j == NULL) return -1;
  int rc = json_dumpf(j, stdout, JSON_COMPACT | JSON_PRESERVE_ORDER);
  json_decref(j);
  if (rc != 0 || putchar('\n') == EOF || fflush(stdout) != 0) return -1;
  return 0;
}

/* ---- text ------------------------------------------------------------------ */

/* A word a POSIX shell reads back unchanged without quotes. */
static int plain_word(const char *s) {
  if (*s == '\0') return 0;
  for (; *s != '\0'; s++)
    if (strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-",
               *s) == NULL)
      return 0;
  return 1;
}

static void append(char *buf, size_t len, const char *s) {
  size_t used = strlen(buf);
  if (used + 1 < len) snprintf(buf + used, len - used, "%s", s);
}

void cli_shell_words(const char *args_json, char *buf, size_t len) {
  json_t *argv = json_loads(args_json != NULL ? args_json : "[]", 0, NULL);
  size_t i;
  json_t *word;
  json_array_foreach(argv, i, word) {
    const char *s = json_string_value(word);
    if (i > 0) append(buf, len, " ");
    if (s == NULL) {
      append(buf, len, "?");
    } else if (plain_word(s)) {
      append(buf, len, s);
    } else {
      append(buf, len, "'");
      for (const char *p = s; *p != '\0'; p++) {
        char one[2] = {*p, '\0'};
        append(buf, len, *p == '\'' ? "'\\''" : one);
      }
      append(buf, len, "'");
    }
  }
  json_decref(argv);
}

/* "in 5m" / "3s ago" relative to now. */
static void relative(int64_t when, int64_t now, char *buf, size_t len) {
  char d[CLI_DURATION_SIZE];
  int64_t delta = when - now;
  /* Whole seconds: a person reading "in 4m59.873s" wanted "in 5m". */
  int64_t secs = (delta >= 0 ? delta + 500 : -delta + 500) / 1000 * 1000;
  cli_format_duration(secs, d);
  snprintf(buf, len, delta >= 0 ? "in %s" : "%s ago", d);
}

void cli_print_error(FILE *f, const omniq_task_error_t *e) {
  const char *tb = omniq_error_traceback(e), *msg = omniq_error_message(e);
  /* A command's message ends with its stderr tail, often with a newline. */
  size_t n = strlen(msg);
  fprintf(f, "%s: %s%s", omniq_error_type(e), msg, n > 0 && msg[n - 1] == '\n' ? "" : "\n");
  if (tb != NULL && tb[0] != '\0') fprintf(f, "%s%s", tb, tb[strlen(tb) - 1] == '\n' ? "" : "\n");
}

void cli_print_task(const omniq_task_t *t, int64_t now) {
  char when[CLI_TIME_SIZE], rel[64], d[CLI_DURATION_SIZE], words[4096] = "";
  const omniq_task_error_t *e = omniq_task_last_error(t);
  int status = omniq_task_status(t);

  printf("id:          %s\n", omniq_task_id(t));
  printf("status:      %s\n", omniq_status_name(status));
  printf("func:        %s\n", omniq_task_func(t));
  if (strcmp(omniq_task_func(t), CLI_COMMAND_FUNC) == 0) {
    cli_shell_words(omniq_task_args(t), words, sizeof words);
    printf("command:     %s\n", words);
  } else {
    printf("args:        %s\n", omniq_task_args(t));
    printf("kwargs:      %s\n", omniq_task_kwargs(t));
  }
  printf("queue:       %s\n", omniq_task_queue(t));
  printf("priority:    %d\n", omniq_task_priority(t));
  printf("attempts:    %d of %d\n", omniq_task_attempts(t), omniq_task_max_retries(t));
  if (status == OMNIQ_PENDING) {
    cli_format_time(omniq_task_eta(t), when);
    relative(omniq_task_eta(t), now, rel, sizeof rel);
    printf("eta:         %s (%s)\n", when, rel);
  }
  if (omniq_task_cron(t) != NULL) printf("cron:        %s (UTC)\n", omniq_task_cron(t));
  if (omniq_task_unique_key(t) != NULL) printf("unique key:  %s\n", omniq_task_unique_key(t));
  if (omniq_task_interval(t) > 0) {
    cli_format_duration(omniq_task_interval(t), d);
    printf("interval:    %s\n", d);
  }
  cli_format_duration(omniq_task_timeout(t), d);
  printf("timeout:     %s\n", omniq_task_timeout(t) > 0 ? d : "none");
  cli_format_time(omniq_task_created_at(t), when);
  printf("created:     %s\n", when);
  if (omniq_task_started_at(t) > 0) {
    cli_format_time(omniq_task_started_at(t), when);
    printf("started:     %s\n", when);
  }
  if (omniq_task_finished_at(t) > 0) {
    cli_format_time(omniq_task_finished_at(t), when);
    printf("finished:    %s\n", when);
  }
  if (omniq_task_crashes(t) > 0) printf("crashes:     %d\n", omniq_task_crashes(t));
  if (e != NULL) {
    const char *msg = omniq_error_message(e);
    size_t first = strcspn(msg, "\n");
    printf("last error:  %s: %.*s%s\n", omniq_error_type(e), (int)first, msg,
           msg[first] != '\0' ? " (more with --json)" : "");
  }
}
