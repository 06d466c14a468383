#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs one program of examples/ the way its doc says, in a fresh directory
# with a fresh store, and fails if it does not exit 0.
#
#   run_example.sh DIR BACKEND PROGRAM
#       runs PROGRAM in DIR (emptied first) with OMNIQ_BACKEND=BACKEND and
#       the store under DIR/omniq-data (postgres: in a new schema of the
#       server OMNIQ_DB_URL names).
#   run_example.sh DIR BACKEND SCRIPT BIN_DIR [NAME=PROGRAM...]
#       runs the shell session SCRIPT (sh -e) in DIR with BIN_DIR (where
#       omniq is) first on PATH, each PROGRAM linked into DIR as ./NAME;
#       with EXPECT set, its output must contain that text.
set -euo pipefail
dir=$1 backend=$2 program=$3
shift 3
rm -rf "$dir"
mkdir -p "$dir"
cd "$dir"
export OMNIQ_BACKEND=$backend OMNIQ_BASE_DIR=$dir/omniq-data OMNIQ_LOG_LEVEL=WARNING
if [ "$backend" = postgres ]; then
  # The test cluster's URL (pg-cluster.sh run); a schema of its own is
  # the fresh store.
  : "${OMNIQ_DB_URL:?run_example: postgres needs OMNIQ_DB_URL}"
  export OMNIQ_DB_SCHEMA=example_$$
else
  unset OMNIQ_DB_URL
fi
case $program in
  *.sh)
    bin=$1
    shift
    for link in "$@"; do ln -s "${link#*=}" "./${link%%=*}"; done
    out=$(PATH=$bin:$PATH sh -e "$program")
    printf '%s\n' "$out"
    if [ -n "${EXPECT:-}" ] && [[ $out != *"$EXPECT"* ]]; then
      echo "run_example: the output lacks '$EXPECT'" >&2
      exit 1
    fi ;;
  *) "$program" ;;
esac
