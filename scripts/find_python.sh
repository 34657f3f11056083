#!/usr/bin/env bash
# Prints the newest Python 3.11-3.13 on the PATH (python3.13, python3.12, python3.11, then python3),
# or nothing. A command counts only when it runs: a pyenv shim of a version that is not active does not.
for cmd in python3.13 python3.12 python3.11 python3; do
  if "$cmd" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' >/dev/null 2>&1; then
    echo "$cmd"
    exit 0
  fi
done
