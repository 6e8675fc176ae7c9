"""Format version 3's packed pixel column: bytes, decoding, frames from it, and version-1 sets still read.

References: the unpacked columns themselves, :mod:`loader.frames` (itself checked against SpikingJelly in
``tests/test_frames.py``) and SpikingJelly 2.0.0's integration functions directly; ``np.searchsorted`` over a
full time column for the block search.
"""

from __future__ import annotations

import json

import msgpack
import numpy as np
import pytest

from loader import format as F
from loader import frames as FR
from loader import pixels as P
from loader.errors import FormatError
from tests.conftest import write_shard_set


def _events(rng: np.random.Generator, n: int, h: int, w: int, steps: int = 50) -> dict[str, np.ndarray]:
    dt = rng.integers(0, steps, max(n - 1, 0))
    dt[rng.random(dt.size) < 0.2] = 0  # equal time stamps
    t = np.concatenate([[int(rng.integers(0, 10**9))], dt]).cumsum() if n else np.zeros(0, np.int64)
    return {"t": t.astype(np.int64), "x": rng.integers(0, w, n), "y": rng.integers(0, h, n),
            "p": rng.integers(0, 2, n).astype(np.uint8)}


@pytest.mark.parametrize("sensor", [(128, 128), (34, 34), (260, 346), (1, 1)])
def test_pack_pixels_by_formula(sensor):
    h, w = sensor
    rng = np.random.default_rng(1)
    ev = _events(rng, 5000, h, w)
    pix = P.pack_pixels(ev["x"], ev["y"], ev["p"] * 3, h, w)  # any non-zero polarity counts as 1
    want = ((ev["p"].astype(np.int64) * h + ev["y"]) * w + ev["x"])
    assert np.array_equal(pix, want) and pix.dtype == P.pixel_dtype(h, w)
    x, y, p = P.unpack_pixels(pix, h, w, np.dtype(np.uint16))
    assert np.array_equal(x, ev["x"]) and np.array_equal(y, ev["y"]) and np.array_equal(p, ev["p"])


@pytest.mark.parametrize("n", [0, 1, 2, 7, 4000])
@pytest.mark.parametrize("sensor", [(128, 128), (260, 346)])
def test_version3_payload_decodes_like_version1(n, sensor):
    """Every column, its dtype and the extra columns agree between the two layouts and with the input."""
    h, w = sensor
    ev = _events(np.random.default_rng(n), n, h, w)
    v3 = F.encode_events(ev["t"], ev["x"], ev["y"], ev["p"], sensor)
    v1 = F.encode_events(ev["t"], ev["x"], ev["y"], ev["p"], sensor, packed=False)
    m = msgpack.unpackb(v3)
    assert set(m) == {"n", "t0", "dt_dtype", "dt", "hw", "pix_dtype", "pix"} and m["hw"] == [h, w]
    assert m["pix_dtype"] == ("u2" if 2 * h * w <= 65536 else "u4")
    cols = ("t", "x", "y", "p", "pix", "dt")
    a, b = F.decode_events(v3, cols), F.decode_events(v1, cols, sensor_size=sensor)
    for c in cols:
        assert a[c].dtype == b[c].dtype and np.array_equal(a[c], b[c]), c
    for c in "txyp":
        assert np.array_equal(a[c], ev[c]), c
    assert np.array_equal(a["dt"], np.diff(ev["t"]))
    with pytest.raises(ValueError, match="sensor_size"):
        F.decode_events(v1, ("pix",))


def test_version3_payload_is_no_bigger():
    rng = np.random.default_rng(3)
    ev = _events(rng, 20_000, 128, 128, steps=200)
    cctx = F.new_compressor()
    v3 = cctx.compress(F.encode_events(*(ev[c] for c in "txyp"), (128, 128)))
    v1 = cctx.compress(F.encode_events(*(ev[c] for c in "txyp"), (128, 128), packed=False))
    assert len(v3) <= len(v1) * 1.05


@pytest.mark.parametrize(
    "changes",
    [{"pix": b"\x00"}, {"pix_dtype": "u3"}, {"pix_dtype": [2]}, {"hw": [128]}, {"hw": [0, 128]}, {"hw": "128x128"},
     {"hw": None}, {"pix": "text"}],
    ids=lambda c: "-".join(f"{k}={v!r:.10}" for k, v in c.items()),
)
def test_version3_bad_fields_refused(changes):
    ev = _events(np.random.default_rng(0), 40, 128, 128)
    m = msgpack.unpackb(F.encode_events(*(ev[c] for c in "txyp"), (128, 128)))
    m.update(changes)
    with pytest.raises(FormatError):
        F.decode_events(msgpack.packb(m, use_bin_type=True))


def test_version3_pixel_outside_sensor_refused():
    ev = _events(np.random.default_rng(0), 40, 128, 128)
    m = msgpack.unpackb(F.encode_events(*(ev[c] for c in "txyp"), (128, 128)))
    m["hw"] = [64, 128]  # the stored indices now point past 2·H·W
    with pytest.raises(FormatError, match="outside"):
        F.decode_events(msgpack.packb(m, use_bin_type=True), ("pix",))
    with pytest.raises(ValueError, match="pixel indices"):
        P.integrate_pixel_segments(np.array([5, 40_000], np.uint16), 128, 128, [0], [2])


@pytest.mark.parametrize("n", [0, 1, 3, 5000, 60_000])
def test_deltas_searchsorted_equals_full_search(n):
    rng = np.random.default_rng(n)
    dt = rng.integers(0, 40, max(n - 1, 0)).astype(np.uint8)
    dt[rng.random(dt.size) < 0.3] = 0
    t = P.relative_times(dt)
    span = int(t[-1]) if n else 0
    picks = [[-5, 0, 1, span, span + 1], rng.integers(0, span + 2, 50), t[:: max(1, n // 7)]]
    targets = np.unique(np.concatenate(picks))
    assert np.array_equal(P.deltas_searchsorted(dt, targets), np.searchsorted(t, targets, side="left"))
    signed = dt.astype(np.int16) - 3  # decreasing times: searched as they are
    assert np.array_equal(P.deltas_searchsorted(signed, targets),
                          np.searchsorted(P.relative_times(signed), targets, side="left"))


SETTINGS = [dict(split_by="number", frames_number=20), dict(split_by="time", frames_number=20),
            dict(split_by="time", frames_number=1), dict(split_by="number", frames_number=7),
            dict(duration=10_000), dict(duration=2_500.5), dict(duration=10**9)]


@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: "-".join(f"{k}={v}" for k, v in s.items()))
@pytest.mark.parametrize("n", [1, 2, 19, 20, 21, 5000, 70_000])
def test_packed_frames_equal_reference(setting, n):
    """Frames from pix (+ deltas) equal loader.frames on t, x, y, p; and SpikingJelly's where it defines them."""
    h, w = 34, 40
    ev = _events(np.random.default_rng(n), n, h, w, steps=300)
    dec = F.decode_events(F.encode_events(*(ev[c] for c in "txyp"), (h, w)), ("pix", "dt", "t", "x", "y", "p"))
    got = P.integrate_packed(dec, h, w, setting.get("split_by"), setting.get("frames_number"), setting.get("duration"))
    if "duration" in setting:
        want = FR.integrate_events_by_fixed_duration(ev, setting["duration"], h, w)
    else:
        want = FR.integrate_events_by_fixed_frames_number(ev, setting["split_by"], setting["frames_number"], h, w)
    assert got.dtype == np.float32 and got.shape == want.shape and np.array_equal(got, want)
    if n >= 5000:
        from tests.sjcompat import import_spikingjelly_datasets

        import_spikingjelly_datasets()
        from spikingjelly.datasets import utils as sju

        sj_ev = {k: v.astype(np.int64) for k, v in ev.items()}
        if "duration" in setting:
            sj = sju.integrate_events_by_fixed_duration(sj_ev, setting["duration"], h, w)
        else:
            sj = sju.integrate_events_by_fixed_frames_number(sj_ev, setting["split_by"], setting["frames_number"], h, w)
        assert np.array_equal(got, sj)


@pytest.mark.parametrize("exact", [1 << 24, 7], ids=["add-at", "bincount-past-the-exact-bound"])
@pytest.mark.parametrize("dtype", [np.uint16, np.uint32, np.int64])
def test_both_counting_paths_equal_reference(monkeypatch, exact, dtype):
    """Frames counted with ufunc.at, and with bincount where a frame holds more events than float32 counts
    exactly (the bound lowered here) or the indices are signed: the reference's values either way."""
    monkeypatch.setattr(P, "_EXACT_F32", exact)
    h, w = 20, 30
    ev = _events(np.random.default_rng(3), 3000, h, w, steps=300)
    pix = ((ev["p"].astype(np.int64) * h + ev["y"]) * w + ev["x"]).astype(dtype)
    j_l, j_r = np.array([0, 0, 5, 1000, 2999]), np.array([0, 5, 1000, 2999, 3000])
    want = FR.integrate_events_segments_to_frames(ev["x"], ev["y"], ev["p"], h, w, j_l, j_r)
    got = P.integrate_pixel_segments(pix, h, w, j_l, j_r)
    assert got.dtype == np.float32 and np.array_equal(got, want) and got[3].max() > 1
    with pytest.raises(ValueError, match=f"pixel indices must lie in \\[0, {2 * h * w}\\).*found {2 * h * w + 3}"):
        P.integrate_pixel_segments(np.append(pix, dtype(2 * h * w + 3)), h, w, [0, 10], [10, 3001])


def test_packed_frames_of_empty_sample():
    empty = {"pix": np.zeros(0, np.uint16), "dt": np.zeros(0, np.uint8)}
    assert np.array_equal(P.integrate_packed(empty, 8, 8, "time", 4, None), np.zeros((4, 2, 8, 8), np.float32))
    assert np.array_equal(P.integrate_packed(empty, 8, 8, None, None, 100), np.zeros((1, 2, 8, 8), np.float32))


# --------------------------------------------------------------------------- shard sets: version 3 and version 1


@pytest.fixture(scope="module")
def both_versions(tmp_path_factory):
    base = tmp_path_factory.mktemp("versions")
    truth = write_shard_set(base / "v3", seed=5, splits={"train": (6, 5)}, version=3)
    truth1 = write_shard_set(base / "v1", seed=5, splits={"train": (6, 5)}, version=1)
    truth4 = write_shard_set(base / "v4", seed=5, splits={"train": (6, 5)})
    assert json.loads((base / "v1" / "index.json").read_text())["version"] == 1
    assert json.loads((base / "v3" / "index.json").read_text())["version"] == 3
    v4 = json.loads((base / "v4" / "index.json").read_text())
    assert v4["version"] == F.FORMAT_VERSION == 4 and isinstance(v4["splits"]["train"]["shards"][0]["offsets"], str)
    assert all(truth4[k]["label"] == truth[k]["label"] for k in truth) and truth4.keys() == truth.keys()
    return base, truth, truth1


READS = [dict(data_type="event"), dict(data_type="frame", frames_number=8, split_by="number"),
         dict(data_type="frame", frames_number=8, split_by="time"), dict(data_type="frame", duration=200_000)]


@pytest.mark.parametrize("kw", READS, ids=lambda k: "-".join(map(str, k.values())))
@pytest.mark.parametrize("new", ["v3", "v4"])
def test_version1_and_version3_sets_read_alike(both_versions, kw, new):
    """Old sets still read: the same samples through EventShardDataset, equal to the written events / their frames
    (version 3: packed samples, offsets as lists; version 4: the same with base64 offsets)."""
    from loader import EventShardDataset

    base, truth, truth1 = both_versions
    a = {k: x for x, _, k in EventShardDataset(base / new, shuffle=False, return_key=True, **kw)}
    b = {k: x for x, _, k in EventShardDataset(base / "v1", shuffle=False, return_key=True, **kw)}
    assert a.keys() == b.keys() == truth.keys() == truth1.keys()
    for key, x in a.items():
        ev = truth[key]["events"]
        if kw["data_type"] == "event":
            for c in "txyp":
                assert np.array_equal(x[c], ev[c]) and np.array_equal(b[key][c], ev[c])
                assert x[c].dtype == b[key][c].dtype
            continue
        if "duration" in kw:
            want = FR.integrate_events_by_fixed_duration(ev, kw["duration"], 128, 128)
        else:
            want = FR.integrate_events_by_fixed_frames_number(ev, kw["split_by"], kw["frames_number"], 128, 128)
        assert np.array_equal(x, want) and np.array_equal(b[key], want)


def test_event_transform_on_packed_set(both_versions):
    """A transform sees t, x, y, p unpacked from pix: same frames as on the version-1 set."""
    from loader import EventShardDataset
    from loader.transforms import RandomFlipLR

    base, _, _ = both_versions
    kw = dict(data_type="frame", frames_number=4, split_by="number", transform=RandomFlipLR(p=0.5), shuffle=False,
              return_key=True)
    a = {k: x for x, _, k in EventShardDataset(base / "v3", **kw)}
    b = {k: x for x, _, k in EventShardDataset(base / "v1", **kw)}
    assert all(np.array_equal(a[k], b[k]) for k in a) and sum(float(v.sum()) for v in a.values()) > 0


def test_version3_index_needs_two_d_sensor_and_newer_versions_are_refused():
    index = {"format": "eventshard", "version": 3, "dataset": "d", "sensor_size": [700], "classes": [],
             "splits": {}}
    with pytest.raises(FormatError, match="sensor_size"):
        F.validate_index(index)
    index.update(version=5, sensor_size=[128, 128])
    with pytest.raises(FormatError, match="version 5"):
        F.validate_index(index)


def test_format_doc_example_bytes():
    """docs/FORMAT.md's version-3 example, byte for byte."""
    m = msgpack.unpackb(F.encode_events(np.array([5, 9, 9]), np.array([2, 0, 1]), np.array([1, 0, 1]),
                                        np.array([0, 1, 1]), (2, 3)))
    assert m == {"n": 3, "t0": 5, "dt_dtype": "u1", "dt": b"\x04\x00", "hw": [2, 3], "pix_dtype": "u1",
                 "pix": b"\x05\x06\x0a"}


def test_decoded_columns_keep_the_order_asked_for():
    ev = _events(np.random.default_rng(2), 30, 128, 128)
    for packed in (True, False):
        buf = F.encode_events(*(ev[c] for c in "txyp"), (128, 128), packed)
        assert list(F.decode_events(buf)) == ["t", "x", "y", "p"]
        assert list(F.decode_events(buf, ("p", "dt", "x"))) == ["p", "dt", "x"]
