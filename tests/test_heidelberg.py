"""SHD and SSC (1-D sensors): generated HDF5 downloads → shards → the same events, labels and frames as SpikingJelly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loader import format as F
from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from tests.gen_heidelberg import SPLITS, TINY, us, write_heidelberg

ROOT = Path(__file__).resolve().parents[1]
COUNTS = {"shd": {"train": 40, "test": 24}, "ssc": {"train": 45, "valid": 12, "test": 12}}

pytest.importorskip("h5py")


@pytest.fixture(scope="module", params=["shd", "ssc"])
def converted(request, tmp_path_factory):
    """(dataset id, generated .h5.gz download, shard set folder) for SHD (with a sub-ms sample) and SSC."""
    ds = request.param
    base = tmp_path_factory.mktemp(ds)
    dl = write_heidelberg(base / "raw", ds, COUNTS[ds], form="gz", seed=3, tiny=ds == "shd")
    convert(ds, dl.root, base / "out", workers=2, check_md5=False, progress=False, shard_size=8192)
    return ds, dl, base / "out"


def _facade(ds: str, out: Path, split: str, **kw):
    from loader.datasets import SpikingHeidelbergDigits, SpikingSpeechCommands

    if ds == "shd":
        return SpikingHeidelbergDigits(str(out), train=split == "train", return_key=True, **kw)
    return SpikingSpeechCommands(str(out), split=split, return_key=True, **kw)


def test_index_records_the_1d_sensor_and_its_version(converted):
    ds, dl, out = converted
    index = json.loads((out / "index.json").read_text())
    assert index["sensor_size"] == [700] and index["version"] == F.FORMAT_VERSION == 4  # 1-D samples as in 2
    assert index["classes"] == dl.classes
    assert set(index["splits"]) == set(SPLITS[ds])
    for split, samples in dl.splits.items():
        assert index["splits"][split]["samples"] == len(samples)
        assert index["splits"][split]["events"] == sum(s.times.size for s in samples)


def test_events_labels_and_keys_follow_the_files(converted):
    """Row i of each file is item i: t = µs rounded (halves up), x = units, the file's label, key <label>/<row>."""
    ds, dl, out = converted
    for split, samples in dl.splits.items():
        fac = _facade(ds, out, split)
        assert len(fac) == len(samples) and fac.get_H_W() == (None, 700)
        for i, s in enumerate(samples):
            ev, label, key = fac[i]
            assert set(ev) == {"t", "x"}
            np.testing.assert_array_equal(ev["t"], us(s.times), err_msg=f"{split}[{i}]")
            np.testing.assert_array_equal(ev["x"], s.units.astype(np.int64))
            assert label == s.label and key == f"{s.label}/{i}"


# ------------------------------------------------------------------------------------------ SpikingJelly


def _sj_class(ds: str, md5: dict[str, str]):
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.shd import SpikingHeidelbergDigits, SpikingSpeechCommands

    base = SpikingHeidelbergDigits if ds == "shd" else SpikingSpeechCommands

    class Generated(base):
        """Only the resources differ: the generated files (for SSC also the right ones, not SHD's)."""

        @classmethod
        def resource_url_md5(cls) -> list:
            return [(name, "generated://", digest) for name, digest in md5.items()]

    return Generated


@pytest.fixture(scope="module")
def spikingjelly(converted, tmp_path_factory):
    """split → SpikingJelly 2.0.0's own event-mode dataset on the same .h5.gz files."""
    pytest.importorskip("spikingjelly")
    ds, dl, _ = converted
    root = tmp_path_factory.mktemp(f"sj-{ds}")
    shutil.copytree(dl.root, root / "download")
    cls = _sj_class(ds, dl.md5)
    out = {}
    for split in SPLITS[ds]:
        out[split] = cls(str(root), train=split == "train") if ds == "shd" else cls(str(root), split=split)
    return root, cls, out


def test_events_and_labels_equal_spikingjelly(converted, spikingjelly):
    ds, _, out = converted
    for split, sj in spikingjelly[2].items():
        fac = _facade(ds, out, split)
        assert len(fac) == len(sj)
        for i in range(len(sj)):
            sj_ev, sj_label = sj[i]
            ev, label, _ = fac[i]
            assert label == int(sj_label)
            assert sj_ev["t"].dtype == np.float16
            np.testing.assert_array_equal(ev["t"], us(sj_ev["t"]), err_msg=f"{split}[{i}]")
            np.testing.assert_array_equal(ev["x"], sj_ev["x"])


SETTINGS = [
    {"frames_number": 7, "split_by": "number"},
    {"frames_number": 5, "split_by": "time"},
    {"frames_number": 16, "split_by": "time"},
    {"duration": 10},
    {"duration": 37},
    {"duration": 2.5},  # ms as a float, as a SpikingJelly user may pass it
]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(map(str, s.values())))
def test_frames_equal_spikingjelly(converted, spikingjelly, setting):
    """SpikingJelly's SHD builder functions on its own events vs. our frames, sample by sample.

    Where SpikingJelly raises (an empty time window; a duration sample with fewer than two time stamps)
    ours still gives frames (checked for shape); the sub-ms sample is compared only by event count,
    since µs cannot hold its float16 times exactly (docs).
    """
    from spikingjelly.datasets import shd as sjshd

    ds, dl, out = converted
    compared = raised = 0
    for split, sj in spikingjelly[2].items():
        fac = _facade(ds, out, split, data_type="frame", **setting)
        for i in range(len(sj)):
            sj_ev, _ = sj[i]
            x, label, _ = fac[i]
            assert x.dtype == np.float32 and x.ndim == 2 and x.shape[1] == 700
            assert x.sum() == sj_ev["x"].size or "split_by" not in setting or setting["split_by"] == "time"
            try:
                if "duration" in setting:
                    want = sjshd._integrate_events_by_fixed_duration(sj_ev, setting["duration"], 700)
                else:
                    want = sjshd._integrate_events_by_fixed_frames_number(
                        sj_ev, setting["split_by"], setting["frames_number"], 700)
            except IndexError:
                raised += 1
                assert x.shape[0] >= 1
                continue
            if sj_ev["t"].size and float(sj_ev["t"][0]) < TINY and setting.get("split_by") != "number":
                continue
            assert x.shape == want.shape, f"{split}[{i}]"
            np.testing.assert_array_equal(x, want, err_msg=f"{split}[{i}] {setting}")
            compared += 1
    assert compared > 40
    if setting.get("split_by") != "number":
        assert raised >= 1  # the empty sample at least: SpikingJelly raises, ours gives frames


def test_spikingjelly_frame_dataset_numbers_classes_as_strings(converted, spikingjelly):
    """SpikingJelly's frame mode: same frames under the same key, but labels in string order (a bug not copied)."""
    ds, dl, out = converted
    if ds != "shd":
        pytest.skip("one dataset suffices")
    root, cls, _ = spikingjelly
    for split in ("train", "test"):
        sj = cls(str(root), train=split == "train", data_type="frame", frames_number=4, split_by="number")
        ours = {key: (x, label) for x, label, key in _facade(ds, out, split, data_type="frame", frames_number=4,
                                                             split_by="number")}
        assert len(sj) == len(ours)
        string_order = sorted(str(i) for i in range(20))
        for j, (path, sj_label) in enumerate(sj.samples):
            key = Path(path).relative_to(Path(sj.root)).with_suffix("").as_posix()
            x, label = ours[key]
            frames, _ = sj[j]
            np.testing.assert_array_equal(x, frames, err_msg=key)
            assert string_order[sj_label] == str(label)


# ------------------------------------------------------------------------------------------ downloads


def test_zip_gz_and_extracted_files_give_the_same_shards(tmp_path):
    outs = {}
    for form in ("gz", "zip", "h5"):
        dl = write_heidelberg(tmp_path / form, "ssc", COUNTS["ssc"], form=form, seed=5)
        convert("ssc", dl.root, tmp_path / f"out-{form}", workers=1, check_md5=False, progress=False)
        outs[form] = {p.name: p.read_bytes() for p in sorted((tmp_path / f"out-{form}").glob("*.tar.zst"))}
    assert outs["gz"] == outs["zip"] == outs["h5"] and outs["gz"]


def test_md5_of_a_zip_is_checked(tmp_path):
    from shardgen.datasets import get_dataset

    dl = write_heidelberg(tmp_path / "raw", "shd", COUNTS["shd"], form="zip")
    spec = get_dataset("shd").SPEC
    assert {r.file for r in spec.resources} == {"shd_train.h5.zip", "shd_test.h5.zip"}
    with pytest.raises(DatasetError, match=r"shd_train\.h5\.zip: md5 .* differs from the published"):
        convert("shd", dl.root, tmp_path / "out", workers=1, progress=False)
    assert not (tmp_path / "out" / "index.json").exists()


def test_ssc_takes_the_ssc_files_not_spikinglellys_shd_list():
    from shardgen.datasets import get_dataset

    files = [r.file for r in get_dataset("ssc").SPEC.resources]
    assert files == ["ssc_train.h5.zip", "ssc_valid.h5.zip", "ssc_test.h5.zip"]


def test_missing_file_and_bad_rows_name_the_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="shd_train.h5.zip, shd_train.h5.gz, shd_train.h5 found.*zenkelab"):
        convert("shd", tmp_path / "empty", tmp_path / "o1", progress=False)
    dl = write_heidelberg(tmp_path / "raw", "shd", {"train": 5, "test": 5}, form="h5")
    import h5py

    with h5py.File(dl.root / "shd_test.h5", "r+") as f:
        u = f["spikes/units"][3].copy()
        u[1] = 700
        f["spikes/units"][3] = u
    with pytest.raises(DatasetError, match=r"shd_test.h5: row 3: spike 1 has unit 700"):
        convert("shd", dl.root, tmp_path / "o2", workers=1, check_md5=False, progress=False)
    with h5py.File(dl.root / "shd_test.h5", "r+") as f:
        f["spikes/units"][3] = u % 700
        t = f["spikes/times"][4].copy()
        f["spikes/times"][4] = t[::-1]  # decreasing times are kept as recorded, and counted
    summary = convert("shd", dl.root, tmp_path / "o2b", workers=1, check_md5=False, progress=False)
    assert [w for w in summary["warnings"] if "decreasing" in w] == [
        "shd_test.h5: 1 samples of rows 0-4 have decreasing spike times (kept as recorded; frames need "
        "non-decreasing times)"]
    (dl.root / "shd_test.h5").write_bytes(b"not hdf5")
    with pytest.raises(Exception, match="shd_test.h5: not a readable HDF5 file"):
        convert("shd", dl.root, tmp_path / "o3", workers=1, check_md5=False, progress=False)


def test_without_h5py_the_error_names_the_extra(monkeypatch):
    from shardgen.formats import spikes_h5

    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install 'eventshard\[h5\]'"):
        spikes_h5.import_h5py()


# ------------------------------------------------------------------------------------------ loader and tools


def test_loader_collate_structured_and_custom(converted):
    import torch

    from loader import EventShardDataset, pad_sequence_collate, padded_sequence_mask

    ds, dl, out = converted
    split = SPLITS[ds][-1]
    stream = EventShardDataset(out, split=split, data_type="frame", duration=20_000, shuffle=False)
    assert stream.sensor_size == (700,)
    batch = [stream.read_canonical(i) for i in range(6)]  # rows 0..5 (the shards hold a permutation)
    x, labels, lengths = pad_sequence_collate(batch)
    assert x.shape == (6, int(lengths.max()), 700) and x.dtype == torch.float32
    assert padded_sequence_mask(lengths).shape == (int(lengths.max()), 6)
    for k, (frames, _) in enumerate(batch):
        assert torch.equal(x[k, : frames.shape[0]], torch.as_tensor(frames)) and not x[k, frames.shape[0]:].any()
    assert [int(v) for v in labels] == [s.label for s in dl.splits[split][:6]]
    rec, _ = EventShardDataset(out, split=split, data_type="structured", shuffle=False).read_canonical(0)
    assert rec.dtype.names == ("t", "x", "p") and rec.size == 0  # row 0 is empty
    seen = []
    custom = EventShardDataset(out, split=split, data_type="frame", shuffle=False,
                               custom_integrate_function=lambda ev, h, w: seen.append((sorted(ev), h, w)) or 0)
    next(iter(custom))
    assert seen == [(["t", "x"], None, 700)]


def test_1d_payload_bytes_and_old_readers(converted):
    import msgpack


    buf = F.encode_events(np.array([5, 9, 9]), np.array([699, 0, 3]), None, None, (700,))
    m = msgpack.unpackb(buf)
    assert set(m) == {"n", "t0", "dt_dtype", "dt", "xy_dtype", "x"} and m["xy_dtype"] == "u2"
    assert m["x"] == bytes([699 & 255, 0, 3, 699 >> 8, 0, 0])  # byte planes, low bytes first
    ev = F.decode_events(buf)  # y and p asked for by default: a 1-D sample has none
    assert set(ev) == {"t", "x"} and ev["t"].tolist() == [5, 9, 9] and ev["x"].tolist() == [699, 0, 3]
    with pytest.raises(F.FormatError, match="units outside"):
        F.encode_events(np.array([1]), np.array([700]), None, None, (700,))
    with pytest.raises(F.FormatError, match="no y or p"):
        F.encode_events(np.array([1]), np.array([7]), np.array([0]), np.array([1]), (700,))
    index = json.loads((converted[2] / "index.json").read_text())
    index["version"] = 1  # a version-1 reader's rule: [H, W] only
    with pytest.raises(F.FormatError, match=r"sensor_size must be \[H, W\]"):
        F.validate_index(index)


def test_cli_list_info_and_preview(converted, tmp_path):
    ds, _, out = converted

    def run(*args):
        return subprocess.run([sys.executable, "-m", "shardgen.cli", *args], capture_output=True, text=True,
                              cwd=ROOT, check=True).stdout

    listing = run("list")
    assert any(line.split()[:2] == [ds, "700"] for line in listing.splitlines())
    info = run("info", str(out))
    assert "700 units (1-D: t, x)" in info and "format v4" in info
    png = tmp_path / "raster.png"
    run("preview", str(out), "--split", "train", "--index", "5", "--out", str(png))
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB"))
    assert img.shape[0] > 700 and img.max() > 0


def test_microsecond_rounding_and_float16_recovery():
    """Every positive float16 from 2**-9 s on comes back exactly from its µs; halves round up."""
    from loader.sensor1d import seconds_float16
    from shardgen.formats.spikes_h5 import seconds_to_us

    f = np.arange(0x0001, 0x7C00, dtype=np.uint16).view(np.float16)  # every finite positive float16
    t = seconds_to_us(f)
    np.testing.assert_array_equal(t, us(f))  # the independent rule of the generator
    keep = f >= TINY
    np.testing.assert_array_equal(seconds_float16(t[keep]), f[keep])
    assert not np.all(seconds_float16(t[~keep]) == f[~keep])  # below 1.95 ms µs cannot tell them all apart
    assert seconds_to_us(np.array([2.0**-7], np.float16)).tolist() == [7813]  # 7812.5 µs: half up


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 65536), st.lists(st.tuples(st.integers(-(2**40), 2**40), st.integers(0, 65535)), max_size=60))
def test_1d_payload_round_trip(width, rows):

    t = np.array([r[0] for r in rows], np.int64)
    x = np.array([r[1] % width for r in rows], np.int64)
    ev = F.decode_events(F.encode_events(t, x, None, None, (width,)))
    assert set(ev) == {"t", "x"}
    np.testing.assert_array_equal(ev["t"], t)
    np.testing.assert_array_equal(ev["x"].astype(np.int64), x)
