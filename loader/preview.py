"""Pictures of frames: a ``[T, 2, H, W]`` stack as one RGB image (ON events red, OFF events green)."""

from __future__ import annotations

import numpy as np


def frames_to_rgb(frames: np.ndarray, columns: int = 8, gap: int = 2) -> np.ndarray:
    """Tile a ``[T, 2, H, W]`` frame stack into one ``uint8`` RGB array.

    Each frame is scaled by its own 99th-percentile count; channel 1 (``p == 1``, ON) is drawn in
    red, channel 0 (OFF) in green, on black, with ``gap`` grey pixels between frames.
    """
    f = np.asarray(frames, dtype=np.float32)
    if f.ndim != 4 or f.shape[1] != 2:
        raise ValueError(f"expected frames [T, 2, H, W], got shape {f.shape}")
    t, _, h, w = f.shape
    cols = max(1, min(columns, t))
    rows = max(1, -(-t // cols))
    out = np.full((rows * (h + gap) + gap, cols * (w + gap) + gap, 3), 60, np.uint8)
    for i in range(t):
        scale = np.percentile(f[i][f[i] > 0], 99) if (f[i] > 0).any() else 1.0
        on = np.clip(f[i, 1] / scale, 0, 1)
        off = np.clip(f[i, 0] / scale, 0, 1)
        tile = np.stack([on, off, np.zeros_like(on)], axis=-1)
        r, c = divmod(i, cols)
        y0, x0 = gap + r * (h + gap), gap + c * (w + gap)
        out[y0 : y0 + h, x0 : x0 + w] = (tile * 255).astype(np.uint8)
    return out


def save_frames_png(frames: np.ndarray, path: str, columns: int = 8, scale: int = 2) -> None:
    """Write :func:`frames_to_rgb` of ``frames`` to a PNG file, enlarged ``scale`` times."""
    from PIL import Image

    img = Image.fromarray(frames_to_rgb(frames, columns))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.NEAREST)
    img.save(path)
