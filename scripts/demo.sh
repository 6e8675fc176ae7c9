#!/usr/bin/env bash
# The main job on an embedded default: a small generated DVS128 Gesture download (real AEDAT 3.1
# raw format) → shardgen convert → frames streamed by EventShardDataset; ends with the info table,
# the path of a preview GIF and a short training loop's first batches (shape, labels).
# Output goes to demo_out/ (or the folder given as $1). The demo itself is the installed package's
# `python -m shardgen.demo` (also `shardgen demo OUT`); this script only makes .venv first.
set -euo pipefail
source "$(dirname "$0")/_venv.sh"
ensure_venv preview
cd "$ROOT"
"$VENV/bin/python" -m shardgen.demo "${1:-demo_out}"
