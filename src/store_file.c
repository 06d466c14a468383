/* Placeholder until the file backend lands: opening it reports an error. */
#include <stdio.h>
#include "store.h"

static int open_file(const omniq_settings_t *s, void **backend, char *err, size_t errlen) {
  (void)s;
  *backend = NULL;
  snprintf(err, errlen, "the file backend is not built yet");
  return OMNIQ_ESTORAGE;
}

static void close_file(void *backend) { (void)backend; }

const omniq_storage_ops_t omniq__file_ops = {
    .abi_version = OMNIQ_STORAGE_ABI, .name = "file", .open = open_file, .close = close_file};
