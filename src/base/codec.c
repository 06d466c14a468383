/* SPDX-License-Identifier: MIT */
/* Codec: the check every argument and result passes before it is stored.
 *
 * With the json serializer, text must be one complete JSON value of the
 * right kind: args an array, kwargs an object, a result any value. jansson
 * parses it fully, so truncated text and trailing garbage ("[1] x") fail
 * here, at the producer, instead of in a handler hours later. Duplicate
 * object keys are refused too: JSON leaves their meaning open, and two
 * handlers reading the same kwargs must not see different values.
 *
 * The text is only checked, never rewritten: what the producer sent is what
 * the handler reads, byte for byte.
 *
 * With the raw serializer nothing is checked. It exists for trusted
 * producers that already guarantee their format and want to skip the parse;
 * anything else stored that way reaches handlers unvalidated.
 *
 * Messages carry jansson's line, column and byte position so a producer can
 * find the fault in a long document. */
#include "base/codec.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

#include "omniq.h"

static const char *kind_name(omniq__json_kind_t kind) {
  switch (kind) {
  case OMNIQ__JSON_ARGS: return "args";
  case OMNIQ__JSON_KWARGS: return "kwargs";
  default: return "value";
  }
}

static const char *type_name(const json_t *j) {
  switch (json_typeof(j)) {
  case JSON_OBJECT: return "object";
  case JSON_ARRAY: return "array";
  case JSON_STRING: return "string";
  case JSON_INTEGER:
  case JSON_REAL: return "number";
  case JSON_TRUE:
  case JSON_FALSE: return "boolean";
  default: return "null";
  }
}

/* Writes to err when the caller gave room for it, and returns rc. */
static int fail(int rc, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(int rc, char *err, size_t errlen, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (err != NULL && errlen > 0) vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
  return rc;
}

int omniq__codec_check(int serializer, omniq__json_kind_t kind, const char *text, char *err,
                       size_t errlen) {
  const char *what = kind_name(kind);
  json_error_t jerr;
  json_t *j;
  int rc = OMNIQ_OK;

  if (text == NULL) return fail(OMNIQ_EINVAL, err, errlen, "%s: text is NULL", what);
  if (serializer == OMNIQ_SERIALIZER_RAW) return OMNIQ_OK;
  if (serializer != OMNIQ_SERIALIZER_JSON)
    return fail(OMNIQ_EINVAL, err, errlen, "%s: unknown serializer %d", what, serializer);

  j = json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
  if (j == NULL)
    return fail(OMNIQ_ESERIALIZE, err, errlen,
                "%s: invalid JSON at line %d, column %d (position %d): %s", what, jerr.line,
                jerr.column, jerr.position, jerr.text);
  if (kind == OMNIQ__JSON_ARGS && !json_is_array(j))
    rc = fail(OMNIQ_ESERIALIZE, err, errlen, "%s: must be a JSON array, got %s", what,
              type_name(j));
  else if (kind == OMNIQ__JSON_KWARGS && !json_is_object(j))
    rc = fail(OMNIQ_ESERIALIZE, err, errlen, "%s: must be a JSON object, got %s", what,
              type_name(j));
  json_decref(j);
  return rc;
}

int omniq__codec_is_utf8(const char *text, size_t len) {
  json_t *j = json_stringn(text, len); /* jansson checks the encoding */
  json_decref(j);
  return j != NULL;
}
