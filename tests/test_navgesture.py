"""NAVGesture walk/sit: generated ``navgesture-<walk|sit>.zip`` downloads → shards = SpikingJelly 2.0.0's classes."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from shardgen.formats.events import FormatError
from tests.conftest import read_split
from tests.gen_classfolders import _zip_bytes
from tests.gen_datasets2 import NAV_GESTURES, atis_td_dat_bytes, write_navgesture
from tests.sj2compat import sj_class, sj_samples


def same(got: dict, want: dict, key: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64),
                                      err_msg=f"{key}: {c}")


def reference(ev: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """SpikingJelly's reader written out step by step with loops (small samples only), independently of ours."""
    t_in = [int(v) for v in ev["t"]]
    n = len(t_in)
    stored = [0] * n
    src = [-1] * n
    count = 0
    for i in range(n):
        if t_in[i] >= stored[max(0, i - 1)]:
            stored[i] = t_in[i]
            src[i] = i
            count += 1
    rows = [(stored[i], src[i]) for i in range(count)]
    if rows:
        t0 = rows[0][0]
        rows = [(t - t0, s) for t, s in rows]
    while True:  # repeated passes, as the authors' code
        drop, i = set(), 0
        while i < len(rows) - 1:
            if rows[i + 1][0] < rows[i][0]:
                drop.add(i + 1)
                i += 1
            i += 1
        if not drop:
            break
        rows = [r for j, r in enumerate(rows) if j not in drop]
    pick = lambda c: np.array([ev[c][s] if s >= 0 else 0 for _, s in rows], dtype=np.int64)  # noqa: E731
    return {"t": np.array([t for t, _ in rows], dtype=np.int64), "x": pick("x"), "y": 239 - pick("y"), "p": pick("p")}


@pytest.mark.parametrize("which", ["walk", "sit"])
def test_parity_with_spikingjelly(which, tmp_path):
    """Every sample's events and label equal SpikingJelly's NAVGestureWalk on the same download (sit: see docs)."""
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.nav_gesture import NAVGestureSit, NAVGestureWalk

    gen = write_navgesture(tmp_path / "raw", which, shuffled=True)
    convert(f"nav-gesture-{which}", gen.root, tmp_path / "out", workers=2, progress=False, check_md5=False)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["classes"] == sorted(NAV_GESTURES) and index["sensor_size"] == [240, 304]
    ours = read_split(tmp_path / "out", "all")
    overrides = {}
    if which == "sit":
        with pytest.raises(TypeError):  # SpikingJelly's own Sit class cannot be built
            sj_class(NAVGestureSit, gen.md5)(str(tmp_path / "sj0"), data_type="event")
        overrides["extract_downloaded_files"] = NAVGestureSit.__dict__["extract_downloaded_files"]
    sj = sj_samples(sj_class(NAVGestureWalk, gen.md5, **overrides), gen.root, tmp_path / "sj")
    assert sorted(ours) == sorted(sj) and len(ours) == len(gen.samples)
    assert list(ours) == sorted(ours, key=lambda k: (k.split("/")[0], k))  # label, then key
    dropped = 0
    for key, (ev, label) in ours.items():
        sj_ev, sj_label = sj[key]
        assert label == sj_label, key
        same(ev, sj_ev, key)
        ref = reference(gen.samples[("all", key)][1])
        same(ev, ref, key)
        dropped += len(gen.samples[("all", key)][1]["t"]) - len(ev["t"])
    assert dropped > 0  # the shuffled time stamps exercised the reader's dropping rules


def test_split_all_view_and_facade(tmp_path):
    from loader.datasets import NAVGestureWalk

    gen = write_navgesture(tmp_path / "raw", "walk", users=2, per_gesture=3)
    s = convert("nav-gesture-walk", gen.root, tmp_path / "out", workers=1, progress=False, check_md5=False,
                split={"train_ratio": 0.5, "seed": 3})
    assert s["samples"]["train"] == s["samples"]["test"] == 18
    whole = NAVGestureWalk(str(tmp_path / "out"), data_type="frame", frames_number=2, split_by="number",
                           return_key=True)
    assert len(whole) == 36 and whole.get_H_W() == (240, 304)
    for x, label, key in whole:
        assert x.shape == (2, 2, 240, 304) and NAV_GESTURES.index(key.split("/")[0]) >= 0
        assert sorted(NAV_GESTURES)[label] == key.split("/")[0]
        assert float(x.sum()) == len(gen.samples[("all", key)][1]["t"])  # sorted generated times: nothing dropped
    assert len(NAVGestureWalk(str(tmp_path / "out"), train=True)) == 18


def test_empty_file_extracted_folder_and_damage(tmp_path):
    raw = tmp_path / "raw" / "user01"
    raw.mkdir(parents=True)
    (raw / "user01_le_0_td.dat").write_bytes(atis_td_dat_bytes([], [], [], []))
    (raw / "user01_up_0_td.dat").write_bytes(atis_td_dat_bytes([5, 9], [3, 303], [0, 239], [1, 0], header=False))
    (raw / "user01_xx_0_td.dat").write_bytes(b"")
    s = convert("nav-gesture-walk", tmp_path / "raw", tmp_path / "out", workers=1, progress=False,
                split={"train_ratio": 1.0})
    assert s["empty_windows"] == 1 and any("user01_xx_0_td.dat" in k for k in s["skipped"])
    got = read_split(tmp_path / "out", "train")
    assert len(got["le/user01_le_0_td"][0]["t"]) == 0
    same(got["up/user01_up_0_td"][0], {"t": [0, 4], "x": [3, 303], "y": [239, 0], "p": [1, 0]}, "up")
    (raw / "user01_do_1_td.dat").write_bytes(atis_td_dat_bytes([1], [1], [1], [1]) + b"\x00\x01\x02")
    with pytest.raises(FormatError, match=r"user01_do_1_td\.dat: byte 83: incomplete 8-byte event"):
        convert("nav-gesture-walk", tmp_path / "raw", tmp_path / "o2", workers=1, progress=False)
    (raw / "user01_do_1_td.dat").write_bytes(atis_td_dat_bytes([1], [1], [240], [1]))
    with pytest.raises(FormatError, match=r"user01_do_1_td\.dat: event 0 at y=240"):
        convert("nav-gesture-walk", tmp_path / "raw", tmp_path / "o3", workers=1, progress=False)


def test_md5_and_missing_download(tmp_path):
    gen = write_navgesture(tmp_path / "raw", "sit", users=1, per_gesture=1)
    with pytest.raises(DatasetError, match=r"navgesture-sit\.zip: md5 [0-9a-f]{32} differs from the published "
                                           r"1571753ace4d9e0946e6503313712c22"):
        convert("nav-gesture-sit", gen.root, tmp_path / "out", workers=1, progress=False)
    (tmp_path / "none").mkdir()
    with pytest.raises(DatasetError, match=r"issues/423"):
        convert("nav-gesture-walk", tmp_path / "none", tmp_path / "out", workers=1, progress=False)
    # an unsafe member inside a user zip is skipped and reported
    evil = _zip_bytes({"user09.zip": _zip_bytes({"../user09_do_0_td.dat": atis_td_dat_bytes([1], [1], [1], [1]),
                                                 "user09/user09_do_1_td.dat": atis_td_dat_bytes([1], [1], [1], [1])})},
                      dirs=False)
    (tmp_path / "evil").mkdir()
    (tmp_path / "evil" / "navgesture-walk.zip").write_bytes(evil)
    s = convert("nav-gesture-walk", tmp_path / "evil", tmp_path / "o4", workers=1, progress=False, check_md5=False)
    assert sum(s["samples"][k] for k in ("train", "test")) == 1
    assert any("points outside" in k for k in s["skipped"])
    assert zipfile.is_zipfile(tmp_path / "evil" / "navgesture-walk.zip")
