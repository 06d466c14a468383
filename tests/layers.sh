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

# The layer of a path below src/: base, core, worker, facade, storage (top
# level) or storage/<backend>.
layer_of() {
  local rel=$1
  case $rel in
  base/*) echo base ;;
  core/*) echo core ;;
  worker/*) echo worker ;;
  storage/*/*) echo "storage/$(cut -d/ -f2 <<<"$rel")" ;;
  storage/*) echo storage ;;
  omniq.c | omniq.h) echo facade ;;
  *) echo unknown ;;
  esac
}

# may FROM USE: does layer FROM may use header or symbol of layer USE?
# (TARGET is the header path for includes, empty for symbols.)
may_use() {
  local from=$1 use=$2 target=${3:-}
  [ "$from" = "$use" ] && return 0
  case $from in
  facade) return 0 ;;
  base) return 1 ;;
  storage) [[ $use == base || $use == storage/* ]] ;;
  storage/*) [[ $use == base || ($use == storage && (-z $target || $target == storage/registry.h)) ]] ;;
  core) [[ $use == base || ($use == storage && (-z $target || $target == storage/registry.h)) ]] ;;
  worker) [[ $use == base || $use == core ]] ;;
  *) return 1 ;;
  esac
}

check_includes() {
  local src=$1 bad=0 file rel from line target use
  while IFS= read -r -d '' file; do
    rel=${file#"$src"/}
    from=$(layer_of "$rel")
    while IFS= read -r line; do
      target=$(sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]+)".*/\1/' <<<"$line")
      case $target in
      omniq.h | omniq/storage.h) continue ;;
      esac
      use=$(layer_of "$target")
      if [ "$use" = unknown ] || [ ! -f "$src/$target" ]; then
        echo "layers: $rel: #include \"$target\" does not name a header under src/<layer>/"
        bad=1
      elif ! may_use "$from" "$use" "$target"; then
        echo "layers: $rel ($from) may not include \"$target\" ($use)"
        bad=1
      fi
    done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$file" || true)
  done < <(find "$src" -type f \( -name '*.c' -o -name '*.h' \) -print0 | sort -z)
  return $bad
}

# The object's source path below src/, from CMake's object name
# (.../omniq_objects.dir/src/core/engine.c.o).
obj_rel() { sed -E 's|.*/src/||; s|\.o$||' <<<"$1"; }

check_calls() {
  local syms bad=0 obj rel from sym use
  [ $# -gt 0 ] || return 0
  syms=$(mktemp)
  for obj in "$@"; do
    rel=$(obj_rel "$obj")
    from=$(layer_of "$rel")
    nm -P --defined-only "$obj" | awk -v l="$from" '$2 ~ /^[TDBRVWG]$/ {print "D", $1, l}'
    nm -P --undefined-only "$obj" | awk -v l="$from" -v r="$rel" '{print "U", $1, l, r}'
  done >"$syms"
  # Each use of a symbol the library defines: from-layer, use-layer, symbol, file.
  while read -r from use sym rel; do
    if ! may_use "$from" "$use"; then
      echo "layers: $rel ($from) uses $sym, defined in $use"
      bad=1
    fi
  done < <(awk '$1 == "D" {def[$2] = $3} $1 == "U" {use[++n] = $2 " " $3 " " $4}
                END {for (i = 1; i <= n; i++) {split(use[i], u, " ");
                       if (u[1] in def) print u[2], def[u[1]], u[1], u[3]}}' "$syms")
  rm -f "$syms"
  return $bad
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
