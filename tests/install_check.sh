#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs OmniQ from a build tree into a temporary prefix, then builds and
# runs two programs against that prefix, each twice: with pkg-config and
# with CMake's find_package. tests/install/hello.c uses the library;
# tests/install/contract_sqlite.c runs the installed storage contract
# (libomniq_contract) on the built-in SQLite backend and must pass. Only the
# installed files are used, so a header, library or package file that is
# missing or points elsewhere fails here.
# Then checks the omniq command, its man page and bash completion are there,
# and that the uninstall script leaves the prefix empty.
#
# usage: install_check.sh BUILD_DIR INSTALL_TEST_DIR [C_COMPILER] [--sanitize=LIST]
# --sanitize passes the build's sanitizers on: a sanitized libomniq.so only
# links into a program built with the same runtime.
set -euo pipefail

build=$1
src=$2
cc=${3:-cc}
sanitize=${4:-}
sanitize=${sanitize#--sanitize=}
flags=()
[ -n "$sanitize" ] && flags=("-fsanitize=$sanitize")

# shellcheck source=support/scratch_install.sh
. "$(dirname "$0")/support/scratch_install.sh" "$build" install
prefix=$tmp/prefix

cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" ||
  { cat "$tmp/install.log" >&2; exit 1; }

# CMAKE_INSTALL_LIBDIR is lib or lib/<multiarch>, depending on the platform
# and prefix: find the pkg-config file rather than guess.
pc=$(find "$prefix" -path '*/pkgconfig/omniq.pc' | head -n 1)
[ -n "$pc" ] || { echo "install_check: no pkgconfig/omniq.pc under $prefix" >&2; exit 1; }
pcdir=$(dirname "$pc")
libdir=$(dirname "$pcdir")

echo "== pkg-config ($pc)"
pkgflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs omniq)
echo "   $pkgflags"
# shellcheck disable=SC2086 # pkg-config output is a list of words
"$cc" "${flags[@]}" "$src/hello.c" -o "$tmp/hello-pc" $pkgflags
out=$(LD_LIBRARY_PATH=$libdir "$tmp/hello-pc")
[ "$out" = OK ] || { echo "install_check: pkg-config build printed '$out'" >&2; exit 1; }
echo "   $out"

echo "== pkg-config omniq-contract"
ctflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags --libs omniq-contract)
echo "   $ctflags"
# shellcheck disable=SC2086 # pkg-config output is a list of words
"$cc" "${flags[@]}" "$src/contract_sqlite.c" -o "$tmp/contract-pc" $ctflags
LD_LIBRARY_PATH=$libdir "$tmp/contract-pc" >"$tmp/contract-pc.log" 2>&1 ||
  { cat "$tmp/contract-pc.log" >&2; echo "install_check: the contract failed (pkg-config build)" >&2; exit 1; }
tail -n 1 "$tmp/contract-pc.log"

echo "== find_package(omniq)"
cmake -S "$src" -B "$tmp/build" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${flags[*]}" >"$tmp/configure.log" ||
  { cat "$tmp/configure.log" >&2; exit 1; }
cmake --build "$tmp/build" >"$tmp/build.log" || { cat "$tmp/build.log" >&2; exit 1; }
out=$(LD_LIBRARY_PATH=$libdir "$tmp/build/hello")
[ "$out" = OK ] || { echo "install_check: CMake build printed '$out'" >&2; exit 1; }
echo "   $out"
LD_LIBRARY_PATH=$libdir "$tmp/build/contract_sqlite" >"$tmp/contract-cmake.log" 2>&1 ||
  { cat "$tmp/contract-cmake.log" >&2; echo "install_check: the contract failed (CMake build)" >&2; exit 1; }
tail -n 1 "$tmp/contract-cmake.log"

echo "== the same install, moved to another prefix"
# Nothing installed names its prefix: the .pc file finds it from its own
# place (${pcfiledir}), the CMake package from its own directory. So the
# tree works wherever it is copied or moved (a DESTDIR staging, a package).
moved=$tmp/moved/elsewhere
mkdir -p "$(dirname "$moved")"
mv "$prefix" "$moved"
mpcdir=$moved/${pcdir#"$prefix"/}
mlibdir=$moved/${libdir#"$prefix"/}
# shellcheck disable=SC2046 # pkg-config output is a list of words
"$cc" "${flags[@]}" "$src/hello.c" -o "$tmp/hello-moved" \
  $(PKG_CONFIG_PATH=$mpcdir pkg-config --cflags --libs omniq)
out=$(LD_LIBRARY_PATH=$mlibdir "$tmp/hello-moved")
[ "$out" = OK ] || { echo "install_check: pkg-config build from the moved prefix printed '$out'" >&2; exit 1; }
cmake -S "$src" -B "$tmp/build-moved" -DCMAKE_PREFIX_PATH="$moved" -DCMAKE_C_COMPILER="$cc" \
  -DCMAKE_C_FLAGS="${flags[*]}" >"$tmp/configure-moved.log" ||
  { cat "$tmp/configure-moved.log" >&2; exit 1; }
grep -q "$moved" "$tmp/build-moved/CMakeCache.txt" ||
  { echo "install_check: find_package did not use the moved prefix" >&2; exit 1; }
cmake --build "$tmp/build-moved" >"$tmp/build-moved.log" || { cat "$tmp/build-moved.log" >&2; exit 1; }
out=$(LD_LIBRARY_PATH=$mlibdir "$tmp/build-moved/hello")
[ "$out" = OK ] || { echo "install_check: CMake build from the moved prefix printed '$out'" >&2; exit 1; }
echo "   pkg-config and find_package from $moved: $out"
mv "$moved" "$prefix"

echo "== omniq command"
"$prefix/bin/omniq" --version
[ -f "$prefix/share/bash-completion/completions/omniq" ] ||
  { echo "install_check: no bash completion installed" >&2; exit 1; }
if [ -f "$build/cli/omniq.1" ]; then
  man=$(find "$prefix" -path '*/man1/omniq.1')
  [ -n "$man" ] || { echo "install_check: the man page was built but not installed" >&2; exit 1; }
  echo "   $man"
fi

echo "== uninstall"
cmake -DMANIFEST="$manifest" -P "$(dirname "$0")/../cmake/uninstall.cmake" >"$tmp/uninstall.log" ||
  { cat "$tmp/uninstall.log" >&2; exit 1; }
left=$(find "$prefix" -type f)
[ -z "$left" ] || { echo "install_check: uninstall left files behind:" >&2; echo "$left" >&2; exit 1; }
echo "   nothing left under the prefix"
