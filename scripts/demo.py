"""Demo: generated DVS128 Gesture download → shards → streamed frames, summary and preview picture."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(out: str = "demo_out") -> None:
    """Run the demo into folder ``out``."""
    from tests.gen_dvsgesture import write_gesture_download

    base = Path(out)
    raw, shards = base / "raw", base / "shards"
    shutil.rmtree(base, ignore_errors=True)
    print(f"1) writing a generated DVS128 Gesture download (AEDAT 3.1, tar.gz) to {raw}")
    gen = write_gesture_download(raw, n_train=4, n_test=2, events_per_sample=20000, seed=1)
    print(f"   {len(gen.recordings)} recordings, {(raw / 'DvsGesture.tar.gz').stat().st_size:,} bytes tar.gz")

    print(f"2) shardgen convert dvs128-gesture --raw {raw} --out {shards} --no-md5")
    print("   (--no-md5: generated files cannot carry IBM's md5 sums)")
    cmd = [sys.executable, "-m", "shardgen.cli", "convert", "dvs128-gesture", "--raw", str(raw), "--out", str(shards),
           "--no-md5", "--quiet", "--shard-size", "1M"]
    subprocess.run(cmd, check=True)

    print("3) streaming frames with EventShardDataset (2 DataLoader workers, T=16 split by number)")
    import torch
    from torch.utils.data import DataLoader

    from loader import EventShardDataset, pad_sequence_collate, padded_sequence_mask
    from loader.preview import save_frames_png

    ds = EventShardDataset(shards, split="train", data_type="frame", frames_number=16, split_by="number", seed=0)
    t0 = time.perf_counter()
    n = 0
    first = None
    for x, y in DataLoader(ds, batch_size=8, num_workers=2):
        n += x.shape[0]
        if first is None:
            first = (x[0].numpy(), int(y[0]))
    dt = time.perf_counter() - t0
    print(f"   {n} samples of shape {tuple(x.shape[1:])} float32 in {dt:.2f} s; classes: {len(ds.classes)}")

    dur = EventShardDataset(shards, split="test", data_type="frame", duration=250_000, shuffle=False)
    xb, yb, lengths = next(iter(DataLoader(dur, batch_size=4, collate_fn=pad_sequence_collate)))
    mask = padded_sequence_mask(lengths)
    print(f"   duration=250 ms: padded batch {tuple(xb.shape)}, lengths {lengths.tolist()}, mask {tuple(mask.shape)}")
    assert torch.equal(mask.sum(0), lengths)

    png = base / "preview.png"
    save_frames_png(first[0], str(png))
    print(f"4) preview of one sample (label {first[1]} = {ds.classes[first[1]]}): {png}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
