/* SPDX-License-Identifier: MIT */
/* cli/tail.c: bounded output tails, cleaned for JSON. */
#include <stdlib.h>
#include <string.h>

#include "../../cli/tail.h"
#include "harness.h"

static char *text(const cli_tail_t *t, size_t *len) {
  char *s = cli_tail_text(t, len);
  assert_non_null(s);
  return s;
}

static void test_tail_keeps_the_last_bytes_across_many_small_writes(void **state) {
  (void)state;
  cli_tail_t t;
  size_t len;
  assert_int_equal(cli_tail_init(&t, 8), 0);
  for (char c = 'a'; c <= 'z'; c++) cli_tail_add(&t, &c, 1);
  char *s = text(&t, &len);
  assert_string_equal(s, "stuvwxyz");
  assert_int_equal(t.total, 26);
  free(s);
  cli_tail_add(&t, "0123456789ABC", 13); /* one write longer than the tail */
  s = text(&t, &len);
  assert_string_equal(s, "56789ABC");
  assert_int_equal(t.total, 39);
  free(s);
  cli_tail_free(&t);
}

static void test_short_stream_is_kept_whole(void **state) {
  (void)state;
  cli_tail_t t;
  size_t len;
  assert_int_equal(cli_tail_init(&t, 16), 0);
  cli_tail_add(&t, "hello\n", 6);
  char *s = text(&t, &len);
  assert_int_equal(len, 6);
  assert_string_equal(s, "hello\n");
  free(s);
  cli_tail_free(&t);
}

static void test_character_cut_by_the_tail_is_dropped_not_replaced(void **state) {
  (void)state;
  cli_tail_t t;
  size_t len;
  assert_int_equal(cli_tail_init(&t, 4), 0);
  /* "é€" is C3 A9 E2 82 AC: the last 4 bytes start inside the é. */
  cli_tail_add(&t, "\xC3\xA9\xE2\x82\xAC", 5);
  char *s = text(&t, &len);
  assert_string_equal(s, "\xE2\x82\xAC");
  free(s);
  cli_tail_free(&t);
}

static void test_bytes_that_are_not_utf8_become_replacement_characters(void **state) {
  (void)state;
  cli_tail_t t;
  size_t len;
  static const struct {
    const char *in;
    size_t n;
    const char *out;
  } cases[] = {
      {"a\xFF" "b", 3, "a\xEF\xBF\xBD" "b"},             /* never valid */
      {"\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"},       /* overlong '/' */
      {"\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* surrogate */
      {"\xF4\x90\x80\x80", 4, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"}, /* > U+10FFFF */
      {"x\xE2\x82", 3, "x\xEF\xBF\xBD\xEF\xBF\xBD"},     /* ends mid-character */
      {"\xF0\x9F\x98\x80", 4, "\xF0\x9F\x98\x80"},       /* a 4-byte character */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    assert_int_equal(cli_tail_init(&t, 64), 0);
    cli_tail_add(&t, cases[i].in, cases[i].n);
    char *s = text(&t, &len);
    if (strcmp(s, cases[i].out) != 0) fail_msg("case %zu cleaned wrongly", i);
    free(s);
    cli_tail_free(&t);
  }
}

static void test_nul_bytes_are_kept(void **state) {
  (void)state;
  cli_tail_t t;
  size_t len;
  assert_int_equal(cli_tail_init(&t, 8), 0);
  cli_tail_add(&t, "a\0b", 3);
  char *s = text(&t, &len);
  assert_int_equal(len, 3);
  assert_memory_equal(s, "a\0b", 3);
  free(s);
  cli_tail_free(&t);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tail_keeps_the_last_bytes_across_many_small_writes),
      cmocka_unit_test(test_short_stream_is_kept_whole),
      cmocka_unit_test(test_character_cut_by_the_tail_is_dropped_not_replaced),
      cmocka_unit_test(test_bytes_that_are_not_utf8_become_replacement_characters),
      cmocka_unit_test(test_nul_bytes_are_kept),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
