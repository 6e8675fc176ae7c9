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
FORMAT_VERSION = 3
"""The version of a 2-D shard set (``sensor_size`` ``[H, W]``): samples hold the packed pixel column ``pix``."""
FORMAT_VERSION_XYP = 1
"""The first 2-D version: samples hold ``x``, ``y`` and ``p`` (still read; ``encode_events(packed=False)``)."""
FORMAT_VERSION_1D = 2
"""The version of a 1-D shard set (``sensor_size`` ``[W]``, samples without ``y`` and ``p``)."""
READABLE_VERSIONS = (1, 2, 3)
INDEX_NAME = "index.json"
# A shard file is a plain relative name in the index's folder (or one job sub-folder): no scheme, host, '..',
# absolute path, backslash or percent-escape can pass, so an index cannot send the loader elsewhere.
_SHARD_RE = re.compile(r"(job-[0-9]{4}-of-[0-9]{4}/)?[a-z0-9_\-]+-[0-9]{6}\.tar\.zst")  # used with fullmatch
MAX_SENSOR = 1 << 16


def shard_name(split: str, number: int) -> str:
    """File name of shard ``number`` of ``split``: ``<split>-NNNNNN.tar.zst``."""
    return f"{split}-{number:06d}.tar.zst"


def validate_index(index: Any) -> dict[str, Any]:
    """Check an ``index.json`` document and return it; raise :class:`FormatError` naming the problem."""
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
            samples, offsets = shard.get("samples"), shard.get("offsets")
            if not is_int(samples) or samples < 0:
                raise FormatError(f"index.json: shard {name}: 'samples' must be a non-negative integer")
            if not isinstance(offsets, list) or len(offsets) != samples + 1 or not all(map(is_int, offsets)):
                raise FormatError(f"index.json: shard {name}: offsets do not match the sample count")
            if offsets[0] != 0 or any(b <= a for a, b in zip(offsets, offsets[1:], strict=False)):
                raise FormatError(f"index.json: shard {name}: offsets must start at 0 and increase")
            total += samples
        if total != info.get("samples"):
            raise FormatError(
                f"index.json: split {split!r}: shards hold {total} samples, index says {info.get('samples')}"
            )
        if "permutation" in info:
            decode_canonical(info["permutation"], total, split)
    return index


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
    dims = (1, 2) if version == FORMAT_VERSION_1D else (2,)
    if (isinstance(sensor, (list, tuple)) and len(sensor) in dims
            and all(is_int(v) and 0 < v <= MAX_SENSOR for v in sensor)):
        return
    shapes = "[H, W] or [W]" if version == FORMAT_VERSION_1D else "[H, W]"
    raise FormatError(f"index.json: sensor_size must be {shapes} with sizes in [1, {MAX_SENSOR}] "
                      f"(version {version}), got {sensor!r}")


def dumps_index(index: Mapping[str, Any]) -> bytes:
    """Serialise an index deterministically (sorted keys, fixed indentation)."""
    return (json.dumps(index, indent=1, sort_keys=True) + "\n").encode()


def loads_index(data: bytes) -> dict[str, Any]:
    """Parse and validate ``index.json`` bytes."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError, huge numbers, deep nesting
        raise FormatError(f"index.json: not valid JSON ({str(exc)[:200]})") from None
    return validate_index(obj)
