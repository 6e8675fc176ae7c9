"""Conversion spread over jobs (``--num-jobs/--job-index``) and ``shardgen merge``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import zstandard

from loader.format import decode_sample
from loader.shards import open_shard_set
from shardgen.cli import main
from shardgen.jobs import job_dir, job_of, merge
from tests.gen_dvsgesture import write_gesture_download

JOBS = 3


def _samples(out: Path) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    ss = open_shard_set(out)
    dctx = zstandard.ZstdDecompressor()
    got: dict[str, dict[str, dict[str, np.ndarray]]] = {}
    for split in ss.index["splits"]:
        got[split] = {}
        for shard in ss.shards(split):
            for frame in ss.iter_frames(shard, 0, shard["samples"]):
                key, ev, _ = decode_sample(bytes(frame), dctx)
                assert key not in got[split]
                got[split][key] = ev
    return got


@pytest.fixture(scope="module")
def download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jobs") / "raw"
    write_gesture_download(root, n_train=5, n_test=3, events_per_sample=800, seed=5, gzip_level=1)
    return root


@pytest.fixture(scope="module")
def single(download: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single")
    assert main(["convert", "dvs128-gesture", "--raw", str(download), "--out", str(out), "--no-md5", "--quiet"]) == 0
    return out


def _convert_jobs(download: Path, out: Path, jobs: int = JOBS) -> None:
    for i in range(jobs):
        args = ["convert", "dvs128-gesture", "--raw", str(download), "--out", str(out), "--no-md5", "--quiet"]
        assert main([*args, "--num-jobs", str(jobs), "--job-index", str(i)]) == 0


def test_jobs_then_merge_equal_single_conversion(download: Path, single: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    _convert_jobs(download, out)
    assert not (out / "index.json").exists()  # no index before the merge: the set is not complete
    assert main(["merge", str(out)]) == 0
    got, want = _samples(out), _samples(single)
    assert got.keys() == want.keys()
    for split in want:
        assert got[split].keys() == want[split].keys()
        for key, ev in want[split].items():
            for col in "txyp":
                np.testing.assert_array_equal(got[split][key][col], ev[col])
    merged = json.loads((out / "index.json").read_text())
    single_ix = json.loads((single / "index.json").read_text())
    assert merged["source"]["jobs"] == JOBS
    for split in single_ix["splits"]:
        assert merged["splits"][split]["samples"] == single_ix["splits"][split]["samples"]
        assert merged["splits"][split]["events"] == single_ix["splits"][split]["events"]
        assert all(s["file"].startswith("job-") for s in merged["splits"][split]["shards"])
    assert merged["summary"]["samples_per_class"] == single_ix["summary"]["samples_per_class"]
    assert merged["summary"]["empty_windows"] == single_ix["summary"]["empty_windows"]
    assert main(["verify", str(out)]) == 0


def test_each_recording_goes_to_exactly_one_job(download: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    _convert_jobs(download, out)
    seen: dict[str, int] = {}
    for i in range(JOBS):
        part = json.loads((out / job_dir(JOBS, i) / "index.json").read_text())
        assert part["job"] == {"index": i, "count": JOBS}
        for split in part["splits"]:
            for frame_key in _samples(out / job_dir(JOBS, i))[split]:
                stem = frame_key.split("/", 1)[1].rsplit("_", 1)[0]
                assert job_of(stem, JOBS) == i
                seen.setdefault(stem, i)
                assert seen[stem] == i


def test_merge_refuses_missing_or_unfinished_parts(download: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "set"
    _convert_jobs(download, out)
    shutil.rmtree(out / job_dir(JOBS, 1))
    assert main(["merge", str(out)]) != 0
    assert f"part {job_dir(JOBS, 1)} is missing" in capsys.readouterr().err
    assert not (out / "index.json").exists()
    _convert_jobs(download, out)
    (out / job_dir(JOBS, 2) / "index.json").unlink()
    assert main(["merge", str(out)]) != 0
    assert "not finished" in capsys.readouterr().err
    assert not (out / "index.json").exists()


def test_merge_refuses_mixed_job_counts_and_empty_folder(download: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    _convert_jobs(download, out, jobs=2)
    _convert_jobs(download, out, jobs=3)
    with pytest.raises(ValueError, match="different job counts"):
        merge(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no job-IIII-of-JJJJ parts"):
        merge(tmp_path / "empty")


def test_bad_job_index(download: Path, tmp_path: Path, capsys) -> None:
    args = ["convert", "dvs128-gesture", "--raw", str(download), "--out", str(tmp_path / "o"), "--no-md5", "--quiet"]
    assert main([*args, "--num-jobs", "2", "--job-index", "2"]) != 0
    assert "--job-index must lie in [0, --num-jobs)" in capsys.readouterr().err


def test_merged_set_streams_every_sample_once(download: Path, tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    from loader import EventShardDataset

    out = tmp_path / "set"
    _convert_jobs(download, out)
    merge(out)
    ds = EventShardDataset(out, split="train", return_key=True, shuffle=True, seed=3)
    keys = [key for _, _, key in DataLoader(ds, batch_size=None, num_workers=2)]
    assert sorted(keys) == sorted(_samples(out)["train"])
    assert len(keys) == len(set(keys)) == len(ds)
