"""The eventshard shard format, versions 1 to 3: one sample as bytes, one shard as zstd frames.

Both sides import this module: ``shardgen`` to write, ``loader`` to read (the index's rules are in
:mod:`loader.index`, whose names this module also offers). It needs numpy,
msgpack and zstandard only (no torch). ``docs/FORMAT.md`` describes the same bytes in prose.

A sample is two tar members, ``<key>.events.msgpack`` and ``<key>.label.msgpack``, compressed
together as one zstd frame. A shard ``<split>-NNNNNN.tar.zst`` is the concatenation of those
frames followed by one frame holding the tar end-of-archive marker, so ``zstd -dc | tar t``
lists it and one sample can be fetched with a byte-range read of its frame.

Version 2 adds 1-D sensors (SHD, SSC: events ``t`` and ``x``, the unit): the index's ``sensor_size``
is ``[W]`` and a sample's payload has no ``y`` and ``p`` columns. Version 3 stores a 2-D sample's
``x``, ``y`` and ``p`` as one packed pixel column ``pix = (p·H + y)·W + x`` (:mod:`loader.pixels`), so a
frame is one ``bincount`` over a slice. Readers read all three; the decoder returns ``t``, ``x``,
``y``, ``p`` (and ``pix`` or the time deltas ``dt`` when asked) whatever the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np
import zstandard

from loader import pixels as _pixels
from loader.errors import FormatError  # defined there (no import circle), raised here
from loader.index import (  # the index's half of the format, used through this module as well
    FORMAT_NAME,
    FORMAT_VERSION,
    FORMAT_VERSION_1D,
    FORMAT_VERSION_XYP,
    INDEX_NAME,
    MAX_SENSOR,
    READABLE_VERSIONS,
    dumps_index,
    is_int,
    loads_index,
    shard_name,
    validate_index,
)
from loader.sampletar import (  # the tar members of one sample, used through this module as well
    END_OF_ARCHIVE,
    EVENTS_SUFFIX,
    LABEL_SUFFIX,
    TAR_BLOCK,
    check_key,
    sample_tar,
    split_sample_tar,
)

__all__ = [
    "FORMAT_NAME", "FORMAT_VERSION", "FORMAT_VERSION_1D", "FORMAT_VERSION_XYP", "INDEX_NAME", "READABLE_VERSIONS",
    "dumps_index", "loads_index", "shard_name", "validate_index", "FormatError", "TIME_UNIT", "EVENTS_SUFFIX",
    "LABEL_SUFFIX", "TAR_BLOCK", "END_OF_ARCHIVE", "DEFAULT_ZSTD_LEVEL", "MAX_SAMPLE_BYTES", "MAX_EVENTS",
    "EVENT_COLUMNS", "EXTRA_COLUMNS", "coord_dtype", "format_version", "encode_events", "decode_events",
    "encode_label", "decode_label", "check_key", "sample_tar", "split_sample_tar", "compress_frame",
    "new_compressor", "decompress_frame", "encode_sample", "decode_sample",
]

TIME_UNIT = "us"
DEFAULT_ZSTD_LEVEL = -1
"""``shardgen convert``'s zstd level: literals stored raw, so a sample inflates ~6x faster than at level 3 (the
decode is most of a DataLoader worker's time) for 5-38 % more bytes; docs/BENCHMARKS.md has the trade."""

# Hard limits a reader enforces before allocating anything (shards may come from untrusted storage).
MAX_SAMPLE_BYTES = 1 << 31
MAX_EVENTS = 1 << 31
_COLUMN_DTYPES = {"u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8"}


# --------------------------------------------------------------------------- columns


_RANGES = {code: (int(np.iinfo(np.dtype("<" + code)).min), int(np.iinfo(np.dtype("<" + code)).max))
           for code in ("u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8")}


def _smallest(values_min: int, values_max: int) -> str:
    """Smallest little-endian integer type code (``u1`` … ``i8``) holding ``[values_min, values_max]``."""
    kinds = ("u1", "u2", "u4", "u8") if values_min >= 0 else ("i1", "i2", "i4", "i8")
    for code in kinds:
        lo, hi = _RANGES[code]
        if lo <= values_min and values_max <= hi:
            return code
    raise FormatError(f"values [{values_min}, {values_max}] do not fit 64 bits")


def coord_dtype(extent: int) -> str:
    """Type code for a coordinate column of a sensor axis with ``extent`` pixels."""
    return _smallest(0, max(int(extent) - 1, 0))


def _nonzero(p: Any) -> np.ndarray:
    """Polarity as what ``packbits`` packs: integer and bool columns as they are (non-zero packs as 1)."""
    arr = np.asarray(p)
    return arr if arr.dtype.kind in "uib" else arr != 0


def _planes(values: np.ndarray, code: str) -> bytes:
    """Column as byte planes: all lowest bytes first, then the next byte of every value, …."""
    arr = np.ascontiguousarray(values, dtype="<" + code)
    if arr.itemsize == 1:
        return arr.tobytes()
    return arr.view(np.uint8).reshape(-1, arr.itemsize).T.tobytes()


def _itemsize(code: Any, what: str) -> int:
    """Bytes per value of a column type code from a payload (:class:`FormatError` for an unknown one)."""
    if not isinstance(code, str) or code not in _COLUMN_DTYPES:
        raise FormatError(f"column {what!r}: unknown dtype {code!r}")
    return int(code[1])


def _unplanes(buf: bytes, code: str, n: int, what: str) -> np.ndarray:
    """Inverse of :func:`_planes`, as a new writable array (planes combined by shifts, no transposes)."""
    k = _itemsize(code, what)
    dtype = np.dtype("<" + code)
    if len(buf) != n * k:
        raise FormatError(f"column {what!r}: {len(buf)} bytes for {n} values of {code}")
    raw = np.frombuffer(buf, dtype=np.uint8)
    if k == 1:
        return raw.view(dtype).copy()  # writable: transforms may edit events in place
    unsigned = np.dtype(f"<u{k}")
    out = raw[(k - 1) * n :].astype(unsigned)
    for plane in range(k - 2, -1, -1):
        out <<= 8
        out |= raw[plane * n : (plane + 1) * n]
    return out.view(dtype)


# --------------------------------------------------------------------------- one sample


def format_version(sensor_size: tuple[int, ...] | list[int], packed: bool = True) -> int:
    """The version a shard set with this sensor is written as: :data:`FORMAT_VERSION` for ``[H, W]`` and for
    a 1-D ``[W]``; 1 for ``[H, W]`` with ``packed=False`` (``x``, ``y``, ``p`` columns, offsets as lists)."""
    return FORMAT_VERSION if packed or len(sensor_size) == 1 else FORMAT_VERSION_XYP


def encode_events(
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray | None,
    p: np.ndarray | None,
    sensor_size: tuple[int, ...],
    packed: bool = True,
) -> bytes:
    """Encode one sample's event columns as the ``events.msgpack`` payload.

    Parameters
    ----------
    t, x, y, p : ndarray
        Equal-length columns: time stamps (µs, any integer order), column, row, polarity (0/1).
        A 1-D sensor has no ``y`` and ``p``: pass ``None`` for both.
    sensor_size : (H, W) or (W,)
        Sensor height and width (``x < W`` and ``y < H`` must hold), or the width of a 1-D sensor.
    packed : bool
        2-D only: write version 3's map ``{n, t0, dt_dtype, dt, hw, pix_dtype, pix}`` (default), or
        with ``False`` version 1's ``{n, t0, dt_dtype, dt, xy_dtype, x, y, p}``.

    Returns
    -------
    bytes
        The msgpack map: ``t`` delta-coded in the smallest integer type holding the deltas, ``pix``
        (or ``x``/``y``) in the smallest unsigned type that holds ``2·H·W`` (``max(H, W)``), multi-byte
        columns stored as byte planes, version 1's ``p`` bit-packed (LSB first). A 1-D sample's map
        is ``{n, t0, dt_dtype, dt, xy_dtype, x}``.
    """
    if len(sensor_size) == 1:
        return _encode_events_1d(t, x, y, p, int(sensor_size[0]))
    if y is None or p is None:
        raise FormatError(f"a {len(sensor_size)}-D sensor {tuple(sensor_size)} needs y and p columns")
    n = int(len(t))
    if not (len(x) == len(y) == len(p) == n):
        raise FormatError(f"event columns differ in length: t {n}, x {len(x)}, y {len(y)}, p {len(p)}")
    h, w = int(sensor_size[0]), int(sensor_size[1])
    xy_code = coord_dtype(max(h, w))
    t64 = np.asarray(t, dtype=np.int64)
    if n:
        xa = np.asarray(x)
        ya = np.asarray(y)
        signed = xa.dtype.kind != "u" or ya.dtype.kind != "u"  # unsigned columns cannot be negative
        if (signed and (int(xa.min()) < 0 or int(ya.min()) < 0)) or int(xa.max()) >= w or int(ya.max()) >= h:
            raise FormatError(f"coordinates outside the {h}x{w} sensor")
        dt = np.diff(t64)
        dt_code = _smallest(int(dt.min()), int(dt.max())) if n > 1 else "u1"
        t0 = int(t64[0])
    else:
        xa = ya = np.zeros(0, np.uint8)
        dt = np.zeros(0, np.int64)
        dt_code, t0 = "u1", 0
    if packed:
        pix_code = _smallest(0, 2 * h * w - 1)
        pix = _pixels.pack_pixels(xa, ya, p if n else np.zeros(0, np.uint8), h, w)
        return msgpack.packb({"n": n, "t0": t0, "dt_dtype": dt_code, "dt": _planes(dt, dt_code), "hw": [h, w],
                              "pix_dtype": pix_code, "pix": _planes(pix, pix_code)}, use_bin_type=True)
    payload = {
        "n": n,
        "t0": t0,
        "dt_dtype": dt_code,
        "dt": _planes(dt, dt_code),
        "xy_dtype": xy_code,
        "x": _planes(xa, xy_code),
        "y": _planes(ya, xy_code),
        "p": np.packbits(_nonzero(p), bitorder="little").tobytes(),
    }
    return msgpack.packb(payload, use_bin_type=True)


def _time_columns(t: np.ndarray) -> tuple[int, np.ndarray, str]:
    """``(t0, deltas, delta type code)`` of a time column (``(0, [], "u1")`` when empty)."""
    t64 = np.asarray(t, dtype=np.int64)
    if t64.size == 0:
        return 0, np.zeros(0, np.int64), "u1"
    dt = np.diff(t64)
    return int(t64[0]), dt, (_smallest(int(dt.min()), int(dt.max())) if dt.size else "u1")


def _encode_events_1d(t: np.ndarray, x: np.ndarray, y: Any, p: Any, w: int) -> bytes:
    """:func:`encode_events` for a 1-D sensor of ``w`` units: the map ``{n, t0, dt_dtype, dt, xy_dtype, x}``."""
    if y is not None or p is not None:
        raise FormatError(f"a 1-D sensor ({w} units) has no y or p columns")
    n = int(len(t))
    if len(x) != n:
        raise FormatError(f"event columns differ in length: t {n}, x {len(x)}")
    code = coord_dtype(w)
    xa = np.asarray(x) if n else np.zeros(0, np.uint8)
    if n and ((xa.dtype.kind != "u" and int(xa.min()) < 0) or int(xa.max()) >= w):
        raise FormatError(f"units outside the {w}-unit sensor")
    t0, dt, dt_code = _time_columns(t)
    payload = {"n": n, "t0": t0, "dt_dtype": dt_code, "dt": _planes(dt, dt_code), "xy_dtype": code,
               "x": _planes(xa, code)}
    return msgpack.packb(payload, use_bin_type=True)


def _unpack_map(buf: bytes, what: str) -> dict[str, Any]:
    try:
        obj = msgpack.unpackb(buf, raw=False, strict_map_key=True, use_list=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FormatError(f"{what}: not valid msgpack ({exc})") from None
    if not isinstance(obj, dict):
        raise FormatError(f"{what}: expected a msgpack map, got {type(obj).__name__}")
    return obj


EVENT_COLUMNS = ("t", "x", "y", "p")
EXTRA_COLUMNS = ("pix", "dt")
"""Columns :func:`decode_events` also gives when asked: the packed pixel index and the time deltas."""


def decode_events(buf: bytes, columns: tuple[str, ...] = EVENT_COLUMNS,
                  sensor_size: tuple[int, ...] | None = None) -> dict[str, np.ndarray]:
    """Decode an ``events.msgpack`` payload into ``{"t": int64, "x", "y": uint, "p": uint8}`` arrays.

    Parameters
    ----------
    buf : bytes
        The payload (version 1, 2 or 3: the map's keys tell which).
    columns : tuple of str
        Columns to decode (``t``, ``x``, ``y``, ``p`` by default); e.g. frames split by number need no
        ``t``. Also ``pix``, the packed pixel index ``(p·H + y)·W + x`` (a 1-D sample's ``x``), and
        ``dt``, the ``N - 1`` time deltas as stored. A 1-D sample (no ``y`` and ``p`` in its map)
        gives only ``t`` and ``x`` (and ``pix``, ``dt``): ``y`` and ``p`` are left out.
    sensor_size : (H, W), optional
        Needed only to give ``pix`` of a version-1 sample (its map does not hold the sensor's size).
    """
    m = _unpack_map(buf, "events")
    packed = "pix" in m
    one_d = not packed and "y" not in m and "p" not in m
    try:
        n, t0, dt_code, dt_b = m["n"], m["t0"], m["dt_dtype"], m["dt"]
        if packed:
            xy_code, x_b, y_b, p_b = m["pix_dtype"], m["pix"], b"", b""
            hw = m["hw"]
        else:
            xy_code, x_b = m["xy_dtype"], m["x"]
            y_b, p_b = (b"", b"") if one_d else (m["y"], m["p"])  # a 1-D sample has neither
    except KeyError as exc:
        raise FormatError(f"events: missing field {exc}") from None
    if one_d:
        columns = tuple(c for c in columns if c not in ("y", "p"))
    if not is_int(n) or not 0 <= n <= MAX_EVENTS:
        raise FormatError(f"events: bad event count {n!r}")
    if not is_int(t0) or not -(2**63) <= t0 < 2**63:
        raise FormatError(f"events: t0 {t0!r} is not an int64")
    if not all(isinstance(b, bytes) for b in (dt_b, x_b, y_b, p_b)):
        raise FormatError("events: columns must be msgpack bin")
    if packed and not (isinstance(hw, list) and len(hw) == 2 and all(is_int(v) and 0 < v <= MAX_SENSOR for v in hw)):
        raise FormatError(f"events: 'hw' must be [H, W] with sizes in [1, {MAX_SENSOR}], got {hw!r}")
    if not one_d and not packed and len(p_b) != (n + 7) // 8:
        raise FormatError(f"events: column 'p' has {len(p_b)} bytes for {n} events")
    if n == 0 and dt_b:
        raise FormatError("events: 'dt' not empty for an empty sample")
    # Every column must hold exactly what the count says before anything is allocated: the count comes from
    # the file, and only the byte lengths of what msgpack actually read are bounded by the sample's size.
    checks = (("pix" if packed else "x", x_b, xy_code, n), ("dt", dt_b, dt_code, n - 1))
    checks += () if one_d or packed else (("y", y_b, xy_code, n),)
    for what, col, code, count in checks:
        if count > 0 and len(col) != count * _itemsize(code, what):
            raise FormatError(f"column {what!r}: {len(col)} bytes for {count} values of {code}")
    out: dict[str, np.ndarray] = {}
    if packed:
        _decode_packed(out, columns, x_b, xy_code, n, hw)
    for col in columns:
        if col in out:
            continue
        if col == "x":
            out["x"] = _unplanes(x_b, xy_code, n, "x")
        elif col == "y":
            out["y"] = _unplanes(y_b, xy_code, n, "y")
        elif col == "p":
            out["p"] = np.unpackbits(np.frombuffer(p_b, np.uint8), count=n, bitorder="little")
        elif col == "t":
            t = np.empty(n, np.int64)
            if n:
                t[0] = t0
                t[1:] = _unplanes(dt_b, dt_code, n - 1, "dt")
                np.cumsum(t, out=t)
            out["t"] = t
        elif col == "dt":
            out["dt"] = _unplanes(dt_b, dt_code, max(n - 1, 0), "dt")
        elif col == "pix":  # version 1 or 2: packed here
            x = _unplanes(x_b, xy_code, n, "x")
            if one_d:
                out["pix"] = x
                continue
            if sensor_size is None or len(sensor_size) != 2:
                raise ValueError("decoding 'pix' from a version-1 sample needs sensor_size=(H, W)")
            p = np.unpackbits(np.frombuffer(p_b, np.uint8), count=n, bitorder="little")
            out["pix"] = _pixels.pack_pixels(x, _unplanes(y_b, xy_code, n, "y"), p, *sensor_size)
        else:
            raise ValueError(f"unknown event column {col!r}; columns are {EVENT_COLUMNS + EXTRA_COLUMNS}")
    return {c: out[c] for c in columns} if packed else out  # in the order asked for


def _decode_packed(out: dict[str, np.ndarray], columns: tuple[str, ...], pix_b: bytes, code: str, n: int,
                   hw: list[int]) -> None:
    """Put a version-3 sample's ``pix`` and the ``x``, ``y``, ``p`` unpacked from it into ``out`` as asked."""
    wanted = {"pix", "x", "y", "p"}.intersection(columns)
    if not wanted:
        return
    h, w = int(hw[0]), int(hw[1])
    pix = _unplanes(pix_b, code, n, "pix")
    if n and int(pix.max()) >= 2 * h * w:
        raise FormatError(f"column 'pix': index {int(pix.max())} outside the {h}x{w} sensor's 2·H·W = {2 * h * w}")
    if "pix" in wanted:
        out["pix"] = pix
    if wanted - {"pix"}:
        x, y, p = _pixels.unpack_pixels(pix, h, w, np.dtype("<" + coord_dtype(max(h, w))))
        out.update((k, v) for k, v in (("x", x), ("y", y), ("p", p)) if k in wanted)


def encode_label(meta: Mapping[str, Any]) -> bytes:
    """Encode the ``label.msgpack`` payload: a map with at least ``label`` (int) and ``class`` (str)."""
    if "label" not in meta or "class" not in meta:
        raise FormatError("label metadata needs 'label' and 'class'")
    return msgpack.packb(dict(sorted(meta.items())), use_bin_type=True)


def decode_label(buf: bytes) -> dict[str, Any]:
    """Decode a ``label.msgpack`` payload into a dict (``label`` is an int)."""
    m = _unpack_map(buf, "label")
    if not isinstance(m.get("label"), int):
        raise FormatError("label: field 'label' missing or not an integer")
    return m


def compress_frame(data: bytes, cctx: zstandard.ZstdCompressor) -> bytes:
    """One zstd frame (with content size and checksum) holding ``data``."""
    return cctx.compress(data)


def new_compressor(level: int = DEFAULT_ZSTD_LEVEL) -> zstandard.ZstdCompressor:
    """The zstd compressor the writer uses: content size and checksum in every frame, one thread."""
    return zstandard.ZstdCompressor(level=level, write_content_size=True, write_checksum=True)


def decompress_frame(frame: bytes, dctx: zstandard.ZstdDecompressor) -> bytes:
    """Decompress one sample frame, refusing frames that claim more than :data:`MAX_SAMPLE_BYTES`.

    The size in the frame header is never trusted for an allocation it does not pay for: a frame that
    claims to inflate more than :data:`_DIRECT_RATIO` times its own length (real samples compress by
    2–4×) is decompressed in 1 MiB steps, so a few bytes claiming gigabytes cost what they really hold.
    """
    try:
        params = zstandard.get_frame_parameters(frame)
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt zstd frame ({exc})") from None
    size = params.content_size
    if size <= 0 or size > MAX_SAMPLE_BYTES:
        raise FormatError(f"zstd frame declares {size} bytes")
    try:
        if size <= max(_DIRECT_BYTES, _DIRECT_RATIO * len(frame)):
            return dctx.decompress(frame, max_output_size=size)  # the fast path: allocates ``size`` at once
        return _decompress_in_steps(frame, dctx, size)
    except zstandard.ZstdError as exc:
        raise FormatError(f"corrupt zstd frame ({exc})") from None


_DIRECT_BYTES = 1 << 20
_DIRECT_RATIO = 64


def _decompress_in_steps(frame: bytes, dctx: zstandard.ZstdDecompressor, size: int) -> bytes:
    """Decompress a frame whose header claims ``size`` bytes, holding only what it really yields."""
    parts: list[bytes] = []
    got = 0
    with dctx.stream_reader(frame, read_across_frames=False) as reader:
        while got <= size:
            chunk = reader.read(min(_DIRECT_BYTES, size + 1 - got))
            if not chunk:
                break
            parts.append(chunk)
            got += len(chunk)
    if got != size:
        raise FormatError(f"zstd frame declares {size} bytes but holds {'more' if got > size else got}")
    return b"".join(parts)


def encode_sample(
    key: str,
    t: np.ndarray,
    x: np.ndarray,
    y: np.ndarray | None,
    p: np.ndarray | None,
    meta: Mapping[str, Any],
    sensor_size: tuple[int, ...],
    cctx: zstandard.ZstdCompressor,
    packed: bool = True,
) -> bytes:
    """Encode one sample all the way to its compressed shard frame (``y = p = None`` on a 1-D sensor;
    ``packed`` as :func:`encode_events`)."""
    events = encode_events(t, x, y, p, sensor_size, packed)
    return compress_frame(sample_tar(key, events, encode_label(meta)), cctx)


def decode_sample(
    frame: bytes, dctx: zstandard.ZstdDecompressor, columns: tuple[str, ...] | None = EVENT_COLUMNS,
    sensor_size: tuple[int, ...] | None = None,
) -> tuple[str, dict[str, np.ndarray] | None, dict[str, Any]]:
    """Decode one compressed shard frame into ``(key, events, label meta)``.

    ``columns`` selects the event columns to decode (``None``: no events, label only); ``sensor_size`` as
    :func:`decode_events`.
    """
    key, ev, lab = split_sample_tar(decompress_frame(frame, dctx))
    return key, (decode_events(ev, columns, sensor_size) if columns is not None else None), decode_label(lab)


# --------------------------------------------------------------------------- shard set
