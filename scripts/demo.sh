#!/usr/bin/env bash
# The interim `make demo`: a short, real scenario on the embedded SQLite backend.
# Three nodes contend for the 2 reboot slots of group "default"; the third is denied until
# one of the first two unlocks. Every line below is the real `stagger` command.
set -euo pipefail

cd "$(dirname "$0")/.."
STAGGER=.venv/bin/stagger
STORE=$(mktemp -d)
trap 'rm -rf "$STORE"' EXIT
export STAGGER_BACKEND="sqlite:///$STORE/stagger.db"
[ -t 1 ] || export COLUMNS="${COLUMNS:-120}"  # tables fit when piped

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
say() { printf '\n%s$ %s%s\n' "$BOLD" "$*" "$PLAIN"; }
run() { say "stagger $*"; "$STAGGER" "$@"; }

echo "demo store: $STAGGER_BACKEND (removed on exit)"

run set-max 2
run lock --id node-a --note "kernel 6.1.0-27"
run lock --id node-b --note "kernel 6.1.0-27"

say "stagger lock --id node-c    # both slots are taken: expect exit 1"
rc=0
"$STAGGER" lock --id node-c 2>&1 || rc=$?
if [ "$rc" -ne 1 ]; then
  echo "demo: expected node-c to be denied with exit 1, got exit $rc" >&2
  exit 1
fi
echo "(exit $rc: denied, as expected)"

run status
run unlock --id node-a
run lock --id node-c
run status
run history
echo
echo "demo: done (node-c got the slot node-a gave back; at most 2 held at any time)"
