#!/usr/bin/env bash
# Installs the gateway into .venv and starts it on the embedded default (SQLite file,
# in-process state, the shipped catalog). Extra arguments go to `gateway serve`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv || { echo "serve: cannot create a venv with $PYTHON" >&2; exit 1; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .
exec .venv/bin/gateway serve "$@"
