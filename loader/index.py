"""The shard set's ``index.json``: its versions, its rules and its (de)serialisation (``docs/FORMAT.md``).

No torch and no numpy beyond checking a permutation: ``shardgen`` and the loader both read it.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from loader.errors import FormatError

FORMAT_NAME = "eventshard"
FORMAT_VERSION = 4
"""The version written: each shard's ``offsets`` is one base64 string (little-endian uint64); samples of a
2-D set hold the packed pixel column ``pix`` (as in version 3), those of a 1-D set ``t`` and ``x`` (as in 2)."""
FORMAT_VERSION_XYP = 1
"""The first 2-D version: samples hold ``x``, ``y`` and ``p`` (still read; ``encode_events(packed=False)``)."""
FORMAT_VERSION_1D = 2
"""The first 1-D version (``sensor_size`` ``[W]``, samples without ``y`` and ``p``; offsets as lists)."""
FORMAT_VERSION_PACKED = 3
"""The first version whose 2-D samples hold ``pix`` (offsets as lists)."""
COMPACT_OFFSETS_VERSION = 4
"""From this version on, a shard's ``offsets`` is stored as base64 of little-endian uint64."""
READABLE_VERSIONS = (1, 2, 3, 4)
INDEX_NAME = "index.json"
# A shard file is a plain relative name in the index's folder (or one job sub-folder): no scheme, host, '..',
# absolute path, backslash or percent-escape can pass, so an index cannot send the loader elsewhere.
_SHARD_RE = re.compile(r"(job-[0-9]{4}-of-[0-9]{4}/)?[a-z0-9_\-]+-[0-9]{6}\.tar\.zst")  # used with fullmatch
MAX_SENSOR = 1 << 16


def shard_name(split: str, number: int) -> str:
    """File name of shard ``number`` of ``split``: ``<split>-NNNNNN.tar.zst``."""
    return f"{split}-{number:06d}.tar.zst"


def validate_index(index: Any, compact: bool = False) -> dict[str, Any]:
    """Check an ``index.json`` document and return it; raise :class:`FormatError` naming the problem.

    With ``compact``, each shard's ``offsets`` is replaced by its checked ``int64`` array (:func:`decode_offsets`).
    """
    if not isinstance(index, dict):
        raise FormatError("index.json: not a JSON object")
    if index.get("format") != FORMAT_NAME:
        raise FormatError(f"index.json: format is {index.get('format')!r}, expected {FORMAT_NAME!r}")
    version = index.get("version")
    if not is_int(version) or version not in READABLE_VERSIONS:
        known = ", ".join(map(str, READABLE_VERSIONS))
        raise FormatError(f"index.json: version {version!r}, this reader knows {known} (a newer eventshard wrote it?)")
    for field in ("dataset", "sensor_size", "classes", "splits"):
        if field not in index:
            raise FormatError(f"index.json: missing field {field!r}")
    _check_sensor(index["sensor_size"], version)
    classes = index["classes"]
    if not isinstance(classes, (list, tuple)) or not all(isinstance(c, str) for c in classes):
        raise FormatError("index.json: 'classes' must be a list of names")
    splits = index["splits"]
    if not isinstance(splits, dict):
        raise FormatError("index.json: 'splits' must be an object")
    for split, info in splits.items():
        if not isinstance(info, dict) or not isinstance(info.get("shards"), list):
            raise FormatError(f"index.json: split {split!r} must be an object with a 'shards' list")
        total = 0
        for i, shard in enumerate(info["shards"]):
            if not isinstance(shard, dict):
                raise FormatError(f"index.json: split {split!r} shard {i}: not an object")
            name = shard.get("file", "")
            if not isinstance(name, str) or not _SHARD_RE.fullmatch(name):
                raise FormatError(
                    f"index.json: split {split!r} shard {i}: bad file name {name!r} (shard files are "
                    "'<split>-NNNNNN.tar.zst' next to index.json, optionally in one 'job-NNNN-of-NNNN/' folder)"
                )
            samples = shard.get("samples")
            if not is_int(samples) or samples < 0:
                raise FormatError(f"index.json: shard {name}: 'samples' must be a non-negative integer")
            offsets = decode_offsets(shard.get("offsets"), samples, version, name)
            if compact:
                shard["offsets"] = offsets
            total += samples
        if total != info.get("samples"):
            raise FormatError(
                f"index.json: split {split!r}: shards hold {total} samples, index says {info.get('samples')}"
            )
        if "permutation" in info:
            decode_canonical(info["permutation"], total, split)
    return index


def decode_offsets(offsets: Any, samples: int, version: int, name: str) -> np.ndarray:
    """A shard's ``offsets`` as an ``int64`` array of ``samples + 1`` values, checked: from 0, increasing.

    Accepts the stored string (version 4 on), a list of integers (any version: older sets, and indexes
    a writer is building) or an array this function returned.
    """
    arr = None
    if isinstance(offsets, str) and version >= COMPACT_OFFSETS_VERSION:
        try:
            raw = base64.b64decode(offsets, validate=True)
        except (ValueError, TypeError):
            raw = b""
        if len(raw) == 8 * (samples + 1):
            arr = np.frombuffer(raw, dtype="<u8").astype(np.int64)  # values past 2**63 turn negative: refused below
    elif isinstance(offsets, list) and len(offsets) == samples + 1 and all(map(is_int, offsets)):
        try:
            arr = np.array(offsets, dtype=np.int64)
        except OverflowError:
            arr = None
    elif isinstance(offsets, np.ndarray) and offsets.dtype == np.int64 and offsets.shape == (samples + 1,):
        arr = offsets
    if arr is None:
        form = "base64 of little-endian uint64" if version >= COMPACT_OFFSETS_VERSION else "a list of integers"
        raise FormatError(f"index.json: shard {name}: offsets do not match the sample count ({samples + 1} "
                          f"values, {form})")
    if arr[0] != 0 or (arr.size > 1 and bool((arr[1:] <= arr[:-1]).any())):
        raise FormatError(f"index.json: shard {name}: offsets must start at 0 and increase")
    return arr


def encode_offsets(offsets: Any) -> str:
    """A shard's ``offsets`` as stored from version 4 on: base64 of little-endian uint64."""
    return base64.b64encode(np.asarray(offsets, dtype="<u8").tobytes()).decode("ascii")


def encode_canonical(canonical: Any) -> str:
    """A permutation as it is stored: base64 of little-endian uint32 (one JSON string, not a list of ints)."""
    return base64.b64encode(np.asarray(canonical, dtype="<u4").tobytes()).decode("ascii")


def decode_canonical(perm: Any, n: int, split: str) -> np.ndarray:
    """The int64 ``canonical`` array of a split's ``permutation`` of ``n`` samples, checked: each of ``0..n-1`` once.

    Raises
    ------
    FormatError
        Not base64 of ``n`` little-endian uint32, or not a permutation (names the split).
    """
    text = perm.get("canonical") if isinstance(perm, dict) else None
    try:
        raw = base64.b64decode(text, validate=True) if isinstance(text, str) else None
    except (ValueError, TypeError):
        raw = None
    if raw is None or len(raw) != 4 * n:
        raise FormatError(f"index.json: split {split!r}: 'permutation' must hold 'canonical', base64 of {n} "
                          "little-endian uint32")
    values = np.frombuffer(raw, dtype="<u4").astype(np.int64)
    if n and (values.max() >= n or np.bincount(values, minlength=n).max() > 1):
        raise FormatError(f"index.json: split {split!r}: 'permutation' is not a permutation of 0..{n - 1}")
    return values


def permutation_entry(seed: int | None, canonical: Any) -> dict[str, Any]:
    """A split's ``permutation`` field: stored position ``j`` holds the dataset's sample ``canonical[j]``."""
    return {"seed": seed, "canonical": encode_canonical(canonical)}


def view_permutation(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The ``permutation`` of a view split listing ``parts`` (split entries) one after the other, or ``None``
    when no part has one (the view's order is then the stored one, too)."""
    if not any("permutation" in info for info in parts):
        return None
    pieces, offset = [], 0
    for info in parts:
        n = int(info["samples"])
        own = decode_canonical(info["permutation"], n, "view") if "permutation" in info else np.arange(n)
        pieces.append(own + offset)
        offset += n
    return permutation_entry(None, np.concatenate(pieces) if pieces else np.zeros(0, np.int64))


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_sensor(sensor: Any, version: int) -> None:
    """``sensor_size`` is ``[H, W]`` (any version) or, in version 2, ``[W]`` (a 1-D sensor)."""
    one_d = version == FORMAT_VERSION_1D or version >= COMPACT_OFFSETS_VERSION
    dims = (1, 2) if one_d else (2,)
    if (isinstance(sensor, (list, tuple)) and len(sensor) in dims
            and all(is_int(v) and 0 < v <= MAX_SENSOR for v in sensor)):
        return
    shapes = "[H, W] or [W]" if one_d else "[H, W]"
    raise FormatError(f"index.json: sensor_size must be {shapes} with sizes in [1, {MAX_SENSOR}] "
                      f"(version {version}), got {sensor!r}")


def dumps_index(index: Mapping[str, Any]) -> bytes:
    """Serialise an index deterministically (sorted keys, fixed indentation), each shard's ``offsets`` in
    the form of the index's version (a base64 string from version 4 on, else a list)."""
    compact = is_int(index.get("version")) and index["version"] >= COMPACT_OFFSETS_VERSION

    def stored(shard: Mapping[str, Any]) -> Mapping[str, Any]:
        if "offsets" not in shard:
            return shard
        offsets = shard["offsets"]
        return {**shard, "offsets": encode_offsets(offsets) if compact else [int(v) for v in offsets]}

    splits = {split: {**info, "shards": [stored(s) for s in info["shards"]]} if "shards" in info else info
              for split, info in index.get("splits", {}).items()}
    return (json.dumps({**index, "splits": splits}, indent=1, sort_keys=True) + "\n").encode()


def loads_index(data: bytes) -> dict[str, Any]:
    """Parse and validate ``index.json`` bytes; each shard's ``offsets`` comes back as an ``int64`` array
    (about 8 bytes per sample, whatever the version: an index is held in every DataLoader worker)."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, huge numbers, deep nesting
        raise FormatError(f"index.json: not valid JSON ({str(exc)[:200]})") from None
    return validate_index(obj, compact=True)
