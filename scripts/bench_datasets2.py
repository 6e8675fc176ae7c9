"""``bench_shardgen.py --dataset <id>`` for the second-wave 2-D datasets (N-CARS, NAVGesture, DVS-Lip, HARDVS,
ES-ImageNet, Bullying10K): ``shardgen convert`` against SpikingJelly 2.0.0 on the same generated download.

SpikingJelly's side is its own class, ``resource_url_md5`` overridden, constructed (extract + its
conversion to ``events_np``) **and read once** (``ds[i]`` for every sample, event mode): for DVS-Lip,
HARDVS and ES-ImageNet the construction only extracts and links files and the decoding happens on
access, so the read is where its events are parsed. ES-ImageNet's RAR extraction is replaced by the
extracted folder (nothing can write RAR here): SpikingJelly runs ``create_raw_from_extracted`` on it.
N-CARS has no SpikingJelly class: its reference is expelliarmus 1.1.12 reading every extracted ``.dat``
file (reading only, no writing). Prints wall time, events/s, samples/s of both and the ratio.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DATASETS2 = ("n-cars", "nav-gesture-walk", "nav-gesture-sit", "dvs-lip", "hardvs", "es-imagenet", "bullying10k")

SJ_RUNNER = """
import sys, json, time, shutil
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.sjcompat import import_spikingjelly_datasets
import_spikingjelly_datasets()
from tests.sj2compat import sj_class
dataset, root = {dataset!r}, Path({sjroot!r})
md5 = json.loads((root / "md5.json").read_text())
t0 = time.perf_counter()
if dataset == "n-cars":
    import zipfile, expelliarmus
    x = root / "extract"
    with zipfile.ZipFile(root / "download" / "Prophesee_Dataset_n_cars.zip") as zf:
        zf.extractall(x)
    for inner in x.glob("*.zip"):
        with zipfile.ZipFile(inner) as zf:
            zf.extractall(x)
    wiz = expelliarmus.Wizard(encoding="dat")
    n = events = 0
    for f in sorted(x.rglob("*.dat")):
        e = wiz.read(str(f)); events += 0 if e is None else len(e); n += 1
    print(json.dumps([n, events, time.perf_counter() - t0])); sys.exit()
if dataset.startswith("nav-gesture"):
    from spikingjelly.datasets.nav_gesture import NAVGestureSit, NAVGestureWalk
    over = {{"extract_downloaded_files": NAVGestureSit.__dict__["extract_downloaded_files"]}} \\
        if dataset.endswith("sit") else {{}}
    sets = [sj_class(NAVGestureWalk, md5, **over)(str(root), data_type="event")]
elif dataset == "dvs-lip":
    from spikingjelly.datasets.dvs_lip import DVSLip
    sets = [sj_class(DVSLip, md5)(str(root), train=f, data_type="event") for f in (True, False)]
elif dataset == "hardvs":
    from spikingjelly.datasets.hardvs import HARDVS
    sets = [sj_class(HARDVS, md5)(str(root), s, data_type="event") for s in ("train", "val", "test")]
elif dataset == "es-imagenet":
    from spikingjelly.datasets.es_imagenet import ESImageNet
    (root / "events_np").mkdir()
    ESImageNet.create_raw_from_extracted(root / "download", root / "events_np")
    sets = [ESImageNet(str(root), train=f, data_type="event") for f in (True, False)]
else:
    from spikingjelly.datasets.bullying10k import Bullying10kClassification
    sets = [sj_class(Bullying10kClassification, md5)(str(root), train=f, data_type="event") for f in (True, False)]
n = events = 0
for ds in sets:
    for i in range(len(ds)):
        ev, _ = ds[i]
        events += len(ev["t"]); n += 1
print(json.dumps([n, events, time.perf_counter() - t0]))
"""


def generate(dataset: str, raw: Path, scale: float) -> tuple[dict[str, str], int]:
    """Write a generated download of ``dataset`` into ``raw``; its md5 map and the number of samples."""
    from tests import gen_datasets2 as g

    k = max(1, int(scale))
    if dataset == "n-cars":
        gen = g.write_ncars(raw, per_class=300 * k, max_events=8000)
    elif dataset.startswith("nav-gesture"):
        gen = g.write_navgesture(raw, dataset.rsplit("-", 1)[1], users=4, per_gesture=6 * k, max_events=60_000)
    elif dataset == "dvs-lip":
        gen = g.write_dvslip(raw, words=tuple(f"w{i:03d}" for i in range(20)), per_word=10 * k, max_events=40_000)
    elif dataset == "hardvs":
        gen = g.write_hardvs(raw, classes=300, per_split=k, max_events=30_000)
    elif dataset == "es-imagenet":
        gen = g.write_esimagenet(raw, classes=1000, per_class=k, val=1000 * k, max_events=6000)
    else:
        gen = g.write_bullying10k(raw, g.BULLYING_CATEGORIES, sessions=2, per_session=10 * k, max_events=30_000,
                                  repeat_names=False)
    return gen.md5, len(gen.samples)


def run(dataset: str, workers: int | None, scale: float, peak_of, work: Path) -> None:
    """Generate, convert with shardgen, run the reference, print one table."""
    sjroot, out = work / "sj", work / "shards"
    raw = sjroot / "download"
    t0 = time.perf_counter()
    md5, n_samples = generate(dataset, raw, scale)
    print(f"{dataset}: generated {n_samples} samples in {time.perf_counter() - t0:.1f} s")
    cmd = [sys.executable, "-m", "shardgen.cli", "convert", dataset, "--raw", str(raw), "--out", str(out),
           "--no-md5", "--quiet", "--json"]
    if workers:
        cmd += ["--workers", str(workers)]
    for p in raw.rglob("*"):
        if p.is_file():
            p.read_bytes()  # warm the page cache the same way for both tools
    es_wall, es_rss, stdout = peak_of(cmd)
    summary = json.loads(stdout)
    events, samples = summary["events"], sum(summary["samples"].get(s, 0) for s in ("train", "val", "test"))
    (sjroot / "md5.json").write_text(json.dumps(md5))  # thousands of files: too long for a command line
    code = SJ_RUNNER.format(root=str(ROOT), dataset=dataset, sjroot=str(sjroot))
    sj_wall, sj_rss, sj_out = peak_of([sys.executable, "-c", code])
    n_sj, events_sj, _ = json.loads(sj_out.strip().splitlines()[-1])
    ref = "expelliarmus 1.1.12 read (no SJ class)" if dataset == "n-cars" else "SpikingJelly 2.0.0 build + read"
    print(f"{'tool':<40} {'samples':>8} {'events':>12} {'wall s':>8} {'events/s':>13} {'samples/s':>10} {'RSS MiB':>8}")
    for name, n, ev, wall, rss in (("eventshard: shardgen convert", samples, events, es_wall, es_rss),
                                   (ref, n_sj, events_sj, sj_wall, sj_rss)):
        print(f"{name:<40} {n:>8} {ev:>12,} {wall:8.2f} {ev / wall:13,.0f} {n / wall:10,.1f} {rss / 1024:8.0f}")
    print(f"speed ratio eventshard / reference: {sj_wall / es_wall * (events / max(events_sj, 1)):.1f}x (events/s)")
