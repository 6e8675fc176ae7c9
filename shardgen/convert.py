"""The conversion driver: raw download → samples (worker processes) → shards + ``index.json``.

The main process walks the download (inflating an archive while the workers parse the
recordings it already handed out), keeps at most ``workers + 1`` recordings in flight so memory
stays bounded, and collects each recording's compressed sample frames as a part file. Once the
split lists are known, each split whose recordings are all done is written from the parts
(:mod:`shardgen.assembler`) in its stored order, so the output does not depend on which worker
finished first. Where the time goes and what bounds it: ``docs/BENCHMARKS.md``.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

from loader.allocator import keep_freed_memory
from loader.format import DEFAULT_ZSTD_LEVEL, FORMAT_NAME, TIME_UNIT, format_version, new_compressor
from loader.index import view_permutation
from shardgen import jobs
from shardgen.assembler import Assembler
from shardgen.balance import JobShare
from shardgen.cleanup import clean_up
from shardgen.datasets import get_dataset
from shardgen.datasets.base import (
    CutSample,
    DatasetError,
    RecordingTask,
    RestartCut,
    Source,
    read_all,
)
from shardgen.encode import encode_frames
from shardgen.output import ShardSetOutput
from shardgen.progress import Progress
from shardgen.sharedbuf import SlotPool
from shardgen.writer import DEFAULT_SHARD_SIZE

TOOL_VERSION = "eventshard 0.1.0"
SLOT_BYTES = 1 << 30  # virtual size of one shared slot; only the bytes written use memory


@dataclass
class RecordingResult:
    """What a worker reports for one recording; the frames themselves are in ``part``."""

    name: str
    part: str
    keys: list[str]
    labels: list[int]
    events: list[int]
    sizes: list[int]
    events_read: int
    empty_windows: int
    truncated_bytes: int
    skipped_packets: int
    warnings: list[str] = field(default_factory=list)
    skipped_words: dict[str, int] = field(default_factory=dict)
    offsets: list[int] = field(default_factory=list)
    """Byte offset of each sample's frame in ``part``."""


_CCTX: dict[int, Any] = {}
_PR_SET_PDEATHSIG = 1


def _init_worker(parent: int, close_fds: tuple[int, ...]) -> None:
    """Start-up of a conversion worker: die with the main process, drop its output lock, keep freed memory.

    A worker whose main process was killed (``kill -9``, the OOM killer) would otherwise wait forever
    for work, holding memory and the output's lock, and might still write a part file into a folder
    that the next run has already cleaned. On Linux the kernel sends it SIGKILL when the main process
    dies (``PR_SET_PDEATHSIG``); elsewhere nothing is arranged.
    """
    for fd in close_fds:  # a forked copy of the output lock: only the main process holds it
        try:
            os.close(fd)
        except OSError:
            pass
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass
        if os.getppid() != parent:  # the main process died before prctl took effect
            os._exit(1)
    keep_freed_memory()


def process_recording(
    dataset_id: str, task: RecordingTask, part: str, level: int, allow_truncated: bool
) -> RecordingResult:
    """Worker: cut one recording into samples and write their compressed frames to ``part`` as they come.

    The lists of the result are in the dataset's order (a sample's ``rank``, when the cut yields them in
    another order); ``offsets`` say where each frame lies in ``part``.
    """
    mod = get_dataset(dataset_id)
    cctx = _CCTX.get(level) or _CCTX.setdefault(level, new_compressor(level))
    sensor_size = task.context.get("sensor_size") or mod.SPEC.sensor_size  # a run's own size (``folder``)
    with open(part, "wb") as f:
        cut = mod.cut(task, allow_truncated=allow_truncated)
        try:
            rows = _write_samples(cut.samples, f, sensor_size, cctx)
        except RestartCut:  # a streaming cut met time stamps that go back: cut again from a whole read
            f.seek(0)
            f.truncate()
            cut = mod.cut(task, allow_truncated=allow_truncated, stream=False)
            rows = _write_samples(cut.samples, f, sensor_size, cctx)
    if any(r[0] is not None for r in rows):
        rows.sort(key=lambda r: r[0])
    keys, labels, events, sizes, offsets = ([r[i] for r in rows] for i in range(1, 6))
    return RecordingResult(
        task.name,
        part,
        keys,
        labels,
        events,
        sizes,
        cut.events_read,
        cut.empty_windows,
        cut.truncated_bytes,
        cut.skipped_packets,
        cut.warnings,
        cut.skipped_words,
        offsets,
    )


BATCH_SAMPLES = 64
BATCH_EVENTS = 1 << 18
"""A worker encodes the samples it cuts in batches of at most this many samples or (about) events."""


def _write_samples(samples: Iterable[CutSample], f: BinaryIO, sensor_size: Any, cctx: Any) -> list[tuple[Any, ...]]:
    """Encode and write the samples as they come, a batch at a time (:func:`shardgen.encode.encode_frames`);
    ``(rank, key, label, events, size, offset)`` per sample."""
    rows: list[tuple[Any, ...]] = []
    batch: list[CutSample] = []
    held = 0

    def flush() -> None:
        offset = rows[-1][5] + rows[-1][4] if rows else 0
        frames = encode_frames(batch, sensor_size, cctx)
        f.writelines(frames)
        for s, frame in zip(batch, frames, strict=True):
            rows.append((s.rank, s.key, int(s.meta["label"]), int(s.t.size), len(frame), offset))
            offset += len(frame)
        batch.clear()

    for s in samples:
        batch.append(s)
        held += int(s.t.size)
        if len(batch) >= BATCH_SAMPLES or held >= BATCH_EVENTS:
            flush()
            held = 0
    if batch:
        flush()
    return rows


def convert(
    dataset_id: str,
    raw: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int | None = None,
    shard_size: int = DEFAULT_SHARD_SIZE,
    allow_truncated: bool = False,
    check_md5: bool = True,
    level: int = DEFAULT_ZSTD_LEVEL,
    progress: bool = True,
    num_jobs: int = 1,
    job_index: int = 0,
    split: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
    sample_order: str = "shuffled",
    order_seed: int = 0,
) -> dict[str, Any]:
    """Convert the raw download of ``dataset_id`` in ``raw`` into a shard set at ``out``.

    Parameters
    ----------
    dataset_id : str
        A key of :data:`shardgen.datasets.DATASETS`, e.g. ``"dvs128-gesture"``.
    raw : path
        The folder with the files as the dataset's authors distribute them (or extracted).
    out : path or URL
        Local folder, ``file://`` or any fsspec URL.
    workers : int, optional
        Worker processes (default: all cores).
    shard_size : int
        Target compressed bytes per shard.
    allow_truncated : bool
        Keep the events before the damage in truncated recordings (counted in the summary).
    check_md5 : bool
        Check the md5 of the downloaded files against the published values.
    level : int
        zstd level of the sample frames.
    progress : bool
        Show a tqdm progress bar on stderr.
    num_jobs, job_index : int
        Convert only job ``job_index``'s share of the input files (balanced by bytes, the same in
        every job: :mod:`shardgen.balance`) into ``out/job-IIII-of-JJJJ/``; ``shardgen merge`` then
        writes the single index of the whole set.
    split : dict, optional
        For datasets without an official split: ``rule`` (``"ratio"``, ``"first-k"``),
        ``train_ratio``, ``seed``, ``test_per_class`` (see
        :class:`shardgen.datasets.classfolder.SplitRule`); the rule is recorded in ``index.json``.
    options : dict, optional
        Dataset-specific options (the ``folder`` dataset: ``labels``, ``window_us``, ``stride_us``,
        ``sensor``, ``format``); a dataset that takes none refuses them.
    sample_order : {"shuffled", "dataset"}
        Store each split in a permutation seeded by ``order_seed`` (recorded in ``index.json``), so
        that reading a class-sorted download still mixes the classes; or in the dataset's order.
    order_seed : int
        Seed of that permutation.

    Returns
    -------
    dict
        The summary (also stored in ``index.json`` under ``"summary"``).

    Raises
    ------
    DatasetError, shardgen.formats.aedat3.AedatError
        On bad input, naming the file (and row or byte offset); no ``index.json`` is written.
    """
    t_start = time.perf_counter()
    with _no_cyclic_gc():
        mod = get_dataset(dataset_id)
        workers = max(1, workers or os.cpu_count() or 1)
        JobShare(num_jobs, job_index)  # a bad index fails before the download is read
        extra = {k: v for k, v in (options or {}).items() if v is not None}
        takes = getattr(mod, "OPTIONS", ())
        if set(extra) - set(takes):
            raise DatasetError(f"{dataset_id} takes no option {', '.join(sorted(set(extra) - set(takes)))}")
        src = mod.open_source(Path(raw), check_md5=check_md5, split=split, **extra)
        failing = True
        try:
            want = JobShare(num_jobs, job_index, src.listing() if num_jobs > 1 else None)
            assembler_options = {"sample_order": sample_order, "order_seed": order_seed}
            summary = _convert(mod, src, dataset_id, raw, out, workers, shard_size, allow_truncated, level, progress,
                               num_jobs, job_index, want, t_start, assembler_options)
            failing = False
            return summary
        finally:
            clean_up([src.close], failing)


@contextlib.contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Run without Python's cyclic garbage collector, which a conversion does not need (its objects are freed by
    reference counting). The collector's passes cost the main process time, and in forked workers they would
    write to every inherited object and copy the pages that hold them; so the objects that exist when the workers
    are forked are frozen as well. Both settings are restored afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        if enabled:
            gc.enable()


def _convert(
    mod: ModuleType,
    src: Source,
    dataset_id: str,
    raw: str | os.PathLike[str],
    out: str | os.PathLike[str],
    workers: int,
    shard_size: int,
    allow_truncated: bool,
    level: int,
    progress: bool,
    num_jobs: int,
    job_index: int,
    want: JobShare,
    t_start: float,
    assembler_options: dict[str, Any],
) -> dict[str, Any]:
    """:func:`convert` once the source is open."""
    if num_jobs > 1:
        jobs.retire_merged_index(out)
        out = jobs.job_url(out, num_jobs, job_index)
    results: dict[str, RecordingResult] = {}
    failing = True
    with ShardSetOutput(out) as output:
        parts = output.scratch_dir()
        forking = sys.platform.startswith("linux")
        ctx = multiprocessing.get_context("fork" if forking else "spawn")
        # Shared slots must exist before the workers fork: recordings then reach them without a pipe.
        slots = SlotPool(workers + 1, SLOT_BYTES) if forking else None
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_init_worker,
                                   initargs=(os.getpid(), output.inherited_fds() if forking else ()))
        bar = Progress("recordings", None, unit="rec", enabled=progress)
        try:
            inflight: dict[Future[RecordingResult], object] = {}
            # a job of several records its units' places in the listing instead (merge sorts by those)
            sort_key = src.sample_sort_key if num_jobs == 1 else None
            assembler = Assembler(output, shard_size, want, sort_key=sort_key, **assembler_options)
            assembler.record_order = num_jobs > 1

            def collect(done: set[Future[RecordingResult]]) -> None:
                for fut in done:
                    res = fut.result()
                    if slots is not None:
                        slots.release(inflight[fut])
                    del inflight[fut]
                    results[res.name] = res
                    bar.update(1)

            stage = slots.stage if slots is not None else read_all
            submitted: set[str] = set()
            for i, task in enumerate(src.recordings(stage, want)):
                if task.name in submitted:
                    raise DatasetError(f"{raw}: recording {task.name} appears twice")
                submitted.add(task.name)
                if task.places is not None:
                    assembler.places[task.name] = task.places
                part = str(parts / f"{i:06d}.part")
                fut = pool.submit(process_recording, dataset_id, task, part, level, allow_truncated)
                inflight[fut] = task.data
                del task
                if len(inflight) > workers:
                    collect(wait(inflight, return_when=FIRST_COMPLETED).done)
            full_order = src.order()  # the whole download has been read: the split lists are known now
            assembler.set_order(full_order)
            assembler.write_ready(results)  # a split already done is written while the last recordings are cut
            order = assembler.order
            assert order is not None
            while inflight:
                collect(wait(inflight, return_when=FIRST_COMPLETED).done)
                assembler.write_ready(results)
            index = _index(mod, src, assembler.finish(results), level)
            if num_jobs > 1:
                index["job"] = {"index": job_index, "count": num_jobs, **want.record()}
            listed = {name for names in full_order.values() for name in names}
            src.skipped.extend(f"{name}: not in any split list" for name in sorted(set(results) - listed))
            summary = _summary(index, results, src, order)
            _add_views(index, src)
            index["summary"] = dict(summary)  # no clock values in the index: reruns give the same bytes
            output.commit(index)
            seconds = time.perf_counter() - t_start
            summary["seconds"] = round(seconds, 3)
            summary["events_per_second"] = round(summary["events"] / seconds) if seconds > 0 else None
            failing = False
            return summary
        except BaseException:
            for fut in inflight:
                fut.cancel()
            raise
        finally:
            steps = [bar.close, lambda: pool.shutdown(wait=True, cancel_futures=True)]
            if slots is not None:
                steps.append(slots.close)
            clean_up([*steps, lambda: shutil.rmtree(parts, ignore_errors=True)], failing)


def _index(mod: ModuleType, src: Source, splits: dict[str, Any], level: int) -> dict[str, Any]:
    """The ``index.json`` document of a finished conversion (without its summary)."""
    sensor = list(src.sensor_size or mod.SPEC.sensor_size)
    return {
        "format": FORMAT_NAME,
        "version": format_version(sensor),  # 1 for [H, W]; 2 for a 1-D [W] (SHD, SSC)
        "dataset": mod.SPEC.id,
        "sensor_size": sensor,
        "classes": list(src.classes),
        "time_unit": TIME_UNIT,
        "zstd_level": level,
        "splits": splits,
        "split_rule": src.split_rule(),
        "source": {"files": src.provenance, "tool": TOOL_VERSION},
    }


def _add_views(index: dict[str, Any], src: Source) -> None:
    """Add the source's view splits (``all`` = train + test): the same shards listed again, no bytes copied."""
    for name, parts in src.views().items():
        shards = [dict(s) for part in parts for s in index["splits"][part]["shards"]]
        index["splits"][name] = {
            "samples": sum(s["samples"] for s in shards),
            "events": sum(s["events"] for s in shards),
            "bytes": sum(s["bytes"] for s in shards),
            "shards": shards,
            "view_of": list(parts),
        }
        view = view_permutation([index["splits"][part] for part in parts])
        if view is not None:  # the parts' orders one after the other
            index["splits"][name]["permutation"] = view


def _summary(
    index: dict[str, Any], results: dict[str, RecordingResult], src: Source, order: dict[str, list[str]]
) -> dict[str, Any]:
    """Counts for the closing report (and for ``index.json``)."""
    classes = index["classes"]
    per_class: dict[str, dict[str, int]] = {}
    samples: dict[str, int] = {}
    events = shard_bytes = 0
    for split, info in index["splits"].items():
        samples[split] = info["samples"]
        events += info["events"]
        shard_bytes += info["bytes"]
        c: Counter[int] = Counter()
        for name in order[split]:
            c.update(results[name].labels)
        per_class[split] = {classes[k]: c.get(k, 0) for k in range(len(classes))}
    warnings = [w for r in results.values() for w in r.warnings] + list(src.warnings)
    return {
        "recordings": len(results),
        "samples": samples,
        "samples_per_class": per_class,
        "empty_windows": sum(r.empty_windows for r in results.values()),
        "events": events,
        "events_read": sum(r.events_read for r in results.values()),
        "truncated_recordings": sum(1 for r in results.values() if r.truncated_bytes),
        "truncated_bytes": sum(r.truncated_bytes for r in results.values()),
        "skipped_packets": sum(r.skipped_packets for r in results.values()),
        "skipped_words": dict(sum((Counter(r.skipped_words) for r in results.values()), Counter())),
        "skipped": list(src.skipped),
        "warnings": warnings,
        "shard_bytes": shard_bytes,
        "bytes_per_event": round(shard_bytes / events, 4) if events else None,
    }
