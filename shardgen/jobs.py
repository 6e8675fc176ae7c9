"""Conversion spread over machines: each job converts a balanced share of the input files, then one merge.

``shardgen convert … --num-jobs J --job-index I`` (or the scheduler's variables, see
:mod:`shardgen.scheduler`) converts job ``I``'s share of the input files (balanced by bytes, see
:mod:`shardgen.balance`) into the sub-folder ``OUT/job-IIII-of-JJJJ/``, a complete shard set of its own.
The jobs of one array may run at the same time into one OUT (local or a URL): each writes only its
own folder, and a job rerun with the same number gives the same bytes. ``shardgen merge OUT`` checks
that all ``J`` parts are complete and consistent and writes ``OUT/index.json`` naming their shards as
``job-IIII-of-JJJJ/<split>-NNNNNN.tar.zst``, with each split's ``permutation`` giving the dataset's
order over the whole split (as a one-job run would). Readers only ever look at ``OUT/index.json``.

Dask, Ray or any pool that runs Python functions: :func:`convert_job` for each ``i`` in ``range(J)``,
then :func:`merge` (``docs/CLUSTER.md``).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from typing import Any

import numpy as np

from loader.errors import ConfigurationError, EventshardError
from loader.format import INDEX_NAME, FormatError, dumps_index, loads_index
from loader.index import decode_canonical, permutation_entry, view_permutation

_JOB_DIR = re.compile(r"^job-(\d{4})-of-(\d{4})$")
_SUMMABLE = ("recordings", "empty_windows", "events", "events_read", "truncated_recordings", "truncated_bytes",
             "skipped_packets", "shard_bytes")


class MergeError(EventshardError, ValueError):
    """The job parts of a shard set are missing, incomplete or inconsistent."""


def convert_job(dataset: str, raw: str | os.PathLike[str], out: str | os.PathLike[str], job_index: int,
                num_jobs: int, **options: Any) -> dict[str, Any]:
    """Convert job ``job_index`` of ``num_jobs`` into ``out/job-IIII-of-JJJJ/``; return its summary.

    A plain function for Dask (``client.map``), Ray (``ray.remote``) or ``concurrent.futures``: the
    same as ``shardgen convert DATASET --raw RAW --out OUT --num-jobs J --job-index I``. ``options``
    are :func:`shardgen.convert.convert`'s keywords (``workers``, ``shard_size``, ``split``,
    ``sample_order``, ``order_seed`` …); the progress bar is off unless ``progress=True``. Call
    :func:`merge` once every job has returned.
    """
    from shardgen.convert import convert  # convert imports this module

    options.setdefault("progress", False)
    return convert(dataset, raw, out, num_jobs=num_jobs, job_index=job_index, **options)


def job_dir(num_jobs: int, job_index: int) -> str:
    """Name of the sub-folder job ``job_index`` of ``num_jobs`` writes to."""
    if num_jobs > 9999:
        raise ConfigurationError("at most 9999 jobs")
    return f"job-{job_index:04d}-of-{num_jobs:04d}"


def job_url(out: str | os.PathLike[str], num_jobs: int, job_index: int) -> str:
    """Where job ``job_index`` writes: ``OUT/job-IIII-of-JJJJ`` (a local path or URL)."""
    return f"{os.fspath(out).rstrip('/')}/{job_dir(num_jobs, job_index)}"


def retire_merged_index(out: str | os.PathLike[str]) -> None:
    """Remove ``OUT/index.json`` of an earlier merge: while a job reruns, the set is not complete.

    The jobs of an array all do this at once: one that finds it already gone goes on.
    """
    fs, base = _fs(os.fspath(out))
    try:
        fs.rm_file(f"{base}/{INDEX_NAME}")
    except FileNotFoundError:
        pass


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
    from loader.shards import open_shard_set  # fsspec and the reader: only a merge needs them

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
        job = index.get("job")
        if not isinstance(job, dict) or (job.get("index"), job.get("count")) != (i, total):
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
    for split, info0 in first["splits"].items():
        if "view_of" in info0:
            continue
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
        canonical = _merged_canonical([ix["splits"][split] for ix in indexes], f"{out}: split {split!r}")
        if canonical is not None:
            seeds = {ix["splits"][split].get("permutation", {}).get("seed") for ix in indexes}
            splits[split]["permutation"] = permutation_entry(seeds.pop() if len(seeds) == 1 else None, canonical)
    for split, info0 in first["splits"].items():  # views (``all`` = train + test): the merged parts again
        if "view_of" in info0:
            splits[split] = _view(splits, info0["view_of"])
    merged = {k: v for k, v in first.items() if k not in ("splits", "summary", "job", "source")}
    merged["splits"] = splits
    inputs = [{k: ix["job"][k] for k in ("input_bytes", "input_files") if k in ix["job"]} for ix in indexes]
    merged["source"] = {**first["source"], "jobs": total, "job_inputs": inputs}
    merged["summary"] = _merge_summaries([ix.get("summary", {}) for ix in indexes], splits)
    return merged


def _merged_canonical(parts: list[dict[str, Any]], where: str) -> np.ndarray | None:
    """The merged split's ``canonical`` (stored position → place in the dataset's order over the whole split).

    Each part records, in its own dataset order, the places of its input units in the whole split's
    order and their sample counts (``dataset_order``); units never straddle jobs, so sorting all parts'
    units by place gives where each unit's samples start in the whole split. ``None`` for parts
    without ``dataset_order`` (written before it existed): their order is then the parts one after the other.
    """
    if not all("dataset_order" in p for p in parts):
        return None
    places = [np.asarray(p["dataset_order"]["places"], dtype=np.int64) for p in parts]
    counts = [np.asarray(p["dataset_order"]["counts"], dtype=np.int64) for p in parts]
    allp = np.concatenate(places) if places else np.zeros(0, np.int64)
    allc = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    order = np.argsort(allp, kind="stable")
    if np.any(np.diff(allp[order]) == 0):
        raise MergeError(f"{where}: an input unit is in two job parts; convert all jobs with the same --num-jobs")
    start = np.empty_like(allc)
    start[order] = np.concatenate([[0], np.cumsum(allc[order])[:-1]]) if allc.size else allc
    out: list[np.ndarray] = []
    first = 0
    for p, c in zip(parts, counts, strict=True):
        n = int(c.sum())
        if n != p["samples"]:
            raise MergeError(f"{where}: a part's dataset_order counts {n} samples, its shards hold {p['samples']}")
        unit = np.repeat(np.arange(c.size), c)
        local_start = np.concatenate([[0], np.cumsum(c)[:-1]]) if c.size else c
        global_of_local = start[first:first + c.size][unit] + (np.arange(n) - local_start[unit])
        perm = p.get("permutation")
        stored = decode_canonical(perm, n, where) if perm else np.arange(n)
        out.append(global_of_local[stored])
        first += c.size
    return np.concatenate(out) if out else np.zeros(0, np.int64)


def _view(splits: dict[str, Any], parts: list[str]) -> dict[str, Any]:
    """A view split of merged splits: their shards listed again, their dataset orders one after the other."""
    shards = [dict(s) for part in parts for s in splits[part]["shards"]]
    view: dict[str, Any] = {
        "samples": sum(s["samples"] for s in shards),
        "events": sum(s["events"] for s in shards),
        "bytes": sum(s["bytes"] for s in shards),
        "shards": shards,
        "view_of": list(parts),
    }
    permutation = view_permutation([splits[part] for part in parts])
    if permutation is not None:
        view["permutation"] = permutation
    return view


def _merge_summaries(summaries: list[dict[str, Any]], splits: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: sum(s.get(k, 0) for s in summaries) for k in _SUMMABLE}
    out["samples"] = {split: info["samples"] for split, info in splits.items()}
    per_class: dict[str, Counter[str]] = {split: Counter() for split in summaries[0].get("samples_per_class", {})}
    for s in summaries:
        for split, classes in s.get("samples_per_class", {}).items():
            per_class.setdefault(split, Counter()).update(classes)
    out["samples_per_class"] = {split: dict(c) for split, c in per_class.items()}
    skipped = {item for s in summaries for item in s.get("skipped", [])}
    out["skipped"] = sorted(skipped)
    out["warnings"] = [w for s in summaries for w in s.get("warnings", [])]
    out["bytes_per_event"] = round(out["shard_bytes"] / out["events"], 4) if out["events"] else None
    return out
