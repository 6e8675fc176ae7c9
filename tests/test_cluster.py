"""The cluster path as users run it: Dask's ``LocalCluster`` (real worker processes), and the files of
``docs/CLUSTER.md`` (the SLURM script passes ``bash -n``, the Kubernetes manifests load as YAML and say
what the conversion reads)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from shardgen.cli import main
from tests.conftest import read_split
from tests.gen_classfolders import write_ncaltech101

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "scripts" / "cluster"


def test_dask_local_cluster_converts_the_same_samples_as_one_process(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    from shardgen.jobs import convert_job, merge

    raw = tmp_path / "raw"
    write_ncaltech101(raw, per_class=6, max_events=300)
    single = tmp_path / "single"
    assert main(["convert", "n-caltech101", "--raw", str(raw), "--out", str(single), "--no-md5", "--quiet",
                 "--workers", "1"]) == 0
    out = tmp_path / "set"
    jobs = 3
    # the conversion starts worker processes of its own: Dask's workers must not be daemons (docs/CLUSTER.md)
    with dask.config.set({"distributed.worker.daemon": False}), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:
        job = functools.partial(convert_job, workers=1, check_md5=False)  # Client.map's own `workers` is placement
        with distributed.get_task_stream(client) as stream:
            futures = client.map(job, ["n-caltech101"] * jobs, [str(raw)] * jobs, [str(out)] * jobs, range(jobs),
                                 [jobs] * jobs)
            summaries = client.gather(futures)
        places = {task["worker"] for task in stream.data}
        pids = set(client.run(os.getpid).values())
    assert len(pids) == 2 and len(places) >= 1  # real worker processes did the jobs
    assert sum(s["recordings"] for s in summaries) > 0
    merged = merge(out)
    assert merged["source"]["jobs"] == jobs
    for split in ("train", "test", "all"):
        got, want = read_split(out, split), read_split(single, split)
        assert list(got) == list(want)
        for key, (ev, label) in want.items():
            assert got[key][1] == label
            for col in "txyp":
                np.testing.assert_array_equal(got[key][0][col], ev[col])


def test_slurm_scripts_parse_and_convert_as_an_array() -> None:
    bash = shutil.which("bash")
    assert bash is not None
    for name in ("convert.sbatch", "merge.sbatch", "submit.sh"):
        subprocess.run([bash, "-n", str(CLUSTER / name)], check=True)
    text = (CLUSTER / "convert.sbatch").read_text()
    assert re.search(r"^#SBATCH --array=0-15$", text, re.M)
    convert_lines = [ln for ln in text.splitlines() if ln.startswith("shardgen convert")]
    assert convert_lines and all("--job-index" not in ln for ln in convert_lines)  # the array's variables do it
    assert re.search(r"^shardgen merge ", (CLUSTER / "merge.sbatch").read_text(), re.M)
    submit = (CLUSTER / "submit.sh").read_text()
    assert re.search(r"sbatch .*--dependency=afterok:.* merge\.sbatch", submit)  # the merge waits for every task


def _job(path: Path) -> dict:
    yaml = pytest.importorskip("yaml")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert len(docs) == 1 and docs[0]["apiVersion"] == "batch/v1" and docs[0]["kind"] == "Job"
    return docs[0]


def _command(job: dict) -> str:
    container = job["spec"]["template"]["spec"]["containers"][0]
    return " ".join(container["command"] + container.get("args", []))


def test_kubernetes_manifests_load_and_set_the_index_variables() -> None:
    convert, merge = _job(CLUSTER / "convert-job.yaml"), _job(CLUSTER / "merge-job.yaml")
    spec = convert["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 16
    assert spec["backoffLimitPerIndex"] >= 1  # a failed index is retried alone, with the same number
    container = spec["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    assert env["JOB_COMPLETIONS"] == str(spec["completions"])  # Kubernetes does not pass the count itself
    assert _command(convert).startswith("shardgen convert") and "--job-index" not in _command(convert)
    assert _command(merge).startswith("shardgen merge")
    out = _command(convert).split("--out ")[1].split()[0]
    assert _command(merge).split()[-1] == out  # the merge reads what the conversion wrote
