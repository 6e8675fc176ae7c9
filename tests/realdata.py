"""Where the real recordings live (``../shared/realdata``, never copied into the repo) and how tests reach them."""

from __future__ import annotations

from pathlib import Path

import pytest

REALDATA = Path(__file__).resolve().parents[2] / "shared" / "realdata"


def real_file(*parts: str) -> Path:
    """Path of a file under ``shared/realdata``; skips the calling test cleanly when it is absent."""
    path = REALDATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"{path} not available (shared/realdata is not part of every checkout)")
    return path


def real_files(folder: str, pattern: str) -> list[Path]:
    """Every file matching ``pattern`` in ``shared/realdata/<folder>``; skips when there are none."""
    paths = sorted((REALDATA / folder).glob(pattern))
    if not paths:
        pytest.skip(f"{REALDATA / folder}/{pattern} not available (shared/realdata is not part of every checkout)")
    return paths
