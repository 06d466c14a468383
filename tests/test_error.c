/* SPDX-License-Identifier: MIT */
/* Status codes, per-thread and per-handle error messages, errno mapping, and
 * record constructors when the Nth allocation fails. */
#include "support/helpers.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/error.h"
#include "base/ids.h"
#include "base/records.h"

static const struct {
  int code;
  const char *name;
} codes[] = {
#define CODE(name, value, text) {OMNIQ_##name, "OMNIQ_" #name},
    OMNIQ_ERRNO_MAP(CODE)
#undef CODE
};
#define NCODES (sizeof codes / sizeof codes[0])

static int teardown(void **state) {
  (void)state;
  omniq__alloc_fail_after(-1);
  return 0;
}

static void test_every_code_has_its_own_description(void **state) {
  (void)state;
  for (size_t i = 0; i < NCODES; i++) {
    const char *text = omniq_strerror(codes[i].code);
    assert_non_null(text);
    assert_true(text[0] != '\0');
    if (strcmp(text, "unknown error") == 0) fail_msg("%s has no description", codes[i].name);
    for (size_t k = 0; k < i; k++)
      if (strcmp(text, omniq_strerror(codes[k].code)) == 0)
        fail_msg("%s and %s share \"%s\"", codes[i].name, codes[k].name, text);
  }
}

static void test_unknown_codes_give_unknown_error(void **state) {
  static const int unknown[] = {2, -18, 12345, -999, INT_MIN, INT_MAX};
  (void)state;
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
    assert_string_equal(omniq_strerror(unknown[i]), "unknown error");
    assert_string_equal(omniq_err_name(unknown[i]), "OMNIQ_UNKNOWN");
  }
}

static void test_err_name_names_every_code(void **state) {
  (void)state;
  for (size_t i = 0; i < NCODES; i++)
    assert_string_equal(omniq_err_name(codes[i].code), codes[i].name);
  assert_string_equal(omniq_err_name(OMNIQ_ENOTFOUND), "OMNIQ_ENOTFOUND");
  assert_int_equal(OMNIQ_OK, 0);
}

static void test_err_records_the_message_and_returns_the_code(void **state) {
  (void)state;
  assert_int_equal(omniq__err(0, OMNIQ_EBUSY, "locked by %s", "pid 42"), OMNIQ_EBUSY);
  assert_string_equal(omniq_errmsg(NULL), "locked by pid 42");
  assert_string_equal(omniq__errmsg(0), "locked by pid 42");
  omniq__err_clear(0);
  assert_string_equal(omniq_errmsg(NULL), "");
}

static void test_long_messages_are_cut_not_overflowed(void **state) {
  char big[OMNIQ__ERRMSG_MAX * 2];
  (void)state;
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  omniq__err(0, OMNIQ_EIO, "%s", big);
  assert_int_equal(strlen(omniq_errmsg(NULL)), OMNIQ__ERRMSG_MAX - 1);
}

/* ---- per thread, per handle ---------------------------------------------- */

typedef struct seen {
  char before[64]; /* what the new thread found before writing its own */
  char after[64];
} seen_t;

static void *other_thread(void *p) {
  seen_t *s = p;
  snprintf(s->before, sizeof s->before, "%s", omniq_errmsg(NULL));
  omniq__err(0, OMNIQ_EINVAL, "set by the other thread");
  snprintf(s->after, sizeof s->after, "%s", omniq_errmsg(NULL));
  return NULL;
}

static void test_a_message_is_seen_only_by_its_own_thread(void **state) {
  pthread_t t;
  seen_t seen = {"?", "?"};
  (void)state;
  omniq__err(0, OMNIQ_ECONFIG, "set by the main thread");
  assert_int_equal(pthread_create(&t, NULL, other_thread, &seen), 0);
  pthread_join(t, NULL); /* the join orders the two threads' steps */
  assert_string_equal(seen.before, "");
  assert_string_equal(seen.after, "set by the other thread");
  assert_string_equal(omniq_errmsg(NULL), "set by the main thread");
}

static void test_each_handle_keeps_its_own_slot(void **state) {
  (void)state;
  uint64_t a = omniq__handle_id_next(), b = omniq__handle_id_next();
  assert_true(a != 0 && b != 0 && a != b);
  omniq__err(0, OMNIQ_ECONFIG, "no handle");
  omniq__err(a, OMNIQ_ENOTFOUND, "handle a");
  omniq__err(b, OMNIQ_EBUSY, "handle b");
  assert_string_equal(omniq__errmsg(a), "handle a");
  assert_string_equal(omniq__errmsg(b), "handle b");
  assert_string_equal(omniq_errmsg(NULL), "no handle");
  omniq__err_clear(a);
  assert_string_equal(omniq__errmsg(a), "");
  assert_string_equal(omniq__errmsg(b), "handle b");
  assert_string_equal(omniq__errmsg(omniq__handle_id_next()), ""); /* never used */
}

static void test_more_handles_than_slots_lose_old_messages_never_mix_them(void **state) {
  enum { HANDLES = 40 };
  uint64_t ids[HANDLES];
  char want[32];
  (void)state;
  for (int i = 0; i < HANDLES; i++) {
    ids[i] = omniq__handle_id_next();
    omniq__err(ids[i], OMNIQ_EIO, "message %d", i);
  }
  for (int i = 0; i < HANDLES; i++) {
    const char *got = omniq__errmsg(ids[i]);
    snprintf(want, sizeof want, "message %d", i);
    if (got[0] != '\0' && strcmp(got, want) != 0)
      fail_msg("handle %d shows \"%s\", not its own \"%s\"", i, got, want);
  }
  assert_string_equal(omniq__errmsg(ids[HANDLES - 1]), "message 39");
}

static void test_errno_values_map_to_codes(void **state) {
  (void)state;
  assert_int_equal(omniq__errno_code(0), OMNIQ_OK);
  assert_int_equal(omniq__errno_code(ENOMEM), OMNIQ_ENOMEM);
  assert_int_equal(omniq__errno_code(ENOENT), OMNIQ_ENOTFOUND);
  assert_int_equal(omniq__errno_code(ENOSPC), OMNIQ_ENOSPC);
  assert_int_equal(omniq__errno_code(EDQUOT), OMNIQ_ENOSPC);
  assert_int_equal(omniq__errno_code(EFBIG), OMNIQ_ENOSPC);
  assert_int_equal(omniq__errno_code(EINVAL), OMNIQ_EINVAL);
  assert_int_equal(omniq__errno_code(EBUSY), OMNIQ_EBUSY);
  assert_int_equal(omniq__errno_code(EAGAIN), OMNIQ_EBUSY);
  assert_int_equal(omniq__errno_code(ETIMEDOUT), OMNIQ_ETIMEDOUT);
  assert_int_equal(omniq__errno_code(EACCES), OMNIQ_EIO);
}

/* ---- allocation failure ----------------------------------------------------- */

static void test_alloc_fail_after_fails_the_nth_allocation(void **state) {
  (void)state;
  omniq__alloc_fail_after(2);
  void *a = omniq__malloc(8), *b = omniq__calloc(1, 8), *c = omniq__malloc(8);
  char *d = omniq__strdup("x");
  assert_non_null(a);
  assert_non_null(b);
  assert_null(c);
  assert_null(d);
  omniq__alloc_fail_after(-1);
  void *e = omniq__realloc(NULL, 8);
  assert_non_null(e);
  omniq__free(a);
  omniq__free(b);
  omniq__free(e);
  omniq__free(NULL);
}

static omniq_task_t *sample_task(void) {
  omniq_task_t *t = omniq_task_new();
  assert_non_null(t);
  omniq__id_new(TH_EPOCH_MS, t->id);
  t->func = omniq__strdup("f");
  t->queue = omniq__strdup("default");
  t->args = omniq__strdup("[1]");
  t->kwargs = omniq__strdup("{}");
  t->last_error = omniq_task_error_new("E", "m", TH_EPOCH_MS, "tb", 1, 1);
  assert_non_null(t->last_error);
  return t;
}

/* Runs make() with the 0th, 1st, 2nd... allocation failing until it
 * succeeds; every failed attempt must return nothing (and, checked by the
 * sanitizers, leak nothing). */
#define EVERY_FAILURE_POINT(result, make, release)   \
  do {                                               \
    int ok_ = 0;                                     \
    for (long n_ = 0; n_ < 64 && !ok_; n_++) {       \
      omniq__alloc_fail_after(n_);                   \
      result = make;                                 \
      omniq__alloc_fail_after(-1);                   \
      if (result != NULL) {                          \
        ok_ = 1;                                     \
        assert_true(n_ > 0); /* 0 must always fail */ \
        release;                                     \
      }                                              \
    }                                                \
    assert_true(ok_);                                \
  } while (0)

static void test_constructors_return_null_when_allocation_fails(void **state) {
  omniq_task_error_t *e;
  omniq_task_t *t, *src = sample_task();
  omniq_result_t *r, *res = omniq_result_new();
  char *text;
  (void)state;
  assert_non_null(res);
  memcpy(res->task_id, src->id, OMNIQ_ID_SIZE);
  res->value = omniq__strdup("42");
  res->error = omniq_task_error_dup(src->last_error);

  EVERY_FAILURE_POINT(e, omniq_task_error_new("E", "m", 1, "tb", 0, 0), omniq_task_error_free(e));
  EVERY_FAILURE_POINT(e, omniq_task_error_dup(src->last_error), omniq_task_error_free(e));
  EVERY_FAILURE_POINT(t, omniq_task_new(), omniq_task_free(t));
  EVERY_FAILURE_POINT(t, omniq_task_dup(src), omniq_task_free(t));
  EVERY_FAILURE_POINT(r, omniq_result_new(), omniq_result_free(r));
  EVERY_FAILURE_POINT(r, omniq_result_dup(res), omniq_result_free(r));
  EVERY_FAILURE_POINT(text, omniq_task_to_json(src), omniq__free(text));
  EVERY_FAILURE_POINT(text, omniq_result_to_json(res), omniq__free(text));
  omniq_task_free(src);
  omniq_result_free(res);
}

static void test_from_json_reports_out_of_memory_and_leaves_nothing(void **state) {
  omniq_task_t *src = sample_task();
  char *task_text = omniq_task_to_json(src);
  char *error_text = omniq_task_error_to_json(src->last_error);
  int failures = 0, rc;
  (void)state;
  assert_non_null(task_text);
  for (long n = 0;; n++) {
    omniq_task_t *t = (omniq_task_t *)1;
    omniq__alloc_fail_after(n);
    rc = omniq_task_from_json(task_text, &t);
    omniq__alloc_fail_after(-1);
    if (rc == OMNIQ_OK) {
      omniq_task_free(t);
      break;
    }
    assert_int_equal(rc, OMNIQ_ENOMEM);
    assert_null(t);
    failures++;
  }
  assert_true(failures > 0);
  failures = 0;
  for (long n = 0;; n++) {
    omniq_task_error_t *e = (omniq_task_error_t *)1;
    omniq__alloc_fail_after(n);
    rc = omniq_task_error_from_json(error_text, &e);
    omniq__alloc_fail_after(-1);
    if (rc == OMNIQ_OK) {
      omniq_task_error_free(e);
      break;
    }
    assert_int_equal(rc, OMNIQ_ENOMEM);
    assert_null(e);
    failures++;
  }
  assert_true(failures > 0);
  omniq__free(task_text);
  omniq__free(error_text);
  omniq_task_free(src);
}

int main(void) {
#define T(name) cmocka_unit_test_teardown(name, teardown)
  const struct CMUnitTest tests[] = {
      T(test_every_code_has_its_own_description),
      T(test_unknown_codes_give_unknown_error),
      T(test_err_name_names_every_code),
      T(test_err_records_the_message_and_returns_the_code),
      T(test_long_messages_are_cut_not_overflowed),
      T(test_a_message_is_seen_only_by_its_own_thread),
      T(test_each_handle_keeps_its_own_slot),
      T(test_more_handles_than_slots_lose_old_messages_never_mix_them),
      T(test_errno_values_map_to_codes),
      T(test_alloc_fail_after_fails_the_nth_allocation),
      T(test_constructors_return_null_when_allocation_fails),
      T(test_from_json_reports_out_of_memory_and_leaves_nothing),
  };
#undef T
  return cmocka_run_group_tests(tests, NULL, NULL);
}
