"""The parsers on real files from ``../shared/realdata`` (read in place, never copied into the repo)."""

from __future__ import annotations

import numpy as np
import pytest

from shardgen.datasets.base import DatasetError, RecordingTask
from shardgen.datasets.dvs128_gesture import DEFAULT_CLASSES, cut, parse_labels, parse_mapping
from shardgen.formats.aedat3 import AedatError, read_aedat3
from tests.gen_dvsgesture import POLARITY, aedat31_bytes, packet_bytes, polarity_payload
from tests.realdata import REALDATA, real_file

GESTURE = REALDATA / "dvsgesture"

# user01_natural_labels.csv as published (class, start, end); class 8 appears twice, 4 and 5 are swapped in time
USER01_NATURAL_CLASSES = [1, 2, 3, 5, 4, 6, 7, 8, 8, 9, 10, 11]


def test_gesture_mapping():
    path = real_file("dvsgesture", "gesture_mapping.csv")
    data = path.read_bytes()
    assert b"right_arm_clockwise ," in data  # the original's space before the comma is really there
    names = parse_mapping(data, str(path))
    assert len(names) == 11
    assert names == DEFAULT_CLASSES
    assert all(n == n.strip() and n for n in names)


def test_user01_natural_labels():
    path = real_file("dvsgesture", "user01_natural_labels.csv")
    rows = parse_labels(path.read_bytes(), str(path), 11)
    assert rows.dtype == np.int64
    assert rows.shape == (12, 3)
    assert rows[:, 0].tolist() == USER01_NATURAL_CLASSES
    assert rows[0].tolist() == [1, 53036986, 59508469]
    assert rows[-1].tolist() == [11, 171367247, 177991967]
    assert np.all(rows[:, 1] < rows[:, 2])
    assert np.all(np.diff(rows[:, 1]) > 0)
    assert np.all(rows[:-1, 2] <= rows[1:, 1])  # this file's windows do not overlap
    # rows count file lines (the header is row 1)
    with pytest.raises(DatasetError, match=r"user01_natural_labels\.csv: row 13: class 11 outside 1\.\.10"):
        parse_labels(path.read_bytes(), path.name, 10)


def test_cut_with_real_labels():
    """A synthetic recording cut by the real csv: keys, labels, window edges (start kept, end excluded)."""
    path = real_file("dvsgesture", "user01_natural_labels.csv")
    labels = path.read_bytes()
    rows = parse_labels(labels, path.name, 11)
    # per row: one event before the window, at start, in the middle, at end - 1, at end (excluded)
    t = np.sort(np.concatenate([[s - 1, s, (s + e) // 2, e - 1, e] for _, s, e in rows.tolist()]))
    n = t.size
    x, y, p = np.arange(n) % 128, (np.arange(n) * 7) % 128, np.arange(n) % 2
    half = n // 2
    data = aedat31_bytes(
        [
            packet_bytes(POLARITY, 0, polarity_payload(t[:half], x[:half], y[:half], p[:half]), 8),
            packet_bytes(POLARITY, 0, polarity_payload(t[half:], x[half:], y[half:], p[half:]), 8),
        ]
    )
    task = RecordingTask(
        "user01_natural",
        data=data,
        context={"labels": labels, "labels_name": path.name, "classes": list(DEFAULT_CLASSES)},
    )
    result = cut(task)
    keys = [s.key for s in result.samples]
    seen: dict[int, int] = {}
    want = []
    for c in USER01_NATURAL_CLASSES:
        want.append(f"{c - 1}/user01_natural_{seen.get(c, 0)}")
        seen[c] = seen.get(c, 0) + 1
    assert keys == want
    assert "7/user01_natural_1" in keys
    assert result.events_read == n
    assert result.empty_windows == 0
    for s, (c, start, end) in zip(result.samples, rows.tolist(), strict=True):
        assert s.meta["label"] == c - 1
        assert s.meta["class"] == DEFAULT_CLASSES[c - 1]
        assert s.t.tolist() == [start, (start + end) // 2, end - 1]
        m = (t >= start) & (t < end)
        np.testing.assert_array_equal(s.x, x[m])
        np.testing.assert_array_equal(s.p, p[m])


@pytest.mark.parametrize(
    "rel", ["aedat2_dvs128/1-1.aedat", "aedat2_davis/sample_aedat_header.aedat", "aedat4/sample.aedat4"]
)
def test_other_aedat_versions_are_refused(rel):
    path = real_file(*rel.split("/"))
    with pytest.raises(AedatError, match=rf"^{path.name}: byte 0: not an AEDAT 3\.x file"):
        read_aedat3(path.read_bytes(), path.name)
