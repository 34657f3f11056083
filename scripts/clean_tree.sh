#!/usr/bin/env bash
# `make test` leaves the clone clean: `snapshot FILE` records `git status --porcelain`, `check FILE`
# fails when the status now differs (a tracked file changed, or a file appeared that .gitignore misses).
# Outside a git checkout (an unpacked archive) there is nothing to compare, and it says so.
set -euo pipefail
mode=$1; file=$2
cd "$(dirname "$0")/.."
if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "clean-tree check skipped: $(pwd) is not a git checkout"; exit 0
fi
case "$mode" in
  snapshot) git status --porcelain --untracked-files=all > "$file" ;;
  check)
    now=$(mktemp); trap 'rm -f "$now"' EXIT
    git status --porcelain --untracked-files=all > "$now"
    if ! diff -u "$file" "$now" > /dev/null; then
      echo "The test run changed the clone (git status before and after):" >&2
      diff -u --label before --label after "$file" "$now" >&2 || true
      echo "Write outputs under a gitignored folder (_build/, results/<profile>/, book/notebooks/), or add them to .gitignore." >&2
      exit 1
    fi
    echo "clean tree: git status is what it was before the tests" ;;
  *) echo "usage: clean_tree.sh snapshot|check FILE" >&2; exit 2 ;;
esac
