"""shardgen.inspect: the info table and its numbers, --plot's PNG, and the preview GIF/PNG of one sample."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from loader.frames import integrate_events_by_fixed_duration, integrate_events_by_fixed_frames_number
from loader.preview import frames_to_images
from shardgen.inspect import collect_info, format_info, info_table, plot_info, preview
from tests.conftest import CLASSES


def _truth_by_split(truth):
    out = {}
    for key, v in truth.items():
        out.setdefault(v["split"], []).append((key, v))
    return out


def test_collect_info_matches_truth(small_shard_set):
    root, truth = small_shard_set
    seen = []
    info = collect_info(root, workers=2, progress=lambda done, total: seen.append((done, total)))
    assert info["dataset"] == "synthetic-test" and info["sensor_size"] == [128, 128]
    assert info["classes"] == CLASSES and info["scanned"]
    assert list(info["splits"]) == ["train", "test"]
    for split, items in _truth_by_split(truth).items():
        s = info["splits"][split]
        n = np.array([len(v["events"]["t"]) for _, v in items])
        d = np.array([int(v["events"]["t"][-1] - v["events"]["t"][0]) if len(v["events"]["t"]) else 0
                      for _, v in items])
        np.testing.assert_array_equal(s["sample_events"], n)  # index order
        np.testing.assert_array_equal(s["sample_duration_us"], d)
        assert s["events_per_sample"] == {"min": n.min(), "median": float(np.median(n)), "max": n.max()}
        assert s["duration_us"] == {"min": d.min(), "median": float(np.median(d)), "max": d.max()}
        assert s["per_class"] == np.bincount([v["label"] for _, v in items], minlength=len(CLASSES)).tolist()
        assert s["samples"] == len(items) and s["events"] == n.sum()
        assert s["shards"] == {"train": 3, "test": 2}[split]
        assert s["bytes_per_event"] == pytest.approx(s["bytes"] / s["events"])
    assert seen[-1] == (len(truth), len(truth)) and len(seen) == 5  # one call per shard
    assert info["total"]["samples"] == len(truth) and info["total"]["shards"] == 5


def test_info_table_text(small_shard_set):
    root, truth = small_shard_set
    text = info_table(root)
    lines = text.splitlines()
    assert lines[0].startswith("shard set") and str(root) in lines[0]
    assert "synthetic-test" in lines[1] and "128 x 128" in lines[2] and "11" in lines[3]
    header = next(line for line in lines if line.startswith("split"))
    for word in ("samples", "events", "events/sample", "min / median / max", "duration/sample", "shards",
                 "bytes", "bytes/event"):
        assert word in header
    train = next(line for line in lines if line.startswith("train "))
    n = sorted(len(v["events"]["t"]) for v in truth.values() if v["split"] == "train")
    assert f"{n[0]:,} / " in train and f" / {n[-1]:,}" in train
    assert next(line for line in lines if line.startswith("total ")).split()[1] == str(len(truth))
    for i, c in enumerate(CLASSES):  # one row per class with its count in each split
        row = next(line for line in lines if line.split()[:2] == [str(i), c])
        counts = [sum(1 for v in truth.values() if v["split"] == s and v["label"] == i) for s in ("train", "test")]
        assert row.split()[2:] == [str(k) for k in counts]


def test_info_without_scan_uses_the_index(small_shard_set):
    root, _ = small_shard_set
    info = collect_info(root, scan=False)
    assert not info["scanned"] and info["splits"]["train"]["events_per_sample"] is None
    text = format_info(info)
    assert "not scanned" in text and "not in the index" in text  # the fixture's index has no summary


def test_views_are_counted_once(small_shard_set, tmp_path):
    """A split listing other splits' shards (CIFAR10-DVS's "all") is shown but not added to the total twice."""
    root, truth = small_shard_set
    out = tmp_path / "set"
    shutil.copytree(root, out)
    ix = json.loads((out / "index.json").read_text())
    shards = ix["splits"]["train"]["shards"] + ix["splits"]["test"]["shards"]
    ix["splits"]["all"] = {"samples": len(truth), "events": sum(s["events"] for s in shards),
                           "bytes": sum(s["bytes"] for s in shards), "shards": shards}
    (out / "index.json").write_text(json.dumps(ix))
    info = collect_info(out)
    assert list(info["splits"]) == ["train", "test", "all"]
    assert info["splits"]["all"]["samples"] == len(truth) == info["total"]["samples"]
    assert info["total"]["shards"] == 5
    all_counts = np.array(info["splits"]["all"]["per_class"])
    assert (all_counts == np.add(info["splits"]["train"]["per_class"], info["splits"]["test"]["per_class"])).all()


def test_plot_info_writes_png(small_shard_set, tmp_path):
    pytest.importorskip("matplotlib")
    root, _ = small_shard_set
    path = tmp_path / "info.png"
    assert plot_info(root, path) == str(path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= 800 and im.height >= 300
        px = np.asarray(im.convert("RGB"))
    assert (px.std(axis=(0, 1)) > 10).all()  # not a blank picture
    info = collect_info(root)
    plot_info(root, tmp_path / "again.png", info=info)  # reuses a scan


def test_preview_png_shows_the_sample(small_shard_set, tmp_path):
    root, truth = small_shard_set
    keys = [k for k, v in truth.items() if v["split"] == "train"]
    i = next(j for j, k in enumerate(keys) if len(truth[k]["events"]["t"]) > 1000)
    got = preview(root, "train", i, tmp_path / "s.png", frames_number=6, split_by="number")
    key = keys[i]
    assert got["key"] == key and got["label"] == truth[key]["label"] and got["frames"] == 6
    assert got["events"] == len(truth[key]["events"]["t"]) and got["class"] == truth[key]["meta"]["class"]
    with Image.open(tmp_path / "s.png") as im:
        px = np.asarray(im.convert("RGB"))
    # the grid (below the caption) holds the 6 frames drawn by frames_to_images, 6 in one row, scale 1
    want = frames_to_images(integrate_events_by_fixed_frames_number(truth[key]["events"], "number", 6, 128, 128))
    grid = px[-(128 + 4) :]
    tile0 = grid[2 : 2 + 128, 2 : 2 + 128].copy()
    tile0[:16, :20] = want[0][:16, :20]  # the frame number drawn in the corner
    np.testing.assert_array_equal(tile0, want[0])
    assert px.shape[1] == 6 * 130 + 2


def test_preview_gif_and_duration(small_shard_set, tmp_path):
    root, truth = small_shard_set
    keys = [k for k, v in truth.items() if v["split"] == "test"]
    got = preview(root, "test", -1, tmp_path / "s.gif", duration=200_000)
    ev = truth[keys[-1]]["events"]
    frames = integrate_events_by_fixed_duration(ev, 200_000, 128, 128)
    assert got["index"] == len(keys) - 1 and got["frames"] == frames.shape[0]
    with Image.open(tmp_path / "s.gif") as im:
        assert im.format == "GIF" and 1 <= im.n_frames <= frames.shape[0]  # identical frames merge
        assert im.width == 256
    got = preview(root, "test", 0, tmp_path / "d.gif")
    assert got["frames"] == 20 and got["setting"] == "20 frames split by number"


def test_preview_errors(small_shard_set, tmp_path):
    root, truth = small_shard_set
    spans = [int(v["events"]["t"][-1] - v["events"]["t"][0]) if len(v["events"]["t"]) else 0
             for v in truth.values() if v["split"] == "train"]
    longest = int(np.argmax(spans))
    assert spans[longest] > 2000
    with pytest.raises(ValueError, match=r"\.gif or \.png"):
        preview(root, "train", 0, tmp_path / "s.jpg")
    with pytest.raises(ValueError, match="not both"):
        preview(root, "train", 0, tmp_path / "s.png", frames_number=3, duration=10)
    with pytest.raises(ValueError, match="no split 'val'"):
        preview(root, "val", 0, tmp_path / "s.png")
    with pytest.raises(IndexError):
        preview(root, "train", 30, tmp_path / "s.png")
    with pytest.raises(ValueError, match="longer duration"):
        preview(root, "train", longest, tmp_path / "s.png", duration=1)


def test_no_torch_import():
    """shardgen must start without torch: its inspect module (info, plot, preview) does not import it."""
    code = "import sys, shardgen.inspect, loader.preview; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_info_and_preview_over_http(small_shard_set, tmp_path):
    from tests.servers import RangeHTTPServer

    root, truth = small_shard_set
    with RangeHTTPServer(root) as server:
        remote = collect_info(server.url())
        got = preview(server.url(), "train", 2, tmp_path / "r.png", frames_number=4, split_by="time")
    local = collect_info(root)
    for split in ("train", "test"):
        np.testing.assert_array_equal(remote["splits"][split]["sample_events"], local["splits"][split]["sample_events"])
    assert got["key"] == [k for k, v in truth.items() if v["split"] == "train"][2]
