"""loader.collate against SpikingJelly 2.0.0."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from loader.collate import pad_sequence_collate, padded_sequence_mask
from tests.sjcompat import import_spikingjelly_datasets

SJ = import_spikingjelly_datasets().utils


def assert_same(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b)


def make_batch(lengths, tail=(2, 3, 4), numpy=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = []
    for i, n in enumerate(lengths):
        x = torch.rand((n, *tail), generator=g)
        batch.append((x.numpy() if numpy else x, i % 11))
    return batch


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(0, 9), min_size=1, max_size=6),
    st.sampled_from([(), (2,), (2, 3, 4)]),
    st.booleans(),
)
def test_pad_sequence_collate_equals_spikingjelly(lengths, tail, numpy):
    batch = make_batch(lengths, tail, numpy)
    ours = pad_sequence_collate(batch)
    ref = SJ.pad_sequence_collate(batch)
    assert len(ours) == 3
    for a, b in zip(ours, ref, strict=True):
        assert_same(a, b)
    x, labels, lengths_t = ours
    assert x.shape == (len(lengths), max(lengths), *tail)
    assert lengths_t.tolist() == lengths
    for i, n in enumerate(lengths):
        assert not x[i, n:].any()  # zero padding
        assert torch.equal(x[i, :n], torch.as_tensor(batch[i][0]))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 12), min_size=1, max_size=8), st.none() | st.integers(0, 15))
def test_padded_sequence_mask_equals_spikingjelly(lengths, T):
    lengths_t = torch.as_tensor(lengths)
    if T is None:
        ours, ref = padded_sequence_mask(lengths_t), SJ.padded_sequence_mask(lengths_t)
    else:
        ours, ref = padded_sequence_mask(lengths_t, T), SJ.padded_sequence_mask(lengths_t, T)
    assert_same(ours, ref)
    assert ours.dtype == torch.bool
    assert ours.shape == (max(lengths) if T is None else T, len(lengths))


def test_frames_batch_from_numpy():
    # float32 frames [T_i, 2, H, W] as integrate_events_by_fixed_duration makes them.
    batch = [(np.ones((t, 2, 4, 5), dtype=np.float32), label) for t, label in ((3, 1), (1, 0), (4, 7))]
    x, labels, lengths = pad_sequence_collate(batch)
    assert x.dtype == torch.float32 and x.shape == (3, 4, 2, 4, 5)
    assert labels.tolist() == [1, 0, 7] and labels.dtype == torch.int64
    assert lengths.tolist() == [3, 1, 4] and lengths.dtype == torch.int64
    assert x.sum().item() == (3 + 1 + 4) * 40
    mask = padded_sequence_mask(lengths)
    assert mask.tolist() == [
        [True, True, True],
        [True, False, True],
        [True, False, True],
        [False, False, True],
    ]


def test_three_tuples_return_keys():
    batch = make_batch([2, 5, 1])
    keyed = [(x, y, f"{y}/rec_{i}") for i, (x, y) in enumerate(batch)]
    x, labels, lengths, keys = pad_sequence_collate(keyed)
    for a, b in zip((x, labels, lengths), SJ.pad_sequence_collate(batch), strict=True):
        assert_same(a, b)
    assert keys == ["0/rec_0", "1/rec_1", "2/rec_2"]


def test_mask_with_explicit_T_longer_and_shorter():
    lengths = torch.tensor([2, 0, 5])
    mask = padded_sequence_mask(lengths, T=7)
    assert mask.shape == (7, 3)
    assert mask.sum(0).tolist() == [2, 0, 5]
    assert_same(mask, SJ.padded_sequence_mask(lengths, 7))
    assert_same(padded_sequence_mask(lengths, T=3), SJ.padded_sequence_mask(lengths, 3))


def test_mask_accepts_lists_and_empty():
    assert_same(padded_sequence_mask([1, 3]), SJ.padded_sequence_mask(torch.tensor([1, 3])))
    assert padded_sequence_mask(torch.tensor([], dtype=torch.int64)).shape == (0, 0)


def test_works_as_dataloader_collate_fn():
    data = make_batch([3, 1, 4, 1, 5, 9])
    loader = torch.utils.data.DataLoader(data, batch_size=4, collate_fn=pad_sequence_collate)
    shapes = [tuple(x.shape) for x, _, _ in loader]
    assert shapes == [(4, 4, 2, 3, 4), (2, 9, 2, 3, 4)]


@pytest.mark.parametrize(
    "batch",
    [
        [],
        [(torch.zeros(1),)],
        [(torch.zeros(1), 0), (torch.zeros(2), 1, "k")],
    ],
)
def test_bad_batches_raise_value_error(batch):
    with pytest.raises(ValueError):
        pad_sequence_collate(batch)
