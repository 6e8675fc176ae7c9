"""The ``folder`` dataset cuts windows while it reads a recording in chunks: the first sample comes out before
the file has been read, the samples equal those of a whole read (the other code path), and the main process
reads the part file one frame at a time."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shardgen.datasets import folder, windows
from shardgen.datasets.base import CutRecording
from tests.gen_folder import random_recording, write_recording

N = 60_000
CHUNK = 4_000


def _task(raw: Path, **options):
    src = folder.open_source(raw, split={"train_ratio": 1.0, "seed": 0}, **options)
    return next(iter(src.recordings()))


@pytest.fixture()
def raw(tmp_path: Path) -> Path:
    rng = np.random.default_rng(3)
    write_recording(tmp_path / "raw" / "walk" / "long.dat", random_recording(rng, N, max_gap=40), "dat")
    return tmp_path / "raw"


def _samples(cut: CutRecording) -> list[tuple]:
    out = []
    for s in cut.samples:
        out.append((s.key, s.rank, {c: np.asarray(getattr(s, c)).astype(np.int64) for c in "txyp"}, dict(s.meta)))
    return out


@pytest.mark.parametrize("options", [{"window_us": 50_000}, {"window_us": 80_000, "stride_us": 30_000}])
def test_windows_come_out_while_reading_and_equal_a_whole_read(raw, monkeypatch, options):
    task = _task(raw, **options)
    assert windows.streams(task.context)
    chunks = []
    real = windows.iter_events

    def counting(*args, **kw):
        for chunk in real(*args, **kw):
            chunks.append(len(chunk))
            yield chunk

    monkeypatch.setattr(windows, "iter_events", counting)
    result = CutRecording(samples=[])
    stream = windows.cut_streaming(task.context, False, result, chunk_events=CHUNK)
    first = next(stream)
    assert sum(chunks) < N / 4  # the first window closed long before the end of the file
    got = [(first.key, first.rank, {c: np.asarray(getattr(first, c)).astype(np.int64) for c in "txyp"},
            dict(first.meta))] + _samples(CutRecording(samples=stream))
    assert sum(chunks) == N and result.events_read == N

    whole = folder.cut(task, stream=False)
    want = _samples(whole)
    assert [k for k, *_ in got] == [k for k, *_ in want] and len(got) > 10
    for (key, _, ev, meta), (_, _, ev2, meta2) in zip(got, want, strict=True):
        assert meta == meta2, key
        for c in "txyp":
            np.testing.assert_array_equal(ev[c], ev2[c], err_msg=f"{key} {c}")
    assert [r for _, r, *_ in got] == list(range(len(got)))
    assert result.empty_windows == whole.empty_windows and result.warnings == whole.warnings


def test_labelled_windows_closing_out_of_order_keep_the_dataset_order(raw, tmp_path):
    """Labels rows out of time order: samples come out as their windows close, with the rank of the row order."""
    t = random_recording(np.random.default_rng(3), N, max_gap=40)["t"]
    rows = [(int(t[40_000]), int(t[50_000])), (int(t[1_000]), int(t[9_000])), (int(t[20_000]), int(t[59_000]))]
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,start_us,end_us\n" + "".join(f"walk/long.dat,{k},{a},{b}\n"
                                                             for k, (a, b) in enumerate(rows)))
    task = _task(raw, labels=str(csv))
    result = CutRecording(samples=[])
    got = list(windows.cut_streaming(task.context, False, result, chunk_events=CHUNK))
    assert [s.rank for s in got] == [1, 0, 2]  # by their ends: row 2, row 1, row 3; ranks say the rows' order
    whole = {s.key: s for s in folder.cut(task, stream=False).samples}
    for s in got:
        np.testing.assert_array_equal(np.asarray(s.t), np.asarray(whole[s.key].t))
