"""Pictures of frames: play or save a ``[T, 2, H, W]`` stack as a GIF, or tile it into a PNG grid.

Colours follow SpikingJelly's ``play_frame``: channel 0 (``p == 0``, OFF) is drawn in green,
channel 1 (``p == 1``, ON) in blue, on black. Unlike SpikingJelly (whose ``ToPILImage`` maps a
count of 1 to 255 and wraps larger counts modulo 256), counts are normalised: each frame (or the
whole sample, ``normalize="sample"``) is divided by the 99th percentile of its non-zero counts,
square-rooted, and every pixel that saw an event gets at least a quarter of full brightness, so a
frame with a handful of events is still visible.

Needs numpy and Pillow only (the ``preview`` extra; matplotlib, the ``plot`` extra, for :func:`play_frame` without
``save_gif_to``); torch tensors are accepted without importing torch here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from loader.errors import ConfigurationError

__all__ = [
    "NORMALIZE",
    "frames_to_images",
    "frames_to_rgb",
    "play_frame",
    "save_frames_gif",
    "save_frames_png",
    "save_picture",
]

#: The values ``normalize`` accepts: per frame, per sample, or raw counts (clipped at 1).
NORMALIZE = ("frame", "sample", None)

_FLOOR = 0.25  # brightness of a pixel with the smallest non-zero count
_BACKGROUND = 60  # grey between tiles
_TARGET_PX = 256  # default enlargement: about this many pixels on the longer side of a frame


def _as_frames(x: Any) -> np.ndarray:
    """``x`` (numpy array, torch tensor, anything array-like) as a float32 ``[T, 2, H, W]`` array."""
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        x = x.detach().cpu().numpy()
    f = np.asarray(x, dtype=np.float32)
    if f.ndim == 3 and f.shape[0] == 2:  # one frame [2, H, W]
        f = f[None]
    if f.ndim != 4 or f.shape[1] != 2:
        raise ConfigurationError(f"expected frames [T, 2, H, W] (or one frame [2, H, W]), got shape {f.shape}")
    if f.shape[0] == 0:
        raise ConfigurationError("no frames to draw (T = 0)")
    return f


def _scale_of(counts: np.ndarray) -> float:
    nz = counts[counts > 0]
    return float(np.percentile(nz, 99)) if nz.size else 1.0


def frames_to_images(frames: Any, normalize: str | None = "frame") -> np.ndarray:
    """Colour every frame of a ``[T, 2, H, W]`` stack: ``uint8`` RGB images ``[T, H, W, 3]``.

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Event counts ``[T, 2, H, W]`` (or one frame ``[2, H, W]``), indexed ``[c, y, x]``.
    normalize : {"frame", "sample", None}
        Divide the counts by the 99th percentile of the non-zero counts of each frame
        (``"frame"``, default: sparse frames stay visible) or of the whole stack (``"sample"``:
        brightness comparable across frames); ``None`` clips the counts at 1 (any event is full
        brightness). Normalised values are square-rooted and non-zero pixels get at least 25 %.

    Returns
    -------
    numpy.ndarray
        ``uint8`` ``[T, H, W, 3]``: channel 0 in green, channel 1 in blue, red unused.
    """
    if normalize not in NORMALIZE:
        raise ConfigurationError(f"normalize must be one of {NORMALIZE}, got {normalize!r}")
    f = _as_frames(frames)
    f = np.where(np.isfinite(f), np.maximum(f, 0), 0)
    if normalize == "frame":
        scale = np.array([_scale_of(fr) for fr in f], dtype=np.float32)[:, None, None, None]
    elif normalize == "sample":
        scale = np.float32(_scale_of(f))
    else:
        scale = np.float32(1)
    v = np.sqrt(np.clip(f / scale, 0, 1))
    v = np.where(f > 0, _FLOOR + (1 - _FLOOR) * v, 0)
    out = np.zeros((f.shape[0], f.shape[2], f.shape[3], 3), dtype=np.uint8)
    out[..., 1] = np.round(v[:, 0] * 255)
    out[..., 2] = np.round(v[:, 1] * 255)
    return out


def _auto_scale(h: int, w: int, scale: int | None) -> int:
    if scale is None:
        return max(1, _TARGET_PX // max(h, w))
    if int(scale) < 1:
        raise ConfigurationError(f"scale must be a positive integer, got {scale}")
    return int(scale)


def frames_to_rgb(
    frames: Any, columns: int = 8, gap: int = 2, normalize: str | None = "frame"
) -> np.ndarray:
    """Tile a ``[T, 2, H, W]`` frame stack into one ``uint8`` RGB array (row by row).

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Event counts ``[T, 2, H, W]``.
    columns : int
        Tiles per row (at most ``T``).
    gap : int
        Grey pixels between and around the tiles.
    normalize : {"frame", "sample", None}
        See :func:`frames_to_images`.

    Returns
    -------
    numpy.ndarray
        ``uint8`` ``[rows * (H + gap) + gap, cols * (W + gap) + gap, 3]``.
    """
    imgs = frames_to_images(frames, normalize)
    t, h, w, _ = imgs.shape
    cols = max(1, min(int(columns), t))
    rows = -(-t // cols)
    pad = rows * cols - t
    if pad:
        imgs = np.concatenate([imgs, np.full((pad, h, w, 3), _BACKGROUND, np.uint8)])
    tiles = np.pad(imgs, ((0, 0), (0, gap), (0, gap), (0, 0)), constant_values=_BACKGROUND)
    grid = tiles.reshape(rows, cols, h + gap, w + gap, 3).transpose(0, 2, 1, 3, 4)
    grid = grid.reshape(rows * (h + gap), cols * (w + gap), 3)
    return np.pad(grid, ((gap, 0), (gap, 0), (0, 0)), constant_values=_BACKGROUND)


PILLOW_MISSING = "pictures (loader.preview, shardgen preview) need Pillow: pip install 'eventshard[preview]'"


def _pil() -> tuple[Any, Any, Any]:
    """Pillow's ``Image``, ``ImageDraw`` and ``ImageFont`` (an optional dependency: the ``preview`` extra)."""
    try:
        from PIL import Image, ImageDraw, ImageFont
    except ImportError:
        raise ImportError(PILLOW_MISSING) from None
    return Image, ImageDraw, ImageFont


def _font(size: int) -> Any:
    ImageFont = _pil()[2]

    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def _with_title(img: Any, title: str | None, size: int = 14) -> Any:
    """``img`` with a black caption bar above it (the same image when ``title`` is empty)."""
    if not title:
        return img
    Image, ImageDraw, _ = _pil()
    font = _font(size)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    lines: list[str] = []
    for text in str(title).splitlines():  # wrap at spaces to the image's width
        line = ""
        for word in text.split(" "):
            candidate = f"{line} {word}" if line else word
            if line and measure.textlength(candidate, font=font) > img.width - 12:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    bar = (size + 4) * len(lines) + 6
    out = Image.new("RGB", (img.width, img.height + bar), (0, 0, 0))
    out.paste(img, (0, bar))
    draw = ImageDraw.Draw(out)
    for i, line in enumerate(lines):
        draw.text((6, 4 + i * (size + 4)), line, fill=(230, 230, 230), font=font)
    return out


def save_frames_png(
    frames: Any,
    path: str | os.PathLike[str],
    columns: int = 8,
    scale: int | None = 2,
    *,
    title: str | None = None,
    normalize: str | None = "frame",
    numbers: bool = True,
) -> None:
    """Write every frame of a sample as one PNG grid (:func:`frames_to_rgb`), enlarged ``scale`` times.

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Event counts ``[T, 2, H, W]``.
    path : str or path
        Where to write the PNG.
    columns : int
        Tiles per row.
    scale : int or None
        Integer enlargement (nearest neighbour); ``None`` picks one that makes a frame about 256
        pixels wide.
    title : str, optional
        Caption drawn in a bar above the grid (several lines allowed).
    normalize : {"frame", "sample", None}
        See :func:`frames_to_images`.
    numbers : bool
        Write each frame's number in the corner of its tile.
    """
    Image, ImageDraw, _ = _pil()
    f = _as_frames(frames)
    t, _, h, w = f.shape
    s = _auto_scale(h, w, scale)
    gap = 2
    cols = max(1, min(int(columns), t))
    rgb = frames_to_rgb(f, cols, gap, normalize)
    img = Image.fromarray(rgb)
    if s > 1:
        img = img.resize((img.width * s, img.height * s), Image.NEAREST)
    if numbers:
        draw = ImageDraw.Draw(img)
        size = max(9, min(14, (h * s) // 8))
        font = _font(size)
        for i in range(t):
            r, c = divmod(i, cols)
            draw.text(((gap + c * (w + gap)) * s + 3, (gap + r * (h + gap)) * s + 2), str(i),
                      fill=(170, 170, 170), font=font)
    _with_title(img, title).save(os.fspath(path), format="PNG")


def _gif_images(frames: Any, scale: int | None, normalize: str | None, title: str | None) -> list[Any]:
    Image = _pil()[0]
    imgs = frames_to_images(frames, normalize)
    t, h, w, _ = imgs.shape
    s = _auto_scale(h, w, scale)
    out = []
    for i in range(t):
        img = Image.fromarray(imgs[i])
        if s > 1:
            img = img.resize((w * s, h * s), Image.NEAREST)
        caption = f"{title}\nframe {i + 1}/{t}" if title else None
        out.append(_with_title(img, caption, size=12))
    return out


def save_frames_gif(
    frames: Any,
    path: str | os.PathLike[str],
    fps: float = 10.0,
    scale: int | None = None,
    *,
    title: str | None = None,
    normalize: str | None = "frame",
) -> None:
    """Write the frames of a sample as an animated GIF (looping), one GIF frame per frame.

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Event counts ``[T, 2, H, W]``.
    path : str or path
        Where to write the GIF.
    fps : float
        Frames per second.
    scale : int or None
        Integer enlargement (nearest neighbour); ``None`` makes a frame about 256 pixels wide.
    title : str, optional
        Caption above each frame, followed by ``frame i/T``.
    normalize : {"frame", "sample", None}
        See :func:`frames_to_images`.

    Notes
    -----
    Pillow merges consecutive identical frames (e.g. empty ones) into one longer GIF frame.
    """
    if not fps > 0:
        raise ConfigurationError(f"fps must be positive, got {fps}")
    imgs = _gif_images(frames, scale, normalize, title)
    imgs[0].save(
        os.fspath(path),
        format="GIF",
        save_all=True,
        append_images=imgs[1:],
        loop=0,
        duration=max(10, round(1000 / fps)),
    )


def play_frame(
    x: Any,
    save_gif_to: str | os.PathLike[str] | None = None,
    *,
    fps: float = 10.0,
    scale: int | None = None,
    normalize: str | None = "frame",
) -> Any:
    """Play frames (SpikingJelly's ``play_frame``) or save them as a GIF.

    Like ``spikingjelly.datasets.play_frame``: channel 0 is drawn in green, channel 1 in blue. The
    counts are normalised (see :func:`frames_to_images`) so that sparse frames are visible.

    Parameters
    ----------
    x : numpy.ndarray or torch.Tensor
        Frames ``[T, 2, H, W]``.
    save_gif_to : str or path, optional
        Write a looping GIF there instead of playing.
    fps : float
        Frames per second (GIF and playback).
    scale : int or None
        Integer enlargement of the GIF (``None``: about 256 pixels wide).
    normalize : {"frame", "sample", None}
        See :func:`frames_to_images`.

    Returns
    -------
    matplotlib.animation.FuncAnimation or None
        Without ``save_gif_to``: the animation shown by ``plt.show()`` (keep it referenced in a
        notebook); with ``save_gif_to``: ``None``. SpikingJelly loops forever instead; this returns
        when the window is closed (at once on a non-interactive matplotlib backend).
    """
    if save_gif_to is not None:
        save_frames_gif(x, save_gif_to, fps=fps, scale=scale, normalize=normalize)
        return None
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    imgs = frames_to_images(x, normalize)
    fig, ax = plt.subplots()
    ax.set_axis_off()
    shown = ax.imshow(imgs[0], interpolation="nearest")

    def step(i: int) -> Sequence[Any]:
        shown.set_data(imgs[i])
        ax.set_title(f"frame {i + 1}/{len(imgs)}")
        return (shown,)

    anim = FuncAnimation(fig, step, frames=len(imgs), interval=max(10, round(1000 / fps)), repeat=True)
    if plt.get_backend().lower() not in ("agg", "pdf", "ps", "svg", "cairo", "template"):
        plt.show()
    return anim


def save_picture(
    frames: Any,
    path: str | os.PathLike[str],
    *,
    title: str | None = None,
    fps: float = 10.0,
    columns: int | None = None,
    scale: int | None = None,
    normalize: str | None = "frame",
) -> str:
    """Write ``frames`` as a GIF or a PNG grid, chosen by the suffix of ``path`` (``.gif`` / ``.png``).

    Parameters
    ----------
    frames : array-like or torch.Tensor
        Event counts ``[T, 2, H, W]``.
    path : str or path
        Output file; its suffix (case-insensitive) picks the kind.
    title : str, optional
        Caption (see :func:`save_frames_gif`, :func:`save_frames_png`).
    fps : float
        GIF frames per second.
    columns : int, optional
        PNG tiles per row (default: ``min(T, 10)``).
    scale : int or None
        Integer enlargement; ``None``: about 256 pixels per frame for a GIF, 128 in a PNG grid.
    normalize : {"frame", "sample", None}
        See :func:`frames_to_images`.

    Returns
    -------
    str
        ``path``.

    Raises
    ------
    ValueError
        The suffix is neither ``.gif`` nor ``.png``.
    """
    p = os.fspath(path)
    suffix = os.path.splitext(p)[1].lower()
    if suffix == ".gif":
        save_frames_gif(frames, p, fps=fps, scale=scale, title=title, normalize=normalize)
    elif suffix == ".png":
        f = _as_frames(frames)
        if scale is None:
            scale = max(1, 128 // max(f.shape[2:]))
        save_frames_png(f, p, columns or min(f.shape[0], 10), scale, title=title, normalize=normalize)
    else:
        raise ConfigurationError(f"{p}: the picture's name must end in .gif or .png")
    return p
