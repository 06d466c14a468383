/* SPDX-License-Identifier: MIT */
/* Bounded tails of a stream.
 *
 * The buffer holds twice the kept size: bytes are appended, and only when
 * it is full are the last cap bytes moved to the front. Each byte is thus
 * moved at most once per cap bytes appended, and the tail is always one
 * contiguous run, ready to be cleaned and copied out.
 *
 * Cleaning for JSON: jansson accepts only valid UTF-8, and a command may
 * print anything (binary, Latin-1, a multi-byte character cut by the tail's
 * edge). Each invalid byte becomes U+FFFD, the usual replacement, so the
 * text keeps its length in characters and nothing fails. */
#include "tail.h"

#include <stdlib.h>
#include <string.h>

int cli_tail_init(cli_tail_t *t, size_t cap) {
  memset(t, 0, sizeof *t);
  t->cap = cap;
  t->buf = malloc(2 * cap);
  return t->buf != NULL ? 0 : -1;
}

void cli_tail_free(cli_tail_t *t) {
  free(t->buf);
  t->buf = NULL;
}

void cli_tail_add(cli_tail_t *t, const char *data, size_t n) {
  t->total += n;
  if (n >= t->cap) { /* only the last cap bytes of data can survive */
    memcpy(t->buf, data + n - t->cap, t->cap);
    t->len = t->cap;
    return;
  }
  if (t->len + n > 2 * t->cap) {
    size_t keep = t->cap - n; /* what must stay so that cap bytes remain after the append */
    memmove(t->buf, t->buf + t->len - keep, keep);
    t->len = keep;
  }
  memcpy(t->buf + t->len, data, n);
  t->len += n;
}

static int cont(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Length of the valid UTF-8 sequence at s (n bytes available), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n) {
  unsigned char c = s[0];
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return n >= 2 && cont(s[1]) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (n < 3 || !cont(s[1]) || !cont(s[2])) return 0;
    if (c == 0xE0 && s[1] < 0xA0) return 0; /* overlong */
    if (c == 0xED && s[1] > 0x9F) return 0; /* UTF-16 surrogates */
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (n < 4 || !cont(s[1]) || !cont(s[2]) || !cont(s[3])) return 0;
    if (c == 0xF0 && s[1] < 0x90) return 0; /* overlong */
    if (c == 0xF4 && s[1] > 0x8F) return 0; /* past U+10FFFF */
    return 4;
  }
  return 0;
}

char *cli_tail_text(const cli_tail_t *t, size_t *len) {
  size_t n = t->len < t->cap ? t->len : t->cap;
  const unsigned char *s = (const unsigned char *)t->buf + (t->len - n);
  /* A character cut in two by the tail's edge is not the command's fault. */
  if (t->total > n)
    for (int i = 0; i < 3 && n > 0 && cont(*s); i++, s++, n--) {
    }
  char *out = malloc(3 * n + 1); /* each byte becomes at most 3 (U+FFFD) */
  size_t o = 0;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq(s + i, n - i);
    if (k == 0) {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i++;
    } else {
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    }
  }
  out[o] = '\0';
  *len = o;
  return out;
}
