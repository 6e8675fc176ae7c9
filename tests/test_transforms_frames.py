"""Frame transforms on [T, C, H, W]: geometry against torch's own ops or an independent numpy computation,
the same transformation for every frame, the draws' ranges, numpy in / numpy out, CUDA where present."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from loader.errors import ConfigurationError
from loader.transforms import (
    Cutout,
    FrameCompose,
    FrameRandomApply,
    FrameRandomChoice,
    RandomResizedCrop,
    RandomRoll,
    RandomRotate,
    RandomShear,
    RandomTemporalDelete,
    apply_frame_transform,
)


def _frames(t=3, c=2, h=9, w=9, seed=0):
    """Planes that are multiples of one random base plane: a common transformation keeps them so."""
    base = torch.from_numpy(np.random.default_rng(seed).random((h, w)).astype(np.float32)) + 0.5
    scale = torch.arange(1, t * c + 1, dtype=torch.float32).reshape(t, c, 1, 1)
    return base * scale, base


def _same_for_all_planes(out, base_out):
    t, c = out.shape[:2]
    scale = torch.arange(1, t * c + 1, dtype=torch.float32).reshape(t, c, 1, 1)
    torch.testing.assert_close(out, base_out * scale)


def _warp_numpy(img, matrix):
    """Nearest-neighbour warp, independently: output (x, y) takes input c + M (q - c); 0 outside; ties flagged."""
    h, w = img.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(float)
    cx, cy = (w - 1) / 2, (h - 1) / 2
    sx = cx + matrix[0][0] * (xs - cx) + matrix[0][1] * (ys - cy)
    sy = cy + matrix[1][0] * (xs - cx) + matrix[1][1] * (ys - cy)
    ix, iy = np.rint(sx).astype(int), np.rint(sy).astype(int)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.where(inside, img[iy.clip(0, h - 1), ix.clip(0, w - 1)], 0)
    tie = (np.abs(np.abs(sx - np.floor(sx)) - 0.5) < 1e-3) | (np.abs(np.abs(sy - np.floor(sy)) - 0.5) < 1e-3)
    return out, tie


@pytest.mark.parametrize("size", [7, 8])
def test_rotate_by_90_is_rot90(size):
    x, base = _frames(h=size, w=size)
    out = RandomRotate(degrees=(90, 90))(x, rng=np.random.default_rng(0))
    torch.testing.assert_close(out, torch.rot90(x, 1, dims=(-2, -1)))
    out = RandomRotate(degrees=(-90, -90))(x, rng=np.random.default_rng(0))
    torch.testing.assert_close(out, torch.rot90(x, -1, dims=(-2, -1)))


@pytest.mark.parametrize("angle", [30.0, -17.0, 5.0])
def test_rotate_equals_an_independent_warp(angle):
    x, base = _frames(h=11, w=14)
    out = RandomRotate(degrees=(angle, angle))(x, rng=np.random.default_rng(0))
    a = math.radians(angle)
    want, tie = _warp_numpy(base.numpy(), [[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    got = out[0, 0].numpy()
    assert np.array_equal(got[~tie], want[~tie]) and (~tie).sum() > 100
    _same_for_all_planes(out, out[0, 0])


def test_shear_by_45_shifts_rows():
    x, base = _frames(h=7, w=12)
    out = RandomShear(degrees=(45, 45))(x, rng=np.random.default_rng(0))
    want = np.zeros((7, 12), np.float32)
    for y in range(7):  # output (x, y) takes input (x + (y - 3), y)
        for xx in range(12):
            src = xx + (y - 3)
            if 0 <= src < 12:
                want[y, xx] = base[y, src]
    np.testing.assert_allclose(out[0, 0].numpy(), want)
    _same_for_all_planes(out, out[0, 0])


def test_rotate_and_shear_angles_stay_in_range():
    x, _ = _frames(h=15, w=15)
    seen = set()
    for i in range(200):
        out = RandomRotate(30)(x, rng=np.random.default_rng(i))
        # a rotation by at most 30 degrees keeps the centre pixel and sends the corner inside the frame
        assert out[0, 0, 7, 7] == x[0, 0, 7, 7]
        seen.add(float(out[0, 0].sum()))
    assert len(seen) > 50


def test_roll():
    x, _ = _frames(h=12, w=13)
    shifts = set()
    for i in range(600):
        out = RandomRoll(5)(x, rng=np.random.default_rng(i))
        found = [(dy, dx) for dy in range(-5, 6) for dx in range(-5, 6)
                 if torch.equal(out, torch.roll(x, (dy, dx), dims=(-2, -1)))]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 100  # 121 possible pairs, all drawn


def test_cutout():
    x, _ = _frames(h=20, w=24)
    centres = []
    for i in range(400):
        out = Cutout(8)(x, rng=np.random.default_rng(i))
        r = np.random.default_rng(i)
        cy, cx = int(r.integers(0, 20)), int(r.integers(0, 24))  # the documented draw order
        mask = np.ones((20, 24), bool)
        mask[max(cy - 4, 0):min(cy + 4, 20), max(cx - 4, 0):min(cx + 4, 24)] = False
        m = torch.from_numpy(mask)
        assert torch.equal(out, x * m)
        centres.append(cy)
    assert abs(np.mean(centres) - 9.5) < 5 * math.sqrt((20**2 - 1) / 12 / 400)
    assert torch.count_nonzero(x) == x.numel()  # the input is left alone


def test_random_resized_crop():
    x, _ = _frames(h=32, w=40)
    t = RandomResizedCrop(16, scale=(0.3, 0.9), ratio=(0.5, 2.0))
    for i in range(300):
        top, left, h, w = t.box(32, 40, np.random.default_rng(i))
        assert 0 <= top <= 32 - h and 0 <= left <= 40 - w
        assert 0.3 * 1280 * 0.9 <= h * w <= 0.9 * 1280 * 1.1 + 40 and 0.4 <= w / h <= 2.5
        out = t(x, rng=np.random.default_rng(i))
        assert out.shape == (3, 2, 16, 16)
    same = RandomResizedCrop((32, 40), scale=(1.0, 1.0), ratio=(1.25, 1.25))(x, rng=np.random.default_rng(0))
    torch.testing.assert_close(same, x)  # the whole frame at its own size
    nearest = RandomResizedCrop((16, 20), scale=(1.0, 1.0), ratio=(1.25, 1.25), interpolation="nearest")
    torch.testing.assert_close(nearest(x, rng=np.random.default_rng(0)), x[..., ::2, ::2])


def test_numpy_in_numpy_out_and_compositions():
    x, _ = _frames()
    arr = x.numpy().copy()
    for t in (RandomRoll(2), RandomRotate(20), RandomShear(20), Cutout(4), RandomResizedCrop(5),
              RandomTemporalDelete(2), FrameCompose([RandomRoll(1), Cutout(3)])):
        got = t(arr, rng=np.random.default_rng(3))
        want = t(x, rng=np.random.default_rng(3))
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, want.numpy())
    applied = sum(not torch.equal(FrameRandomApply(Cutout(4), 0.3)(x, rng=np.random.default_rng(i)), x)
                  for i in range(1000))
    assert abs(applied - 300) < 5 * math.sqrt(1000 * 0.3 * 0.7)
    choice = FrameRandomChoice([RandomRoll(0), Cutout(100)])
    zeroed = sum(bool(torch.all(choice(x, rng=np.random.default_rng(i)) == 0)) for i in range(1000))
    assert abs(zeroed - 500) < 5 * math.sqrt(250)
    assert apply_frame_transform(lambda f: f * 2, x, np.random.default_rng(0)).equal(x * 2)
    with pytest.raises(ConfigurationError, match="T_remain"):
        RandomTemporalDelete(5)(x, rng=np.random.default_rng(0))
    with pytest.raises(ConfigurationError, match="2-D sensors"):
        RandomRoll(2)(torch.zeros(4, 700), rng=np.random.default_rng(0))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gives_the_cpu_result():
    x, _ = _frames(t=4, c=2, h=34, w=34)
    for t in (RandomRoll(5), RandomRotate(30), RandomShear(30), Cutout(10), RandomResizedCrop(24),
              RandomTemporalDelete(3)):
        cpu = t(x, rng=np.random.default_rng(11))
        gpu = t(x.cuda(), rng=np.random.default_rng(11))
        assert gpu.is_cuda
        torch.testing.assert_close(gpu.cpu(), cpu)


def test_warps_of_thin_frames_zero_what_comes_from_outside():
    x = torch.ones(2, 1, 1, 6)
    out = RandomShear(degrees=(45, 45))(x, rng=np.random.default_rng(0))  # one row: no shift
    torch.testing.assert_close(out, x)
    row = torch.ones(1, 1, 1, 5)  # turned by 90 degrees about its centre: only the middle pixel stays inside
    out = RandomRotate(degrees=(90, 90))(row, rng=np.random.default_rng(0))
    assert torch.equal(out[0, 0, 0], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))
    col = torch.ones(1, 1, 5, 1)
    out = RandomRotate(degrees=(90, 90))(col, rng=np.random.default_rng(0))
    assert torch.equal(out[0, 0, :, 0], torch.tensor([0.0, 0.0, 1.0, 0.0, 0.0]))
