/* SPDX-License-Identifier: MIT */
/* mkdir -p: each prefix of the path in turn, an existing one is fine. */
#include "base/mkdir.h"

#include <errno.h>
#include <stdio.h>
#include <sys/stat.h>

#include "omniq.h"

int omniq__mkdir_p(const char *dir) {
  char buf[OMNIQ_PATH_MAX];
  if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return ENAMETOOLONG;
  for (char *p = buf + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char saved = *p;
    *p = '\0';
    if (mkdir(buf, 0777) != 0 && errno != EEXIST) return errno;
    if (saved == '\0') return 0;
    *p = saved;
  }
}
