"""loader.format: sample encoding, tar members, shard layout, index validation, bad input."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile

import msgpack
import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loader import format as F
from loader.format import FormatError
from tests.conftest import read_index_json

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SENSORS = [(128, 128), (260, 346), (346, 260), (720, 1280), (1280, 720), (34, 34), (1, 1), (180, 240)]


# --------------------------------------------------------------------------- helpers


@st.composite
def event_columns(draw, min_n: int = 0, max_n: int = 200):
    """Columns of one sample: t in any order (decreasing steps, repeats, huge gaps), x/y inside the sensor."""
    h, w = draw(st.sampled_from(SENSORS))
    n = draw(st.integers(min_n, max_n))
    step = st.one_of(
        st.just(0),
        st.integers(-3, 3),
        st.integers(0, 1000),
        st.integers(-(10**6), 10**6),
        st.integers(0, 2**40),
        st.integers(-(2**40), 0),
    )
    steps = draw(st.lists(step, min_size=n, max_size=n))
    t0 = draw(st.integers(-(2**60), 2**60))
    t = t0 + np.cumsum(np.asarray(steps, dtype=np.int64))
    x = np.asarray(draw(st.lists(st.integers(0, w - 1), min_size=n, max_size=n)), dtype=np.int64)
    y = np.asarray(draw(st.lists(st.integers(0, h - 1), min_size=n, max_size=n)), dtype=np.int64)
    p = np.asarray(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=np.int64)
    xy_dtype = draw(st.sampled_from([np.int64, np.uint16, np.int32]))
    p_dtype = draw(st.sampled_from([np.uint8, np.bool_, np.int64]))
    return t.astype(np.int64), x.astype(xy_dtype), y.astype(xy_dtype), p.astype(p_dtype), (h, w)


def _payload(n: int = 40, sensor=(128, 128), seed: int = 0, packed: bool = False) -> bytes:
    """A version-1 payload (x, y, p columns) by default; ``tests/test_pixels.py`` checks version 3's."""
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 10**6, n))
    return F.encode_events(
        t, rng.integers(0, sensor[1], n), rng.integers(0, sensor[0], n), rng.integers(0, 2, n), sensor, packed
    )


def _repack(payload: bytes, **changes) -> bytes:
    m = msgpack.unpackb(payload, raw=False)
    for k, v in changes.items():
        if v is _DROP:
            del m[k]
        else:
            m[k] = v
    return msgpack.packb(m, use_bin_type=True)


_DROP = object()


def _read_index(path) -> dict:
    return read_index_json(path)  # offsets as lists, decoded in the test helper


# --------------------------------------------------------------------------- events


@SETTINGS
@given(event_columns())
def test_events_round_trip(cols):
    t, x, y, p, sensor = cols
    buf = F.encode_events(t, x, y, p, sensor)
    ev = F.decode_events(buf)
    assert set(ev) == {"t", "x", "y", "p"}
    assert ev["t"].dtype == np.int64
    np.testing.assert_array_equal(ev["t"], t)
    np.testing.assert_array_equal(ev["x"], x.astype(np.int64))
    np.testing.assert_array_equal(ev["y"], y.astype(np.int64))
    np.testing.assert_array_equal(ev["p"], (np.asarray(p) != 0).astype(np.uint8))
    assert all(len(v) == len(t) for v in ev.values())
    # x/y in the smallest unsigned type holding the sensor, p as 0/1
    want = np.uint8 if max(sensor) <= 256 else np.uint16
    assert ev["x"].dtype == want and ev["y"].dtype == want
    assert ev["p"].dtype == np.uint8
    # the same input always gives the same bytes
    assert F.encode_events(t, x, y, p, sensor) == buf


@pytest.mark.parametrize("sensor", [(128, 128), (260, 346), (720, 1280)])
def test_events_edges_of_sensor(sensor):
    h, w = sensor
    x = np.array([0, w - 1, 0, w - 1])
    y = np.array([0, 0, h - 1, h - 1])
    ev = F.decode_events(F.encode_events(np.arange(4), x, y, np.array([0, 1, 1, 0]), sensor))
    np.testing.assert_array_equal(ev["x"], x)
    np.testing.assert_array_equal(ev["y"], y)
    with pytest.raises(FormatError):
        F.encode_events(np.arange(1), np.array([w]), np.array([0]), np.array([0]), sensor)
    with pytest.raises(FormatError):
        F.encode_events(np.arange(1), np.array([0]), np.array([h]), np.array([0]), sensor)
    with pytest.raises(FormatError):
        F.encode_events(np.arange(1), np.array([-1]), np.array([0]), np.array([0]), sensor)


def test_events_compact():
    """Sorted µs stamps with small steps cost about 1 byte for dt, 1+1 for x/y, 1/8 for p."""
    n = 10_000
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.integers(0, 200, n))
    buf = F.encode_events(t, rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n), (128, 128),
                          packed=False)
    assert len(buf) < n * 3.2
    m = msgpack.unpackb(buf)
    assert m["dt_dtype"] == "u1" and m["xy_dtype"] == "u1" and len(m["p"]) == n // 8


def test_events_empty_and_single():
    empty = F.decode_events(F.encode_events(np.zeros(0, np.int64), [], [], [], (128, 128)))
    assert all(v.shape == (0,) for v in empty.values())
    assert empty["t"].dtype == np.int64
    one = F.decode_events(F.encode_events(np.array([2**50]), [5], [7], [1], (128, 128)))
    assert one["t"].tolist() == [2**50] and one["x"].tolist() == [5] and one["y"].tolist() == [7]
    assert one["p"].tolist() == [1]


def test_encode_events_rejects_unequal_columns():
    with pytest.raises(FormatError):
        F.encode_events(np.arange(3), np.arange(2), np.arange(3), np.zeros(3), (128, 128))


# --------------------------------------------------------------------------- labels

_msgpack_scalar = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.text(max_size=20),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
)


@SETTINGS
@given(
    label=st.integers(0, 10**6),
    cls=st.text(max_size=30),
    extra=st.dictionaries(
        st.text(min_size=1, max_size=10).filter(lambda s: s not in ("label", "class")), _msgpack_scalar
    ),
)
def test_label_round_trip(label, cls, extra):
    meta = {"label": label, "class": cls, **extra}
    buf = F.encode_label(meta)
    assert F.decode_label(buf) == meta
    # key order does not change the bytes
    assert F.encode_label(dict(reversed(list(meta.items())))) == buf


def test_label_lists_and_rejects():
    meta = {"label": 3, "class": "three", "window": [10, 20], "recording": "user01_led"}
    assert F.decode_label(F.encode_label(meta)) == meta
    with pytest.raises(FormatError):
        F.encode_label({"label": 1})
    with pytest.raises(FormatError):
        F.encode_label({"class": "x"})
    for bad in (
        msgpack.packb({"label": "1", "class": "a"}),
        msgpack.packb({"class": "a"}),
        msgpack.packb([1, "a"]),
        b"\xc1",
        b"",
    ):
        with pytest.raises(FormatError):
            F.decode_label(bad)


# --------------------------------------------------------------------------- tar members of one sample


@pytest.mark.parametrize("key", ["7/user02_fluorescent_1", "3/00012", "airplane/cifar10_airplane_0", "a", "x" * 200])
def test_sample_tar_round_trip(key):
    events, label = _payload(), F.encode_label({"label": 1, "class": "c"})
    buf = F.sample_tar(key, events, label)
    assert len(buf) % F.TAR_BLOCK == 0
    assert F.split_sample_tar(buf) == (key, events, label)
    with tarfile.open(fileobj=io.BytesIO(buf + F.END_OF_ARCHIVE)) as tf:
        members = tf.getmembers()
        assert [m.name for m in members] == [key + F.EVENTS_SUFFIX, key + F.LABEL_SUFFIX]
        assert all(m.isreg() and m.mtime == 0 for m in members)
        assert tf.extractfile(members[0]).read() == events
        assert tf.extractfile(members[1]).read() == label


@pytest.mark.parametrize("key", ["", "../up", "a/../b", "/abs", "a//b", "x" * 202, "sp ace", "a\\b", ".hidden"])
def test_sample_tar_rejects_bad_keys(key):
    with pytest.raises(FormatError):
        F.sample_tar(key, b"e", b"l")


def _raw_tar(members: dict[str, bytes]) -> bytes:
    bio = io.BytesIO()
    with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return bio.getvalue()


@pytest.mark.parametrize(
    "buf",
    [
        b"",
        b"not a tar" * 100,
        _raw_tar({"k.events.msgpack": b"e"}),
        _raw_tar({"k.events.msgpack": b"e", "j.label.msgpack": b"l"}),
        _raw_tar({"k.events.msgpack": b"e", "k.label.msgpack": b"l", "k.other": b"o"}),
        _raw_tar({"../k.events.msgpack": b"e", "../k.label.msgpack": b"l"}),
        F.sample_tar("k", b"e" * 1000, b"l")[:700],
    ],
    ids=["empty", "garbage", "one-member", "mismatched-keys", "three-members", "unsafe-key", "truncated"],
)
def test_split_sample_tar_rejects(buf):
    with pytest.raises(FormatError):
        F.split_sample_tar(buf)


def _members_by_tarfile(buf: bytes) -> tuple[str, bytes, bytes] | None:
    """The sample's (key, events, label) as the standard library's tar reader sees it; None where it or
    the sample rules refuse it (reference for the header-by-header fast path)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(buf), mode="r:") as tf:
            members = {m.name: (m.isreg(), tf.extractfile(m).read() if m.isreg() else b"") for m in tf}
    except tarfile.TarError:
        return None
    names = sorted(members)
    if len(names) != 2 or not all(ok for ok, _ in members.values()) or not names[0].endswith(".events.msgpack"):
        return None
    key = names[0][: -len(".events.msgpack")]
    if names[1] != key + ".label.msgpack" or ".." in key.split("/") or not key:
        return None
    return key, members[names[0]][1], members[names[1]][1]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(["k", "3/00012", "x" * 150]), st.binary(max_size=700), st.binary(max_size=40),
       st.lists(st.tuples(st.integers(0, 2100), st.integers(0, 255)), max_size=3), st.integers(-600, 600))
def test_split_sample_tar_equals_tarfile(key, events, label, flips, cut):
    """Valid, corrupted, cut and extended sample tars: the same members as :mod:`tarfile` gives, or an error."""
    buf = bytearray(F.sample_tar(key, events, label))
    for pos, value in flips:
        if pos < len(buf):
            buf[pos] = value
    buf = bytes(buf[:cut]) if cut < 0 else bytes(buf) + bytes(cut)
    want = _members_by_tarfile(buf)
    if want is None:
        with pytest.raises(FormatError):
            F.split_sample_tar(buf)
    else:
        got = F.split_sample_tar(buf)
        assert (got[0], bytes(got[1]), bytes(got[2])) == want


def test_sample_frame_round_trip_and_determinism():
    rng = np.random.default_rng(5)
    n = 500
    cols = (np.sort(rng.integers(0, 10**6, n)), rng.integers(0, 128, n), rng.integers(0, 128, n), rng.integers(0, 2, n))
    meta = {"label": 4, "class": "four", "start": 0, "end": 10**6}
    a = F.encode_sample("4/rec_0", *cols, meta, (128, 128), F.new_compressor())
    b = F.encode_sample("4/rec_0", *cols, dict(reversed(list(meta.items()))), (128, 128), F.new_compressor())
    assert a == b
    params = zstandard.get_frame_parameters(a)
    assert params.content_size > 0 and params.has_checksum
    key, ev, got_meta = F.decode_sample(a, zstandard.ZstdDecompressor())
    assert key == "4/rec_0" and got_meta == meta
    for c, col in zip("txyp", cols, strict=True):
        np.testing.assert_array_equal(ev[c], col)
    assert F.decode_sample(a, zstandard.ZstdDecompressor(), columns=None)[1] is None


def test_decode_sample_rejects_bad_frames():
    dctx = zstandard.ZstdDecompressor()
    good = F.encode_sample("k", [1, 2], [0, 1], [0, 1], [0, 1], {"label": 0, "class": "c"}, (2, 2), F.new_compressor())
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(F.sample_tar("k", _payload(), b"\x80"))
    flipped = bytearray(good)
    flipped[len(flipped) // 2] ^= 0xFF
    for bad in (b"", b"\x00" * 32, good[:-6], good[: len(good) // 2], no_size, bytes(flipped)):
        with pytest.raises(FormatError):
            F.decode_sample(bad, dctx)


# --------------------------------------------------------------------------- bad event payloads


@pytest.mark.parametrize(
    "changes",
    [
        {"x": b""},  # truncated columns
        {"y": b"\x00"},
        {"dt": b"\x01"},
        {"p": b""},
        {"p": b"\x00\x00\x00\x00\x00\x00"},
        {"dt_dtype": "f4"},  # unknown dtypes
        {"xy_dtype": "u3"},
        {"xy_dtype": "<u2"},
        {"dt_dtype": 4},
        {"n": -1},
        {"n": 41},
        {"n": F.MAX_EVENTS + 1},
        {"n": "many"},
        {"x": "text, not bin"},
        {"t0": None},
        {"n": _DROP},
        {"dt": _DROP},
        {"p": _DROP},
    ],
    ids=lambda c: "-".join(f"{k}={'drop' if v is _DROP else repr(v)[:12]}" for k, v in c.items()),
)
def test_decode_events_rejects_bad_fields(changes):
    with pytest.raises(FormatError):
        F.decode_events(_repack(_payload(40), **changes))


def test_decode_events_rejects_dt_for_empty_sample():
    empty = F.encode_events(np.zeros(0, np.int64), [], [], [], (128, 128))
    with pytest.raises(FormatError):
        F.decode_events(_repack(empty, dt=b"\x01"))


@pytest.mark.parametrize(
    "buf",
    [
        msgpack.packb([1, 2, 3]),
        msgpack.packb(7),
        msgpack.packb("events"),
        msgpack.packb(None),
        msgpack.packb({1: 2}),
        b"",
        b"\xc1",
        b"\x00\x01\x02 garbage",
    ],
    ids=["list", "int", "str", "nil", "int-keys", "empty", "reserved-byte", "garbage"],
)
def test_decode_events_rejects_non_maps(buf):
    with pytest.raises(FormatError):
        F.decode_events(buf)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 30), seed=st.integers(0, 5), data=st.data())
def test_decode_events_truncated_payload(n, seed, data):
    """Every cut of a valid payload raises FormatError (never another exception, never a short sample)."""
    payload = _payload(n, seed=seed)
    cut = data.draw(st.integers(0, len(payload) - 1))
    with pytest.raises(FormatError):
        F.decode_events(payload[:cut])


@pytest.mark.parametrize("field", ["xy_dtype", "dt_dtype"])
def test_decode_events_rejects_unhashable_dtype(field):
    with pytest.raises(FormatError):
        F.decode_events(_repack(_payload(40), **{field: [1]}))


def test_decode_events_rejects_t0_out_of_range():
    with pytest.raises(FormatError):
        F.decode_events(_repack(_payload(40), t0=2**64 - 1))


def test_decoded_events_are_writable():
    ev = F.decode_events(_payload(40))
    assert all(v.flags.writeable for v in ev.values())


# --------------------------------------------------------------------------- shards on disk


def test_shard_listable_by_tarfile(small_shard_set):
    path, truth = small_shard_set
    index = _read_index(path)
    for split, info in index["splits"].items():
        for shard_no, shard in enumerate(info["shards"]):
            data = (path / shard["file"]).read_bytes()
            assert len(data) == shard["bytes"]
            assert hashlib.sha256(data).hexdigest() == shard["sha256"]
            assert shard["offsets"][-1] < len(data)  # the end-of-archive frame follows the last sample
            raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()
            assert raw.endswith(F.END_OF_ARCHIVE)
            want = [k for k, v in truth.items() if v["split"] == split and v["shard"] == shard_no]
            assert len(want) == shard["samples"]
            with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tf:
                names = tf.getnames()
                assert names == [k + s for k in want for s in (F.EVENTS_SUFFIX, F.LABEL_SUFFIX)]
                for k in want:
                    ev = F.decode_events(tf.extractfile(k + F.EVENTS_SUFFIX).read())
                    np.testing.assert_array_equal(ev["t"], truth[k]["events"]["t"])
                    assert F.decode_label(tf.extractfile(k + F.LABEL_SUFFIX).read()) == truth[k]["meta"]
            assert shard["events"] == sum(len(truth[k]["events"]["t"]) for k in want)


def test_shard_samples_fetchable_by_byte_range(small_shard_set):
    path, truth = small_shard_set
    index = _read_index(path)
    dctx = zstandard.ZstdDecompressor()
    keys = []
    for shard in index["splits"]["train"]["shards"]:
        data = (path / shard["file"]).read_bytes()
        offs = shard["offsets"]
        for i in reversed(range(shard["samples"])):  # any order: every frame stands alone
            key, ev, meta = F.decode_sample(data[offs[i] : offs[i + 1]], dctx)
            assert meta["label"] == truth[key]["label"]
            assert len(ev["t"]) == len(truth[key]["events"]["t"])
            keys.append(key)
    assert sorted(keys) == sorted(k for k, v in truth.items() if v["split"] == "train")


@pytest.mark.skipif(shutil.which("zstd") is None or shutil.which("tar") is None, reason="needs zstd and tar binaries")
def test_shard_listable_by_zstd_and_tar(small_shard_set):
    path, truth = small_shard_set
    index = _read_index(path)
    for split, info in index["splits"].items():
        for shard_no, shard in enumerate(info["shards"]):
            data = subprocess.run(["zstd", "-dcq", str(path / shard["file"])], check=True, capture_output=True).stdout
            listing = subprocess.run(["tar", "t"], input=data, check=True, capture_output=True).stdout.decode()
            want = [k for k, v in truth.items() if v["split"] == split and v["shard"] == shard_no]
            assert listing.split() == [k + s for k in want for s in (F.EVENTS_SUFFIX, F.LABEL_SUFFIX)]
    # zstd's own integrity test accepts every shard (checksums in every frame)
    files = [str(path / s["file"]) for info in index["splits"].values() for s in info["shards"]]
    subprocess.run(["zstd", "-tq", *files], check=True, capture_output=True)


def test_same_input_gives_identical_bytes(tmp_path, shard_set_writer):
    splits = {"train": (3, 2), "test": (2,)}
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    shard_set_writer(a, seed=7, splits=splits)
    shard_set_writer(b, seed=7, splits=splits)
    shard_set_writer(c, seed=8, splits=splits)
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert names == ["index.json", "test-000000.tar.zst", "train-000000.tar.zst", "train-000001.tar.zst"]
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    assert (a / "train-000000.tar.zst").read_bytes() != (c / "train-000000.tar.zst").read_bytes()


def test_shard_names():
    assert F.shard_name("train", 0) == "train-000000.tar.zst"
    assert F.shard_name("test", 123456) == "test-123456.tar.zst"


# --------------------------------------------------------------------------- index


def test_index_of_fixture_is_valid(small_shard_set):
    path, truth = small_shard_set
    data = (path / F.INDEX_NAME).read_bytes()
    index = F.loads_index(data)
    assert index["format"] == F.FORMAT_NAME and index["version"] == F.FORMAT_VERSION
    assert index["sensor_size"] == [128, 128] and len(index["classes"]) == 11
    assert index["splits"]["train"]["samples"] == 30 and index["splits"]["test"]["samples"] == 9
    assert [s["samples"] for s in index["splits"]["train"]["shards"]] == [10, 7, 13]
    assert F.dumps_index(index) == data  # the writer serialises deterministically


def _shard(ix, split, i):
    return ix["splits"][split]["shards"][i]


# Each mutation changes a valid index in place.
MUTATIONS = {
    "wrong-format": lambda ix: ix.update(format="webdataset"),
    "wrong-version": lambda ix: ix.update(version=5),
    "version-as-string": lambda ix: ix.update(version="1"),
    "no-version": lambda ix: ix.pop("version"),
    "no-splits": lambda ix: ix.pop("splits"),
    "no-classes": lambda ix: ix.pop("classes"),
    "no-sensor-size": lambda ix: ix.pop("sensor_size"),
    "splits-not-object": lambda ix: ix.update(splits=[]),
    "offsets-too-few": lambda ix: _shard(ix, "train", 1)["offsets"].pop(),
    "offsets-too-many": lambda ix: _shard(ix, "train", 1)["offsets"].append(10**9),
    "offsets-not-from-0": lambda ix: _shard(ix, "train", 0)["offsets"].__setitem__(0, 5),
    "offsets-not-increasing": lambda ix: _shard(ix, "train", 2)["offsets"].__setitem__(3, 0),
    "offsets-repeat": lambda ix: _shard(ix, "train", 2)["offsets"].__setitem__(4, _shard(ix, "train", 2)["offsets"][3]),
    "offsets-missing": lambda ix: _shard(ix, "test", 0).pop("offsets"),
    "shard-samples-off": lambda ix: _shard(ix, "train", 0).update(samples=9),
    "split-samples-off": lambda ix: ix["splits"]["train"].update(samples=31),
    "file-traversal": lambda ix: _shard(ix, "train", 0).update(file="../train-000000.tar.zst"),
    "file-short-number": lambda ix: _shard(ix, "train", 0).update(file="train-0.tar.zst"),
    "file-wrong-suffix": lambda ix: _shard(ix, "train", 0).update(file="train-000000.tar"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_validate_index_rejects(small_shard_set, mutation):
    index = _read_index(small_shard_set[0])
    assert F.validate_index(copy.deepcopy(index)) == index  # the unchanged index passes
    bad = copy.deepcopy(index)
    MUTATIONS[mutation](bad)
    with pytest.raises(FormatError):
        F.validate_index(bad)
    with pytest.raises(FormatError):
        F.loads_index(json.dumps(bad).encode())


@pytest.mark.parametrize("data", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'{"format": "eventshard"}'])
def test_loads_index_rejects_garbage(data):
    with pytest.raises(FormatError):
        F.loads_index(data)


@pytest.mark.parametrize(
    "mutation",
    [
        lambda ix: ix["splits"].update(train="x"),
        lambda ix: ix["splits"]["train"].update(shards=["x"]),
        lambda ix: ix["splits"]["train"]["shards"][0].update(samples="10"),
        lambda ix: ix["splits"]["train"]["shards"][0]["offsets"].__setitem__(1, "5"),
    ],
    ids=["split-str", "shard-str", "samples-str", "offset-str"],
)
def test_validate_index_rejects_wrong_types(small_shard_set, mutation):
    bad = _read_index(small_shard_set[0])
    mutation(bad)
    with pytest.raises(FormatError):
        F.validate_index(bad)


def _b64_u64(values) -> str:
    return base64.b64encode(b"".join(int(v).to_bytes(8, "little") for v in values)).decode()


def test_stored_offsets_are_base64_uint64_and_load_as_int64(small_shard_set):
    """Version 4 stores each shard's offsets as one base64 string; the loader gives them as int64 arrays equal
    to the test's own decoding, and writes the same bytes back."""
    path = small_shard_set[0]
    raw = json.loads((path / F.INDEX_NAME).read_bytes())
    mine = _read_index(path)
    index = F.loads_index((path / F.INDEX_NAME).read_bytes())
    for split, info in index["splits"].items():
        for shard, stored, want in zip(info["shards"], raw["splits"][split]["shards"],
                                       mine["splits"][split]["shards"], strict=True):
            assert isinstance(stored["offsets"], str) and stored["offsets"] == _b64_u64(want["offsets"])
            assert shard["offsets"].dtype == np.int64 and shard["offsets"].tolist() == want["offsets"]


@pytest.mark.parametrize(
    "offsets",
    [
        "not base64!",
        _b64_u64(range(0, 1000, 100))[:-4],  # a value short
        _b64_u64([0, 100, 100, 300]),  # not increasing
        _b64_u64([5, 100, 200, 300]),  # not from 0
        _b64_u64([0, 100, 2**63, 2**63 + 5]),  # past int64
    ],
    ids=["not-base64", "short", "repeat", "not-from-0", "past-int64"],
)
def test_stored_offsets_rejected(small_shard_set, offsets):
    index = _read_index(small_shard_set[0])
    shard = index["splits"]["train"]["shards"][0]
    shard["samples"] = 3  # three samples: four offsets
    index["splits"]["train"]["samples"] = sum(s["samples"] for s in index["splits"]["train"]["shards"])
    index["splits"]["train"].pop("permutation", None)
    shard["offsets"] = offsets
    with pytest.raises(FormatError, match=shard["file"]):
        F.loads_index(json.dumps(index).encode())
    shard["offsets"] = _b64_u64([0, 100, 200, 300])
    F.loads_index(json.dumps(index).encode())  # the same index with good offsets loads
    index["version"] = 3  # a string is not how version 3 stores them
    with pytest.raises(FormatError, match="list of integers"):
        F.loads_index(json.dumps(index).encode())


def test_import_format_does_not_import_torch():
    code = "import sys, loader.format, shardgen.writer; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x24F), min_size=1, max_size=130),
    size=st.one_of(st.integers(0, 1 << 20), st.sampled_from([0, 511, 512, 513, 8**11 - 1, 8**11])),
)
def test_fast_tar_header_is_what_tarfile_writes(name, size):
    """The hot-path ustar header equals tarfile's PAX-format header byte for byte (falls back when it cannot)."""
    from loader.sampletar import _fast_tar_header, _tar_header

    assert _fast_tar_header(name, size) == _tar_header(name, size)


@pytest.mark.parametrize("canonical", [
    "not base64!",
    base64.b64encode(np.asarray([0, 1], "<u4").tobytes()).decode(),  # too short
    None,  # filled below: a repeated position
    [0, 1, 2],  # a JSON list is not the stored form
])
def test_index_refuses_a_bad_permutation(small_shard_set, canonical):
    path, _ = small_shard_set
    index = json.loads((path / F.INDEX_NAME).read_text())
    n = index["splits"]["test"]["samples"]
    if canonical is None:
        canonical = base64.b64encode(np.asarray([0] * n, "<u4").tobytes()).decode()
    index["splits"]["test"]["permutation"] = {"seed": 0, "canonical": canonical}
    with pytest.raises(F.FormatError, match="split 'test': 'permutation'"):
        F.validate_index(index)
    good = np.random.default_rng(0).permutation(n)
    stored = base64.b64encode(good.astype("<u4").tobytes()).decode()
    index["splits"]["test"]["permutation"] = {"seed": 0, "canonical": stored}
    assert F.validate_index(index) is index
