/* SPDX-License-Identifier: MIT */
/* mkdir -p, shared by the backends that create their folders at open. */
#ifndef OMNIQ_BASE_MKDIR_H
#define OMNIQ_BASE_MKDIR_H

/* Creates dir and any missing parents (mode 0777 before umask). Returns 0,
 * or the errno of the first mkdir that failed for a reason other than
 * EEXIST. */
int omniq__mkdir_p(const char *dir);

#endif
