"""Shard sets on any fsspec location: open the index, fetch sample frames by byte range, verify.

No torch here: ``shardgen info`` / ``shardgen verify`` use this module too.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import zstandard

from loader.format import INDEX_NAME, FormatError, decode_sample, loads_index

READ_BLOCK = 8 * 1024 * 1024


@dataclass
class ShardSet:
    """An opened shard set: its filesystem, base path and validated index."""

    url: str
    fs: Any
    base: str
    index: dict[str, Any]

    def shards(self, split: str) -> list[dict[str, Any]]:
        """The shard entries of ``split`` (``ValueError`` naming the available splits otherwise)."""
        try:
            return self.index["splits"][split]["shards"]
        except KeyError:
            raise ValueError(
                f"{self.url}: no split {split!r}; available: {', '.join(sorted(self.index['splits']))}"
            ) from None

    def path(self, shard: dict[str, Any]) -> str:
        """Full path of a shard on :attr:`fs`."""
        return f"{self.base}/{shard['file']}"

    def read_range(self, shard: dict[str, Any], start: int, stop: int) -> bytes:
        """Bytes ``[offsets[start], offsets[stop])`` of a shard: the frames of samples start..stop-1."""
        offsets = shard["offsets"]
        lo, hi = offsets[start], offsets[stop]
        data = self.fs.cat_file(self.path(shard), start=lo, end=hi)
        if len(data) != hi - lo:
            raise FormatError(f"{self.path(shard)}: short read at byte {lo} ({len(data)} of {hi - lo} bytes)")
        return data

    def iter_frames(self, shard: dict[str, Any], start: int, stop: int) -> Iterator[memoryview]:
        """Yield the compressed frames of samples ``start..stop-1``, reading about 8 MiB at a time."""
        offsets = shard["offsets"]
        i = start
        while i < stop:
            j = i + 1
            while j < stop and offsets[j + 1] - offsets[i] <= READ_BLOCK:
                j += 1
            block = memoryview(self.read_range(shard, i, j))
            base = offsets[i]
            for k in range(i, j):
                yield block[offsets[k] - base : offsets[k + 1] - base]
            i = j


def _strip_index(url: str) -> str:
    url = os.fspath(url)
    if url.endswith("/" + INDEX_NAME) or url == INDEX_NAME:
        url = url[: -len(INDEX_NAME)].rstrip("/") or "."
    return url.rstrip("/") if url not in ("/",) else url


def open_shard_set(url: str | os.PathLike[str], storage_options: dict[str, Any] | None = None) -> ShardSet:
    """Open a shard set by its folder or ``index.json`` (local path, ``file://``, ``http(s)://``, ``s3://``)."""
    url = _strip_index(os.fspath(url))
    fs, base = fsspec.core.url_to_fs(url, **(storage_options or {}))
    base = base.rstrip("/")
    index_path = f"{base}/{INDEX_NAME}"
    try:
        data = fs.cat_file(index_path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{url}: no {INDEX_NAME} (not a shard set, or its conversion did not finish)"
        ) from None
    try:
        index = loads_index(data)
    except FormatError as exc:
        raise FormatError(f"{url}/{INDEX_NAME}: {exc}") from None
    return ShardSet(url, fs, base, index)


def verify(url: str | os.PathLike[str], decode: bool = True) -> dict[str, Any]:
    """Check every shard's size and sha256 and (with ``decode``) decode every sample.

    Returns a report ``{"ok": bool, "problems": [...], "samples": n, "events": n}``; each problem
    names the shard and, for a sample, its index and byte offset.
    """
    ss = open_shard_set(url)
    problems: list[str] = []
    samples = events = 0
    dctx = zstandard.ZstdDecompressor()
    for info in ss.index["splits"].values():
        for shard in info["shards"]:
            path = ss.path(shard)
            try:
                data = ss.fs.cat_file(path)
            except FileNotFoundError:
                problems.append(f"{path}: missing")
                continue
            if len(data) != shard["bytes"]:
                problems.append(f"{path}: {len(data)} bytes, index says {shard['bytes']}")
            if hashlib.sha256(data).hexdigest() != shard["sha256"]:
                problems.append(f"{path}: sha256 differs from the index")
            if not decode:
                continue
            n_events = 0
            offs = shard["offsets"]
            for k in range(shard["samples"]):
                try:
                    _key, ev, _meta = decode_sample(data[offs[k] : offs[k + 1]], dctx)
                    n_events += ev["t"].size
                    samples += 1
                except FormatError as exc:
                    problems.append(f"{path}: sample {k} at byte {offs[k]}: {exc}")
            events += n_events
            if n_events != shard["events"]:
                problems.append(f"{path}: {n_events} events decoded, index says {shard['events']}")
    return {"ok": not problems, "problems": problems, "samples": samples, "events": events}
