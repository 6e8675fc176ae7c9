"""SpikingJelly's neuromorphic-datasets tutorial, rewritten against a shard set, and README.md's code.

The tutorial (``docs/source/activation_based_en/neuromorphic_datasets.rst``) loads
``DVS128Gesture(root_dir, train=True, ...)`` and indexes ``train_set[0]``; here the same steps run
on ``EventShardDataset(shard_set, split="train", ...)``, which streams, so ``next(iter(...))``
takes the first sample. Every step's printed output and values are checked.

Every ```` ```python ```` block of README.md runs as its own test (``test_readme_block``) on a
converted generated DVS128 Gesture download, with the README's shard-set path
``/data/dvsgesture-shards`` replaced by it and the working directory in a temporary folder. A block
whose first line says ``# not run by the tests`` (torchrun, S3) is skipped, and the skip names it.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from loader import (
    EventShardDataset,
    integrate_events_segment_to_frame,
    pad_sequence_collate,
    padded_sequence_mask,
)


def _first(ds):
    return next(iter(ds))


def _n_events(truth, key):
    return len(truth[key]["events"]["t"])


# --------------------------------------------------------------------------- events


def test_events(small_shard_set, capsys):
    root_dir, truth = small_shard_set
    train_set = EventShardDataset(root_dir, split="train", data_type="event", shuffle=False)
    event, label = _first(train_set)
    for k in event.keys():
        print(k, event[k].shape, event[k])
    print("label", label)

    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["t", "x", "y", "p", "label"]
    first_key = next(iter(truth))
    want = truth[first_key]["events"]
    assert lines[-1] == f"label {truth[first_key]['label']}"
    for k in "txyp":
        assert event[k].shape == want[k].shape
        np.testing.assert_array_equal(event[k], want[k])
    assert np.all(np.diff(event["t"]) >= 0)
    assert event["x"].max() < 128 and event["y"].max() < 128 and set(np.unique(event["p"])) <= {0, 1}


# --------------------------------------------------------------------------- fixed number of frames


@pytest.mark.parametrize("split_by", ["number", "time"])
def test_frames_number_20(small_shard_set, capsys, split_by):
    root_dir, truth = small_shard_set
    train_set = EventShardDataset(
        root_dir, split="train", data_type="frame", frames_number=20, split_by=split_by, shuffle=False, return_key=True
    )
    frame, label, key = _first(train_set)
    print(frame.shape)
    assert capsys.readouterr().out.strip() == "(20, 2, 128, 128)"

    counts = {}
    for frame, label, key in train_set:
        assert frame.shape == (20, 2, 128, 128) and frame.dtype == np.float32
        assert label == truth[key]["label"]
        counts[key] = frame.sum(axis=(1, 2, 3))
        assert counts[key].sum() == _n_events(truth, key)  # every event in exactly one frame
        assert frame[:, 1].sum() == truth[key]["events"]["p"].sum()
    assert len(counts) == 30
    if split_by == "number":
        for key, c in counts.items():
            d = _n_events(truth, key) // 20
            assert (c[:-1] == d).all()  # SpikingJelly: frame j holds events [j*d, (j+1)*d)


# --------------------------------------------------------------------------- fixed duration


def test_fixed_duration_with_padding(small_shard_set, capsys):
    root_dir, truth = small_shard_set
    train_set = EventShardDataset(root_dir, split="train", data_type="frame", duration=1_000_000, shuffle=False)
    train_data_loader = DataLoader(train_set, collate_fn=pad_sequence_collate, batch_size=5)
    batches = 0
    events_seen = 0
    for x, y, x_len in train_data_loader:
        print(x.shape, x_len)
        assert x.dtype == torch.float32 and x.shape[0] == 5 and tuple(x.shape[2:]) == (2, 128, 128)
        assert x.shape[1] == int(x_len.max())
        mask = padded_sequence_mask(x_len)  # [T, N]
        assert mask.shape == (x.shape[1], 5)
        # padded time steps are zero, so the masked sum is the sum over everything
        assert torch.equal((x * mask.t()[:, :, None, None, None]).sum(), x.sum())
        for n in range(5):
            assert mask[:, n].sum() == x_len[n]
            assert not x[n, int(x_len[n]) :].any()
        assert y.shape == (5,) and y.dtype == torch.int64
        events_seen += int(x.sum())
        batches += 1
    assert batches == 6
    assert events_seen == sum(_n_events(truth, k) for k, v in truth.items() if v["split"] == "train")
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 6 and all(line.startswith("torch.Size([5, ") for line in printed)


# --------------------------------------------------------------------------- custom integration


def integrate_events_to_2_frames_randomly(events: dict, H: int, W: int) -> np.ndarray:
    """The tutorial's example: split the events at a random index and integrate each part."""
    n = len(events["t"])
    index_split = np.random.randint(low=0, high=max(n, 1))
    x, y, p = (events[key] for key in ("x", "y", "p"))
    return np.stack(
        [
            integrate_events_segment_to_frame(x, y, p, H, W, 0, index_split),
            integrate_events_segment_to_frame(x, y, p, H, W, index_split, n),
        ]
    )


def test_custom_integrate_function(small_shard_set):
    root_dir, truth = small_shard_set
    train_set = EventShardDataset(
        root_dir,
        split="train",
        data_type="frame",
        custom_integrate_function=integrate_events_to_2_frames_randomly,
        shuffle=False,
        return_key=True,
    )
    np.random.seed(0)
    items = list(train_set)

    np.random.seed(0)  # replay the split indices the function drew, sample by sample
    splits = []
    for frames, label, key in items:
        ev = truth[key]["events"]
        n = len(ev["t"])
        j = np.random.randint(low=0, high=max(n, 1))
        splits.append(j / max(n, 1))
        assert frames.shape == (2, 2, 128, 128) and frames.dtype == np.float32
        assert frames[0].sum() == j and frames[1].sum() == n - j
        assert frames.sum() == n
        x, y, p = ev["x"], ev["y"], ev["p"]
        np.testing.assert_array_equal(frames[0], integrate_events_segment_to_frame(x, y, p, 128, 128, 0, j))
        np.testing.assert_array_equal(frames[1], integrate_events_segment_to_frame(x, y, p, 128, 128, j, n))
        assert label == truth[key]["label"]
    assert len(items) == 30
    assert len({round(s, 2) for s in splits}) > 5  # the split point is random


def test_custom_integrate_function_in_workers(small_shard_set):
    root_dir, truth = small_shard_set
    train_set = EventShardDataset(
        root_dir,
        split="train",
        data_type="frame",
        custom_integrate_function=integrate_events_to_2_frames_randomly,
        return_key=True,
    )
    items = list(DataLoader(train_set, batch_size=None, num_workers=2))
    assert len(items) == 30
    for frames, _, key in items:
        assert tuple(frames.shape) == (2, 2, 128, 128)
        assert int(frames.sum()) == _n_events(truth, key)
        assert (frames.sum(dim=0) == torch.from_numpy(_whole_frame(truth[key]["events"]))).all()


def _whole_frame(ev):
    return integrate_events_segment_to_frame(ev["x"], ev["y"], ev["p"], 128, 128)


# --------------------------------------------------------------------------- README.md code blocks

README = Path(__file__).resolve().parents[1] / "README.md"
README_ROOT = "/data/dvsgesture-shards"
NOT_RUN = "# not run by the tests"


def readme_blocks() -> list[tuple[str, str]]:
    """``(id, code)`` of every python block of README.md; id = the section heading and a counter."""
    blocks = []
    heading = "top"
    seen: dict[str, int] = {}
    lines = README.read_text(encoding="utf-8").splitlines()
    i = 0
    fenced = False  # inside a non-python block (its comments are not headings)
    while i < len(lines):
        line = lines[i]
        if line.startswith("```") and line.strip() != "```python":
            fenced = not fenced
        elif line.startswith("#") and not fenced:
            heading = re.sub(r"[^a-z0-9]+", "-", line.lstrip("#").strip().lower()).strip("-")
        if line.strip() == "```python":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            seen[heading] = seen.get(heading, 0) + 1
            blocks.append((f"{heading}-{seen[heading]}", "\n".join(lines[i + 1 : j]) + "\n"))
            i = j
        i += 1
    return blocks


# what a block's output must contain (by block id); every block must at least run
README_OUTPUT = {
    "events-1": ["t ", "x ", "y ", "p ", "label "],
    "frames-by-number-and-by-time-1": ["(20, 2, 128, 128)"],
    "fixed-duration-padding-and-mask-1": ["torch.Size([5, "],
    "training-shuffle-workers-the-streaming-dataset-1": ["torch.Size([8, 16, 2, 128, 128])", "epoch 1: loss"],
    "coming-from-tonic-1": ["torch.Size([4, 10, 2, 128, 128])"],
    "pictures-1": ["'frames': 20", "dataset     dvs128-gesture"],
}
README_FILES = {
    "frames-by-number-and-by-time-1": ["sample.gif"],
    "custom-integration-1": ["custom.gif"],
    "pictures-1": ["grid.png", "sample.png"],
}


@pytest.fixture(scope="module")
def readme_shard_set(tmp_path_factory):
    """A converted generated DVS128 Gesture download: the README's ``/data/dvsgesture-shards``."""
    from shardgen.convert import convert
    from tests.gen_dvsgesture import write_gesture_download

    root = tmp_path_factory.mktemp("readme")
    gen = write_gesture_download(root / "raw", n_train=3, n_test=1, events_per_sample=1500, seed=2)
    out = root / "dvsgesture-shards"
    convert("dvs128-gesture", gen.root, out, workers=1, check_md5=False, progress=False, shard_size=1 << 16)
    return out


def test_readme_has_the_blocks():
    ids = [i for i, _ in readme_blocks()]
    assert set(README_OUTPUT) | set(README_FILES) <= set(ids)
    skipped = [i for i, code in readme_blocks() if code.startswith(NOT_RUN)]
    assert skipped == ["multi-node-training-from-object-storage-1", "augmentation-1", "frames-on-the-gpu-1"]
    assert README.read_text(encoding="utf-8").startswith("# eventshard\n\n```bash\nscripts/demo.sh")


@pytest.mark.parametrize("block_id, code", readme_blocks(), ids=[i for i, _ in readme_blocks()])
def test_readme_block(block_id, code, readme_shard_set, tmp_path, monkeypatch):
    if code.startswith(NOT_RUN):
        pytest.skip(f"README block {block_id}: {code.splitlines()[0][2:]}")
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    assert README_ROOT in code, f"block {block_id} does not use the shard set {README_ROOT}"
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(README_ROOT, str(readme_shard_set)), f"README.md:{block_id}", "exec"), {})
    printed = out.getvalue()
    for text in README_OUTPUT.get(block_id, []):
        assert text in printed, f"{block_id}: {text!r} not in the output:\n{printed}"
    for name in README_FILES.get(block_id, []):
        assert (tmp_path / name).stat().st_size > 0
