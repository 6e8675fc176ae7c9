"""ES-ImageNet: a generated ``ES-imagenet-0.18/`` download → shards = SpikingJelly 2.0.0's ``ESImageNet``.

The RAR volumes cannot be generated here (no tool can write RAR): the archive path is tested with
the same members in a tar split over three ``partNN.rar`` files and in a single 7-Zip volume, both
read through libarchive's multi-file open (:mod:`shardgen.volumes`), which recognises the format
from the bytes. Real RAR 3/5 volume sets are read by an opt-in test (``EVENTSHARD_RAR_VOLUMES``).
"""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from shardgen.datasets.es_imagenet import CLASSES, parse_dirlabel, parse_vallabel
from tests.conftest import read_split
from tests.gen_datasets2 import write_esimagenet
from tests.realdata import real_file


def as_rows(ev: dict) -> np.ndarray:
    return np.stack([np.asarray(ev[c]).astype(np.int64) for c in "txyp"], 1)


def stable_reference(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Rows (t, x, y, p): pos (p=1) then neg (p=0), x = column 1, y = column 0, sorted by t keeping that order."""
    rows = [(int(r[2]), int(r[1]), int(r[0]), 1, i) for i, r in enumerate(pos)]
    rows += [(int(r[2]), int(r[1]), int(r[0]), 0, len(pos) + i) for i, r in enumerate(neg)]
    rows.sort(key=lambda r: (r[0], r[4]))
    return np.array([r[:4] for r in rows], dtype=np.int64).reshape(-1, 4)


def expected(gen) -> dict[tuple[str, str], tuple[int, np.ndarray]]:
    """(split, our key) → (our label, reference rows) from the generated files."""
    out = {}
    for (split, name), (n, ev, _) in gen.samples.items():
        stem = name.rsplit("/", 1)[1]
        key = f"class{n}/{stem}"
        out[(split, key)] = (CLASSES.index(f"class{n}"), stable_reference(ev["pos"], ev["neg"]))
    return out


def check_against_generated(out: Path, gen) -> None:
    want = expected(gen)
    n = 0
    for split in ("train", "test"):
        for key, (ev, label) in read_split(out, split).items():
            w_label, rows = want[(split, key)]
            assert label == w_label, key
            np.testing.assert_array_equal(as_rows(ev), rows, err_msg=key)
            n += 1
    assert n == len(want)


def test_parity_with_spikingjelly(tmp_path):
    """Every sample: SpikingJelly's events up to the order of equal time stamps (its sort is unstable), same label."""
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.es_imagenet import ESImageNet

    gen = write_esimagenet(tmp_path / "raw", classes=1000, per_class=1, val=1000, max_events=24)
    (tmp_path / "raw" / "ES-imagenet-0.18" / "train" / "class0" / "class0_1.npz").write_bytes(
        (tmp_path / "raw" / "ES-imagenet-0.18" / "train" / "class1" / "class1_0.npz").read_bytes())
    gen.samples[("train", "train/class0/class0_1")] = (0, *gen.samples[("train", "train/class1/class1_0")][1:])
    s = convert("es-imagenet", gen.root, tmp_path / "out", workers=2, progress=False)
    assert s["empty_windows"] == 1
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["classes"][:4] == ["class0", "class1", "class10", "class100"] and index["sensor_size"] == [256, 256]
    check_against_generated(tmp_path / "out", gen)
    # SpikingJelly's own conversion of the extracted folder (its RAR extraction step is the only one skipped)
    root = tmp_path / "sj"
    (root / "events_np").mkdir(parents=True)
    ESImageNet.create_raw_from_extracted(gen.root, root / "events_np")
    for split in ("train", "test"):
        ds = ESImageNet(str(root), train=split == "train", data_type="event")
        ours = read_split(tmp_path / "out", split)
        keys = [Path(p).relative_to(ds.root).with_suffix("").as_posix() for p, _ in ds.samples]
        assert keys == list(ours)  # same keys, same order
        for i, key in enumerate(keys):
            ev, label = ds[i]
            ev_ours, label_ours = ours[key]
            assert label == label_ours, key
            sj, mine = as_rows(ev), as_rows(ev_ours)
            np.testing.assert_array_equal(sj[:, 0], mine[:, 0], err_msg=key)  # times equal, in order
            np.testing.assert_array_equal(sj[np.lexsort(sj.T[::-1])], mine[np.lexsort(mine.T[::-1])], err_msg=key)


def _tar_volumes(gen, dest: Path, parts: int) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.add(gen.root / "ES-imagenet-0.18", arcname="ES-imagenet-0.18")
    data = buf.getvalue()
    dest.mkdir()
    cut = [0, *sorted(np.random.default_rng(0).integers(1, len(data), parts - 1).tolist()), len(data)]
    for i in range(parts):
        (dest / f"ES-imagenet-0.18.part{i + 1:02d}.rar").write_bytes(data[cut[i]:cut[i + 1]])


def test_archive_volumes_tar_split_and_7zip(tmp_path):
    pytest.importorskip("libarchive")
    import libarchive

    gen = write_esimagenet(tmp_path / "raw", classes=3, per_class=3, val=6)
    _tar_volumes(gen, tmp_path / "tar", 3)
    s = convert("es-imagenet", tmp_path / "tar", tmp_path / "a", workers=2, progress=False, check_md5=False)
    assert s["samples"] == {"train": 9, "test": 6}
    assert any("3 of the 25 published volumes" in w for w in s["warnings"])
    check_against_generated(tmp_path / "a", gen)
    # read in archive order, written in the dataset's order: the same shards as from the extracted folder
    convert("es-imagenet", gen.root, tmp_path / "x", workers=2, progress=False, check_md5=False)
    shards = sorted(p.name for p in (tmp_path / "x").glob("*.tar.zst"))
    assert shards and shards == sorted(p.name for p in (tmp_path / "a").glob("*.tar.zst"))
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "x" / n).read_bytes() for n in shards)
    seven = tmp_path / "7z"
    seven.mkdir()
    with libarchive.file_writer(str(seven / "ES-imagenet-0.18.part01.rar"), "7zip") as arc:
        for f in sorted((gen.root / "ES-imagenet-0.18").rglob("*")):
            if f.is_file():
                data = f.read_bytes()
                arc.add_file_from_memory(f.relative_to(gen.root).as_posix(), len(data), data)
    shutil.copyfile(gen.root / "ES-imagenet-0.18" / "vallabel.txt", seven / "vallabel.txt")  # labels beside
    s = convert("es-imagenet", seven, tmp_path / "b", workers=1, progress=False, check_md5=False)
    assert s["samples"] == {"train": 9, "test": 6}
    check_against_generated(tmp_path / "b", gen)
    with pytest.raises(DatasetError, match=r"part01\.rar: md5 [0-9a-f]{32} differs from the published "
                                           r"900bdd57b5641f7d81cd4620283fef76"):
        convert("es-imagenet", seven, tmp_path / "c", workers=1, progress=False)


def test_damaged_volumes_and_bad_samples(tmp_path):
    pytest.importorskip("libarchive")
    gen = write_esimagenet(tmp_path / "raw", classes=2, per_class=2, val=2)
    _tar_volumes(gen, tmp_path / "tar", 2)
    part1 = tmp_path / "tar" / "ES-imagenet-0.18.part01.rar"
    data = part1.read_bytes()
    part1.write_bytes(data[:700] + data[1500:])  # bytes lost inside the first member: the stream misaligns
    with pytest.raises(DatasetError, match=r"part01\.rar \(\+1 volumes\): not a readable archive"):
        convert("es-imagenet", tmp_path / "tar", tmp_path / "o", workers=1, progress=False, check_md5=False)
    bad = gen.root / "ES-imagenet-0.18" / "train" / "class1" / "class1_9.npz"
    buf = io.BytesIO()
    np.savez(buf, pos=np.zeros((2, 2), np.uint8), neg=np.zeros((0, 3), np.uint8))
    bad.write_bytes(buf.getvalue())
    with pytest.raises(Exception, match=r"class1_9\.npz: 'pos' has shape \(2, 2\), expected \(n, 3\)"):
        convert("es-imagenet", gen.root, tmp_path / "o2", workers=1, progress=False)
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match="shardgen download es-imagenet"):
        convert("es-imagenet", tmp_path / "none", tmp_path / "o3", workers=1, progress=False)


def test_facade(tmp_path):
    from loader.datasets import ESImageNet

    gen = write_esimagenet(tmp_path / "raw", classes=2, per_class=2, val=3)
    convert("es-imagenet", gen.root, tmp_path / "out", workers=1, progress=False)
    ds = ESImageNet(str(tmp_path / "out"), train=False, data_type="frame", frames_number=2, split_by="number")
    assert len(ds) == 3 and ds.get_H_W() == (256, 256)
    x, label = ds[0]
    assert x.shape == (2, 2, 256, 256) and ds.classes[label] in ("class0", "class1")


def test_real_label_files_parse():
    path = real_file("set3", "es_imagenet", "vallabel.txt")
    val = parse_vallabel(path.read_bytes(), str(path))
    assert len(val) == 49_881 and set(val.values()) == set(range(1000))
    d = real_file("set3", "es_imagenet", "dirlabel.txt")
    dirs = parse_dirlabel(d.read_bytes(), str(d))
    assert list(dirs) == sorted(dirs) and dirs["n01440764"] == 0 and dirs["n15075141"] == 999
    with pytest.raises(DatasetError, match=r"x: row 1: expected 'ILSVRC2012_val_NNNNNNNN.npz"):
        parse_vallabel(b"ILSVRC2012_val_1.npz 3 4 5\n", "x")


def test_volumes_convert_in_jobs_and_merge(tmp_path):
    """The cluster path: each job streams the volumes and keeps its own batches; the merged set has every sample."""
    pytest.importorskip("libarchive")
    from shardgen.jobs import merge

    gen = write_esimagenet(tmp_path / "raw", classes=3, per_class=30, val=20, max_events=40)
    _tar_volumes(gen, tmp_path / "tar", 2)
    for j in range(3):
        convert("es-imagenet", tmp_path / "tar", tmp_path / "out", workers=1, progress=False, check_md5=False,
                num_jobs=3, job_index=j)
    merge(tmp_path / "out")
    check_against_generated(tmp_path / "out", gen)


def test_real_multivolume_rar_when_available():
    """Real RAR 3 and RAR 5 volume sets through :func:`shardgen.volumes.iter_volumes` (opt-in: nothing writes RAR here).

    Point ``EVENTSHARD_RAR_VOLUMES`` at rarfile 4.2's ``test/files`` folder (``pip download rarfile==4.2
    --no-deps --no-binary :all:``; third-party files, not kept in this repository): ``rar{3,5}-vols.part{1,2,3}.rar``
    hold a stored 205,000-byte file spanning all three volumes and a small one in the last.
    """
    import os
    import zlib

    from shardgen.archive import ArchiveError
    from shardgen.volumes import iter_volumes

    folder = Path(os.environ.get("EVENTSHARD_RAR_VOLUMES", "/nonexistent"))
    if not (folder / "rar5-vols.part1.rar").is_file():
        pytest.skip("set EVENTSHARD_RAR_VOLUMES to rarfile 4.2's test/files folder to run this")
    pytest.importorskip("libarchive")
    for kind in ("rar3", "rar5"):
        parts = sorted(folder.glob(f"{kind}-vols.part*.rar"))
        got = [(str(m), n, zlib.crc32(d)) for m, n, d in iter_volumes(parts, 1 << 30)]
        assert got == [("vols/bigfile.txt", 205000, 0x509AD74C), ("vols/smallfile.txt", 2050, 0xD08A1F86)], kind
    with pytest.raises(ArchiveError, match=r"part1\.rar \(\+1 volumes\): not a readable archive"):
        list(iter_volumes([folder / "rar5-vols.part1.rar", folder / "rar5-vols.part3.rar"], 1 << 30))
