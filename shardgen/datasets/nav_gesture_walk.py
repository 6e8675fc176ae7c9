"""NAVGesture-walk (``nav-gesture-walk``): ``navgesture-walk.zip`` of user zips of ATIS TD ``.dat`` files.

Everything but the archive is shared with the other NAVGesture set: see :mod:`shardgen.datasets.nav_gesture`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from shardgen.datasets.base import RecordingTask
from shardgen.datasets.filelist import FileListSource, cut_items
from shardgen.datasets.nav_gesture import make_spec, open_nav_source, read

ID = "nav-gesture-walk"
SPEC = make_spec("walk", "5d305266f13005401959e819abe206f0")


def open_source(raw: Path | str, check_md5: bool = True, split: dict | None = None) -> FileListSource:
    """Find and list the download (see :func:`shardgen.datasets.nav_gesture.open_nav_source`)."""
    return open_nav_source(SPEC, raw, check_md5, split)


def cut(task: RecordingTask, allow_truncated: bool = False) -> Any:
    """Worker: decode one batch of recordings."""
    return cut_items(SPEC, read, task, allow_truncated)
