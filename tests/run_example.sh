#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Runs one program of examples/ the way its doc says, in a fresh directory
# with a fresh store, and fails if it does not exit 0.
#
#   run_example.sh DIR BACKEND PROGRAM
#       runs PROGRAM in DIR (emptied first) with OMNIQ_BACKEND=BACKEND and
#       the store under DIR/omniq-data (postgres: in a new schema of the
#       server OMNIQ_DB_URL names, whose URL gets a password the test
#       cluster does not ask for, so that it can be seen if shown).
#   run_example.sh DIR BACKEND SCRIPT BIN_DIR [NAME=PROGRAM...]
#       runs the shell session SCRIPT (sh -e) in DIR with BIN_DIR (where
#       omniq is) first on PATH, each PROGRAM linked into DIR as ./NAME.
# With EXPECT set, the output must contain that text, in which {dir} is
# DIR, {schema} the schema and {server} the server as the URL names it,
# without the password. No output may contain the password.
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
  server=${OMNIQ_DB_URL#*://}
  # pg-cluster.sh's URL is postgresql://USER@HOST:PORT/DB.
  [[ $OMNIQ_DB_URL == *://*@* && $OMNIQ_DB_URL != *://*:*@* ]] ||
    { echo "run_example: expected a URL with a user and no password" >&2; exit 1; }
  password=not-to-be-shown-$$
  OMNIQ_DB_URL=${OMNIQ_DB_URL/@/:$password@}
else
  unset OMNIQ_DB_URL
fi
case $program in
  *.sh)
    bin=$1
    shift
    for link in "$@"; do ln -s "${link#*=}" "./${link%%=*}"; done
    run() { PATH=$bin:$PATH sh -e "$program"; } ;;
  *) run() { "$program"; } ;;
esac
# The output is checked below; it is shown whatever happens.
rc=0
out=$(run) || rc=$?
printf '%s\n' "$out"
[ "$rc" -eq 0 ] || exit "$rc"
if [ -n "${password:-}" ] && [[ $out == *"$password"* ]]; then
  echo "run_example: the output shows the database password" >&2
  exit 1
fi
expect=${EXPECT:-}
expect=${expect//\{dir\}/$dir}
expect=${expect//\{schema\}/${OMNIQ_DB_SCHEMA:-}}
expect=${expect//\{server\}/${server:-}}
if [ -n "$expect" ] && [[ $out != *"$expect"* ]]; then
  echo "run_example: the output lacks '$expect'" >&2
  exit 1
fi
