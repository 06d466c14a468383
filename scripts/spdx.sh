#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Every source file of OmniQ says its licence in one machine-readable line,
# "SPDX-License-Identifier: MIT" (the licence is LICENSE), near its top.
#
#   scripts/spdx.sh --check [ROOT]   list the sources without the line; exit 1 if any
#   scripts/spdx.sh --add [ROOT]     give the line to every source without it
#
# Sources: the files git knows in ROOT (tracked, or new and not ignored)
# that are C (.c .h), Python (.py), shell (.sh .bash, or a #! first line),
# CMake (CMakeLists.txt .cmake .cmake.in), pkg-config templates (.pc.in),
# cli/commands.def, systemd units (.service) and the Makefile. The line goes first, as a comment of
# the file's language: "/* ... */" for C, "# ..." for the rest, after a
# "#!" line when there is one. Run --add again after merging branches:
# it only touches files that lack the line. ctest runs --check
# (spdx_every_source_has_a_licence_line).
set -euo pipefail

mode=${1:-}
root=${2:-$(dirname "$0")/..}
case $mode in
  --check | --add) ;;
  *) echo "usage: scripts/spdx.sh --check|--add [ROOT]" >&2; exit 2 ;;
esac
cd "$root"

tag='SPDX-License-Identifier: MIT'

# The comment form for a file, or nothing if it is not a source.
style() {
  case $1 in
    *.c | *.h | *.def) echo c ;;
    *.py | *.sh | *.bash | *.cmake | *.cmake.in | *.pc.in | */CMakeLists.txt | CMakeLists.txt | \
      *.service | Makefile) echo hash ;;
    *)
      if [ -f "$1" ] && head -c 2 "$1" | grep -q '^#!'; then echo hash; fi ;;
  esac
}

missing=0
while IFS= read -r -d '' file; do
  [ -f "$file" ] || continue
  kind=$(style "$file")
  [ -n "$kind" ] || continue
  # Near the top: in the first five lines.
  head -n 5 "$file" | grep -q "SPDX-License-Identifier:" && continue
  if [ "$mode" = --check ]; then
    echo "$file: no '$tag' line"
    missing=$((missing + 1))
    continue
  fi
  tmp=$(mktemp)
  if [ "$kind" = c ]; then
    { echo "/* $tag */"; cat "$file"; } >"$tmp"
  elif head -n 1 "$file" | grep -q '^#!'; then
    { head -n 1 "$file"; echo "# $tag"; tail -n +2 "$file"; } >"$tmp"
  else
    { echo "# $tag"; cat "$file"; } >"$tmp"
  fi
  # Keep the file's mode (scripts stay executable).
  cat "$tmp" >"$file"
  rm -f "$tmp"
  echo "added: $file"
done < <(git ls-files -z --cached --others --exclude-standard)

if [ "$mode" = --check ]; then
  if [ "$missing" -gt 0 ]; then
    echo "spdx: $missing source(s) without the line; scripts/spdx.sh --add gives it to them" >&2
    exit 1
  fi
  echo "spdx: every source has '$tag'"
fi
