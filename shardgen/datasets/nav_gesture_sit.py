"""NAVGesture-sit (``nav-gesture-sit``): ``navgesture-sit.zip`` of user zips of ATIS TD ``.dat`` files.

Everything but the archive is shared with the other NAVGesture set: see :mod:`shardgen.datasets.nav_gesture`.
SpikingJelly 2.0.0's ``NAVGestureSit`` cannot be constructed (its ``__init__`` passes a ``train``
argument that ``NAVGestureWalk.__init__`` does not take: ``TypeError``); this set follows the Walk
class's semantics on the Sit archive.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardgen.datasets.base import RecordingTask
from shardgen.datasets.filelist import FileListSource, cut_items
from shardgen.datasets.nav_gesture import make_spec, open_nav_source, read

ID = "nav-gesture-sit"
SPEC = make_spec("sit", "1571753ace4d9e0946e6503313712c22")


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """Find and list the download (see :func:`shardgen.datasets.nav_gesture.open_nav_source`)."""
    return open_nav_source(SPEC, raw, check_md5, split)


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of recordings."""
    return cut_items(SPEC, read, task, allow_truncated)
