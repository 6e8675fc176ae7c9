"""ATIS 40-bit ``.bin`` reader (N-MNIST, N-Caltech101; SLAYER ``.bs2`` uses the same bytes).

Layout (``shared/FORMATS.md`` §8): no header, no sensor size; 5 bytes per event, read as a big-endian
40-bit word: bits 39–32 x (byte 0), 31–24 y (byte 1), bit 23 polarity (byte 2 bit 7; 1 = ON),
bits 22–0 timestamp in µs.

Timestamp overflow, two conventions (``overflow=``):

``"authors"`` (default)
    Garrick Orchard's ``eventvision.read_dataset``, copied by tonic 1.7.0 ``read_mnist_file``: a record
    with ``y == 240`` is an overflow marker; it is dropped and ``2**13`` is added to the timestamps of
    every later event (vectorised: ``t += 8192 * cumsum(y == 240)``). Markers are counted in
    ``skipped["overflow_markers"]``. Note 2**13 is what the authors' code adds, although the counter has
    23 bits; no sample we have contains a marker, so this is parity with their reader, not a verified fact.
``"ignore"``
    SpikingJelly 2.0.0 ``load_ATIS_bin``: every record is an event, markers included, no correction.

The two are identical on files without a ``y == 240`` record (all real samples we have).

Reference-reader quirks: on a length that is not a multiple of 5, SpikingJelly returns arrays of
different lengths and tonic fails inside ``make_structured_array``; here it is a :class:`FormatError`
naming the byte offset of the incomplete record (or, with ``allow_truncated``, the tail is dropped and
its length reported in ``truncated_bytes``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from loader.errors import ConfigurationError

from .chunks import check_chunk_events, iter_record_chunks
from .events import Events, FormatError

RECORD_SIZE = 5
OVERFLOW_Y = 240
OVERFLOW_INCREMENT = 1 << 13
OVERFLOW_MODES = ("authors", "ignore")


def _check_overflow(overflow: str) -> None:
    if overflow not in OVERFLOW_MODES:
        raise ConfigurationError(f"overflow must be one of {OVERFLOW_MODES}, got {overflow!r}")


def _truncation_error(name: str, size: int) -> FormatError:
    whole = size - size % RECORD_SIZE
    return FormatError(
        name,
        whole,
        f"incomplete 5-byte event record ({size % RECORD_SIZE} of 5 bytes; file length {size} is not a "
        "multiple of 5); pass --allow-truncated to keep the events before it",
    )


def _decode(records: np.ndarray, overflow: str, carried: int) -> tuple[Events, int]:
    """Decode ``(n, 5)`` uint8 records; ``carried`` overflow markers were seen before them."""
    n = records.shape[0]
    x = records[:, 0].copy()  # uint8, as stored (the smallest type that holds the field)
    y = records[:, 1].copy()
    p = records[:, 2] >> 7
    # bytes 1-4 of each record as one big-endian word: y (8 bits), p (1 bit), t (23 bits)
    word = np.ndarray((n,), dtype=">u4", buffer=records, offset=1, strides=(RECORD_SIZE,)) if n else \
        np.zeros(0, np.uint32)
    t = word.astype(np.int64)
    t &= 0x7FFFFF
    skipped: dict[str, int] = {}
    if overflow == "authors":
        marker = y == OVERFLOW_Y
        n_markers = int(np.count_nonzero(marker))
        if carried or n_markers:
            t += OVERFLOW_INCREMENT * (carried + np.cumsum(marker, dtype=np.int64))
        if n_markers:
            keep = ~marker
            t, x, y, p = t[keep], x[keep], y[keep], p[keep]
        skipped["overflow_markers"] = n_markers
        carried += n_markers
    return Events(t=t, x=x, y=y, p=p, skipped=skipped), carried


def read_atis_bin(
    data: bytes | bytearray | memoryview,
    name: str,
    overflow: str = "authors",
    *,
    allow_truncated: bool = False,
) -> Events:
    """Decode every event of an ATIS 40-bit ``.bin`` file held in memory.

    Parameters
    ----------
    data : bytes, bytearray, memoryview or mmap
        The whole file.
    name : str
        File name used in error messages.
    overflow : {"authors", "ignore"}
        ``"authors"``: records with ``y == 240`` are overflow markers (dropped, ``2**13`` µs added to all
        later timestamps, counted in ``skipped["overflow_markers"]``), as tonic / the N-MNIST authors do.
        ``"ignore"``: every record is an event, as SpikingJelly's ``load_ATIS_bin`` does.
    allow_truncated : bool
        Drop an incomplete last record instead of raising; its length goes to ``truncated_bytes``.

    Returns
    -------
    Events
        ``t`` int64 (µs), ``x``, ``y`` uint8 (the format's 8-bit fields), ``p`` uint8 (1 = ON), file order;
        width/height ``None`` (the format does not store them).

    Raises
    ------
    FormatError
        The length is not a multiple of 5 (offset = start of the incomplete record) and
        ``allow_truncated`` is false.
    ValueError
        Unknown ``overflow`` mode.
    """
    _check_overflow(overflow)
    buf = np.frombuffer(data, dtype=np.uint8)
    size = buf.size
    tail = size % RECORD_SIZE
    if tail and not allow_truncated:
        raise _truncation_error(name, size)
    records = buf[: size - tail].reshape(-1, RECORD_SIZE)
    events, _ = _decode(records, overflow, 0)
    events.truncated_bytes = tail
    return events


def iter_atis_bin(
    path: str | os.PathLike,
    chunk_events: int = 1 << 20,
    overflow: str = "authors",
    *,
    allow_truncated: bool = False,
) -> Iterator[Events]:
    """Read a large ATIS ``.bin`` file chunk by chunk.

    The overflow-marker count is carried from chunk to chunk, so concatenating the chunks gives exactly
    :func:`read_atis_bin` of the whole file (``skipped`` counts are per chunk and add up;
    ``truncated_bytes`` is set on the last chunk).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    chunk_events : int
        Records read per chunk (markers included).
    overflow : {"authors", "ignore"}
        As for :func:`read_atis_bin`.
    allow_truncated : bool
        As for :func:`read_atis_bin`.

    Yields
    ------
    Events
        At least one chunk (an empty one for an empty file).

    Raises
    ------
    FormatError
        Before the first chunk, when the file length is not a multiple of 5 and ``allow_truncated``
        is false.
    """
    _check_overflow(overflow)
    check_chunk_events(chunk_events)
    name = str(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        tail = size % RECORD_SIZE
        if tail and not allow_truncated:
            raise _truncation_error(name, size)
        carried = 0
        for _, raw, last in iter_record_chunks(f, name, 0, size, RECORD_SIZE, chunk_events):
            records = np.frombuffer(raw, dtype=np.uint8).reshape(-1, RECORD_SIZE)
            events, carried = _decode(records, overflow, carried)
            if last:
                events.truncated_bytes = tail
            yield events


def read_atis_bin_file(path: str | os.PathLike, overflow: str = "authors", *, allow_truncated: bool = False) -> Events:
    """Read a whole ATIS ``.bin`` file from disk (convenience wrapper of :func:`read_atis_bin`).

    Parameters
    ----------
    path : str or os.PathLike
        The file; its name is used in error messages.
    overflow : {"authors", "ignore"}
        As for :func:`read_atis_bin`.
    allow_truncated : bool
        As for :func:`read_atis_bin`.

    Returns
    -------
    Events
        As for :func:`read_atis_bin`.
    """
    return read_atis_bin(Path(path).read_bytes(), str(path), overflow, allow_truncated=allow_truncated)
