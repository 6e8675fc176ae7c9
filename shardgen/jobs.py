"""Conversion spread over machines: each job converts a fixed share of the recordings, then one merge.

``shardgen convert … --num-jobs J --job-index I`` converts the recordings whose name hashes to
job ``I`` (crc32 of the name modulo ``J``: the same share whether RAW is the archive or the
extracted folder, and whatever order the archive stores them in) into the sub-folder
``OUT/job-IIII-of-JJJJ/``, a complete shard set of its own. ``shardgen merge OUT`` checks that all
``J`` parts are complete and consistent and writes ``OUT/index.json`` naming their shards as
``job-IIII-of-JJJJ/<split>-NNNNNN.tar.zst``. Readers only ever look at ``OUT/index.json``.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from loader.errors import ConfigurationError, EventshardError
from loader.format import INDEX_NAME, FormatError, dumps_index, loads_index
from loader.shards import open_shard_set

_JOB_DIR = re.compile(r"^job-(\d{4})-of-(\d{4})$")
_SUMMABLE = ("recordings", "empty_windows", "events", "events_read", "truncated_recordings", "truncated_bytes",
             "skipped_packets", "shard_bytes")


class MergeError(EventshardError, ValueError):
    """The job parts of a shard set are missing, incomplete or inconsistent."""


def job_of(name: str, num_jobs: int) -> int:
    """The job (``0 … num_jobs-1``) that converts the recording called ``name``."""
    return zlib.crc32(name.encode("utf-8")) % num_jobs


def wanted(num_jobs: int, job_index: int) -> Callable[[str], bool]:
    """Predicate selecting job ``job_index``'s recordings (all of them when ``num_jobs == 1``)."""
    if num_jobs < 1 or not 0 <= job_index < num_jobs:
        raise ConfigurationError(
            f"--job-index must lie in [0, --num-jobs) and --num-jobs >= 1, got {job_index} of {num_jobs}"
        )
    if num_jobs == 1:
        return lambda name: True
    return lambda name: job_of(name, num_jobs) == job_index


def job_dir(num_jobs: int, job_index: int) -> str:
    """Name of the sub-folder job ``job_index`` of ``num_jobs`` writes to."""
    if num_jobs > 9999:
        raise ConfigurationError("at most 9999 jobs")
    return f"job-{job_index:04d}-of-{num_jobs:04d}"


def job_url(out: str | os.PathLike[str], num_jobs: int, job_index: int) -> str:
    """Where job ``job_index`` writes: ``OUT/job-IIII-of-JJJJ`` (a local path or URL)."""
    return f"{os.fspath(out).rstrip('/')}/{job_dir(num_jobs, job_index)}"


def retire_merged_index(out: str | os.PathLike[str]) -> None:
    """Remove ``OUT/index.json`` of an earlier merge: while a job reruns, the set is not complete."""
    fs, base = _fs(os.fspath(out))
    if fs.exists(f"{base}/{INDEX_NAME}"):
        fs.rm(f"{base}/{INDEX_NAME}")


def _fs(out: str) -> tuple[Any, str]:
    import fsspec

    fs, path = fsspec.core.url_to_fs(out)
    return fs, path.rstrip("/")


def merge(out: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``OUT/index.json`` from the job parts in ``OUT``; return the merged index.

    Raises
    ------
    MergeError
        No parts, parts of different job counts, a missing or unfinished part (no ``index.json``
        in its folder), or parts that disagree on dataset, format, sensor size or classes.
    """
    out = os.fspath(out)
    fs, base = _fs(out)
    try:
        names = [p.rstrip("/").rsplit("/", 1)[-1] for p in fs.ls(base, detail=False)]
    except FileNotFoundError:
        raise MergeError(f"{out}: no such folder") from None
    parts = {m.group(0): (int(m.group(1)), int(m.group(2))) for n in names if (m := _JOB_DIR.match(n))}
    if not parts:
        raise MergeError(f"{out}: no job-IIII-of-JJJJ parts to merge (convert with --num-jobs first)")
    counts = {j for _, j in parts.values()}
    if len(counts) != 1:
        raise MergeError(f"{out}: parts of different job counts {sorted(counts)}; remove the stale ones")
    total = counts.pop()
    indexes: list[dict[str, Any]] = []
    for i in range(total):
        folder = job_dir(total, i)
        if folder not in parts:
            raise MergeError(f"{out}: part {folder} is missing (run --job-index {i} --num-jobs {total})")
        try:
            index = open_shard_set(f"{out.rstrip('/')}/{folder}").index
        except FileNotFoundError:
            raise MergeError(f"{out}/{folder}: not finished (no {INDEX_NAME}); rerun job {i}") from None
        except FormatError as exc:
            raise MergeError(str(exc)) from None
        if index.get("job") != {"index": i, "count": total}:
            raise MergeError(f"{out}/{folder}/{INDEX_NAME}: says it is job {index.get('job')}, expected {i} of {total}")
        indexes.append(index)
    merged = _merge_indexes(indexes, out)
    data = dumps_index(merged)
    loads_index(data)
    if "://" in out and not out.startswith("file://"):
        fs.pipe_file(f"{base}/{INDEX_NAME}", data)
    else:
        tmp = f"{base}/.{INDEX_NAME}.partial"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, f"{base}/{INDEX_NAME}")
    return merged


def _merge_indexes(indexes: list[dict[str, Any]], out: str) -> dict[str, Any]:
    first = indexes[0]
    for i, index in enumerate(indexes[1:], start=1):
        for field in ("format", "version", "dataset", "sensor_size", "classes", "time_unit"):
            if index.get(field) != first.get(field):
                raise MergeError(f"{out}: job {i} differs from job 0 in {field!r}")
        if sorted(index["splits"]) != sorted(first["splits"]):
            raise MergeError(f"{out}: job {i} has splits {sorted(index['splits'])}, job 0 {sorted(first['splits'])}")
    total = len(indexes)
    splits: dict[str, Any] = {}
    for split in first["splits"]:
        shards = []
        for i, index in enumerate(indexes):
            for shard in index["splits"][split]["shards"]:
                shards.append({**shard, "file": f"{job_dir(total, i)}/{shard['file']}"})
        splits[split] = {
            "samples": sum(s["samples"] for s in shards),
            "events": sum(s["events"] for s in shards),
            "bytes": sum(s["bytes"] for s in shards),
            "shards": shards,
        }
        if "view_of" in first["splits"][split]:
            splits[split]["view_of"] = first["splits"][split]["view_of"]
    merged = {k: v for k, v in first.items() if k not in ("splits", "summary", "job", "source")}
    merged["splits"] = splits
    merged["source"] = {**first["source"], "jobs": total}
    merged["summary"] = _merge_summaries([ix.get("summary", {}) for ix in indexes], splits)
    return merged


def _merge_summaries(summaries: list[dict[str, Any]], splits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(s.get(k, 0) for s in summaries) for k in _SUMMABLE}
    out["samples"] = {split: info["samples"] for split, info in splits.items()}
    per_class: dict[str, Counter[str]] = {split: Counter() for split in splits}
    for s in summaries:
        for split, classes in s.get("samples_per_class", {}).items():
            per_class.setdefault(split, Counter()).update(classes)
    out["samples_per_class"] = {split: dict(c) for split, c in per_class.items()}
    skipped = {item for s in summaries for item in s.get("skipped", [])}
    out["skipped"] = sorted(skipped)
    out["warnings"] = [w for s in summaries for w in s.get("warnings", [])]
    out["bytes_per_event"] = round(out["shard_bytes"] / out["events"], 4) if out["events"] else None
    return out
