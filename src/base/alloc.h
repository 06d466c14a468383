/* SPDX-License-Identifier: MIT */
/* Internal allocation. Every allocation in the library goes through here so a
 * test can make the Nth one fail (omniq__alloc_fail_after). */
#ifndef OMNIQ_BASE_ALLOC_H
#define OMNIQ_BASE_ALLOC_H

#include <stddef.h>

void *omniq__malloc(size_t n);
void *omniq__calloc(size_t count, size_t size);
void *omniq__realloc(void *p, size_t n);
void omniq__free(void *p);
/* strdup through omniq__malloc; NULL in -> NULL out. */
char *omniq__strdup(const char *s);

/* Test hook: after n more successful allocations every allocation fails;
 * n < 0 switches the failure off. Process-wide. */
void omniq__alloc_fail_after(long n);

#endif
