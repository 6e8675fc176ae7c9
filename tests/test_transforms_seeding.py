"""sample_rng: the documented rule, computed here from hashlib and SeedSequence; stable across processes."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loader.errors import ConfigurationError
from loader.transforms import EVENT_STREAM, FRAME_STREAM, sample_rng, sample_rngs

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["0/train_rec00_0", "airplane/cifar10_airplane_7", "ünïcode/ключ", ""]


def _by_the_rule(seed, epoch, key, stream):
    digest = hashlib.blake2b(b"eventshard-augment\0" + f"{seed}\0{epoch}\0".encode() + key.encode("utf-8"),
                             digest_size=16).digest()
    seq = np.random.SeedSequence(int.from_bytes(digest, "little"), spawn_key=(stream,))
    return np.random.Generator(np.random.PCG64(seq))


def _draws(rng):
    return rng.integers(0, 2**62, size=4).tolist()


@pytest.mark.parametrize("key", KEYS)
def test_the_documented_rule(key):
    for seed, epoch in ((0, 0), (7, 3), (2**40, 10**6)):
        for stream in (EVENT_STREAM, FRAME_STREAM, 5):
            assert _draws(sample_rng(seed, epoch, key, stream)) == _draws(_by_the_rule(seed, epoch, key, stream))
    assert _draws(sample_rng(1, 2, key.encode("utf-8"))) == _draws(sample_rng(1, 2, key))


def test_everything_changes_the_draws():
    base = _draws(sample_rng(1, 2, "k"))
    variants = [sample_rng(2, 2, "k"), sample_rng(1, 3, "k"), sample_rng(1, 2, "k2"), sample_rng(1, 2, "k", 1),
                sample_rng(12, 2, "k"), sample_rng(1, 22, "k")]
    assert all(_draws(r) != base for r in variants)
    ev, fr = sample_rngs(1, 2, "k")
    assert _draws(ev) == base and _draws(fr) == _draws(sample_rng(1, 2, "k", FRAME_STREAM))


def test_stable_across_processes_and_hash_seeds():
    code = ("from loader.transforms import sample_rng\n"
            f"print([sample_rng(3, 4, k).integers(0, 2**62, size=4).tolist() for k in {KEYS!r}])")
    outs = []
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": str(ROOT)}
        outs.append(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                   check=True).stdout)
    assert outs[0] == outs[1] == repr([_draws(sample_rng(3, 4, k)) for k in KEYS]) + "\n"


def test_bad_arguments():
    for args in ((-1, 0, "k"), (0, -1, "k"), (0, 0, "k", -1), (0.5, 0, "k"), (True, 0, "k")):
        with pytest.raises(ConfigurationError, match="sample_rng"):
            sample_rng(*args)


def test_event_transforms_import_without_torch():
    code = ("import sys\nimport loader.transforms as T\nT.Compose([T.DropEvent(0.1)])\n"
            "assert 'torch' not in sys.modules, 'torch imported'\nT.RandomRoll\nassert 'torch' in sys.modules")
    subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}, check=True)
