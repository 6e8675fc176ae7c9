"""shardgen.encode.encode_frames against loader.format.encode_sample, sample by sample (the bytes must be equal)."""

from __future__ import annotations

import numpy as np
import pytest

from loader.errors import FormatError
from loader.format import decode_sample, encode_sample, new_compressor
from shardgen.datasets.base import CutSample
from shardgen.encode import encode_frames


def _sample(rng: np.random.Generator, i: int, n: int, hw: tuple[int, int], dt_scale: int, signed: bool) -> CutSample:
    h, w = hw
    steps = rng.integers(-dt_scale if signed else 0, dt_scale + 1, size=n)
    t = (rng.integers(0, 2**40) + np.cumsum(steps)).astype(np.int64)
    xdt = np.uint8 if w <= 256 else np.uint16
    x = rng.integers(0, w, size=n).astype(xdt)
    y = rng.integers(0, h, size=n).astype(np.int64 if i % 3 == 0 else np.uint16)
    p = rng.integers(0, 2, size=n).astype(bool if i % 2 else np.uint8)
    meta = {"label": i % 7, "class": f"c{i % 7}", "file": f"{i % 7}/{i:05d}.bin", "split": "train"}
    return CutSample(f"{i % 7}/{i:05d}", t, x, y, p, meta)


@pytest.mark.parametrize("hw", [(34, 34), (128, 128), (720, 1280), (1, 1)])
def test_frames_equal_encode_sample(hw: tuple[int, int]) -> None:
    rng = np.random.default_rng(hw[0] * 7 + hw[1])
    cctx = new_compressor(3)
    sizes = [0, 1, 2, 3, 0, 4000, 1, 17, 255, 256, 1000, 0, 40_000, 128, 127]  # bin8, bin16 and bin32 columns
    scales = [0, 1, 200, 70_000, 2**33]  # u1 … u8 deltas, and signed ones (time stamps that go back)
    samples = [_sample(rng, i, n, hw, scales[i % len(scales)], signed=i % 4 == 3) for i, n in enumerate(sizes)]
    got = encode_frames(samples, hw, cctx)
    want = [encode_sample(s.key, s.t, s.x, s.y, s.p, s.meta, hw, cctx) for s in samples]
    assert len(got) == len(want)
    for g, w, s in zip(got, want, samples, strict=True):
        assert g == w, s.key
    # and the frames decode to the columns they came from (an independent check of the comparison itself)
    import zstandard

    key, ev, meta = decode_sample(got[5], zstandard.ZstdDecompressor())
    assert key == samples[5].key and meta == samples[5].meta
    np.testing.assert_array_equal(ev["t"], samples[5].t)
    np.testing.assert_array_equal(ev["x"], samples[5].x)
    np.testing.assert_array_equal(ev["y"], samples[5].y)
    np.testing.assert_array_equal(ev["p"], samples[5].p.astype(np.uint8))


def test_frames_outside_sensor_raise_as_encode_sample() -> None:
    rng = np.random.default_rng(1)
    samples = [_sample(rng, i, 50, (34, 34), 10, False) for i in range(3)]
    samples[1].x[7] = 34
    with pytest.raises(FormatError, match="outside the 34x34 sensor"):
        encode_frames(samples, (34, 34), new_compressor(3))


def test_frames_one_d_sensor_passes_through() -> None:
    t = np.arange(10, dtype=np.int64)
    s = CutSample("0/a", t, np.arange(10, dtype=np.uint16), None, None, {"label": 0, "class": "a"})
    cctx = new_compressor(3)
    assert encode_frames([s], (700,), cctx) == [encode_sample(s.key, s.t, s.x, None, None, s.meta, (700,), cctx)]


def test_frames_of_views_into_one_buffer() -> None:
    """Samples cut back to back from one set of columns (the batched N-MNIST cut) and out of order."""
    rng = np.random.default_rng(5)
    whole = _sample(rng, 1, 3000, (34, 34), 300, signed=False)
    cuts = [0, 0, 10, 11, 700, 2000, 3000]
    pieces = [CutSample(f"1/{k:05d}", whole.t[a:b], whole.x[a:b], whole.y[a:b], whole.p[a:b], whole.meta)
              for k, (a, b) in enumerate(zip(cuts[:-1], cuts[1:], strict=True))]
    cctx = new_compressor(3)
    for batch in (pieces, pieces[::-1], pieces[2:5]):
        want = [encode_sample(s.key, s.t, s.x, s.y, s.p, s.meta, (34, 34), cctx) for s in batch]
        assert encode_frames(batch, (34, 34), cctx) == want
