/* SPDX-License-Identifier: MIT */
/* Task ids: UUIDv7 text, unique and time-ordered. Within one process ids
 * strictly increase, even within one millisecond. */
#ifndef OMNIQ_BASE_IDS_H
#define OMNIQ_BASE_IDS_H

#include <stdint.h>
#include "omniq.h"

/* Writes a new id for time now_ms into out. Thread-safe. */
void omniq__id_new(int64_t now_ms, char out[OMNIQ_ID_SIZE]);

#endif
