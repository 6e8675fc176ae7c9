"""Exact parity of the deterministic event transforms with tonic 1.7.0, and of RandomTemporalDelete with SpikingJelly.

tonic's functions run on its structured records (``tonic.io.events_struct``), ours on the same
events as columns; every column must be equal, event for event. Random inputs cover many seeds,
unsorted and equal time stamps, tiny grids, integer and float parameters; edge cases (one event,
all at one pixel, t = 0) are spelled out.
"""

from __future__ import annotations

import numpy as np
import pytest

from loader.transforms import CenterCrop, Denoise, Downsample, RandomFlipLR, RandomFlipUD, RefractoryPeriod, TimeSkew

tonic = pytest.importorskip("tonic")
from tonic import functional as TF  # noqa: E402
from tonic import transforms as TT  # noqa: E402

STRUCT = tonic.io.events_struct
RNG = np.random.default_rng(0)  # unused by the deterministic transforms; they must not draw


def _records(t, x, y, p=None) -> np.ndarray:
    ev = np.zeros(len(t), dtype=STRUCT)
    ev["t"], ev["x"], ev["y"] = t, x, y
    ev["p"] = 0 if p is None else p
    return ev


def _columns(ev: np.ndarray) -> dict[str, np.ndarray]:
    """Columns in eventshard's types: x, y uint16, p uint8, t int64."""
    return {"t": ev["t"].astype(np.int64), "x": ev["x"].astype(np.uint16), "y": ev["y"].astype(np.uint16),
            "p": ev["p"].astype(np.uint8)}


def _assert_same(got: dict[str, np.ndarray], want: np.ndarray) -> None:
    assert len(got["t"]) == len(want)
    for c in "txy":
        np.testing.assert_array_equal(got[c].astype(np.int64), want[c].astype(np.int64), err_msg=c)
    np.testing.assert_array_equal(got["p"].astype(bool), want["p"].astype(bool))


def _random_case(seed: int) -> tuple[np.ndarray, float]:
    r = np.random.default_rng(seed)
    n = int(r.integers(1, 500))
    w, h = int(r.integers(1, 9)), int(r.integers(1, 9))
    t = r.integers(0, int(r.choice([5, 60, 5000])), n)
    if seed % 3:  # most recordings are sorted; some are not
        t = np.sort(t)
    ev = _records(t, r.integers(0, w, n), r.integers(0, h, n), r.integers(0, 2, n))
    param = int(r.integers(0, 40)) if seed % 2 else float(r.random() * 40)
    return ev, param


@pytest.mark.parametrize("seed", range(0, 400, 40))
def test_denoise_equals_tonic(seed):
    for s in range(seed, seed + 40):
        ev, filter_time = _random_case(s)
        _assert_same(Denoise(filter_time)(_columns(ev), sensor_size=(8, 8), rng=RNG), TF.denoise_numpy(ev, filter_time))


@pytest.mark.parametrize("seed", range(0, 400, 40))
def test_refractory_period_equals_tonic(seed):
    for s in range(seed, seed + 40):
        ev, delta = _random_case(s)
        got = RefractoryPeriod(delta)(_columns(ev), sensor_size=(8, 8), rng=RNG)
        _assert_same(got, TF.refractory_period_numpy(ev, delta))


EDGE_CASES = {
    "one event at t=0": _records([0], [3], [2]),
    "one event late": _records([50_000], [3], [2]),
    "one event at the origin": _records([5], [0], [0]),
    "all at one pixel, equal times": _records([7, 7, 7, 7], [1, 1, 1, 1], [1, 1, 1, 1]),
    "equal times at neighbours": _records([10, 10, 10, 10, 10], [1, 2, 0, 1, 1], [1, 1, 1, 0, 2]),
    "decreasing times": _records([900, 500, 100, 50, 10], [1, 2, 1, 2, 1], [1, 1, 1, 1, 0]),
    "big sensor, sparse": _records([1, 20_000, 20_001, 90_000], [300, 301, 639, 0], [200, 200, 479, 0]),
}


@pytest.mark.parametrize("case", sorted(EDGE_CASES))
@pytest.mark.parametrize("param", [0, 1, 10, 10_000, 2.5])
def test_filters_edge_cases(case, param):
    ev = EDGE_CASES[case]
    _assert_same(Denoise(param)(_columns(ev), sensor_size=(480, 640), rng=RNG), TF.denoise_numpy(ev, param))
    _assert_same(RefractoryPeriod(param)(_columns(ev), sensor_size=(480, 640), rng=RNG),
                 TF.refractory_period_numpy(ev, param))


def test_filters_on_empty_and_1d():
    empty = {"t": np.zeros(0, np.int64), "x": np.zeros(0, np.uint16), "y": np.zeros(0, np.uint16)}
    assert len(Denoise(10)(empty, sensor_size=(4, 4), rng=RNG)["t"]) == 0  # tonic raises on max() of nothing
    assert len(RefractoryPeriod(10)(empty, sensor_size=(4, 4), rng=RNG)["x"]) == 0
    # 1-D events: the pixel is x; same as tonic with y = 0
    r = np.random.default_rng(5)
    ev = _records(np.sort(r.integers(0, 300, 400)), r.integers(0, 20, 400), np.zeros(400))
    one_d = {"t": ev["t"].astype(np.int64), "x": ev["x"].astype(np.uint16)}
    got = RefractoryPeriod(7)(one_d, sensor_size=(20,), rng=RNG)
    want = TF.refractory_period_numpy(ev, 7)
    np.testing.assert_array_equal(got["t"], want["t"])
    np.testing.assert_array_equal(got["x"], want["x"])


def _sample(seed: int, n: int = 2000, h: int = 60, w: int = 80) -> np.ndarray:
    r = np.random.default_rng(seed)
    return _records(np.sort(r.integers(0, 10**6, n)), r.integers(0, w, n), r.integers(0, h, n), r.integers(0, 2, n))


@pytest.mark.parametrize("size", [(30, 40), (60, 80), (31, 17), (1, 1), (70, 90), (61, 83)])
def test_center_crop_equals_tonic(size):
    ev = _sample(1)
    h, w = size
    tonic_crop = TT.CenterCrop(sensor_size=(80, 60, 2), size=(w, h))  # tonic: (x, y) order
    t = CenterCrop(size)
    got = t(_columns(ev), sensor_size=(60, 80), rng=RNG)
    want = tonic_crop(ev.copy())
    _assert_same(got, want)
    assert t.sensor_size_after((60, 80)) == size
    # the formula, independently: offsets floor((H - h) / 2), floor((W - w) / 2)
    oy, ox = (60 - h) // 2, (80 - w) // 2
    inside = (ev["x"] >= max(ox, 0)) & (ev["x"] < ox + w) & (ev["y"] >= max(oy, 0)) & (ev["y"] < oy + h)
    np.testing.assert_array_equal(got["x"].astype(int), ev["x"][inside] - ox)
    np.testing.assert_array_equal(got["y"].astype(int), ev["y"][inside] - oy)


def test_flips_equal_tonic_and_formula():
    ev = _sample(2)
    got = RandomFlipLR(p=1.0)(_columns(ev), sensor_size=(60, 80), rng=RNG)
    _assert_same(got, TT.RandomFlipLR(sensor_size=(80, 60, 2), p=1.0)(ev.copy()))
    np.testing.assert_array_equal(got["x"].astype(int), 79 - ev["x"])
    got = RandomFlipUD(p=1.0)(_columns(ev), sensor_size=(60, 80), rng=RNG)
    _assert_same(got, TT.RandomFlipUD(sensor_size=(80, 60, 2), p=1.0)(ev.copy()))
    np.testing.assert_array_equal(got["y"].astype(int), 59 - ev["y"])


@pytest.mark.parametrize("factor, time_factor", [(0.25, 1), (0.5, 0.001), (0.3, 1.7), (1, 0.5)])
def test_downsample_equals_tonic(factor, time_factor):
    ev = _sample(3)
    t = Downsample(spatial_factor=factor, time_factor=time_factor)
    got = t(_columns(ev), sensor_size=(60, 80), rng=RNG)
    _assert_same(got, TT.Downsample(time_factor=time_factor, spatial_factor=factor)(ev.copy()))
    h, w = t.sensor_size_after((60, 80))
    assert int(got["x"].max()) < w and int(got["y"].max()) < h
    assert (h, w) == (int(59 * factor) + 1, int(79 * factor) + 1)


@pytest.mark.parametrize("coefficient, offset", [(1.3, 100), (0.5, 0), (2.0, -7.5)])
def test_time_skew_equals_tonic(coefficient, offset):
    ev = _sample(4)
    got = TimeSkew(coefficient, offset)(_columns(ev), sensor_size=(60, 80), rng=RNG)
    _assert_same(got, TT.TimeSkew(coefficient=coefficient, offset=offset)(ev.copy()))


def test_random_temporal_delete_equals_spikingjelly():
    """Given the same draws (a RandomState seeded alike), the kept frames are SpikingJelly's."""
    torch = pytest.importorskip("torch")
    from tests.sjcompat import import_spikingjelly_datasets

    import_spikingjelly_datasets()
    from spikingjelly.datasets.transform import RandomTemporalDelete as SJDelete

    from loader.transforms import RandomTemporalDelete

    frames = torch.arange(10 * 2 * 3 * 4, dtype=torch.float32).reshape(10, 2, 3, 4)
    batch = torch.arange(3 * 10 * 5, dtype=torch.float32).reshape(3, 10, 5)
    for seed in range(20):
        for x, batch_first in ((frames, False), (batch, True)):
            np.random.seed(seed)
            want = SJDelete(T_remain=6, batch_first=batch_first)(x)
            got = RandomTemporalDelete(6, batch_first)(x, rng=np.random.RandomState(seed))
            assert torch.equal(got, want)
    got = RandomTemporalDelete(4)(frames.numpy(), rng=np.random.default_rng(0))
    assert isinstance(got, np.ndarray) and got.shape == (4, 2, 3, 4)
