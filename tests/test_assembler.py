"""shardgen.assembler: the shards do not depend on how many part files stay mapped, and they hold the frames the
workers wrote (each sample decoded back against the generated events)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import zstandard

from loader.format import decode_sample
from loader.shards import open_shard_set
from shardgen import assembler
from shardgen.convert import convert
from shardgen.datasets import n_mnist
from tests.gen_classfolders import write_nmnist


def _files(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_shards_equal_whatever_the_mapped_part_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gen = write_nmnist(tmp_path / "raw", per_class=4, seed=3)
    one = convert("n-mnist", tmp_path / "raw", tmp_path / "a", workers=2, check_md5=False, progress=False)
    monkeypatch.setattr(assembler.PartFrames, "LIMIT", 1)  # every part file unmapped before the next is read
    small = dataclasses.replace(n_mnist.DATASET, batch_files=1)  # one file per task: many part files
    monkeypatch.setattr(n_mnist, "DATASET", small)
    monkeypatch.setattr(n_mnist, "open_source", small.open_source)
    many = convert("n-mnist", tmp_path / "raw", tmp_path / "b", workers=2, check_md5=False, progress=False)
    assert many["recordings"] > 2 * one["recordings"]
    a, b = _files(tmp_path / "a"), _files(tmp_path / "b")
    index_a, index_b = (json.loads(files.pop("index.json")) for files in (a, b))
    assert a.keys() == b.keys() and a == b  # the shards, byte for byte
    assert index_a["splits"] == index_b["splits"]  # (the summary counts the tasks, which differ)
    ds = open_shard_set(str(tmp_path / "b"))
    dctx = zstandard.ZstdDecompressor()
    seen = 0
    for split in ("train", "test"):
        for i in range(int(ds.index["splits"][split]["samples"])):
            key, events, _ = decode_sample(ds.read_sample(split, i), dctx)
            want = gen.samples[(split, key)].events
            keep = want["y"] != 240  # the authors' overflow rule (no markers generated here)
            np.testing.assert_array_equal(events["x"], want["x"][keep])
            np.testing.assert_array_equal(events["y"], want["y"][keep])
            seen += 1
    assert seen == len(gen.samples)
