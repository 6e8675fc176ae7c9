"""A short bounded fuzzing pass over every target of :mod:`tests.fuzz_targets` (the long runs: ``scripts/fuzz.sh``).

Every target gets ``EVENTSHARD_FUZZ_EXAMPLES`` inputs (default 300): valid generated files mutated by hypothesis
(bit flips, boundary integers, truncation, insertion, deletion, duplication, splicing), seed headers followed by
noise, and plain random bytes. The only exceptions allowed are the library's own (``EventshardError``); anything
else fails the test with the shrunk input that raises it.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardgen.formats import FORMATS
from tests import fuzz_targets as ft

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = int(os.environ.get("EVENTSHARD_FUZZ_EXAMPLES", "300"))
SLOW_TARGETS = {"aedat4": 120, "gesture_archive": 150}  # a file write and a Rust decoder / gzip per input


@functools.cache
def _strategy(name: str) -> st.SearchStrategy[bytes]:
    return ft.inputs(name)


def test_every_reader_and_parser_has_a_target():
    assert set(FORMATS) | {"mat"} <= set(ft.TARGETS)
    assert {"gesture_labels", "gesture_mapping", "gesture_trials", "folder_labels_csv"} <= set(ft.TARGETS)
    assert {"shard_frame", "shard_tar", "shard_events", "shard_label", "shard_index"} <= set(ft.TARGETS)


@pytest.mark.parametrize("name", sorted(ft.TARGETS))
def test_seeds_are_valid_inputs(name):
    """The seeds are real files of their kind: most are accepted as they are (a few are cut on purpose)."""
    seeds = ft.seeds(name)
    accepted = [ft.run(name, s) for s in seeds]
    assert seeds and sum(accepted) >= max(1, len(seeds) // 2), accepted


@pytest.mark.parametrize("name", sorted(ft.TARGETS))
@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example])
@given(data=st.data())
def test_fuzz(name, data):
    """Arbitrary bytes: the target accepts them or raises an ``EventshardError``, never anything else."""
    if EXAMPLES > SLOW_TARGETS.get(name, EXAMPLES) and data.draw(st.integers(0, EXAMPLES - 1)) >= SLOW_TARGETS[name]:
        return  # keep the slow targets to about their share of the time budget
    ft.run(name, data.draw(_strategy(name), label="input"))


def _patched(data: bytes, at: int, new: bytes) -> bytes:
    return data[:at] + new + data[at + len(new):]


def _mat_seed() -> bytes:
    return ft.seeds("mat")[0]


def _mat_name(var: bytes) -> int:
    """Offset of the name element of variable ``var`` (a small element: miINT8, length, name)."""
    return _mat_seed().index(bytes([1, 0, len(var), 0]) + var)


def _archive(kind: str) -> bytes:
    good = ft.seeds("gesture_archive")[1]
    if kind == "truncated":
        return good[: len(good) // 2]
    if kind == "crc":
        return _patched(good, len(good) - 8, bytes(4))
    return _patched(good, 12, b"\xff\xff\xff")  # the first deflate block's header


# Inputs that made a target raise something other than the library's error before the fixes (found by fuzzing).
REGRESSIONS = {
    "evt3 header width '128\u00b9' (str.isdigit, int() refuses)": (
        "evt3", lambda: ft.seeds("evt3")[0].replace(b"width=1280", b"width=128\xb9")),
    "evt2 geometry with 5000 digits": (
        "evt2", lambda: ft.seeds("evt2")[0].replace(b"640x480", b"9" * 5000 + b"x480")),
    "dat '% Width 3\u00b2'": ("dat", lambda: ft.seeds("dat")[1].replace(b"% Width 304", b"% Width 3\xb2")),
    "mat unknown data type (scipy indexes past its table: SIGSEGV/SIGBUS)": (
        "mat", lambda: _patched(_mat_seed(), _mat_name(b"ts") + 9, b"\x40")),
    "mat sparse class for 'y' (scipy writes past its buffers: SIGSEGV)": (
        "mat", lambda: _patched(_mat_seed(), _mat_name(b"y") - 8, b"\x05")),
    "mat complex flag without imaginary part (scipy reads past the variable: SIGSEGV)": (
        "mat", lambda: _patched(_mat_seed(), _mat_name(b"ts") - 7, b"\x08")),
    "aedat4 description not UTF-8 (aedat aborts the process)": (
        "aedat4", lambda: ft.seeds("aedat4")[0].replace(b"capture", b"capt\xfbre", 1)),
    "aedat4 XML the Rust parser panics on (PanicException is a BaseException)": (
        "aedat4", lambda: ft.seeds("aedat4")[0].replace(b'<attr key="sizeX"', b'<attr k\xc3\xa9y="sizeX"', 1)),
    "labels csv file '.' (IndexError)": ("folder_labels_csv", lambda: b"file,label\n.,x\n"),
    "labels csv time with 5000 digits": ("folder_labels_csv", lambda: b"a.dat,x,1," + b"9" * 5000 + b"\n"),
    "tar.gz deflate error (isal's IsalError is no OSError)": ("gesture_archive", lambda: _archive("deflate")),
    "tar.gz cut short inside a member (EOFError)": ("gesture_archive", lambda: _archive("truncated")),
    "tar.gz CRC mismatch (BadGzipFile while reading a member)": ("gesture_archive", lambda: _archive("crc")),
    "events n = inf (OverflowError)": ("shard_events", lambda: _inf_events()),
}


def _inf_events() -> bytes:
    import msgpack

    payload = msgpack.unpackb(ft.seeds("shard_events")[0])
    payload["n"] = float("inf")
    return msgpack.packb(payload, use_bin_type=True)


@pytest.mark.parametrize("case", sorted(REGRESSIONS))
def test_inputs_that_crashed_once_are_handled(case):
    """Accepted (a bad header field is ignored, as before) or the library's error; never a crash."""
    name, make = REGRESSIONS[case]
    assert ft.run(name, make()) in (True, False)


def test_fuzz_script_runs_and_reports(tmp_path):
    """``scripts/fuzz.py`` runs a target for a given time and reports inputs, library errors and crashes."""
    out = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "fuzz.py"), "--seconds", "2", "--engine", "hypothesis",
         "--crash-dir", str(tmp_path / "crashes"), "--json", str(out), "shard_label", "gesture_trials"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert {r["target"] for r in report["runs"]} == {"shard_label", "gesture_trials"}
    assert all(r["inputs"] > 0 and r["crashes"] == 0 for r in report["runs"])
    assert report["total"]["inputs"] == sum(r["inputs"] for r in report["runs"])
    assert "inputs" in proc.stdout and "crashes" in proc.stdout
