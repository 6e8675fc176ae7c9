"""Worker script of ``tests/test_distributed.py``, started by ``torchrun --nproc_per_node=2``.

Each rank joins a gloo process group (CPU), reads the shard set through a DataLoader with two
workers for several settings and writes the keys it got, in order, to ``OUT/rank<r>.json``:
``{"rank", "world_size", "runs": {name: {"keys", "samples_per_rank"}}, "all_counts": {name: [...]}}``.
``all_counts`` holds every rank's count as exchanged over the process group.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch.distributed as dist
from torch.utils.data import DataLoader

from loader import EventShardDataset

# name -> (even, epoch); "pad0" twice with fresh datasets and loaders: the order must not change
RUNS = {"pad0": ("pad", 0), "pad0_again": ("pad", 0), "pad1": ("pad", 1), "drop0": ("drop", 0), "none0": (None, 0)}


def keys_only(batch: list[tuple]) -> list[str]:
    """Collate a batch of ``(x, label, key)`` items into its keys (nothing else is needed)."""
    return [item[2] for item in batch]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--runs", default=",".join(RUNS), help="comma-separated names from RUNS")
    args = parser.parse_args()
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    assert rank == int(os.environ["RANK"]) and world == int(os.environ["WORLD_SIZE"])
    result: dict = {"rank": rank, "world_size": world, "runs": {}, "all_counts": {}}
    for name in args.runs.split(","):
        even, epoch = RUNS[name]
        ds = EventShardDataset(args.root, shuffle=True, seed=args.seed, return_key=True, shuffle_buffer=4, even=even)
        ds.set_epoch(epoch)
        dl = DataLoader(ds, batch_size=3, num_workers=args.workers, collate_fn=keys_only)
        keys = [k for batch in dl for k in batch]
        counts: list = [None] * world
        dist.all_gather_object(counts, len(keys))
        result["runs"][name] = {"keys": keys, "samples_per_rank": ds.samples_per_rank()}
        result["all_counts"][name] = counts
    Path(args.out, f"rank{rank}.json").write_text(json.dumps(result))
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
