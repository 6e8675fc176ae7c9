"""One numpy Generator per sample, a pure function of ``(seed, epoch, key, stream)``.

The rule (stated once here; ``docs/AUGMENT.md`` explains why):

* ``b = blake2b(b"eventshard-augment\\0" + f"{seed}\\0{epoch}\\0".encode() + key.encode("utf-8"),
  digest_size=16)``; the 128-bit little-endian integer of ``b`` is the entropy of a
  ``numpy.random.SeedSequence`` whose ``spawn_key`` is ``(stream,)``; the generator is
  ``numpy.random.Generator(PCG64(that SeedSequence))``.
* Stream :data:`EVENT_STREAM` (0) feeds the event transforms of a sample, :data:`FRAME_STREAM` (1) its
  frame transforms: two independent generators, so adding a frame transform never changes the event
  augmentation and the other way round.

Nothing depends on the process, the worker, the rank or Python's salted ``hash()``, so the same
sample gets the same draws in every worker, on every rank and after a resume.
"""

from __future__ import annotations

import hashlib

import numpy as np

from loader.errors import ConfigurationError

__all__ = ["EVENT_STREAM", "FRAME_STREAM", "sample_rng", "sample_rngs"]

EVENT_STREAM = 0
"""Stream id of the generator passed to the event transforms of a sample."""
FRAME_STREAM = 1
"""Stream id of the generator passed to the frame transforms of a sample."""

_DOMAIN = b"eventshard-augment\0"


def sample_rng(seed: int, epoch: int, key: str | bytes, stream: int = EVENT_STREAM) -> np.random.Generator:
    """The generator of one sample, epoch and stream (see the module docstring for the rule).

    Parameters
    ----------
    seed : int
        The run's seed (``EventShardDataset(seed=...)``), ``>= 0``.
    epoch : int
        The epoch whose items are being made, ``>= 0``.
    key : str or bytes
        The sample key (as ``return_key=True`` yields it).
    stream : int
        :data:`EVENT_STREAM` or :data:`FRAME_STREAM` (any ``>= 0`` gives an independent stream).

    Returns
    -------
    numpy.random.Generator
        A fresh PCG64 generator; equal arguments give equal draws in any process.

    Raises
    ------
    ConfigurationError
        ``seed``, ``epoch`` or ``stream`` is negative or not an integer.
    """
    for name, value in (("seed", seed), ("epoch", epoch), ("stream", stream)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ConfigurationError(f"sample_rng: {name} must be an integer >= 0, got {value!r}")
    raw = key if isinstance(key, bytes) else str(key).encode("utf-8")
    digest = hashlib.blake2b(_DOMAIN + f"{int(seed)}\0{int(epoch)}\0".encode() + raw, digest_size=16).digest()
    seq = np.random.SeedSequence(int.from_bytes(digest, "little"), spawn_key=(int(stream),))
    return np.random.Generator(np.random.PCG64(seq))


def sample_rngs(seed: int, epoch: int, key: str | bytes) -> tuple[np.random.Generator, np.random.Generator]:
    """``(event generator, frame generator)`` of one sample: streams :data:`EVENT_STREAM` and :data:`FRAME_STREAM`."""
    return sample_rng(seed, epoch, key, EVENT_STREAM), sample_rng(seed, epoch, key, FRAME_STREAM)
