"""Interruption: ``kill -9`` of ``shardgen convert`` at many points, a rerun, and killed DataLoader workers.

``shardgen convert … --workers 2`` runs in its own process group on generated DVS128 Gesture (the
``.tar.gz`` as distributed) and N-MNIST (``Train.zip``/``Test.zip``) downloads and is killed

- from outside, the whole process group with SIGKILL, after seeded random delays counted from the
  moment the run starts writing (its journal appears): right away, and at two points inside the
  measured length of an uninterrupted run;
- from inside, at named points (``EVENTSHARD_CRASH_AT``, see :func:`shardgen.writer.crash_point`):
  the earlier set's index just removed, the first and a random later shard renamed into place, the
  index written but not yet renamed, the index in place before the clean-up. Only the main process
  dies there: its workers must follow it by themselves.

After each kill: no process of the run is left, and an ``index.json``, if there is one, belongs to
a complete set (``verify`` passes). A rerun with the same settings then gives a folder that equals
an uninterrupted run's file for file and byte for byte (no ``.partial`` file, ``.parts-*`` folder
or journal left). Most runs start from a folder holding an earlier complete set with another shard
size (more shards than the new one), which must not survive either.

A DataLoader worker killed by SIGKILL (from outside, or by itself in a transform) surfaces as
torch's ``RuntimeError`` within the loader's timeout (or, in a race inside torch, as the
``ConnectionResetError``/``EOFError`` of the queue the dead worker was writing to); the test runs it
in a subprocess with a timeout of its own, so a hang fails instead of hanging the suite.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from loader.verify import verify
from shardgen.output import ShardSetOutput, stage_path
from shardgen.writer import CRASH_ENV, JOURNAL_NAME
from tests.gen_classfolders import write_nmnist
from tests.gen_dvsgesture import write_gesture_download
from tests.servers import MotoS3

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process groups, /proc, fork")

REPO = Path(__file__).resolve().parents[1]
RUN_TIMEOUT = 60  # seconds any one subprocess may take
# dataset id -> (settings of the run under test, settings of the earlier set found in OUT)
SHARD_SIZES = {"dvs128-gesture": ("8k", "2k"), "n-mnist": ("2k", "512")}
SEED = 20240613

Tree = dict[str, bytes | None]  # relative path -> bytes (None: a folder)


# --------------------------------------------------------------------------- helpers


def _argv(dataset: str, raw: Path, out: Path | str, shard_size: str) -> list[str]:
    return [
        sys.executable, "-m", "shardgen.cli", "convert", dataset, "--raw", str(raw), "--out", str(out),
        "--workers", "2", "--shard-size", shard_size, "--quiet", "--no-md5",
    ]  # fmt: skip


def _env(crash: str | None = None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(extra or {})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), *filter(None, [env.get("PYTHONPATH")])])
    if crash is not None:
        env[CRASH_ENV] = crash
    return env


def _start(argv: list[str], crash: str | None = None, extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a command in a new process group (its pid is the group's id)."""
    return subprocess.Popen(
        argv, cwd=REPO, env=_env(crash, extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )


def _communicate(proc: subprocess.Popen[bytes]) -> bytes:
    """Wait for ``proc`` (at most :data:`RUN_TIMEOUT` s, then its whole group is killed); its stderr.

    The pipes close only when every process holding them is gone: a worker that outlives its killed
    main process makes this time out.
    """
    try:
        return proc.communicate(timeout=RUN_TIMEOUT)[1]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise


def _run_ok(argv: list[str], extra: dict[str, str] | None = None) -> None:
    res = subprocess.run(argv, cwd=REPO, env=_env(None, extra), capture_output=True, timeout=RUN_TIMEOUT)
    assert res.returncode == 0, res.stderr.decode(errors="replace")


def _tree(root: Path) -> Tree:
    """Every file (with its bytes) and folder under ``root``, dot files included."""
    out: Tree = {}
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        for d in dirs:
            out[str(rel / d)] = None
        for f in files:
            out[str(rel / f)] = (Path(folder) / f).read_bytes()
    return out


def _assert_same_tree(out: Path, want: Tree) -> None:
    got = _tree(out)
    assert sorted(set(got) - set(want)) == [], "stray files"
    assert sorted(set(want) - set(got)) == [], "missing files"
    assert [name for name in want if got[name] != want[name]] == [], "files that differ"


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies waiting for a parent to reap them do not count)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, …
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            alive.append(int(entry.name))
    return alive


def _wait_group_gone(pgid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (alive := _alive_in_group(pgid)) and time.monotonic() < deadline:
        time.sleep(0.02)
    if alive:
        os.killpg(pgid, signal.SIGKILL)  # do not leave them running after the test
    assert alive == [], f"processes of the killed conversion still running: {alive}"


def _wait_started(proc: subprocess.Popen[bytes], out: Path) -> None:
    """Until the run writes into ``out`` (its journal exists) or ends."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while proc.poll() is None and not (out / JOURNAL_NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.001)


def _check_after_kill(out: Path) -> bool:
    """An ``index.json`` left by a killed run must describe a complete set; returns whether there is one."""
    if not (out / "index.json").exists():
        return False
    rep = verify(out)
    assert rep["ok"], rep["problems"]
    return True


class Download:
    """A generated raw download, the uninterrupted conversion's folder and an earlier set to start from."""

    def __init__(self, dataset: str, raw: Path, root: Path):
        self.dataset, self.raw = dataset, raw
        size, old_size = SHARD_SIZES[dataset]
        ref, old = root / "reference", root / "earlier"
        proc = _start(self.argv(ref, size))  # timed from the journal's appearance, like the kills
        _wait_started(proc, ref)
        t0 = time.monotonic()
        err = _communicate(proc)
        self.work_s = time.monotonic() - t0
        assert proc.returncode == 0, err.decode(errors="replace")
        _run_ok(self.argv(old, old_size))
        self.reference, self.earlier = _tree(ref), old
        shards = sorted(n for n in self.reference if n.endswith(".tar.zst"))
        assert len(_tree(old)) > len(shards) + 1 > 8, "the earlier set must hold more shards than the new one"
        assert set(self.reference) == {"index.json", *shards}

    def argv(self, out: Path | str, shard_size: str | None = None, raw: Path | None = None) -> list[str]:
        return _argv(self.dataset, raw or self.raw, out, shard_size or SHARD_SIZES[self.dataset][0])

    def shards(self) -> int:
        return sum(1 for n in self.reference if n.endswith(".tar.zst"))

    def out(self, tmp_path: Path, earlier: bool) -> Path:
        """A fresh output folder, holding the earlier set when ``earlier``."""
        out = tmp_path / "out"
        shutil.rmtree(out, ignore_errors=True)
        if earlier:
            shutil.copytree(self.earlier, out)
        return out


@pytest.fixture(scope="module", params=sorted(SHARD_SIZES))
def download(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Download:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "dvs128-gesture":
        write_gesture_download(root / "raw", n_train=4, n_test=2, events_per_sample=600, seed=11)
    else:
        write_nmnist(root / "raw", per_class=10, seed=12, max_events=600)
    return Download(request.param, root / "raw", root)


# --------------------------------------------------------------------------- kill -9 of shardgen convert


def test_kill_at_random_times_then_rerun(download: Download, tmp_path: Path) -> None:
    """SIGKILL of the whole process group at seeded random times: early (when the run starts writing), then
    two inside the run's measured length; into an empty folder and into one holding an earlier set. A run
    that ends before its kill (a busy machine measured a longer run) is tried again with half the delay."""
    rng = np.random.default_rng([SEED, len(download.dataset)])
    delays = [0.0, *sorted(rng.uniform(0.15, 0.85, size=2) * download.work_s)]  # early, then two inside the run
    for i, delay in enumerate(delays):
        for _attempt in range(4):
            out = download.out(tmp_path, earlier=i % 2 == 1)
            proc = _start(download.argv(out))
            _wait_started(proc, out)
            time.sleep(delay)
            killed = proc.poll() is None
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
            _communicate(proc)
            _wait_group_gone(proc.pid)
            _check_after_kill(out)
            if killed:
                break
            delay /= 2
        assert killed, f"the run kept ending before the kill (last delay {delay:.3f} s)"
        _run_ok(download.argv(out))
        _assert_same_tree(out, download.reference)


def _named_points(download: Download) -> list[str]:
    late = int(np.random.default_rng([SEED, download.shards()]).integers(2, download.shards()))
    return ["forget", "shard:1", f"shard:{late}", "index", "commit"]


@pytest.mark.parametrize("which", range(5))
def test_kill_at_named_points_then_rerun(download: Download, tmp_path: Path, which: int) -> None:
    """The main process kills itself at a named point (see :func:`shardgen.writer.crash_point`)."""
    point = _named_points(download)[which]
    out = download.out(tmp_path, earlier=True)
    proc = _start(download.argv(out), crash=point)
    err = _communicate(proc)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    _wait_group_gone(proc.pid)  # only the main process was killed: its workers must not outlive it
    complete = _check_after_kill(out)
    names = set(_tree(out))
    if point == "commit":  # the new set is in place, only the clean-up was cut short
        assert complete and (out / "index.json").read_bytes() == download.reference["index.json"]
    elif point.startswith("shard"):  # before the commit: the earlier set is still there, whole
        assert complete and (out / "index.json").read_bytes() == (download.earlier / "index.json").read_bytes()
    else:  # inside the commit: the earlier index is gone, the new one not yet there
        assert not complete, "an index.json next to an incomplete set"
    if point == "index":
        assert ".index.json.partial" in names
    if point.startswith("shard"):
        assert any(n.endswith(".tar.zst") for n in names) and any(n.startswith(".parts-") for n in names)
    _run_ok(download.argv(out))
    _assert_same_tree(out, download.reference)


@pytest.mark.parametrize("download", ["dvs128-gesture"], indirect=True)
def test_rerun_killed_too(download: Download, tmp_path: Path) -> None:
    """A rerun killed in its turn (at another point) still leaves a folder the next rerun completes."""
    out = download.out(tmp_path, earlier=True)
    for point in ("shard:2", "shard:1", "index"):
        proc = _start(download.argv(out, SHARD_SIZES[download.dataset][1] if point == "shard:1" else None), point)
        _communicate(proc)
        assert proc.returncode == -signal.SIGKILL
        _wait_group_gone(proc.pid)
        assert _check_after_kill(out) == (point != "index")  # before the commit the earlier set stays whole
    _run_ok(download.argv(out))
    _assert_same_tree(out, download.reference)


def test_earlier_set_stays_whole_until_the_new_one_commits(download: Download, tmp_path: Path) -> None:
    """A re-conversion killed while it writes its shards, or failing on bad input, leaves the earlier set
    whole and readable: the same files with the same bytes (the killed run's staging folder and journal
    aside, which the next run removes)."""
    out = download.out(tmp_path, earlier=True)
    before = _tree(out)
    proc = _start(download.argv(out), "shard:2")
    _communicate(proc)
    assert proc.returncode == -signal.SIGKILL
    _wait_group_gone(proc.pid)
    left = _tree(out)
    assert {k: v for k, v in left.items() if not k.startswith(".")} == before
    assert any(k.startswith(".stage-") for k in left) and verify(out)["ok"]

    bad = tmp_path / "bad_raw"
    shutil.copytree(download.raw, bad)
    biggest = max((p for p in bad.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    biggest.write_bytes(biggest.read_bytes()[: biggest.stat().st_size // 2])  # a download cut in half
    res = subprocess.run(download.argv(out, raw=bad), cwd=REPO, env=_env(), capture_output=True, timeout=RUN_TIMEOUT)
    assert res.returncode == 1, res.stderr.decode(errors="replace")
    assert {k: v for k, v in _tree(out).items() if not k.startswith(".")} == before

    _run_ok(download.argv(out))
    _assert_same_tree(out, download.reference)


@pytest.mark.parametrize("download", ["n-mnist"], indirect=True)
def test_second_writer_is_refused(download: Download, tmp_path: Path) -> None:
    """While one run holds the output, another fails at once with one line naming the folder."""
    out = download.out(tmp_path, earlier=True)
    before = _tree(out)
    with ShardSetOutput(out):  # takes the lock as a running conversion does (the earlier set stays)
        res = subprocess.run(download.argv(out), cwd=REPO, env=_env(), capture_output=True, timeout=RUN_TIMEOUT)
        err = res.stderr.decode()
        assert res.returncode == 1
        assert f"shardgen: error: {out}: another shardgen convert is writing" in err and "Traceback" not in err
        assert verify(out)["ok"]  # readable while another run holds the output
    assert "index.json" in before and _tree(out) == before  # an uncommitted output leaves the earlier set as it was
    _run_ok(download.argv(out))
    _assert_same_tree(out, download.reference)


@pytest.mark.parametrize("download", ["n-mnist"], indirect=True)
def test_convert_over_a_merged_set_retires_its_parts(download: Download, tmp_path: Path) -> None:
    """A plain conversion into a folder holding a ``--num-jobs`` set removes the merged index, the parts'
    own indexes (they would name removed shards) and their shards."""
    out = download.out(tmp_path, earlier=False)
    for job in ("0", "1"):
        _run_ok([*download.argv(out), "--num-jobs", "2", "--job-index", job])
    _run_ok([sys.executable, "-m", "shardgen.cli", "merge", str(out)])
    assert verify(out)["ok"] and len(list(out.glob("job-*/index.json"))) == 2
    _run_ok(download.argv(out))
    assert list(out.glob("job-*/*")) == []
    assert {k: v for k, v in _tree(out).items() if not k.startswith("job-")} == download.reference


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoS3, dict[str, str]]]:
    """moto's S3 server on 127.0.0.1 and the environment that points the CLI at it (and nowhere else)."""
    none = tmp_path_factory.mktemp("aws") / "none"
    with MotoS3("eventshard-interrupt") as server:
        yield server, {**server.env, "AWS_CONFIG_FILE": str(none), "AWS_SHARED_CREDENTIALS_FILE": str(none)}


@pytest.mark.parametrize("download", ["dvs128-gesture"], indirect=True)
def test_kill_during_upload_then_rerun(download: Download, s3: tuple[MotoS3, dict[str, str]]) -> None:
    """To ``s3://``: killed while the shards go up (after the third); the earlier set there is gone, no index
    appears, and the rerun (with fewer shards) removes what the killed upload left at the URL and in the
    staging folder."""
    server, env = s3
    point = "upload:3"
    url = server.upload_folder(download.earlier, f"kill-{point.replace(':', '-')}")
    proc = _start(download.argv(url, SHARD_SIZES[download.dataset][1]), point, env)  # more shards than the rerun
    err = _communicate(proc)
    assert proc.returncode == -signal.SIGKILL, err.decode(errors="replace")
    _wait_group_gone(proc.pid)
    fs = server.filesystem()
    left = {Path(p).name for p in fs.find(url)}
    assert "index.json" not in left and left, "an index.json next to an incomplete set"
    assert (stage_path(url) / JOURNAL_NAME).exists()
    _run_ok(download.argv(url), env)
    fs = server.filesystem()  # not the listings cached above
    got = {Path(p).name: fs.cat_file(p) for p in fs.find(url)}
    assert sorted(got) == sorted(download.reference) and got == download.reference
    assert not stage_path(url).exists()


# --------------------------------------------------------------------------- killed readers

_WORKER_SCRIPT = textwrap.dedent(
    """
    import multiprocessing, os, signal, sys, time
    from torch.utils.data import DataLoader, get_worker_info
    from loader import EventShardDataset

    path, how = sys.argv[1], sys.argv[2]
    seen = 0

    def slow(events):
        global seen
        seen += 1
        info = get_worker_info()
        if how == "self" and info is not None and info.id == 1 and seen == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(0.02)
        return events

    ds = EventShardDataset(path, data_type="event", shuffle=False, transform=slow)
    dl = DataLoader(ds, batch_size=None, num_workers=2, timeout=20)
    n = 0

    def report(exc):
        # unbuffered, and no interpreter shutdown that a late signal could disturb
        os.write(1, f"{type(exc).__name__} after {n} samples: {exc}\\n".encode())
        for child in multiprocessing.active_children():  # the other worker: it would hold the pipes open
            child.kill()
        os._exit(0)

    try:
        try:
            for _ in dl:
                n += 1
                if how == "outside" and n == 2:
                    victim = multiprocessing.active_children()[0]
                    os.kill(victim.pid, signal.SIGKILL)
        except (RuntimeError, OSError, EOFError) as exc:
            report(exc)
    except RuntimeError as exc:  # torch's SIGCHLD handler may report the same death again, a moment later
        report(exc)
    print(f"no error after {n} samples")
    sys.exit(1)
    """
)


# torch's own report; or, when the worker dies while it hands a sample's tensors over (their file
# descriptors travel on a socket to the dead process), the queue's error, before torch can see the death
_WORKER_DEATH = (
    r"RuntimeError after \d+ samples: DataLoader worker \(pid.*(killed by signal|exited unexpectedly)"
    r"|(ConnectionResetError|ConnectionRefusedError|EOFError) after \d+ samples: "
)


@pytest.fixture(scope="module")
def reader_set(tmp_path_factory: pytest.TempPathFactory, shard_set_writer) -> Path:
    path = tmp_path_factory.mktemp("killed_readers")
    shard_set_writer(path, seed=5, splits={"train": (12, 12, 12, 12)})
    return path


@pytest.mark.parametrize("how", ["outside", "self"])
def test_killed_dataloader_worker_is_an_error(reader_set: Path, how: str) -> None:
    """SIGKILL of a worker (from the main process, or the worker's own transform) raises, never hangs."""
    t0 = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-c", _WORKER_SCRIPT, str(reader_set), how],
        cwd=REPO, env=_env(), capture_output=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    out = res.stdout.decode()
    assert res.returncode == 0, out + res.stderr.decode(errors="replace")
    assert re.match(_WORKER_DEATH, out), out
    assert time.monotonic() - t0 < 30


def test_cache_download_left_by_a_killed_reader_is_removed(reader_set: Path, tmp_path: Path) -> None:
    """A reader killed while it filled the cache leaves a ``.partial`` file; the next fill removes it."""
    from loader.shards import open_shard_set

    ss = open_shard_set(reader_set, cache_dir=tmp_path / "cache")
    shard = ss.shards("train")[1]
    assert ss.cache is not None
    entry = ss.cache.path_for(ss.fs.unstrip_protocol(ss.path(shard)), shard["sha256"])
    stale = entry.with_name(f".{entry.name}.999999999.partial")  # the pid of a process that is gone
    stale.write_bytes(b"half a shard")
    frames = list(ss.iter_frames(shard, 0, shard["samples"]))
    assert len(frames) == shard["samples"] and entry.exists() and not stale.exists()
    assert sorted(p.name for p in entry.parent.iterdir() if p.name.endswith(".partial")) == []
