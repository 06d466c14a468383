/* SPDX-License-Identifier: MIT */
/* Listing tasks: checking list options into a backend request (the cursor
 * included), and retry by filter. omniq_list_tasks and the list accessors
 * are defined in listing.c. */
#ifndef OMNIQ_CORE_LISTING_H
#define OMNIQ_CORE_LISTING_H

#include "core/handle.h"

/* Checks o and fills req; a cursor's id is copied to after, which req
 * points into. OMNIQ_EINVAL with a message naming the bad option. */
int omniq__list_request(omniq_t *oq, const omniq_list_opts_t *o, omniq_list_req_t *req,
                        char after[OMNIQ_ID_SIZE]);

/* Retries by hand every FAILED or CANCELLED task filter matches (NULL =
 * all), oldest first; *count gets how many. Tasks that changed status or
 * whose key is held meanwhile are skipped. */
int omniq__engine_retry_many(omniq_t *oq, const omniq_list_opts_t *filter, int64_t eta_ms,
                             int64_t *count);

#endif
