"""Fuzz targets: every raw reader, the labels/trials/mapping parsers and the shard decoder, fed arbitrary bytes.

Each target is a function ``bytes -> None`` that runs one part of eventshard on the bytes and lets only the
library's own errors escape (:class:`loader.errors.EventshardError` and its subclasses: ``FormatError``,
``DatasetError``, ``ArchiveError`` …). Any other exception (``IndexError``, ``struct.error``, ``OverflowError``,
``MemoryError``, ``UnicodeDecodeError``, numpy errors, an ``AssertionError`` from a consistency check below) is a
bug that fuzzing found.

The raw-format targets do more than call the reader once: they read the bytes strictly, again with
``allow_truncated=True`` (and with every time rule / overflow option the format has), and through a file with
:func:`shardgen.formats.iter_events` in small chunks; the chunks must add up to the whole read, and the chunked
reader must fail exactly when the whole read fails. The shard targets check that whatever decodes is well
formed (equal column lengths, the dtypes the format promises).

Seeds (:func:`seeds`) are valid files made by the generators in ``tests/gen_*.py`` (written from the format
documents, independent of the readers) and by :mod:`loader.format`'s own writer; :func:`mutated` turns them
into hypothesis strategies that flip bits, overwrite bytes and integers with boundary values, truncate,
insert, delete, duplicate and splice, plus plain random bytes. ``tests/test_fuzz.py`` runs a short bounded pass
over every target; ``scripts/fuzz.sh`` runs them for a given time (hypothesis, and atheris where it installs).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.io
import zstandard
from hypothesis import strategies as st

from loader import format as F
from loader.errors import EventshardError
from shardgen.archive import TarGzStream
from shardgen.datasets.dvs128_gesture import _parse_trials, parse_labels, parse_mapping
from shardgen.datasets.folder import parse_labels_csv
from shardgen.formats import detect_format, iter_events, read_events
from shardgen.formats.aedat2 import read_aedat2
from shardgen.formats.aedat3 import read_aedat3
from shardgen.formats.aedat4 import read_aedat4
from shardgen.formats.atis_bin import read_atis_bin
from shardgen.formats.dat import read_dat
from shardgen.formats.es import read_es
from shardgen.formats.evt2 import read_evt2
from shardgen.formats.evt3 import read_evt3
from shardgen.formats.mat import read_asl_mat

LIBRARY_ERRORS: tuple[type[BaseException], ...] = (EventshardError,)
"""What a target may raise: the library's own error family."""

MAX_INPUT = 1 << 16
"""Largest input the strategies build (seeds are a few KiB)."""

_CHUNKS = (1, 3, 7, 64)
_NAME = "fuzz"


# ------------------------------------------------------------------------------------------- scratch files

_TMP: dict[str, str] = {}


def _scratch() -> str:
    """A private temporary folder for the targets that need a file (removed when the process exits)."""
    path = _TMP.get(str(os.getpid()))
    if path is None:
        path = tempfile.mkdtemp(prefix="eventshard-fuzz-")
        _TMP[str(os.getpid())] = path
        atexit.register(shutil.rmtree, path, True)
    return path


def cleanup() -> None:
    """Remove this process's scratch folder now (for workers that leave with ``os._exit``)."""
    path = _TMP.pop(str(os.getpid()), None)
    if path is not None:
        shutil.rmtree(path, ignore_errors=True)


def _write(data: bytes, suffix: str) -> Path:
    path = Path(_scratch()) / f"{_NAME}{suffix}"
    path.write_bytes(data)
    return path


# -------------------------------------------------------------------------------------- raw-format checks


def _same_events(whole, chunks: list, what: str) -> None:
    """The chunks of :func:`iter_events` must add up to the whole read (same values and dtypes)."""
    for col in "txyp":
        got = [getattr(c, col) for c in chunks]
        joined = np.concatenate(got) if got else getattr(whole, col)[:0]
        ref = getattr(whole, col)
        if joined.dtype != ref.dtype or not np.array_equal(joined, ref):
            raise AssertionError(f"{what}: chunked column {col!r} differs from the whole read")
    if sum(int(c.truncated_bytes) for c in chunks) != int(whole.truncated_bytes):
        raise AssertionError(f"{what}: chunked truncated_bytes differ from the whole read")


def _check_events(ev, what: str) -> None:
    """What every reader promises: equal-length columns, int64 ``t``, unsigned ``x``/``y``, ``p`` in {0, 1}."""
    n = len(ev.t)
    if not (len(ev.x) == len(ev.y) == len(ev.p) == n):
        raise AssertionError(f"{what}: columns differ in length")
    if ev.t.dtype != np.int64 or ev.x.dtype.kind != "u" or ev.y.dtype.kind != "u" or ev.p.dtype != np.uint8:
        raise AssertionError(f"{what}: unexpected dtypes {ev.t.dtype}, {ev.x.dtype}, {ev.y.dtype}, {ev.p.dtype}")
    if n and int(ev.p.max()) > 1:
        raise AssertionError(f"{what}: polarity outside {{0, 1}}")


def _raw_target(fmt: str, suffix: str, read: Callable[..., object], variants: tuple[dict, ...] = ({},)) -> Callable:
    """A target for one raw format: strict and lenient whole reads (each option variant), then chunked reads."""

    def target(data: bytes) -> None:
        name = _NAME + suffix
        failure: EventshardError | None = None
        for kw in variants:
            try:
                _check_events(read(data, name, **kw), f"{fmt} {kw}")
            except LIBRARY_ERRORS as exc:
                failure = failure or exc
        try:
            whole = read(data, name, allow_truncated=True)
        except LIBRARY_ERRORS as exc:
            whole, failure = None, failure or exc
        else:
            _check_events(whole, f"{fmt} allow_truncated")
        path = _write(data, suffix)
        chunk = _CHUNKS[len(data) % len(_CHUNKS)]
        try:
            chunks = list(iter_events(path, format=fmt, chunk_events=chunk, allow_truncated=True))
        except LIBRARY_ERRORS as exc:
            if whole is not None:
                raise AssertionError(f"{fmt}: the chunked reader fails ({exc}) where the whole read does not") from exc
        else:
            if whole is None:
                raise AssertionError(f"{fmt}: the chunked reader accepts what the whole read refuses")
            _same_events(whole, chunks, fmt)
        if failure is not None:
            raise failure

    target.__name__ = f"fuzz_{fmt}"
    target.__doc__ = f"Read the bytes as {fmt} (whole, lenient, chunked through a file)."
    return target


def _read_aedat3(data: bytes, name: str, allow_truncated: bool = False):
    res = read_aedat3(data, name, allow_truncated=allow_truncated)
    from shardgen.formats.events import Events

    return Events(res.t, res.x, res.y, res.p, truncated_bytes=res.truncated_bytes)


def _read_aedat4(data: bytes, name: str, allow_truncated: bool = False, **kw):
    return read_aedat4(_write(data, ".aedat4"), name, allow_truncated=allow_truncated, **kw)


fuzz_aedat2 = _raw_target("aedat2", ".aedat", read_aedat2, ({}, {"layout": "davis", "keep_external": True}))
fuzz_aedat3 = _raw_target("aedat3", ".aedat", _read_aedat3)
fuzz_aedat4 = _raw_target("aedat4", ".aedat4", _read_aedat4)
fuzz_evt2 = _raw_target("evt2", ".raw", read_evt2)
fuzz_evt3 = _raw_target("evt3", ".raw", read_evt3, ({"time_rule": "openeb"}, {"time_rule": "expelliarmus"}))
fuzz_dat = _raw_target("dat", ".dat", read_dat, ({"time_rule": "wrap"}, {"time_rule": "expelliarmus"}))
fuzz_es = _raw_target("es", ".es", read_es)
def _read_atis_as_dispatched(data: bytes, name: str, **kw: object) -> object:
    """``read_atis_bin`` with ``read_events``'s uint16 coordinates (the module itself keeps uint8)."""
    from shardgen.formats import _uint16

    return _uint16(read_atis_bin(data, name, **kw))


fuzz_atis_bin = _raw_target("atis_bin", ".bin", _read_atis_as_dispatched,
                            ({"overflow": "authors"}, {"overflow": "ignore"}))


def fuzz_mat(data: bytes) -> None:
    """Read the bytes as an ASL-DVS MAT v5 file."""
    with warnings.catch_warnings():  # scipy warns about odd but readable headers
        warnings.simplefilter("ignore")
        ev = read_asl_mat(data, _NAME + ".mat")
    _check_events(ev, "mat")


_SUFFIXES = ("", ".raw", ".dat", ".bin", ".es", ".aedat", ".bs2")


def fuzz_detect(data: bytes) -> None:
    """Tell the format from the bytes, then from a file (with a suffix picked by the bytes) and read it."""
    try:
        detect_format(data)
    except LIBRARY_ERRORS:
        pass
    suffix = _SUFFIXES[int.from_bytes(hashlib.md5(data).digest()[:2], "little") % len(_SUFFIXES)]
    path = _write(data, suffix)
    fmt = detect_format(path)
    if fmt == "aedat4":
        return  # the aedat4 target covers it (the file would be read by the Rust decoder twice)
    _check_events(read_events(path, allow_truncated=True), f"detect {fmt}")


# ------------------------------------------------------------------------------------------ text parsers


def fuzz_gesture_labels(data: bytes) -> None:
    """``<stem>_labels.csv`` of DVS128 Gesture."""
    rows = parse_labels(data, "user01_lab_labels.csv", 11)
    if rows.dtype != np.int64 or rows.ndim != 2 or rows.shape[1] != 3:
        raise AssertionError(f"labels: rows of shape {rows.shape} / {rows.dtype}")


def fuzz_gesture_mapping(data: bytes) -> None:
    """``gesture_mapping.csv`` of DVS128 Gesture."""
    names = parse_mapping(data, "gesture_mapping.csv")
    if not names or not all(isinstance(n, str) for n in names):
        raise AssertionError("mapping: no class names")


def fuzz_gesture_trials(data: bytes) -> None:
    """``trials_to_train.txt`` of DVS128 Gesture: every stem must be a plain file name."""
    for stem in _parse_trials(data, "trials_to_train.txt"):
        if "/" in stem or "\\" in stem or stem.startswith("."):
            raise AssertionError(f"trials: unsafe stem {stem!r}")


def fuzz_folder_labels_csv(data: bytes) -> None:
    """The ``folder`` dataset's labels CSV: every file stays inside RAW, every window has ``end > start``."""
    for row in parse_labels_csv(data, "labels.csv"):
        parts = Path(row.file).parts
        if row.file.startswith("/") or ".." in parts or not row.label:
            raise AssertionError(f"labels csv: unsafe row {row}")
        if row.start is not None and (row.end is None or row.end <= row.start):
            raise AssertionError(f"labels csv: bad window {row}")


def fuzz_gesture_archive(data: bytes) -> None:
    """Stream a ``DvsGesture.tar.gz`` with :class:`TarGzStream`: every member name stays inside the folder."""
    path = _write(data, ".tar.gz")
    for member, size, reader in TarGzStream(path):
        if member.is_absolute() or ".." in member.parts:
            raise AssertionError(f"archive: unsafe member {member}")
        if len(reader.read()) > size:
            raise AssertionError("archive: member longer than its header says")


# ----------------------------------------------------------------------------------------------- shards


_DCTX = zstandard.ZstdDecompressor()


def _check_decoded(ev: dict[str, np.ndarray] | None) -> None:
    if ev is None:
        return
    n = {len(v) for v in ev.values()}
    if len(n) > 1:
        raise AssertionError(f"decoded columns differ in length: { {k: len(v) for k, v in ev.items()} }")
    if "t" in ev and ev["t"].dtype != np.int64:
        raise AssertionError("decoded t is not int64")
    if "p" in ev and ev["p"].size and int(ev["p"].max()) > 1:
        raise AssertionError("decoded p outside {0, 1}")


def fuzz_shard_frame(data: bytes) -> None:
    """One compressed shard frame: :func:`loader.format.decode_sample` (all columns, then label only)."""
    key, ev, meta = F.decode_sample(data, _DCTX)
    F.check_key(key)
    _check_decoded(ev)
    if not isinstance(meta.get("label"), int):
        raise AssertionError("label is not an int")
    F.decode_sample(data, _DCTX, columns=None)


def fuzz_shard_tar(data: bytes) -> None:
    """The uncompressed tar members of one sample, then its two payloads."""
    key, events, label = F.split_sample_tar(data)
    F.check_key(key)
    _check_decoded(F.decode_events(events))
    F.decode_label(label)


def fuzz_shard_events(data: bytes) -> None:
    """An ``events.msgpack`` payload, all columns and the column subsets the loader asks for."""
    _check_decoded(F.decode_events(data))
    _check_decoded(F.decode_events(data, ("x", "y", "p")))
    _check_decoded(F.decode_events(data, ("t",)))


def fuzz_shard_label(data: bytes) -> None:
    """A ``label.msgpack`` payload."""
    meta = F.decode_label(data)
    if not isinstance(meta.get("label"), int):
        raise AssertionError("label is not an int")


def fuzz_shard_index(data: bytes) -> None:
    """An ``index.json``: whatever validates names only shard files inside the shard set's folder."""
    index = F.loads_index(data)
    for info in index["splits"].values():
        for shard in info["shards"]:
            name = shard["file"]
            parts = name.split("/")
            if (len(parts) > 2 or not all(parts) or ".." in name or any(c in name for c in ":\\%?#@ \t\r\n")
                    or (len(parts) == 2 and not parts[0].startswith("job-"))):
                raise AssertionError(f"index: shard file {name!r} could leave the shard set's folder")


# ------------------------------------------------------------------------------------------------ seeds


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _aedat2_seeds() -> list[bytes]:
    from tests.gen_rawfiles import (
        CHIP_DAVIS240C,
        aedat2_bytes,
        davis_aps_address,
        davis_dvs_address,
        davis_external_address,
        davis_imu_address,
        dvs128_address,
    )

    r = _rng(1)
    n = 40
    t = np.cumsum(r.integers(0, 50, n)) + 2**31 - 500  # crosses the 2**31 wrap
    dvs = aedat2_bytes(dvs128_address(r.integers(0, 128, n), r.integers(0, 128, n), r.integers(0, 2, n)), t)
    addr = np.concatenate([
        davis_dvs_address(r.integers(0, 240, 20), r.integers(0, 180, 20), r.integers(0, 2, 20)),
        davis_aps_address(r.integers(0, 240, 4), r.integers(0, 180, 4), r.integers(0, 2, 4), r.integers(0, 1024, 4)),
        davis_imu_address(r.integers(0, 7, 4), r.integers(0, 65536, 4)),
        davis_external_address(r.integers(0, 240, 2), r.integers(0, 180, 2)),
    ])
    davis = aedat2_bytes(addr, np.cumsum(r.integers(0, 30, addr.size)), chip=CHIP_DAVIS240C, end_marker=True)
    return [dvs, davis, aedat2_bytes([], [], newline=b"\n")]


def _aedat3_seeds() -> list[bytes]:
    from tests.gen_dvsgesture import POLARITY, SPECIAL, aedat31_bytes, imu6_payload, polarity_payload, special_payload

    r = _rng(2)
    n = 30
    t = np.sort(r.integers(2**31 - 400, 2**31 + 400, n))
    low, high = t < 2**31, t >= 2**31
    xs, ys, ps = r.integers(0, 128, n), r.integers(0, 128, n), r.integers(0, 2, n)
    packets = [
        (POLARITY, 0, polarity_payload(t[low], xs[low], ys[low], ps[low]), 8),
        (SPECIAL, 0, special_payload([5, 6], [1, 2]), 8),
        (3, 0, imu6_payload(7, 2), 36),
        (POLARITY, 1, polarity_payload(t[high], xs[high], ys[high], ps[high]), 8),
    ]
    return [aedat31_bytes(packets), aedat31_bytes([])]


def _flatbuffer_ioheader(description: bytes) -> bytes:
    """A FlatBuffer IOHeader ('IOHE'): compression 0 (none), dataTablePosition -1, the XML description."""
    vtable = struct.pack("<HHHHH", 10, 20, 4, 8, 16) + b"\0\0"  # at 8: 3 fields (offsets in the table)
    table = struct.pack("<iiqI", 24 - 8, 0, -1, 44 - 40)  # at 24: soffset to vtable, fields; string at 44
    string = struct.pack("<I", len(description)) + description + b"\0"
    buf = struct.pack("<I", 24) + b"IOHE" + vtable + b"\0\0\0\0" + table + string
    return buf + bytes(-len(buf) % 4)


def _flatbuffer_events(t, x, y, p) -> bytes:
    """A size-prefixed FlatBuffer EventPacket ('EVTS'): a vector of 16-byte Events (int64 t, int16 x, y, bool on)."""
    ev = np.zeros(len(t), dtype=np.dtype([("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("on", "u1"), ("pad", "V3")]))
    ev["t"], ev["x"], ev["y"], ev["on"] = t, x, y, p
    head = struct.pack("<I", 16) + b"EVTS" + struct.pack("<HHH", 6, 8, 4) + b"\0\0"  # vtable at 8
    table = struct.pack("<iI", 16 - 8, 28 - 20) + b"\0\0\0\0"  # at 16: soffset, uoffset → vector at 28
    buf = head + table + struct.pack("<I", len(t)) + ev.tobytes()
    return struct.pack("<I", len(buf)) + buf


def aedat4_bytes(t, x, y, p, width: int = 64, height: int = 48, packets: int = 2) -> bytes:
    """A small uncompressed AEDAT 4.0 file with one DVS event stream (id 0), split over ``packets`` packets."""
    xml = (
        '<dv version="2.0"><node name="outInfo" path="/mainloop/Recorder/outInfo/">'
        '<node name="0" path="/mainloop/Recorder/outInfo/0/">'
        '<attr key="compression" type="string">NONE</attr>'
        '<attr key="originalModuleName" type="string">capture</attr>'
        '<attr key="originalOutputName" type="string">events</attr>'
        '<attr key="typeIdentifier" type="string">EVTS</attr>'
        '<node name="info" path="/mainloop/Recorder/outInfo/0/info/">'
        f'<attr key="sizeX" type="int">{width}</attr><attr key="sizeY" type="int">{height}</attr>'
        '<attr key="source" type="string">FUZZ_00000001</attr></node></node></node></dv>'
    ).encode()
    header = _flatbuffer_ioheader(xml)
    out = [b"#!AER-DAT4.0\r\n", struct.pack("<I", len(header)), header]
    for idx in np.array_split(np.arange(len(t)), packets):
        body = _flatbuffer_events(np.asarray(t)[idx], np.asarray(x)[idx], np.asarray(y)[idx], np.asarray(p)[idx])
        out += [struct.pack("<ii", 0, len(body)), body]
    return b"".join(out)


def _aedat4_seeds() -> list[bytes]:
    r = _rng(3)
    n = 24
    seeds = [aedat4_bytes(1_600_000_000_000_000 + np.cumsum(r.integers(0, 9, n)), r.integers(0, 64, n),
                          r.integers(0, 48, n), r.integers(0, 2, n))]
    real = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "aedat4" / "sample.aedat4"
    if real.is_file():  # the IOHeader (LZ4) and the first packets of a real recording, when this checkout has it
        seeds += [real.read_bytes()[:18_850], real.read_bytes()[:12_000]]  # 3 whole packets; a cut one
    return seeds


def _evt2_seeds() -> list[bytes]:
    from tests.gen_eventfiles import RAW_HEADER_EVT2, encode_evt2, random_events, raw_header

    r = _rng(4)
    ev = random_events(r, 40, 640, 480, 10_000, 200)
    words, _ = encode_evt2(ev["t"], ev["x"], ev["y"], ev["p"], r, extra_every=8, repeat_time_high=True)
    body = words.tobytes()
    return [raw_header(RAW_HEADER_EVT2 + ["% geometry 640x480"], end=True) + body, body]


def _evt3_seeds() -> list[bytes]:
    from tests.gen_eventfiles import RAW_HEADER_EVT3, encode_evt3_random, raw_header

    words, _, _ = encode_evt3_random(_rng(5), 12, big_gaps=1)
    return [raw_header(RAW_HEADER_EVT3 + ["% format EVT3;height=720;width=1280"], end=True) + words.tobytes()]


def _dat_seeds() -> list[bytes]:
    from tests.gen_eventfiles import encode_dat, random_events

    r = _rng(6)
    ev = random_events(r, 30, 304, 240, 2**32 - 300, 40)  # crosses the 2**32 wrap
    cols = (ev["t"], ev["x"], ev["y"], ev["p"])
    return [encode_dat(*cols), encode_dat(*cols, width=304, height=240, event_type=12),
            encode_dat(*cols, header=False)]


def _es_seeds() -> list[bytes]:
    from tests.gen_eventfiles import encode_es, random_events

    r = _rng(7)
    ev = random_events(r, 30, 300, 300, 0, 400)
    cols = (ev["t"], ev["x"], ev["y"], ev["p"])
    return [encode_es(*cols, 300, 300, kind=1, rng=r, resets=0.1),
            encode_es(*cols, 300, 300, kind=2, is_tc=r.integers(0, 2, 30), rng=r, resets=0.1)]


def _atis_seeds() -> list[bytes]:
    from tests.gen_rawfiles import atis_bin_bytes

    r = _rng(8)
    n = 40
    t = np.cumsum(r.integers(0, 200_000, n)) % 2**23  # wraps
    return [atis_bin_bytes(r.integers(0, 34, n), r.integers(0, 34, n), r.integers(0, 2, n), t)]


def _mat_seeds() -> list[bytes]:
    from tests.gen_rawfiles import asl_mat_bytes

    r = _rng(9)
    n = 20
    cols = (np.cumsum(r.integers(0, 9, n)), r.integers(0, 240, n), r.integers(0, 180, n), r.integers(0, 2, n))
    packed = io.BytesIO()  # compressed variables (miCOMPRESSED), as MATLAB's default '-v7' writes them
    scipy.io.savemat(packed, dict(zip(("ts", "x", "y", "pol"), cols, strict=True)), do_compression=True)
    return [asl_mat_bytes(*cols), asl_mat_bytes(*cols, column=False), packed.getvalue(),
            asl_mat_bytes(*cols, meta={"sensor": "DAVIS240", "size": np.array([240, 180])}, note="a char array")]


@functools.lru_cache(maxsize=1)
def _gesture_download() -> dict[str, bytes]:
    """The small files and the tar.gz of a generated DVS128 Gesture download (one train, one test recording)."""
    from tests.gen_dvsgesture import write_gesture_download

    root = Path(tempfile.mkdtemp(prefix="eventshard-fuzz-gesture-"))
    try:
        write_gesture_download(root, n_train=1, n_test=1, events_per_sample=20, seed=3, extracted=True)
        folder = root / "DvsGesture"
        files = {p.name: p.read_bytes() for p in folder.iterdir() if p.suffix in (".csv", ".txt")}
        files["gesture_mapping.csv"] = (root / "gesture_mapping.csv").read_bytes()
        files["DvsGesture.tar.gz"] = (root / "DvsGesture.tar.gz").read_bytes()
        return files
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _gesture_seeds(kind: str) -> list[bytes]:
    files = _gesture_download()
    if kind == "labels":
        return [v for k, v in sorted(files.items()) if k.endswith("_labels.csv")]
    if kind == "trials":
        return [files["trials_to_train.txt"], files["trials_to_test.txt"]]
    if kind == "mapping":
        return [files["gesture_mapping.csv"]]
    return [files["DvsGesture.tar.gz"], _small_tar_gz()]


def _small_tar_gz() -> bytes:
    """A tiny tar.gz with a directory, a file and a symbolic link (what the archive walker must pass over)."""
    import gzip

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, kind in (("DvsGesture", tarfile.DIRTYPE), ("DvsGesture/a.txt", tarfile.REGTYPE),
                           ("DvsGesture/link", tarfile.SYMTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.mtime = kind, 0
            info.linkname = "a.txt" if kind == tarfile.SYMTYPE else ""
            data = b"user01_lab.aedat\n" if kind == tarfile.REGTYPE else b""
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(buf.getvalue(), mtime=0)


def _folder_csv_seeds() -> list[bytes]:
    return [
        b"file,label,start_us,end_us,split\nrec/a.dat,cat,0,1000,train\nrec/b.aedat,dog,500,2500,test\n",
        b"\xef\xbb\xbffile,label\r\nA/one.raw,0\r\n# comment\r\n\r\nB\\two.es,1\r\n",
        b"a.dat,x,100,200\nb.dat,y,300,400\n",
        b'file,label,start_us,end_us\n"quoted, name.dat",label,1,2\n',
    ]


def _shard_samples() -> list[tuple[str, bytes, bytes]]:
    """(key, events payload, label payload) of a few samples: varied sensors, an empty and a one-event sample."""
    r = _rng(10)
    out = []
    for k, (n, hw) in enumerate(((25, (128, 128)), (0, (128, 128)), (1, (2, 2)), (12, (720, 1280)), (9, (260, 346)))):
        t = np.sort(r.integers(0, 2**33, n)) if k == 3 else np.cumsum(r.integers(0, 300, n))
        if k == 4:
            t = t[::-1].copy()  # decreasing times: signed deltas
        ev = F.encode_events(t, r.integers(0, hw[1], n), r.integers(0, hw[0], n), r.integers(0, 2, n), hw)
        meta = {"label": k, "class": f"class_{k}", "recording": f"rec{k}.aedat", "start": 0, "end": int(n)}
        out.append((f"{k}/rec{k}_0", ev, F.encode_label(meta)))
    return out


def _shard_seeds(kind: str) -> list[bytes]:
    samples = _shard_samples()
    if kind == "events":
        return [ev for _, ev, _ in samples]
    if kind == "label":
        return [lab for _, _, lab in samples]
    tars = [F.sample_tar(*s) for s in samples]
    if kind == "tar":
        return tars
    cctx = F.new_compressor()
    return [F.compress_frame(tar, cctx) for tar in tars]


def _index_seeds() -> list[bytes]:
    def shard(name: str, samples: int) -> dict:
        return {"file": name, "samples": samples, "events": 10 * samples, "bytes": 100 * samples,
                "sha256": "0" * 64, "offsets": [100 * i for i in range(samples + 1)]}

    index = {
        "format": F.FORMAT_NAME, "version": F.FORMAT_VERSION, "dataset": "dvs128-gesture", "sensor_size": [128, 128],
        "classes": ["a", "b"], "time_unit": "us",
        "splits": {"train": {"samples": 5, "events": 50,
                             "shards": [shard("train-000000.tar.zst", 3), shard("train-000001.tar.zst", 2)]},
                   "test": {"samples": 1, "events": 10, "shards": [shard("job-0001-of-0002/test-000000.tar.zst", 1)]}},
    }
    return [F.dumps_index(index), json.dumps(index, separators=(",", ":")).encode()]


# ----------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Target:
    """One fuzz target: ``run(bytes)`` and the valid inputs its strategies start from."""

    name: str
    run: Callable[[bytes], None]
    seeds: Callable[[], list[bytes]]


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("aedat2", fuzz_aedat2, _aedat2_seeds),
        Target("aedat3", fuzz_aedat3, _aedat3_seeds),
        Target("aedat4", fuzz_aedat4, _aedat4_seeds),
        Target("evt2", fuzz_evt2, _evt2_seeds),
        Target("evt3", fuzz_evt3, _evt3_seeds),
        Target("dat", fuzz_dat, _dat_seeds),
        Target("es", fuzz_es, _es_seeds),
        Target("atis_bin", fuzz_atis_bin, _atis_seeds),
        Target("mat", fuzz_mat, _mat_seeds),
        Target("detect", fuzz_detect, lambda: [s for n in RAW_FORMATS for s in seeds(n)]),
        Target("gesture_labels", fuzz_gesture_labels, lambda: _gesture_seeds("labels")),
        Target("gesture_mapping", fuzz_gesture_mapping, lambda: _gesture_seeds("mapping")),
        Target("gesture_trials", fuzz_gesture_trials, lambda: _gesture_seeds("trials")),
        Target("gesture_archive", fuzz_gesture_archive, lambda: _gesture_seeds("archive")),
        Target("folder_labels_csv", fuzz_folder_labels_csv, _folder_csv_seeds),
        Target("shard_frame", fuzz_shard_frame, lambda: _shard_seeds("frame")),
        Target("shard_tar", fuzz_shard_tar, lambda: _shard_seeds("tar")),
        Target("shard_events", fuzz_shard_events, lambda: _shard_seeds("events")),
        Target("shard_label", fuzz_shard_label, lambda: _shard_seeds("label")),
        Target("shard_index", fuzz_shard_index, _index_seeds),
    )
}
RAW_FORMATS = ("aedat2", "aedat3", "aedat4", "evt2", "evt3", "dat", "es", "atis_bin", "mat")


@functools.cache
def _seeds(name: str) -> tuple[bytes, ...]:
    return tuple(TARGETS[name].seeds())


def seeds(name: str) -> list[bytes]:
    """The valid seed inputs of target ``name`` (made once per process)."""
    return list(_seeds(name))


def run(name: str, data: bytes) -> bool:
    """Run target ``name`` on ``data``: ``True`` if it accepted the bytes, ``False`` on a library error.

    Any other exception propagates: it is a crash.
    """
    try:
        TARGETS[name].run(data)
    except LIBRARY_ERRORS:
        return False
    return True


# ------------------------------------------------------------------------------------------- strategies

INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF,
               2**63 - 1, 2**63, 2**64 - 1, 2**31 + 1, 4096, 65536, 10**9)
_WIDTHS = {1: "B", 2: "H", 4: "I", 8: "Q"}


@st.composite
def _mutate(draw: st.DrawFn, seed_list: tuple[bytes, ...]) -> bytes:
    """A seed changed by 1–8 random edits (bit flips, boundary integers, cuts, insertions, splices …)."""
    data = bytearray(draw(st.sampled_from(seed_list)))
    for _ in range(draw(st.integers(1, 8))):
        op = draw(st.sampled_from(("flip", "byte", "int", "truncate", "insert", "delete", "duplicate", "splice")))
        pos = draw(st.integers(0, MAX_INPUT)) % (len(data) + 1)
        if op == "flip" and data:
            data[pos % len(data)] ^= 1 << draw(st.integers(0, 7))
        elif op == "byte" and data:
            data[pos % len(data)] = draw(st.integers(0, 255))
        elif op == "int":
            width = draw(st.sampled_from(sorted(_WIDTHS)))
            value = draw(st.sampled_from(INTERESTING)) % (1 << (8 * width))
            packed = struct.pack(draw(st.sampled_from("<>")) + _WIDTHS[width], value)
            data[pos : pos + width] = packed
        elif op == "truncate":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "duplicate" and data:
            a = draw(st.integers(0, MAX_INPUT)) % len(data)
            data[pos:pos] = data[a : a + draw(st.integers(1, 256))]
        elif op == "splice":
            other = draw(st.sampled_from(seed_list))
            a = draw(st.integers(0, MAX_INPUT)) % (len(other) + 1)
            data[pos:] = other[a:]
        if len(data) > MAX_INPUT:
            del data[MAX_INPUT:]
    return bytes(data)


@st.composite
def _head_then_noise(draw: st.DrawFn, seed_list: tuple[bytes, ...]) -> bytes:
    """The first bytes of a seed (its header) followed by random bytes."""
    seed = draw(st.sampled_from(seed_list))
    cut = draw(st.integers(0, MAX_INPUT)) % (len(seed) + 1)
    return seed[:cut] + draw(st.binary(max_size=512))


def inputs(name: str) -> st.SearchStrategy[bytes]:
    """Hypothesis strategy of inputs for target ``name``: mutated seeds, seed headers + noise, random bytes."""
    seed_list = _seeds(name)
    return st.one_of(
        _mutate(seed_list),
        _head_then_noise(seed_list),
        st.binary(max_size=2048),
        st.sampled_from(seed_list),
    )


# ------------------------------------------------------------------ datasets2: the Bullying10K pickle reader


def fuzz_bullying_npy(data: bytes) -> None:
    """The restricted unpickler and Bullying10K's packet decoding: only library errors, columns of one length."""
    from shardgen.datasets.bullying10k import read as read_bullying

    ev = read_bullying(data, "fuzz.npy")
    assert len(ev.t) == len(ev.x) == len(ev.y) == len(ev.p)
    assert ev.t.dtype == np.int64 and ev.p.dtype == np.uint8


def _bullying_seeds() -> list[bytes]:
    from tests.gen_datasets2 import DV_DTYPE, bullying_npy_bytes

    r = _rng(21)
    out = [bullying_npy_bytes([])]
    for n_packets, n in ((1, 1), (2, 5), (3, 17)):
        packets = []
        for _ in range(n_packets):
            pk = np.zeros(n, DV_DTYPE)
            pk["timestamp"] = np.sort(r.integers(0, 2**40, n))
            pk["x"], pk["y"], pk["polarity"] = r.integers(0, 346, n), r.integers(0, 260, n), r.integers(0, 2, n)
            packets.append(pk)
        out.append(bullying_npy_bytes(packets))
    plain = io.BytesIO()
    np.save(plain, np.zeros((4, 4), np.int64))
    out.append(plain.getvalue())
    return out


TARGETS["bullying_npy"] = Target("bullying_npy", fuzz_bullying_npy, _bullying_seeds)


def fuzz_atis_td(data: bytes) -> None:
    """NAVGesture's ATIS TD reader and SpikingJelly's dropping rules: strict, tolerant, then the dataset convention."""
    from shardgen.datasets.nav_gesture import read as read_nav
    from shardgen.formats.atis_td import read_atis_td

    try:
        strict = read_atis_td(data, "fuzz.dat")
    except EventshardError:
        strict = None
    tolerant = read_atis_td(data, "fuzz.dat", allow_truncated=True)
    if strict is not None:
        assert np.array_equal(strict.t, tolerant.t) and tolerant.truncated_bytes == 0
    ev = read_nav(data, "fuzz.dat", allow_truncated=True)
    assert len(ev.t) <= len(tolerant.t) and (np.diff(ev.t) >= 0).all()


def _atis_td_seeds() -> list[bytes]:
    from tests.gen_datasets2 import atis_td_dat_bytes

    r = _rng(22)
    out = [atis_td_dat_bytes([], [], [], []), atis_td_dat_bytes([5], [303], [239], [1], header=False)]
    for n in (7, 40):
        t = np.sort(r.integers(0, 2**32, n))
        t[n // 2] = 0  # a step back
        out.append(atis_td_dat_bytes(t, r.integers(0, 304, n), r.integers(0, 240, n), r.integers(0, 2, n)))
    return out


TARGETS["atis_td"] = Target("atis_td", fuzz_atis_td, _atis_td_seeds)
