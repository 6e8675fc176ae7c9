"""Conversion spread over jobs (``--num-jobs/--job-index``, the schedulers' variables) and ``shardgen merge``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from loader.errors import ConfigurationError
from shardgen.balance import JobShare
from shardgen.cli import main
from shardgen.jobs import job_dir, merge
from shardgen.scheduler import resolve_jobs
from tests.conftest import read_split
from tests.gen_classfolders import write_ncaltech101
from tests.gen_dvsgesture import write_gesture_download

JOBS = 3
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def download(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("jobs") / "raw"
    write_gesture_download(root, n_train=5, n_test=3, events_per_sample=800, seed=5, gzip_level=1)
    return root


@pytest.fixture(scope="module")
def single(download: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("single")
    assert main(["convert", "dvs128-gesture", "--raw", str(download), "--out", str(out), "--no-md5", "--quiet",
                 "--workers", "2"]) == 0
    return out


@pytest.fixture(scope="module")
def caltech(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A class-folder download (many small files of sizes that differ ~100x) and its one-job conversion."""
    raw = tmp_path_factory.mktemp("caltech") / "raw"
    write_ncaltech101(raw, per_class=12, max_events=600)
    out = tmp_path_factory.mktemp("caltech_single")
    assert main(["convert", "n-caltech101", "--raw", str(raw), "--out", str(out), "--no-md5", "--quiet",
                 "--workers", "1"]) == 0
    return raw, out


def _convert_jobs(dataset: str, raw: Path, out: Path, jobs: int = JOBS) -> None:
    for i in range(jobs):
        args = ["convert", dataset, "--raw", str(raw), "--out", str(out), "--no-md5", "--quiet", "--workers", "1"]
        assert main([*args, "--num-jobs", str(jobs), "--job-index", str(i)]) == 0


def _assert_same_facade(got: Path, want: Path, splits: list[str]) -> None:
    """``ds[i]`` of every split equal for every ``i``: the same key, label and events."""
    for split in splits:
        a, b = read_split(got, split), read_split(want, split)
        assert list(a) == list(b), split  # the same keys in the same (dataset) order
        for key, (ev, label) in b.items():
            assert a[key][1] == label
            for col in "txyp":
                np.testing.assert_array_equal(a[key][0][col], ev[col], err_msg=f"{split} {key} {col}")


@pytest.mark.parametrize("which", ["dvs128-gesture", "n-caltech101"])
def test_jobs_then_merge_give_the_single_conversions_items(which: str, download: Path, single: Path, caltech,
                                                           tmp_path: Path) -> None:
    raw, ref = (download, single) if which == "dvs128-gesture" else caltech
    out = tmp_path / "set"
    _convert_jobs(which, raw, out)
    assert not (out / "index.json").exists()  # no index before the merge: the set is not complete
    assert main(["merge", str(out)]) == 0
    merged = json.loads((out / "index.json").read_text())
    single_ix = json.loads((ref / "index.json").read_text())
    assert sorted(merged["splits"]) == sorted(single_ix["splits"])
    _assert_same_facade(out, ref, list(single_ix["splits"]))  # train, test (and the view "all" for caltech)
    assert merged["source"]["jobs"] == JOBS
    for split in single_ix["splits"]:
        assert merged["splits"][split]["samples"] == single_ix["splits"][split]["samples"]
        assert all(s["file"].startswith("job-") for s in merged["splits"][split]["shards"])
    assert merged["summary"]["samples_per_class"] == single_ix["summary"]["samples_per_class"]
    assert main(["verify", str(out)]) == 0


def test_merged_set_streams_every_sample_once_and_mixes_classes(caltech, tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    from loader import EventShardDataset

    raw, _ = caltech
    out = tmp_path / "set"
    _convert_jobs("n-caltech101", raw, out)
    merge(out)
    ds = EventShardDataset(out, split="train", data_type="event", return_key=True, shuffle=False)
    stream = [(key, int(label)) for _, label, key in DataLoader(ds, batch_size=None, num_workers=2)]
    keys = [k for k, _ in stream]
    assert sorted(keys) == sorted(read_split(out, "train")) and len(keys) == len(set(keys))
    # unshuffled, the stream is each job's stored (permuted) order: classes mix within the first part
    first_part = [label for k, label in stream[: len(stream) // JOBS]]
    runs = 1 + sum(a != b for a, b in zip(first_part, first_part[1:], strict=False))
    assert runs > 2 * len(set(first_part))


def test_each_input_file_goes_to_exactly_one_job_and_bytes_are_recorded(caltech, tmp_path: Path) -> None:
    raw, _ = caltech
    out = tmp_path / "set"
    _convert_jobs("n-caltech101", raw, out)
    import zipfile

    with zipfile.ZipFile(raw / "Caltech101.zip") as zf:  # the sizes, read independently of shardgen
        size = {"/".join(i.filename.split("/")[-2:])[: -len(".bin")]: i.file_size for i in zf.infolist()
                if i.filename.endswith(".bin")}
    seen: dict[str, int] = {}
    for i in range(JOBS):
        part = out / job_dir(JOBS, i)
        ix = json.loads((part / "index.json").read_text())
        keys = [k for split in ("train", "test") for k in read_split(part, split)]
        for k in keys:
            assert k not in seen, f"{k} in jobs {seen[k]} and {i}"
            seen[k] = i
        assert ix["job"] == {"index": i, "count": JOBS, "input_files": len(keys),
                             "input_bytes": sum(size[k] for k in keys)}
    assert sorted(seen) == sorted(size)


def test_balance_by_bytes_on_skewed_sizes() -> None:
    rng = np.random.default_rng(7)
    for jobs in (3, 4, 16):
        sizes = (rng.uniform(1, 10, size=500) ** 2).astype(int) * 1000  # sizes that differ up to 100x
        listing = [(f"cls{i % 7}/f{i:04d}", int(s)) for i, s in enumerate(sizes)]
        planned = [JobShare(jobs, j, listing) for j in range(jobs)]
        loads = [sum(s for name, s in listing if share(name)) for share in planned]
        assert sum(loads) == sizes.sum()
        assert max(loads) <= 1.3 * sizes.sum() / jobs, loads
        online = [JobShare(jobs, j) for j in range(jobs)]  # a streamed archive: assigned in the order offered
        loads = [sum(s for name, s in listing if share(name, s)) for share in online]
        assert sum(loads) == sizes.sum() and max(loads) <= 1.3 * sizes.sum() / jobs, loads


def test_rerun_of_one_job_gives_byte_identical_parts(caltech, tmp_path: Path) -> None:
    raw, _ = caltech
    out = tmp_path / "set"
    _convert_jobs("n-caltech101", raw, out)

    def files(part: Path) -> dict[str, bytes]:
        return {str(p.relative_to(part)): p.read_bytes() for p in sorted(part.rglob("*")) if p.is_file()}

    before = files(out / job_dir(JOBS, 1))
    shutil.rmtree(out / job_dir(JOBS, 1))  # the failed job's part is gone (or half there): the scheduler reruns it
    args = ["convert", "n-caltech101", "--raw", str(raw), "--out", str(out), "--no-md5", "--quiet", "--workers", "2"]
    assert main([*args, "--num-jobs", str(JOBS), "--job-index", "1"]) == 0
    assert files(out / job_dir(JOBS, 1)) == before
    assert main([*args, "--num-jobs", str(JOBS), "--job-index", "1"]) == 0  # over a finished part: the same again
    assert files(out / job_dir(JOBS, 1)) == before


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    full.update(env, PYTHONPATH=str(REPO))
    return subprocess.Popen([sys.executable, "-m", "shardgen.cli", *args], env=full, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("scheduler", ["slurm", "kubernetes"])
def test_array_jobs_without_flags_run_concurrently_into_one_out(scheduler: str, caltech, tmp_path: Path) -> None:
    """Three real processes started as a SLURM array / Kubernetes Indexed Job would start them, at once."""
    raw, ref = caltech
    out = tmp_path / "set"
    args = ["convert", "n-caltech101", "--raw", str(raw), "--out", str(out), "--no-md5", "--quiet", "--workers", "1"]
    procs = []
    for i in range(JOBS):
        if scheduler == "slurm":  # sbatch --array=5-7: ids 5..7, min 5
            env = {"SLURM_ARRAY_TASK_ID": str(5 + i), "SLURM_ARRAY_TASK_MIN": "5", "SLURM_ARRAY_TASK_MAX": "7",
                   "SLURM_ARRAY_TASK_COUNT": str(JOBS), "SLURM_JOB_ID": "99"}
            procs.append(_cli(env, *args))
        else:
            procs.append(_cli({"JOB_COMPLETION_INDEX": str(i)}, *args, "--num-jobs", str(JOBS)))
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("job-")) == [job_dir(JOBS, i) for i in range(3)]
    assert main(["merge", str(out)]) == 0
    _assert_same_facade(out, ref, ["train", "test"])


def test_scheduler_variables_resolve_and_mismatches_fail(download: Path, tmp_path: Path) -> None:
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "16", "SLURM_ARRAY_TASK_MIN": "0",
             "SLURM_ARRAY_TASK_MAX": "15"}
    assert resolve_jobs(None, None, slurm) == (16, 3)
    assert resolve_jobs(16, 3, slurm) == (16, 3)  # flags that agree
    assert resolve_jobs(None, None, {"SLURM_ARRAY_TASK_ID": "12", "SLURM_ARRAY_TASK_MIN": "10",
                                     "SLURM_ARRAY_TASK_MAX": "13"}) == (4, 2)  # count from MIN/MAX
    assert resolve_jobs(1, None, slurm) == (1, 0)  # one whole conversion asked for by name
    assert resolve_jobs(None, None, {"JOB_COMPLETION_INDEX": "2", "JOB_COMPLETIONS": "5"}) == (5, 2)
    assert resolve_jobs(5, None, {"JOB_COMPLETION_INDEX": "2"}) == (5, 2)
    assert resolve_jobs(None, None, {}) == (1, 0)
    with pytest.raises(ConfigurationError, match=r"--job-index 2 but the scheduler says 3 \(SLURM_ARRAY_TASK_ID"):
        resolve_jobs(16, 2, slurm)
    with pytest.raises(ConfigurationError, match="--num-jobs 8 but the scheduler says 16"):
        resolve_jobs(8, None, slurm)
    with pytest.raises(ConfigurationError, match="no job count: pass --num-jobs"):
        resolve_jobs(None, None, {"JOB_COMPLETION_INDEX": "2"})
    with pytest.raises(ConfigurationError, match="steps or gaps"):
        resolve_jobs(None, None, {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0",
                                  "SLURM_ARRAY_TASK_MAX": "14", "SLURM_ARRAY_TASK_COUNT": "8"})
    with pytest.raises(ConfigurationError, match="got 5 of 3"):
        resolve_jobs(None, None, {"JOB_COMPLETION_INDEX": "5", "JOB_COMPLETIONS": "3"})
    # the command line, in a real process with the variables set: one clear line, no part written
    p = _cli({"JOB_COMPLETION_INDEX": "1", "JOB_COMPLETIONS": "3"}, "convert", "dvs128-gesture", "--raw",
             str(download), "--out", str(tmp_path / "o"), "--no-md5", "--quiet", "--num-jobs", "2")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1
    assert err.strip().splitlines()[-1] == ("shardgen: error: --num-jobs 2 but the scheduler says 3 "
                                           "(JOB_COMPLETION_INDEX/JOB_COMPLETIONS): drop the flag or start the job "
                                           "with the matching array size")
    assert not (tmp_path / "o").exists()


def test_merge_refuses_missing_or_unfinished_parts(download: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "set"
    _convert_jobs("dvs128-gesture", download, out)
    shutil.rmtree(out / job_dir(JOBS, 1))
    assert main(["merge", str(out)]) != 0
    assert f"part {job_dir(JOBS, 1)} is missing" in capsys.readouterr().err
    assert not (out / "index.json").exists()
    _convert_jobs("dvs128-gesture", download, out)
    (out / job_dir(JOBS, 2) / "index.json").unlink()
    assert main(["merge", str(out)]) != 0
    assert "not finished" in capsys.readouterr().err
    assert not (out / "index.json").exists()


def test_merge_refuses_mixed_job_counts_and_empty_folder(download: Path, tmp_path: Path) -> None:
    out = tmp_path / "set"
    _convert_jobs("dvs128-gesture", download, out, jobs=2)
    _convert_jobs("dvs128-gesture", download, out, jobs=3)
    with pytest.raises(ValueError, match="different job counts"):
        merge(out)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no job-IIII-of-JJJJ parts"):
        merge(tmp_path / "empty")


def test_bad_job_index(download: Path, tmp_path: Path, capsys) -> None:
    args = ["convert", "dvs128-gesture", "--raw", str(download), "--out", str(tmp_path / "o"), "--no-md5", "--quiet"]
    assert main([*args, "--num-jobs", "2", "--job-index", "2"]) != 0
    assert "--job-index must lie in [0, --num-jobs)" in capsys.readouterr().err
