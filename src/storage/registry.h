/* SPDX-License-Identifier: MIT */
/* The storage registry: backend tables by name. omniq_storage_register and
 * omniq_storage_find (omniq/storage.h) are its public face; this header adds
 * the built-in tables, for the registry itself and for tests and benchmarks
 * that drive a backend straight through its table. The registry knows
 * tables and names only, never a handle. */
#ifndef OMNIQ_STORAGE_REGISTRY_H
#define OMNIQ_STORAGE_REGISTRY_H

#include "omniq/storage.h"

/* The built-in backends, registered on first use of the registry. */
extern const omniq_storage_ops_t omniq__sqlite_ops;
extern const omniq_storage_ops_t omniq__file_ops;
extern const omniq_storage_ops_t omniq__postgres_ops;

#endif
