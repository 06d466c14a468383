/* SPDX-License-Identifier: MIT */
/* Fuzz target: the OMNIQ_* settings parser (core/settings.c). The input is
 * lines; each line's first byte picks a variable and the rest is its value.
 * The variables are set, parsed by omniq_settings_from_env, and the result
 * checked by omniq__settings_validate. Properties: no crash; a refusal
 * leaves the settings as they were and says which variable; accepted
 * settings pass the validation omniq_open runs. The whole input is also a
 * duration for the seconds parser, whose result must be within the limit. */
#include <string.h>

#include "core/settings.h"
#include "fuzz.h"
#include "omniq.h"

static const char *const vars[] = {
    "OMNIQ_BACKEND",     "OMNIQ_DB_URL",          "OMNIQ_BASE_DIR",
    "OMNIQ_DEFAULT_TIMEOUT", "OMNIQ_DEFAULT_MAX_RETRIES", "OMNIQ_LEASE",
    "OMNIQ_RESULT_TTL",  "OMNIQ_SERIALIZER",      "OMNIQ_LOG_LEVEL",
    "OMNIQ_LOG_FORMAT",  "OMNIQ_RETRY_BASE",      "OMNIQ_RETRY_CAP",
    "OMNIQ_FSYNC",       "OMNIQ_HANDLER_PATH",
};
#define NVARS (sizeof vars / sizeof vars[0])

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *text = fuzz_cstr(data, size), err[512];
  int64_t ms;
  if (omniq__parse_seconds(text, &ms) == OMNIQ_OK)
    FUZZ_CHECK(ms >= 0 && ms <= OMNIQ_DURATION_MAX_MS);

  for (char *line = text, *next; line != NULL; line = next) {
    next = strchr(line, '\n');
    if (next != NULL) *next++ = '\0';
    if (*line != '\0') setenv(vars[(unsigned char)line[0] % NVARS], line + 1, 1);
  }
  omniq_settings_t s, before;
  omniq_settings_init(&s);
  before = s;
  int rc = omniq_settings_from_env(&s);
  FUZZ_CHECK(rc == OMNIQ_OK || rc == OMNIQ_ECONFIG);
  if (rc == OMNIQ_OK) {
    if (omniq__settings_validate(&s, err, sizeof err) != OMNIQ_OK) {
      fprintf(stderr, "accepted but invalid: %s\n", err);
      abort();
    }
  } else {
    FUZZ_CHECK(memcmp(&s, &before, sizeof s) == 0);
    FUZZ_CHECK(strncmp(omniq_errmsg(NULL), "OMNIQ_", 6) == 0);
  }
  for (size_t i = 0; i < NVARS; i++) unsetenv(vars[i]);
  free(text);
  return 0;
}
