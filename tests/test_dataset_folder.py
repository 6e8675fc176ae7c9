"""The ``folder`` dataset: your own recordings (class folders, labels CSV windows, fixed windows) → shards."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard

from loader.format import decode_sample
from shardgen.convert import convert
from shardgen.datasets import DATASETS
from shardgen.datasets.base import DatasetError
from shardgen.datasets.folder import parse_labels_csv, window_starts
from shardgen.formats import read_events
from tests.conftest import in_dataset_order, read_index_json
from tests.gen_folder import Events, random_recording, select, write_recording
from tests.realdata import REALDATA, real_files

REAL_FOLDERS = ("aedat2_dvs128", "aedat2_davis", "aedat4", "prophesee_evt2", "prophesee_evt2_headerless",
                "prophesee_evt3", "ncars", "eventstream_es")

Sample = tuple[str, dict[str, np.ndarray], dict[str, Any]]


@pytest.fixture(autouse=True)
def _registered(monkeypatch):
    """Register ``folder`` for these tests if the registry does not have it yet."""
    if "folder" not in DATASETS:
        monkeypatch.setitem(DATASETS, "folder", "shardgen.datasets.folder")


def run(raw: Path, out: Path, split: dict | None = None, workers: int = 2, **options: Any) -> dict[str, Any]:
    return convert("folder", raw, out, workers=workers, progress=False, split=split, options=options or None,
                   shard_size=1 << 14)


def read_set(out: Path) -> tuple[dict[str, Any], dict[str, list[Sample]]]:
    """``index.json`` and every sample ``(key, events, meta)`` of each real split, in the dataset's order."""
    index = read_index_json(out)
    dctx = zstandard.ZstdDecompressor()
    splits: dict[str, list[Sample]] = {}
    for split, info in index["splits"].items():
        if "view_of" in info:
            continue
        items: list[Sample] = []
        for shard in info["shards"]:
            data = (out / shard["file"]).read_bytes()
            offsets = shard["offsets"]
            for a, b in zip(offsets, offsets[1:], strict=False):
                key, ev, meta = decode_sample(data[a:b], dctx)
                assert ev is not None
                items.append((key, ev, meta))
        splits[split] = in_dataset_order(items, info)
    return index, splits


def assert_events(got: dict[str, np.ndarray], want: Events, what: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{what}: column {c}")


# --------------------------------------------------------------------------------------------- class folders


def test_class_folders_of_two_formats(tmp_path):
    rng = np.random.default_rng(1)
    raw = tmp_path / "raw"
    files = {"left/a.aedat": "aedat2", "left/sub/b.dat": "dat", "left/c.dat": "dat",
             "right/d.aedat": "aedat2", "right/e.dat": "dat", "right/my rec.aedat": "aedat2"}
    truth = {}
    for rel, fmt in files.items():
        truth[rel] = random_recording(rng, int(rng.integers(50, 400)), t0=int(rng.integers(0, 10**7)))
        write_recording(raw / rel, truth[rel], fmt)
    write_recording(raw / "top.aedat", truth["left/a.aedat"], "aedat2")
    write_recording(raw / "left" / ".hidden.aedat", truth["left/a.aedat"], "aedat2")
    (raw / "notes.txt").write_text("not a recording")
    keys = {"left/a.aedat": "left/a", "left/sub/b.dat": "left/sub/b", "left/c.dat": "left/c",
            "right/d.aedat": "right/d", "right/e.dat": "right/e", "right/my rec.aedat": "right/my_rec"}

    s = run(raw, tmp_path / "out", split={"train_ratio": 0.5, "seed": 3})
    index, splits = read_set(tmp_path / "out")
    assert index["dataset"] == "folder"
    assert index["classes"] == ["left", "right"]
    assert index["sensor_size"] == [128, 128]
    assert index["split_rule"] == {"rule": "ratio", "train_ratio": 0.5, "seed": 3}
    assert index["splits"]["all"]["view_of"] == ["train", "test"]
    assert s["recordings"] == 6 and s["events_read"] == sum(len(ev["t"]) for ev in truth.values())
    assert any(x.startswith("notes.txt: not a recording") for x in s["skipped"])
    assert "top.aedat: not inside a class folder" in s["skipped"]
    assert "left/.hidden.aedat: a hidden file (not read)" in s["skipped"]
    by_key = {keys[rel]: rel for rel in files}
    seen = []
    for split, items in splits.items():
        for key, ev, meta in items:
            rel = by_key[key]
            assert_events(ev, truth[rel], key)
            assert meta["label"] == (0 if rel.startswith("left/") else 1)
            assert meta["class"] == rel.split("/")[0] and meta["recording"] == rel and meta["split"] == split
            seen.append(key)
        order = [(m["label"], m["recording"]) for _, _, m in items]
        assert order == sorted(order)  # shard order: class, then path
    assert sorted(seen) == sorted(keys.values())
    for cls in ("left", "right"):  # ceil(0.5 * 3) recordings of each class in train
        assert sum(k.startswith(cls + "/") for k, _, _ in splits["train"]) == math.ceil(0.5 * 3)

    run(raw, tmp_path / "again", split={"train_ratio": 0.5, "seed": 3}, workers=1)
    assert (tmp_path / "again" / "index.json").read_bytes() == (tmp_path / "out" / "index.json").read_bytes()


# ---------------------------------------------------------------------------------------------- labels CSV


def _long_recordings(raw: Path, rng: np.random.Generator) -> dict[str, Events]:
    truth = {"s1/long.aedat": random_recording(rng, 4000, t0=2_000_000), "long2.dat": random_recording(rng, 3000)}
    write_recording(raw / "s1" / "long.aedat", truth["s1/long.aedat"], "aedat2")
    write_recording(raw / "long2.dat", truth["long2.dat"], "dat")
    return truth


def test_labels_csv_cuts_windows(tmp_path):
    rng = np.random.default_rng(2)
    raw = tmp_path / "raw"
    truth = _long_recordings(raw, rng)
    write_recording(raw / "unused.dat", random_recording(rng, 10), "dat")
    a = int(truth["s1/long.aedat"]["t"][0])
    b_last = int(truth["long2.dat"]["t"][-1])
    rows = [  # (file, label, start, end); overlapping rows keep both; the last one overlaps the end in part
        ("s1/long.aedat", "wave", a + 1000, a + 20000),
        ("s1/long.aedat", "clap", a + 15000, a + 30000),
        ("s1/long.aedat", "wave", a + 40000, a + 50000),
        ("long2.dat", "wave", None, None),
        ("long2.dat", "clap", b_last - 5000, b_last + 99999),
    ]
    csv = tmp_path / "labels.csv"
    csv.write_text("File,Label,start_us,end_us\n\n# a comment\n" + "".join(
        f"{f},{lab},{'' if s is None else s},{'' if e is None else e}\n" for f, lab, s, e in rows))
    s = run(raw, tmp_path / "out", split={"train_ratio": 1.0}, labels=str(csv))
    index, splits = read_set(tmp_path / "out")
    assert index["classes"] == ["clap", "wave"]
    assert "unused.dat: not in labels.csv" in s["skipped"]
    assert splits["test"] == []
    got = {key: (ev, meta) for key, ev, meta in splits["train"]}
    expected_keys = ["wave/s1/long_0", "clap/s1/long_0", "wave/s1/long_1", "wave/long2", "clap/long2_0"]
    assert sorted(got) == sorted(expected_keys)
    for key, (f, lab, start, end), line in zip(expected_keys, rows, (4, 5, 6, 7, 8), strict=True):
        ev, meta = got[key]
        want = truth[f] if start is None else select(truth[f], start, end)
        assert_events(ev, want, key)
        assert meta["label"] == index["classes"].index(lab) and meta["class"] == lab and meta["row"] == line
        assert (meta.get("start"), meta.get("end")) == (start, end)
    assert len(got["clap/long2_0"][0]["t"]) > 0


def test_integer_labels_and_fixed_windows_inside_rows(tmp_path):
    rng = np.random.default_rng(3)
    raw = tmp_path / "raw"
    truth = _long_recordings(raw, rng)
    a = int(truth["s1/long.aedat"]["t"][0])
    rows = [(2, a, a + 10000), (0, a + 5000, a + 9000), (2, a + 20000, a + 32999)]
    csv = raw / "labels.csv"  # inside RAW, given relative to it: not reported as skipped
    csv.write_text("".join(f"s1/long.aedat,{lab},{s},{e}\n" for lab, s, e in rows))
    s = run(raw, tmp_path / "out", split={"train_ratio": 1.0}, labels="labels.csv", window_us=3000, stride_us=2000)
    index, splits = read_set(tmp_path / "out")
    assert index["classes"] == ["0", "1", "2"]
    assert s["skipped"] == ["long2.dat: not in labels.csv"]
    want: list[tuple[str, int, int, int]] = []
    count = {0: 0, 2: 0}
    for lab, start, end in rows:  # windows s + 3000 <= end, k counting per class over the recording
        for w0 in range(start, end - 3000 + 1, 2000):
            want.append((f"{lab}/s1/long_{count[lab]}", lab, w0, w0 + 3000))
            count[lab] += 1
    assert len(want) == 4 + 1 + 5
    assert [k for k, _, _ in splits["train"]] == [k for k, _, _, _ in want]
    for (key, ev, meta), (_, lab, w0, w1) in zip(splits["train"], want, strict=True):
        assert meta["label"] == lab and (meta["start"], meta["end"]) == (w0, w1)
        assert_events(ev, select(truth["s1/long.aedat"], w0, w1), key)


def test_split_column(tmp_path):
    rng = np.random.default_rng(4)
    raw = tmp_path / "raw"
    truth = _long_recordings(raw, rng)
    a, b = int(truth["s1/long.aedat"]["t"][0]), int(truth["long2.dat"]["t"][0])
    csv = tmp_path / "labels.csv"
    csv.write_text("split,file,label,start_us,end_us\n"
                   f"train,s1/long.aedat,x,{a},{a + 9000}\n"
                   f"Test,s1/long.aedat,y,{a + 9000},{a + 18000}\n"
                   f"val,s1/long.aedat,x,{a + 18000},{a + 27000}\n"
                   f"train,long2.dat,y,{b},{b + 5000}\n"
                   f"train,long2.dat,x,{b + 5000},{b + 9000}\n")
    s = run(raw, tmp_path / "out", labels=str(csv))
    index, splits = read_set(tmp_path / "out")
    assert index["split_rule"] == {"rule": "column", "labels": "labels.csv", "splits": ["test", "train", "val"]}
    assert "all" not in index["splits"]
    assert {k: [key for key, _, _ in v] for k, v in splits.items()} == {
        "train": ["y/long2_0", "x/long2_0", "x/s1/long_0"],  # shard order: path, then row
        "test": ["y/s1/long_0"],
        "val": ["x/s1/long_1"],
    }
    assert s["recordings"] == 4  # s1/long.aedat read once per split …
    assert s["events_read"] == len(truth["s1/long.aedat"]["t"]) + len(truth["long2.dat"]["t"])  # … counted once
    assert_events(splits["val"][0][1], select(truth["s1/long.aedat"], a + 18000, a + 27000), "val")
    with pytest.raises(DatasetError, match="split column; --split-rule"):
        run(raw, tmp_path / "bad", split={"train_ratio": 0.5}, labels=str(csv))


# ------------------------------------------------------------------------------------------- fixed windows


def test_fixed_windows_of_unlabelled_recordings(tmp_path):
    rng = np.random.default_rng(5)
    raw = tmp_path / "raw"
    long = random_recording(rng, 3000, t0=123_456)
    write_recording(raw / "r1.aedat", long, "aedat2")
    write_recording(raw / "r2.dat", random_recording(rng, 20, max_gap=10), "dat")  # shorter than one window
    w, st = 7000, 5000
    s = run(raw, tmp_path / "out", split={"train_ratio": 1.0}, window_us=w, stride_us=st)
    index, splits = read_set(tmp_path / "out")
    assert index["classes"] == ["unlabelled"]
    t0, t_last = int(long["t"][0]), int(long["t"][-1])
    k = (t_last + 1 - t0 - w) // st + 1
    assert [key for key, _, _ in splits["train"]] == [f"r1_{i}" for i in range(k)]
    assert s["samples"]["train"] == index["splits"]["train"]["samples"] == k
    last = splits["train"][-1][2]
    assert last["end"] <= t_last + 1 < last["start"] + st + w  # the partial last window is dropped
    for i, (key, ev, meta) in enumerate(splits["train"]):
        assert (meta["start"], meta["end"]) == (t0 + i * st, t0 + i * st + w)
        assert_events(ev, select(long, meta["start"], meta["end"]), key)
    assert any(x.startswith("r2.dat:") and "shorter than one 7000 µs window" in x for x in s["warnings"])
    np.testing.assert_array_equal(window_starts(10, 30, 10, 5), [10, 15, 20])
    assert window_starts(10, 19, 10, 5).size == 0


def test_time_stamps_that_go_back_are_selected_by_mask(tmp_path):
    rng = np.random.default_rng(6)
    raw = tmp_path / "raw"
    ev = random_recording(rng, 2000)
    ev["t"][1000:] -= 20000  # a reset: DAT keeps small decreases as they are
    write_recording(raw / "a" / "reset.dat", ev, "dat")
    s = run(raw, tmp_path / "out", split={"train_ratio": 1.0}, window_us=4000)
    _, splits = read_set(tmp_path / "out")
    t0, t_last = int(ev["t"].min()), int(ev["t"].max())
    assert len(splits["train"]) == (t_last + 1 - t0 - 4000) // 4000 + 1
    for key, got, meta in splits["train"]:
        assert_events(got, select(ev, meta["start"], meta["end"]), key)  # file order, like a mask
    assert any("not monotonic" in x for x in s["warnings"])


# ---------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("text", "match"), [
    ("file,label,start\n", r"row 1: unknown column 'start'"),
    ("label,start_us,end_us\n", r"row 1: no 'file' column"),
    ("file,label,start_us\n", r"row 1: 'start_us' and 'end_us' go together"),
    ("file,label,start_us,end_us\na.dat,x,12ab,50\n", r"row 2: start_us '12ab' is not an integer"),
    ("a.dat,x,500,100\n", r"row 1: end_us 100 must be greater than start_us 500"),
    ("a.dat,x,1\n", r"row 1: expected 'file,label\[,start_us,end_us\]'"),
    ("file,label\n\na.dat\n", r"row 3: expected 2 columns"),
    ("file,label\na.dat,\n", r"row 2: empty label"),
    ("file,label\n../a.dat,x\n", r"row 2: file '../a.dat' must be a path relative to RAW"),
    ("file,label,split\na.dat,x,train set\n", r"row 2: split 'train set'"),
    ("file,label,start_us,end_us\na.dat,x,5,\n", r"row 2: give both start_us and end_us"),
    ("# nothing\n", r"no rows"),
])
def test_labels_csv_errors_name_file_and_row(text, match):
    with pytest.raises(DatasetError, match=r"^my\.csv: .*" + match):
        parse_labels_csv(text.encode(), "my.csv")


def test_conversion_errors_name_the_file(tmp_path):
    rng = np.random.default_rng(7)
    raw = tmp_path / "raw"
    ev = random_recording(rng, 300)
    write_recording(raw / "a.dat", ev, "dat")
    csv = tmp_path / "labels.csv"
    csv.write_text("a.dat,x\nmissing.dat,y\n")
    with pytest.raises(DatasetError, match=r"labels\.csv: row 2: unknown file 'missing.dat'"):
        run(raw, tmp_path / "o1", labels=str(csv))
    csv.write_text(f"a.dat,x,0,1000\na.dat,x,{int(ev['t'][-1]) + 1},{int(ev['t'][-1]) + 9}\n")
    with pytest.raises(DatasetError, match=r"labels\.csv: row 1: window \[0, 1000\) µs lies outside a\.dat"):
        run(raw, tmp_path / "o2", labels=str(csv))
    with pytest.raises(DatasetError, match="--stride-us needs --window-us"):
        run(raw, tmp_path / "o3", stride_us=10)
    write_recording(raw / "a.aedat", ev, "aedat2")  # a.dat and a.aedat: the same key stem
    with pytest.raises(DatasetError, match=r"'a.aedat' and 'a.dat' give the same sample key stem 'a'"):
        run(raw, tmp_path / "o4")
    assert not any((tmp_path / o / "index.json").exists() for o in ("o1", "o2", "o3", "o4"))


def test_sensor_size_from_headers_or_option(tmp_path):
    rng = np.random.default_rng(8)
    raw = tmp_path / "raw"
    write_recording(raw / "big" / "a.dat", random_recording(rng, 200), "dat", size=(128, 128))
    write_recording(raw / "small" / "b.dat", random_recording(rng, 200, size=(60, 90)), "dat", size=(60, 90))
    with pytest.raises(DatasetError, match=r"mixed sensor sizes: .*small/b\.dat is 60x90, .*big/a\.dat is 128x128 "
                                           r"\(HxW\); pass --sensor 128x128"):
        run(raw, tmp_path / "o1")
    run(raw, tmp_path / "ok", sensor=(128, 128))
    assert read_set(tmp_path / "ok")[0]["sensor_size"] == [128, 128]
    with pytest.raises(DatasetError, match=r"big/a\.dat: its header states a 128x128 \(HxW\) sensor, larger than "
                                           r"--sensor 100x128"):
        run(raw, tmp_path / "o2", sensor=(100, 128))

    raw2 = tmp_path / "raw2"
    write_recording(raw2 / "c" / "n.bin", random_recording(rng, 200, t0=0, size=(34, 34)), "bin")
    with pytest.raises(DatasetError, match=r"c/n\.bin: its header states no sensor size \(atis_bin\); pass --sensor"):
        run(raw2, tmp_path / "o3")
    with pytest.raises(DatasetError, match=r"c/n\.bin: event \d+ at x=\d+, y=\d+ lies outside the 20x34 \(HxW\)"):
        run(raw2, tmp_path / "o4", sensor=(20, 34))
    run(raw2, tmp_path / "ok2", sensor="34x34")
    assert read_set(tmp_path / "ok2")[0]["sensor_size"] == [34, 34]


# ------------------------------------------------------------------------------------------------- real files


def _real_raw(tmp_path: Path, folders: tuple[str, ...]) -> Path:
    raw = tmp_path / "raw"
    for folder in folders:
        for f in real_files(folder, "*"):
            (raw / folder).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, raw / folder / f.name)
    return raw


def test_real_files_shard_set_streams_frames(tmp_path):
    from loader import EventShardDataset

    raw = _real_raw(tmp_path, REAL_FOLDERS)
    with pytest.raises(DatasetError, match=r"raw/ncars/NCARS_obj_004397_td\.dat: its header states no sensor size"):
        run(raw, tmp_path / "nosensor", split={"train_ratio": 0.5})
    s = run(raw, tmp_path / "out", split={"train_ratio": 0.5}, sensor=(720, 1280))
    assert "prophesee_evt3/evt3_sample.npy: not a recording (.npy; read: .aedat .aedat4 .raw .dat .es .bin .bs2)" \
        in s["skipped"]
    index = read_index_json(tmp_path / "out")
    assert index["classes"] == sorted(REAL_FOLDERS) and index["sensor_size"] == [720, 1280]
    counts = {}
    for folder in REAL_FOLDERS:
        for f in sorted((raw / folder).iterdir()):
            if f.suffix != ".npy":
                counts[f"{folder}/{f.stem}"] = len(read_events(REALDATA / folder / f.name))
    seen = {}
    for split in ("train", "test"):
        ds = EventShardDataset(tmp_path / "out", split=split, data_type="frame", frames_number=4, split_by="number",
                               shuffle=False, return_key=True)
        for x, label, key in ds:
            assert tuple(x.shape) == (4, 2, 720, 1280)
            assert float(x.sum()) == counts[key], key
            assert index["classes"][int(label)] == key.split("/")[0]
            seen[key] = split
    assert sorted(seen) == sorted(counts)
    assert s["events"] == sum(counts.values())
    assert set(seen.values()) == {"train", "test"}


def test_real_files_of_mixed_sensor_sizes(tmp_path):
    raw = _real_raw(tmp_path, ("aedat2_dvs128", "aedat4"))
    with pytest.raises(DatasetError, match=r"mixed sensor sizes: .*aedat2_dvs128/1-1\.aedat is 128x128, "
                                           r".*aedat4/davis\.aedat4 is 260x346 \(HxW\); pass --sensor 260x346"):
        run(raw, tmp_path / "o1")
    s = run(raw, tmp_path / "ok", sensor=(260, 346))
    assert s["samples"]["train"] + s["samples"]["test"] == 4
    assert read_index_json(tmp_path / "ok")["sensor_size"] == [260, 346]
