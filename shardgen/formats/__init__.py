"""Read your own event-camera recordings: one entry point for every raw format.

>>> from shardgen.formats import read_events, iter_events
>>> ev = read_events("recording.raw")            # format detected from the header
>>> for chunk in iter_events("huge.aedat4", chunk_events=1 << 20): ...

Every reader returns :class:`~shardgen.formats.events.Events` (``t`` int64 µs, ``x``/``y`` uint16, ``p``
uint8 with 1 = ON, in file order, plus ``width``/``height``/``camera`` as far as the file states them and
``skipped`` counts) and raises :class:`~shardgen.formats.events.FormatError` — whose message starts with
``<file>: byte <offset>:`` — on a damaged file.

========== ============================================= ===================================================
name       format                                        module / reference reader used in the tests
========== ============================================= ===================================================
aedat2     AEDAT 2.0 (jAER)                              :mod:`.aedat2`
aedat3     AEDAT 3.1 (cAER; DVS128 Gesture)              :mod:`.aedat3`
aedat4     AEDAT 4.0 (DV)                                :mod:`.aedat4` (decodes with ``aedat``)
evt2       Prophesee EVT 2.0 ``.raw`` (header optional)  :mod:`.evt2` (expelliarmus)
evt3       Prophesee EVT 3.0 ``.raw``                    :mod:`.evt3` (openeb's time rule)
dat        Prophesee DAT (Event2D/CD)                    :mod:`.dat` (expelliarmus)
es         Event Stream ``.es`` v2, DVS/ATIS             :mod:`.es` (``event_stream``)
atis_bin   ATIS 40-bit ``.bin``/``.bs2`` (N-MNIST …)     :mod:`.atis_bin`
========== ============================================= ===================================================

Format detection (:func:`detect_format`) looks at the first bytes: the AEDAT magics, ``Event Stream``, and
Prophesee ``%`` headers (``% evt 2.0|3.0`` or ``% format EVT2|EVT3`` → RAW; ``% Data file containing …``,
``% Version`` or a ``.dat`` suffix → DAT). Files without any header:

* **Headerless EVT 2.0** (e.g. a GenX320 word dump such as ``left2.bin``) is recognised by content:
  :func:`shardgen.formats.evt2.looks_like_evt2` (size multiple of 4, first word a TIME_HIGH, only defined
  word types and non-decreasing TIME_HIGHs in the first 64 KiB, some CD words). ``format="evt2"`` always
  works and is the reliable way.
* **ATIS ``.bin`` / ``.bs2``**: a ``.bin``/``.bs2`` suffix, a size that is a multiple of 5, and records whose
  23-bit timestamps mostly do not decrease.
* **DAT without header**: a ``.dat`` suffix (read as type 0, 8-byte events from byte 0, as openeb does).

If both content tests pass, or none, :func:`detect_format` raises and asks for ``format=``.

Chunked reading (:func:`iter_events`) keeps every decoder's state across chunks and re-slices the decoded
events so that every chunk holds exactly ``chunk_events`` events except the last; concatenating the chunks
equals :func:`read_events`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from loader.errors import ConfigurationError

from .chunks import check_chunk_events
from .events import Events, FormatError

FORMATS = ("aedat2", "aedat3", "aedat4", "evt2", "evt3", "dat", "es", "atis_bin")
_HEAD_BYTES = 1 << 16
_AEDAT_ERROR_RE = re.compile(r"^(?P<name>.*?): byte (?P<offset>\d+): (?P<msg>.*)$", re.S)
_SOURCE_RE = re.compile(rb"^#Source\s+\d+:\s*(.+?)\s*$", re.M)

__all__ = ["FORMATS", "Events", "FormatError", "detect_format", "iter_events", "read_events"]


# -------------------------------------------------------------------------------------------------- detection


def _looks_like_atis(head: bytes) -> bool:
    """ATIS 40-bit records: 23-bit timestamps that (mostly) do not decrease over the first records."""
    n = min(len(head) // 5, 4096)
    if n < 2:
        return False
    rec = np.frombuffer(head[: 5 * n], dtype=np.uint8).reshape(n, 5).astype(np.int64)
    ts = (rec[:, 2] & 0x7F) << 16 | rec[:, 3] << 8 | rec[:, 4]
    backwards = np.count_nonzero(np.diff(ts) < 0)
    return backwards <= max(1, (n - 1) // 100)


def _detect(head: bytes, name: str, size: int | None, suffix: str) -> str:
    if head.startswith(b"#!AER-DAT2.0"):
        return "aedat2"
    if head.startswith(b"#!AER-DAT3."):
        return "aedat3"
    if head.startswith(b"#!AER-DAT4.0"):
        return "aedat4"
    if head.startswith(b"#!AER-DAT"):
        raise FormatError(name, 0, f"unsupported AEDAT version {head[:12]!r}")
    if head.startswith(b"Event Stream"):
        return "es"
    if head.startswith(b"MATLAB 5.0 MAT-file"):
        raise FormatError(name, 0, "a MATLAB .mat file, not a raw event stream (read it with the dataset module)")
    if head[:1] == b"%":
        from .evt2 import scan_raw_header

        header = scan_raw_header(head, name, at_eof=size is not None and len(head) >= size)
        fields = header.fields if header is not None else {}
        encoding = header.encoding if header is not None else None
        if encoding is None:  # the header may be longer than ``head``: look at the lines we have
            text = head.decode("latin-1")
            m = re.search(r"^% (?:evt (\S+)|format (\w+))", text, re.M)
            if m:
                from .evt2 import interpret_fields

                encoding = interpret_fields({"evt": m.group(1)} if m.group(1) else {"format": m.group(2)})[0]
        if encoding in ("evt2", "evt3"):
            return encoding
        if encoding is not None:
            raise FormatError(name, 0, f"Prophesee RAW encoding {encoding!r} is not supported (EVT 2.0 and 3.0 are)")
        if "Data" in fields or "Version" in fields or suffix == ".dat" or b"% Data file containing" in head:
            return "dat"
        raise FormatError(
            name, 0, "a '%' header without '% evt' or '% format' (Prophesee RAW?) — pass --format evt2|evt3"
        )
    if suffix == ".dat":
        return "dat"  # a DAT file without '%' lines: type 0, 8-byte events from byte 0 (openeb's rule)
    from .evt2 import looks_like_evt2

    evt2 = looks_like_evt2(head, size)
    atis = (size is None or size % 5 == 0) and _looks_like_atis(head)
    if suffix and suffix not in (".bin", ".bs2"):
        atis = False
    if evt2 and not atis:
        return "evt2"
    if atis and not evt2:
        return "atis_bin"
    why = "it could be a headerless EVT 2.0 stream or ATIS .bin records" if evt2 else "no known header"
    raise FormatError(name, 0, f"cannot tell the format ({why}); pass --format (format= in Python), one of {FORMATS}")


def detect_format(path_or_head: str | os.PathLike | bytes | bytearray | memoryview) -> str:
    """Tell the format of a raw event file from its first bytes.

    Parameters
    ----------
    path_or_head : path or bytes-like
        A file path (its first 64 KiB, size and suffix are used) or the first bytes of a file (content only:
        no size or suffix checks).

    Returns
    -------
    str
        One of :data:`FORMATS`.

    Raises
    ------
    FormatError
        Unknown or ambiguous content, an unsupported AEDAT version or Prophesee encoding; the message asks
        for an explicit ``format=``.
    """
    if isinstance(path_or_head, (bytes, bytearray, memoryview)):
        return _detect(bytes(path_or_head), "<bytes>", None, "")
    path = Path(path_or_head)
    with open(path, "rb") as f:
        head = f.read(_HEAD_BYTES)
        size = os.fstat(f.fileno()).st_size
    return _detect(head, str(path), size, path.suffix.lower())


def _check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ConfigurationError(f"unknown format {fmt!r}; known: {FORMATS}")
    return fmt


# -------------------------------------------------------------------------------------------------- AEDAT 3.1


def _aedat3_meta(head: bytes) -> tuple[int | None, int | None, str | None]:
    m = _SOURCE_RE.search(head)
    if not m:
        return None, None, None
    camera = m.group(1).decode("latin-1")
    if "DVS128" in camera.upper():
        return 128, 128, camera
    return None, None, camera


def _aedat3_call(fn, *args, **kw):
    from .aedat3 import AedatError

    try:
        return fn(*args, **kw)
    except AedatError as exc:
        m = _AEDAT_ERROR_RE.match(str(exc))
        if m:
            raise FormatError(m["name"], int(m["offset"]), m["msg"]) from exc
        raise FormatError(str(args[1]) if len(args) > 1 else "", None, str(exc)) from exc


def _aedat3_events(res, meta: tuple, truncated: int) -> Events:
    skipped = {"other_packets": int(res.skipped_packets)}
    return Events(res.t, res.x, res.y, res.p, *meta, skipped, truncated)


# ---------------------------------------------------------------------------------------------- entry points


def read_events(path: str | os.PathLike, format: str | None = None, **kw: Any) -> Events:
    """Read every polarity event of a raw event-camera file.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    format : str or None
        One of :data:`FORMATS`; ``None`` detects it with :func:`detect_format`.
    **kw
        Passed to the format's reader, e.g. ``allow_truncated=True`` (all formats), ``time_rule=`` (evt3:
        ``"openeb"``/``"expelliarmus"``; dat: ``"wrap"``/``"expelliarmus"``), ``layout=`` (aedat2),
        ``overflow=`` (atis_bin), ``stream_id=`` (aedat4).

    Returns
    -------
    Events
        In file order; see the module of each format for its time origin and conventions.

    Raises
    ------
    FormatError
        Unknown format or a damaged file; the message names the file and the byte offset.
    ImportError
        ``format="aedat4"`` without the ``aedat`` package (``pip install 'eventshard[aedat4]'``).
    """
    fmt = _check_format(format) if format is not None else detect_format(path)
    name = str(path)
    if fmt == "aedat4":
        from .aedat4 import read_aedat4

        return read_aedat4(path, name, **kw)
    data = Path(path).read_bytes()
    if fmt == "aedat2":
        from .aedat2 import read_aedat2

        return read_aedat2(data, name, **kw)
    if fmt == "aedat3":
        from .aedat3 import header_end, read_aedat3

        res = _aedat3_call(read_aedat3, data, name, **kw)
        meta = _aedat3_meta(data[: _aedat3_call(header_end, data, name)])
        return _aedat3_events(res, meta, int(res.truncated_bytes))
    if fmt == "evt2":
        from .evt2 import read_evt2

        return read_evt2(data, name, **kw)
    if fmt == "evt3":
        from .evt3 import read_evt3

        return read_evt3(data, name, **kw)
    if fmt == "dat":
        from .dat import read_dat

        return read_dat(data, name, **kw)
    if fmt == "es":
        from .es import read_es

        return read_es(data, name, **kw)
    from .atis_bin import read_atis_bin

    return _uint16(read_atis_bin(data, name, **kw))


def _uint16(ev: Events) -> Events:
    """Coordinates as ``uint16`` like every other reader (the ATIS reader keeps its 8-bit fields as ``uint8``)."""
    ev.x = ev.x.astype(np.uint16)
    ev.y = ev.y.astype(np.uint16)
    return ev


def _raw_chunks(path: str | os.PathLike, fmt: str, chunk_events: int, kw: dict[str, Any]) -> Iterator[Events]:
    """The format module's own chunk iterator (chunk sizes vary)."""
    if fmt == "aedat4":
        from .aedat4 import iter_aedat4

        yield from iter_aedat4(path, chunk_events, **kw)
    elif fmt == "aedat2":
        from .aedat2 import iter_aedat2

        yield from iter_aedat2(path, chunk_events, **kw)
    elif fmt == "aedat3":
        from .aedat3 import _read_file_header_end, iter_aedat3

        with open(path, "rb") as f:
            start = _aedat3_call(_read_file_header_end, f, str(path))
            f.seek(0)
            meta = _aedat3_meta(f.read(start))
        it = iter_aedat3(path, chunk_events, **kw)
        while True:
            res = _aedat3_call(next, it, None)
            if res is None:
                break
            yield _aedat3_events(res, meta, int(res.truncated_bytes))
    elif fmt == "evt2":
        from .evt2 import iter_evt2

        yield from iter_evt2(path, chunk_events, **kw)
    elif fmt == "evt3":
        from .evt3 import iter_evt3

        yield from iter_evt3(path, chunk_events, **kw)
    elif fmt == "dat":
        from .dat import iter_dat

        yield from iter_dat(path, chunk_events, **kw)
    elif fmt == "es":
        from .es import iter_es

        yield from iter_es(path, chunk_events, **kw)
    else:
        from .atis_bin import iter_atis_bin

        yield from map(_uint16, iter_atis_bin(path, chunk_events, **kw))


def _slice(ev: Events, a: int, b: int) -> Events:
    return Events(ev.t[a:b], ev.x[a:b], ev.y[a:b], ev.p[a:b], ev.width, ev.height, ev.camera)


def _join(parts: list[Events], like: Events, skipped: dict[str, int], truncated: int) -> Events:
    if len(parts) == 1:
        ev = parts[0]
        t, x, y, p = ev.t, ev.x, ev.y, ev.p
    elif parts:
        t, x, y, p = (np.concatenate([getattr(e, k) for e in parts]) for k in "txyp")
    else:
        t, x, y, p = like.t[:0], like.x[:0], like.y[:0], like.p[:0]
    return Events(t, x, y, p, like.width, like.height, like.camera, dict(skipped), truncated)


def iter_events(
    path: str | os.PathLike, format: str | None = None, chunk_events: int = 1 << 20, **kw: Any
) -> Iterator[Events]:
    """Read a raw event file that may be larger than memory, ``chunk_events`` events at a time.

    Parameters
    ----------
    path : str or os.PathLike
        The file.
    format : str or None
        One of :data:`FORMATS`; ``None`` detects it.
    chunk_events : int
        Events per chunk: every chunk holds exactly this many except the last (which is shorter, and
        empty only when the file has no events at all).
    **kw
        As for :func:`read_events`.

    Yields
    ------
    Events
        Consecutive slices of what :func:`read_events` returns (same dtypes and metadata). ``skipped``
        counts are attributed to the chunk during which they were met and add up to the whole-file counts;
        ``truncated_bytes`` is set on the last chunk.

    Raises
    ------
    FormatError
        As for :func:`read_events`; a damage is reported when the reader reaches it (for most formats a
        truncated tail is found before the first chunk).
    """
    check_chunk_events(chunk_events)
    fmt = _check_format(format) if format is not None else detect_format(path)
    from .evt2 import merge_skipped

    parts: list[Events] = []
    held = 0
    skipped: dict[str, int] = {}
    truncated = 0
    like: Events | None = None
    pending: Events | None = None  # a full chunk held back until we know whether more events follow
    for piece in _raw_chunks(path, fmt, chunk_events, kw):
        like = piece
        merge_skipped(skipped, piece.skipped)
        truncated += int(piece.truncated_bytes)
        start = 0
        n = len(piece)
        while n - start >= chunk_events - held:
            take = chunk_events - held
            parts.append(_slice(piece, start, start + take))
            start += take
            if pending is not None:
                yield pending
            pending = _join(parts, piece, skipped, 0)
            parts, held, skipped = [], 0, {}
        if start < n:
            parts.append(_slice(piece, start, n))
            held += n - start
    if like is None:
        return
    if parts or pending is None:
        if pending is not None:
            yield pending
        yield _join(parts, like, skipped, truncated)
    else:  # the events ended exactly on a chunk boundary: the last counts go to the last chunk
        merge_skipped(pending.skipped, skipped)
        pending.truncated_bytes = truncated
        yield pending
