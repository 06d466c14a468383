#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Installs OmniQ from a build tree, then imports the installed omniq package
# with nothing from the build tree on the path and runs one task with it:
# the package must be where the prefix's python3 looks (given PYTHONPATH for
# a prefix python3 does not search) and must load the library installed
# beside it. Twice: under a temporary prefix, and as a Debian package would
# install it (prefix /usr, under DESTDIR).
#
# usage: install_check.sh BUILD_DIR PYTHON
# OMNIQ_TEST_PRELOAD: a sanitizer runtime for python3 to preload, when the
# build is sanitized.
set -euo pipefail

build=$1
python=$2
unset OMNIQ_LIBRARY PYTHONPATH
# shellcheck source=../../tests/support/scratch_install.sh
. "$(dirname "$0")/../../tests/support/scratch_install.sh" "$build" pyinstall
ver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# Imports omniq from $1 and runs operator.add(5, 3) through a worker; the
# library loaded must be under $2.
check() {
  (cd "$tmp" && PYTHONPATH=$1 LD_PRELOAD=${OMNIQ_TEST_PRELOAD:-} "$python" - "$2" <<'PY'
import os, sys, tempfile
import omniq
lib = os.path.realpath(omniq.library_path)
assert lib.startswith(os.path.realpath(sys.argv[1]) + "/"), "loaded " + lib
assert os.path.realpath(omniq.__file__).startswith(os.path.realpath(sys.argv[1]) + "/")
with tempfile.TemporaryDirectory() as d, omniq.OmniQ(omniq.Settings(base_dir=d, log_level="ERROR")) as q:
    task_id = q.enqueue("operator.add", 5, 3)
    assert q.worker().process_tasks() == 1
    result = q.get_result(task_id)["result"]
print("   omniq from %s, %s: 5 + 3 = %s" % (os.path.dirname(omniq.__file__), lib, result))
assert result == 8
PY
  )
}

echo "== cmake --install --prefix (python3 reads lib/python$ver/dist-packages there when the prefix is /usr/local)"
prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" || { cat "$tmp/install.log" >&2; exit 1; }
pkgdir=$prefix/lib/python$ver/dist-packages
[ -f "$pkgdir/omniq/_install.py" ] || { echo "no omniq package in $pkgdir" >&2; exit 1; }
check "$pkgdir" "$prefix"

echo "== DESTDIR, prefix /usr (Debian's python3 reads /usr/lib/python3/dist-packages)"
DESTDIR=$tmp/root cmake --install "$build" --prefix /usr >"$tmp/install.log" ||
  { cat "$tmp/install.log" >&2; exit 1; }
pkgdir=$tmp/root/usr/lib/python3/dist-packages
[ -f "$pkgdir/omniq/_install.py" ] || { echo "no omniq package in $pkgdir" >&2; exit 1; }
check "$pkgdir" "$tmp/root/usr"
