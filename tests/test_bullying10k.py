"""Bullying10K: generated zips of pickled ``.npy`` files → shards = SpikingJelly 2.0.0; hostile pickles refused."""

from __future__ import annotations

import io
import json
import os

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets.bullying10k import CATEGORIES, parse_file_list, split_every_fifth
from shardgen.formats.events import FormatError
from shardgen.formats.safe_pickle import load_pickled_npy
from tests.conftest import read_split
from tests.gen_classfolders import _zip_bytes
from tests.gen_datasets2 import BULLYING_CATEGORIES, DV_DTYPE, bullying_npy_bytes, write_bullying10k
from tests.realdata import real_file
from tests.sj2compat import sj_class, sj_samples


def same(got: dict, want: dict, key: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{key}: {c}")


def _sj():
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets import bullying10k

    return bullying10k


def test_parity_with_spikingjelly_class(tmp_path):
    """Unique file names: SpikingJelly's class holds the same samples (events, labels); the split follows our rule."""
    sjb = _sj()
    gen = write_bullying10k(tmp_path / "raw", BULLYING_CATEGORIES, per_session=3, max_events=60, repeat_names=False)
    s = convert("bullying10k", gen.root, tmp_path / "out", workers=2, progress=False, check_md5=False)
    assert s["empty_windows"] == 1
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["classes"] == list(sjb.BULLYING10K_CATEGORY_LABEL) == list(CATEGORIES)
    assert index["sensor_size"] == [260, 346]
    ours = {**{k: (v, "train") for k, v in read_split(tmp_path / "out", "train").items()},
            **{k: (v, "test") for k, v in read_split(tmp_path / "out", "test").items()}}
    assert len(ours) == len(gen.samples)
    ordered = sorted(ours, key=lambda k: (k.split("/")[0], k))
    assert all((ours[k][1] == "test") == (i % 5 == 0) for i, k in enumerate(ordered))  # the rule, recomputed
    cls = sj_class(sjb.Bullying10kClassification, gen.md5)
    sj = {**sj_samples(cls, gen.root, tmp_path / "sj", train=True), **sj_samples(cls, gen.root, tmp_path / "sj",
                                                                                   train=False)}
    by_stem = {f"{lab}/{k.rsplit('/', 1)[1]}": k for k, ((_, lab), _) in ours.items()}
    assert sorted(by_stem) == sorted(sj)
    for sj_key, (sj_ev, sj_label) in sj.items():
        (ev, label), _ = ours[by_stem[sj_key]]
        assert label == sj_label
        same(ev, sj_ev, sj_key)
        same(ev, gen.samples[(None, by_stem[sj_key])][1], sj_key)


def test_repeated_names_each_sample_equals_spikingjellys_decoding_of_its_file(tmp_path):
    """Repeated stems: SpikingJelly's paths collide; each of our samples equals its decoding of that one file."""
    sjb = _sj()
    gen = write_bullying10k(tmp_path / "raw", BULLYING_CATEGORIES, per_session=3, max_events=60, repeat_names=True)
    convert("bullying10k", gen.root, tmp_path / "out", workers=2, progress=False, check_md5=False)
    ours = {**read_split(tmp_path / "out", "train"), **read_split(tmp_path / "out", "test")}
    assert len(ours) == len(gen.samples)
    # SpikingJelly would write every recording to <label>/<stem>.npz: repeated stems collide (and its threads
    # then write one file twice at once, which can corrupt it), so its class is not run on this download
    targets = {f"{label}/{key.rsplit('/', 1)[1]}" for key, (_, label) in ours.items()}
    assert len(targets) < len(ours)
    extracted = tmp_path / "x"
    import zipfile

    for name in gen.md5:
        with zipfile.ZipFile(gen.root / name) as zf:
            zf.extractall(extracted)
    for key, (ev, label) in ours.items():
        dst = tmp_path / "one" / key.replace("/", "_")
        (dst / str(label)).mkdir(parents=True)
        src = extracted / f"{key}.npy"
        sjb._convert_npy_to_npz(src, dst, label)
        with np.load(dst / str(label) / f"{src.stem}.npz") as z:
            same(ev, {c: z[c] for c in "txyp"}, key)


def test_split_rule_is_deterministic():
    keys = [f"{c}/{c}_a_b_L_dark/dvSave-{i}" for c in ("walking", "handshake") for i in range(6)]
    split = split_every_fifth(keys[::-1])
    assert [k for k in sorted(keys) if split[k] == "test"] == ["handshake/handshake_a_b_L_dark/dvSave-0",
                                                                "handshake/handshake_a_b_L_dark/dvSave-5",
                                                                "walking/walking_a_b_L_dark/dvSave-4"]


class _Hostile:
    def __reduce__(self):
        return (os.system, ("touch hostile-pickle-ran",))


def test_hostile_pickle_is_refused_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    np.save(buf, np.array([_Hostile()], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match=r"evil\.npy: byte \d+: refused: the pickle asks for (posix|os)\.system"):
        load_pickled_npy(buf.getvalue(), "evil.npy")
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "kicking.zip").write_bytes(_zip_bytes({"kicking/kicking_a_b_L_dark/dvSave-1.npy": buf.getvalue()}))
    with pytest.raises(FormatError) as err:
        convert("bullying10k", raw, tmp_path / "out", workers=1, progress=False, check_md5=False)
    assert "kicking.zip:kicking/kicking_a_b_L_dark/dvSave-1.npy: byte 288: refused: the pickle asks for" \
        in str(err.value)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "hostile-pickle-ran").exists()
    # a plain (non-object) structured .npy is read without any unpickling; other damage is a FormatError
    arr = np.zeros(3, dtype=[("t", "<i8"), ("x", "<i2"), ("y", "<i2"), ("p", "i1")])
    plain = io.BytesIO()
    np.save(plain, arr)
    assert load_pickled_npy(plain.getvalue(), "p.npy").shape == (3,)
    good = bullying_npy_bytes([arr.astype(DV_DTYPE)])
    assert load_pickled_npy(good, "g.npy")[0].shape == (3,)
    for cut in (1, 20, 200):
        with pytest.raises(FormatError, match=r"d\.npy: byte \d+: (pickle ends without STOP|needs \d+ bytes)"):
            load_pickled_npy(good[:-cut], "d.npy")
    for opcode in (b"\x81", b"i", b"P"):  # NEWOBJ, INST, PERSID: refused whatever follows
        with pytest.raises(FormatError, match=r"o\.npy: byte \d+: refused: pickle opcode"):
            load_pickled_npy(good[:128] + b"\x80\x02" + opcode + good[130:], "o.npy")
    nested = io.BytesIO()
    np.save(nested, np.array([{"t": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(FormatError, match=r"n\.npy: an element is a dict, not an array"):
        load_pickled_npy(nested.getvalue(), "n.npy")


def test_facade(tmp_path):
    from loader.datasets import Bullying10kClassification

    gen = write_bullying10k(tmp_path / "raw", categories=("punching",), sessions=2, per_session=3)
    convert("bullying10k", gen.root, tmp_path / "out", workers=1, progress=False, check_md5=False)
    ds = Bullying10kClassification(str(tmp_path / "out"), train=False, data_type="frame", frames_number=2,
                                   split_by="number", return_key=True)
    assert len(ds) == 2 and ds.get_H_W() == (260, 346)
    x, label, key = ds[0]
    assert x.shape == (2, 2, 260, 346) and label == 2 and key.startswith("punching/punching_p0_q0_L_dark/")


def test_real_file_lists_parse_and_keys_stay_unique():
    lists = [real_file("set3", "bullying10k", f"efv_{s}_label.txt") for s in ("train", "test")]
    paths = [p for f in lists for p in parse_file_list(f.read_bytes(), str(f))]
    assert len(paths) == len(set(paths)) == 9844
    stems: dict[tuple[str, str], set[str]] = {}
    for p in paths:
        cat, session, stem = p.split("/")
        stems.setdefault((cat, stem), set()).add(session)
    assert sum(len(s) - 1 for s in stems.values()) == 901  # SpikingJelly's <label>/<stem> would lose 901 of 9844
    per_list = 0
    for f in lists:
        seen: dict[tuple[str, str], set[str]] = {}
        for p in parse_file_list(f.read_bytes(), str(f)):
            cat, session, stem = p.split("/")
            seen.setdefault((cat, stem), set()).add(session)
        per_list += sum(len(s) > 1 for s in seen.values())
    assert per_list == 713  # the count: 623 in the train list + 90 in the test list
    assert len(split_every_fifth(paths)) == 9844


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_pickle_protocols_numpy_writes(protocol):
    """``np.save`` wrote protocol 3 under numpy 1.x (the published files), writes 4 now; 2 codes bytes by codecs."""
    import pickle  # the test makes the files; the package never imports pickle

    packets = np.empty(2, dtype=object)
    packets[0] = np.array([(5, 1, 2, 1), (9, 3, 4, 0)], dtype=DV_DTYPE)
    packets[1] = np.zeros(0, DV_DTYPE)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, np.lib.format.header_data_from_array_1_0(packets))
    buf.write(pickle.dumps(packets, protocol=protocol))
    got = load_pickled_npy(buf.getvalue(), f"p{protocol}.npy")
    assert got.dtype == object and len(got) == 2
    np.testing.assert_array_equal(got[0], packets[0])
    assert got[0].dtype == DV_DTYPE and got[1].shape == (0,)
