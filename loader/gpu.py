"""Frames integrated on a device (GPU): workers hand over packed events, the batch's frames are built there.

With ``EventShardDataset(..., data_type="frame", device="cuda")`` each DataLoader worker decodes a sample
only as far as its packed pixel column and the frame boundaries (:class:`PackedSample`: 2 bytes per event
for a sensor up to 2·H·W = 65536 pixels, instead of ``T·2·H·W`` float32 values). :func:`packed_collate`
lays a batch's samples end to end in one tensor, the DataLoader pins it (``pin_memory=True``), and
:class:`DeviceFrames` copies it to the device on a side stream while the previous batch is used, then
integrates all frames of the batch with one ``index_add_``. The frames equal the CPU frames
(:mod:`loader.pixels`, SpikingJelly's semantics) value for value; a batch of samples with different ``T``
(``duration``) is zero-padded at the end of its time axis like :func:`loader.collate.pad_sequence_collate`.

    ds = EventShardDataset(root, "train", data_type="frame", frames_number=20, split_by="number", device="cuda")
    for frames, labels in DeviceFrames(ds, batch_size=16, num_workers=2):
        ...  # frames: float32 [16, 20, 2, 128, 128] on the GPU
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from loader import pixels as _pixels

__all__ = ["DeviceFrames", "PackedBatch", "PackedSample", "pack_sample", "packed_collate"]


@dataclass
class PackedSample:
    """One sample as a worker hands it over: the pixel indices its frames count, and how many per frame.

    ``pix`` holds the events of frame 0, then those of frame 1, … (``counts[i]`` each); ``h``, ``w`` the
    sensor size the indices refer to.
    """

    pix: np.ndarray
    counts: np.ndarray
    h: int
    w: int

    @property
    def nbytes(self) -> int:
        """Bytes this sample moves to the device."""
        return int(self.pix.nbytes + self.counts.nbytes)


def pack_sample(events: dict[str, np.ndarray], sensor_size: Sequence[int], split_by: str | None,
                frames_number: int | None, duration: float | None) -> PackedSample:
    """A :class:`PackedSample` from decoded ``{"pix"[, "dt"]}`` columns, with the segments of
    :func:`loader.pixels.segments` (SpikingJelly's frame boundaries)."""
    h, w = int(sensor_size[0]), int(sensor_size[1])
    pix = events["pix"]
    j_l, j_r = _pixels.segments(events.get("dt"), len(pix), split_by, frames_number, duration)
    counts = j_r - j_l
    if len(j_l) and (j_l[0] != 0 or np.any(j_l[1:] != j_r[:-1])):  # gaps between segments: leave them out
        pix = np.concatenate([pix[a:b] for a, b in zip(j_l.tolist(), j_r.tolist(), strict=True)])
    else:
        pix = pix[: int(counts.sum())]
    if len(pix) and int(pix.max()) >= 2 * h * w:
        raise ValueError(f"pixel indices must lie in [0, {2 * h * w}) for a {h}x{w} sensor")
    return PackedSample(np.ascontiguousarray(pix), counts.astype(np.int64), h, w)


def _as_tensor(pix: np.ndarray) -> torch.Tensor:
    """The index bytes as a tensor torch can move: ``uint16`` travels as ``int16`` (re-read on the device)."""
    if pix.dtype == np.uint16:
        return torch.from_numpy(pix.view(np.int16))
    return torch.from_numpy(pix.astype(np.int64, copy=False))


@dataclass
class PackedBatch:
    """A batch of :class:`PackedSample` laid end to end, plus the labels (and keys) of its samples."""

    pix: torch.Tensor
    counts: torch.Tensor
    frames: torch.Tensor
    labels: Any
    h: int
    w: int
    keys: list[str] | None = None
    t_max: int = 0
    """The most frames of a sample (known on the host: integrating needs no device-to-host sync)."""

    def pin_memory(self) -> PackedBatch:
        """A copy in page-locked memory (what ``DataLoader(pin_memory=True)`` calls)."""
        return PackedBatch(self.pix.pin_memory(), self.counts.pin_memory(), self.frames.pin_memory(),
                           _pin(self.labels), self.h, self.w, self.keys, self.t_max)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> PackedBatch:
        """The batch's tensors on ``device``."""
        mv = lambda v: v.to(device, non_blocking=non_blocking) if isinstance(v, torch.Tensor) else v  # noqa: E731
        return PackedBatch(mv(self.pix), mv(self.counts), mv(self.frames), mv(self.labels), self.h, self.w, self.keys,
                           self.t_max)

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors that travel to the device (indices, counts, frame numbers)."""
        return int(sum(t.numel() * t.element_size() for t in (self.pix, self.counts, self.frames)))

    def integrate(self) -> torch.Tensor:
        """Frames ``[B, T_max, 2, H, W]`` ``float32`` on the batch's device (zeros past a sample's ``T``)."""
        device = self.pix.device
        bins = 2 * self.h * self.w
        n_samples, t_max = len(self.labels), self.t_max
        out = torch.zeros(n_samples * t_max * bins, dtype=torch.float32, device=device)
        if self.pix.numel():
            slot = (self.frames[:, 0] * t_max + self.frames[:, 1]) * bins
            index = torch.repeat_interleave(slot, self.counts, output_size=self.pix.numel())
            pix = self.pix.to(torch.int64)
            if self.pix.dtype == torch.int16:
                pix &= 0xFFFF  # the uint16 indices, sent as int16
            index += pix
            out.index_add_(0, index, torch.ones(index.numel(), dtype=torch.float32, device=device))
        return out.view(n_samples, t_max, 2, self.h, self.w)

    def lengths(self) -> torch.Tensor:
        """``[B]`` frames per sample (``int64``, on the batch's device)."""
        return torch.bincount(self.frames[:, 0], minlength=len(self.labels))


def _pin(v: Any) -> Any:
    return v.pin_memory() if isinstance(v, torch.Tensor) else v


def packed_collate(batch: Sequence[tuple[Any, ...]]) -> PackedBatch:
    """``collate_fn`` for items ``(PackedSample, label[, key])``: one :class:`PackedBatch`."""
    if len(batch) == 0:
        raise ValueError("packed_collate needs at least one sample")
    samples = [item[0] for item in batch]
    if not all(isinstance(s, PackedSample) for s in samples):
        raise TypeError("packed_collate needs PackedSample items: EventShardDataset(..., device=...)")
    h, w = samples[0].h, samples[0].w
    pix = np.concatenate([s.pix for s in samples])
    counts = np.concatenate([s.counts for s in samples])
    frames = np.concatenate([np.stack([np.full(len(s.counts), b), np.arange(len(s.counts))], axis=1)
                             for b, s in enumerate(samples)]).astype(np.int64)
    labels = torch.as_tensor([item[1] for item in batch])
    keys = [item[2] for item in batch] if len(batch[0]) == 3 else None
    t_max = max(len(s.counts) for s in samples)
    return PackedBatch(_as_tensor(pix), torch.from_numpy(counts), torch.from_numpy(frames), labels, h, w, keys, t_max)


class DeviceFrames:
    """Iterate a dataset's batches as frames built on ``device``, the next batch's copy overlapping the current.

    Parameters
    ----------
    dataset : EventShardDataset
        Made with ``data_type="frame"`` and ``device=...`` (its items are :class:`PackedSample`).
    batch_size : int
        Samples per batch.
    device : str or torch.device, optional
        Where frames are built; default the dataset's ``device``.
    return_lengths : bool
        Also yield each sample's frame count (useful with ``duration``, whose ``T`` varies).
    **loader_kwargs
        Passed to ``torch.utils.data.DataLoader`` (``num_workers``, ``persistent_workers``, …); ``pin_memory``
        defaults to ``True`` on a CUDA device.

    Yields
    ------
    ``(frames, labels[, lengths][, keys])``: ``frames`` ``float32 [B, T, 2, H, W]``, ``labels`` ``[B]``, on the device.
    """

    def __init__(self, dataset: Any, batch_size: int, device: str | torch.device | None = None,
                 return_lengths: bool = False, **loader_kwargs: Any):
        self.device = torch.device(device if device is not None else dataset.device)
        cuda = self.device.type == "cuda"
        loader_kwargs.setdefault("pin_memory", cuda)
        self.loader = DataLoader(dataset, batch_size=batch_size, collate_fn=packed_collate, **loader_kwargs)
        self.return_lengths = return_lengths
        self.bytes_to_device = 0
        """Bytes moved to the device so far (indices, frame counts and numbers)."""

    def __len__(self) -> int:
        return len(self.loader)

    def _out(self, batch: PackedBatch) -> tuple[Any, ...]:
        out: tuple[Any, ...] = (batch.integrate(), batch.labels)
        if self.return_lengths:
            out += (batch.lengths(),)
        return out + ((batch.keys,) if batch.keys is not None else ())

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        if self.device.type != "cuda":
            for batch in self.loader:
                self.bytes_to_device += batch.nbytes
                yield self._out(batch.to(self.device))
            return
        stream = torch.cuda.Stream(self.device)
        current = torch.cuda.current_stream(self.device)
        pending = None
        for batch in self.loader:
            self.bytes_to_device += batch.nbytes
            with torch.cuda.stream(stream):  # copy the next batch while the current one is used
                moved = batch.to(self.device, non_blocking=True)
            if pending is not None:
                yield self._out(pending)
            current.wait_stream(stream)
            for t in (moved.pix, moved.counts, moved.frames, moved.labels):
                if isinstance(t, torch.Tensor):
                    t.record_stream(current)  # used on the current stream: not reused before it is done
            pending = moved
        if pending is not None:
            yield self._out(pending)
