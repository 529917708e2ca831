#!/usr/bin/env bash
# Prepares a fresh machine: PostgreSQL server binaries (for the local stand-in), a virtualenv in
# .venv with the project and every extra installed. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

have_pg_server() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/postgres" ] && [ -x "$d/initdb" ] && return 0
  done
  command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/postgres" ] && return 0
  command -v postgres >/dev/null 2>&1 && command -v initdb >/dev/null 2>&1
}

if ! have_pg_server; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing PostgreSQL server binaries (Debian package 'postgresql')" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
  else
    echo "setup: PostgreSQL server binaries not found; run: sudo apt-get install -y postgresql" >&2
    exit 1
  fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,local,parlant,vector]'
echo "setup: ready (.venv)" >&2
