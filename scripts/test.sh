#!/usr/bin/env bash
# Runs the CI part of the tox matrix (see README "Testing"). Extra arguments replace the env list,
# e.g. `bash scripts/test.sh -e py312`.
set -euo pipefail
cd "$(dirname "$0")/.."

# pyenv keeps one interpreter per version under $PYENV_ROOT/versions; tox discovers them on PATH.
PYENV_ROOT="${PYENV_ROOT:-${HOME:-/root}/.pyenv}"
for minor in 3.10 3.11 3.12 3.13; do
  for d in "$PYENV_ROOT"/versions/"$minor".*/bin; do
    [ -x "$d/python$minor" ] && PATH="$d:$PATH" && break
  done
done
export PATH

if [ $# -eq 0 ]; then
  set -- -e "${CI_TOX_ENVS:-py310-oldest,py311,py312,py313,py312-trio,lint,type,sql}"
fi
exec .venv/bin/tox "$@"
