/* SPDX-License-Identifier: MIT */
/* Fuzz target: the check every args, kwargs and result text passes
 * (base/codec.c), with both serializers. The first byte picks the kind;
 * the rest is the text. Properties: no crash or sanitizer report, a code
 * from the documented set, and a message whenever the text is refused. */
#include <string.h>

#include "base/codec.h"
#include "fuzz.h"
#include "omniq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  omniq__json_kind_t kind = (omniq__json_kind_t)(data[0] % 3);
  char *text = fuzz_cstr(data + 1, size - 1), err[512];
  for (int serializer = OMNIQ_SERIALIZER_JSON; serializer <= OMNIQ_SERIALIZER_RAW; serializer++) {
    err[0] = '\0';
    int rc = omniq__codec_check(serializer, kind, text, err, sizeof err);
    FUZZ_CHECK(rc == OMNIQ_OK || rc == OMNIQ_ESERIALIZE || rc == OMNIQ_ENOMEM);
    FUZZ_CHECK(rc == OMNIQ_OK || err[0] != '\0');
    FUZZ_CHECK(serializer != OMNIQ_SERIALIZER_RAW || rc == OMNIQ_OK);
  }
  free(text);
  return 0;
}
