"""``shardgen.demo_data`` (the demo's generated DVS128 Gesture download) converts to exactly the events it wrote.

The generator is written from the format description, not from the readers; its own record of every gesture
window (events, label, key, split) is the truth the conversion must give back, value for value.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from loader import EventShardDataset
from shardgen.cli import main
from shardgen.demo_data import write_gesture_download


def test_demo_download_converts_to_what_it_wrote(tmp_path: Path) -> None:
    gen = write_gesture_download(tmp_path / "raw", n_train=2, n_test=1, events_per_sample=300, seed=4)
    assert gen.recordings == ["user01_fluorescent", "user01_fluorescent_led", "user24_fluorescent"]
    argv = ["convert", "dvs128-gesture", "--raw", str(tmp_path / "raw"), "--out", str(tmp_path / "out"), "--no-md5",
            "--quiet", "--workers", "1"]
    assert main(argv) == 0
    for split, n in (("train", 22), ("test", 11)):
        got = {k: (ev, label) for ev, label, k in EventShardDataset(tmp_path / "out", split, shuffle=False,
                                                                    return_key=True)}
        want = {k: v for k, v in gen.samples.items() if v["split"] == split}
        assert sorted(got) == sorted(want) and len(want) == n
        for key, v in want.items():
            ev, label = got[key]
            assert label == v["label"] == int(key.split("/")[0]), key
            for c in "txyp":
                assert np.array_equal(ev[c], v[c]), f"{key}: {c}"


def test_same_arguments_same_bytes(tmp_path: Path) -> None:
    def digest(root: Path) -> dict[str, str]:
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.iterdir())}

    write_gesture_download(tmp_path / "a", n_train=1, n_test=1, events_per_sample=50, seed=9)
    write_gesture_download(tmp_path / "b", n_train=1, n_test=1, events_per_sample=50, seed=9)
    assert digest(tmp_path / "a") == digest(tmp_path / "b")
    assert sorted(digest(tmp_path / "a")) == ["DvsGesture.tar.gz", "LICENSE.txt", "README.txt", "gesture_mapping.csv"]
