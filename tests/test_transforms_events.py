"""Event transforms: statistics of their draws, their formulas, Compose's sensor sizes, 1-D events, errors.

Statistical checks compare a count or a mean with its expectation within 5 standard deviations
(computed from the distribution, not from the code), over many independent generators.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy.stats import norm

from loader.errors import ConfigurationError
from loader.transforms import (
    CenterCrop,
    Compose,
    Denoise,
    Downsample,
    DropByArea,
    DropByTime,
    DropEvent,
    RandomApply,
    RandomCrop,
    RandomFlipLR,
    RandomFlipPolarity,
    RandomFlipUD,
    RefractoryPeriod,
    SpatialJitter,
    TimeJitter,
    TimeSkew,
    UniformNoise,
    apply_event_transform,
)

H, W = 60, 80


def _events(n: int = 20_000, seed: int = 0, h: int = H, w: int = W, t0: int = 0) -> dict[str, np.ndarray]:
    r = np.random.default_rng(seed)
    return {"t": t0 + np.sort(r.integers(0, 1_000_000, n)).astype(np.int64),
            "x": r.integers(0, w, n).astype(np.uint8), "y": r.integers(0, h, n).astype(np.uint8),
            "p": r.integers(0, 2, n).astype(np.uint8)}


def _grid_events(h: int = H, w: int = W) -> dict[str, np.ndarray]:
    """One event per pixel; ``t`` is the pixel's number ``y * w + x`` (identifies each event)."""
    y, x = np.divmod(np.arange(h * w), w)
    return {"t": np.arange(h * w, dtype=np.int64), "x": x.astype(np.uint8), "y": y.astype(np.uint8),
            "p": (x % 2).astype(np.uint8)}


def _rngs(count: int, seed: int = 1):
    return [np.random.default_rng([seed, i]) for i in range(count)]


def _within(value: float, mean: float, sd: float, k: float = 5.0) -> bool:
    return abs(value - mean) <= k * sd + 1e-12


def _call(t, ev, rng, size=(H, W)):
    return t(ev, sensor_size=size, rng=rng)


# --------------------------------------------------------------------------- drops


@pytest.mark.parametrize("p", [0.05, 0.3, 0.9])
def test_drop_event_keeps_a_binomial_share(p):
    ev = _events(100_000)
    out = _call(DropEvent(p), ev, np.random.default_rng(7))
    n = len(ev["t"])
    assert _within(len(out["t"]), n * (1 - p), math.sqrt(n * p * (1 - p)))
    # the survivors are a subsequence, rows intact; both halves lose the same share
    keep = np.isin(ev["t"] * 10_000 + ev["x"].astype(np.int64) * 100 + ev["y"], out["t"] * 10_000 +
                   out["x"].astype(np.int64) * 100 + out["y"])
    half = n // 2
    for part in (keep[:half], keep[half:]):
        assert _within(part.sum(), half * (1 - p), math.sqrt(half * p * (1 - p)))
    assert np.all(np.diff(out["t"]) >= 0)
    assert len(_call(DropEvent(0.0), ev, np.random.default_rng(0))["t"]) == n
    assert len(_call(DropEvent(1.0), ev, np.random.default_rng(0))["t"]) == 0


def test_drop_event_range_draws_p_per_sample():
    ev = _events(5000)
    shares = np.array([1 - len(_call(DropEvent((0.1, 0.5)), ev, r)["t"]) / 5000 for r in _rngs(400)])
    assert shares.min() > 0.05 and shares.max() < 0.55
    assert _within(shares.mean(), 0.3, math.sqrt(0.4**2 / 12 / 400))


def test_drop_by_time_removes_one_window_of_the_sample_span():
    ev = _events(20_000, t0=10**12)  # absolute time stamps: tonic's window from t = 0 would miss them
    lo, hi = int(ev["t"].min()), int(ev["t"].max())
    starts = []
    for r in _rngs(300):
        out = _call(DropByTime(0.2), ev, r)
        gone = np.setdiff1d(ev["t"], out["t"])
        assert len(gone) > 0
        a, b = int(gone.min()), int(gone.max())
        assert b - a <= 0.2 * (hi - lo) + 1
        assert not np.any((out["t"] >= a) & (out["t"] <= b))  # one window, nothing kept inside
        starts.append(a)
    # window start uniform on [lo, hi - 0.2 * span]
    span = 0.8 * (hi - lo)
    assert _within(np.mean(starts), lo + span / 2, span / math.sqrt(12 * 300))
    one = {k: v[:1] for k, v in ev.items()}
    assert len(_call(DropByTime(0.5), one, np.random.default_rng(0))["t"]) == 0  # the window is the instant
    empty = {k: v[:0] for k, v in ev.items()}
    assert len(_call(DropByTime(0.5), empty, np.random.default_rng(0))["t"]) == 0


def test_drop_by_area_removes_one_box():
    ev = _grid_events()
    tops, lefts = [], []
    for r in _rngs(300):
        out = _call(DropByArea(0.25), ev, r)
        gone = np.setdiff1d(ev["t"], out["t"])
        gy, gx = np.divmod(gone, W)
        assert len(gone) == int(H * 0.25) * int(W * 0.25) == (gy.max() - gy.min() + 1) * (gx.max() - gx.min() + 1)
        tops.append(gy.min())
        lefts.append(gx.min())
    assert set(tops) <= set(range(H - 15 + 1)) and set(lefts) <= set(range(W - 20 + 1))
    assert _within(np.mean(tops), (H - 15) / 2, math.sqrt(((H - 15 + 1) ** 2 - 1) / 12 / 300))
    assert _within(np.mean(lefts), (W - 20) / 2, math.sqrt(((W - 20 + 1) ** 2 - 1) / 12 / 300))


# --------------------------------------------------------------------------- flips


@pytest.mark.parametrize("cls", [RandomFlipLR, RandomFlipUD, RandomFlipPolarity])
def test_flips_happen_with_probability_p(cls):
    ev = _events(200)
    flipped = 0
    for r in _rngs(2000):
        out = _call(cls(p=0.3), ev, r)
        if cls is RandomFlipLR:
            done = np.array_equal(out["x"], W - 1 - ev["x"])
        elif cls is RandomFlipUD:
            done = np.array_equal(out["y"], H - 1 - ev["y"])
        else:
            done = np.array_equal(out["p"], 1 - ev["p"])
        assert done or all(np.array_equal(out[c], ev[c]) for c in "txyp")
        flipped += done
    assert _within(flipped, 600, math.sqrt(2000 * 0.3 * 0.7))


def test_flip_rejects_coordinates_outside_the_sensor():
    with pytest.raises(ConfigurationError, match="outside the sensor"):
        _call(RandomFlipLR(1.0), _events(100), np.random.default_rng(0), size=(H, 50))


# --------------------------------------------------------------------------- jitter


def test_spatial_jitter_is_a_rounded_gaussian():
    sigma = 1.5
    n = 200_000
    ev = {"t": np.arange(n, dtype=np.int64), "x": np.full(n, 40, np.uint8), "y": np.full(n, 30, np.uint8),
          "p": np.zeros(n, np.uint8)}
    out = _call(SpatialJitter(sigma), ev, np.random.default_rng(3))
    assert len(out["t"]) == n  # 10 sigma from every border: nothing leaves
    dx, dy = out["x"].astype(int) - 40, out["y"].astype(int) - 30
    for d in (dx, dy):
        for k in range(-5, 6):  # P(round(N(0, s)) = k)
            pk = norm.cdf((k + 0.5) / sigma) - norm.cdf((k - 0.5) / sigma)
            assert _within(np.count_nonzero(d == k), n * pk, math.sqrt(n * pk * (1 - pk))), k
    assert abs(np.corrcoef(dx, dy)[0, 1]) < 5 / math.sqrt(n)


def test_spatial_jitter_drops_events_that_leave():
    n = 100_000
    ev = {"t": np.arange(n, dtype=np.int64), "x": np.zeros(n, np.uint8), "y": np.full(n, 30, np.uint8),
          "p": np.zeros(n, np.uint8)}
    out = _call(SpatialJitter(1.0), ev, np.random.default_rng(4))
    p_stay = norm.cdf(0.5)  # round(N(0, 1)) >= 0
    assert _within(len(out["t"]), n * p_stay, math.sqrt(n * p_stay * (1 - p_stay)))
    assert out["x"].dtype == np.uint8 and int(out["x"].max()) < W


def test_time_jitter_statistics_and_order():
    ev = _events(100_000, t0=10_000)
    std = 300.0
    raw = _call(TimeJitter(std, clip_negative=False, sort=False), ev, np.random.default_rng(5))
    d = (raw["t"] - ev["t"]).astype(float)
    n = len(d)
    sd = math.sqrt(std**2 + 1 / 12)
    assert _within(d.mean(), 0, sd / math.sqrt(n))
    assert _within(d.std(), sd, sd / math.sqrt(2 * n))
    out = _call(TimeJitter(std), ev, np.random.default_rng(5))  # same draws, sorted (stable)
    order = np.argsort(raw["t"], kind="stable")
    for c in "txyp":
        np.testing.assert_array_equal(out[c], raw[c][order])
    early = {k: v[:1000] - (10_000 if k == "t" else 0) for k, v in ev.items()}
    clipped = _call(TimeJitter(std), early, np.random.default_rng(6))
    assert clipped["t"].min() >= 0 and len(clipped["t"]) < 1000


def test_time_skew_formula_and_ranges():
    ev = _events(1000)
    out = _call(TimeSkew(2.0, 5), ev, None)
    np.testing.assert_array_equal(out["t"], ev["t"] * 2 + 5)
    coefficients = []
    for r in _rngs(500):
        out = _call(TimeSkew((0.5, 1.5), (0, 100)), ev, r)
        coefficients.append((out["t"][-1] - out["t"][0]) / (ev["t"][-1] - ev["t"][0]))
    assert min(coefficients) >= 0.5 - 1e-3 and max(coefficients) < 1.5 + 1e-3
    assert _within(np.mean(coefficients), 1.0, math.sqrt(1 / 12 / 500))


# --------------------------------------------------------------------------- crops and Compose


def test_random_crop_offsets_are_uniform_over_all_positions():
    ev = _grid_events()
    seen_top = np.zeros(H - 50 + 1, int)
    for r in _rngs(2000):
        out = _call(RandomCrop((50, 70)), ev, r)
        oy, ox = np.divmod(out["t"], W)
        top, left = int(oy.min()), int(ox.min())
        assert len(out["t"]) == 50 * 70
        np.testing.assert_array_equal(out["x"].astype(int), ox - left)
        np.testing.assert_array_equal(out["y"].astype(int), oy - top)
        seen_top[top] += 1
    # 11 positions 0 … 10, the last one included (tonic never picks it)
    assert all(_within(c, 2000 / 11, math.sqrt(2000 / 11 * 10 / 11)) for c in seen_top)
    with pytest.raises(ConfigurationError, match="larger than the sensor"):
        _call(RandomCrop(100), ev, np.random.default_rng(0))


def test_compose_passes_the_size_after_each_transform():
    ev = _grid_events()
    chain = Compose([CenterCrop((20, 30)), RandomFlipLR(1.0), Downsample(0.5), RandomFlipUD(1.0)])
    assert chain.sensor_size_after((H, W)) == (10, 15)
    out = _call(chain, ev, np.random.default_rng(0))
    oy, ox = np.divmod(out["t"], W)
    cy, cx = oy - (H - 20) // 2, ox - (W - 30) // 2  # centre crop offsets floor((H - h) / 2)
    np.testing.assert_array_equal(out["x"].astype(int), (29 - cx) // 2)  # flipped in the crop's width
    np.testing.assert_array_equal(out["y"].astype(int), 9 - cy // 2)  # flipped in the downsampled height
    assert Compose([RandomCrop(7), Downsample((0.5, 0.25))]).sensor_size_after((H, W)) == (4, 2)


def test_random_apply():
    ev = _events(100)
    applied = sum(not np.array_equal(_call(RandomApply(RandomFlipLR(1.0), 0.25), ev, r)["x"], ev["x"])
                  for r in _rngs(2000))
    assert _within(applied, 500, math.sqrt(2000 * 0.25 * 0.75))
    with pytest.raises(ConfigurationError, match="changes the sensor size"):
        RandomApply(RandomCrop(10)).sensor_size_after((H, W))
    with pytest.raises(ConfigurationError, match="p must be"):
        RandomApply(RandomFlipLR(), 1.5)


# --------------------------------------------------------------------------- noise


def test_uniform_noise():
    ev = _events(1000)
    out = _call(UniformNoise(50_000), ev, np.random.default_rng(8))
    assert len(out["t"]) == 51_000 and np.all(np.diff(out["t"]) >= 0)
    assert out["t"].min() >= ev["t"].min() and out["t"].max() <= ev["t"].max()
    assert out["x"].max() < W and out["y"].max() < H and set(np.unique(out["p"])) == {0, 1}
    n = 51_000
    assert _within(out["x"].astype(float).mean(), (1000 * ev["x"].mean() + 50_000 * (W - 1) / 2) / n, W / 3.4 / 200)
    assert _within(out["p"].mean(), (ev["p"].sum() + 25_000) / n, 0.5 / 200)
    # originals kept, in order
    rows = set(zip(*(out[c].tolist() for c in "txyp"), strict=True))
    assert all(r in rows for r in zip(*(ev[c].tolist() for c in "txyp"), strict=True))
    counts = [len(_call(UniformNoise((10, 20)), ev, r)["t"]) - 1000 for r in _rngs(200)]
    assert min(counts) >= 10 and max(counts) < 20
    empty = {k: v[:0] for k, v in ev.items()}
    assert len(_call(UniformNoise(10), empty, np.random.default_rng(0))["t"]) == 0


# --------------------------------------------------------------------------- 1-D events, purity, errors

ONE_D_OK = [DropEvent(0.2), TimeJitter(10.0), TimeSkew(1.5, 3), DropByTime(0.3), UniformNoise(100),
            RefractoryPeriod(50), Downsample(0.5, 0.5), RandomFlipLR(1.0)]
ONE_D_NOT = [RandomFlipUD(1.0), DropByArea(0.2), SpatialJitter(1.0), RandomCrop(5), CenterCrop(5),
             Denoise(100), RandomFlipPolarity(1.0)]


@pytest.mark.parametrize("t", ONE_D_OK, ids=lambda t: type(t).__name__)
def test_one_dimensional_events_work(t):
    r = np.random.default_rng(9)
    ev = {"t": np.sort(r.integers(0, 100_000, 5000)), "x": r.integers(0, 700, 5000).astype(np.uint16)}
    out = t(ev, sensor_size=(700,), rng=np.random.default_rng(1))
    assert set(out) == {"t", "x"} and len(out["t"]) == len(out["x"]) > 0
    assert int(out["x"].max()) < t.sensor_size_after((700,))[0]


@pytest.mark.parametrize("t", ONE_D_NOT, ids=lambda t: type(t).__name__)
def test_two_dimensional_transforms_refuse_one_dimensional_events(t):
    ev = {"t": np.arange(10, dtype=np.int64), "x": np.arange(10, dtype=np.uint16)}
    with pytest.raises(ConfigurationError, match=rf"{type(t).__name__}.*column\(s\) [yp]"):
        t(ev, sensor_size=(700,), rng=np.random.default_rng(1))


@pytest.mark.parametrize("t", ONE_D_OK + ONE_D_NOT + [Compose([DropEvent(0.5), CenterCrop(30)])],
                         ids=lambda t: type(t).__name__)
def test_transforms_leave_their_input_alone_and_are_frozen(t):
    ev = _events(3000)
    before = {k: v.copy() for k, v in ev.items()}
    a = t(ev, sensor_size=(H, W), rng=np.random.default_rng(2))
    b = t(ev, sensor_size=(H, W), rng=np.random.default_rng(2))
    for k in before:
        np.testing.assert_array_equal(ev[k], before[k])
        np.testing.assert_array_equal(a[k], b[k])  # same generator state, same result
    field = dataclasses.fields(t)[0].name
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(t, field, None)


def test_plain_callables_are_called_as_before():
    ev = _events(10)
    seen = []
    assert apply_event_transform(lambda e: seen.append(e) or "x", ev, (H, W), np.random.default_rng(0)) == "x"
    assert seen == [ev]
    with pytest.raises(ConfigurationError):
        DropEvent(1.5)
    with pytest.raises(ConfigurationError):
        DropByTime(1.0)


def test_random_choice_picks_uniformly():
    from loader.transforms import RandomChoice

    ev = _events(100)
    picks = [0, 0]
    for r in _rngs(1000):
        out = _call(RandomChoice([RandomFlipLR(1.0), RandomFlipUD(1.0)]), ev, r)
        picks[0] += np.array_equal(out["x"], W - 1 - ev["x"])
        picks[1] += np.array_equal(out["y"], H - 1 - ev["y"])
    assert sum(picks) == 1000 and abs(picks[0] - 500) < 5 * math.sqrt(250)
    with pytest.raises(ConfigurationError, match="changes the sensor size"):
        RandomChoice([CenterCrop(5)]).sensor_size_after((H, W))


def test_drop_event_probability_below_the_16_bit_resolution():
    n = 2_000_000
    ev = {"t": np.arange(n, dtype=np.int64), "x": np.zeros(n, np.uint8)}
    for p in (2.5e-5, 4e-6):  # 1.64 and 0.26 steps of 1/65536: the second stage decides
        dropped = n - len(_call(DropEvent(p), ev, np.random.default_rng(12), size=(1,))["t"])
        assert _within(dropped, n * p, math.sqrt(n * p))


@pytest.mark.parametrize("count", [0, 1, 5, 300, 2000])
def test_drop_helper_equals_np_delete(count):
    from loader.transforms.functional.columns import drop

    ev = _events(5000)
    index = np.sort(np.random.default_rng(count).choice(5000, count, replace=False))
    out = drop(ev, index)
    for c in "txyp":
        np.testing.assert_array_equal(out[c], np.delete(ev[c], index))
