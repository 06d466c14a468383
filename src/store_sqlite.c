/* Placeholder until the sqlite backend lands: opening it reports an error. */
#include <stdio.h>
#include "store.h"

static int open_sqlite(const omniq_settings_t *s, void **backend, char *err, size_t errlen) {
  (void)s;
  *backend = NULL;
  snprintf(err, errlen, "the sqlite backend is not built yet");
  return OMNIQ_ESTORAGE;
}

static void close_sqlite(void *backend) { (void)backend; }

const omniq_storage_ops_t omniq__sqlite_ops = {
    .abi_version = OMNIQ_STORAGE_ABI, .name = "sqlite", .open = open_sqlite, .close = close_sqlite};
