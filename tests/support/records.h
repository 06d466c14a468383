/* SPDX-License-Identifier: MIT */
/* Record equality for tests: field by field, so a failure names the field.
 * Public API only: also built into the storage contract library. Include
 * after <cmocka.h>'s prerequisites. */
#ifndef OMNIQ_TEST_RECORDS_H
#define OMNIQ_TEST_RECORDS_H

#include "omniq/storage.h"

/* NULL equals only NULL. */
void th_assert_error_equal(const omniq_task_error_t *a, const omniq_task_error_t *b);
void th_assert_result_equal(const omniq_result_t *got, const omniq_result_t *want);
/* got is want as a backend stores a new task: every field the same, PENDING,
 * no attempt and no claim yet. */
void th_assert_as_enqueued(const omniq_task_t *got, const omniq_task_t *want);

#endif
