/* SPDX-License-Identifier: MIT */
/* Runs a fuzz target over files, without libFuzzer: each argument is a
 * file or a folder of files, each file one input. The test suite replays
 * every corpus this way in every build (plain, ASan+UBSan, TSan), so an
 * input that once crashed a target stays a test. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (f == NULL) return -1;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
  size_t got = buf != NULL ? fread(buf, 1, (size_t)n, f) : 0;
  fclose(f);
  if (buf == NULL || got != (size_t)n) {
    free(buf);
    return -1;
  }
  LLVMFuzzerTestOneInput(buf, got);
  free(buf);
  return 0;
}

int main(int argc, char **argv) {
  int inputs = 0;
  if (LLVMFuzzerInitialize != NULL) LLVMFuzzerInitialize(&argc, &argv);
  for (int i = 1; i < argc; i++) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s: not found\n", argv[i]);
      return 2;
    }
    if (!S_ISDIR(st.st_mode)) {
      if (run_file(argv[i]) != 0) return 2;
      inputs++;
      continue;
    }
    DIR *d = opendir(argv[i]);
    struct dirent *de;
    while (d != NULL && (de = readdir(d)) != NULL) {
      char path[4096];
      if (de->d_name[0] == '.') continue;
      snprintf(path, sizeof path, "%s/%s", argv[i], de->d_name);
      if (run_file(path) != 0) return 2;
      inputs++;
    }
    if (d != NULL) closedir(d);
  }
  printf("replay: %d input(s), no failure\n", inputs);
  return inputs > 0 ? 0 : 2;
}
