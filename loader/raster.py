"""Raster plots of 1-D samples (SHD, SSC): frames ``[T, W]`` as one picture, units up, time to the right.

Each frame is one column band; each unit one row, unit 0 at the bottom. Counts are drawn in
amber on black, normalised as :mod:`loader.preview` does (divided by the 99th percentile of the
non-zero counts of each frame or of the whole sample, square-rooted, and every unit that saw a
spike at least a quarter bright), so sparse frames stay visible.

Needs numpy and Pillow (imported when a picture is written); torch tensors are accepted without
importing torch here.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from loader.errors import ConfigurationError

__all__ = ["frames_1d_to_image", "save_raster"]

_FLOOR = 0.25
_COLOUR = np.array([255, 176, 40], dtype=np.float32)  # amber
_TARGET_WIDTH = 640


def _as_frames_1d(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    f = np.asarray(x, dtype=np.float32)
    if f.ndim == 1:
        f = f[None]
    if f.ndim != 2:
        raise ConfigurationError(f"expected 1-D frames [T, W] (or one frame [W]), got shape {f.shape}")
    if f.shape[0] == 0:
        raise ConfigurationError("no frames to draw (T = 0)")
    return f


def frames_1d_to_image(frames: Any, normalize: str | None = "frame") -> np.ndarray:
    """``uint8`` RGB ``[W, T, 3]``: column ``j`` is frame ``j``, row ``W-1-u`` is unit ``u``.

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Counts ``[T, W]`` (or one frame ``[W]``).
    normalize : {"frame", "sample", None}
        Scale by each frame's or the whole sample's 99th percentile of non-zero counts; ``None``
        clips counts at 1.
    """
    if normalize not in ("frame", "sample", None):
        raise ConfigurationError(f"normalize must be 'frame', 'sample' or None, got {normalize!r}")
    f = _as_frames_1d(frames)
    if normalize is None:
        v = np.minimum(f, 1.0)
    else:
        groups = f if normalize == "frame" else f.reshape(1, -1)
        scale = np.array([np.percentile(g[g > 0], 99) if np.any(g > 0) else 1.0 for g in groups], np.float32)
        v = np.sqrt(np.minimum(f / (scale[:, None] if normalize == "frame" else scale[0]), 1.0))
    v = np.where(f > 0, np.maximum(v, _FLOOR), 0.0)
    img = (v.T[::-1, :, None] * _COLOUR).round().astype(np.uint8)
    return np.ascontiguousarray(img)


def save_raster(
    frames: Any,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    column_px: int | None = None,
    normalize: str | None = "frame",
) -> str:
    """Write 1-D frames ``[T, W]`` as one raster picture (PNG or GIF by the suffix of ``path``).

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Counts ``[T, W]``.
    path : str or path
        ``.png`` or ``.gif``.
    title : str, optional
        Caption above the picture.
    column_px : int, optional
        Width of one frame in pixels (default: about 640 pixels in all, at least 1 per frame).
    normalize : {"frame", "sample", None}
        See :func:`frames_1d_to_image`.

    Returns
    -------
    str
        ``path``.
    """
    from PIL import Image

    from loader.preview import _with_title

    p = os.fspath(path)
    suffix = os.path.splitext(p)[1].lower()
    if suffix not in (".png", ".gif"):
        raise ConfigurationError(f"{p}: the picture's name must end in .gif or .png")
    img = frames_1d_to_image(frames, normalize)
    w_units, t = img.shape[:2]
    px = max(1, int(column_px) if column_px is not None else _TARGET_WIDTH // t)
    pic = Image.fromarray(img).resize((t * px, w_units), Image.NEAREST)
    _with_title(pic, title).save(p, format="PNG" if suffix == ".png" else "GIF")
    return p
