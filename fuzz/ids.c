/* SPDX-License-Identifier: MIT */
/* Fuzz target: task ids and the names the file backend makes of them
 * (base/ids.c, storage/file/names.c), the checks that keep anything read
 * from disk or given by a caller from becoming a path it should not be.
 * Properties: a name that parses formats back to exactly itself (one name
 * per task, so nothing is read twice or missed); an encoded queue folder
 * name is always valid, never "." or "..", never has a '/'. */
#include <string.h>

#include "fuzz.h"
#include "omniq/storage.h"
#include "storage/file/names.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char *s = fuzz_cstr(data, size);
  char id[OMNIQ_ID_SIZE], idname[OMNIQ__IDNAME_SIZE], pname[OMNIQ__PNAME_SIZE];
  char qdir[OMNIQ__QDIR_SIZE];
  uint32_t iprio;
  int64_t eta;

  if (omniq_id_valid(s)) {
    FUZZ_CHECK(strlen(s) == OMNIQ_ID_LEN);
    FUZZ_CHECK(omniq__fname_id(s, idname) == OMNIQ_OK);
    FUZZ_CHECK(omniq__fname_id_parse(idname, id) == OMNIQ_OK && strcmp(id, s) == 0);
  }
  if (omniq__fname_id_parse(s, id) == OMNIQ_OK) {
    FUZZ_CHECK(omniq__fname_id(id, idname) == OMNIQ_OK && strcmp(idname, s) == 0);
  }
  if (omniq__fname_pending_parse(s, &iprio, &eta, id) == OMNIQ_OK) {
    omniq__fname_pending(iprio, eta, id, pname);
    FUZZ_CHECK(strcmp(pname, s) == 0);
    FUZZ_CHECK(omniq__fname_iprio(omniq__fname_priority(iprio)) == iprio);
  }
  if (omniq__fname_qdir(s, qdir) == OMNIQ_OK) {
    FUZZ_CHECK(omniq__fname_qdir_valid(qdir, strlen(qdir)));
    FUZZ_CHECK(strchr(qdir, '/') == NULL && strcmp(qdir, ".") != 0 && strcmp(qdir, "..") != 0);
  }
  if (omniq__fname_qdir_valid(s, strlen(s)))
    FUZZ_CHECK(strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0);
  free(s);
  return 0;
}
