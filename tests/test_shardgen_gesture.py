"""DVS128 Gesture conversion end to end: SpikingJelly parity, generator ground truth, determinism,
index and summary, and every kind of bad input the issue lists (CLI: one-line error, no index)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import multiprocessing
import shutil
import struct
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import zstandard

from loader.format import decode_sample
from loader.shards import open_shard_set
from shardgen.cli import main
from shardgen.datasets import dvs128_gesture
from shardgen.datasets.base import RecordingTask
from tests.conftest import canonical_of, in_dataset_order, read_index_json
from tests.gen_dvsgesture import (
    GESTURE_MAPPING,
    LICENSE_TEXT,
    POLARITY,
    README_TEXT,
    SPECIAL,
    aedat31_bytes,
    expected_samples,
    packet_bytes,
    polarity_payload,
    special_payload,
    write_gesture_download,
)

GEN = {"n_train": 4, "n_test": 2, "events_per_sample": 2000, "seed": 5}
SHARD_SIZE = "16k"
ARCHIVE = "DvsGesture.tar.gz"
END_HEADER = b"#!END-HEADER\r\n"


# ----------------------------------------------------------------------------------------------- helpers


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``shardgen.cli.main(argv)`` with stdout/stderr captured (usable in module-scoped fixtures)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    return rc, out.getvalue(), err.getvalue()


def convert_argv(raw: Path, out: Path, *extra: str, workers: int = 2, no_md5: bool = True) -> list[str]:
    argv = ["convert", "dvs128-gesture", "--raw", str(raw), "--out", str(out), "--quiet", "--workers", str(workers)]
    return argv + (["--no-md5"] if no_md5 else []) + list(extra)


def read_set(out: Path) -> dict[str, list[tuple[str, dict, dict]]]:
    """split -> [(key, events, meta)] in the dataset's order (the index's permutation undone)."""
    ss = open_shard_set(out)
    dctx = zstandard.ZstdDecompressor()
    result = {}
    for split in ss.index["splits"]:
        items = []
        for shard in ss.shards(split):
            for frame in ss.iter_frames(shard, 0, shard["samples"]):
                items.append(decode_sample(bytes(frame), dctx))
        result[split] = in_dataset_order(items, ss.index["splits"][split])
    return result


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def assert_no_leftovers(out: Path, earlier: bool = False) -> None:
    """After a failed run: no partial files, no part-file or staging folder, and no index.json unless an
    ``earlier`` set was there."""
    if not out.exists():
        return
    names = [p.name for p in out.iterdir()]
    assert ("index.json" in names) == earlier
    assert not [n for n in names if n.endswith(".partial") or n.startswith((".parts-", ".stage-"))], names


def run_fail(argv: list[str], capsys, out: Path, earlier: bool = False) -> str:
    """Run a CLI command that must fail; return its single one-line error."""
    rc = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert rc != 0
    errors = [line for line in cap.err.splitlines() if line.startswith("shardgen: error:")]
    assert len(errors) == 1, cap.err
    assert all(line.startswith("shardgen: ") for line in cap.err.splitlines()), cap.err  # no traceback
    assert_no_leftovers(out, earlier)
    return errors[0]


def assert_events_equal(got: dict, want: dict, what: str) -> None:
    for c in "txyp":
        np.testing.assert_array_equal(
            np.asarray(got[c]).astype(np.int64), np.asarray(want[c]).astype(np.int64), err_msg=f"{what} {c}"
        )


def check_against_generator(out: Path, gen) -> None:
    """The shard set equals the generator's ground truth: keys in order, events, labels and metadata."""
    exp = expected_samples(gen)
    got = read_set(out)
    assert set(got) == {"train", "test"}
    for split in ("train", "test"):
        assert [k for k, _, _ in got[split]] == list(exp[split]), split
        rows = {}
        for key, ev, meta in got[split]:
            want = exp[split][key]
            assert_events_equal(ev, want, key)
            assert ev["t"].dtype == np.int64
            assert meta["label"] == want["label"] == int(key.split("/")[0])
            assert meta["class"] == dvs128_gesture.DEFAULT_CLASSES[want["label"]]
            rec = gen.recordings[meta["recording"]]
            i = rows.setdefault(meta["recording"], 0)
            rows[meta["recording"]] += 1
            assert (meta["start"], meta["end"]) == (int(rec["start"][i]), int(rec["end"][i]))
            assert meta["row"] == i + 2
            assert int(rec["labels"][i]) - 1 == meta["label"]
        assert rows == {s: len(gen.recordings[s]["labels"]) for s in getattr(gen, f"{split}_stems")}


# ----------------------------------------------------------------------------------------------- main fixtures


@pytest.fixture(scope="module")
def download(tmp_path_factory):
    """A generated download folder (archive + side files) under ``<root>/download``, SpikingJelly's layout."""
    root = tmp_path_factory.mktemp("gesture")
    gen = write_gesture_download(root / "download", **GEN)
    assert gen.roles["overflow"] in gen.train_stems and gen.roles["empty"] in gen.train_stems
    return gen


@pytest.fixture(scope="module")
def converted(download, tmp_path_factory):
    """``shardgen convert`` of the download: (OUT, summary printed with --json)."""
    out = tmp_path_factory.mktemp("converted") / "out"
    rc, stdout, stderr = run_cli(convert_argv(download.root, out, "--shard-size", SHARD_SIZE, "--json"))
    assert rc == 0, stderr
    assert "md5 sums not checked" in stderr
    return out, json.loads(stdout)


@pytest.fixture(scope="module")
def converted_samples(converted):
    return read_set(converted[0])


@pytest.fixture(scope="module")
def spikingjelly_events(download):
    """split -> (len(dataset), {key: events}) from SpikingJelly 2.0.0's DVS128Gesture on the same download."""
    pytest.importorskip("spikingjelly")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.dvs128_gesture import DVS128Gesture

    md5 = dict(download.md5)

    class GeneratedGesture(DVS128Gesture):
        """Only the published md5 sums differ: the generated files have their own."""

        @classmethod
        def resource_url_md5(cls) -> list:
            return [(name, "generated://", digest) for name, digest in md5.items()]

    root = download.root.parent
    result = {}
    for split in ("train", "test"):
        ds = GeneratedGesture(str(root), train=split == "train", data_type="event")
        base = root / "events_np" / split
        events = {}
        for f in sorted(base.rglob("*.npz")):
            with np.load(f) as z:
                events[f.relative_to(base).with_suffix("").as_posix()] = {c: z[c] for c in "txyp"}
        result[split] = (len(ds), events)
    return result


# ----------------------------------------------------------------------------------------------- parity


@pytest.mark.parametrize("split", ["train", "test"])
def test_parity_with_spikingjelly(split, spikingjelly_events, converted_samples):
    n_sj, sj = spikingjelly_events[split]
    ours = converted_samples[split]
    keys = [k for k, _, _ in ours]
    assert len(keys) == len(set(keys)) == len(ours) == n_sj == len(sj)
    assert set(keys) == set(sj)
    for key, ev, meta in ours:
        assert_events_equal(ev, sj[key], key)
        assert meta["label"] == int(key.split("/")[0])  # the true class, not SpikingJelly's folder index
        assert meta["class"] == dvs128_gesture.DEFAULT_CLASSES[meta["label"]]
    if split == "train":  # the hard cases are really in this comparison
        assert any(e["t"].size == 0 for _, e, _ in ours)
        assert any(sj[k]["t"].size == 0 for k in sj)
        assert any(e["t"].size and e["t"].max() >= 1 << 31 for _, e, _ in ours)
        assert any(e["t"].size and e["t"].min() < 1 << 31 <= e["t"].max() for _, e, _ in ours)  # straddles 2**31


def test_event_dataset_reads_the_same(converted, converted_samples):
    """EventShardDataset(data_type='event', shuffle=False, return_key=True) gives the samples in stored order."""
    pytest.importorskip("torch")
    from loader import EventShardDataset

    for split in ("train", "test"):
        ds = EventShardDataset(converted[0], split=split, data_type="event", shuffle=False, return_key=True)
        items = list(ds)
        assert len(ds) == len(items) == len(converted_samples[split])
        canonical = canonical_of(read_index_json(converted[0])["splits"][split])
        stored = [converted_samples[split][c] for c in canonical]  # stored position j holds sample canonical[j]
        for (ev, label, key), (k2, ev2, meta) in zip(items, stored, strict=True):
            assert key == k2
            assert int(label) == meta["label"] == int(key.split("/")[0])
            assert_events_equal(ev, ev2, key)


# ----------------------------------------------------------------------------------------------- ground truth


def test_archive_matches_generator(download, converted):
    check_against_generator(converted[0], download)


@pytest.mark.parametrize(
    "variant",
    ["trials_first", "extracted_only", "extracted_only_inner", "extracted_and_archive"],
)
def test_input_variants_match_generator(variant, tmp_path):
    kw = {"n_train": 4, "n_test": 1, "events_per_sample": 600, "seed": 21}
    raw = tmp_path / "raw"
    if variant == "trials_first":
        gen = write_gesture_download(raw, trials_first=True, **kw)
        assert gen.members[1].endswith(("LICENSE.txt", "trials_to_train.txt"))  # small files come first
    elif variant == "extracted_and_archive":
        gen = write_gesture_download(raw, extracted=True, **kw)
    else:
        gen = write_gesture_download(raw, extracted="only", **kw)
        assert not (raw / ARCHIVE).exists()
        if variant == "extracted_only_inner":
            raw = raw / "DvsGesture"
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(convert_argv(raw, out, "--json"))
    assert rc == 0, stderr
    check_against_generator(out, gen)
    summary = json.loads(stdout)
    assert summary["empty_windows"] == 1
    assert summary["events_read"] == gen.n_events
    if variant.startswith("extracted_only"):
        assert any("gesture_mapping.csv" in w for w in summary["warnings"])


# ----------------------------------------------------------------------------------------------- shard files


def test_zstd_tar_lists_member_pairs(converted, converted_samples):
    if shutil.which("zstd") is None or shutil.which("tar") is None:
        pytest.skip("no zstd or tar binary")
    out = converted[0]
    index = read_index_json(out)
    for split in ("train", "test"):
        shard = index["splits"][split]["shards"][0]
        assert shard["file"] == f"{split}-000000.tar.zst"
        tar_bytes = subprocess.run(["zstd", "-dc", str(out / shard["file"])], capture_output=True, check=True).stdout
        listing = subprocess.run(["tar", "t"], input=tar_bytes, capture_output=True, check=True)
        names = listing.stdout.decode().splitlines()
        canonical = canonical_of(index["splits"][split])
        keys = [converted_samples[split][c][0] for c in canonical[: shard["samples"]]]
        assert names == [n for k in keys for n in (f"{k}.events.msgpack", f"{k}.label.msgpack")]
        assert listing.stderr == b""


def test_index_matches_files(converted, download):
    out, _ = converted
    index = read_index_json(out)
    assert index["dataset"] == "dvs128-gesture"
    assert index["sensor_size"] == [128, 128]
    assert index["classes"] == dvs128_gesture.DEFAULT_CLASSES
    assert index["time_unit"] == "us"
    shard_files = [s["file"] for info in index["splits"].values() for s in info["shards"]]
    assert len(shard_files) >= 16
    assert all(len(info["shards"]) > 1 for info in index["splits"].values())
    assert sorted(p.name for p in out.iterdir()) == sorted(["index.json", *shard_files])  # nothing else
    dctx = zstandard.ZstdDecompressor()
    for split, info in index["splits"].items():
        for n, shard in enumerate(info["shards"]):
            assert shard["file"] == f"{split}-{n:06d}.tar.zst"
            data = (out / shard["file"]).read_bytes()
            assert len(data) == shard["bytes"]
            assert hashlib.sha256(data).hexdigest() == shard["sha256"]
            offs = shard["offsets"]
            decoded = [decode_sample(data[offs[k] : offs[k + 1]], dctx) for k in range(shard["samples"])]
            assert len(decoded) == shard["samples"] >= 1
            assert sum(ev["t"].size for _, ev, _ in decoded) == shard["events"]
        assert info["samples"] == sum(s["samples"] for s in info["shards"])
        assert info["events"] == sum(s["events"] for s in info["shards"])
        assert info["bytes"] == sum(s["bytes"] for s in info["shards"])
    files = {f["file"]: f["md5"] for f in index["source"]["files"]}
    assert files[ARCHIVE] == "not checked"
    for name in ("gesture_mapping.csv", "LICENSE.txt", "README.txt"):
        assert files[name] == download.md5[name]


def test_verify(converted, capsys, tmp_path):
    out, _ = converted
    assert main(["verify", str(out)]) == 0
    cap = capsys.readouterr()
    n = sum(len(v) for v in read_set(out).values())
    assert cap.out.startswith(f"OK: {n} samples")
    # a damaged copy fails, naming the shard
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    victim = bad / "train-000003.tar.zst"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert main(["verify", str(bad)]) != 0
    assert "train-000003.tar.zst" in capsys.readouterr().err


def test_summary_counts(converted, download):
    out, summary = converted
    exp = expected_samples(download)
    index = read_index_json(out)
    stored = index["summary"]
    assert {k: v for k, v in summary.items() if k not in ("seconds", "events_per_second")} == stored
    assert stored["recordings"] == len(download.recordings) == 6
    assert stored["empty_windows"] == 1
    assert stored["samples"] == {split: len(exp[split]) for split in ("train", "test")}
    for split in ("train", "test"):
        counts = Counter(v["label"] for v in exp[split].values())
        want = {name: counts.get(i, 0) for i, name in enumerate(dvs128_gesture.DEFAULT_CLASSES)}
        assert stored["samples_per_class"][split] == want
    events = sum(v["t"].size for split in exp.values() for v in split.values())
    assert stored["events"] == events == sum(info["events"] for info in index["splits"].values())
    assert stored["events_read"] == download.n_events
    assert stored["truncated_recordings"] == 0 and stored["truncated_bytes"] == 0
    skipped = sum(1 for rec in download.recordings.values() for pk in rec["packets"] if pk[0] != POLARITY)
    assert stored["skipped_packets"] == skipped > 0
    assert stored["skipped"] == []
    assert stored["shard_bytes"] == sum(info["bytes"] for info in index["splits"].values())


def test_rerun_is_byte_identical(download, converted, tmp_path, capsys):
    reference = folder_bytes(converted[0])
    assert "index.json" in reference
    out1, out2 = tmp_path / "w1", tmp_path / "w2"
    # --workers 1, human-readable summary
    assert main(convert_argv(download.root, out1, "--shard-size", SHARD_SIZE, workers=1)) == 0
    text = capsys.readouterr().out
    assert "empty windows  1" in text
    assert f"samples train  {len(expected_samples(download)['train'])}" in text
    assert folder_bytes(out1) == reference
    # --workers 2, then again into the same (complete) folder
    for _ in range(2):
        assert main(convert_argv(download.root, out2, "--shard-size", SHARD_SIZE, workers=2)) == 0
        assert folder_bytes(out2) == reference


# ----------------------------------------------------------------------------------------------- md5


def test_md5_checked_by_default(download, tmp_path, capsys):
    out = tmp_path / "out"
    err = run_fail(convert_argv(download.root, out, no_md5=False), capsys, out)
    assert "md5" in err and "--no-md5" in err
    assert str(download.root) in err  # names the file
    named = [n for n in ("gesture_mapping.csv", "LICENSE.txt", "README.txt", ARCHIVE) if n in err]
    assert len(named) == 1


def test_md5_of_archive_is_checked(download, tmp_path, capsys, monkeypatch):
    """With the side files' sums matching, the archive's own (streamed) md5 still fails, naming it."""
    for name in ("gesture_mapping.csv", "LICENSE.txt", "README.txt"):
        monkeypatch.setitem(dvs128_gesture.RESOURCES, name, download.md5[name])
    out = tmp_path / "out"
    err = run_fail(convert_argv(download.root, out, no_md5=False), capsys, out)
    assert f"{download.root / ARCHIVE}: md5 {download.md5[ARCHIVE]} differs" in err
    assert "--no-md5" in err
    # with every published sum matching, the same command succeeds and records the md5
    monkeypatch.setitem(dvs128_gesture.RESOURCES, ARCHIVE, download.md5[ARCHIVE])
    assert main(convert_argv(download.root, out, no_md5=False)) == 0
    index = read_index_json(out)
    assert {f["file"]: f["md5"] for f in index["source"]["files"]} == download.md5


# ----------------------------------------------------------------------------------------------- bad inputs


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """A small generated set, extracted: the material the bad downloads are made of."""
    root = tmp_path_factory.mktemp("small")
    gen = write_gesture_download(root, n_train=4, n_test=1, events_per_sample=300, seed=3, extracted="only")
    folder = root / "DvsGesture"
    files = {}
    for stem in gen.recordings:
        for name in (f"{stem}.aedat", f"{stem}_labels.csv"):
            files[name] = (folder / name).read_bytes()
    for name in ("LICENSE.txt", "README.txt", "trials_to_train.txt", "trials_to_test.txt"):
        files[name] = (folder / name).read_bytes()
    return gen, files


def make_download(raw: Path, files: dict[str, bytes], first: list[tuple[str, bytes]] = ()) -> Path:
    """Write ``raw/DvsGesture.tar.gz`` (members ``DvsGesture/<name>``; ``first`` = raw member names put first)
    plus the three side files."""
    raw.mkdir(parents=True, exist_ok=True)
    with tarfile.open(raw / ARCHIVE, "w:gz") as tf:
        for name, data in first:
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
        d = tarfile.TarInfo("DvsGesture")
        d.type = tarfile.DIRTYPE
        tf.addfile(d)
        for name, data in files.items():
            ti = tarfile.TarInfo(f"DvsGesture/{name}")
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data))
    for name, text in (
        ("gesture_mapping.csv", GESTURE_MAPPING),
        ("LICENSE.txt", LICENSE_TEXT),
        ("README.txt", README_TEXT),
    ):
        (raw / name).write_text(text)
    return raw


def packet_offsets(data: bytes, plan) -> list[int]:
    """Byte offset of every packet header of a generated recording, from its packet plan."""
    pos = data.index(END_HEADER) + len(END_HEADER)
    offsets = []
    for _et, _ovf, number, size in plan:
        offsets.append(pos)
        pos += 28 + number * size
    assert pos == len(data)
    return offsets


@pytest.mark.parametrize("order", ["as_ibm", "labels_first", "reversed"])
def test_good_small_download_converts(small, tmp_path, order):
    """The unmodified material converts, whatever the member order (so every failure below is caused by its one
    defect)."""
    gen, files = small
    names = list(files)
    if order == "labels_first":
        names = [n for n in names if n.endswith("_labels.csv")] + [n for n in names if not n.endswith("_labels.csv")]
    elif order == "reversed":
        names.reverse()
    raw = make_download(tmp_path / "raw", {n: files[n] for n in names})
    out = tmp_path / "out"
    rc, _, stderr = run_cli(convert_argv(raw, out, workers=1))
    assert rc == 0, stderr
    check_against_generator(out, gen)


def test_no_end_header(small, tmp_path, capsys):
    gen, files = small
    stem = gen.train_stems[1]
    data = files[f"{stem}.aedat"]
    hlen = data.index(END_HEADER) + len(END_HEADER)
    bad = dict(files)
    bad[f"{stem}.aedat"] = data.replace(END_HEADER, b"#!END-HEADXR\r\n", 1)
    raw = make_download(tmp_path / "raw", bad)
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert f"{stem}.aedat: byte {hlen}:" in err
    assert "END-HEADER" in err


def _truncation_point(gen, files, stem):
    """(file bytes cut inside a polarity packet, offset of that packet, events kept, partial bytes)."""
    rec = gen.recordings[stem]
    data = files[f"{stem}.aedat"]
    offsets = packet_offsets(data, rec["packets"])
    before = 0
    for (et, _ovf, number, _size), pos in zip(rec["packets"], offsets, strict=True):
        if et == POLARITY and number >= 4 and before >= rec["t"].size // 3:
            keep = before + number // 2
            return data[: pos + 28 + 8 * (number // 2) + 3], pos, keep, 3
        if et == POLARITY:
            before += number
    raise AssertionError("no polarity packet to cut")


def test_truncated_recording(small, tmp_path, capsys):
    gen, files = small
    stem = gen.train_stems[0]
    cut, pos, keep, partial = _truncation_point(gen, files, stem)
    bad = dict(files)
    bad[f"{stem}.aedat"] = cut
    raw = make_download(tmp_path / "raw", bad)
    out = tmp_path / "out"
    err = run_fail(convert_argv(raw, out, workers=2), capsys, out)
    assert f"{stem}.aedat: byte {pos}:" in err
    assert "--allow-truncated" in err

    # --allow-truncated keeps the events before the damage
    assert main(convert_argv(raw, out, "--allow-truncated", "--json", workers=2)) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out)
    assert f"{stem}.aedat: truncated" in cap.err
    rec = gen.recordings[stem]
    assert summary["truncated_recordings"] == 1
    assert summary["truncated_bytes"] == partial
    assert summary["events_read"] == gen.n_events - (rec["t"].size - keep)
    exp = expected_samples(gen)
    got = read_set(out)
    lost = kept = 0
    for split in ("train", "test"):
        assert [k for k, _, _ in got[split]] == list(exp[split])
        for key, ev, meta in got[split]:
            if meta["recording"] != stem:
                assert_events_equal(ev, exp[split][key], key)
                continue
            t = rec["t"][:keep]
            m = (t >= meta["start"]) & (t < meta["end"])
            want = {c: rec[c][:keep][m] for c in "txyp"}
            assert_events_equal(ev, want, key)
            lost += exp[split][key]["t"].size - ev["t"].size
            kept += ev["t"].size
    assert lost > 0 and kept > 0  # the cut really went through the samples
    assert summary["events"] == sum(e["t"].size for s in got.values() for _, e, _ in s)
    # the human-readable summary says so too
    assert main(convert_argv(raw, tmp_path / "out2", "--allow-truncated", workers=1)) == 0
    assert f"truncated      1 recordings, {partial} bytes dropped" in capsys.readouterr().out


def test_polarity_event_size_not_8(small, tmp_path, capsys):
    gen, files = small
    stem = gen.test_stems[0]
    rec = gen.recordings[stem]
    data = bytearray(files[f"{stem}.aedat"])
    offsets = packet_offsets(bytes(data), rec["packets"])
    k = [i for i, pk in enumerate(rec["packets"]) if pk[0] == POLARITY][2]
    struct.pack_into("<i", data, offsets[k] + 4, 16)
    bad = dict(files)
    bad[f"{stem}.aedat"] = bytes(data)
    raw = make_download(tmp_path / "raw", bad)
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert f"{stem}.aedat: byte {offsets[k]}:" in err
    assert "eventSize 16" in err


@pytest.mark.parametrize(
    "row, words",
    [
        ("12,{s},{e}", "class 12"),
        ("0,{s},{e}", "class 0"),
        ("x,{s},{e}", "'x,"),
        ("3,{s}", "expected"),
        ("3,{s},1e6", "expected"),
        ("3,-5,{e}", "times"),
    ],
)
def test_bad_labels_csv(small, tmp_path, capsys, row, words):
    gen, files = small
    stem = gen.train_stems[2]
    name = f"{stem}_labels.csv"
    lines = files[name].decode().splitlines()
    _c, s, e = lines[2].split(",")
    lines[2] = row.format(s=s, e=e)
    bad = dict(files)
    bad[name] = ("\n".join(lines) + "\n").encode()
    raw = make_download(tmp_path / "raw", bad)
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert f"{name}: row 3:" in err
    assert words in err


@pytest.mark.parametrize("case", ["empty_folder", "side_files_only", "no_folder"])
def test_missing_archive(tmp_path, capsys, case):
    raw = tmp_path / "raw"
    if case != "no_folder":
        raw.mkdir()
    if case == "side_files_only":
        (raw / "gesture_mapping.csv").write_text(GESTURE_MAPPING)
    out = tmp_path / "out"
    err = run_fail(convert_argv(raw, out), capsys, out)
    assert ARCHIVE in err
    assert "https://research.ibm.com/interactive/dvsgesture/" in err  # where to get it
    assert f"put them in {raw}" in err  # where to put it
    assert not out.exists()


@pytest.mark.parametrize("member", ["../evil.aedat", "DvsGesture/../../evil.aedat", "/tmp/evil_abs.aedat"])
def test_archive_member_outside(small, tmp_path, capsys, monkeypatch, member):
    gen, files = small
    raw = make_download(tmp_path / "raw", files, first=[(member, files[f"{gen.train_stems[0]}.aedat"])])
    cwd = tmp_path / "cwd" / "deeper"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    before = sorted(tmp_path.rglob("*"))
    out = tmp_path / "out"
    err = run_fail(convert_argv(raw, out), capsys, out)
    assert ARCHIVE in err and repr(member) in err
    after = [p for p in sorted(tmp_path.rglob("*")) if p != out and out not in p.parents]
    assert after == before  # nothing written anywhere but OUT
    assert not Path("/tmp/evil_abs.aedat").exists()


def test_recording_larger_than_any_real_one_is_refused(small, tmp_path, capsys, monkeypatch):
    """A member claiming more than MAX_RECORDING_BYTES (a gzip bomb) is refused before it is read."""
    gen, files = small
    raw = make_download(tmp_path / "raw", files)
    biggest = max(len(v) for k, v in files.items() if k.endswith(".aedat"))
    monkeypatch.setattr(dvs128_gesture, "MAX_RECORDING_BYTES", biggest - 1)
    out = tmp_path / "out"
    err = run_fail(convert_argv(raw, out, workers=1), capsys, out)
    assert ARCHIVE in err and ".aedat" in err and "more than any DVS128 Gesture recording" in err


def test_listed_recording_absent_from_archive(small, tmp_path, capsys):
    gen, files = small
    bad = dict(files)
    bad["trials_to_train.txt"] = files["trials_to_train.txt"] + b"user09_lab.aedat\n"
    raw = make_download(tmp_path / "raw", bad)
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert "user09_lab" in err and "train" in err


def test_listed_recording_absent_from_folder(small, tmp_path, capsys):
    gen, _ = small
    raw = tmp_path / "raw"
    shutil.copytree(gen.root / "DvsGesture", raw / "DvsGesture")
    trials = raw / "DvsGesture" / "trials_to_test.txt"
    trials.write_text(trials.read_text() + "user30_led.aedat\n")
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert str(raw / "DvsGesture" / "user30_led.aedat") in err


def test_failed_assembly_leaves_no_orphan_shards(small, tmp_path, capsys):
    """A failure after some shards of a split were closed must not leave those shard files behind."""
    _, files = small
    bad = dict(files)
    bad["trials_to_train.txt"] = files["trials_to_train.txt"] + b"user09_lab.aedat\n"
    raw = make_download(tmp_path / "raw", bad)
    out = tmp_path / "out"
    run_fail(convert_argv(raw, out, "--shard-size", "2k", workers=1), capsys, out)
    assert sorted(p.name for p in out.glob("*.tar.zst")) == []


def test_unlisted_recording_is_skipped(small, tmp_path):
    gen, files = small
    bad = dict(files)
    stem = gen.test_stems[0]
    bad["trials_to_test.txt"] = b""
    raw = make_download(tmp_path / "raw", bad)
    out = tmp_path / "out"
    rc, stdout, stderr = run_cli(convert_argv(raw, out, "--json", workers=1))
    assert rc == 0, stderr
    summary = json.loads(stdout)
    assert summary["samples"]["test"] == 0
    assert any(stem in s for s in summary["skipped"])
    assert summary["samples"]["train"] == len(expected_samples(gen)["train"])


def _recording_with_bad_event(axis: str) -> tuple[bytes, int, int]:
    """A recording whose 3rd event of its 2nd polarity packet lies outside the sensor; (bytes, offset, value)."""
    p0 = packet_bytes(SPECIAL, 0, special_payload([0], [2]), 8)
    p1 = packet_bytes(
        POLARITY, 0, polarity_payload([100, 200, 300, 400, 500], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], [0, 1, 0, 1, 0]), 8
    )
    x, y = [10, 20, 30, 40], [10, 20, 30, 40]
    value = 130 if axis == "x" else 200
    (x if axis == "x" else y)[2] = value
    p2 = packet_bytes(POLARITY, 0, polarity_payload([600, 700, 800, 900], x, y, [1, 1, 0, 0]), 8)
    data = aedat31_bytes([p0, p1, p2])
    pos2 = len(data) - len(p2)
    return data, pos2 + 28 + 2 * 8, value


@pytest.mark.parametrize("axis", ["x", "y"])
def test_event_outside_sensor(small, tmp_path, capsys, axis):
    gen, files = small
    stem = gen.train_stems[3]
    data, offset, value = _recording_with_bad_event(axis)
    bad = dict(files)
    bad[f"{stem}.aedat"] = data
    bad[f"{stem}_labels.csv"] = b"class,startTime_usec,endTime_usec\n1,0,1000\n"
    raw = make_download(tmp_path / "raw", bad)
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert f"{stem}.aedat: byte {offset}:" in err
    assert f"{axis}={value}" in err


def test_failed_rerun_keeps_previous_set(small, tmp_path, capsys):
    gen, files = small
    out = tmp_path / "out"
    good = make_download(tmp_path / "good", files)
    assert main(convert_argv(good, out, "--shard-size", "4k", workers=1)) == 0
    assert (out / "index.json").exists()
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert sum(name.endswith(".tar.zst") for name in before) > 2
    capsys.readouterr()
    name = f"{gen.train_stems[0]}_labels.csv"
    bad = dict(files)
    bad[name] = files[name].replace(b"\n1,", b"\n99,", 1)
    assert bad[name] != files[name]
    raw = make_download(tmp_path / "bad", bad)
    err = run_fail(convert_argv(raw, out, "--shard-size", "4k", workers=1), capsys, out, earlier=True)
    assert name in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # byte-identical, nothing added
    assert main(["verify", str(out)]) == 0


def test_recording_listed_in_both_splits(small, tmp_path, capsys):
    gen, files = small
    bad = dict(files)
    stem = gen.train_stems[1]
    bad["trials_to_test.txt"] = files["trials_to_test.txt"] + f"{stem}.aedat\n".encode()
    raw = make_download(tmp_path / "raw", bad)
    err = run_fail(convert_argv(raw, tmp_path / "out", workers=1), capsys, tmp_path / "out")
    assert stem in err and "twice" in err


def test_time_stamps_going_back_are_selected_by_mask():
    """A recording whose time stamps go back (a reset) is cut like SpikingJelly: by mask, in file order."""
    t = np.array([10, 20, 30, 5, 15, 25, 40, 26])
    n = t.size
    x, y, p = np.arange(n), np.arange(n) * 2, np.arange(n) % 2
    data = aedat31_bytes([packet_bytes(POLARITY, 0, polarity_payload(t, x, y, p), 8)])
    labels = b"class,startTime_usec,endTime_usec\n1,10,26\n2,0,100\n1,26,27\n"
    task = RecordingTask(
        "u",
        data=data,
        context={"labels": labels, "labels_name": "u_labels.csv", "classes": list(dvs128_gesture.DEFAULT_CLASSES)},
    )
    result = dvs128_gesture.cut(task)
    assert [s.key for s in result.samples] == ["0/u_0", "1/u_0", "0/u_1"]
    for s in result.samples:
        m = (t >= s.meta["start"]) & (t < s.meta["end"])
        for c, col in zip("txyp", (t, x, y, p), strict=True):
            np.testing.assert_array_equal(getattr(s, c), col[m])
    assert result.samples[0].t.tolist() == [10, 20, 15, 25]
    assert result.samples[2].t.tolist() == [26]
    assert any("not monotonic" in w for w in result.warnings)


def test_failed_conversion_stops_its_workers(small, tmp_path, capsys):
    """After a failure no worker may outlive the conversion (a late worker writes a part file after the
    clean-up and leaves ``OUT/.parts-*`` behind)."""
    gen, files = small
    name = f"{gen.train_stems[0]}_labels.csv"
    bad = dict(files)
    bad[name] = files[name].replace(b"\n1,", b"\nx,", 1)
    raw = make_download(tmp_path / "raw", bad)
    before = {p.pid for p in multiprocessing.active_children()}
    run_fail(convert_argv(raw, tmp_path / "out", workers=2), capsys, tmp_path / "out")
    alive = [p for p in multiprocessing.active_children() if p.pid not in before]
    assert alive == []
