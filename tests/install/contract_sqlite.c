/* SPDX-License-Identifier: MIT */
/* Built against an installed OmniQ and its storage contract, once through
 * pkg-config (omniq-contract) and once through find_package(omniq): runs
 * the contract on the built-in SQLite backend exactly as an outside
 * backend runs it on itself (docs/storage-custom.md). Exits 0 when every
 * contract test passed. */
#include <omniq/contract.h>
#include <stdio.h>

int main(void) {
  const omniq_storage_ops_t *ops = omniq_storage_find("sqlite");
  omniq_contract_env_t env;
  if (ops == NULL) {
    fprintf(stderr, "the sqlite backend is not registered\n");
    return 1;
  }
  omniq_contract_env_init(&env); /* a fresh directory per test */
  int failed = omniq_contract_run(ops, &env);
  if (failed != 0) fprintf(stderr, "contract: %d test(s) failed\n", failed);
  return failed == 0 ? 0 : 1;
}
