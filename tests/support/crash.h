/* SPDX-License-Identifier: MIT */
/* Durability across a crash: what a process was told is stored, is.
 *
 * A child process enqueues "quick" tasks one at a time while a pool of its
 * own runs them, and writes each id to a pipe once omniq_enqueue returned
 * ("E" + id) and once the run's outcome was reported (its "task.succeeded"
 * log line, written after the finish returned: "R" + id). The test SIGKILLs
 * it straight after the n-th result, reads what the pipe already held, and
 * finds every such task and result in the store. Public API only. */
#ifndef OMNIQ_TEST_CRASH_H
#define OMNIQ_TEST_CRASH_H

#include <stddef.h>

#include "support/helpers.h"

/* Closes st->oq, runs the child on st->settings until it reported
 * `results` results, kills it, reopens st->oq and fails the test unless
 * every enqueue and result it reported is stored (each result SUCCESS with
 * the value 7). */
void th_assert_reports_survive_sigkill(th_store_t *st, size_t results);

#endif
