/* SPDX-License-Identifier: MIT */
/* Settings: defaults, OMNIQ_* parsing, and the checks omniq_open runs. */
#ifndef OMNIQ_CORE_SETTINGS_H
#define OMNIQ_CORE_SETTINGS_H

#include <stddef.h>
#include "omniq.h"

/* OMNIQ_OK if every field is in range and the backend is registered; else
 * OMNIQ_ECONFIG with the field and value in err. */
int omniq__settings_validate(const omniq_settings_t *s, char *err, size_t errlen);

/* Parses a duration in seconds ("30", "0.5") into ms; rejects negatives,
 * junk and overflow with OMNIQ_EINVAL. */
int omniq__parse_seconds(const char *text, int64_t *ms_out);

#endif
