"""A normal install: ``pip install`` of a clean checkout into a fresh venv, then ``shardgen --help`` and the demo.

The checkout is what git tracks (plus new files git does not ignore), copied to a temporary folder: no build
output, no ``.venv``. The fresh venv sees the dependencies of the interpreter running the tests through a
``.pth`` line (so nothing is downloaded and torch is not installed twice), but not its editable install of this
project: ``.pth`` files in a directory added that way are not run. pip builds and installs the package itself
(``--no-deps``); the commands then run outside the checkout, so only the installed package can answer.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _checkout(dest: Path) -> Path:
    try:
        files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                               capture_output=True, check=True, timeout=60).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"not a git checkout ({exc})")
    for name in filter(None, files):
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    return dest


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    py = path / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    deps = [*site.getsitepackages(), sysconfig.get_paths()["purelib"]]
    (Path(purelib) / "_eventshard_test_deps.pth").write_text("".join(f"{p}\n" for p in dict.fromkeys(deps)))
    return py


def test_pip_install_then_help_and_demo(tmp_path: Path) -> None:
    src = _checkout(tmp_path / "src")
    py = _fresh_venv(tmp_path / "venv")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    res = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index", "--ignore-installed",
         str(src)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr

    code = "import shardgen.demo, loader.wds; print(shardgen.demo.__file__); print(loader.wds.__file__)"
    where = subprocess.run([str(py), "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert Path(line).is_relative_to(tmp_path / "venv"), f"{line} is not the installed package"

    script = tmp_path / "venv" / "bin" / "shardgen"
    res = subprocess.run([str(script), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "convert" in res.stdout and "demo" in res.stdout, res.stderr

    res = subprocess.run([str(script), "demo", "out"], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "6) a short training loop" in res.stdout
    assert "batch 2: x (8, 16, 2, 128, 128) torch.float32" in res.stdout
    assert (tmp_path / "out" / "shards" / "index.json").is_file() and (tmp_path / "out" / "preview.gif").is_file()

    res = subprocess.run([str(py), "-m", "shardgen.demo", "--help"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "usage: python -m shardgen.demo [OUT]" in res.stdout, res.stderr
