/* SPDX-License-Identifier: MIT */
/* Built against an installed OmniQ, once through pkg-config and once
 * through find_package(omniq): proves the installed headers, library and
 * package files are enough on their own. Prints OK on success. */
#include <omniq.h>
#include <omniq/storage.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  omniq_settings_t s;
  omniq_settings_init(&s);
  if (strcmp(s.backend, OMNIQ_DEFAULT_BACKEND) != 0) {
    fprintf(stderr, "default backend is '%s'\n", s.backend);
    return 1;
  }
  if (strcmp(omniq_strerror(OMNIQ_ENOTFOUND), "not found") != 0) {
    fprintf(stderr, "strerror gave '%s'\n", omniq_strerror(OMNIQ_ENOTFOUND));
    return 1;
  }
  if (omniq_storage_find("sqlite") == NULL) {
    fprintf(stderr, "the sqlite backend is not registered\n");
    return 1;
  }
  puts("OK");
  return 0;
}
