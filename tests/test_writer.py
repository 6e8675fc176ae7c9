"""ShardWriter: many small frames at once give exactly the shards that one frame at a time gives."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from shardgen.writer import ShardWriter


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 300), min_size=0, max_size=40),
    shard_size=st.integers(1, 1500),
    batches=st.lists(st.integers(1, 10), min_size=1, max_size=8),
)
def test_add_many_equals_add(sizes, shard_size, batches):
    frames = [bytes([i % 251]) * n for i, n in enumerate(sizes)]
    events = [i * 3 for i in range(len(sizes))]
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        a.mkdir()
        b.mkdir()
        one = ShardWriter(a, "train", shard_size)
        for f, n in zip(frames, events, strict=True):
            one.add(f, n)
        many = ShardWriter(b, "train", shard_size)
        i, k = 0, 0
        while i < len(frames):  # feed in uneven batches, as parts of different recordings arrive
            j = min(len(frames), i + batches[k % len(batches)])
            many.add_many(b"".join(frames[i:j]), sizes[i:j], events[i:j])
            i, k = j, k + 1
        ia, ib = one.close(), many.close()
        assert ia == ib
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir())
        for p in a.iterdir():
            assert p.read_bytes() == (b / p.name).read_bytes()
