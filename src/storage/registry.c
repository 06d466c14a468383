/* SPDX-License-Identifier: MIT */
/* The storage registry.
 *
 * Backends register by name; the built-ins once, on first use. A table is
 * checked here, once, so every caller may take its operations as present:
 * it must say which ABI it was written for and fill every operation that
 * ABI has (an ABI 1 table is refused, since its layout differs). An ABI 2
 * table is accepted: core/store.c checks abi_version before it reaches for
 * an ABI 3 operation. Tables written for a newer ABI are accepted;
 * operations past this build's OMNIQ_STORAGE_ABI are never read. */
#include "storage/registry.h"

#include <pthread.h>
#include <string.h>

#include "base/error.h"

#define MAX_BACKENDS 16

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const omniq_storage_ops_t *registry[MAX_BACKENDS];
static size_t registry_len;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static const omniq_storage_ops_t *find_locked(const char *name) {
  for (size_t i = 0; i < registry_len; i++)
    if (strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

/* Every operation of the table's ABI is required: all of ABI 2, and from
 * ABI 3 on, the operations ABI 3 appended. ABI 4's wake_path and ABI 5's
 * finish_claim are optional. */
static int table_complete(const omniq_storage_ops_t *o) {
  int abi2 = o->abi_version >= 2 && o->name != NULL && o->name[0] != '\0' && o->open != NULL &&
             o->close != NULL && o->enqueue != NULL && o->claim != NULL && o->finish != NULL &&
             o->extend_lease != NULL && o->cancel != NULL && o->get_task != NULL &&
             o->get_result != NULL && o->purge_results != NULL && o->count_by_status != NULL &&
             o->expired_leases != NULL;
  if (!abi2 || o->abi_version < 3) return abi2;
  return o->enqueue_unique != NULL && o->list != NULL && o->retry != NULL &&
         o->delete_task != NULL && o->purge_tasks != NULL && o->set_paused != NULL &&
         o->set_rate != NULL && o->queue_stats != NULL && o->claim_chore != NULL;
}

static int register_ops(const omniq_storage_ops_t *ops) {
  int rc = OMNIQ_OK;
  if (ops == NULL || !table_complete(ops)) return OMNIQ_EINVAL;
  pthread_mutex_lock(&registry_lock);
  if (find_locked(ops->name) != NULL || registry_len == MAX_BACKENDS)
    rc = OMNIQ_EINVAL;
  else
    registry[registry_len++] = ops;
  pthread_mutex_unlock(&registry_lock);
  return rc;
}

static void register_builtins(void) {
  register_ops(&omniq__sqlite_ops);
  register_ops(&omniq__file_ops);
  register_ops(&omniq__postgres_ops);
}

int omniq_storage_register(const omniq_storage_ops_t *ops) {
  pthread_once(&builtin_once, register_builtins);
  int rc = register_ops(ops);
  if (rc != OMNIQ_OK)
    return omniq__err(0, rc,
                      "storage backend %s: not a table for storage ABI 2 to %d with every "
                      "operation of its ABI, or its name is already taken",
                      ops && ops->name ? ops->name : "(null)", OMNIQ_STORAGE_ABI);
  return rc;
}

const omniq_storage_ops_t *omniq_storage_find(const char *name) {
  const omniq_storage_ops_t *ops;
  if (name == NULL) return NULL;
  pthread_once(&builtin_once, register_builtins);
  pthread_mutex_lock(&registry_lock);
  ops = find_locked(name);
  pthread_mutex_unlock(&registry_lock);
  return ops;
}
