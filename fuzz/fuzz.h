/* SPDX-License-Identifier: MIT */
/* What the fuzz targets share: the libFuzzer entry point they define, and
 * a check that stops the run (a crash libFuzzer saves) when a property
 * fails. Targets are built two ways: with clang and -fsanitize=fuzzer
 * (make fuzz), and with any compiler and replay.c as main, to run the
 * corpus in fuzz/corpus/<target>/ as part of the test suite. */
#ifndef OMNIQ_FUZZ_H
#define OMNIQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                        \
  do {                                                                          \
    if (!(cond)) {                                                              \
      fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      abort();                                                                  \
    }                                                                           \
  } while (0)

/* data as a NUL-terminated string (cut at its first NUL); free() it. */
static inline char *fuzz_cstr(const uint8_t *data, size_t size) {
  char *s = malloc(size + 1);
  if (s == NULL) abort();
  for (size_t i = 0; i < size; i++) s[i] = (char)data[i];
  s[size] = '\0';
  return s;
}

#endif
