"""``loader.verify`` reads each sample through webdataset's own stages: what a stock reader gets wrong is a problem.

Shards written here byte by byte with the format module's helpers (not the writer's sample path), each holding
one defect that only the webdataset view sees, next to good samples: a frame holding two samples, members
named for another decoder, and keys whose dots webdataset's key rule would cut (no defect: the handler keeps
them apart). Every problem is one line naming the shard, the sample and its byte offset.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from loader.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    TIME_UNIT,
    compress_frame,
    encode_events,
    encode_label,
    new_compressor,
    sample_tar,
)
from loader.verify import verify
from shardgen.cli import main
from shardgen.output import ShardSetOutput

SENSOR = (8, 8)


def _payloads(i: int) -> tuple[bytes, bytes, int]:
    n = 3 + i
    t = np.arange(n) * 10
    ev = encode_events(t, np.arange(n) % 8, np.arange(n) % 8, np.arange(n) % 2, SENSOR)
    return ev, encode_label({"label": i % 2, "class": "ab"[i % 2]}), n


def _write(out: Path, tars: list[tuple[bytes, int]]) -> dict:
    """One shard whose frames hold ``tars`` (tar bytes, events the index records for them)."""
    cctx = new_compressor()
    with ShardSetOutput(out) as output:
        writer = output.writer("train", shard_size=1 << 40)
        for tar, n in tars:
            writer.add(compress_frame(tar, cctx), n)
        split = writer.close()
        output.commit({"format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": "t", "sensor_size": list(SENSOR),
                       "classes": ["a", "b"], "time_unit": TIME_UNIT, "splits": {"train": split},
                       "source": {"files": []}})
    return split["shards"][0]


def _sample(key: str, i: int) -> tuple[bytes, int]:
    ev, lab, n = _payloads(i)
    return sample_tar(key, ev, lab), n


def test_keys_webdataset_would_cut_pass(tmp_path: Path) -> None:
    _write(tmp_path, [_sample(k, i) for i, k in enumerate(["c/rec", "c/rec.v1", "c/rec.v1.x", "c/.h"])])
    rep = verify(tmp_path)
    assert rep == {"ok": True, "problems": [], "samples": 4, "events": 3 + 4 + 5 + 6}


def test_a_frame_holding_two_samples(tmp_path: Path) -> None:
    a, na = _sample("c/a", 0)
    b, nb = _sample("c/b", 1)
    c, nc = _sample("c/c", 2)
    shard = _write(tmp_path, [(a, na), (b + c, nb + nc)])
    url, off = f"{tmp_path}/{shard['file']}", shard["offsets"][1]
    rep = verify(tmp_path)
    why = "the frame holds 2 samples ('c/b', 'c/c'), the index says 1"
    assert rep["problems"] == [f"{url}: sample 1 at byte {off}: {why}"]
    assert rep["samples"] == 1 and not rep["ok"]


def test_members_for_another_decoder(tmp_path: Path) -> None:
    """``<key>.events.mp`` is what webdataset's default decoders know; the format says ``.msgpack``."""
    from loader.sampletar import _tar_member  # the writer's member layout, with a name the format does not allow

    ev, lab, n = _payloads(0)
    odd = _tar_member("c/x.events.mp", ev) + _tar_member("c/x.label.msgpack", lab)
    shard = _write(tmp_path, [_sample("c/a", 1), (odd, n)])
    url, off = f"{tmp_path}/{shard['file']}", shard["offsets"][1]
    rep = verify(tmp_path)
    assert len(rep["problems"]) == 1 and rep["samples"] == 1
    assert rep["problems"][0].startswith(f"{url}: sample 1 at byte {off}: ")
    assert "expected the members 'events.msgpack' and 'label.msgpack', got ['events.mp', 'label.msgpack']" in (
        rep["problems"][0]
    )
    assert main(["verify", "--quiet", str(tmp_path)]) == 1


def test_a_frame_that_is_not_zstd(tmp_path: Path) -> None:
    ev, lab, n = _payloads(0)
    cctx = new_compressor()
    with ShardSetOutput(tmp_path) as output:
        writer = output.writer("train", shard_size=1 << 40)
        writer.add(compress_frame(sample_tar("c/a", ev, lab), cctx), n)
        writer.add(b"not a zstd frame at all", n)
        split = writer.close()
        output.commit({"format": FORMAT_NAME, "version": FORMAT_VERSION, "dataset": "t", "sensor_size": list(SENSOR),
                       "classes": ["a", "b"], "time_unit": TIME_UNIT, "splits": {"train": split},
                       "source": {"files": []}})
    shard = split["shards"][0]
    url, off = f"{tmp_path}/{shard['file']}", shard["offsets"][1]
    (line,) = verify(tmp_path)["problems"]
    assert line.startswith(f"{url}: sample 1 at byte {off}: corrupt zstd frame (") and "\n" not in line


def test_importing_verify_or_the_demo_data_loads_no_torch() -> None:
    """webdataset imports torch: ``loader.verify`` imports it only when ``verify`` runs, so ``shardgen`` starts
    without torch."""
    import subprocess
    import sys

    code = ("import sys, loader.verify, shardgen.demo_data, shardgen.cli; "
            "assert not {'torch', 'webdataset'} & set(sys.modules), 'torch or webdataset imported'")
    res = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
