/* SPDX-License-Identifier: MIT */
/* File backend names (see file_names.h for the layout). Parsers are strict:
 * a name either has exactly the expected shape or is rejected, and a
 * rejected name is quarantined by the caller, never opened as a task. */
#include "storage/file/names.h"

#include <stdio.h>
#include <string.h>

#include "omniq/storage.h"

const char *const omniq__fname_done[OMNIQ__FS_NDONE] = {"success", "failed", "cancelled"};

/* Everything else found in queue/ is quarantined at open. */
int omniq__fname_queue_entry(const char *name) {
  static const char *const known[] = {"pending", "running", "journal", "snapshot"};
  for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
    if (strcmp(name, known[i]) == 0) return 1;
  for (int k = 0; k < OMNIQ__FS_NDONE; k++)
    if (strcmp(name, omniq__fname_done[k]) == 0) return 1;
  return 0;
}

static const char hexdigits[] = "0123456789ABCDEF";

static int is_plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

static int hexval(char c) {
  const char *p = c != '\0' ? strchr(hexdigits, c) : NULL;
  return p != NULL ? (int)(p - hexdigits) : -1;
}

/* Parses exactly n decimal digits. */
static int digits(const char *s, int n, uint64_t *out) {
  uint64_t v = 0;
  for (int i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return 0;
    v = v * 10 + (uint64_t)(s[i] - '0');
  }
  *out = v;
  return 1;
}

uint32_t omniq__fname_iprio(int priority) { return (uint32_t)(INT64_C(2147483647) - priority); }

int omniq__fname_priority(uint32_t iprio) { return (int)(INT64_C(2147483647) - (int64_t)iprio); }

int64_t omniq__fname_eta(int64_t eta_ms) {
  if (eta_ms < 0) return 0;
  return eta_ms > OMNIQ__ETA_NAME_MAX ? OMNIQ__ETA_NAME_MAX : eta_ms;
}

/* v in exactly n decimal digits, zeros first (v < 10^n); the end. */
static char *put_fixed(char *out, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; i--, v /= 10) out[i] = (char)('0' + v % 10);
  return out + n;
}

/* A task's names are made on every enqueue, claim and move, several
 * times a task: written by hand, byte for byte what
 * "%010lu_%015lld_%.36s.json" and "%s.json" wrote, without snprintf's
 * cost (a tenth of it). */
void omniq__fname_pending(uint32_t iprio, int64_t name_eta, const char *id,
                          char out[OMNIQ__PNAME_SIZE]) {
  size_t n = strnlen(id, OMNIQ_ID_LEN);
  char *p = put_fixed(out, iprio, 10);
  *p++ = '_';
  p = put_fixed(p, (uint64_t)omniq__fname_eta(name_eta), 15);
  *p++ = '_';
  memcpy(p, id, n);
  memcpy(p + n, ".json", 6);
}

int omniq__fname_pending_parse(const char *name, uint32_t *iprio, int64_t *name_eta,
                               char id[OMNIQ_ID_SIZE]) {
  uint64_t p, e;
  if (strlen(name) != OMNIQ__PNAME_LEN || name[10] != '_' || name[26] != '_' ||
      strcmp(name + 63, ".json") != 0 || !digits(name, 10, &p) || p > UINT32_MAX ||
      !digits(name + 11, 15, &e))
    return OMNIQ_EINVAL;
  memcpy(id, name + 27, OMNIQ_ID_LEN);
  id[OMNIQ_ID_LEN] = '\0';
  if (!omniq_id_valid(id)) return OMNIQ_EINVAL;
  *iprio = (uint32_t)p;
  *name_eta = (int64_t)e;
  return OMNIQ_OK;
}

int omniq__fname_id(const char *id, char out[OMNIQ__IDNAME_SIZE]) {
  if (!omniq_id_valid(id)) return OMNIQ_EINVAL;
  memcpy(out, id, OMNIQ_ID_LEN);
  memcpy(out + OMNIQ_ID_LEN, ".json", 6);
  return OMNIQ_OK;
}

int omniq__fname_id_parse(const char *name, char id[OMNIQ_ID_SIZE]) {
  if (strlen(name) != OMNIQ_ID_LEN + 5 || strcmp(name + OMNIQ_ID_LEN, ".json") != 0)
    return OMNIQ_EINVAL;
  memcpy(id, name, OMNIQ_ID_LEN);
  id[OMNIQ_ID_LEN] = '\0';
  return omniq_id_valid(id) ? OMNIQ_OK : OMNIQ_EINVAL;
}

int omniq__fname_qdir(const char *queue, char out[OMNIQ__QDIR_SIZE]) {
  size_t n = 0;
  if (queue == NULL || queue[0] == '\0') return OMNIQ_EINVAL;
  for (const unsigned char *p = (const unsigned char *)queue; *p; p++) {
    if (is_plain(*p)) {
      if (n + 1 > OMNIQ__QDIR_MAX) return OMNIQ_EINVAL;
      out[n++] = (char)*p;
    } else {
      if (n + 3 > OMNIQ__QDIR_MAX) return OMNIQ_EINVAL;
      out[n++] = '%';
      out[n++] = hexdigits[*p >> 4];
      out[n++] = hexdigits[*p & 15];
    }
  }
  out[n] = '\0';
  return OMNIQ_OK;
}

int omniq__fname_qdir_valid(const char *name, size_t len) {
  if (len == 0 || len > OMNIQ__QDIR_MAX) return 0;
  for (size_t i = 0; i < len; i++) {
    if (is_plain((unsigned char)name[i])) continue;
    if (name[i] != '%' || i + 2 >= len) return 0;
    int hi = hexval(name[i + 1]), lo = hexval(name[i + 2]);
    /* Canonical only: a byte that needs no escape must not be escaped, and
     * NUL is never part of a name. */
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0) || is_plain((unsigned char)(hi * 16 + lo)))
      return 0;
    i += 2;
  }
  return 1;
}

int omniq__fname_qdir_decode(const char *qdir, char *out, size_t outlen) {
  size_t n = 0, len = strlen(qdir);
  if (!omniq__fname_qdir_valid(qdir, len)) return OMNIQ_EINVAL;
  for (size_t i = 0; i < len; i++) {
    char c = qdir[i];
    if (c == '%') {
      c = (char)(hexval(qdir[i + 1]) * 16 + hexval(qdir[i + 2]));
      i += 2;
    }
    if (n + 1 >= outlen) return OMNIQ_EINVAL;
    out[n++] = c;
  }
  out[n] = '\0';
  return OMNIQ_OK;
}
