"""``shardgen`` command line: convert, list, info, verify, download, demo."""

from __future__ import annotations

import gc
import os

# The imports below (numpy and the rest) make many objects; the cyclic collector's passes over them cost every
# start a few tens of milliseconds, so it is off until they are done.
_GC_WAS_ENABLED = gc.isenabled()
gc.disable()

# The conversion's parallelism is its worker processes. numpy's OpenBLAS would otherwise start a thread per core
# in the main process and in every forked worker, whose spinning took 5 % of a conversion's CPU on two cores.
# Set before numpy is imported (by the imports below); a caller's own setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from pathlib import Path  # noqa: E402

from shardgen.datasets import DATASETS, get_dataset  # noqa: E402
from shardgen.writer import DEFAULT_SHARD_SIZE  # noqa: E402

if _GC_WAS_ENABLED:
    gc.enable()


def _size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = units.get(text[-1:], 1)
    return int(float(text[:-1] if text[-1:] in units else text) * mult)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="shardgen", description="Neuromorphic datasets → streamable zstd tar shards.")
    ap.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                    help="log lines on stderr (progress lines when stderr is not a terminal are INFO)")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="convert a raw download into a shard set")
    c.add_argument("dataset", choices=sorted(DATASETS))
    c.add_argument("--raw", required=True, help="folder with the files as the dataset's authors distribute them")
    c.add_argument("--out", required=True, help="output folder or URL (file://, s3://, …)")
    c.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    c.add_argument("--shard-size", type=_size, default=DEFAULT_SHARD_SIZE, help="target bytes per shard (e.g. 32M)")
    c.add_argument("--level", type=int, default=None, help="zstd level of the sample frames")
    c.add_argument("--no-md5", action="store_true", help="do not check the published md5 sums (warns)")
    c.add_argument("--allow-truncated", action="store_true", help="keep the events before damage in truncated files")
    c.add_argument("--quiet", action="store_true", help="no progress bar")
    c.add_argument("--num-jobs", type=int, default=None,
                   help="spread the conversion over J jobs, then shardgen merge (default: the SLURM array's "
                        "SLURM_ARRAY_TASK_COUNT, Kubernetes' JOB_COMPLETIONS, else 1)")
    c.add_argument("--job-index", type=int, default=None,
                   help="which of the J jobs this is, 0 … J-1 (default: SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN, "
                        "Kubernetes' JOB_COMPLETION_INDEX)")
    c.add_argument("--json", action="store_true", help="print the summary as JSON")
    c.add_argument("--sample-order", choices=["shuffled", "dataset"], default="shuffled",
                   help="store each split in a seeded permutation (default; recorded in index.json) or as listed")
    c.add_argument("--order-seed", type=int, default=0, help="seed of that permutation")
    c.add_argument("--split-rule", choices=["ratio", "ordered", "first-k", "official"], default=None,
                   help="how to split a dataset that has no official split (default: the dataset's own)")
    c.add_argument("--train-ratio", type=float, default=None, help="share of each class in train (ratio, ordered)")
    c.add_argument("--split-seed", type=int, default=None, help="seed of the ratio rule's per-class permutation")
    c.add_argument("--test-per-class", type=int, default=None, help="files per class in test (first-k)")
    c.add_argument("--labels", default=None, help="folder: CSV 'file,label[,start_us,end_us[,split]]' (windows)")
    c.add_argument("--window-us", type=int, default=None, help="folder: fixed windows of W µs per recording")
    c.add_argument("--stride-us", type=int, default=None, help="folder: start of one window to the next (default W)")
    c.add_argument("--sensor", type=_sensor, default=None, help="folder: sensor size HxW when headers lack it")
    c.add_argument("--format", default=None, help="folder: raw format when it cannot be detected (e.g. evt2)")
    sub.add_parser("list", help="list the datasets: sensor size, classes, downloadable, split rule")
    m = sub.add_parser("merge", help="write OUT/index.json from the parts of a --num-jobs conversion")
    m.add_argument("out")
    i = sub.add_parser("info", help="describe a shard set: classes, events and duration per sample, bytes")
    i.add_argument("out")
    i.add_argument("--plot", default=None, help="also draw the class histogram and events per sample to this PNG")
    i.add_argument("--no-scan", action="store_true", help="index only: no pass over the samples")
    i.add_argument("--quiet", action="store_true", help="no progress bar")
    pv = sub.add_parser("preview", help="picture of one sample's frames (GIF or PNG by the suffix of --out)")
    pv.add_argument("out_set", metavar="OUT")
    pv.add_argument("--split", default="train")
    pv.add_argument("--index", type=int, default=0)
    pv.add_argument("--frames-number", type=int, default=None)
    pv.add_argument("--split-by", choices=["number", "time"], default=None)
    pv.add_argument("--duration", type=int, default=None, help="µs per frame (variable number of frames)")
    pv.add_argument("--out", required=True, help="sample.gif or sample.png")
    v = sub.add_parser("verify", help="check sizes, sha256 and decode every sample of a shard set")
    v.add_argument("out")
    v.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    dm = sub.add_parser("demo", help="generated DVS128 Gesture download -> shards -> frames, preview, training (torch)")
    dm.add_argument("out", nargs="?", default="demo_out", help="folder for the demo's files (emptied first)")
    d = sub.add_parser("download", help="fetch a dataset's raw files (or say where to get them)")
    d.add_argument("dataset", choices=sorted(DATASETS))
    d.add_argument("--raw", required=True, help="folder to put the files in (created when something is fetched)")
    d.add_argument("--mirror", default=None, help="fetch every file from MIRROR/<file> instead (http(s), s3, folder)")
    d.add_argument("--no-md5", action="store_true", help="do not check the published md5 sums")
    d.add_argument("--quiet", action="store_true", help="no progress bar or log lines")
    return ap


def _print_summary(s: dict, out: str) -> None:
    print(f"shard set      {out}")
    print(f"recordings     {s['recordings']}")
    for split, n in s["samples"].items():
        per = ", ".join(f"{k}={v}" for k, v in s["samples_per_class"][split].items())
        print(f"samples {split:<6} {n}  ({per})")
    print(f"empty windows  {s['empty_windows']}")
    print(f"events         {s['events']:,} in samples ({s['events_read']:,} read)")
    print(f"shard bytes    {s['shard_bytes']:,}  ({s['bytes_per_event']} bytes/event)")
    print(f"time           {s['seconds']:.2f} s  ({s['events_per_second']:,} events/s)")
    if s["truncated_recordings"]:
        print(f"truncated      {s['truncated_recordings']} recordings, {s['truncated_bytes']} bytes dropped")
    for item in s["skipped"]:
        print(f"skipped        {item}")
    for w in s["warnings"]:
        print(f"warning        {w}")


def _sensor(text: str) -> tuple[int, int]:
    """``--sensor HxW`` through the folder dataset's own parser, as an argparse type."""
    from shardgen.datasets.base import DatasetError
    from shardgen.datasets.folder import parse_sensor

    try:
        return parse_sensor(text)
    except DatasetError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _folder_options(args: argparse.Namespace) -> dict | None:
    """The ``folder`` dataset's options (``None`` when none was given)."""
    opts = {"labels": args.labels, "window_us": args.window_us, "stride_us": args.stride_us, "sensor": args.sensor,
            "format": args.format}
    return {k: v for k, v in opts.items() if v is not None} or None


def _split_options(args: argparse.Namespace) -> dict | None:
    """The ``--split-*`` options as ``convert(split=…)`` takes them (``None`` when none was given)."""
    opts = {"rule": args.split_rule, "train_ratio": args.train_ratio, "seed": args.split_seed,
            "test_per_class": args.test_per_class}
    return {k: v for k, v in opts.items() if v is not None} or None


def _list_table() -> str:
    """One line per dataset: id, sensor, classes, downloadable, split rule, reader."""
    rows = [("id", "sensor HxW", "classes", "download", "split", "raw format")]
    for ds in sorted(DATASETS):
        spec = get_dataset(ds).SPEC
        rows.append((
            spec.id,
            "x".join(map(str, spec.sensor_size)) if all(spec.sensor_size) else "per run",  # "700": 1-D (SHD)
            str(len(spec.classes)) if spec.classes else "yours",
            "automatic" if spec.downloadable else ("by hand" if spec.resources else "-"),
            spec.split_rule.split(":")[0],
            spec.reader.split(" (")[0],
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``shardgen`` console script; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="shardgen: %(message)s", stream=sys.stderr)
    try:
        if args.cmd == "list":
            print(_list_table())
            return 0
        if args.cmd == "convert":
            from loader.format import DEFAULT_ZSTD_LEVEL
            from shardgen.convert import convert
            from shardgen.scheduler import resolve_jobs

            num_jobs, job_index = resolve_jobs(args.num_jobs, args.job_index)

            if args.no_md5:
                print("shardgen: warning: md5 sums not checked (--no-md5)", file=sys.stderr)
            s = convert(
                args.dataset,
                args.raw,
                args.out,
                workers=args.workers,
                shard_size=args.shard_size,
                allow_truncated=args.allow_truncated,
                check_md5=not args.no_md5,
                level=DEFAULT_ZSTD_LEVEL if args.level is None else args.level,
                progress=not args.quiet,
                num_jobs=num_jobs,
                job_index=job_index,
                split=_split_options(args),
                options=_folder_options(args),
                sample_order=args.sample_order,
                order_seed=args.order_seed,
            )
            gc.freeze()  # the process ends here: spare it the collector's pass over every object at exit (~30 ms)
            for w in s["warnings"]:
                print(f"shardgen: warning: {w}", file=sys.stderr)
            if args.json:
                print(json.dumps(s, indent=1))
            else:
                _print_summary(s, args.out)
            return 0
        if args.cmd == "merge":
            from shardgen.jobs import merge

            ix = merge(args.out)
            n = ix["source"]["jobs"]
            for split, info in ix["splits"].items():
                print(f"{split:<12} {info['samples']} samples, {len(info['shards'])} shards from {n} jobs")
            for i, job in enumerate(ix["source"].get("job_inputs", [])):
                if job:
                    print(f"job {i:<4}     {job['input_files']} input files, {job['input_bytes']:,} bytes")
            print(f"wrote {args.out.rstrip('/')}/index.json")
            return 0
        if args.cmd == "info":
            from shardgen.inspect import collect_info, format_info, plot_info
            from shardgen.progress import Progress

            bar = Progress("samples scanned", None, unit="samples", enabled=not args.quiet and not args.no_scan)

            def tick(done: int, total: int) -> None:
                bar.set_total(total)
                bar.update(done - bar.n)

            try:
                info = collect_info(args.out, scan=not args.no_scan, progress=tick)
            finally:
                bar.close()
            print(format_info(info))
            if args.plot:
                plot_info(args.out, args.plot, info=info)
                print(f"wrote {args.plot}")
            return 0
        if args.cmd == "preview":
            from shardgen.inspect import preview

            res = preview(args.out_set, args.split, args.index, args.out, frames_number=args.frames_number,
                          split_by=args.split_by, duration=args.duration)
            print(f"wrote {res['path']}: {res['split']}[{res['index']}] {res['key']} label {res['label']} "
                  f"({res['class']}), {res['events']:,} events, {res['frames']} frames ({res['setting']})")
            return 0
        if args.cmd == "verify":
            from loader.verify import verify
            from shardgen.progress import Progress

            vbar = Progress("shards verified", None, unit="shards", enabled=not args.quiet)

            def vtick(done: int, total: int) -> None:
                vbar.set_total(total)
                vbar.update(done - vbar.n)

            try:
                rep = verify(args.out, progress=vtick)
            finally:
                vbar.close()
            for p in rep["problems"]:
                print(f"shardgen: {p}", file=sys.stderr)
            print(f"{'OK' if rep['ok'] else 'FAILED'}: {rep['samples']} samples, {rep['events']:,} events checked")
            return 0 if rep["ok"] else 1
        if args.cmd == "demo":
            from shardgen.demo import main as demo

            return demo(args.out)
        if args.cmd == "download":
            from shardgen.download import fetch_resources, format_report

            spec = get_dataset(args.dataset).SPEC
            rep = fetch_resources(spec.resources, args.raw, mirror=args.mirror, progress=not args.quiet,
                                  check_md5=not args.no_md5, log=(lambda _m: None) if args.quiet else None)
            print(format_report(rep))
            if not rep.complete:
                print(spec.where.format(raw=Path(args.raw).resolve()))
                return 2
            return 0
    except (ValueError, OSError, IndexError, ImportError) as exc:
        if args.debug:
            raise
        print(f"shardgen: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("shardgen: interrupted; no index.json was written", file=sys.stderr)
        return 130
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
