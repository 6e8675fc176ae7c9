"""Generated recordings for the ``folder`` dataset: known events written as AEDAT 2.0 (DVS128), Prophesee DAT
(with or without ``% Width``/``% Height``) or ATIS ``.bin``, with the byte generators of
:mod:`tests.gen_rawfiles` / :mod:`tests.gen_eventfiles` (independent of the readers).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tests.gen_eventfiles import encode_dat
from tests.gen_rawfiles import aedat2_bytes, atis_bin_bytes, dvs128_address

Events = dict[str, np.ndarray]


def random_recording(rng: np.random.Generator, n: int, t0: int = 1_000_000, max_gap: int = 40,
                     size: tuple[int, int] = (128, 128)) -> Events:
    """``n`` events with non-decreasing ``t`` from ``t0`` (repeats included), inside an ``(H, W)`` sensor."""
    gaps = rng.integers(0, max_gap + 1, size=n)
    gaps[0] = 0
    h, w = size
    return {
        "t": (t0 + np.cumsum(gaps)).astype(np.int64),
        "x": rng.integers(0, w, n).astype(np.int64),
        "y": rng.integers(0, h, n).astype(np.int64),
        "p": rng.integers(0, 2, n).astype(np.int64),
    }


def write_recording(path: Path, ev: Events, fmt: str, size: tuple[int, int] | None = (128, 128)) -> Path:
    """Write ``ev`` to ``path`` as ``fmt``: ``aedat2`` (DVS128 chip, 128x128), ``dat`` (``size`` in the header,
    or none when ``None``) or ``bin`` (ATIS records: no size, ``t < 2**23``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    t, x, y, p = (ev[c] for c in "txyp")
    if fmt == "aedat2":
        data = aedat2_bytes(dvs128_address(x, y, p), t)
    elif fmt == "dat":
        h, w = size if size is not None else (None, None)
        data = encode_dat(t, x, y, p, width=w, height=h)
    elif fmt == "bin":
        data = atis_bin_bytes(x, y, p, t)
    else:
        raise ValueError(fmt)
    path.write_bytes(data)
    return path


def select(ev: Events, start: int, end: int) -> Events:
    """The events with ``start <= t < end``, by mask (the reference for windows)."""
    m = (ev["t"] >= start) & (ev["t"] < end)
    return {c: v[m] for c, v in ev.items()}
