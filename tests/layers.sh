#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The layer rules of src/ (docs/architecture.md), checked two ways:
#
#   includes  every #include "..." under src/ names a header of a layer the
#             file may use;
#   calls     every symbol an object of the library uses is defined in a
#             layer that object may call (a call through a public header,
#             such as omniq_errmsg from a worker, shows only here).
#
# Who may use whom (public headers "omniq.h" and "omniq/storage.h" are
# allowed everywhere):
#
#   base/                 base/
#   storage/ (top level)  base/, storage/ (the registry refers to the
#                         built-in backends' tables)
#   storage/<backend>/    base/, its own folder, storage/registry.h
#   core/                 base/, core/, storage/registry.h
#   worker/               base/, core/, worker/
#   omniq.c (façade)      anything
#
# usage: layers.sh check SRC_DIR [OBJECT...]
#        layers.sh selftest SRC_DIR C_COMPILER OBJECT...
# check prints each violation and exits 1 if there is any. selftest runs
# check on the real tree (must pass), then on a copy where storage files
# include "core/engine.h" and "worker/job.h", and on the objects plus one
# whose worker code calls into the file backend (each must fail, naming the
# culprit), so the test cannot pass by checking nothing.
set -euo pipefail

# The rules, once, as awk functions shared by both checks. Each check runs
# a fixed handful of processes (find, grep, nm, awk) however many files and
# objects there are: a process per file or per #include line made the test
# take a minute on a loaded machine.
#
# layer_of(rel): the layer of a path below src/: base, core, worker, facade,
# storage (top level) or storage/<backend>; unknown otherwise.
# may_use(from, use, target): may layer FROM use a header or symbol of layer
# USE? (TARGET is the header path for includes, empty for symbols.)
RULES='
function layer_of(rel,   part) {
  if (rel ~ /^base\//) return "base"
  if (rel ~ /^core\//) return "core"
  if (rel ~ /^worker\//) return "worker"
  if (rel ~ /^storage\/[^\/]*\//) { split(rel, part, "/"); return "storage/" part[2] }
  if (rel ~ /^storage\//) return "storage"
  if (rel == "omniq.c" || rel == "omniq.h") return "facade"
  return "unknown"
}
function may_use(from, use, target) {
  if (from == use || from == "facade") return 1
  if (from == "storage") return use == "base" || use ~ /^storage\//
  if (from ~ /^storage\// || from == "core")
    return use == "base" || (use == "storage" && (target == "" || target == "storage/registry.h"))
  if (from == "worker") return use == "base" || use == "core"
  return 0 # base, unknown
}
'

# Every file below SRC ("F rel"), then every #include "..." line of its .c
# and .h files ("SRC/rel:line"): one awk pass judges them all.
check_includes() {
  local src=$1
  {
    find "$src" -type f -printf 'F %P\n'
    find "$src" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z |
      xargs -0 -r grep -H -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' || true
  } | awk -v src="$src/" "$RULES"'
    /^F / { exists[substr($0, 3)] = 1; next }
    {
      colon = index($0, ":")
      rel = substr($0, length(src) + 1, colon - length(src) - 1)
      line = substr($0, colon + 1)
      match(line, /"[^"]+"/)
      target = substr(line, RSTART + 1, RLENGTH - 2)
      if (target == "omniq.h" || target == "omniq/storage.h") next
      from = layer_of(rel)
      use = layer_of(target)
      if (use == "unknown" || !(target in exists)) {
        printf "layers: %s: #include \"%s\" does not name a header under src/<layer>/\n", rel, target
        bad = 1
      } else if (!may_use(from, use, target)) {
        printf "layers: %s (%s) may not include \"%s\" (%s)\n", rel, from, target, use
        bad = 1
      }
    }
    END { exit bad }'
}

# The symbols each object defines ("D obj: sym type ...") and uses
# ("U obj: sym type"), from two nm runs over all objects; the object's
# source path below src/ comes from CMake's object name
# (.../omniq_objects.dir/src/core/engine.c.o).
check_calls() {
  [ $# -gt 0 ] || return 0
  {
    nm -P -A --defined-only "$@" | sed 's/^/D /'
    nm -P -A --undefined-only "$@" | sed 's/^/U /'
  } | awk "$RULES"'
    function rel_of(obj) { sub(/:$/, "", obj); sub(/.*\/src\//, "", obj); sub(/\.o$/, "", obj); return obj }
    $1 == "D" && $4 ~ /^[TDBRVWG]$/ { def[$3] = layer_of(rel_of($2)) }
    $1 == "U" { n++; usym[n] = $3; urel[n] = rel_of($2) }
    END {
      for (i = 1; i <= n; i++) {
        if (!(usym[i] in def)) continue
        from = layer_of(urel[i])
        if (!may_use(from, def[usym[i]], "")) {
          printf "layers: %s (%s) uses %s, defined in %s\n", urel[i], from, usym[i], def[usym[i]]
          bad = 1
        }
      }
      exit bad
    }'
}

check() {
  local src=$1 rc=0
  shift
  check_includes "$src" || rc=1
  check_calls "$@" || rc=1
  return $rc
}

selftest() {
  local src=$1 cc=$2 tmp out
  shift 2
  echo "== the tree"
  check "$src" "$@" || { echo "layers: the tree breaks the rules (above)"; return 1; }
  echo "   no violation in $(find "$src" -name '*.[ch]' | wc -l) files and $# objects"

  tmp=$(mktemp -d "${TMPDIR:-/tmp}/omniq-layers-XXXXXX")
  trap 'rm -rf "$tmp"' RETURN
  echo "== storage files that include core/engine.h and worker/job.h"
  cp -r "$src" "$tmp/src"
  sed -i '0,/^#include "storage\/file\/backend.h"/s//#include "core\/engine.h"\n&/' \
    "$tmp/src/storage/file/query.c"
  sed -i '0,/^#include "storage\/sqlite\/backend.h"/s//#include "worker\/job.h"\n&/' \
    "$tmp/src/storage/sqlite/reads.c"
  grep -q '^#include "core/engine.h"' "$tmp/src/storage/file/query.c" &&
    grep -q '^#include "worker/job.h"' "$tmp/src/storage/sqlite/reads.c" ||
    { echo "layers: could not plant the includes"; return 1; }
  if out=$(check_includes "$tmp/src"); then
    echo "layers: the planted includes were not caught"
    return 1
  fi
  grep -q 'storage/file/query.c (storage/file) may not include "core/engine.h"' <<<"$out" &&
    grep -q 'storage/sqlite/reads.c (storage/sqlite) may not include "worker/job.h"' <<<"$out" ||
    { echo "layers: wrong report: $out"; return 1; }
  echo "$out" | sed 's/^/   caught: /'

  echo "== a worker object that calls into the file backend"
  mkdir -p "$tmp/obj/src/worker"
  printf 'int omniq__fs_finish(void *, const void *, char *, unsigned long);\n%s\n' \
    'int planted(void) { return omniq__fs_finish(0, 0, 0, 0); }' >"$tmp/planted.c"
  "$cc" -c "$tmp/planted.c" -o "$tmp/obj/src/worker/planted.c.o"
  if out=$(check_calls "$@" "$tmp/obj/src/worker/planted.c.o"); then
    echo "layers: the planted call was not caught"
    return 1
  fi
  grep -q 'worker/planted.c (worker) uses omniq__fs_finish, defined in storage/file' <<<"$out" ||
    { echo "layers: wrong report: $out"; return 1; }
  echo "   caught: $out"
}

cmd=${1:-}
shift || true
case $cmd in
check) check "$@" ;;
selftest) selftest "$@" ;;
*)
  echo "usage: layers.sh check SRC_DIR [OBJECT...] | selftest SRC_DIR CC OBJECT..." >&2
  exit 2
  ;;
esac
