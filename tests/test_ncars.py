"""N-CARS: generated downloads in the authors' nested-zip layout and the real ``.dat`` files → shards.

Neither SpikingJelly nor tonic has N-CARS: the reference is an independent ``.dat`` decoder written
here from ``shared/FORMATS.md`` §7 (and expelliarmus 1.1.12 on the real files).
"""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from tests.conftest import read_split
from tests.gen_classfolders import _zip_bytes
from tests.gen_datasets2 import write_ncars
from tests.realdata import REALDATA


def decode_dat(data: bytes) -> dict[str, np.ndarray]:
    """Independent Prophesee DAT (Event2D) decoder: ``% `` lines, type + size bytes, (u32 t, u32 w) LE records."""
    pos = 0
    header = False
    while data[pos:pos + 2] == b"% ":
        pos = data.index(b"\n", pos) + 1
        header = True
    if header:
        assert data[pos] in (0, 12) and data[pos + 1] == 8
        pos += 2
    rec = np.frombuffer(data[pos:], dtype=[("t", "<u4"), ("w", "<u4")])
    w = rec["w"].astype(np.int64)
    return {"t": rec["t"].astype(np.int64), "x": w & 0x3FFF, "y": (w >> 14) & 0x3FFF, "p": (w >> 28) & 1}


def same(got: dict, want: dict, key: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{key}: {c}")


def test_generated_download_equals_the_generated_events(tmp_path):
    gen = write_ncars(tmp_path / "raw")
    s = convert("n-cars", gen.root, tmp_path / "out", workers=2, progress=False)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["classes"] == ["background", "cars"] and index["sensor_size"] == [100, 120]
    assert s["empty_windows"] == 1
    n = 0
    for split in ("train", "test"):
        got = read_split(tmp_path / "out", split)
        want = {k: v for (sp, k), v in gen.samples.items() if sp == split}
        assert sorted(got) == sorted(want)
        keys = list(got)
        assert keys == sorted(keys, key=lambda k: (k.split("/")[0] == "cars", k))  # background first, then name
        for key, (ev, label) in got.items():
            w_label, w_ev, _ = want[key]
            assert label == w_label
            same(ev, w_ev, key)
            n += 1
    assert n == len(gen.samples)
    # stems repeat across classes: both kept
    assert ("train", "cars/obj_000000_td") in gen.samples and ("train", "background/obj_000000_td") in gen.samples


def test_inner_zips_and_extracted_folders_give_the_same_shards(tmp_path):
    gen = write_ncars(tmp_path / "raw", per_class=3)
    inner_raw, folder_raw = tmp_path / "inner", tmp_path / "folder" / "N-CARS"
    inner_raw.mkdir()
    with zipfile.ZipFile(gen.root / "Prophesee_Dataset_n_cars.zip") as zf:
        zf.extractall(inner_raw)
    for name in ("n-cars_train.zip", "n-cars_test.zip"):
        with zipfile.ZipFile(inner_raw / name) as zf:
            zf.extractall(folder_raw / name[:-4])
    stored_raw = tmp_path / "stored"  # the inner zips stored uncompressed in the outer one: read in place
    stored_raw.mkdir()
    _restore(gen.root / "Prophesee_Dataset_n_cars.zip", stored_raw / "Prophesee_Dataset_n_cars.zip")
    from shardgen.datasets import n_cars

    src = n_cars.open_source(stored_raw)
    assert src.inner is not None and src.inner.tmp is None  # nothing copied out
    assert {it.container for it in src.items} == {str(stored_raw / "Prophesee_Dataset_n_cars.zip")}
    src.close()
    runs = {}
    for name, raw in (("a", gen.root), ("b", inner_raw), ("c", tmp_path / "folder"), ("d", stored_raw)):
        runs[name] = convert("n-cars", raw, tmp_path / name, workers=1, progress=False)
    assert runs["a"]["samples"] == runs["b"]["samples"] == runs["c"]["samples"] == runs["d"]["samples"]
    shards = sorted((tmp_path / "a").glob("*.tar.zst"))
    assert shards
    for shard in shards:
        assert shard.read_bytes() == (tmp_path / "b" / shard.name).read_bytes() == (tmp_path / "c" / shard.name
                                                                                      ).read_bytes()
        assert shard.read_bytes() == (tmp_path / "d" / shard.name).read_bytes()


def _restore(src: Path, dest: Path, damage: str | None = None) -> None:
    """``src`` rewritten with every member stored (``damage``: flip a byte of that inner member's data)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            inner = {i.filename: i for i in zipfile.ZipFile(io.BytesIO(data)).infolist()} if damage else {}
            if damage in inner:
                body = zipfile.ZipFile(io.BytesIO(data)).read(damage)
                buf = io.BytesIO()
                with zipfile.ZipFile(io.BytesIO(data)) as zi, zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zo:
                    for i in zi.infolist():
                        zo.writestr(i.filename, zi.read(i))
                data = bytearray(buf.getvalue())
                data[data.index(body) + 20] ^= 0xFF  # inside the member's stored bytes: its CRC fails
                data = bytes(data)
            zout.writestr(info.filename, data)


def test_damaged_member_of_a_stored_inner_zip_is_named(tmp_path):
    gen = write_ncars(tmp_path / "raw", per_class=2, max_events=50)
    raw = tmp_path / "stored"
    raw.mkdir()
    _restore(gen.root / "Prophesee_Dataset_n_cars.zip", raw / "Prophesee_Dataset_n_cars.zip",
             damage="train/cars/obj_000001_td.dat")
    with pytest.raises(DatasetError, match=r"Prophesee_Dataset_n_cars\.zip: member 'train/cars/obj_000001_td\.dat'"
                                           r" at byte \d+: CRC-32"):
        convert("n-cars", raw, tmp_path / "out", workers=1, progress=False)


def _real_files() -> list[Path]:
    files = sorted((REALDATA / "ncars").glob("*.dat")) + sorted((REALDATA / "set2" / "ncars_dat").glob("*.dat"))
    if len(files) < 8:
        pytest.skip("real N-CARS files not available (../shared/realdata)")
    return files


def test_real_files_through_the_ncars_layout(tmp_path):
    """The eight real N-CARS ``.dat`` files inside the authors' nested zips: independent decoder + expelliarmus."""
    files = _real_files()
    inner: dict[str, dict[str, bytes]] = {"train": {}, "test": {}}
    expected = {}
    for i, f in enumerate(files):
        split, cls = ("train", "test")[i % 2], ("cars", "background")[(i // 2) % 2]
        inner[split][f"{split}/{cls}/{f.name}"] = f.read_bytes()
        expected[(split, f"{cls}/{f.stem}")] = f
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "Prophesee_Dataset_n_cars.zip").write_bytes(
        _zip_bytes({f"n-cars_{s}.zip": _zip_bytes(m) for s, m in inner.items()}, dirs=False))
    s = convert("n-cars", raw, tmp_path / "out", workers=2, progress=False)
    assert s["samples"]["train"] + s["samples"]["test"] == len(files)
    import expelliarmus

    wiz = expelliarmus.Wizard(encoding="dat")
    for split in ("train", "test"):
        for key, (ev, label) in read_split(tmp_path / "out", split).items():
            f = expected[(split, key)]
            assert label == ("background", "cars").index(key.split("/")[0])
            ref = decode_dat(f.read_bytes())
            assert len(ref["t"]) > 100
            same(ev, ref, key)
            exp = wiz.read(str(f))
            same(ev, {"t": exp["t"], "x": exp["x"], "y": exp["y"], "p": exp["p"]}, key)


def test_facade_and_frames(tmp_path):
    from loader.datasets import NCARS

    gen = write_ncars(tmp_path / "raw", per_class=3)
    convert("n-cars", gen.root, tmp_path / "out", workers=1, progress=False)
    ds = NCARS(str(tmp_path / "out"), train=False, data_type="frame", frames_number=4, split_by="number",
               return_key=True)
    assert len(ds) == 6 and ds.get_H_W() == (100, 120)
    for x, label, key in ds:
        _, ev, _ = gen.samples[("test", key)]
        assert x.shape == (4, 2, 100, 120) and float(x.sum()) == len(ev["t"])
        assert label == ("background", "cars").index(key.split("/")[0])


def test_damaged_and_missing_downloads(tmp_path):
    gen = write_ncars(tmp_path / "raw", per_class=2)
    with pytest.raises(DatasetError, match="official split"):
        convert("n-cars", gen.root, tmp_path / "x", workers=1, progress=False, split={"seed": 2})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no N-CARS samples found.*prophesee"):
        convert("n-cars", tmp_path / "empty", tmp_path / "x", workers=1, progress=False)
    folder = tmp_path / "folder"
    (folder / "train" / "cars").mkdir(parents=True)
    shutil.copyfile(Path(__file__).resolve(), folder / "train" / "cars" / "obj_1_td.dat")
    with pytest.raises(Exception, match=r"obj_1_td\.dat"):
        convert("n-cars", folder, tmp_path / "x", workers=1, progress=False)


def test_damaged_member_of_an_inner_zip_is_named_by_the_published_archives(tmp_path):
    from tests.gen_eventfiles import encode_dat

    raw = tmp_path / "raw"
    raw.mkdir()
    bad = encode_dat([1, 2], [3, 4], [5, 6], [0, 1])[:-3]
    inner = _zip_bytes({"train/cars/obj_000007_td.dat": bad, "train/background/obj_000001_td.dat": encode_dat(
        [1], [1], [1], [1])})
    (raw / "Prophesee_Dataset_n_cars.zip").write_bytes(_zip_bytes({"n-cars_train.zip": inner}, dirs=False))
    with pytest.raises(Exception, match=r"Prophesee_Dataset_n_cars\.zip:n-cars_train\.zip:train/cars/obj_000007_td"
                                        r"\.dat: byte \d+: incomplete 8-byte event"):
        convert("n-cars", raw, tmp_path / "out", workers=1, progress=False)
