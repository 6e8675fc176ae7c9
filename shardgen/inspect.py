"""Look at a shard set: the ``shardgen info`` table, its ``--plot`` picture, and ``shardgen preview``.

Everything here reads a shard set on any fsspec URL through :mod:`loader.shards` and needs no
torch. The index already holds per split and shard the sample, event and byte counts; the
per-sample figures (events per sample, duration, samples per class) come from one pass over the
samples that decodes only their ``t`` column and label (:func:`collect_info` with ``scan=True``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import zstandard

from loader import frames as _frames
from loader.errors import ConfigurationError
from loader.format import decode_sample
from loader.shards import ShardSet, open_shard_set
from shardgen.progress import human_bytes

__all__ = ["collect_info", "format_info", "info_table", "plot_info", "preview"]

log = logging.getLogger(__name__)

DEFAULT_FRAMES_NUMBER = 20
MAX_PREVIEW_FRAMES = 1024


# --------------------------------------------------------------------------- info


def _scan_shard(ss: ShardSet, shard: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events, duration (µs) and label of every sample of one shard, in order."""
    n = int(shard["samples"])
    events = np.zeros(n, np.int64)
    duration = np.zeros(n, np.int64)
    labels = np.zeros(n, np.int64)
    dctx = zstandard.ZstdDecompressor()
    for k, frame in enumerate(ss.iter_frames(shard, 0, n)):
        _key, ev, meta = decode_sample(frame, dctx, ("t",))
        t = ev["t"]
        events[k] = t.size
        duration[k] = int(t[-1] - t[0]) if t.size else 0
        labels[k] = int(meta["label"])
    return events, duration, labels


def _stats(values: np.ndarray) -> dict[str, float] | None:
    if values.size == 0:
        return None
    return {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}


def collect_info(
    url: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    *,
    scan: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Gather what ``shardgen info`` shows about a shard set.

    Parameters
    ----------
    url : str or path
        The shard set's folder or URL (local, ``file://``, ``http(s)://``, ``s3://``).
    storage_options : dict, optional
        fsspec options (as for :func:`loader.shards.open_shard_set`).
    scan : bool
        Read every sample once (decoding only its ``t`` column and label) for the per-sample
        figures: events and duration per sample, samples per class. Without it only the index is
        read; samples per class then come from the conversion summary in the index, if any.
    workers : int, optional
        Shards read at the same time during the scan (threads; default ``min(8, CPUs)``).
    progress : callable, optional
        ``progress(samples_done, samples_total)``, called after each shard of the scan.

    Returns
    -------
    dict
        ``url``, ``dataset``, ``version``, ``sensor_size`` ``[H, W]``, ``classes``, ``time_unit``,
        ``tool``, ``scanned``, ``total`` (``samples``, ``events``, ``bytes``, ``shards`` counting
        every shard file once: a split such as ``"all"`` may list the shards of other splits) and
        ``splits``: split name → ``samples``, ``events``, ``bytes``,
        ``shards``, ``bytes_per_event``, ``per_class`` (list of counts by label, or ``None``),
        ``events_per_sample`` and ``duration_us`` (each ``{min, median, max}`` or ``None``), and
        with ``scan`` the per-sample arrays ``sample_events``, ``sample_duration_us``,
        ``sample_labels`` (index order).
    """
    ss = open_shard_set(url, storage_options)
    ix = ss.index
    classes = list(ix["classes"])
    summary = ix.get("summary") or {}
    per_class_summary = summary.get("samples_per_class") or {}
    info: dict[str, Any] = {
        "url": ss.url,
        "dataset": ix["dataset"],
        "version": ix["version"],
        "sensor_size": [int(v) for v in ix["sensor_size"]],
        "classes": classes,
        "time_unit": ix.get("time_unit", "us"),
        "tool": (ix.get("source") or {}).get("tool"),
        "scanned": bool(scan),
        "splits": {},
    }
    total = sum(int(s["samples"]) for s in ix["splits"].values())
    done = 0
    lock = threading.Lock()
    n_workers = max(1, int(workers) if workers is not None else min(8, os.cpu_count() or 1))

    scanned: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # by file: views share shards

    def one(shard: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nonlocal done
        out = scanned.get(shard["file"])
        if out is None:
            out = scanned[shard["file"]] = _scan_shard(ss, shard)
        with lock:
            done += int(shard["samples"])
            if progress is not None:
                progress(done, total)
        return out

    order = {"train": 0, "test": 1, "all": 2}
    for split in sorted(ix["splits"], key=lambda name: (order.get(name, 3), name)):  # train, test, all, …
        s = ix["splits"][split]
        shards = s["shards"]
        entry: dict[str, Any] = {
            "samples": int(s["samples"]),
            "events": int(s["events"]),
            "bytes": int(s["bytes"]),
            "shards": len(shards),
            "bytes_per_event": (int(s["bytes"]) / int(s["events"])) if int(s["events"]) else None,
            "per_class": None,
            "events_per_sample": None,
            "duration_us": None,
        }
        if split in per_class_summary:
            counts = per_class_summary[split]
            entry["per_class"] = [int(counts.get(c, 0)) for c in classes]
        if scan:
            log.debug("scanning %d samples of split %s", entry["samples"], split)
            if n_workers > 1 and len(shards) > 1:
                with ThreadPoolExecutor(max_workers=n_workers, thread_name_prefix="eventshard-info") as pool:
                    parts = list(pool.map(one, shards))
            else:
                parts = [one(shard) for shard in shards]
            ev = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
            dur = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
            lab = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.int64)
            entry["per_class"] = np.bincount(lab, minlength=len(classes)).tolist() if lab.size else [0] * len(
                classes
            )
            entry["events_per_sample"] = _stats(ev)
            entry["duration_us"] = _stats(dur)
            entry["sample_events"], entry["sample_duration_us"], entry["sample_labels"] = ev, dur, lab
        info["splits"][split] = entry
    files = {sh["file"]: sh for s in ix["splits"].values() for sh in s["shards"]}
    info["total"] = {  # every shard file once (a split such as "all" may list other splits' shards)
        "samples": sum(int(sh["samples"]) for sh in files.values()),
        "events": sum(int(sh["events"]) for sh in files.values()),
        "bytes": sum(int(sh["bytes"]) for sh in files.values()),
        "shards": len(files),
    }
    return info


def _fmt_us(v: float | None) -> str:
    if v is None:
        return "-"
    if v >= 1_000_000:
        return f"{v / 1e6:.2f} s"
    if v >= 1_000:
        return f"{v / 1e3:.1f} ms"
    return f"{v:.0f} µs"


def _fmt_n(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _table(rows: list[list[str]], right: set[int]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))]
        out.append("  ".join(cells).rstrip())
    return out


def _sensor_text(sensor: list[int]) -> str:
    """``"128 x 128 (H x W)"``, or ``"700 units (1-D: t, x)"`` for a 1-D sensor."""
    return f"{sensor[0]} units (1-D: t, x)" if len(sensor) == 1 else f"{sensor[0]} x {sensor[1]} (H x W)"


def format_info(info: dict[str, Any]) -> str:
    """The ``shardgen info`` table of :func:`collect_info`'s result, as text (no trailing newline).

    Parameters
    ----------
    info : dict
        From :func:`collect_info`.

    Returns
    -------
    str
        Header lines (shard set, dataset, sensor, classes), one row per split and a total row
        (samples, events, events per sample min / median / max, duration per sample min / median /
        max, shards, bytes, bytes per event), then samples per class and split.
    """
    lines = [
        f"shard set   {info['url']}",
        f"dataset     {info['dataset']}  (eventshard format v{info['version']}"
        + (f", written by {info['tool']})" if info.get("tool") else ")"),
        f"sensor      {_sensor_text(info['sensor_size'])}, time unit "
        f"{'µs' if info['time_unit'] == 'us' else info['time_unit']}",
        f"classes     {len(info['classes'])}",
        "",
    ]
    splits = info["splits"]
    rows = [["split", "samples", "events", "events/sample min / median / max", "duration/sample min / median / max",
             "shards", "bytes", "bytes/event"]]
    for name, s in splits.items():
        e, d = s["events_per_sample"] or {}, s["duration_us"] or {}
        rows.append([
            name,
            f"{s['samples']:,}",
            f"{s['events']:,}",
            " / ".join(_fmt_n(e.get(k)) for k in ("min", "median", "max")) if e else "-",
            " / ".join(_fmt_us(d.get(k)) for k in ("min", "median", "max")) if d else "-",
            f"{s['shards']:,}",
            human_bytes(s["bytes"]),
            "-" if s["bytes_per_event"] is None else f"{s['bytes_per_event']:.2f}",
        ])
    tot = info["total"]
    n_ev, n_b = tot["events"], tot["bytes"]
    rows.append([
        "total",
        f"{tot['samples']:,}",
        f"{n_ev:,}",
        "",
        "",
        f"{tot['shards']:,}",
        human_bytes(n_b),
        f"{n_b / n_ev:.2f}" if n_ev else "-",
    ])
    lines += _table(rows, right={1, 2, 3, 4, 5, 6, 7})
    if not info["scanned"]:
        lines.append("(events and duration per sample: not scanned)")
    with_counts = [n for n, s in splits.items() if s["per_class"] is not None]
    lines.append("")
    if with_counts:
        rows = [["label", "class", *with_counts]]
        for i, c in enumerate(info["classes"]):
            rows.append([str(i), c, *(f"{splits[n]['per_class'][i]:,}" for n in with_counts)])
        lines += _table(rows, right={0, *range(2, 2 + len(with_counts))})
    else:
        lines.append("samples per class: not in the index (scan the samples to count them)")
    return "\n".join(lines)


def info_table(
    url: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    *,
    scan: bool = True,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """The ``shardgen info OUT`` table: :func:`format_info` of :func:`collect_info`.

    Parameters
    ----------
    url : str or path
        The shard set's folder or URL.
    storage_options : dict, optional
        fsspec options.
    scan, workers, progress
        See :func:`collect_info`.

    Returns
    -------
    str
        The table (print it).
    """
    return format_info(collect_info(url, storage_options, scan=scan, workers=workers, progress=progress))


# --------------------------------------------------------------------------- plot


def plot_info(
    url: str | os.PathLike[str],
    png_path: str | os.PathLike[str],
    storage_options: dict[str, Any] | None = None,
    *,
    info: dict[str, Any] | None = None,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> str:
    """Draw the class histogram and the events-per-sample and duration distributions into a PNG.

    Needs matplotlib (``pip install 'eventshard[plot]'``).

    Parameters
    ----------
    url : str or path
        The shard set's folder or URL.
    png_path : str or path
        Where to write the picture.
    storage_options : dict, optional
        fsspec options.
    info : dict, optional
        A scanned :func:`collect_info` result to reuse (saves a second pass over the samples).
    workers, progress
        See :func:`collect_info`.

    Returns
    -------
    str
        ``png_path``.

    Raises
    ------
    ImportError
        matplotlib is not installed (the message says how to install it).
    """
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("shardgen info --plot needs matplotlib: pip install 'eventshard[plot]'") from None
    if info is None or not info.get("scanned"):
        info = collect_info(url, storage_options, scan=True, workers=workers, progress=progress)
    splits = info["splits"]
    classes = info["classes"]
    fig = Figure(figsize=(13, 4.8 + 0.12 * max(0, len(classes) - 11)), layout="constrained")
    ax_cls, ax_ev, ax_dur = fig.subplots(1, 3, width_ratios=[1.4, 1, 1])
    names = list(splits)
    width = 0.8 / max(1, len(names))
    pos = np.arange(len(classes))
    for j, name in enumerate(names):
        counts = splits[name]["per_class"] or [0] * len(classes)
        ax_cls.barh(pos + (j - (len(names) - 1) / 2) * width, counts, height=width, label=f"{name} ({sum(counts):,})")
    ax_cls.set_yticks(pos, [f"{i} {c}" for i, c in enumerate(classes)], fontsize=8 if len(classes) <= 30 else 5)
    ax_cls.invert_yaxis()
    ax_cls.set_xlabel("samples")
    ax_cls.set_title("samples per class")
    ax_cls.legend(fontsize=8)
    for ax, key, label, scale in (
        (ax_ev, "sample_events", "events per sample", 1.0),
        (ax_dur, "sample_duration_us", "duration per sample (ms)", 1e-3),
    ):
        values = [np.asarray(splits[n][key], dtype=np.float64) * scale for n in names]
        allv = np.concatenate(values) if values else np.zeros(0)
        if allv.size:
            lo, hi = float(allv.min()), float(allv.max())
            bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
            for n, v in zip(names, values, strict=True):
                if v.size:
                    ax.hist(v, bins=bins, alpha=0.6, label=f"{n} (median {np.median(v):,.0f})")
            ax.legend(fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylabel("samples")
        ax.set_title(label)
    fig.suptitle(f"{info['dataset']}  ·  {'x'.join(map(str, info['sensor_size']))}  ·  {info['url']}", fontsize=10)
    fig.savefig(os.fspath(png_path), dpi=100)
    return os.fspath(png_path)


# --------------------------------------------------------------------------- preview


def preview(
    url: str | os.PathLike[str],
    split: str,
    index: int,
    out_path: str | os.PathLike[str],
    frames_number: int | None = None,
    split_by: str | None = None,
    duration: int | None = None,
    storage_options: dict[str, Any] | None = None,
    *,
    fps: float = 10.0,
) -> dict[str, Any]:
    """Write one sample as a GIF or a PNG grid of its frames (``shardgen preview``); GIF or PNG by suffix.

    A 1-D sample (SHD, SSC) is drawn as one raster picture of its ``[T, W]`` frames (:mod:`loader.raster`).

    The sample is fetched alone by its byte range (:meth:`loader.shards.ShardSet.read_sample`) and
    integrated with SpikingJelly's semantics; the picture is captioned with the key, label, class,
    event count and frame setting.

    Parameters
    ----------
    url : str or path
        The shard set's folder or URL.
    split : str
        Split name (``"train"``, ``"test"``, …).
    index : int
        Sample position in the split (index order; negative counts from the end).
    out_path : str or path
        ``.gif`` (animated, one frame per frame) or ``.png`` (all frames in a grid).
    frames_number : int, optional
        Fixed number of frames (default 20 when ``duration`` is not given).
    split_by : {"number", "time"}, optional
        How ``frames_number`` splits the sample (default ``"number"``).
    duration : int, optional
        Frame duration in µs instead of a fixed number of frames.
    storage_options : dict, optional
        fsspec options.
    fps : float
        GIF frames per second.

    Returns
    -------
    dict
        ``path``, ``split``, ``index``, ``key``, ``label``, ``class``, ``events``, ``frames`` (T),
        ``setting`` (text).

    Raises
    ------
    ValueError
        Both ``frames_number`` and ``duration``, a bad ``split_by`` or suffix, an unknown split, or
        more than 1024 frames (pass a longer ``duration``).
    IndexError
        ``index`` is outside the split.
    """
    from loader.preview import save_picture
    from loader.raster import save_raster
    from loader.sensor1d import integrate_1d

    suffix = os.path.splitext(os.fspath(out_path))[1].lower()
    if suffix not in (".gif", ".png"):
        raise ConfigurationError(f"{os.fspath(out_path)}: the preview's name must end in .gif or .png")
    if duration is not None and (frames_number is not None or split_by is not None):
        raise ConfigurationError("pass either --frames-number/--split-by or --duration, not both")
    if duration is None:
        frames_number = DEFAULT_FRAMES_NUMBER if frames_number is None else int(frames_number)
        split_by = split_by or "number"
        if split_by not in _frames.SPLIT_BY:
            raise ConfigurationError(f"split_by must be 'number' or 'time', got {split_by!r}")
        if frames_number < 1:
            raise ConfigurationError(f"frames_number must be positive, got {frames_number}")
    elif not duration > 0:
        raise ConfigurationError(f"duration must be positive (µs), got {duration}")
    ss = open_shard_set(url, storage_options)
    sensor = [int(v) for v in ss.index["sensor_size"]]
    h, w = sensor if len(sensor) == 2 else (1, sensor[0])  # a 1-D sensor is drawn as a raster
    frame = ss.read_sample(split, index)
    key, ev, meta = decode_sample(frame, zstandard.ZstdDecompressor())
    assert ev is not None
    n = int(ev["t"].size)
    if duration is not None:
        span = int(ev["t"][-1] - ev["t"][0]) if n else 0
        t_frames = max(1, -(-span // int(duration))) if float(duration).is_integer() else None
        if t_frames is not None and t_frames > MAX_PREVIEW_FRAMES:
            raise ConfigurationError(
                f"{split}[{index}] spans {span:,} µs: duration={duration} gives {t_frames} frames "
                f"(at most {MAX_PREVIEW_FRAMES}); pass a longer duration"
            )
        setting = f"duration {_fmt_us(duration)} per frame"
    elif frames_number > MAX_PREVIEW_FRAMES:
        raise ConfigurationError(f"frames_number={frames_number}: at most {MAX_PREVIEW_FRAMES} frames in a preview")
    else:
        setting = f"{frames_number} frames split by {split_by}"
    if len(sensor) == 1:
        frames = integrate_1d(ev, w, frames_number, split_by, duration)
    elif duration is not None:
        frames = _frames.integrate_events_by_fixed_duration(ev, duration, h, w)
    else:
        frames = _frames.integrate_events_by_fixed_frames_number(ev, split_by, frames_number, h, w)
    classes = ss.index["classes"]
    label = int(meta["label"])
    cls = meta.get("class") or (classes[label] if 0 <= label < len(classes) else "?")
    pos = index if index >= 0 else index + int(ss.index["splits"][split]["samples"])
    title = f"{ss.index['dataset']} {split}[{pos}]  {key}\nlabel {label} ({cls}), {n:,} events, {setting}"
    path = save_raster(frames, out_path, title=title) if len(sensor) == 1 else save_picture(frames, out_path,
                                                                                             title=title, fps=fps)
    log.debug("wrote %s (%s)", path, title.replace("\n", ", "))
    return {
        "path": path,
        "split": split,
        "index": pos,
        "key": key,
        "label": label,
        "class": cls,
        "events": n,
        "frames": int(frames.shape[0]),
        "setting": setting,
    }
