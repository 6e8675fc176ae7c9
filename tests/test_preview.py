"""Pictures: play_frame's GIF (SpikingJelly's colours, normalised counts), the PNG grid, save_picture."""

from __future__ import annotations

import gc

import numpy as np
import pytest
import torch
from PIL import Image

from loader import play_frame
from loader.preview import frames_to_images, frames_to_rgb, save_frames_gif, save_frames_png, save_picture

H, W = 20, 30


def _frames(t: int = 4) -> np.ndarray:
    f = np.zeros((t, 2, H, W), np.float32)
    for i in range(t):
        f[i, 0, 2 + i, 3] = 1  # one OFF event per frame, at a different row each time
        f[i, 1, 10, 5 + i] = 50 * (i + 1)  # one busy ON pixel
        f[i, 1, 15, 20] = 1  # one lone ON event
    return f


def _gif_frames(path) -> list[np.ndarray]:
    out = []
    with Image.open(path) as im:
        for k in range(im.n_frames):
            im.seek(k)
            out.append(np.asarray(im.convert("RGB")))
    return out


def test_colours_and_normalisation():
    imgs = frames_to_images(_frames())
    assert imgs.shape == (4, H, W, 3) and imgs.dtype == np.uint8
    assert not imgs[..., 0].any()  # red unused: channel 0 green, channel 1 blue (SpikingJelly)
    for i in range(4):
        assert imgs[i, 2 + i, 3, 1] >= 64 and imgs[i, 2 + i, 3, 2] == 0  # lone OFF event visible, green
        assert imgs[i, 15, 20, 2] >= 64 and imgs[i, 15, 20, 1] == 0  # lone ON event visible despite a busy pixel
        assert imgs[i, 10, 5 + i, 2] == 255
    assert imgs.sum(axis=-1).astype(bool).sum() == 4 * 3  # nothing drawn where no event is
    raw = frames_to_images(_frames(), normalize=None)
    assert raw[0, 15, 20, 2] == 255 and raw[0, 10, 5, 2] == 255  # clipped at 1
    per_sample = frames_to_images(_frames(), normalize="sample")
    assert per_sample[0, 10, 5, 2] < per_sample[3, 10, 8, 2] == 255  # brightness comparable across frames
    with pytest.raises(ValueError):
        frames_to_images(_frames(), normalize="bogus")
    with pytest.raises(ValueError, match=r"\[T, 2, H, W\]"):
        frames_to_images(np.zeros((3, H, W)))


def test_play_frame_gif(tmp_path):
    f = _frames(5)
    path = tmp_path / "a.gif"
    assert play_frame(torch.from_numpy(f), save_gif_to=str(path)) is None  # torch tensors like SpikingJelly
    frames = _gif_frames(path)
    assert len(frames) == 5
    s = frames[0].shape[0] // H
    assert s >= 2 and frames[0].shape == (H * s, W * s, 3)  # enlarged, no caption
    for i, img in enumerate(frames):
        assert img[(2 + i) * s, 3 * s, 1] >= 60 and img[(2 + i) * s, 3 * s, 0] < 30  # green OFF event
        assert img[15 * s, 20 * s, 2] >= 60  # blue ON event
        assert img[0, 0].max() < 30  # black background
    with Image.open(path) as im:
        assert im.info.get("loop") == 0 and im.info.get("duration") == 100


@pytest.mark.filterwarnings("ignore:Animation was deleted without rendering")
def test_play_frame_without_file_returns_animation():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anim = play_frame(_frames(3))  # on a non-interactive backend it returns at once
    assert anim is not None
    del anim
    plt.close("all")
    gc.collect()  # the animation's reference cycles go here, under this test's warning filter


def test_png_grid(tmp_path):
    f = _frames(7)
    rgb = frames_to_rgb(f, columns=3, gap=2)
    assert rgb.shape == (3 * (H + 2) + 2, 3 * (W + 2) + 2, 3)
    assert rgb[2 + 2, 2 + 3, 1] >= 64  # frame 0's OFF event in the first tile
    tile6 = rgb[2 + 2 * (H + 2) :, 2 :][:H, :W]
    np.testing.assert_array_equal(tile6, frames_to_images(f)[6])
    path = tmp_path / "grid.png"
    save_frames_png(f, path, columns=4, scale=3, title="a title\nsecond line")
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width == (4 * (W + 2) + 2) * 3 and im.height > (2 * (H + 2) + 2) * 3
    save_frames_png(f, tmp_path / "plain.png")  # the old call (scripts/demo.py) still works


def test_save_picture_by_suffix(tmp_path):
    f = _frames(3)
    assert save_picture(f, tmp_path / "x.GIF", title="t") == str(tmp_path / "x.GIF")
    with Image.open(tmp_path / "x.GIF") as im:
        assert im.format == "GIF" and im.n_frames == 3
    save_picture(f, tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert im.format == "PNG"
    with pytest.raises(ValueError, match=r"\.gif or \.png"):
        save_picture(f, tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="fps"):
        save_frames_gif(f, tmp_path / "y.gif", fps=0)
    with pytest.raises(ValueError, match="T = 0"):
        save_picture(np.zeros((0, 2, H, W)), tmp_path / "z.png")
