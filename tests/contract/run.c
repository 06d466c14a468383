/* SPDX-License-Identifier: MIT */
/* omniq_contract_run: gathers the sections, applies the filter, runs them
 * with cmocka against one backend table. */
#include "suite.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support/files.h"

void omniq_contract_env_init(omniq_contract_env_t *env) {
  if (env == NULL) return;
  memset(env, 0, sizeof *env);
  env->setup = omniq_contract_dir_setup;
  env->teardown = omniq_contract_dir_teardown;
}

int omniq_contract_dir_setup(void *userdata, omniq_settings_t *s) {
  (void)userdata;
  char *dir = th_tmpdir();
  if (dir == NULL || strlen(dir) >= sizeof s->base_dir) {
    th_rmtree(dir);
    return -1;
  }
  memcpy(s->base_dir, dir, strlen(dir) + 1);
  s->db_url[0] = '\0';
  s->fsync = 0;
  free(dir);
  return 0;
}

void omniq_contract_dir_teardown(void *userdata, const omniq_settings_t *s) {
  (void)userdata;
  char *dir = strdup(s->base_dir);
  th_rmtree(dir); /* frees dir; NULL is a no-op */
}

/* The operations the table's ABI requires; a missing one would crash a
 * test. */
static int table_usable(const omniq_storage_ops_t *o) {
  int abi2 = o != NULL && o->abi_version >= 2 && o->name != NULL && o->open != NULL &&
             o->close != NULL && o->enqueue != NULL && o->claim != NULL && o->finish != NULL &&
             o->extend_lease != NULL && o->cancel != NULL && o->get_task != NULL &&
             o->get_result != NULL && o->purge_results != NULL && o->count_by_status != NULL &&
             o->expired_leases != NULL;
  if (!abi2 || o->abi_version < 3) return abi2;
  return o->enqueue_unique != NULL && o->list != NULL && o->retry != NULL &&
         o->delete_task != NULL && o->purge_tasks != NULL && o->set_paused != NULL &&
         o->set_rate != NULL && o->queue_stats != NULL && o->claim_chore != NULL;
}

int omniq_contract_run(const omniq_storage_ops_t *ops, const omniq_contract_env_t *env) {
  const ct_section_t *const sections[] = {
      &ct_section_enqueue, &ct_section_claim,   &ct_section_finish,      &ct_section_cancel,
      &ct_section_leases,  &ct_section_results, &ct_section_concurrency, &ct_section_list,
      &ct_section_manage,  &ct_section_queues,  &ct_section_unique,      &ct_section_batch,
  };
  size_t skipped = 0;
  omniq_contract_env_t dflt;
  struct CMUnitTest *tests;
  size_t total = 0, n = 0;
  char group[96];

  if (!table_usable(ops) || (env != NULL && env->setup == NULL)) return -1;
  if (env == NULL) {
    omniq_contract_env_init(&dflt);
    env = &dflt;
  }
  for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) total += sections[s]->n;
  if ((tests = calloc(total, sizeof *tests)) == NULL) return -1;
  for (size_t s = 0; s < sizeof sections / sizeof sections[0]; s++) {
    uint32_t abi = sections[s]->abi != 0 ? sections[s]->abi : 2;
    for (size_t i = 0; i < sections[s]->n; i++) {
      if (env->filter != NULL && strstr(sections[s]->tests[i].name, env->filter) == NULL) continue;
      if (abi > ops->abi_version)
        skipped++;
      else
        tests[n++] = sections[s]->tests[i];
    }
  }
  if (skipped > 0)
    printf("storage contract: %s is a storage ABI %u table; %zu test(s) of later ABIs skipped\n",
           ops->name, (unsigned)ops->abi_version, skipped);
  ct_ops = ops;
  ct_env = env;
  snprintf(group, sizeof group, "storage contract: %s", ops->name);
  int failed = n > 0 ? _cmocka_run_group_tests(group, tests, n, NULL, NULL) : 0;
  ct_ops = NULL;
  ct_env = NULL;
  free(tests);
  return failed;
}
