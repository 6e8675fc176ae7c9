"""Frame transforms on ``[T, C, H, W]`` frames (SpikingJelly's temporal delete, NDA's geometric augmentations).

Each draws its parameters from the numpy ``rng`` it is given, then does the work with torch on the
frames' own device, so the same object runs in a DataLoader worker (CPU) or on a GPU batch. All
``T`` frames (and channels) of a call get the same transformation; given a batch ``[N, T, C, H, W]``
the whole batch does. A numpy array in gives a numpy array out. Semantics: ``docs/AUGMENT.md``.

NDA: Li et al., "Neuromorphic Data Augmentation for Training Spiking Neural Networks", ECCV 2022.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as nnf

from loader.errors import ConfigurationError
from loader.transforms.base import FrameTransform, apply_frame_transform, check_probability, draw

__all__ = [
    "Cutout",
    "FrameCompose",
    "FrameRandomApply",
    "FrameRandomChoice",
    "RandomResizedCrop",
    "RandomRoll",
    "RandomRotate",
    "RandomShear",
    "RandomTemporalDelete",
    "affine_warp",
]

_MODES = ("nearest", "bilinear")


def _tensor(frames: Any) -> tuple[torch.Tensor, bool]:
    if isinstance(frames, np.ndarray):
        return torch.from_numpy(frames), True
    if not isinstance(frames, torch.Tensor):
        raise ConfigurationError(f"frame transforms take a torch tensor or numpy array, got {type(frames).__name__}")
    return frames, False


def _out(frames: torch.Tensor, was_numpy: bool) -> Any:
    return frames.numpy() if was_numpy else frames


def _spatial(frames: torch.Tensor, who: str) -> tuple[int, int]:
    if frames.dim() < 3:
        raise ConfigurationError(f"{who} needs frames [..., H, W] (2-D sensors), got shape {tuple(frames.shape)}")
    return int(frames.shape[-2]), int(frames.shape[-1])


def _check_mode(mode: str, who: str) -> None:
    if mode not in _MODES:
        raise ConfigurationError(f"{who}: interpolation must be one of {_MODES}, got {mode!r}")


def affine_warp(frames: torch.Tensor, matrix: np.ndarray, interpolation: str = "nearest") -> torch.Tensor:
    """Resample every ``[H, W]`` plane: output pixel ``q`` takes input ``c + matrix @ (q - c)``, zeros outside.

    ``q`` is ``(x, y)`` in pixels, ``c = ((W - 1) / 2, (H - 1) / 2)`` the centre; ``matrix`` is 2 × 2.
    Runs ``grid_sample`` (pixel-exact coordinates, zeros padding) on the frames' device and type.
    """
    h, w = _spatial(frames, "affine_warp")
    shape = frames.shape
    work = frames if frames.is_floating_point() else frames.to(torch.float32)
    planes = work.reshape(1, -1, h, w)
    dev, dt = work.device, work.dtype
    ys = torch.arange(h, device=dev, dtype=torch.float64) - (h - 1) / 2
    xs = torch.arange(w, device=dev, dtype=torch.float64) - (w - 1) / 2
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    m = [[float(v) for v in row] for row in np.asarray(matrix, dtype=np.float64)]
    sx = m[0][0] * gx + m[0][1] * gy
    sy = m[1][0] * gx + m[1][1] * gy
    # pixel (sx + (w-1)/2) → grid_sample's align_corners=False coordinate (2 * pixel + 1) / w - 1
    grid = torch.stack([sx * (2.0 / w), sy * (2.0 / h)], dim=-1).to(dt).unsqueeze(0)
    out = nnf.grid_sample(planes, grid, mode=interpolation, padding_mode="zeros", align_corners=False)
    out = out.reshape(shape)
    return out if frames.is_floating_point() else out.round().to(frames.dtype)


@dataclasses.dataclass(frozen=True)
class RandomTemporalDelete(FrameTransform):
    """SpikingJelly's ``RandomTemporalDelete``: keep ``T_remain`` of the ``T`` frames, drawn without replacement.

    The kept indices, in order, are ``sorted(rng.choice(T, T_remain, replace=False))``; ``batch_first``: the
    time axis is 1 (``[N, T, ...]``), else 0.
    """

    T_remain: int
    batch_first: bool = False

    def __call__(self, frames, *, rng):
        axis = 1 if self.batch_first else 0
        steps = int(frames.shape[axis])
        if not 0 <= self.T_remain <= steps:
            raise ConfigurationError(f"RandomTemporalDelete: T_remain={self.T_remain} not in [0, T={steps}]")
        keep = np.sort(rng.choice(steps, self.T_remain, replace=False))
        if isinstance(frames, np.ndarray):
            return np.take(frames, keep, axis=axis)
        return frames.index_select(axis, torch.as_tensor(keep, device=frames.device))


@dataclasses.dataclass(frozen=True)
class RandomRoll(FrameTransform):
    """NDA's roll: ``torch.roll`` by ``(dy, dx)``, each uniform in ``-max_shift … max_shift`` (``dy`` drawn first)."""

    max_shift: int = 5

    def __call__(self, frames, *, rng):
        x, was_numpy = _tensor(frames)
        _spatial(x, "RandomRoll")
        dy, dx = (int(v) for v in rng.integers(-self.max_shift, self.max_shift + 1, size=2))
        return _out(torch.roll(x, shifts=(dy, dx), dims=(-2, -1)), was_numpy)


@dataclasses.dataclass(frozen=True)
class RandomRotate(FrameTransform):
    """NDA's rotation: by an angle uniform in ``[-degrees, degrees)`` (or a pair), counter-clockwise as displayed.

    About the centre; pixels from outside are 0. ``interpolation``: ``"nearest"`` (torchvision's
    ``RandomRotation`` default) or ``"bilinear"``.
    """

    degrees: float | tuple[float, float] = 30.0
    interpolation: str = "nearest"

    def __post_init__(self):
        _check_mode(self.interpolation, "RandomRotate")

    def __call__(self, frames, *, rng):
        x, was_numpy = _tensor(frames)
        d = self.degrees
        angle = math.radians(draw((-d, d) if not isinstance(d, (tuple, list)) else d, rng))
        c, s = math.cos(angle), math.sin(angle)
        return _out(affine_warp(x, np.array([[c, -s], [s, c]]), self.interpolation), was_numpy)


@dataclasses.dataclass(frozen=True)
class RandomShear(FrameTransform):
    """NDA's shear along x: angle ``a`` uniform in ``[-degrees, degrees)``; output ``(x, y)`` takes input
    ``(x + tan(a) * (y - cy), y)``, zeros outside."""

    degrees: float | tuple[float, float] = 30.0
    interpolation: str = "nearest"

    def __post_init__(self):
        _check_mode(self.interpolation, "RandomShear")

    def __call__(self, frames, *, rng):
        x, was_numpy = _tensor(frames)
        d = self.degrees
        shear = math.tan(math.radians(draw((-d, d) if not isinstance(d, (tuple, list)) else d, rng)))
        return _out(affine_warp(x, np.array([[1.0, shear], [0.0, 1.0]]), self.interpolation), was_numpy)


@dataclasses.dataclass(frozen=True)
class Cutout(FrameTransform):
    """NDA's (DeVries & Taylor's) cutout: zero the box ``[y - L//2, y + L//2) × [x - L//2, x + L//2)``,
    clipped to the frame, with the centre ``(y, x)`` uniform over the pixels (``y`` drawn first)."""

    length: int = 16

    def __call__(self, frames, *, rng):
        x, was_numpy = _tensor(frames)
        h, w = _spatial(x, "Cutout")
        cy, cx = int(rng.integers(0, h)), int(rng.integers(0, w))
        half = int(self.length) // 2
        y0, y1 = min(max(cy - half, 0), h), min(max(cy + half, 0), h)
        x0, x1 = min(max(cx - half, 0), w), min(max(cx + half, 0), w)
        out = x.clone()
        out[..., y0:y1, x0:x1] = 0
        return _out(out, was_numpy)


@dataclasses.dataclass(frozen=True)
class RandomResizedCrop(FrameTransform):
    """torchvision's ``RandomResizedCrop`` on all frames at once: a random box of ``scale`` × the area and
    aspect ratio (log-uniform) in ``ratio``, resized to ``size``.

    Up to 10 tries (area fraction, then log-ratio, then top, then left); if none fits, the largest
    central box with the ratio clamped into ``ratio``. ``size``: ``int`` or ``(h, w)``.
    """

    size: int | tuple[int, int]
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    interpolation: str = "bilinear"

    def __post_init__(self):
        _check_mode(self.interpolation, "RandomResizedCrop")

    def box(self, height: int, width: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
        """``(top, left, h, w)`` of the crop on a ``height`` × ``width`` frame."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            target = area * float(rng.uniform(*self.scale))
            aspect = math.exp(float(rng.uniform(*log_ratio)))
            w = int(round(math.sqrt(target * aspect)))
            h = int(round(math.sqrt(target / aspect)))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        in_ratio = width / height
        if in_ratio < min(self.ratio):
            w, h = width, int(round(width / min(self.ratio)))
        elif in_ratio > max(self.ratio):
            h, w = height, int(round(height * max(self.ratio)))
        else:
            w, h = width, height
        return (height - h) // 2, (width - w) // 2, h, w

    def __call__(self, frames, *, rng):
        x, was_numpy = _tensor(frames)
        height, width = _spatial(x, "RandomResizedCrop")
        top, left, h, w = self.box(height, width, rng)
        size = (self.size, self.size) if isinstance(self.size, int) else tuple(self.size)
        crop = x[..., top : top + h, left : left + w]
        lead = crop.shape[:-2]
        work = crop.reshape(1, -1, h, w)
        work = work if work.is_floating_point() else work.to(torch.float32)
        kw = {"align_corners": False} if self.interpolation == "bilinear" else {}
        out = nnf.interpolate(work, size=size, mode=self.interpolation, **kw).reshape(*lead, *size)
        return _out(out if x.is_floating_point() else out.round().to(x.dtype), was_numpy)


@dataclasses.dataclass(frozen=True)
class FrameCompose(FrameTransform):
    """Apply frame transforms in order (plain callables are called as ``t(frames)``)."""

    transforms: Sequence[Callable[..., Any]]

    def __post_init__(self):
        object.__setattr__(self, "transforms", tuple(self.transforms))

    def __call__(self, frames, *, rng):
        for t in self.transforms:
            frames = apply_frame_transform(t, frames, rng)
        return frames


@dataclasses.dataclass(frozen=True)
class FrameRandomApply(FrameTransform):
    """Apply ``transform`` with probability ``p`` (one draw per call)."""

    transform: Callable[..., Any]
    p: float = 0.5

    def __post_init__(self):
        check_probability(self.p, "FrameRandomApply")

    def __call__(self, frames, *, rng):
        return apply_frame_transform(self.transform, frames, rng) if rng.random() < self.p else frames


@dataclasses.dataclass(frozen=True)
class FrameRandomChoice(FrameTransform):
    """Apply one of ``transforms``, chosen uniformly (NDA picks one of roll, rotate, shear per sample)."""

    transforms: Sequence[Callable[..., Any]]

    def __post_init__(self):
        object.__setattr__(self, "transforms", tuple(self.transforms))
        if not self.transforms:
            raise ConfigurationError("FrameRandomChoice needs at least one transform")

    def __call__(self, frames, *, rng):
        return apply_frame_transform(self.transforms[int(rng.integers(0, len(self.transforms)))], frames, rng)
