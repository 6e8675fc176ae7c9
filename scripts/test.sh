#!/usr/bin/env bash
# Run the test suite (creates .venv with the test extra when missing). Extra args go to pytest.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
ensure_venv test
cd "$ROOT"
"$VENV/bin/ruff" check shardgen loader tests scripts
"$VENV/bin/python" -m pytest -q "$@"
