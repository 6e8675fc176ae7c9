"""eventshard shard sets in stock webdataset pipelines: shard URLs and ``.map`` stages.

::

    import webdataset as wds
    import loader.wds as ewds

    urls = ewds.urls("OUT", "train")                       # also http(s)://…, s3://…
    ds = (wds.WebDataset(urls, shardshuffle=False, nodesplitter=wds.split_by_node)
          .map(ewds.decode_sample)                         # -> (events, label, key)
          .map(ewds.to_frames(urls.sensor_size, frames_number=20, split_by="number")))  # -> (frames, label, key)

Shards are zstd-compressed tars (``docs/FORMAT.md``); webdataset 1.0.2 reads tars with Python's
``tarfile``, which knows no zstd before Python 3.14. Importing this module registers the gopen schemes
``eventshard+<protocol>`` (``eventshard+file``, ``eventshard+https``, ``eventshard+s3``, … one per fsspec
protocol) in ``webdataset.gopen_schemes``; :func:`urls` returns shard URLs in that form. The handler opens
the shard with fsspec, decompresses it with ``zstandard`` frame by frame and hands webdataset a plain tar
stream, so a stock ``webdataset.WebDataset(urls)`` needs no other handler.

Sample keys and webdataset's key rule: webdataset groups tar members by the name up to the first dot
after the last ``/`` (``7/user02_fluorescent_1.events.msgpack`` → key ``7/user02_fluorescent_1``, member
``events.msgpack``). A key whose last part holds a dot (``folder`` data sets keep file stems such as
``rec.v2``) would be cut there and merged with its neighbours, so the handler writes those dots as
:data:`DOT_ESCAPE` in the member names it hands on (``__key__`` ``cls/rec,v2``); :func:`decode_sample`
gives the true key back. Other samples' bytes pass through as stored (a sample whose member names need
PAX headers, over 100 bytes, is re-written by ``tarfile`` with the same names and contents).

The stages equal :class:`loader.EventShardDataset` for the same shards and settings (``shuffle=False``
order: shard by shard, as stored); integration is :mod:`loader.frames`. Where eventshard's own loader
does and does not use webdataset, and how epochs and splits differ, is in ``docs/MIGRATING.md``.
"""

from __future__ import annotations

import collections
import io
import os
import tarfile
import threading
from collections.abc import Callable, Mapping
from typing import Any

import fsspec
import numpy as np
import zstandard
from webdataset import gopen_schemes

from loader import frames as _frames
from loader.allocator import keep_freed_memory
from loader.errors import ConfigurationError
from loader.format import (
    EVENTS_SUFFIX,
    LABEL_SUFFIX,
    MAX_SAMPLE_BYTES,
    TAR_BLOCK,
    FormatError,
    check_key,
    decode_events,
    decode_label,
)
from loader.shards import open_shard_set

__all__ = ["DOT_ESCAPE", "SCHEME", "ShardURLs", "decode_sample", "gopen_shard", "to_frames", "urls"]

SCHEME = "eventshard"
"""Scheme prefix of shard URLs: ``eventshard+<fsspec URL>``."""

DOT_ESCAPE = ","
"""Stands for ``.`` in the last part of a key in member names (a character sample keys never hold)."""

READ_SIZE = 1 << 20
"""Compressed bytes the handler reads from storage at a time."""

MAX_OUTPUT_CHUNK = 64 << 20
"""Largest output buffer the handler allocates at once for one frame, whatever its header claims."""

_EVENTS_MEMBER = EVENTS_SUFFIX[1:]  # "events.msgpack": the member name after webdataset's key split
_LABEL_MEMBER = LABEL_SUFFIX[1:]
_OPTIONS: dict[str, dict[str, Any]] = {}  # shard-set base URL -> fsspec options given to urls()
_OPTIONS_LOCK = threading.Lock()


class ShardURLs(list):
    """The shard URLs of one split (a ``list`` of ``str``), with what the index says about the set.

    Attributes
    ----------
    root : str
        The shard set's folder URL.
    split : str
        The split.
    sensor_size : tuple of int
        ``(H, W)`` from the index (what :func:`to_frames` needs).
    classes : list of str
        Class names (index = label).
    samples : int
        Samples in the split.
    """

    root: str
    split: str
    sensor_size: tuple[int, int]
    classes: list[str]
    samples: int


def urls(
    root: str | os.PathLike[str], split: str = "train", storage_options: dict[str, Any] | None = None
) -> ShardURLs:
    """The URLs of ``split``'s shards, in index order, for ``webdataset.WebDataset``.

    Parameters
    ----------
    root : str or path
        Shard-set folder or its ``index.json``: local path, ``file://``, ``http(s)://``, ``s3://``.
    split : str
        Split name in the index.
    storage_options : dict, optional
        fsspec options (credentials, endpoint, …). They are kept in this process for the shards under
        ``root`` and reach DataLoader workers that are forked from it (Linux's default); workers started
        with ``spawn`` see only what the environment configures (``AWS_*`` variables, …).

    Returns
    -------
    ShardURLs
        ``["eventshard+file:///…/train-000000.tar.zst", …]`` with ``sensor_size``, ``classes`` and
        ``samples`` from the index.

    Raises
    ------
    loader.shards.ShardSetNotFoundError
        No ``index.json`` there.
    ConfigurationError
        No such split (a ``ValueError``).
    """
    ss = open_shard_set(root, storage_options)
    shards = ss.shards(split)
    base = ss.fs.unstrip_protocol(ss.base)
    if storage_options:
        with _OPTIONS_LOCK:
            _OPTIONS[base.rstrip("/") + "/"] = dict(storage_options)
    out = ShardURLs(f"{SCHEME}+{base.rstrip('/')}/{shard['file']}" for shard in shards)
    out.root = ss.url
    out.split = split
    out.sensor_size = (int(ss.index["sensor_size"][0]), int(ss.index["sensor_size"][1]))
    out.classes = list(ss.index["classes"])
    out.samples = int(ss.index["splits"][split]["samples"])
    return out


def _options_for(url: str) -> dict[str, Any]:
    """The options :func:`urls` was given for the shard set ``url`` lies in (the longest matching base)."""
    with _OPTIONS_LOCK:
        best = max((b for b in _OPTIONS if url.startswith(b)), key=len, default=None)
        return dict(_OPTIONS[best]) if best is not None else {}


# --------------------------------------------------------------------------- the gopen handler


def gopen_shard(url: str, mode: str = "rb", bufsize: int = 8192, **kw: Any) -> ShardStream:
    """webdataset gopen handler for ``eventshard+<fsspec URL>``: the shard as a plain tar stream."""
    if not mode.startswith("r"):
        raise ValueError(f"{url}: eventshard shards are opened for reading only (mode {mode!r})")
    inner = url.split("+", 1)[1]
    fs, path = fsspec.core.url_to_fs(inner, **_options_for(inner))
    return ShardStream(fs.open(path, "rb"), inner)


for _protocol in fsspec.available_protocols():
    gopen_schemes[f"{SCHEME}+{_protocol}"] = gopen_shard


def _member_names(buf: bytes) -> list[str] | None:
    """Names of the tar members in ``buf`` (one sample's frame), or ``None`` where a header is not plain ustar."""
    names = []
    pos = 0
    while pos + TAR_BLOCK <= len(buf):
        block = buf[pos : pos + TAR_BLOCK]
        if block.count(0) == TAR_BLOCK:  # end-of-archive marker
            break
        try:
            info = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.TarError:
            return None  # let tarfile say what is wrong, where webdataset reads it
        if info.type not in tarfile.REGULAR_TYPES:
            return None  # PAX / GNU long-name headers: parse the whole frame
        names.append(info.name)
        pos += TAR_BLOCK + -(-info.size // TAR_BLOCK) * TAR_BLOCK
    return names


def _escaped(name: str) -> str:
    """``name`` with the dots of its key's last part written as :data:`DOT_ESCAPE`."""
    for suffix in (EVENTS_SUFFIX, LABEL_SUFFIX):
        if name.endswith(suffix):
            head, _, last = name[: -len(suffix)].rpartition("/")
            return f"{head}/{last.replace('.', DOT_ESCAPE)}{suffix}" if head else last.replace(".", DOT_ESCAPE) + suffix
    return name


def _needs_escape(name: str) -> bool:
    return _escaped(name) != name


def _rewrite(buf: bytes) -> bytes:
    """The tar members of ``buf`` again, names escaped (:func:`_escaped`), in PAX format as ``tarfile`` writes it."""
    out = io.BytesIO()
    with tarfile.open(fileobj=io.BytesIO(buf), mode="r:") as src:
        for info in src:
            f = src.extractfile(info) if info.isreg() else None
            data = f.read() if f is not None else b""
            new = tarfile.TarInfo(_escaped(info.name))
            new.size, new.mtime, new.mode, new.type = len(data), 0, 0o644, info.type
            out.write(new.tobuf(format=tarfile.PAX_FORMAT, encoding="utf-8", errors="strict"))
            out.write(data + bytes(-len(data) % TAR_BLOCK))
    return out.getvalue()


class ShardStream(io.RawIOBase):
    """A shard's tar stream: reads the compressed shard, decompresses it one zstd frame (one sample) at a time.

    A damaged frame raises :class:`~loader.format.FormatError` ``"<url>: sample k at byte o: …"`` (k counts the
    shard's frames, o is the frame's compressed offset), as eventshard's own reader names it.

    Parameters
    ----------
    raw : file object
        The compressed bytes, read :data:`READ_SIZE` at a time.
    url : str
        The shard's URL, for messages.
    first_sample, first_offset : int
        Number and compressed offset of the first frame in ``raw`` (when ``raw`` starts inside a shard).
    """

    def __init__(self, raw: Any, url: str, first_sample: int = 0, first_offset: int = 0):
        super().__init__()
        self.url = url
        self._raw = raw
        self._dctx = zstandard.ZstdDecompressor()
        self._dobj: Any = None  # the decompressor of the frame being read (made at its first bytes)
        self._parts: list[bytes] = []  # output of the frame being decompressed
        self._part_bytes = 0
        self._pending = b""  # compressed bytes not yet fed
        self._frame = int(first_sample)  # number of the frame being decompressed
        self._frame_start = int(first_offset)  # its compressed offset
        self._fed = int(first_offset)  # compressed offset after the bytes fed so far
        self._chunks: collections.deque[bytes] = collections.deque()  # tar bytes ready to read ...
        self._head = 0  # ... from this offset in the first chunk on
        self._ready = 0  # bytes ready in all
        self._eof = False

    def __repr__(self) -> str:
        return f"<eventshard shard {self.url}>"

    __str__ = __repr__

    def readable(self) -> bool:
        return True

    def _error(self, why: str) -> FormatError:
        return FormatError(f"{self.url}: sample {self._frame} at byte {self._frame_start}: {why}")

    def _finish_frame(self) -> None:
        buf = b"".join(self._parts)
        self._parts, self._part_bytes = [], 0
        names = _member_names(buf)
        if names is None or any(map(_needs_escape, names)):
            try:
                buf = _rewrite(buf)
            except tarfile.TarError as exc:
                raise self._error(f"not a valid tar stream ({exc})") from None
        self._chunks.append(buf)
        self._ready += len(buf)
        self._frame += 1
        self._frame_start = self._fed
        self._dobj = None

    def _decompressor(self, data: bytes) -> Any:
        """A decompressor for the frame starting with ``data``, its output buffer as big as the header says
        (one output chunk per sample; at most :data:`MAX_OUTPUT_CHUNK`, whatever the header claims)."""
        try:
            size = zstandard.frame_content_size(data)
        except zstandard.ZstdError:
            size = -1  # header incomplete or damaged: decompress() says what is wrong
        if size <= 0:
            return self._dctx.decompressobj()
        return self._dctx.decompressobj(write_size=min(size, MAX_OUTPUT_CHUNK))

    def _fill(self) -> None:
        data = self._pending or self._raw.read(READ_SIZE)
        self._pending = b""
        if not data:
            if self._part_bytes or self._fed != self._frame_start:
                raise self._error("the shard ends inside this zstd frame (truncated)")
            self._eof = True
            return
        if self._dobj is None:
            self._dobj = self._decompressor(data)
        try:
            chunk = self._dobj.decompress(data)
        except zstandard.ZstdError as exc:
            raise self._error(f"corrupt zstd frame ({exc})") from None
        self._parts.append(chunk)
        self._part_bytes += len(chunk)
        if self._part_bytes > MAX_SAMPLE_BYTES:
            raise self._error(f"zstd frame holds more than {MAX_SAMPLE_BYTES} bytes")
        if self._dobj.eof:
            rest = self._dobj.unused_data
            self._fed += len(data) - len(rest)
            self._pending = rest
            self._finish_frame()
        else:
            self._fed += len(data)

    def read(self, size: int | None = -1) -> bytes:
        want = None if size is None or size < 0 else size
        while not self._eof and (want is None or self._ready < want):
            self._fill()
        n = self._ready if want is None else min(want, self._ready)
        self._ready -= n
        parts = []
        while n:
            chunk = self._chunks[0]
            take = min(n, len(chunk) - self._head)
            parts.append(chunk[self._head : self._head + take] if take < len(chunk) else chunk)
            self._head += take
            n -= take
            if self._head == len(chunk):
                self._chunks.popleft()
                self._head = 0
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


# --------------------------------------------------------------------------- .map stages


def _unescape(key: str) -> str:
    return key.replace(DOT_ESCAPE, ".")


def _payloads(sample: Mapping[str, Any]) -> tuple[bytes, bytes, str]:
    """``(events payload, label payload, key)`` of a webdataset sample dict."""
    key = str(sample.get("__key__"))
    if _EVENTS_MEMBER in sample and _LABEL_MEMBER in sample:
        return sample[_EVENTS_MEMBER], sample[_LABEL_MEMBER], _unescape(key)
    # Read without the handler (e.g. "pipe:zstd -dc …"): a dot in the key's last part moved into the member
    # names. One sample there can be put back together; several merged by webdataset cannot.
    names = sorted(k for k in sample if not k.startswith("__"))
    ev = [n for n in names if n.endswith("." + _EVENTS_MEMBER)]
    if len(ev) == 1 and len(names) == 2:
        stem = ev[0][: -len(_EVENTS_MEMBER) - 1]
        if stem + "." + _LABEL_MEMBER in sample:
            return sample[ev[0]], sample[stem + "." + _LABEL_MEMBER], f"{key}.{stem}"
    raise FormatError(
        f"{sample.get('__url__')}: sample {key!r}: expected the members {_EVENTS_MEMBER!r} and {_LABEL_MEMBER!r}, "
        f"got {names} (open the shards by loader.wds.urls(), whose handler keeps keys with dots apart)"
    )


_tuned_pid = 0


def _tune_worker() -> None:
    """In a DataLoader worker, keep freed memory for the next sample, as ``EventShardDataset``'s workers do
    (:mod:`loader.allocator`); once per process."""
    global _tuned_pid
    if _tuned_pid != os.getpid():
        _tuned_pid = os.getpid()
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:
            keep_freed_memory()


def decode_sample(sample: Mapping[str, Any]) -> tuple[dict[str, np.ndarray], int, str]:
    """A ``.map`` stage: a webdataset sample (dict of tar members) → ``(events, label, key)``.

    ``events`` is a dict of numpy arrays ``t`` (int64 µs), ``x``, ``y``, ``p`` (uint8 0/1), ``label`` the
    class index and ``key`` the sample's key: what ``EventShardDataset(data_type="event", return_key=True)``
    yields for it. In a DataLoader worker process the first call tunes malloc as ``EventShardDataset``'s
    workers do (:func:`loader.allocator.keep_freed_memory`: freed sample buffers are reused, not returned
    to the kernel and faulted in again).

    Raises
    ------
    FormatError
        The members are missing or do not decode; names the shard's URL and the key.
    """
    _tune_worker()
    ev, lab, key = _payloads(sample)
    try:
        check_key(key)
        return decode_events(ev), int(decode_label(lab)["label"]), key
    except FormatError as exc:
        raise FormatError(f"{sample.get('__url__')}: sample {key!r}: {exc}") from None


class to_frames:  # a function to its callers: to_frames(...) returns the stage
    """A ``.map`` stage after :func:`decode_sample`: ``(events, label, key)`` → ``(frames, label, key)``.

    The settings are ``EventShardDataset(data_type="frame", …)``'s and give its values (SpikingJelly's
    semantics, ``docs/SEMANTICS.md``); the integration is :mod:`loader.frames`. The stage can be pickled
    (DataLoader workers started with ``spawn``).

    Parameters
    ----------
    sensor_size : (H, W)
        The index's sensor size (:attr:`ShardURLs.sensor_size`).
    frames_number, split_by : int, {"number", "time"}
        Fixed number of frames, split by event count or by time.
    duration : int
        Fixed frame duration in µs (variable ``T``; batch with ``pad_sequence_collate``).
    custom_integrate_function : callable
        ``f(events, H, W) -> ndarray`` instead.
    """

    def __init__(
        self,
        sensor_size: tuple[int, int],
        frames_number: int | None = None,
        split_by: str | None = None,
        duration: int | None = None,
        custom_integrate_function: Callable[[dict[str, np.ndarray], int, int], Any] | None = None,
    ):
        if len(sensor_size) != 2 or min(int(v) for v in sensor_size) < 1:
            raise ConfigurationError(f"sensor_size must be (H, W), got {sensor_size!r}")
        given = [frames_number is not None, duration is not None, custom_integrate_function is not None]
        if sum(given) != 1:
            raise ConfigurationError(
                "to_frames needs one of frames_number=T (with split_by='number'|'time'), duration=D (µs) "
                "or custom_integrate_function"
            )
        if frames_number is not None:
            if split_by not in _frames.SPLIT_BY:
                raise ConfigurationError(f"frames_number needs split_by='number' or 'time', got {split_by!r}")
            if int(frames_number) <= 0:
                raise ConfigurationError(f"frames_number must be positive, got {frames_number}")
        elif split_by is not None:
            raise ConfigurationError("split_by needs frames_number: pass frames_number=T (or drop split_by)")
        if duration is not None and duration <= 0:
            raise ConfigurationError(f"duration must be positive (µs), got {duration}")
        self.sensor_size = (int(sensor_size[0]), int(sensor_size[1]))
        self.frames_number = frames_number
        self.split_by = split_by
        self.duration = duration
        self.custom_integrate_function = custom_integrate_function

    def __call__(self, item: tuple[dict[str, np.ndarray], Any, str]) -> tuple[Any, Any, str]:
        events, label, key = item
        h, w = self.sensor_size
        if self.custom_integrate_function is not None:
            x = self.custom_integrate_function(events, h, w)
        elif self.duration is not None:
            x = _frames.integrate_events_by_fixed_duration(events, self.duration, h, w)
        else:
            x = _frames.integrate_events_by_fixed_frames_number(events, self.split_by, self.frames_number, h, w)
        return x, label, key
