#!/usr/bin/env bash
# The refactor guard (a developer check, not part of `make test`): every experiment at the tiny
# profile, run from a git worktree of REF and from this working tree side by side on this machine,
# must give the same numbers bit for bit. A reference made on the same machine, from a named commit,
# is the only one that can be compared bit for bit (tests/bit_identical.py says why).
#   bash scripts/refactor_guard.sh PYTHON [REF]      (make refactor-guard REF=<commit>)
set -euo pipefail
PY=${1:?python}; REF=${2:-HEAD}
cd "$(dirname "$0")/.."
sha=$(git rev-parse --verify --quiet "$REF^{commit}") || { echo "refactor-guard: no commit named '$REF' (REF=<commit or branch>)" >&2; exit 2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/emm-refactor-guard.XXXXXX")
cleanup() { git worktree remove --force "$work/ref" >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT
git worktree add --quiet --detach "$work/ref" "$sha"
echo "refactor-guard: $REF ($(git rev-parse --short "$sha")) against the working tree, in $work"
"$PY" tests/bit_identical.py --root "$work/ref" "$work/ref-out" "$work/reference.csv" > "$work/ref.log" 2>&1 &
ref_pid=$!
"$PY" tests/bit_identical.py "$work/out" "$work/current.csv" > "$work/current.log" 2>&1 || { cat "$work/current.log" >&2; exit 1; }
wait "$ref_pid" || { echo "refactor-guard: the run at $REF failed:" >&2; tail -40 "$work/ref.log" >&2; exit 1; }
"$PY" tests/bit_identical.py --compare "$work/reference.csv" "$work/current.csv"
