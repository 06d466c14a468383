/* SPDX-License-Identifier: MIT */
/* Codec: validates JSON at the boundary with jansson. In raw mode text is
 * stored unchecked (trusted producers only). */
#ifndef OMNIQ_BASE_CODEC_H
#define OMNIQ_BASE_CODEC_H

#include <stddef.h>

typedef enum {
  OMNIQ__JSON_ARGS,   /* must be an array */
  OMNIQ__JSON_KWARGS, /* must be an object */
  OMNIQ__JSON_VALUE   /* any JSON value */
} omniq__json_kind_t;

/* OMNIQ_OK if text is acceptable for kind under serializer
 * (omniq_serializer_t); else OMNIQ_ESERIALIZE with the parser's line,
 * column and position in err. NULL text is OMNIQ_EINVAL. */
int omniq__codec_check(int serializer, omniq__json_kind_t kind, const char *text, char *err,
                       size_t errlen);

/* 1 if the len bytes of text are valid UTF-8 (so JSON can carry them). */
int omniq__codec_is_utf8(const char *text, size_t len);

#endif
