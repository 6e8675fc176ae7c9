"""CIFAR10-DVS, N-MNIST, N-Caltech101 and ASL-DVS: generated downloads → shards → the same events as SpikingJelly."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets import DATASETS, get_dataset
from shardgen.datasets.base import DatasetError
from shardgen.formats.events import FormatError
from tests.gen_classfolders import (
    GeneratedDownload,
    write_asldvs,
    write_cifar10dvs,
    write_ncaltech101,
    write_nmnist,
)
from tests.gen_rawfiles import atis_bin_bytes

ROOT = Path(__file__).resolve().parents[1]

GENERATORS = {
    "n-mnist": write_nmnist,
    "n-caltech101": write_ncaltech101,
    "cifar10-dvs": write_cifar10dvs,
    "asl-dvs": write_asldvs,
}
SPLITS = {  # small generated sets need small rules to have both splits
    "n-mnist": None,
    "n-caltech101": {"train_ratio": 0.5, "seed": 7},
    "cifar10-dvs": {"test_per_class": 2},
    "asl-dvs": {"train_ratio": 0.75},
}


def expected_events(dataset: str, raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The dataset's coordinate convention applied to the generated raw events (from DESIGN §3 / the issue)."""
    t, x, y, p = (np.asarray(raw[c]).astype(np.int64) for c in "txyp")
    if dataset == "cifar10-dvs":
        return {"t": t, "x": 127 - y, "y": 127 - x, "p": 1 - p}
    if dataset == "asl-dvs":
        return {"t": t, "x": 239 - x, "y": 179 - y, "p": p}
    keep = y != 240  # N-MNIST / N-Caltech101: the authors' overflow-marker rule
    t = t + 8192 * np.cumsum(~keep)
    return {"t": t[keep], "x": x[keep], "y": y[keep], "p": p[keep]}


def read_split(out: Path, split: str) -> list[tuple[str, dict[str, np.ndarray], int]]:
    """``(key, events, label)`` of every sample of ``split`` in the dataset's order (the index's permutation
    undone), through the loader."""
    from loader import EventShardDataset

    ds = EventShardDataset(out, split=split, data_type="event", shuffle=False, return_key=True)
    return [(key, ev, int(label)) for ev, label, key in map(ds.read_canonical, range(ds.split_samples))]


def assert_same_events(got: dict[str, np.ndarray], want: dict[str, np.ndarray], key: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{key}: column {c}")


@pytest.fixture(scope="module", params=sorted(GENERATORS))
def converted(request, tmp_path_factory):
    """(dataset id, generated download, shard set folder, summary) for each of the four datasets."""
    dataset = request.param
    base = tmp_path_factory.mktemp(dataset)
    gen = GENERATORS[dataset](base / "raw")
    summary = convert(dataset, gen.root, base / "out", workers=2, check_md5=False, progress=False,
                      split=SPLITS[dataset], shard_size=4096)
    return dataset, gen, base / "out", summary


def test_every_sample_with_its_events_label_and_split(converted):
    dataset, gen, out, summary = converted
    index = json.loads((out / "index.json").read_text())
    classes = sorted({s.cls for s in gen.samples.values()})
    assert index["classes"] == classes
    assert index["dataset"] == dataset
    assert index["sensor_size"] == list(get_dataset(dataset).SPEC.sensor_size)
    by_key = {key: s for (_, key), s in gen.samples.items()} if dataset != "n-mnist" else None
    seen = {}
    for split in ("train", "test"):
        rows = read_split(out, split)
        keys = [k for k, _, _ in rows]
        assert len(keys) == len(set(keys)) == index["splits"][split]["samples"]
        # shard order = class label, then file name (SpikingJelly's DatasetFolder order)
        assert keys == sorted(keys, key=lambda k: (classes.index(k.split("/")[0]), k.split("/")[1]))
        for key, ev, label in rows:
            sample = gen.samples[(split, key)] if by_key is None else by_key[key]
            assert label == classes.index(sample.cls)
            assert_same_events(ev, expected_events(dataset, sample.events), key)
            seen[key if by_key is not None else (split, key)] = split
    assert len(seen) == len(gen.samples)
    assert summary["samples"]["train"] > 0 and summary["samples"]["test"] > 0
    assert summary["empty_windows"] >= 1  # the empty file is kept as an empty sample


def test_split_rule_is_followed_and_recorded(converted):
    dataset, gen, out, _ = converted
    index = json.loads((out / "index.json").read_text())
    split_of = {}
    for split in ("train", "test"):
        for key, _, _ in read_split(out, split):
            split_of[key if dataset != "n-mnist" else (split, key)] = split
    if dataset == "n-mnist":
        assert index["split_rule"] == {"rule": "official"}
        assert all(split_of[(s.split, key)] == s.split for (_, key), s in gen.samples.items())
        assert "all" not in index["splits"]
        return
    by_class: dict[str, list[str]] = {}
    for (_, key), s in gen.samples.items():
        by_class.setdefault(s.cls, []).append(key)
    for cls, keys in by_class.items():
        train = [k for k in keys if split_of[k] == "train"]
        if dataset == "cifar10-dvs":
            assert index["split_rule"]["rule"] == "first-k"
            assert sorted(k for k in keys if split_of[k] == "test") == sorted(
                k for k in keys if int(k.rsplit("_", 1)[1]) < 2), cls
        else:
            assert index["split_rule"]["rule"] == "ratio"
            assert len(train) == math.ceil(index["split_rule"]["train_ratio"] * len(keys)), cls
    # 'all' lists the same shards as train + test: every sample once, no bytes copied
    all_split = index["splits"]["all"]
    assert all_split["view_of"] == ["train", "test"]
    assert [s["file"] for s in all_split["shards"]] == [
        s["file"] for part in ("train", "test") for s in index["splits"][part]["shards"]]
    assert sorted(k for k, _, _ in read_split(out, "all")) == sorted(split_of)


# ------------------------------------------------------------------------------------------ SpikingJelly


def _sj_class(dataset: str, gen: GeneratedDownload):
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.asl_dvs import ASLDVS
    from spikingjelly.datasets.cifar10_dvs import CIFAR10DVS
    from spikingjelly.datasets.n_caltech101 import NCaltech101
    from spikingjelly.datasets.n_mnist import NMNIST

    base = {"n-mnist": NMNIST, "n-caltech101": NCaltech101, "cifar10-dvs": CIFAR10DVS, "asl-dvs": ASLDVS}[dataset]
    md5 = dict(gen.md5)

    class Generated(base):
        """Only the published md5 sums differ: the generated files have their own."""

        @classmethod
        def resource_url_md5(cls) -> list:
            return [(name, "generated://", digest) for name, digest in md5.items()]

    return Generated


@pytest.fixture(scope="module")
def spikingjelly(converted, tmp_path_factory):
    """split → {key: (events, label)} from SpikingJelly 2.0.0's own dataset class on the same download."""
    pytest.importorskip("spikingjelly")
    dataset, gen, _, _ = converted
    root = tmp_path_factory.mktemp(f"sj-{dataset}")
    shutil.copytree(gen.root, root / "download")
    cls = _sj_class(dataset, gen)
    result = {}
    for train in ((True, False) if dataset == "n-mnist" else (None,)):
        ds = cls(str(root), train=train, data_type="event") if train is not None else cls(str(root), data_type="event")
        base = Path(ds.root)
        samples = {}
        for i, (path, label) in enumerate(ds.samples):
            key = Path(path).relative_to(base).with_suffix("").as_posix()
            ev, lab = ds[i]
            assert lab == label
            samples[key] = ({c: ev[c] for c in "txyp"}, int(label))
        result["all" if train is None else ("train" if train else "test")] = samples
    return result


def test_parity_with_spikingjelly(converted, spikingjelly):
    """Every sample's events and label equal SpikingJelly's dataset class on the same files."""
    dataset, _, out, _ = converted
    for split, sj in spikingjelly.items():
        ours = read_split(out, split)
        assert len(ours) == len(sj)
        for key, ev, label in ours:
            sj_ev, sj_label = sj[key]
            assert label == sj_label, key
            assert_same_events(ev, sj_ev, key)


# ------------------------------------------------------------------------------------------ inputs


def test_extracted_folder_gives_the_same_shards(tmp_path):
    gen = write_nmnist(tmp_path / "raw", per_class=2)
    extracted = tmp_path / "extracted"
    for name in ("Train.zip", "Test.zip"):
        with zipfile.ZipFile(gen.root / name) as zf:
            zf.extractall(extracted)
    a = convert("n-mnist", gen.root, tmp_path / "a", workers=1, check_md5=False, progress=False)
    b = convert("n-mnist", extracted, tmp_path / "b", workers=2, check_md5=False, progress=False)
    assert a["samples"] == b["samples"]
    for shard in sorted((tmp_path / "a").glob("*.tar.zst")):
        assert shard.read_bytes() == (tmp_path / "b" / shard.name).read_bytes()


def test_md5_mismatch_is_an_error_and_writes_no_index(tmp_path):
    gen = write_nmnist(tmp_path / "raw", per_class=1)
    with pytest.raises(DatasetError, match=r"T(rain|est)\.zip: md5 [0-9a-f]{32} differs from the published"):
        convert("n-mnist", gen.root, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out" / "index.json").exists()


def test_asl_dvs_nested_zips_without_published_md5(tmp_path, monkeypatch):
    gen = write_asldvs(tmp_path / "raw", per_class=2)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    s = convert("asl-dvs", gen.root, tmp_path / "out", workers=1, progress=False)  # md5 checked: none to check
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert {"file": "ICCV2019_DVS_dataset.zip", "md5": "none published"} in index["source"]["files"]
    assert sum(s["samples"][k] for k in ("train", "test")) == len(gen.samples)
    assert list(scratch.iterdir()) == []  # the private copies of the inner zips are gone


def test_overflow_markers_follow_the_authors_rule(tmp_path):
    gen = write_nmnist(tmp_path / "raw", per_class=3, markers=3)
    s = convert("n-mnist", gen.root, tmp_path / "out", workers=1, check_md5=False, progress=False)
    assert s["skipped_words"] == {"overflow_markers": 3}
    marked = next(smp for smp in gen.samples.values() if (smp.events["y"] == 240).any())
    got = dict((k, ev) for k, ev, _ in read_split(tmp_path / "out", "train"))[f"{marked.cls}/{marked.stem}"]
    assert_same_events(got, expected_events("n-mnist", marked.events), marked.stem)
    assert (np.diff(got["t"]) >= 0).all()


def test_damaged_member_names_archive_member_and_offset(tmp_path):
    gen = write_nmnist(tmp_path / "raw", per_class=2)
    data = atis_bin_bytes([1, 2], [3, 4], [0, 1], [10, 20]) + b"\x01\x02"
    with zipfile.ZipFile(gen.root / "Test.zip", "a") as zf:
        zf.writestr("Test/3/99999.bin", data)
    with pytest.raises(FormatError, match=r"Test\.zip:Test/3/99999\.bin: byte 10"):
        convert("n-mnist", gen.root, tmp_path / "out", workers=2, check_md5=False, progress=False)
    assert not (tmp_path / "out" / "index.json").exists()
    s = convert("n-mnist", gen.root, tmp_path / "out", workers=2, check_md5=False, progress=False,
                allow_truncated=True)
    assert s["truncated_bytes"] == 2 and s["truncated_recordings"] == 1
    assert any("99999.bin: truncated" in w for w in s["warnings"])


def test_coordinates_outside_the_sensor_are_an_error(tmp_path):
    gen = write_nmnist(tmp_path / "raw", per_class=2)
    with zipfile.ZipFile(gen.root / "Train.zip", "a") as zf:
        zf.writestr("Train/0/77777.bin", atis_bin_bytes([1, 40], [3, 4], [0, 1], [10, 20]))
    with pytest.raises(DatasetError, match=r"Train\.zip:Train/0/77777\.bin: event 1 at x=40, y=4 lies outside"):
        convert("n-mnist", gen.root, tmp_path / "out", workers=1, check_md5=False, progress=False)


def test_unsafe_members_are_skipped_and_reported(tmp_path):
    gen = write_ncaltech101(tmp_path / "raw", per_class=2)
    with zipfile.ZipFile(gen.root / "Caltech101.zip", "a") as zf:
        zf.writestr("../escape/image_0001.bin", atis_bin_bytes([1], [1], [1], [1]))
        zf.writestr("/abs/image_0002.bin", atis_bin_bytes([1], [1], [1], [1]))
        link = zipfile.ZipInfo("Caltech101/accordion/image_0099.bin")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "../../etc/passwd")
        zf.writestr("stray.bin", atis_bin_bytes([1], [1], [1], [1]))
    s = convert("n-caltech101", gen.root, tmp_path / "out", workers=1, check_md5=False, progress=False)
    assert sum(s["samples"][k] for k in ("train", "test")) == len(gen.samples)
    skipped = "\n".join(s["skipped"])
    assert "'../escape/image_0001.bin': points outside" in skipped
    assert "'/abs/image_0002.bin': points outside" in skipped
    assert "image_0099.bin': a symbolic link" in skipped
    assert "'stray.bin': not inside a class folder" in skipped


def test_missing_download_says_where_to_get_it(tmp_path):
    (tmp_path / "raw").mkdir()
    for dataset in ("n-mnist", "cifar10-dvs", "n-caltech101", "asl-dvs"):
        with pytest.raises(DatasetError) as err:
            convert(dataset, tmp_path / "raw", tmp_path / "out", workers=1, progress=False)
        assert str(tmp_path / "raw") in str(err.value)
        assert "http" in str(err.value)


def test_split_options(tmp_path):
    gen = write_ncaltech101(tmp_path / "raw", per_class=10)
    runs = {}
    for name, split in {"a": {"seed": 1}, "b": {"seed": 1}, "c": {"seed": 2}, "o": {"rule": "ordered"}}.items():
        convert("n-caltech101", gen.root, tmp_path / name, workers=1, check_md5=False, progress=False,
                split={"train_ratio": 0.6, **split})
        runs[name] = [k for k, _, _ in read_split(tmp_path / name, "test")]
    assert runs["a"] == runs["b"] and runs["a"] != runs["c"]
    assert all(len([k for k in r if k.startswith(c + "/")]) == 4 for r in runs.values() for c in ("accordion",))
    assert [k for k in runs["o"] if k.startswith("accordion/")] == [f"accordion/image_{i:04d}" for i in range(7, 11)]
    with pytest.raises(DatasetError, match="no official split"):
        convert("n-caltech101", gen.root, tmp_path / "x", workers=1, check_md5=False, progress=False,
                split={"rule": "official"})
    with pytest.raises(DatasetError, match="official split"):
        convert("dvs128-gesture", gen.root, tmp_path / "x", workers=1, progress=False, split={"seed": 3})


def test_cli_convert_list_and_info(tmp_path):
    gen = write_cifar10dvs(tmp_path / "raw", per_class=3)
    cmd = [sys.executable, "-m", "shardgen.cli"]
    r = subprocess.run(cmd + ["list"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0
    for dataset in DATASETS:
        assert dataset in r.stdout
    assert "34x34" in r.stdout and "automatic" in r.stdout and "by hand" in r.stdout
    r = subprocess.run(cmd + ["convert", "cifar10-dvs", "--raw", str(gen.root), "--out", str(tmp_path / "out"),
                              "--no-md5", "--quiet", "--split-rule", "ratio", "--train-ratio", "0.5"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["split_rule"] == {"rule": "ratio", "train_ratio": 0.5, "seed": 0}
    assert index["splits"]["train"]["samples"] == 6 and index["splits"]["test"]["samples"] == 3
    r = subprocess.run(cmd + ["convert", "n-mnist", "--raw", str(tmp_path / "nothing"), "--out",
                              str(tmp_path / "o2"), "--quiet"], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "nothing" in r.stderr


# ------------------------------------------------------------------------------------------ real files


def test_nmnist_shard_set_from_real_bs2_files_streams_frames(tmp_path):
    """The real N-MNIST samples of SLAYER's NMNISTsmall (labels from its lists) → extracted layout → frames."""
    from loader import EventShardDataset
    from tests.realdata import REALDATA, real_file

    folder = "nmnist_slayer_small"
    lists = {"train": real_file(folder, "train1K.txt"), "test": real_file(folder, "test100.txt")}
    raw = tmp_path / "raw"
    expected = {}
    for split, listing in lists.items():
        for line in listing.read_text().splitlines():
            if not line.strip() or line.startswith("#"):
                continue
            sample, label = line.split()
            src = REALDATA / folder / f"{sample}.bs2"
            if not src.is_file():
                continue  # the lists name more samples than the folder holds
            dest = raw / split.title() / label / f"{int(sample):05d}.bin"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
            expected[(split, f"{label}/{int(sample):05d}")] = (int(label), src)
    assert len(expected) >= 30
    summary = convert("n-mnist", raw, tmp_path / "out", workers=2, progress=False)
    assert sum(summary["samples"].values()) == len(expected)
    classes = json.loads((tmp_path / "out" / "index.json").read_text())["classes"]
    from tonic.io import read_mnist_file

    for split in ("train", "test"):
        frames = EventShardDataset(tmp_path / "out", split=split, data_type="frame", frames_number=8,
                                   split_by="number", shuffle=False, return_key=True)
        events = EventShardDataset(tmp_path / "out", split=split, data_type="event", shuffle=False)
        for (x, label, key), (ev, _) in zip(frames, events, strict=True):
            true_label, src = expected[(split, key)]
            assert classes[label] == str(true_label)
            assert x.shape == (8, 2, 34, 34) and x.dtype == np.float32
            assert float(x.sum()) == len(ev["t"]) > 1000  # every event lands in one frame
            ref = read_mnist_file(str(src), dtype=np.dtype([("x", int), ("y", int), ("t", int), ("p", int)]))
            assert_same_events(ev, {c: ref[c] for c in "txyp"}, key)


def test_cli_download_from_a_mirror_resumes_and_checks_md5(tmp_path):
    """shardgen download --mirror: published md5 rejects generated files; --no-md5 fetches, resumes, converts."""
    from tests.servers import FlakyHTTPServer

    gen = write_nmnist(tmp_path / "served", per_class=40, max_events=2000)
    cmd = [sys.executable, "-m", "shardgen.cli", "download", "n-mnist", "--quiet"]
    with FlakyHTTPServer(gen.root) as server:
        raw = tmp_path / "raw"
        r = subprocess.run(cmd + ["--raw", str(raw), "--mirror", server.url()], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
        assert r.returncode == 1, r.stderr
        assert "md5" in r.stderr and "differs" in r.stderr and ".zip" in r.stderr
        assert not any(raw.glob("*.zip")) and not any(raw.glob("*.part"))  # nothing corrupt is left behind
        server.cut_next(50_000)  # the first body stops after 50 kB: the download must resume
        r = subprocess.run(cmd + ["--raw", str(raw), "--mirror", server.url(), "--no-md5"], capture_output=True,
                           text=True, cwd=ROOT, timeout=120)
        assert r.returncode == 0, r.stderr
        ranges = [h for name in ("Train.zip", "Test.zip") for h in server.gets(name)]
        assert any(h and h.startswith("bytes=") and not h.startswith("bytes=0-") for h in ranges), ranges
    for name in ("Train.zip", "Test.zip"):
        assert (raw / name).read_bytes() == (gen.root / name).read_bytes()
    s = convert("n-mnist", raw, tmp_path / "out", workers=1, check_md5=False, progress=False)
    assert sum(s["samples"].values()) == len(gen.samples)


def test_member_larger_than_a_sample_file_may_be_is_refused(tmp_path, monkeypatch):
    """A zip member claiming more than MAX_SAMPLE_FILE_BYTES (a zip bomb) is refused when listing, before reading."""
    from shardgen.datasets import classfolder

    gen = write_nmnist(tmp_path / "raw", per_class=2)
    biggest = max(len(s.events["t"]) for s in gen.samples.values()) * 5
    monkeypatch.setattr(classfolder, "MAX_SAMPLE_FILE_BYTES", biggest - 1)
    with pytest.raises(DatasetError, match=r"\.zip: member '.*\.bin': [0-9,]+ bytes, more than one sample file"):
        convert("n-mnist", gen.root, tmp_path / "out", workers=1, check_md5=False, progress=False)
    assert not (tmp_path / "out" / "index.json").exists()
