"""Batch variable-length frame sequences (SpikingJelly 2.0.0 semantics).

``integrate_events_by_fixed_duration`` gives each sample its own number of frames ``T``; a
``DataLoader`` with ``collate_fn=pad_sequence_collate`` pads them with zeros to the longest one in
the batch, and :func:`padded_sequence_mask` marks which time steps are real.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence

__all__ = ["pad_sequence_collate", "padded_sequence_mask"]


def pad_sequence_collate(
    batch: Sequence[tuple[Any, ...]],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | tuple[torch.Tensor, torch.Tensor, torch.Tensor, list]:
    """Collate ``(x, label)`` samples whose ``x`` differ in length along the first axis.

    Usable as ``collate_fn`` of a ``torch.utils.data.DataLoader``; gives the same values as
    SpikingJelly's ``pad_sequence_collate``.

    Parameters
    ----------
    batch : sequence of tuple
        Samples ``(x, label)`` or ``(x, label, key)`` (all of one kind). ``x`` is a tensor or
        numpy array of shape ``[T_i, ...]`` (trailing dimensions equal across the batch);
        ``label`` anything ``torch.as_tensor`` accepts in a list (usually an ``int``).

    Returns
    -------
    x : torch.Tensor
        ``[N, T_max, ...]``, each sample zero-padded at the end of its time axis.
    labels : torch.Tensor
        ``[N]``, ``torch.as_tensor`` of the labels.
    lengths : torch.Tensor
        ``[N]`` ``int64``, each sample's ``T_i``.
    keys : list
        Only for ``(x, label, key)`` samples: the keys, in batch order.

    Raises
    ------
    ValueError
        If the batch is empty or mixes samples of different arity, or an arity is not 2 or 3.
    """
    if len(batch) == 0:
        raise ValueError("pad_sequence_collate needs at least one sample")
    arity = len(batch[0])
    if arity not in (2, 3) or any(len(item) != arity for item in batch):
        raise ValueError("samples must all be (x, label) or all be (x, label, key)")
    xs = [torch.as_tensor(item[0]) for item in batch]
    out = (
        pad_sequence(xs, batch_first=True),
        torch.as_tensor([item[1] for item in batch]),
        torch.as_tensor([x.shape[0] for x in xs]),
    )
    if arity == 3:
        return (*out, [item[2] for item in batch])
    return out


def padded_sequence_mask(lengths: torch.Tensor | np.ndarray | Sequence[int], T: int | None = None) -> torch.Tensor:
    """Boolean mask ``[T, N]`` that is ``True`` where time step ``t`` of sample ``n`` is real.

    Gives the same values as SpikingJelly's ``padded_sequence_mask``.

    Parameters
    ----------
    lengths : torch.Tensor or array-like
        ``[N]`` sequence lengths (e.g. the ``lengths`` from :func:`pad_sequence_collate`).
    T : int or None, optional
        Number of time steps; ``None`` (default) uses ``max(lengths)`` (0 for no samples).

    Returns
    -------
    torch.Tensor
        ``bool`` tensor of shape ``[T, N]`` on the device of ``lengths``; ``mask[t, n]`` is
        ``t < lengths[n]``.
    """
    lengths = torch.as_tensor(lengths)
    if T is None:
        T = int(lengths.max().item()) if lengths.numel() else 0
    return torch.arange(T, device=lengths.device)[:, None] < lengths[None, :]
