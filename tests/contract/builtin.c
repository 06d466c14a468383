/* SPDX-License-Identifier: MIT */
/* Runs the storage contract on a built-in backend, the way any backend runs
 * it (docs/storage-custom.md): `contract sqlite`, `contract file`, and
 * optionally a filter, `contract file cancel`. */
#include <stdio.h>

#include "omniq/contract.h"

int main(int argc, char **argv) {
  const omniq_storage_ops_t *ops = argc > 1 ? omniq_storage_find(argv[1]) : NULL;
  omniq_contract_env_t env;
  if (ops == NULL || argc > 3) {
    fprintf(stderr, "usage: contract BACKEND [FILTER] (a registered backend, e.g. sqlite)\n");
    return 2;
  }
  omniq_contract_env_init(&env);
  if (argc > 2) env.filter = argv[2];
  return omniq_contract_run(ops, &env) == 0 ? 0 : 1;
}
