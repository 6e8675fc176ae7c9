"""Damaged shard sets: a flipped bit, a truncated, missing or altered shard, an index of another version.

For each case: the line ``shardgen verify`` reports (one per problem, starting with the shard's URL,
naming the sample and byte offset where one is concerned), the error the loader raises
(:class:`loader.shards.ShardIntegrityError` / :class:`~loader.shards.ShardMissingError`, both in the
:class:`loader.errors.EventshardError` family, naming URL, sample and offset), and what
``on_error="skip"`` leaves out and counts. All on copies of the session's small synthetic set (train
shards of 10, 7 and 13 samples, test shards of 4 and 5). Remote storage, retries and the cache over
HTTP/S3 are covered by ``tests/test_storage.py``; the decoder's bounds by the fuzz tests.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zstandard
from torch.utils.data import DataLoader

from loader import EventShardDataset
from loader.errors import EventshardError, IntegrityError
from loader.format import INDEX_NAME, FormatError, decode_sample
from loader.shards import ShardIntegrityError, ShardMissingError, ShardSetNotFoundError, open_shard_set
from loader.verify import verify
from shardgen.cli import main
from tests.conftest import read_index_json


@pytest.fixture
def damaged(small_shard_set: tuple[Path, dict[str, Any]], tmp_path: Path) -> tuple[Path, dict[str, Any], dict]:
    """A private copy of the small set: ``(path, index, truth)``."""
    src, truth = small_shard_set
    path = tmp_path / "set"
    shutil.copytree(src, path)
    return path, read_index_json(path), truth


def _shard(index: dict[str, Any], split: str, number: int) -> dict[str, Any]:
    return index["splits"][split]["shards"][number]


def _keys(path: Path, split: str, **kw: Any) -> tuple[list[str], EventShardDataset]:
    ds = EventShardDataset(path, split=split, data_type="event", shuffle=False, return_key=True, **kw)
    return [key for _, _, key in ds], ds


def _split_keys(truth: dict, split: str, but_shard: int | None = None, but_pos: int | None = None) -> list[str]:
    return [
        k for k, v in truth.items()
        if v["split"] == split and not (v["shard"] == but_shard and (but_pos is None or v["pos"] == but_pos))
    ]  # fmt: skip


def _flip(file: Path, offset: int, mask: int = 0x10) -> None:
    data = bytearray(file.read_bytes())
    data[offset] ^= mask
    file.write_bytes(bytes(data))


def _sha_line(url: str, file: Path, want: str) -> str:
    import hashlib

    got = hashlib.sha256(file.read_bytes()).hexdigest()
    return f"{url}: sha256 {got[:16]}… differs from the index's {want[:16]}…"


def _assert_family(exc: BaseException) -> None:
    assert isinstance(exc, EventshardError) and isinstance(exc, IntegrityError) and isinstance(exc, FormatError)


# --------------------------------------------------------------------------- a flipped bit


def test_flipped_bit_in_a_sample(damaged) -> None:
    path, index, truth = damaged
    shard, k = _shard(index, "train", 1), 3
    url, offs = f"{path}/{shard['file']}", shard["offsets"]
    _flip(path / shard["file"], (offs[k] + offs[k + 1]) // 2)

    rep = verify(path)
    assert rep["problems"][0] == _sha_line(url, path / shard["file"], shard["sha256"])
    assert rep["problems"][1].startswith(f"{url}: sample {k} at byte {offs[k]}: ")
    assert len(rep["problems"]) == 2 and not rep["ok"]
    assert rep["samples"] == len(truth) - 1

    with pytest.raises(ShardIntegrityError) as info:
        _keys(path, "train")
    err = info.value
    _assert_family(err)
    assert str(err).startswith(f"{url}: sample {k} at byte {offs[k]}: ")
    assert (err.url, err.sample, err.offset) == (url, k, offs[k])

    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped sample {k} of {url} (byte {offs[k]}): ")):
        keys, ds = _keys(path, "train", on_error="skip")
    assert keys == _split_keys(truth, "train", but_shard=1, but_pos=k)
    assert ds.stats()["skipped_samples"] == 1 and ds.stats()["skipped_shards"] == []

    position = sum(s["samples"] for s in index["splits"]["train"]["shards"][:1]) + k  # random access, map-style
    with pytest.raises(ShardIntegrityError, match=re.escape(f"{url}: sample {k} at byte {offs[k]}: ")):
        ds.read_item(position)
    assert ds.read_item(position + 1)[2] == _split_keys(truth, "train")[position + 1]


def test_flipped_bit_in_a_dataloader_worker(damaged) -> None:
    """The error crosses the worker process boundary with its class and message."""
    path, index, _ = damaged
    shard, k = _shard(index, "test", 1), 2
    offs = shard["offsets"]
    _flip(path / shard["file"], offs[k + 1] - 2)  # inside the frame's checksum
    ds = EventShardDataset(path, split="test", data_type="event", shuffle=False)
    loader = DataLoader(ds, batch_size=None, num_workers=1, timeout=60)
    with pytest.raises(ShardIntegrityError, match=re.escape(f"{path}/{shard['file']}: sample {k} at byte {offs[k]}")):
        list(loader)


def test_every_bit_flip_in_a_frame_is_caught_or_harmless(damaged) -> None:
    """Flip each bit of one sample's frame in turn: it fails to decode (the zstd frame checksum, or the
    frame header) or decodes to exactly the same sample (a bit the decoder ignores); never other data."""
    path, index, _ = damaged
    shard = _shard(index, "train", 1)
    frame = (path / shard["file"]).read_bytes()[: shard["offsets"][1]]
    dctx = zstandard.ZstdDecompressor()
    key, events, meta = decode_sample(frame, dctx)
    assert 0 < events["t"].size < 100
    caught = 0
    buf = bytearray(frame)
    for bit in range(8 * len(frame)):
        buf[bit // 8] ^= 1 << (bit % 8)
        try:
            got = decode_sample(bytes(buf), dctx)
        except FormatError:
            caught += 1
        else:
            assert got[0] == key and got[2] == meta, f"bit {bit}"
            for c in "txyp":
                np.testing.assert_array_equal(got[1][c], events[c], err_msg=f"bit {bit}")
        buf[bit // 8] ^= 1 << (bit % 8)
    assert caught >= 0.95 * 8 * len(frame)


# --------------------------------------------------------------------------- truncated, longer, missing


def test_truncated_shard(damaged) -> None:
    path, index, truth = damaged
    shard = _shard(index, "train", 2)
    url, offs, n = f"{path}/{shard['file']}", shard["offsets"], shard["samples"]
    cut = offs[8] + 5
    data = (path / shard["file"]).read_bytes()
    (path / shard["file"]).write_bytes(data[:cut])

    rep = verify(path)
    assert rep["problems"] == [
        f"{url}: {cut} bytes, the index says {shard['bytes']} "
        f"(truncated: samples 8..{n - 1} from byte {offs[8]} on are cut off)",
        _sha_line(url, path / shard["file"], shard["sha256"]),
    ]  # the samples cut off are named once, not decoded one by one
    assert rep["samples"] == len(truth) - (n - 8)

    with pytest.raises(ShardIntegrityError, match=re.escape(f"{url}: {cut} bytes, the index says")) as info:
        _keys(path, "train")
    _assert_family(info.value)
    assert (info.value.url, info.value.sample, info.value.offset) == (url, 8, cut)

    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {url}: {cut} bytes")):
        keys, ds = _keys(path, "train", on_error="skip")
    assert keys == _split_keys(truth, "train", but_shard=2)
    assert ds.stats()["skipped_shards"] == [url] and ds.stats()["skipped_samples"] == n

    (path / shard["file"]).write_bytes(data[: offs[-1] + 3])  # only the end-of-archive frame is cut
    assert verify(path)["problems"][0] == (
        f"{url}: {offs[-1] + 3} bytes, the index says {shard['bytes']} (truncated: the end-of-archive frame is cut off)"
    )


def test_longer_shard(damaged) -> None:
    path, index, _ = damaged
    shard = _shard(index, "test", 0)
    url = f"{path}/{shard['file']}"
    with open(path / shard["file"], "ab") as f:
        f.write(b"\0" * 7)
    assert verify(path)["problems"] == [
        f"{url}: {shard['bytes'] + 7} bytes, the index says {shard['bytes']} (7 bytes too many)",
        _sha_line(url, path / shard["file"], shard["sha256"]),
    ]


def test_missing_shard(damaged) -> None:
    path, index, truth = damaged
    shard = _shard(index, "test", 0)
    url = f"{path}/{shard['file']}"
    (path / shard["file"]).unlink()

    rep = verify(path)
    assert rep["problems"] == [f"{url}: missing (the index names it)"]
    assert rep["samples"] == len(truth) - shard["samples"]

    with pytest.raises(ShardMissingError, match=re.escape(f"{url}: missing (the index names it)")) as info:
        _keys(path, "test")
    assert isinstance(info.value, FileNotFoundError) and info.value.url == url
    _assert_family(info.value)
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {url}: missing")):
        keys, ds = _keys(path, "test", on_error="skip")
    assert keys == _split_keys(truth, "test", but_shard=0)
    assert ds.stats()["skipped_shards"] == [url] and ds.stats()["skipped_samples"] == shard["samples"]


# --------------------------------------------------------------------------- sha256


def test_sha256_differs_in_bytes_no_sample_holds(damaged, tmp_path: Path) -> None:
    """A flip in the end-of-archive frame: ``verify`` sees it by the sha256; byte-range reads never read those
    bytes (every sample is intact); the cache, which checks whole shards, refuses the shard."""
    path, index, truth = damaged
    shard = _shard(index, "train", 0)
    url = f"{path}/{shard['file']}"
    _flip(path / shard["file"], shard["bytes"] - 3)
    assert verify(path)["problems"] == [_sha_line(url, path / shard["file"], shard["sha256"])]
    assert _keys(path, "train")[0] == _split_keys(truth, "train")

    with pytest.raises(ShardIntegrityError, match=re.escape(url) + r": downloaded \d+ bytes with sha256 ") as info:
        _keys(path, "train", cache_dir=tmp_path / "cache")
    assert info.value.url == url
    with pytest.warns(UserWarning, match=re.escape(f"eventshard: skipped {url}: downloaded")):
        keys, ds = _keys(path, "train", cache_dir=tmp_path / "cache", on_error="skip")
    assert keys == _split_keys(truth, "train", but_shard=0)
    assert ds.stats()["skipped_samples"] == shard["samples"]
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock"))
    assert len(cached) == 2 and all(name.endswith(".shard") for name in cached)  # the other two shards only


def test_sha256_in_the_index_differs(damaged) -> None:
    path, index, _ = damaged
    shard = _shard(index, "test", 1)
    want = "0" * 64
    shard["sha256"] = want
    (path / INDEX_NAME).write_text(json.dumps(index))
    url = f"{path}/{shard['file']}"
    assert verify(path)["problems"] == [_sha_line(url, path / shard["file"], want)]


# --------------------------------------------------------------------------- the index


@pytest.mark.parametrize("change", [{"version": 99}, {"format": "webdataset"}])
def test_index_of_another_format_or_version(damaged, capsys, change: dict[str, Any]) -> None:
    path, index, _ = damaged
    (path / INDEX_NAME).write_text(json.dumps({**index, **change}))
    where = f"{path}/{INDEX_NAME}: "
    ((field, value),) = change.items()
    for call in (lambda: verify(path), lambda: EventShardDataset(path), lambda: open_shard_set(path)):
        with pytest.raises(FormatError) as info:
            call()
        assert isinstance(info.value, EventshardError)
        message = str(info.value)
        assert message.startswith(where) and field in message and str(value) in message
        assert INDEX_NAME not in message[len(where) :].split(":")[0], "the index named twice"
    capsys.readouterr()
    assert main(["verify", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"shardgen: error: {where}") and len(err.strip().splitlines()) == 1
    with pytest.raises(FormatError):
        main(["--debug", "verify", str(path)])  # --debug lets the traceback through


def test_missing_index(damaged) -> None:
    path, _, _ = damaged
    (path / INDEX_NAME).unlink()
    with pytest.raises(ShardSetNotFoundError, match=re.escape(f"{path}: no {INDEX_NAME}")) as info:
        verify(path)
    assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, EventshardError)


# --------------------------------------------------------------------------- shardgen verify, all at once


def test_cli_verify_reports_each_problem_on_its_own_line(damaged, capsys) -> None:
    path, index, truth = damaged
    flipped, truncated, missing = _shard(index, "train", 1), _shard(index, "train", 2), _shard(index, "test", 0)
    _flip(path / flipped["file"], flipped["offsets"][1] + 40)
    (path / truncated["file"]).write_bytes((path / truncated["file"]).read_bytes()[: truncated["offsets"][12]])
    (path / missing["file"]).unlink()
    capsys.readouterr()
    assert main(["verify", str(path)]) == 1
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert all(line.startswith(f"shardgen: {path}/") for line in lines) and "Traceback" not in err
    by_file = {s["file"]: [ln for ln in lines if f"/{s['file']}: " in ln] for s in (flipped, truncated, missing)}
    flip_lines = by_file[flipped["file"]]
    assert len(flip_lines) == 2 and ": sha256 " in flip_lines[0]
    assert f": sample 1 at byte {flipped['offsets'][1]}: " in flip_lines[1]
    assert len(by_file[truncated["file"]]) == 2 and "truncated: samples 12..12" in by_file[truncated["file"]][0]
    assert by_file[missing["file"]] == [f"shardgen: {path}/{missing['file']}: missing (the index names it)"]
    assert len(lines) == 5
    decoded = len(truth) - 1 - 1 - missing["samples"]
    assert out.startswith(f"FAILED: {decoded} samples")
