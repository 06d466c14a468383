#include "support/files.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

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
