/* SPDX-License-Identifier: MIT */
/* How tasks and results are shown: text for people, --json for programs. */
#ifndef OMNIQ_CLI_OUTPUT_H
#define OMNIQ_CLI_OUTPUT_H

#include <jansson.h>
#include <stdio.h>

#include "omniq.h"

/* JSON forms (yours: json_decref). Times are RFC 3339 strings (null when
 * unset), durations whole milliseconds; args, kwargs and values are
 * embedded as JSON. The error object has exactly the six TaskError keys. */
json_t *cli_error_json(const omniq_task_error_t *e);
json_t *cli_task_json(const omniq_task_t *t);
json_t *cli_result_json(const omniq_result_t *r);

/* Prints j compactly on one line of stdout and releases it. Returns 0, or
 * -1 if j is NULL (out of memory) or the write failed. */
int cli_print_json(json_t *j);

/* The text forms, on stdout. */
void cli_print_task(const omniq_task_t *t, int64_t now_ms);
void cli_print_error(FILE *f, const omniq_task_error_t *e);

/* Appends argv (a JSON array of strings) to buf as a shell would need it
 * typed: words that need quoting are single-quoted. */
void cli_shell_words(const char *args_json, char *buf, size_t len);

#endif
