"""Helpers the chunked raw-format readers share: the ``chunk_events`` check, the truncated-tail error and
the loop that reads a file body as fixed-size records, one chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from loader.errors import ConfigurationError

from .events import FormatError


def check_chunk_events(chunk_events: int) -> None:
    """Raise :class:`ValueError` unless ``chunk_events`` is at least 1."""
    if chunk_events < 1:
        raise ConfigurationError(f"chunk_events must be >= 1, got {chunk_events}")


def truncation_error(name: str, start: int, body: int, unit: int, what: str) -> FormatError:
    """The error for a body whose length is not a multiple of ``unit`` bytes.

    Parameters
    ----------
    name : str
        File name used in the message.
    start : int
        File offset where the body starts.
    body : int
        Length of the body in bytes.
    unit : int
        Record size in bytes.
    what : str
        What a record is called in the message (``"32-bit word"``, ``"8-byte event"`` …).

    Returns
    -------
    FormatError
        Located at the start of the incomplete record.
    """
    whole = start + body - body % unit
    return FormatError(
        name,
        whole,
        f"incomplete {what} at the end ({body % unit} of {unit} bytes); pass --allow-truncated to keep the "
        "events before it",
    )


def tail_length(name: str, start: int, body: int, unit: int, what: str, allow_truncated: bool) -> int:
    """Length of the incomplete record at the end of a body of ``body`` bytes starting at ``start``.

    Raises
    ------
    FormatError
        The tail is not empty and ``allow_truncated`` is false (see :func:`truncation_error`).
    """
    tail = body % unit
    if tail and not allow_truncated:
        raise truncation_error(name, start, body, unit, what)
    return tail


def iter_record_chunks(
    f: BinaryIO,
    name: str,
    start: int,
    body: int,
    unit: int,
    chunk_records: int,
    *,
    shrank_at_end: bool = False,
) -> Iterator[tuple[int, bytes, bool]]:
    """Read the whole records of a file body, ``chunk_records`` at a time.

    The file is positioned at ``start`` first; ``body // unit`` records are read (an incomplete tail is
    the caller's business). At least one (possibly empty) chunk is yielded.

    Parameters
    ----------
    f : binary file
        The open file.
    name : str
        File name used in error messages.
    start : int
        File offset of the first record.
    body : int
        Length in bytes of what follows ``start``.
    unit : int
        Record size in bytes.
    chunk_records : int
        Records per chunk (at least 1).
    shrank_at_end : bool
        Where a "file shrank" error points: the end of the short read (``True``) or the start of the
        chunk (``False``).

    Yields
    ------
    tuple of (int, bytes, bool)
        File offset of the chunk, its bytes, and whether it is the last chunk.

    Raises
    ------
    FormatError
        The file ended before the records its size promised ("file shrank while it was being read").
    """
    f.seek(start)
    remaining = body // unit
    offset = start
    first = True
    while remaining or first:
        n = min(chunk_records, remaining)
        raw = f.read(n * unit)
        if len(raw) != n * unit:
            at = offset + len(raw) if shrank_at_end else offset
            raise FormatError(name, at, "file shrank while it was being read")
        remaining -= n
        first = False
        yield offset, raw, not remaining
        offset += n * unit
