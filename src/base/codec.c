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
 * NUL: "\u0000" is valid JSON in any string, keys included, and is accepted
 * (JSON_ALLOW_NUL). The text stays JSON text, so a NUL is always the six
 * bytes of its escape and never a raw byte: every accessor's C string holds
 * all of it. jansson 2.14 still refuses the escape in an object key, so text
 * that has one is checked as a copy in which, inside strings, each \u0000
 * becomes \u0001\u0002 and each \u0001 becomes \u0001\u0001. That rewrite
 * is one-to-one on strings, so two keys are equal in the copy exactly when
 * they are in the text (duplicates are still found), and it touches nothing
 * outside complete escapes, so valid text stays valid and invalid text
 * invalid. Positions in messages about such text are the copy's.
 *
 * Messages carry jansson's line, column and byte position so a producer can
 * find the fault in a long document. */
#include "base/codec.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "omniq.h"

#define PARSE_FLAGS (JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

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

/* The copy described above, or NULL when out of memory. Yours: omniq__free. */
static char *nul_keys_checkable(const char *text) {
  size_t n = strlen(text), o = 0;
  char *out = omniq__malloc(2 * n + 1), quote = 0;
  if (out == NULL) return NULL;
  for (size_t i = 0; i < n;) {
    if (!quote) {
      quote = text[i] == '"';
      out[o++] = text[i++];
    } else if (text[i] == '"') {
      quote = 0;
      out[o++] = text[i++];
    } else if (text[i] != '\\' || i + 1 == n) {
      out[o++] = text[i++];
    } else if (strncmp(text + i, "\\u0000", 6) == 0 || strncmp(text + i, "\\u0001", 6) == 0) {
      memcpy(out + o, text[i + 5] == '0' ? "\\u0001\\u0002" : "\\u0001\\u0001", 12);
      o += 12;
      i += 6;
    } else { /* any other escape, copied whole so \" does not end the string */
      out[o++] = text[i++];
      out[o++] = text[i++];
    }
  }
  out[o] = '\0';
  return out;
}

/* Parses text as the check does; see the NUL note above. */
static json_t *parse(const char *text, json_error_t *jerr, int *nomem) {
  json_t *j = json_loads(text, PARSE_FLAGS, jerr);
  *nomem = 0;
  if (j != NULL || strstr(text, "\\u0000") == NULL) return j;
  char *copy = nul_keys_checkable(text);
  if (copy == NULL) {
    *nomem = 1;
    return NULL;
  }
  j = json_loads(copy, PARSE_FLAGS, jerr);
  omniq__free(copy);
  return j;
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
  /* The empty array and object, what a task without arguments carries,
   * need no parser: jansson builds and frees a tree for each check. */
  if ((kind == OMNIQ__JSON_ARGS && strcmp(text, "[]") == 0) ||
      (kind == OMNIQ__JSON_KWARGS && strcmp(text, "{}") == 0))
    return OMNIQ_OK;

  int nomem;
  j = parse(text, &jerr, &nomem);
  if (nomem) return fail(OMNIQ_ENOMEM, err, errlen, "%s: out of memory checking it", what);
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
