"""Fuzz eventshard's readers, parsers and shard decoder for a given time; report inputs, library errors, crashes.

Usage::

    python scripts/fuzz.py [--seconds N] [--engine auto|hypothesis|atheris|both] [--jobs J]
                           [--crash-dir fuzz-crashes] [--json REPORT] [TARGET ...]

``scripts/fuzz.sh [SECONDS] [TARGET…]`` runs this inside the project's ``.venv`` (and installs atheris there
when it can). The targets are those of ``tests/fuzz_targets.py`` (all by default); each gets ``--seconds``
(default 60) in all, split between the engines:

hypothesis
    Random inputs from :func:`tests.fuzz_targets.inputs` (mutated valid files, seed headers plus noise, random
    bytes) in batches until the time is up; a crash is shrunk to a small reproducing input.
atheris
    Coverage-guided (libFuzzer) over the ``shardgen`` and ``loader`` modules, starting from the same seeds.
    ``auto`` (the default) uses it when ``import atheris`` works, next to hypothesis.

Each (target, engine) runs in its own process with its address space capped (a reader that trusts a length
from the file and allocates gigabytes fails with ``MemoryError``, which counts as a crash). Every input that
raises anything but the library's own errors (``loader.errors.EventshardError``) is a crash: one file per
distinct crash (exception type and place) is saved under ``--crash-dir`` as ``<target>-<hash>.bin`` with the
traceback next to it in ``.txt``; reproduce with ``python scripts/fuzz.py --replay FILE``.

Prints one line per target (inputs tried, accepted, library errors, crashes) and the totals; exits 1 when
anything crashed.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BATCH = 300
MEMORY_HEADROOM = 3 << 30
"""Address space a worker may add after its imports: a format's own 2 GiB sample limit fits, 2**40 does not."""


# ------------------------------------------------------------------------------------------------ workers


class Stats:
    """What one worker counts; written to a JSON file the parent reads."""

    def __init__(self, target: str, engine: str, path: Path, crash_dir: Path):
        self.target, self.engine, self.path, self.crash_dir = target, engine, path, crash_dir
        self.inputs = self.accepted = self.library_errors = self.crash_inputs = 0
        self.crashes: dict[str, dict[str, Any]] = {}
        self.started = time.monotonic()
        self._written = 0.0

    def record_crash(self, data: bytes, exc: BaseException) -> None:
        """Count a crash; keep (and save) the smallest input seen for each distinct signature."""
        self.crash_inputs += 1
        sig = signature(exc)
        old = self.crashes.get(sig)
        if old is not None and old["size"] <= len(data):
            old["count"] += 1
            return
        self.crash_dir.mkdir(parents=True, exist_ok=True)
        stem = f"{self.target}-{hashlib.sha1(sig.encode()).hexdigest()[:10]}"
        (self.crash_dir / f"{stem}.bin").write_bytes(data)
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        (self.crash_dir / f"{stem}.txt").write_text(f"target: {self.target}\nsignature: {sig}\n\n{text}")
        self.crashes[sig] = {"signature": sig, "type": type(exc).__name__, "message": str(exc)[:300],
                             "file": str(self.crash_dir / f"{stem}.bin"), "size": len(data),
                             "count": (old["count"] + 1) if old else 1}

    def as_dict(self) -> dict[str, Any]:
        """The counts as the report lists them."""
        return {"target": self.target, "engine": self.engine, "inputs": self.inputs, "accepted": self.accepted,
                "library_errors": self.library_errors, "crash_inputs": self.crash_inputs,
                "crashes": len(self.crashes), "crash_list": list(self.crashes.values()),
                "seconds": round(time.monotonic() - self.started, 1)}

    def write(self, force: bool = False) -> None:
        """Write the counts (at most twice a second unless ``force``)."""
        now = time.monotonic()
        if force or now - self._written > 0.5:
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.as_dict()))
            os.replace(tmp, self.path)
            self._written = now


def signature(exc: BaseException) -> str:
    """Exception type and the innermost frame in eventshard's own code (where the crash happened)."""
    frames = traceback.extract_tb(exc.__traceback__)
    ours = [f for f in frames if "/shardgen/" in f.filename or "/loader/" in f.filename or "/tests/" in f.filename]
    where = ours[-1] if ours else (frames[-1] if frames else None)
    place = f"{Path(where.filename).name}:{where.lineno}" if where else "?"
    return f"{type(exc).__name__} at {place}"


def _cap_memory() -> None:
    """Limit the address space to what is mapped now plus :data:`MEMORY_HEADROOM`."""
    try:
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        limit = vm + MEMORY_HEADROOM
        if hard == resource.RLIM_INFINITY or limit < hard:
            resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (OSError, ValueError, StopIteration):  # not Linux: run without the cap
        pass


def _one(stats: Stats, run, name: str, data: bytes) -> None:
    from loader.errors import EventshardError

    stats.inputs += 1
    try:
        ok = run(name, data)
    except EventshardError:  # raised by a consistency check that wraps the library's error
        stats.library_errors += 1
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # every other exception is what we look for (pyo3's PanicException included)
        stats.record_crash(data, exc)
        raise
    else:
        stats.accepted += ok
        stats.library_errors += not ok
    stats.write()


def hypothesis_worker(name: str, seconds: float, stats: Stats) -> None:
    """Batches of hypothesis examples until ``seconds`` are up; crashes are shrunk, saved and counted."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings

    from tests import fuzz_targets as ft

    strategy = ft.inputs(name)
    _cap_memory()
    deadline = time.monotonic() + seconds

    def body(data: bytes) -> None:
        if time.monotonic() > deadline + 30:  # a long shrink: stop it
            return
        _one(stats, ft.run, name, data)

    while time.monotonic() < deadline:
        test = settings(max_examples=BATCH, deadline=None, database=None, derandomize=False,
                        phases=(Phase.generate, Phase.shrink), verbosity=Verbosity.quiet,
                        report_multiple_bugs=False, suppress_health_check=list(HealthCheck))(given(strategy)(body))
        try:
            test()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001,S110 - recorded by _one already (the shrunk input is kept)
            pass
    stats.write(force=True)


def atheris_worker(name: str, seconds: float, stats: Stats) -> None:
    """libFuzzer through atheris, coverage over ``shardgen`` and ``loader``; stops itself when time is up."""
    import atheris

    with atheris.instrument_imports(include=["shardgen", "loader"]):
        from tests import fuzz_targets as ft
    corpus = stats.path.parent / f"corpus-{name}"  # inside the run's work folder, removed with it
    corpus.mkdir(exist_ok=True)
    seeds = ft.seeds(name)
    for i, s in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(s)
    max_len = min(ft.MAX_INPUT, max(4096, 2 * max(len(s) for s in seeds)))
    _cap_memory()
    deadline = time.monotonic() + seconds

    def one_input(data: bytes) -> None:
        if time.monotonic() > deadline:
            stats.write(force=True)
            ft.cleanup()
            os._exit(0)  # libFuzzer has no clean way out of Fuzz()
        try:
            _one(stats, ft.run, name, data)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001,S110 - recorded; keep fuzzing instead of stopping at the first crash
            pass

    stats.crash_dir.mkdir(parents=True, exist_ok=True)  # where libFuzzer puts an input that kills the process
    args = [sys.argv[0], f"-max_len={max_len}", "-timeout=60", "-rss_limit_mb=0", "-print_final_stats=0",
            f"-artifact_prefix={stats.crash_dir}/{name}-atheris-", str(corpus)]
    atheris.Setup(args, one_input)
    atheris.Fuzz()


def replay(path: Path, name: str | None) -> int:
    """Run one saved input again (the target comes from the file name ``<target>-<hash>.bin``)."""
    from tests import fuzz_targets as ft

    target = name or path.name.rsplit("-", 1)[0]
    data = path.read_bytes()
    print(f"{target}: {len(data)} bytes from {path}")
    ok = ft.run(target, data)  # a crash raises with its traceback
    print("accepted" if ok else "library error (fine)")
    return 0


# ------------------------------------------------------------------------------------------------- parent


def _engines(choice: str) -> list[str]:
    if choice in ("hypothesis", "atheris"):
        return [choice]
    try:
        import atheris  # noqa: F401
    except ImportError:
        if choice == "both":
            raise SystemExit("atheris is not installed (pip install atheris)") from None
        return ["hypothesis"]
    return ["hypothesis", "atheris"]


def main(argv: list[str] | None = None) -> int:
    """Run the fuzzers (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("targets", nargs="*", help="targets to run (default: all)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time per target, all engines together")
    ap.add_argument("--engine", choices=("auto", "hypothesis", "atheris", "both"), default="auto")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="targets fuzzed at the same time")
    ap.add_argument("--crash-dir", type=Path, default=ROOT / "fuzz-crashes")
    ap.add_argument("--json", type=Path, help="also write the report as JSON here")
    ap.add_argument("--replay", type=Path, help="run one saved crash input again and exit")
    ap.add_argument("--worker", nargs=3, metavar=("ENGINE", "TARGET", "STATS"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.replay:
        return replay(args.replay, args.targets[0] if args.targets else None)
    if args.worker:
        engine, name, stats_path = args.worker
        stats = Stats(name, engine, Path(stats_path), args.crash_dir)
        stats.write(force=True)
        (hypothesis_worker if engine == "hypothesis" else atheris_worker)(name, args.seconds, stats)
        return 0

    from tests.fuzz_targets import TARGETS

    names = args.targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        ap.error(f"unknown target(s) {unknown}; known: {', '.join(TARGETS)}")
    engines = _engines(args.engine)
    per_engine = args.seconds / len(engines)
    print(f"fuzzing {len(names)} target(s) for {args.seconds:g} s each with {' + '.join(engines)} "
          f"({max(1, args.jobs)} at a time); crashes go to {args.crash_dir}", flush=True)
    work = Path(tempfile.mkdtemp(prefix="eventshard-fuzz-run-"))
    jobs = [(engine, name) for name in names for engine in engines]
    running: list[tuple[subprocess.Popen, str, str, Path, Path]] = []
    results: list[dict[str, Any]] = []
    died: list[str] = []
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(":")}

    def reap(block: bool) -> None:
        for item in list(running):
            proc, engine, name, stats_path, log = item
            if proc.poll() is None and not block:
                continue
            try:
                proc.wait(timeout=per_engine + 120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            running.remove(item)
            try:
                res = json.loads(stats_path.read_text())
            except (OSError, ValueError):
                res = {"target": name, "engine": engine, "inputs": 0, "accepted": 0, "library_errors": 0,
                       "crash_inputs": 0, "crashes": 0, "crash_list": []}
            if proc.returncode not in (0, None):  # the worker itself died (signal, libFuzzer abort, timeout)
                text = log.read_text(errors="replace") if log.exists() else ""
                unit = [line.split("written to ", 1)[1].strip() for line in text.splitlines() if "written to " in line]
                died.append(str(log))
                res["crashes"] += 1
                res["crash_list"].append({"signature": f"process died ({proc.returncode}); log {log}",
                                          "file": unit[-1] if unit else "", "log": text[-2000:]})
            results.append(res)
            print(f"  {name:<18} {engine:<10} {res['inputs']:>9} inputs  {res['accepted']:>8} accepted  "
                  f"{res['library_errors']:>8} library errors  {res['crashes']:>3} crashes", flush=True)
            for c in res["crash_list"]:
                print(f"      crash: {c['signature']}: {c.get('message', '')[:160]!r} -> {c.get('file', '')}")
            if block:
                return

    for engine, name in jobs:
        while len(running) >= max(1, args.jobs):
            time.sleep(0.2)
            reap(block=False)
        stats_path = work / f"{name}-{engine}.json"
        log = work / f"{name}-{engine}.log"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--seconds", str(per_engine), "--crash-dir",
               str(args.crash_dir), "--worker", engine, name, str(stats_path)]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        running.append((proc, engine, name, stats_path, log))
    while running:
        time.sleep(0.2)
        reap(block=False)

    total = {k: sum(r[k] for r in results) for k in ("inputs", "accepted", "library_errors", "crash_inputs",
                                                      "crashes")}
    print(f"total: {total['inputs']} inputs, {total['accepted']} accepted, {total['library_errors']} library "
          f"errors, {total['crashes']} distinct crashes ({total['crash_inputs']} crashing inputs)")
    if not died:  # keep the worker logs only when a worker died
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps({"seconds": args.seconds, "engines": engines, "runs": results,
                                         "total": total}, indent=1))
    return 1 if total["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
