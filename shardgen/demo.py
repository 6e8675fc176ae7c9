"""The demo: generated DVS128 Gesture download → shards → streamed frames, info table, preview GIF, training batches.

Runs from an installed package: ``python -m shardgen.demo OUT``, ``shardgen demo OUT`` or ``scripts/demo.sh``.
The download is made by :mod:`shardgen.demo_data` (no real data, no network); pictures need the ``preview``
extra (Pillow) and are left out, with a note, without it. Streaming and training need torch.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from shardgen.demo_data import write_gesture_download


def main(out: str = "demo_out") -> int:
    """Run the demo into folder ``out`` (emptied first); returns 0.

    Parameters
    ----------
    out : str
        Folder for the generated download (``raw/``), the shard set (``shards/``) and the pictures.
    """
    from shardgen.cli import main as shardgen

    base = Path(out)
    raw, shards = base / "raw", base / "shards"
    shutil.rmtree(base, ignore_errors=True)
    print(f"1) writing a generated DVS128 Gesture download (AEDAT 3.1, tar.gz) to {raw}")
    gen = write_gesture_download(raw, n_train=4, n_test=2, events_per_sample=20000, seed=1)
    print(f"   {len(gen.recordings)} recordings, {(raw / 'DvsGesture.tar.gz').stat().st_size:,} bytes tar.gz")

    print(f"2) shardgen convert dvs128-gesture --raw {raw} --out {shards} --no-md5")
    print("   (--no-md5: generated files cannot carry IBM's md5 sums)")
    argv = ["convert", "dvs128-gesture", "--raw", str(raw), "--out", str(shards), "--no-md5", "--quiet",
            "--shard-size", "1M"]
    if shardgen(argv) != 0:
        raise SystemExit("demo: the conversion failed (see above)")

    print("3) streaming frames with EventShardDataset (2 DataLoader workers, T=16 split by number)")
    import torch
    from torch.utils.data import DataLoader

    from loader import EventShardDataset, pad_sequence_collate, padded_sequence_mask
    from shardgen.inspect import info_table, preview

    ds = EventShardDataset(shards, split="train", data_type="frame", frames_number=16, split_by="number", seed=0)
    t0 = time.perf_counter()
    n = 0
    for x, _ in DataLoader(ds, batch_size=8, num_workers=2):
        n += x.shape[0]
    dt = time.perf_counter() - t0
    print(f"   {n} samples of shape {tuple(x.shape[1:])} float32 in {dt:.2f} s; classes: {len(ds.classes)}")

    dur = EventShardDataset(shards, split="test", data_type="frame", duration=250_000, shuffle=False)
    xb, yb, lengths = next(iter(DataLoader(dur, batch_size=4, collate_fn=pad_sequence_collate)))
    mask = padded_sequence_mask(lengths)
    print(f"   duration=250 ms: padded batch {tuple(xb.shape)}, lengths {lengths.tolist()}, mask {tuple(mask.shape)}")
    assert torch.equal(mask.sum(0), lengths)

    print(f"4) shardgen info {shards}")
    print("\n".join(f"   {line}" if line else "" for line in info_table(shards).splitlines()))

    gif = base / "preview.gif"
    print(f"5) shardgen preview {shards} --split train --index 0 --frames-number 20 --split-by number --out {gif}")
    try:
        got = preview(shards, "train", 0, gif, frames_number=20, split_by="number")
        preview(shards, "train", 0, base / "preview.png", frames_number=20, split_by="number")
        print(f"   wrote {gif} (and {base / 'preview.png'}): {got['key']}, label {got['label']} ({got['class']}), "
              f"{got['events']:,} events")
    except ImportError as exc:  # Pillow is the preview extra
        print(f"   skipped: {exc}")

    print("6) a short training loop on the streamed shards (T=16, 2 workers, batches of 8)")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(2), torch.nn.Linear(2 * 128 * 128, len(ds.classes)))
    opt = torch.optim.SGD(net.parameters(), lr=0.01)
    ds.set_epoch(1)
    for step, (x, label) in enumerate(DataLoader(ds, batch_size=8, num_workers=2)):
        loss = torch.nn.functional.cross_entropy(net(x).mean(1), label)  # logits averaged over time steps
        opt.zero_grad()
        loss.backward()
        opt.step()
        print(f"   batch {step}: x {tuple(x.shape)} {x.dtype}, labels {label.tolist()}, loss {loss.item():.3f}")
        if step == 2:
            break
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 2 or sys.argv[1:2] in (["-h"], ["--help"]):
        print("usage: python -m shardgen.demo [OUT]   (default OUT: demo_out)")
        sys.exit(0 if len(sys.argv) == 2 else 2)
    sys.exit(main(*sys.argv[1:2]))
