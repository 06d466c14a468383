#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The version is written once, in include/omniq.h; this checks that every
# place that shows it agrees: `omniq --version`, the pkg-config file and
# the CMake package version file generated from it, and the Python
# package's __version__ (a literal in python/omniq/__init__.py, which must
# be bumped with the header).
#
# usage: version_check.sh SOURCE_DIR BUILD_DIR OMNIQ_BINARY
set -euo pipefail
src=$1 build=$2 omniq=$3
part() { sed -n "s/^#define OMNIQ_VERSION_$1 \([0-9]*\)$/\1/p" "$src/include/omniq.h"; }
want="$(part MAJOR).$(part MINOR).$(part PATCH)"
fail=0
check() {
  if [ "$2" != "$want" ]; then
    echo "version_check: $1 says '$2', include/omniq.h says '$want'" >&2
    fail=1
  else
    echo "   $1: $2"
  fi
}
check "omniq --version" "$("$omniq" --version | sed 's/^omniq //')"
check "omniq.pc" "$(sed -n 's/^Version: //p' "$build/omniq.pc")"
check "omniqConfigVersion.cmake" \
  "$(sed -n 's/^set(PACKAGE_VERSION "\(.*\)")$/\1/p' "$build/omniqConfigVersion.cmake")"
check "python/omniq/__init__.py" \
  "$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$src/python/omniq/__init__.py")"
exit $fail
