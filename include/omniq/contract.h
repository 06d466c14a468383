/* SPDX-License-Identifier: MIT */
/* OmniQ storage contract — proving a backend.
 *
 * The contract is the shared test suite every storage backend passes: the
 * semantics omniq/storage.h promises (atomic enqueue batches, claims that
 * count one attempt and one token, claim order, token-checked finishes that
 * change nothing when stale, cancellation that counts the attempts it
 * cancelled, leases, results, one claim winning under threads and
 * processes). A backend is done when omniq_contract_run passes on it.
 *
 * It ships as libomniq_contract (pkg-config `omniq-contract`, CMake target
 * omniq::omniq_contract), built on the public API and cmocka. A program
 * registers nothing: it passes its table and how to make a fresh, empty
 * store for each test. docs/storage-custom.md walks through an example.
 *
 * Processes: several tests fork. Each child opens the backend itself with
 * ops->open on the same settings (and the parent closes its own handle
 * first), so a backend's state must be something another process can open
 * from those settings: a file, a directory, a server. A backend whose
 * store lives in one process's memory sets single_process, and those tests
 * run their threads only.
 *
 * Not thread-safe: one run at a time per process.
 */
#ifndef OMNIQ_CONTRACT_H
#define OMNIQ_CONTRACT_H

#include "storage.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct omniq_contract_env {
  /* Makes a new, empty store and fills *s so ops->open opens it. *s
   * arrives as omniq_settings_init() left it, with backend set to
   * ops->name and log_level OMNIQ_LOG_ERROR. Returns 0, or non-zero to fail
   * the test. Called before every test. */
  int (*setup)(void *userdata, omniq_settings_t *s);
  /* Destroys the store setup made (every handle to it is closed by then).
   * May be NULL. */
  void (*teardown)(void *userdata, const omniq_settings_t *s);
  void *userdata;
  /* NULL = run every test; else only the tests whose name contains it. */
  const char *filter;
  /* Non-zero: the store cannot be opened from another process; tests that
   * fork run their threads only. */
  int single_process;
} omniq_contract_env_t;

/* Fills env for a backend whose store is a directory: setup is
 * omniq_contract_dir_setup, teardown omniq_contract_dir_teardown, no
 * filter. */
OMNIQ_EXTERN void omniq_contract_env_init(omniq_contract_env_t *env);

/* Setup for a directory store: a fresh directory under $TMPDIR (or /tmp)
 * as base_dir, db_url "", fsync off (durability against power loss is not
 * observable in a test, and it slows the large tests down). userdata is
 * unused. */
OMNIQ_EXTERN int omniq_contract_dir_setup(void *userdata, omniq_settings_t *s);
/* Removes base_dir and everything in it. */
OMNIQ_EXTERN void omniq_contract_dir_teardown(void *userdata, const omniq_settings_t *s);

/* Runs the contract on ops (borrowed for the call) with env (NULL = the
 * directory env of omniq_contract_env_init), printing cmocka's report to
 * stdout. The tests of what a later storage ABI than the table's added are
 * skipped (and counted in a line before the report). Returns the number of
 * tests that failed (0 = the backend passes), or -1 if ops is not a table
 * for ABI 2 or later with every operation of its ABI. */
OMNIQ_EXTERN int omniq_contract_run(const omniq_storage_ops_t *ops,
                                    const omniq_contract_env_t *env);

#ifdef __cplusplus
}
#endif
#endif /* OMNIQ_CONTRACT_H */
