"""Benchmark: each raw-format reader against the reference reader of that format, on the same file.

Files are the real recordings in ``../shared/realdata`` (skipped when absent) plus a generated AEDAT 3.1
recording; each reader runs on the file from the page cache, repeatedly, and the best time counts.

    python scripts/bench_readers.py            # or: python scripts/bench_shardgen.py --readers
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

REALDATA = ROOT.parent / "shared" / "realdata"


def best_seconds(fn: Callable[[], Any], budget: float = 0.5, max_runs: int = 50) -> tuple[float, Any]:
    """Best wall time of ``fn()`` over repeated runs (at least 2, until ``budget`` seconds are spent)."""
    best, result, spent, runs = float("inf"), None, 0.0, 0
    while runs < 2 or (spent < budget and runs < max_runs):
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best, spent, runs = min(best, dt), spent + dt, runs + 1
    return best, result


def _expelliarmus(path: Path, encoding: str, tmp: Path, header: bytes = b"") -> Callable[[], Any]:
    from expelliarmus import Wizard

    dst = tmp / f"{path.stem}-{encoding}{'.dat' if encoding == 'dat' else '.raw'}"
    dst.write_bytes(header + path.read_bytes())
    wizard = Wizard(encoding=encoding)
    return lambda: wizard.read(dst)


def _event_stream(path: Path) -> Callable[[], Any]:
    import event_stream
    import numpy as np

    return lambda: np.concatenate(list(event_stream.Decoder(str(path))))


def _aedat(path: Path) -> Callable[[], Any]:
    import aedat
    import numpy as np

    return lambda: np.concatenate([p["events"] for p in aedat.Decoder(str(path)) if "events" in p])


def _dv_legacy(path: Path) -> Callable[[], Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from dv import LegacyAedatFile

    def run() -> list[tuple[int, int, int, int]]:
        with LegacyAedatFile(str(path)) as f:
            return [(e.x, e.y, int(e.polarity), e.timestamp) for e in f]

    return run


def _spikingjelly(name: str, path: Path) -> Callable[[], Any]:
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    if name == "cifar10":
        from spikingjelly.datasets.cifar10_dvs import _load_origin_data

        return lambda: _load_origin_data(str(path))
    from spikingjelly.datasets import utils

    fn = {"atis": utils.load_ATIS_bin, "aedat3": utils.load_aedat_v3}[name]
    return lambda: fn(str(path))


def _tonic_mnist(path: Path) -> Callable[[], Any]:
    import numpy as np
    from tonic.io import read_mnist_file

    dtype = np.dtype([("x", int), ("y", int), ("t", int), ("p", int)])
    return lambda: read_mnist_file(str(path), dtype=dtype)


def cases(tmp: Path) -> list[tuple[str, str, Path, dict[str, Any], str, Callable[[], Any]]]:
    """(label, our format, file, our options, reference name, reference call) for every available file."""
    from tests.gen_dvsgesture import write_gesture_download

    gen = write_gesture_download(tmp / "gesture", n_train=1, n_test=0, events_per_sample=50_000, seed=3,
                                 extracted="only")
    aedat3 = next((tmp / "gesture").rglob("*.aedat"))
    out: list[tuple[str, str, Path, dict[str, Any], str, Callable[[], Any]]] = [
        ("AEDAT 3.1 (generated gesture)", "aedat3", aedat3, {}, "SpikingJelly load_aedat_v3",
         _spikingjelly("aedat3", aedat3)),
    ]
    del gen

    def real(folder: str, name: str) -> Path | None:
        path = REALDATA / folder / name
        return path if path.is_file() else None

    spec = [
        ("aedat2_dvs128", "1-1.aedat", "AEDAT 2.0 DVS128 (CIFAR10-DVS)", "aedat2", {"layout": "dvs128"},
         "SpikingJelly CIFAR10-DVS", lambda p: _spikingjelly("cifar10", p)),
        ("aedat2_davis", "IMU_rotDisk.aedat", "AEDAT 2.0 DAVIS240C", "aedat2", {}, "dv LegacyAedatFile", _dv_legacy),
        ("aedat4", "davis.aedat4", "AEDAT 4.0", "aedat4", {}, "aedat 2.3 Decoder", _aedat),
        ("prophesee_evt2", "evt2_sample.raw", "Prophesee EVT 2.0", "evt2", {}, "expelliarmus 1.1.12",
         lambda p: _expelliarmus(p, "evt2", tmp)),
        ("prophesee_evt2_headerless", "left2.bin", "Prophesee EVT 2.0 headerless", "evt2", {},
         "expelliarmus 1.1.12 (+header)", lambda p: _expelliarmus(p, "evt2", tmp, b"% evt 2.0\n")),
        ("prophesee_evt3", "evt3_sample.raw", "Prophesee EVT 3.0", "evt3", {}, "expelliarmus 1.1.12",
         lambda p: _expelliarmus(p, "evt3", tmp)),
        ("ncars", "NCARS_obj_004397_td.dat", "Prophesee DAT (N-CARS)", "dat", {}, "expelliarmus 1.1.12",
         lambda p: _expelliarmus(p, "dat", tmp)),
        ("eventstream_es", "test.es", "Event Stream .es", "es", {}, "event_stream 1.6", _event_stream),
        ("nmnist", "sample_nmnist.bin", "ATIS .bin (N-MNIST)", "atis_bin", {}, "tonic read_mnist_file", _tonic_mnist),
        ("nmnist", "sample_nmnist.bin", "ATIS .bin (N-MNIST)", "atis_bin", {}, "SpikingJelly load_ATIS_bin",
         lambda p: _spikingjelly("atis", p)),
    ]
    for folder, name, label, fmt, opts, ref_name, make in spec:
        path = real(folder, name)
        if path is None:
            print(f"skipped {folder}/{name}: not in {REALDATA}")
            continue
        out.append((label, fmt, path, opts, ref_name, make(path)))
    return out


def run(budget: float = 0.5) -> list[tuple[str, str, int, float, str, float]]:
    """Time every case; print and return rows (label, file, events, ours events/s, reference, reference events/s)."""
    from shardgen.formats import read_events

    tmp = Path(tempfile.mkdtemp(prefix="bench-readers-"))
    rows = []
    try:
        for label, fmt, path, opts, ref_name, ref in cases(tmp):
            ours_s, ev = best_seconds(lambda fmt=fmt, path=path, opts=opts: read_events(path, format=fmt, **opts),
                                      budget)
            ref_s, _ = best_seconds(ref, budget)
            n = len(ev)
            rows.append((label, path.name, n, n / ours_s, ref_name, n / ref_s))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'format':<32} {'file':<26} {'events':>9} {'eventshard ev/s':>16}  {'reference':<31} {'ref ev/s':>12}"
          f" {'ratio':>6}")
    for label, name, n, ours, ref_name, ref in rows:
        print(f"{label:<32} {name[:26]:<26} {n:>9,} {ours:>16,.0f}  {ref_name:<31} {ref:>12,.0f} {ours / ref:>6.2f}")
    return rows


def main() -> None:
    """Parse flags and run the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget", type=float, default=0.5, help="seconds of repeated runs per reader and file")
    run(ap.parse_args().budget)


if __name__ == "__main__":
    main()
