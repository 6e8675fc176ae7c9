#!/usr/bin/env bash
# Fuzz the raw-format readers, the labels/trials/mapping parsers and the shard decoder for a given time:
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (SECONDS per target, default 60; TARGETs default: all)
# Creates .venv like scripts/test.sh, adds atheris to it when pip can install it (coverage-guided, next to
# hypothesis; EVENTSHARD_NO_ATHERIS=1 skips it), then runs scripts/fuzz.py: one line per target with inputs
# tried, library errors and crashes. Reproducing inputs of crashes go to fuzz-crashes/; exit status 1 if any.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
ensure_venv test
cd "$ROOT"
per_target=60
if [ $# -gt 0 ] && [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  per_target="$1"
  shift
fi
if [ -z "${EVENTSHARD_NO_ATHERIS:-}" ] && ! "$VENV/bin/python" -c "import atheris" 2>/dev/null; then
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check atheris 2>&1 | grep -v "is ignored" >&2 || true
  "$VENV/bin/python" -c "import atheris" 2>/dev/null \
    || echo "atheris could not be installed here: fuzzing with hypothesis only" >&2
fi
engine=auto
[ -n "${EVENTSHARD_NO_ATHERIS:-}" ] && engine=hypothesis
exec "$VENV/bin/python" scripts/fuzz.py --seconds "$per_target" --engine "$engine" "$@"
