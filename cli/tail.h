/* SPDX-License-Identifier: MIT */
/* The last bytes of a stream (a command's stdout or stderr), kept in
 * bounded memory and handed out as text a JSON string can hold. */
#ifndef OMNIQ_CLI_TAIL_H
#define OMNIQ_CLI_TAIL_H

#include <stddef.h>
#include <stdint.h>

typedef struct cli_tail {
  char *buf;      /* 2 * cap bytes */
  size_t cap;     /* bytes kept */
  size_t len;     /* bytes in buf (up to 2 * cap) */
  uint64_t total; /* bytes seen */
} cli_tail_t;

/* Returns 0, or -1 when out of memory. */
int cli_tail_init(cli_tail_t *t, size_t cap);
void cli_tail_free(cli_tail_t *t);
void cli_tail_add(cli_tail_t *t, const char *data, size_t n);

/* The kept bytes (the last cap) as valid UTF-8: when the stream was cut, a
 * character split by the cut is dropped; bytes that are not UTF-8 become
 * U+FFFD. NUL bytes stay (JSON can hold them). Yours: free(). *len gets the
 * length. NULL when out of memory. */
char *cli_tail_text(const cli_tail_t *t, size_t *len);

#endif
