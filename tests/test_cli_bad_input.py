"""Every bad input of the hardening table, end to end through ``shardgen convert`` in a subprocess.

The parsers' own tests (``test_aedat3.py``, ``test_shardgen_gesture.py``, ``test_dataset_folder.py``,
``test_datasets_classfolder.py``, ``test_security.py``) check the messages one function down; here each
case runs the real command line (``python -m shardgen.cli convert … --workers 2``, as
``test_interrupt.py`` runs it) on a small generated download with one defect, and checks what a user
sees. Two outcomes are documented (``docs/SEMANTICS.md``, ``docs/RECORDINGS.md``, ``docs/DATASETS.md``):

- **an error**: exit status 1; the last line of stderr is the only ``shardgen: error: …`` line and
  names the file (and the byte offset or CSV row where the case has one); every stderr line starts
  with ``shardgen: `` (no traceback without ``--debug``); OUT holds no ``index.json``, no shard, no
  ``.partial`` file and no part-file folder;
- **a repair**: exit status 0; a ``shardgen: warning: …`` line on stderr (or a ``skipped …`` line of
  the summary on stdout) names the file; ``OUT/index.json`` exists and its summary counts the case.

Downloads come from the generators in ``tests/`` (``gen_dvsgesture``, ``gen_classfolders``,
``gen_folder``, ``gen_eventfiles``, ``gen_rawfiles``); the damaged bytes are cut or patched at offsets
computed from the generators' own packet layout, not from the parsers.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shardgen.writer import CRASH_ENV
from tests.gen_classfolders import GeneratedDownload, write_cifar10dvs, write_ncaltech101, write_nmnist
from tests.gen_dvsgesture import (
    GESTURE_MAPPING,
    LABELS_HEADER,
    LICENSE_TEXT,
    POLARITY,
    README_TEXT,
    SPECIAL,
    GeneratedGesture,
    aedat31_bytes,
    expected_samples,
    packet_bytes,
    polarity_payload,
    special_payload,
    write_gesture_download,
)
from tests.gen_folder import random_recording, write_recording
from tests.gen_rawfiles import atis_bin_bytes

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the converter forks its workers")

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 120  # seconds one conversion may take (they take about one)
ARCHIVE = "DvsGesture.tar.gz"
END_HEADER = b"#!END-HEADER\r\n"


# ------------------------------------------------------------------------------------------- running the CLI


@dataclass
class Run:
    """One finished ``shardgen convert`` process."""

    rc: int
    stdout: str
    stderr: str
    out: Path

    def summary(self) -> dict[str, Any]:
        """The summary the run stored in ``OUT/index.json``."""
        return json.loads((self.out / "index.json").read_bytes())["summary"]


def convert_cli(dataset: str, raw: Path, out: Path, *extra: str, md5: bool = False, cwd: Path | None = None) -> Run:
    """``python -m shardgen.cli convert DATASET --raw RAW --out OUT --workers 2 --quiet [--no-md5] EXTRA``."""
    argv = [sys.executable, "-m", "shardgen.cli", "convert", dataset, "--raw", str(raw), "--out", str(out),
            "--workers", "2", "--quiet", *([] if md5 else ["--no-md5"]), *extra]
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])
    cwd = cwd or out.parent
    cwd.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    return Run(res.returncode, res.stdout, res.stderr, out)


def assert_nothing_complete(out: Path) -> None:
    """OUT holds nothing that looks like (part of) a finished set: no index, shard, ``.partial`` or part folder."""
    if not out.exists():
        return
    names = [str(p.relative_to(out)) for p in out.rglob("*")]
    assert "index.json" not in names
    assert [n for n in names if n.endswith(".partial")] == []
    assert [n for n in names if n.startswith(".parts-")] == []
    assert [n for n in names if n.endswith(".tar.zst")] == []


def assert_error(run: Run, *needles: str) -> str:
    """The documented error outcome; ``needles`` must all be in the one-line error. Returns that line."""
    err = run.stderr
    assert run.rc == 1, f"exit status {run.rc}\n{err}"
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines, "nothing on stderr"
    last = lines[-1]
    assert last.startswith("shardgen: error: "), err
    assert [ln for ln in lines if "error:" in ln] == [last], err  # one error line, the last one
    assert all(ln.startswith("shardgen: ") for ln in lines), err
    for needle in needles:
        assert needle in last, f"{needle!r} not in {last!r}"
    assert_nothing_complete(run.out)
    return last


def assert_repaired(run: Run, needle: str, where: str = "warning") -> dict[str, Any]:
    """The documented repair: exit 0, a warning (stderr) or skipped line (stdout summary) naming ``needle``,
    a complete set. Returns the summary stored in ``index.json``."""
    assert run.rc == 0, run.stderr
    assert "Traceback" not in run.stderr, run.stderr
    assert (run.out / "index.json").is_file()
    if where == "warning":
        lines = [ln for ln in run.stderr.splitlines() if ln.startswith("shardgen: warning: ") and needle in ln]
    else:
        lines = [ln for ln in run.stdout.splitlines() if ln.startswith("skipped ") and needle in ln]
    assert lines, f"no {where} line names {needle!r}:\n{run.stdout}\n{run.stderr}"
    summary = run.summary()
    assert sum(summary["samples"][s] for s in ("train", "test")) > 0
    return summary


# -------------------------------------------------------------------------------------------- DVS128 Gesture


@dataclass
class Gesture:
    gen: GeneratedGesture
    files: dict[str, bytes]  # member name under DvsGesture/ -> bytes

    @property
    def stem(self) -> str:
        """The recording the cases damage (a train recording)."""
        return self.gen.train_stems[0]

    def counts(self, stem_rows: int | None = None) -> dict[str, int]:
        """Samples per split of the undamaged download, or with :attr:`stem` holding ``stem_rows`` rows."""
        exp = {split: len(keys) for split, keys in expected_samples(self.gen).items()}
        if stem_rows is not None:
            exp["train"] += stem_rows - len(self.gen.recordings[self.stem]["labels"])
        return exp


@pytest.fixture(scope="module")
def gesture(tmp_path_factory: pytest.TempPathFactory) -> Gesture:
    """A small DVS128 Gesture download as IBM distributes it (and extracted): 2 train, 1 test recording."""
    root = tmp_path_factory.mktemp("gesture") / "download"
    gen = write_gesture_download(root, n_train=2, n_test=1, events_per_sample=100, seed=3, extracted=True)
    files = {m.split("/", 1)[1]: (root / m).read_bytes() for m in gen.members if m != "DvsGesture"}  # stored order
    return Gesture(gen, files)


def _tarinfo(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.linkname, info.mtime = size, kind, link, 0
    return info


def gesture_download(raw: Path, files: dict[str, bytes], first: list[tuple[tarfile.TarInfo, bytes]] = ()) -> Path:
    """``raw/DvsGesture.tar.gz`` holding ``DvsGesture/<name>`` for ``files`` (after the members ``first``),
    and the three side files; returns ``raw``."""
    raw.mkdir(parents=True)
    with tarfile.open(raw / ARCHIVE, "w:gz", format=tarfile.GNU_FORMAT) as tf:
        for info, data in first:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
        tf.addfile(_tarinfo("DvsGesture", kind=tarfile.DIRTYPE))
        for name, data in files.items():
            tf.addfile(_tarinfo(f"DvsGesture/{name}", len(data)), io.BytesIO(data))
    for name, text in (("gesture_mapping.csv", GESTURE_MAPPING), ("LICENSE.txt", LICENSE_TEXT),
                       ("README.txt", README_TEXT)):
        (raw / name).write_text(text)
    return raw


# A short recording that replaces the damaged one: a special packet, then polarity packets of 5 and 4 events.
SMALL_LABELS = (LABELS_HEADER + "1,0,1000\n2,300,800\n").encode()
SMALL_T2 = (600, 700, 800, 900)


def small_recording(t2=SMALL_T2, x2=(10, 20, 30, 40)) -> tuple[bytes, int]:
    """The recording's bytes and the byte offset of its last (second polarity) packet."""
    p0 = packet_bytes(SPECIAL, 0, special_payload([0], [2]), 8)
    p1 = packet_bytes(POLARITY, 0, polarity_payload([100, 200, 300, 400, 500], [1, 2, 3, 4, 5], [1, 2, 3, 4, 5],
                                                    [0, 1, 0, 1, 0]), 8)
    p2 = packet_bytes(POLARITY, 0, polarity_payload(list(t2), list(x2), [10, 20, 30, 40], [1, 1, 0, 0]), 8)
    data = aedat31_bytes([p0, p1, p2])
    return data, len(data) - len(p2)


def _cut_in_packet(data: bytes, pos: int) -> bytes:
    return data[: pos + 28 + 2 * 8 + 3]  # two whole events of the last packet and 3 bytes of the third


def _event_size_16(data: bytes, pos: int) -> bytes:
    out = bytearray(data)
    struct.pack_into("<i", out, pos + 4, 16)  # the packet header's eventSize
    return bytes(out)


HLEN = small_recording()[0].index(END_HEADER) + len(END_HEADER)  # the first byte after the header

# case -> (the damaged recording, made of (bytes, offset of the last packet); the byte offset the error names,
#          from that offset; words the error line holds)
RECORDING_DAMAGE: dict[str, tuple[Callable[[bytes, int], bytes], Callable[[int], int], str]] = {
    "truncated in an event": (_cut_in_packet, lambda pos: pos, "--allow-truncated"),
    "truncated in a packet header": (lambda d, pos: d[: pos + 10], lambda pos: pos, "truncated packet header"),
    "wrong event size": (_event_size_16, lambda pos: pos, "eventSize 16"),
    "garbage header": (lambda d, _: bytes(range(0xF0, 0xFC)) + d[12:], lambda _: 0, "AEDAT 3"),
    "no end of header": (lambda d, _: d.replace(END_HEADER, b"#!END-HEADXR\r\n"), lambda _: HLEN, "END-HEADER"),
    "coordinates outside the sensor": (lambda d, _: small_recording(x2=(10, 20, 130, 40))[0],
                                       lambda pos: pos + 28 + 2 * 8, "x=130"),  # the third event of the packet
}


@pytest.mark.parametrize("case", list(RECORDING_DAMAGE))
def test_gesture_damaged_recording_is_an_error(gesture, tmp_path, case):
    damage, offset, words = RECORDING_DAMAGE[case]
    data, pos = small_recording()
    files = {**gesture.files, f"{gesture.stem}.aedat": damage(data, pos),
             f"{gesture.stem}_labels.csv": SMALL_LABELS}
    raw = gesture_download(tmp_path / "raw", files)
    assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out"),
                 f"{gesture.stem}.aedat: byte {offset(pos)}: ", words)


def test_gesture_truncated_recording_allowed(gesture, tmp_path):
    """``--allow-truncated``: the complete events before the damage are kept, the dropped bytes reported."""
    data, pos = small_recording()
    files = {**gesture.files, f"{gesture.stem}.aedat": _cut_in_packet(data, pos),
             f"{gesture.stem}_labels.csv": SMALL_LABELS}
    raw = gesture_download(tmp_path / "raw", files)
    run = convert_cli("dvs128-gesture", raw, tmp_path / "out", "--allow-truncated")
    summary = assert_repaired(run, f"{gesture.stem}.aedat: truncated")
    assert (summary["truncated_recordings"], summary["truncated_bytes"]) == (1, 3)
    assert summary["samples"] == gesture.counts(stem_rows=2)
    assert "truncated      1 recordings, 3 bytes dropped" in run.stdout


def test_gesture_time_stamps_going_back_are_repaired(gesture, tmp_path):
    """Time stamps that go back (a reset): windows are selected by mask, with a warning naming the file."""
    data, _ = small_recording(t2=(250, 350, 150, 450))  # after 500: back to 250, then 150
    files = {**gesture.files, f"{gesture.stem}.aedat": data, f"{gesture.stem}_labels.csv": SMALL_LABELS}
    raw = gesture_download(tmp_path / "raw", files)
    run = convert_cli("dvs128-gesture", raw, tmp_path / "out")
    summary = assert_repaired(run, f"{gesture.stem}.aedat: time stamps are not monotonic")
    assert [w for w in summary["warnings"] if "not monotonic" in w] == [
        f"{gesture.stem}.aedat: time stamps are not monotonic; windows selected by mask"]
    assert summary["samples"] == gesture.counts(stem_rows=2)
    assert summary["events_read"] == gesture.gen.n_events - gesture.gen.recordings[gesture.stem]["t"].size + 9


@pytest.mark.parametrize(("row", "words"), [
    pytest.param("3,{s}", "expected 'class,startTime_usec,endTime_usec'", id="missing column"),
    pytest.param("3,{s},12ab", "expected 'class,startTime_usec,endTime_usec'", id="text in end"),
    pytest.param("x3,{s},{e}", "'x3,", id="text in class"),
])
def test_gesture_bad_labels_csv_is_an_error(gesture, tmp_path, row, words):
    name = f"{gesture.stem}_labels.csv"
    lines = gesture.files[name].decode().splitlines()
    _c, s, e = lines[2].split(",")
    lines[2] = row.format(s=s, e=e)
    raw = gesture_download(tmp_path / "raw", {**gesture.files, name: ("\n".join(lines) + "\n").encode()})
    assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out"), f"{name}: row 3: ", words)


@pytest.mark.parametrize("row", [
    pytest.param("{c},{e},{s}", id="end < start"),
    pytest.param("{c},{late},{later}", id="window after the recording"),
])
def test_gesture_labels_window_without_events_is_an_empty_sample(gesture, tmp_path, row):
    """SEMANTICS.md: a sample is the events with ``start <= t < end``; a window without events stays a sample
    with zero events and is counted as an empty window (this is not an error for DVS128 Gesture)."""
    name = f"{gesture.stem}_labels.csv"
    rec = gesture.gen.recordings[gesture.stem]
    k = 4  # csv row 6, whose window holds events
    assert np.count_nonzero((rec["t"] >= rec["start"][k]) & (rec["t"] < rec["end"][k])) > 0
    lines = gesture.files[name].decode().splitlines()
    _c, s, e = lines[k + 1].split(",")
    late = int(rec["t"][-1]) + 1_000_000
    lines[k + 1] = row.format(c=rec["labels"][k], s=s, e=e, late=late, later=late + 500_000)
    raw = gesture_download(tmp_path / "raw", {**gesture.files, name: ("\n".join(lines) + "\n").encode()})
    run = convert_cli("dvs128-gesture", raw, tmp_path / "out")
    assert run.rc == 0, run.stderr
    assert "Traceback" not in run.stderr
    summary = run.summary()
    exp = expected_samples(gesture.gen)
    empty_before = sum(1 for split in exp.values() for ev in split.values() if ev["t"].size == 0)
    assert summary["empty_windows"] == empty_before + 1
    assert summary["samples"] == gesture.counts()
    assert f"empty windows  {empty_before + 1}" in run.stdout


def test_gesture_trials_list_naming_a_missing_recording_archive(gesture, tmp_path):
    files = {**gesture.files, "trials_to_train.txt": gesture.files["trials_to_train.txt"] + b"user09_lab.aedat\n"}
    raw = gesture_download(tmp_path / "raw", files)
    assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out", "--shard-size", "2k"), "user09_lab", "'train'")


def test_gesture_trials_list_naming_a_path_is_an_error(gesture, tmp_path):
    files = {**gesture.files, "trials_to_train.txt": gesture.files["trials_to_train.txt"] + b"../../etc/x.aedat\n"}
    raw = gesture_download(tmp_path / "raw", files)
    row = len(gesture.gen.train_stems) + 1
    assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out"),
                 f"{ARCHIVE}:DvsGesture/trials_to_train.txt: row {row}: ", "'../../etc/x.aedat'")


def test_gesture_trials_list_naming_a_missing_recording_folder(gesture, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(gesture.gen.root / "DvsGesture", raw / "DvsGesture")
    trials = raw / "DvsGesture" / "trials_to_test.txt"
    trials.write_bytes(trials.read_bytes() + b"user30_led.aedat\n")
    assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out"), str(raw / "DvsGesture" / "user30_led.aedat"))


def test_gesture_wrong_md5_is_an_error(gesture, tmp_path):
    """Without ``--no-md5`` the generated files (not IBM's) fail the published md5 sums; the first one checked
    (``gesture_mapping.csv``) is named with the md5 it has."""
    raw = gesture_download(tmp_path / "raw", gesture.files)
    got = hashlib.md5(GESTURE_MAPPING.encode()).hexdigest()
    assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out", md5=True),
                 f"{raw / 'gesture_mapping.csv'}: md5 {got} differs", "--no-md5")


@pytest.mark.parametrize("member", ["../evil.aedat", "DvsGesture/../../evil.aedat", "/tmp/eventshard-evil-abs.aedat"])
def test_gesture_archive_member_outside_is_an_error(gesture, tmp_path, member):
    """SEMANTICS.md: member names that are absolute or contain ``..`` stop the conversion."""
    data = gesture.files[f"{gesture.stem}.aedat"]
    raw = gesture_download(tmp_path / "raw", gesture.files, first=[(_tarinfo(member, len(data)), data)])
    cwd = tmp_path / "cwd" / "deeper"
    cwd.mkdir(parents=True)
    before = sorted(tmp_path.rglob("*"))
    run = convert_cli("dvs128-gesture", raw, tmp_path / "out", cwd=cwd)
    assert_error(run, ARCHIVE, repr(member), "points outside")
    assert [p for p in sorted(tmp_path.rglob("*")) if p != run.out and run.out not in p.parents] == before
    assert not Path("/tmp/eventshard-evil-abs.aedat").exists()


def test_gesture_archive_links_are_skipped_and_listed(gesture, tmp_path):
    """SEMANTICS.md: links in the archive are skipped (never followed) and listed in the summary's ``skipped``;
    every real sample is converted."""
    recording = f"DvsGesture/{gesture.stem}.aedat"
    links = [
        (_tarinfo("DvsGesture/evil.aedat", kind=tarfile.SYMTYPE, link="/etc/passwd"), b""),
        (_tarinfo("DvsGesture/evil_labels.csv", kind=tarfile.SYMTYPE, link="../../../../etc/hostname"), b""),
        (_tarinfo(recording, kind=tarfile.LNKTYPE, link="../../../../etc/passwd"), b""),  # shadows a recording
    ]
    raw = gesture_download(tmp_path / "raw", gesture.files, first=links)
    run = convert_cli("dvs128-gesture", raw, tmp_path / "out")
    assert run.rc == 0, run.stderr
    assert "Traceback" not in run.stderr and (run.out / "index.json").is_file()
    summary = run.summary()
    assert summary["samples"] == gesture.counts()
    assert summary["events_read"] == gesture.gen.n_events
    listed = [line for line in summary["skipped"] if "not a regular file" in line]
    assert [line.split("'")[1] for line in listed] == [info.name for info, _ in links]


@pytest.mark.parametrize("where", ["inside a recording", "in the gzip trailer"])
def test_gesture_truncated_archive_is_an_error(gesture, tmp_path, where):
    """A truncated gzip stream of ``DvsGesture.tar.gz`` (a download cut short): one line naming the archive
    (before the fix the run ended with ``BufferError: cannot close exported pointers exist``, raised by the
    clean-up of a shared slot that the error's traceback still viewed)."""
    data = (gesture.gen.root / ARCHIVE).read_bytes()
    cut = int(len(data) * 0.4) if where == "inside a recording" else len(data) - 4
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / ARCHIVE).write_bytes(data[:cut])
    for name in ("gesture_mapping.csv", "LICENSE.txt", "README.txt"):
        shutil.copy(gesture.gen.root / name, raw / name)
    line = assert_error(convert_cli("dvs128-gesture", raw, tmp_path / "out"), f"{raw / ARCHIVE}: ")
    assert any(word in line for word in ("ended", "ends", "truncated", "cut off")), line
    assert "BufferError" not in line


# ------------------------------------------------------------------------------ class-folder datasets (zips)


def _append(zip_path: Path, members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    with zipfile.ZipFile(zip_path, "a") as zf:
        for info, data in members:
            zf.writestr(info, data)


@pytest.fixture
def nmnist(tmp_path) -> GeneratedDownload:
    return write_nmnist(tmp_path / "raw", per_class=2)


DAMAGED_BIN = atis_bin_bytes([1, 2], [3, 4], [0, 1], [10, 20]) + b"\x01\x02"  # 2 events and 2 bytes of a third


def test_nmnist_truncated_member_is_an_error(nmnist, tmp_path):
    _append(nmnist.root / "Test.zip", [("Test/3/99999.bin", DAMAGED_BIN)])
    assert_error(convert_cli("n-mnist", nmnist.root, tmp_path / "out"), "Test.zip:Test/3/99999.bin: byte 10:",
                 "--allow-truncated")


def test_nmnist_truncated_member_allowed(nmnist, tmp_path):
    _append(nmnist.root / "Test.zip", [("Test/3/99999.bin", DAMAGED_BIN)])
    run = convert_cli("n-mnist", nmnist.root, tmp_path / "out", "--allow-truncated")
    summary = assert_repaired(run, "Test.zip:Test/3/99999.bin: truncated")
    assert (summary["truncated_recordings"], summary["truncated_bytes"]) == (1, 2)
    n_test = sum(1 for split, _ in nmnist.samples if split == "test")
    assert summary["samples"] == {"train": len(nmnist.samples) - n_test, "test": n_test + 1}


def test_nmnist_coordinates_outside_the_sensor_are_an_error(nmnist, tmp_path):
    _append(nmnist.root / "Train.zip", [("Train/0/77777.bin", atis_bin_bytes([1, 40], [3, 4], [0, 1], [10, 20]))])
    assert_error(convert_cli("n-mnist", nmnist.root, tmp_path / "out"),
                 "Train.zip:Train/0/77777.bin: event 1 at x=40, y=4 lies outside")


def test_nmnist_wrong_md5_is_an_error(nmnist, tmp_path):
    line = assert_error(convert_cli("n-mnist", nmnist.root, tmp_path / "out", md5=True), "--no-md5")
    named = [name for name in ("Train.zip", "Test.zip") if f"{nmnist.root / name}: md5 {nmnist.md5[name]} differs"
             in line]
    assert len(named) == 1, line


def test_nmnist_truncated_zip_is_an_error(nmnist, tmp_path):
    data = (nmnist.root / "Train.zip").read_bytes()
    (nmnist.root / "Train.zip").write_bytes(data[: len(data) * 2 // 3])
    assert_error(convert_cli("n-mnist", nmnist.root, tmp_path / "out"), f"{nmnist.root / 'Train.zip'}: ")


def test_cifar10dvs_garbage_header_is_an_error(tmp_path):
    gen = write_cifar10dvs(tmp_path / "raw", per_class=2)
    _append(gen.root / "cat.zip", [("cat/cifar10_cat_9.aedat", bytes(range(0xF0, 0xFC)) + b"\r\n" + bytes(16))])
    assert_error(convert_cli("cifar10-dvs", gen.root, tmp_path / "out", "--split-rule", "ratio"),
                 "cat.zip:cat/cifar10_cat_9.aedat: byte 0:")


def test_ncaltech101_unsafe_members_are_skipped(tmp_path):
    """DATASETS.md: members named ``../x`` or ``/x`` and links are skipped and listed in the summary."""
    gen = write_ncaltech101(tmp_path / "raw", per_class=2)
    link = zipfile.ZipInfo("Caltech101/accordion/image_0099.bin")
    link.external_attr = 0o120777 << 16
    one = atis_bin_bytes([1], [1], [1], [1])
    _append(gen.root / "Caltech101.zip", [("../escape/image_0001.bin", one), ("/abs/image_0002.bin", one),
                                          (link, b"../../etc/passwd")])
    run = convert_cli("n-caltech101", gen.root, tmp_path / "out")
    assert_repaired(run, "Caltech101.zip: member '../escape/image_0001.bin': points outside", where="skipped")
    assert_repaired(run, "Caltech101.zip: member '/abs/image_0002.bin': points outside", where="skipped")
    summary = assert_repaired(run, "Caltech101.zip: member 'Caltech101/accordion/image_0099.bin': a symbolic link",
                              where="skipped")
    assert sum(summary["samples"][s] for s in ("train", "test")) == len(gen.samples)
    assert len([s for s in summary["skipped"] if s.startswith("Caltech101.zip: member ")]) == 3


# ---------------------------------------------------------------------------- your own recordings (folder)


@dataclass
class Own:
    raw: Path
    events: dict[str, dict[str, np.ndarray]]  # relative path -> events

    def path(self, rel: str) -> Path:
        return self.raw / rel


@pytest.fixture
def own(tmp_path) -> Own:
    """Two DAT recordings (128 x 128 in their headers) in class folders ``a`` and ``b``."""
    rng = np.random.default_rng(11)
    raw = tmp_path / "raw"
    events = {}
    for rel in ("a/r1.dat", "b/r2.dat"):
        events[rel] = random_recording(rng, 300)
        write_recording(raw / rel, events[rel], "dat")
    return Own(raw, events)


def _dat_size_byte(own: Own) -> int:
    """Offset of the event-size byte of ``a/r1.dat`` (after the ``%`` lines and the event-type byte)."""
    data = own.path("a/r1.dat").read_bytes()
    return len(data) - 8 * own.events["a/r1.dat"]["t"].size - 1


def test_folder_truncated_recording_is_an_error(own, tmp_path):
    path = own.path("a/r1.dat")
    size = path.stat().st_size
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03")
    assert_error(convert_cli("folder", own.raw, tmp_path / "out"), f"{path}: byte {size}:", "--allow-truncated")


def test_folder_truncated_recording_allowed(own, tmp_path):
    path = own.path("a/r1.dat")
    path.write_bytes(path.read_bytes() + b"\x01\x02\x03")
    summary = assert_repaired(convert_cli("folder", own.raw, tmp_path / "out", "--allow-truncated"),
                              "a/r1.dat: truncated")
    assert (summary["truncated_recordings"], summary["truncated_bytes"]) == (1, 3)
    assert summary["events_read"] == 600


def test_folder_garbage_header_is_an_error(own, tmp_path):
    path = own.path("b/r3.aedat")
    path.write_bytes(bytes(range(0xF0, 0xFC)) + b"\r\n" + bytes(64))
    assert_error(convert_cli("folder", own.raw, tmp_path / "out"), f"{path}: byte 0:")


def test_folder_wrong_event_size_is_an_error(own, tmp_path):
    path = own.path("a/r1.dat")
    at = _dat_size_byte(own)
    data = bytearray(path.read_bytes())
    assert data[at] == 8
    data[at] = 16
    path.write_bytes(bytes(data))
    assert_error(convert_cli("folder", own.raw, tmp_path / "out"), f"{path}: byte {at}:", "event size 16")


def test_folder_time_stamps_going_back_are_repaired(own, tmp_path):
    ev = dict(own.events["a/r1.dat"])
    ev["t"] = ev["t"].copy()
    ev["t"][150:] -= 3000  # a reset
    write_recording(own.path("a/r1.dat"), ev, "dat")
    run = convert_cli("folder", own.raw, tmp_path / "out", "--window-us", "1000")
    summary = assert_repaired(run, "a/r1.dat: time stamps are not monotonic")
    assert len([w for w in summary["warnings"] if "not monotonic" in w]) == 1
    assert summary["events_read"] == 600


def test_folder_coordinates_outside_the_sensor_are_an_error(own, tmp_path):
    ev = dict(own.events["b/r2.dat"])
    ev["x"] = ev["x"].copy()
    ev["x"][10] = 200
    write_recording(own.path("b/r2.dat"), ev, "dat")
    assert_error(convert_cli("folder", own.raw, tmp_path / "out"),
                 f"{own.path('b/r2.dat')}: event 10 at x=200, y={int(ev['y'][10])} lies outside")


# case -> (labels CSV; {a0}/{a1}: first/last+1 time stamp of a/r1.dat, {b0}/{b1} of b/r2.dat), the row the error
# names, words of the error)
LABEL_ROWS: dict[str, tuple[str, int, str]] = {
    "missing columns": ("file,label,start_us,end_us\na/r1.dat,x,{a0}\n", 2, "expected 4 columns"),
    "text in numbers": ("file,label,start_us,end_us\nb/r2.dat,y,{b0},{b1}\na/r1.dat,x,12ab,{a1}\n", 3,
                        "start_us '12ab' is not an integer"),
    "end < start": ("a/r1.dat,x,{a1},{a0}\n", 1, "end_us {a0} must be greater than start_us {a1}"),
    "window outside the recording": ("a/r1.dat,x,{a0},{a1}\nb/r2.dat,y,0,1000\n", 2,
                                     "window [0, 1000) µs lies outside b/r2.dat"),
    "unknown file": ("file,label\na/r1.dat,x\nmissing.dat,y\n", 3, "unknown file 'missing.dat'"),
}


@pytest.mark.parametrize("case", list(LABEL_ROWS))
def test_folder_bad_labels_csv_is_an_error(own, tmp_path, case):
    text, row, words = LABEL_ROWS[case]
    ta, tb = own.events["a/r1.dat"]["t"], own.events["b/r2.dat"]["t"]
    times = {"a0": int(ta[0]), "a1": int(ta[-1]) + 1, "b0": int(tb[0]), "b1": int(tb[-1]) + 1}
    csv = tmp_path / "labels.csv"
    csv.write_text(text.format(**times))
    assert_error(convert_cli("folder", own.raw, tmp_path / "out", "--labels", str(csv)), f"{csv}: row {row}: ",
                 words.format(**times))
