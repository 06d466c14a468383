/* SPDX-License-Identifier: MIT */
#include "support/files.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *th_tmpdir(void) {
  const char *base = getenv("TMPDIR");
  char *path = NULL;
  if (base == NULL || *base == '\0') base = "/tmp";
  if (asprintf(&path, "%s/omniq-test-XXXXXX", base) < 0) return NULL;
  if (mkdtemp(path) == NULL) {
    free(path);
    return NULL;
  }
  return path;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path) == 0 || errno == ENOENT ? 0 : -1;
}

void th_rmtree(char *path) {
  if (path == NULL) return;
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
  free(path);
}

static long long du_total;

/* The space an entry takes, but SQLite's WAL and its index: a WAL grows to
 * its checkpoint threshold and is reset, whatever the database holds. */
static int du_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  size_t n = strlen(path);
  (void)flag;
  (void)ftw;
  if (n > 4 && (strcmp(path + n - 4, "-wal") == 0 || strcmp(path + n - 4, "-shm") == 0)) return 0;
  du_total += (long long)sb->st_blocks * 512;
  return 0;
}

long long th_du(const char *path) {
  du_total = 0;
  nftw(path, du_entry, 16, FTW_PHYS);
  return du_total;
}
