# Sourced by demo.sh and test.sh: create .venv when missing and install the project into it.
# torch is pinned to the CPU wheel this machine has on disk (a plain `torch` pulls a CUDA build).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

ensure_venv() {  # usage: ensure_venv [extra]
  local extra="${1:-}" spec="$ROOT" stamp
  [ -n "$extra" ] && spec="$ROOT[$extra]"
  if [ ! -x "$VENV/bin/python" ]; then
    echo "creating $VENV" >&2
    "$PY" -m venv "$VENV"
  fi
  stamp="$VENV/.eventshard-$(cat "$ROOT/pyproject.toml" | sha1sum | cut -c1-12)-${extra:-base}"
  if [ ! -f "$stamp" ]; then
    local cons; cons="$(mktemp)"; echo "torch==2.13.0" >"$cons"
    # pip's own status decides (a failed resolve must stop here, not at the first missing tool)
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "torch==2.13.0" 2>&1 \
      | { grep -v "is ignored" >&2 || true; } || { echo "installing torch into $VENV failed" >&2; exit 1; }
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$cons" -e "$spec" 2>&1 \
      | { grep -v "is ignored" >&2 || true; } || { echo "installing the project ($spec) into $VENV failed" >&2; exit 1; }
    "$VENV/bin/python" -c "import torch, shardgen, loader; assert torch.__version__.startswith('2.13.0')" \
      || { echo "installing the project into $VENV failed" >&2; exit 1; }
    rm -f "$cons"
    touch "$stamp"
  fi
}
