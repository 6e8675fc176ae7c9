"""DVS-Lip: a generated ``DVS-Lip.zip`` → shards = SpikingJelly 2.0.0's ``DVSLip`` on the same download."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from shardgen.formats.events import FormatError
from tests.conftest import read_split
from tests.gen_datasets2 import write_dvslip
from tests.sj2compat import sj_class, sj_samples


def same(got: dict, want: dict, key: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{key}: {c}")


def test_parity_with_spikingjelly(tmp_path):
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.dvs_lip import DVSLip

    gen = write_dvslip(tmp_path / "raw")
    s = convert("dvs-lip", gen.root, tmp_path / "out", workers=2, progress=False, check_md5=False)
    assert s["empty_windows"] == 1
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["classes"] == ["accused", "between", "young"] and index["sensor_size"] == [128, 128]
    cls = sj_class(DVSLip, gen.md5)
    for split in ("train", "test"):
        ours = read_split(tmp_path / "out", split)
        sj = sj_samples(cls, gen.root, tmp_path / "sj", train=split == "train")
        assert list(ours) == list(sj)  # same keys in SpikingJelly's order (word, then file name)
        for key, (ev, label) in ours.items():
            assert label == sj[key][1], key
            same(ev, sj[key][0], key)
            same(ev, gen.samples[(split, key)][1], key)
    assert len(read_split(tmp_path / "out", "train")["accused/0"][0]["t"]) == 0
    assert len(read_split(tmp_path / "out", "train")["accused/1"][0]["t"]) == 1


def test_extracted_folder_and_facade(tmp_path):
    from loader.datasets import DVSLip

    gen = write_dvslip(tmp_path / "raw", per_word=2)
    with zipfile.ZipFile(gen.root / "DVS-Lip.zip") as zf:
        zf.extractall(tmp_path / "x")
    a = convert("dvs-lip", gen.root, tmp_path / "a", workers=1, progress=False, check_md5=False)
    b = convert("dvs-lip", tmp_path / "x", tmp_path / "b", workers=1, progress=False)
    assert a["samples"] == b["samples"]
    for shard in sorted((tmp_path / "a").glob("*.tar.zst")):
        assert shard.read_bytes() == (tmp_path / "b" / shard.name).read_bytes()
    ds = DVSLip(str(tmp_path / "a"), train=False, data_type="frame", frames_number=3, split_by="number")
    assert len(ds) == 6
    x, label = ds[0]
    assert x.shape == (3, 2, 128, 128) and label == 0


def test_md5_bad_files_and_no_pickle(tmp_path):
    gen = write_dvslip(tmp_path / "raw", per_word=2)
    with pytest.raises(DatasetError, match=r"DVS-Lip\.zip: md5 .* 2dcb959255122d4cdeb6094ca282494b"):
        convert("dvs-lip", gen.root, tmp_path / "o1", workers=1, progress=False)
    bad = tmp_path / "bad" / "DVS-Lip" / "train" / "young"
    bad.mkdir(parents=True)
    buf = io.BytesIO()
    np.save(buf, np.array([{"t": 1}], dtype=object), allow_pickle=True)  # a pickled object array: refused
    (bad / "5.npy").write_bytes(buf.getvalue())
    with pytest.raises(FormatError, match=r"young/5\.npy: not a readable \.npy array without pickle"):
        convert("dvs-lip", tmp_path / "bad", tmp_path / "o2", workers=1, progress=False)
    arr = np.zeros(2, dtype=[("t", "<i4"), ("x", "i1"), ("y", "i1"), ("p", "i1")])
    arr["x"] = [3, -4]
    buf = io.BytesIO()
    np.save(buf, arr)
    (bad / "5.npy").write_bytes(buf.getvalue())
    with pytest.raises(FormatError, match=r"young/5\.npy: x\[1\] = -4 outside \[0, 128\)"):
        convert("dvs-lip", tmp_path / "bad", tmp_path / "o3", workers=1, progress=False)
