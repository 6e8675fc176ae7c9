"""Check a whole shard set: every shard's size and sha256, and every sample as a stock webdataset reader sees it.

Each sample's zstd frame (located by the index's offsets) goes through the same stages a
``webdataset.WebDataset`` over :func:`loader.wds.urls` runs: the :mod:`loader.wds` handler's decompressing
stream, webdataset's own tar iteration (``tar_file_expander``) and key grouping (``group_by_keys``), then
:func:`loader.wds.decode_sample`. So a set that passes is one webdataset pipelines read as the index promises:
one sample per frame, the members ``<key>.events.msgpack`` and ``<key>.label.msgpack``, the event counts.
Frames are checked one by one (not as one shard-long stream) so that a damaged one is named by its number and
byte offset and the samples after it are still checked.

webdataset imports torch (about a second): :func:`verify` imports it when called, so importing this module,
and starting ``shardgen``, stays free of torch. No torch is needed beyond that import.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tarfile
from collections.abc import Callable
from typing import Any

from loader.format import FormatError
from loader.shards import ShardSet, open_shard_set

__all__ = ["verify"]


def _sample_as_webdataset_sees_it(ss: ShardSet, shard: dict[str, Any], k: int, frame: bytes) -> tuple[str, int]:
    """``(key, events)`` of sample ``k`` of ``shard`` from its zstd ``frame``, read by webdataset's stages.

    Raises :class:`~loader.format.FormatError` saying why the frame is not one good sample.
    """
    from webdataset.tariterators import group_by_keys, tar_file_expander

    from loader.wds import ShardStream, decode_sample

    url, offset = ss.shard_url(shard), int(shard["offsets"][k])
    stream = ShardStream(io.BytesIO(frame), url, first_sample=k, first_offset=offset)
    samples = list(group_by_keys(tar_file_expander([{"url": url, "stream": stream}])))
    if len(samples) != 1:
        found = ", ".join(repr(s.get("__key__")) for s in samples)
        raise FormatError(f"the frame holds {len(samples)} samples ({found}), the index says 1")
    events, _label, key = decode_sample(samples[0])
    return key, int(events["t"].size)


def _why(exc: BaseException, prefix: str) -> str:
    """The reason in ``exc``, without what webdataset appends to its arguments or a repeat of ``prefix``."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    text = re.sub(r" @ <eventshard shard [^>]*>$", "", text)
    for head in (prefix, prefix.split(": sample ")[0] + ": "):
        text = text.removeprefix(head)
    return text


def verify(
    url: str | os.PathLike[str],
    decode: bool = True,
    storage_options: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Check every shard's size and sha256 and (with ``decode``) read every sample as webdataset does.

    Each shard is checked once, also when views list it in several splits. Every problem is one
    line that starts with the shard's URL:

    - ``<url>: missing (the index names it)``
    - ``<url>: N bytes, the index says M (truncated: samples k..n-1 from byte o on are cut off)``, or
      ``(... the end-of-archive frame is cut off)``, or ``(D bytes too many)``
    - ``<url>: sha256 <first 16 hex>… differs from the index's <first 16 hex>…``
    - ``<url>: sample k at byte o: <why it does not decode>`` (samples a truncation cut off are not
      decoded: the size line names them)
    - ``<url>: N events decoded, the index says M`` (when every sample decoded)
    - a read that kept failing (:class:`~loader.shards.StorageError`, naming the URL and byte range)

    The index is checked when the set is opened: a missing index raises
    :class:`~loader.shards.ShardSetNotFoundError`, an invalid one (another format or version, …)
    :class:`~loader.format.FormatError` naming it.

    ``progress(shards_done, shards_total)`` is called after each shard (``shardgen verify`` draws a bar).

    Returns
    -------
    dict
        ``{"ok": bool, "problems": [str, ...], "samples": n, "events": n}`` (samples and events
        that decoded).
    """
    ss = open_shard_set(url, storage_options)
    total = len({s["file"] for info in ss.index["splits"].values() for s in info["shards"]})
    problems: list[str] = []
    samples = events = 0
    seen: set[str] = set()
    for info in ss.index["splits"].values():
        for shard in info["shards"]:
            if shard["file"] in seen:
                continue
            seen.add(shard["file"])
            if progress is not None and len(seen) > 1:
                progress(len(seen) - 1, total)
            name = ss.shard_url(shard)
            try:
                data = ss.read_shard(shard)
            except OSError as exc:  # ShardMissingError, StorageError, permissions
                problems.append(str(exc))
                continue
            if len(data) != shard["bytes"]:
                problems.append(str(ss.size_error(shard, len(data))))
            digest = hashlib.sha256(data).hexdigest()
            if digest != shard["sha256"]:
                problems.append(f"{name}: sha256 {digest[:16]}… differs from the index's {shard['sha256'][:16]}…")
            if not decode:
                continue
            n_events, complete = 0, True
            offs = shard["offsets"]
            for k in range(shard["samples"]):
                if offs[k + 1] > len(data):  # cut off: the size line says so
                    complete = False
                    break
                try:
                    _key, n = _sample_as_webdataset_sees_it(ss, shard, k, data[offs[k] : offs[k + 1]])
                except (ValueError, OSError, EOFError, tarfile.TarError) as exc:  # FormatError is a ValueError
                    prefix = f"{name}: sample {k} at byte {offs[k]}: "
                    problems.append(prefix + _why(exc, prefix))
                    complete = False
                    continue
                n_events += n
                samples += 1
            events += n_events
            if complete and n_events != shard["events"]:
                problems.append(f"{name}: {n_events} events decoded, the index says {shard['events']}")
    if progress is not None:
        progress(len(seen), total)
    return {"ok": not problems, "problems": problems, "samples": samples, "events": events}
