"""The demo from a checkout without installing: ``python scripts/demo.py OUT`` runs :mod:`shardgen.demo`."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shardgen.demo import main  # noqa: E402 - after the checkout is on the path

if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:2]))
