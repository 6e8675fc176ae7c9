"""HARDVS MINI: a generated download → shards = SpikingJelly 2.0.0's ``HARDVS``; the authors' real class list parses."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from shardgen.datasets.hardvs import parse_class_list, parse_list
from tests.conftest import read_split
from tests.gen_datasets2 import write_hardvs
from tests.realdata import real_file
from tests.sj2compat import sj_class, sj_samples


def same(got: dict, want: dict, key: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{key}: {c}")


def test_parity_with_spikingjelly(tmp_path):
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.hardvs import HARDVS

    gen = write_hardvs(tmp_path / "raw", classes=300, max_events=40)  # SpikingJelly needs every class in every split
    s = convert("hardvs", gen.root, tmp_path / "out", workers=2, progress=False, check_md5=False)
    assert s["empty_windows"] == 1
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert len(index["classes"]) == 300 and index["classes"][2] == "action_003" and index["sensor_size"] == [260, 346]
    cls = sj_class(HARDVS, gen.md5)
    for split in ("train", "val", "test"):
        ours = read_split(tmp_path / "out", split)
        sj = sj_samples(cls, gen.root, tmp_path / "sj", train_test_val=split)
        assert list(ours) == list(sj) and len(ours) == 600
        for key, (ev, label) in ours.items():
            assert label == sj[key][1] == gen.samples[(split, key)][0], key
            same(ev, sj[key][0], key)
            same(ev, gen.samples[(split, key)][1], key)


def test_extracted_folders_crlf_lists_and_facade(tmp_path):
    from loader.datasets import HARDVS

    gen = write_hardvs(tmp_path / "raw", classes=2, per_split=1, crlf=True)
    x = tmp_path / "x"
    x.mkdir()
    for name in ("train_label.txt", "val_label.txt", "test_label.txt"):
        (x / name).write_bytes((gen.root / name).read_bytes())
    with zipfile.ZipFile(gen.root / "MINI_HARDVS_files.zip") as zf:
        for info in zf.infolist():
            if info.filename.endswith(".zip"):
                with zipfile.ZipFile(zf.open(info)) as inner:
                    inner.extractall(x / "MINI" / Path(info.filename).stem)
    (x / "MINI" / "action_001" / "dvSave-stray.npz").write_bytes(b"")
    a = convert("hardvs", gen.root, tmp_path / "a", workers=1, progress=False, check_md5=False)
    b = convert("hardvs", x, tmp_path / "b", workers=1, progress=False, check_md5=False)
    assert a["samples"] == b["samples"] == {"train": 2, "val": 2, "test": 2}
    assert any("dvSave-stray.npz: not in any label list" in k for k in b["skipped"])
    for shard in sorted((tmp_path / "a").glob("*.tar.zst")):
        assert shard.read_bytes() == (tmp_path / "b" / shard.name).read_bytes()
    ds = HARDVS(str(tmp_path / "a"), "val", data_type="frame", frames_number=2, split_by="number")
    assert len(ds) == 2 and ds[0][0].shape == (2, 2, 260, 346) and ds[1][1] == 1
    with pytest.raises(Exception, match="train_test_val"):
        HARDVS(str(tmp_path / "a"))


def test_bad_lists_and_missing_files(tmp_path):
    gen = write_hardvs(tmp_path / "raw", classes=2, per_split=1)
    with pytest.raises(DatasetError, match=r"train_label\.txt: md5 .* 0d642b6e6871034f151b2649a89d8d3c"):
        convert("hardvs", gen.root, tmp_path / "o", workers=1, progress=False)
    (gen.root / "val_label.txt").write_text("action_001/dvSave-nowhere 0\n")
    with pytest.raises(DatasetError, match=r"val_label\.txt: lists action_001/dvSave-nowhere, which is not in"):
        convert("hardvs", gen.root, tmp_path / "o", workers=1, progress=False, check_md5=False)
    with pytest.raises(DatasetError, match=r"x\.txt: row 2: expected 'action_NNN/<sample> <class>'"):
        parse_list(b"action_001/a 0\naction_301/b 300\n", "x.txt")


def test_real_class_list_parses():
    path = real_file("set3", "hardvs", "HARDVS_300_class.txt")
    names = parse_class_list(path.read_bytes(), str(path))
    assert len(names) == 300 and names[1].startswith("wink")
    assert all(names)
