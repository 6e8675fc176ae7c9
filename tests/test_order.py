"""The epoch order as pure functions (loader.order): spans, plan with spans, interleave, against references
written out here independently."""

from __future__ import annotations

import numpy as np
import pytest

from loader.order import BufferOrder, interleave, padded_length, plan, rank_range, spans


def _span_sequence(shard_samples, span, shuffle, seed, epoch):
    """(shard, sample) of the epoch's global sequence with spans, written out independently of plan()."""
    units = []
    for shard, count in enumerate(shard_samples):
        a = 0
        while a < count:
            units.append([(shard, i) for i in range(a, min(a + span, count))])
            a += span
    if shuffle:
        units = [units[i] for i in np.random.default_rng([seed, epoch]).permutation(len(units))]
    return [item for unit in units for item in unit]


def _expand(runs):
    return [(s, i) for s, a, b in runs for i in range(a, b)]


def test_spans_cut_every_shard():
    assert spans([5, 0, 3], 2) == [(0, 0, 2), (0, 2, 4), (0, 4, 5), (2, 0, 2), (2, 2, 3)]
    assert spans([5, 0, 3]) == [(0, 0, 5), (2, 0, 3)]
    assert spans([4], 10) == [(0, 0, 4)]


@pytest.mark.parametrize("span", [1, 2, 3, 7])
@pytest.mark.parametrize("even", ["pad", "drop", None])
def test_plan_with_spans_cuts_the_span_sequence_into_equal_pieces(span, even):
    counts = [9, 12, 0, 10]
    n = sum(counts)
    for world, workers in [(1, 1), (1, 3), (2, 2), (3, 1), (4, 2)]:
        seq = _span_sequence(counts, span, True, 5, 2)
        total = padded_length(n, world, even)
        full = [seq[p % n] for p in range(total)]
        got = []
        for rank in range(world):
            lo, hi = rank_range(n, rank, world, even)
            piece = []
            for w in range(workers):
                runs = plan(counts, rank * workers + w, world * workers, True, 5, 2, world_size=world, even=even,
                            span=span)
                assert all(b - a <= span for _, a, b in runs)
                piece += _expand(runs)
            assert piece == full[lo:hi]
            got += piece
        assert got == full


def test_spans_change_with_the_epoch_and_seed():
    counts = [40, 40]
    base = _expand(plan(counts, 0, 1, True, 0, 0, span=4))
    assert sorted(base) == [(s, i) for s in range(2) for i in range(40)]
    assert base != _expand(plan(counts, 0, 1, True, 0, 1, span=4))
    assert base != _expand(plan(counts, 0, 1, True, 1, 0, span=4))
    # a worker of two sees other samples in another epoch (whole shards would give it the same ones)
    first = {_expand(plan(counts, 0, 2, True, 0, e, span=4))[0][0] for e in range(8)}
    assert len(first) == 2


def test_interleave_keeps_each_run_in_order_and_groups_in_order():
    rng = np.random.default_rng(0)
    lengths = [5, 0, 7, 3, 9, 2, 4]
    starts = np.cumsum([0] + lengths)
    out = interleave(lengths, 3, rng)
    assert sorted(out.tolist()) == list(range(sum(lengths)))
    run_of = np.searchsorted(starts, out, side="right") - 1
    for r in range(len(lengths)):
        mine = out[run_of == r]
        assert mine.tolist() == list(range(starts[r], starts[r + 1]))  # front to back, no gaps
    group = run_of // 3
    assert np.all(np.diff(group) >= 0)  # groups one after the other
    assert interleave(lengths, 1, rng).tolist() == list(range(sum(lengths)))


def test_interleave_is_a_uniform_merge():
    """Two runs of 10: how many of run 0's samples come in the first 10 slots is hypergeometric (mean 5, sd 1.32)."""
    firsts = []
    for seed in range(2000):
        out = interleave([10, 10], 2, np.random.default_rng(seed))
        firsts.append(int(np.sum(out[:10] < 10)))
    firsts = np.asarray(firsts)
    assert abs(firsts.mean() - 5) < 0.1
    assert abs(firsts.std() - np.sqrt(10 * 10 * 10 * 10 / (20 * 20 * 19))) < 0.1


def test_buffer_order_is_a_permutation_and_resumes_by_replay():
    order = list(BufferOrder(50, 8, np.random.default_rng(3)))
    assert sorted(order) == list(range(50)) and order != list(range(50))
    replay = BufferOrder(50, 8, np.random.default_rng(3))
    for _ in range(20):
        next(replay)
    assert sorted(set(order[20:]) - set(range(replay.frontier, 50))) == replay.held()
