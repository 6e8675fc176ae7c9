"""Checks of the DVS128 Gesture download generator with an independent, struct-based reading of its files."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile

import numpy as np
import pytest

from tests.gen_dvsgesture import (
    GESTURE_MAPPING,
    aedat31_bytes,
    aedat31_header,
    expected_samples,
    packet_bytes,
    polarity_payload,
    write_gesture_download,
)

END = b"#!END-HEADER\r\n"


def parse_aedat31(data: bytes) -> dict:
    """Minimal reader written from FORMATS.md §2 with ``struct`` only (one event at a time)."""
    lines = []
    pos = 0
    while True:
        nl = data.index(b"\n", pos) + 1
        lines.append(data[pos:nl])
        pos = nl
        if lines[-1] == END:
            break
    t, x, y, p, valid, packets = [], [], [], [], [], []
    while pos < len(data):
        assert len(data) - pos >= 28, "truncated packet header"
        etype, source, size, tsoff, ovf, cap, num, nvalid = struct.unpack_from("<hhiiiiii", data, pos)
        pos += 28
        assert cap == num and source == 1
        payload = data[pos : pos + cap * size]
        assert len(payload) == cap * size, "truncated payload"
        pos += cap * size
        packets.append((etype, ovf, num, size, nvalid))
        if etype == 1:
            assert size == 8 and tsoff == 4
            count = 0
            for word, ts in struct.iter_unpack("<Ii", payload):
                t.append(ts | (ovf << 31))
                x.append((word >> 17) & 0x7FFF)
                y.append((word >> 2) & 0x7FFF)
                p.append((word >> 1) & 1)
                valid.append(word & 1)
                count += word & 1
            assert count == nvalid
    return {"header": lines, "t": t, "x": x, "y": y, "p": p, "valid": valid, "packets": packets}


def read_tar(path) -> tuple[list[tarfile.TarInfo], dict[str, bytes]]:
    with tarfile.open(path, "r:gz") as tf:
        infos = tf.getmembers()
        files = {m.name: tf.extractfile(m).read() for m in infos if m.isfile()}
    return infos, files


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("gesture")
    gen = write_gesture_download(root, n_train=3, n_test=2, events_per_sample=300, extracted=True)
    return gen, read_tar(root / "DvsGesture.tar.gz")


def test_layout_md5_and_tar_members(small):
    gen, (infos, files) = small
    root = gen.root
    top = sorted(p.name for p in root.iterdir())
    assert top == ["DvsGesture", "DvsGesture.tar.gz", "LICENSE.txt", "README.txt", "gesture_mapping.csv"]
    for name, md5 in gen.md5.items():
        assert hashlib.md5((root / name).read_bytes()).hexdigest() == md5
    assert set(gen.md5) == {"DvsGesture.tar.gz", "LICENSE.txt", "README.txt", "gesture_mapping.csv"}
    stems = ["user01_fluorescent", "user01_fluorescent_led", "user01_lab", "user24_fluorescent",
             "user24_fluorescent_led"]
    assert list(gen.recordings) == stems
    names = [m.name for m in infos]
    assert names == gen.members and names[0] == "DvsGesture" and infos[0].isdir()
    expected = {"DvsGesture/" + n for n in ("LICENSE.txt", "README.txt", "trials_to_train.txt",
                                            "trials_to_test.txt")}
    expected |= {f"DvsGesture/{s}{suf}" for s in stems for suf in (".aedat", "_labels.csv")}
    assert set(files) == expected
    for m in infos:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "root", "root")
    for name, data in files.items():  # extracted copy is the same
        assert (root / name).read_bytes() == data
    assert files["DvsGesture/trials_to_train.txt"] == b"user01_fluorescent.aedat\nuser01_fluorescent_led.aedat\n" \
        b"user01_lab.aedat\n"
    assert files["DvsGesture/trials_to_test.txt"] == b"user24_fluorescent.aedat\nuser24_fluorescent_led.aedat\n"
    mapping = (root / "gesture_mapping.csv").read_bytes()
    assert mapping == GESTURE_MAPPING.encode() and b"\r" not in mapping
    assert mapping.startswith(b"action,label\n") and b"right_arm_clockwise ,4\n" in mapping
    gz = (root / "DvsGesture.tar.gz").read_bytes()
    assert gz[:4] == b"\x1f\x8b\x08\x00" and gz[4:8] == b"\0\0\0\0"  # no FNAME flag, mtime 0


def test_aedat_structure_matches_ground_truth(small):
    gen, (_, files) = small
    kinds_seen = set()
    for stem, rec in gen.recordings.items():
        ev = parse_aedat31(files[f"DvsGesture/{stem}.aedat"])
        assert ev["header"][:3] == [b"#!AER-DAT3.1\r\n", b"#Format: RAW\r\n", b"#Source 1: DVS128\r\n"]
        assert ev["header"][3].startswith(b"#Start-Time: ") and ev["header"][-1] == END
        for k in "txyp":
            np.testing.assert_array_equal(np.asarray(ev[k], dtype=np.int64), rec[k].astype(np.int64))
        np.testing.assert_array_equal(np.asarray(ev["valid"], dtype=bool), rec["valid"])
        assert not rec["valid"].all()
        t = rec["t"]
        assert np.all(np.diff(t) >= 0) and t.dtype == np.int64
        assert 0 <= rec["x"].min() and rec["x"].max() <= 127 and 0 <= rec["y"].min() and rec["y"].max() <= 127
        assert [pk[:4] for pk in ev["packets"]] == [tuple(pk) for pk in rec["packets"]]
        kinds_seen |= {pk[0] for pk in ev["packets"]}
        pol = [pk for pk in ev["packets"] if pk[0] == 1]
        assert pol[0][2] == 1 and len({pk[2] for pk in pol}) > 3  # first packet holds 1 event; sizes vary
        assert any(pk[0] == 2 and pk[3] > 4096 for pk in ev["packets"])
        if stem == gen.roles["overflow"]:
            assert t[0] < 2**31 <= t[-1]
            ovf = [pk[1] for pk in pol]
            assert ovf[0] == 0 and ovf[-1] == 1 and ovf == sorted(ovf)
            assert rec["end"].max() < 2**32 and rec["start"].max() > 2**31
        else:
            assert t[-1] < 2**31 and all(pk[1] == 0 for pk in ev["packets"])
    assert kinds_seen == {0, 1, 2, 3}


def test_labels_csv_and_expected_samples(small):
    gen, (_, files) = small
    for stem, rec in gen.recordings.items():
        csv = files[f"DvsGesture/{stem}_labels.csv"]
        assert b"\r" not in csv and csv.endswith(b"\n")
        lines = csv.decode().splitlines()
        assert lines[0] == "class,startTime_usec,endTime_usec"
        rows = np.array([[int(v) for v in ln.split(",")] for ln in lines[1:]])
        np.testing.assert_array_equal(rows[:, 0], rec["labels"])
        np.testing.assert_array_equal(rows[:, 1], rec["start"])
        np.testing.assert_array_equal(rows[:, 2], rec["end"])
        assert np.all(np.diff(rows[:, 1]) > 0) and np.all(rows[:, 2] > rows[:, 1])
        assert set(rows[:, 0]) == set(range(1, 12))
    exp = expected_samples(gen)
    assert set(exp) == {"train", "test"}
    assert len(exp["train"]) == 12 + 11 + 11 and len(exp["test"]) == 22
    repeat, overlap, empty = gen.roles["repeat"], gen.roles["overlap"], gen.roles["empty"]
    assert f"7/{repeat}_1" in exp["train"] and f"7/{repeat}_0" in exp["train"]
    rec = gen.recordings[overlap]
    assert np.any(rec["end"][:-1] > rec["start"][1:])
    sizes = {split: {k: len(v["t"]) for k, v in d.items()} for split, d in exp.items()}
    emptied = [(s, k) for s, d in sizes.items() for k, n in d.items() if n == 0]
    assert emptied == [(gen.recordings[empty]["split"], f"1/{empty}_0")]
    # brute force: masks over the ground truth, invalid events included
    for split, d in exp.items():
        for key, smp in d.items():
            label, rest = key.split("/")
            stem, k = rest.rsplit("_", 1)
            rec = gen.recordings[stem]
            rows = np.flatnonzero(rec["labels"] == int(label) + 1)
            j = rows[int(k)]
            m = (rec["t"] >= rec["start"][j]) & (rec["t"] < rec["end"][j])
            assert smp["label"] == int(label) and rec["split"] == split
            for c in "txyp":
                np.testing.assert_array_equal(smp[c], rec[c][m])
            if len(smp["t"]):
                assert smp["t"][0] == rec["start"][j]  # an event sits exactly on the start
            assert not np.any(rec["t"][m] == rec["end"][j])
    # some event sits exactly on an end time (excluded from that sample)
    assert any(np.isin(r["end"], r["t"]).any() for r in gen.recordings.values())


def test_deterministic_and_seeded(tmp_path):
    kw = dict(n_train=2, n_test=1, events_per_sample=200)
    a = write_gesture_download(tmp_path / "a", **kw)
    b = write_gesture_download(tmp_path / "b", **kw)
    c = write_gesture_download(tmp_path / "c", seed=1, **kw)
    assert a.md5 == b.md5
    for name in a.md5:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert c.md5["DvsGesture.tar.gz"] != a.md5["DvsGesture.tar.gz"]
    assert c.md5["gesture_mapping.csv"] == a.md5["gesture_mapping.csv"]


def test_options(tmp_path):
    g = write_gesture_download(tmp_path / "o", n_train=1, n_test=1, events_per_sample=50, samples_per_recording=13,
                               overflow=False, empty_window=False, extracted="only", trials_first=True)
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["DvsGesture"]
    assert g.md5 == {} and g.members == []
    assert g.roles["overflow"] is None and g.roles["empty"] is None
    for stem, rec in g.recordings.items():
        assert list(rec["labels"]) == [*range(1, 12), 1, 2]
        assert rec["t"][-1] < 2**31
        ev = parse_aedat31((tmp_path / "o" / "DvsGesture" / f"{stem}.aedat").read_bytes())
        assert len(ev["t"]) == len(rec["t"])
    exp = expected_samples(g)
    assert "0/user01_fluorescent_1" in exp["train"] and "1/user24_fluorescent_1" in exp["test"]
    assert all(len(v["t"]) for d in exp.values() for v in d.values())
    g2 = write_gesture_download(tmp_path / "f", n_train=1, n_test=1, events_per_sample=50, trials_first=True)
    assert g2.members[1:5] == ["DvsGesture/LICENSE.txt", "DvsGesture/README.txt", "DvsGesture/trials_to_train.txt",
                               "DvsGesture/trials_to_test.txt"]
    _, files = read_tar(tmp_path / "f" / "DvsGesture.tar.gz")
    assert len(files) == 8
    with gzip.open(tmp_path / "f" / "DvsGesture.tar.gz") as f:
        assert len(f.read()) % 10240 == 0


def test_low_level_writers():
    t = np.array([5, 5, 2**31 - 1], dtype=np.int64)
    x, y, p = np.array([0, 127, 64]), np.array([127, 0, 3]), np.array([1, 0, 1])
    valid = np.array([1, 0, 1])
    data = aedat31_bytes([
        (0, 0, struct.pack("<Ii", 1, 0), 8),
        packet_bytes(1, 0, polarity_payload(t, x, y, p, valid), 8),
        (2, 0, bytes(4132), 4132),
        (1, 1, polarity_payload([2**31 + 7], [1], [2], [0]), 8),
    ])
    assert data.startswith(aedat31_header())
    ev = parse_aedat31(data)
    assert ev["t"] == [5, 5, 2**31 - 1, 2**31 + 7]
    assert ev["x"] == [0, 127, 64, 1] and ev["y"] == [127, 0, 3, 2] and ev["p"] == [1, 0, 1, 0]
    assert ev["valid"] == [1, 0, 1, 1]
    assert [pk[0] for pk in ev["packets"]] == [0, 1, 2, 1] and ev["packets"][1][4] == 2
    # explicit overflow writes the raw (possibly negative) int32 field
    assert struct.unpack("<Ii", polarity_payload([3], [0], [0], [0], overflow=1))[1] == 3 - 2**31
    # slicing the bytes gives a truncated file, as bad-input tests will do
    with pytest.raises(AssertionError, match="truncated"):
        parse_aedat31(data[:-3])
    buf = io.BytesIO(data)
    assert buf.read(len(aedat31_header())) == aedat31_header()
