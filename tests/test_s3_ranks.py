"""Scale-out on S3 (moto's server on 127.0.0.1, no mocks): array jobs converting concurrently into one
``s3://`` output, and 8 training ranks x 2 DataLoader workers reading a 300,016-sample set from it.

Timings of the same run are the benchmark's (``scripts/bench_s3_ranks.py``), never asserted here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from shardgen.cli import main
from tests.conftest import read_split
from tests.gen_classfolders import write_ncaltech101
from tests.many_ranks import run_ranks, tiny_key, write_tiny_set
from tests.servers import MotoS3

pytest.importorskip("s3fs")
REPO = Path(__file__).resolve().parents[1]
SAMPLES = 300_016  # divisible by 8: every rank reads exactly its own 37,502
WORLD, WORKERS = 8, 2


@pytest.fixture(scope="module")
def s3() -> Iterator[MotoS3]:
    with MotoS3("eventshard-ranks") as server:
        yield server
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture(autouse=True)
def aws_env(s3: MotoS3, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The moto server through the standard ``AWS_*`` variables only (no profile or config file)."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL_S3", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)


def test_array_jobs_convert_concurrently_into_one_s3_output(s3: MotoS3, tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    write_ncaltech101(raw, per_class=8, max_events=300)
    single = tmp_path / "single"
    assert main(["convert", "n-caltech101", "--raw", str(raw), "--out", str(single), "--no-md5", "--quiet",
                 "--workers", "1"]) == 0
    url = s3.url("caltech")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "JOB_COMPLETION"))}
    procs = [subprocess.Popen([sys.executable, "-m", "shardgen.cli", "convert", "n-caltech101", "--raw", str(raw),
                               "--out", url, "--no-md5", "--quiet", "--workers", "1"],
                              env={**env, "PYTHONPATH": str(REPO), "SLURM_ARRAY_TASK_ID": str(i),
                                   "SLURM_ARRAY_TASK_COUNT": "3"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    assert main(["merge", url]) == 0
    for split in ("train", "test", "all"):
        got, want = read_split(url, split), read_split(single, split)
        assert list(got) == list(want)
        assert [label for _, label in got.values()] == [label for _, label in want.values()]


def test_eight_ranks_two_workers_read_disjoint_equal_shares_from_s3(s3: MotoS3, tmp_path: Path) -> None:
    write_tiny_set(tmp_path / "tiny", SAMPLES)
    url = s3.upload_folder(tmp_path / "tiny", "tiny")
    ranks = run_ranks(url, WORLD, WORKERS, env=s3.env)
    per_rank = [r["keys"] for r in ranks]
    assert [len(k) for k in per_rank] == [SAMPLES // WORLD] * WORLD
    assert [r["len"] for r in ranks] == [SAMPLES // WORLD] * WORLD  # len(ds) says what each rank gets
    seen = Counter(k for keys in per_rank for k in keys)
    assert len(seen) == SAMPLES and max(seen.values()) == 1  # disjoint, and together the whole split
    assert set(seen) == {tiny_key(i) for i in range(SAMPLES)}
    assert all(r["requests"] > 0 for r in ranks)  # the workers' read statistics came back
