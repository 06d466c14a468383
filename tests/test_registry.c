/* SPDX-License-Identifier: MIT */
/* The storage registry: backends by name, and the tables it refuses — one
 * written for an older ABI (its layout differs), one missing an operation
 * (a call would crash), a name already taken. */
#include <stddef.h>
#include <string.h>

#include "omniq/storage.h"
#include "support/helpers.h"

static void test_builtin_backends_are_found_by_name(void **state) {
  (void)state;
  assert_non_null(omniq_storage_find("sqlite"));
  assert_non_null(omniq_storage_find("file"));
  assert_string_equal(omniq_storage_find("file")->name, "file");
  assert_null(omniq_storage_find("nosuch"));
  assert_null(omniq_storage_find(NULL));
}

/* A whole table under another name opens a store like the original. */
static void test_registered_table_is_found_and_opens_a_store(void **state) {
  static omniq_storage_ops_t copy;
  char *dir = th_tmpdir();
  omniq_settings_t s;
  omniq_t *oq = NULL;
  char id[OMNIQ_ID_SIZE];
  (void)state;
  copy = *omniq_storage_find("sqlite");
  copy.name = "sqlite-again";
  th_ok(NULL, omniq_storage_register(&copy));
  assert_ptr_equal(omniq_storage_find("sqlite-again"), &copy);
  th_settings(&s, "sqlite-again", dir, NULL);
  th_ok(NULL, omniq_open(&oq, &s));
  th_ok(oq, omniq_enqueue(oq, "work", NULL, NULL, NULL, id));
  omniq_close(oq);
  th_rmtree(dir);
}

static void test_table_for_an_older_abi_is_refused(void **state) {
  static omniq_storage_ops_t old;
  (void)state;
  old = *omniq_storage_find("sqlite");
  old.name = "old-abi";
  old.abi_version = 1;
  assert_int_equal(omniq_storage_register(&old), OMNIQ_EINVAL);
  assert_non_null(strstr(omniq_errmsg(NULL), "old-abi"));
  assert_null(omniq_storage_find("old-abi"));
}

/* Each operation in turn left out: every one is refused, so no caller ever
 * has to check for a missing operation. */
static void test_table_missing_an_operation_is_refused(void **state) {
  static const size_t ops[] = {
      offsetof(omniq_storage_ops_t, open),          offsetof(omniq_storage_ops_t, close),
      offsetof(omniq_storage_ops_t, enqueue),       offsetof(omniq_storage_ops_t, claim),
      offsetof(omniq_storage_ops_t, finish),        offsetof(omniq_storage_ops_t, extend_lease),
      offsetof(omniq_storage_ops_t, cancel),        offsetof(omniq_storage_ops_t, get_task),
      offsetof(omniq_storage_ops_t, get_result),    offsetof(omniq_storage_ops_t, purge_results),
      offsetof(omniq_storage_ops_t, count_by_status),
      offsetof(omniq_storage_ops_t, expired_leases),
  };
  static omniq_storage_ops_t partial;
  (void)state;
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
    partial = *omniq_storage_find("sqlite");
    partial.name = "partial";
    memset((char *)&partial + ops[i], 0, sizeof(void (*)(void)));
    assert_int_equal(omniq_storage_register(&partial), OMNIQ_EINVAL);
    assert_null(omniq_storage_find("partial"));
  }
  partial = *omniq_storage_find("sqlite");
  partial.name = "";
  assert_int_equal(omniq_storage_register(&partial), OMNIQ_EINVAL);
  assert_int_equal(omniq_storage_register(NULL), OMNIQ_EINVAL);
}

static void test_a_name_is_taken_once(void **state) {
  static omniq_storage_ops_t again;
  (void)state;
  again = *omniq_storage_find("file");
  assert_int_equal(omniq_storage_register(&again), OMNIQ_EINVAL); /* "file" is built in */
  assert_ptr_not_equal(omniq_storage_find("file"), &again);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_builtin_backends_are_found_by_name),
      cmocka_unit_test(test_registered_table_is_found_and_opens_a_store),
      cmocka_unit_test(test_table_for_an_older_abi_is_refused),
      cmocka_unit_test(test_table_missing_an_operation_is_refused),
      cmocka_unit_test(test_a_name_is_taken_once),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
