/* SPDX-License-Identifier: MIT */
/* What `omniq worker` shows while it runs: a live line on a terminal, log
 * lines on a pipe. */
#ifndef OMNIQ_CLI_PROGRESS_H
#define OMNIQ_CLI_PROGRESS_H

#include <stdint.h>

#include "omniq.h"

typedef struct cli_progress cli_progress_t;

/* tty: draw the live line on stderr (else only log lines). show_level: the
 * least level of library log lines printed. log_format: the library's line
 * format (omniq_log_format_t), needed to read event names. NULL when out of
 * memory. */
cli_progress_t *cli_progress_new(int tty, int show_level, int log_format);
void cli_progress_free(cli_progress_t *p);

/* An omniq_log_fn (userdata = the progress): counts this worker's finished
 * runs from the library's task.succeeded / task.failed / task.retry events
 * and prints the line if its level is shown. Thread-safe. */
void cli_progress_log(void *userdata, int level, const char *line);

/* Redraws the live line with the store's counts (NULL = not known) and an
 * optional note ("stopping"). now_ms is a monotonic time for the rate. */
void cli_progress_tick(cli_progress_t *p, const int64_t counts[OMNIQ_STATUS_COUNT],
                       const char *note, int64_t now_ms);
/* Prints a one-line message (a newline is added), above the live line on a
 * terminal. Thread-safe. */
void cli_progress_say(cli_progress_t *p, const char *msg);
/* Ends the live line (leaves it on screen, followed by a newline). */
void cli_progress_end(cli_progress_t *p);

#endif
