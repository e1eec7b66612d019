#!/usr/bin/env bash
# Installs everything the tests need (Python deps, PostgreSQL, Redis, a llama.cpp server build)
# and runs lint, type checks and the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  "$PYTHON" -m venv .venv || { echo "test: cannot create a venv with $PYTHON" >&2; exit 1; }
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -U pip
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'

bash scripts/services.sh
LLAMA_SERVER=$(bash scripts/build_llama_server.sh | tail -n 1)
[[ -x $LLAMA_SERVER ]] || { echo "test: llama-server build failed" >&2; exit 1; }
export LLAMA_SERVER

echo "== ruff" && .venv/bin/ruff check . && .venv/bin/ruff format --check .
echo "== mypy" && .venv/bin/mypy
echo "== pytest" && .venv/bin/python -m pytest -p no:cacheprovider "$@"
