# SPDX-License-Identifier: MIT
# Sourced by the install checks: a scratch directory for installing into,
# removed on exit. Installing rewrites the build tree's install_manifest.txt,
# which is what `make uninstall` reads, so the one of the user's own
# `make install` is put back on exit too.
#
# usage: . scratch_install.sh BUILD_DIR NAME   (sets $tmp and $manifest)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/omniq-$2-XXXXXX")
manifest=$1/install_manifest.txt
[ -f "$manifest" ] && cp "$manifest" "$tmp/manifest.saved"
restore() {
  if [ -f "$tmp/manifest.saved" ]; then cp "$tmp/manifest.saved" "$manifest"; else rm -f "$manifest"; fi
  rm -rf "$tmp"
}
trap restore EXIT
