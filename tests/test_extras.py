"""Optional dependencies are extras: without scipy, Pillow or matplotlib everything else works, and the paths
that need one say which extra to install, in one line.

Each check runs in a fresh interpreter whose import system refuses the blocked packages (a meta-path finder
installed before anything is imported), as on a machine where they were never installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shardgen.formats.mat import SCIPY_MISSING
from tests.gen_classfolders import write_asldvs

REPO = Path(__file__).resolve().parents[1]

_BLOCK = """
import sys

class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _Blocked())
"""


def _run(code: str, blocked: set[str]) -> subprocess.CompletedProcess[str]:
    script = _BLOCK.format(blocked=sorted(blocked)) + textwrap.dedent(code)
    return subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_everything_else_imports_and_runs_without_the_extras(shard_set_writer, tmp_path: Path) -> None:
    shard_set_writer(tmp_path / "set", splits={"train": (3,)})
    res = _run(
        f"""
        import loader, loader.preview, loader.wds, loader.datasets, shardgen.inspect, shardgen.formats.mat
        from loader import EventShardDataset
        from shardgen.cli import main
        assert main(["list"]) == 0
        assert main(["verify", "--quiet", {str(tmp_path / "set")!r}]) == 0
        assert len(list(EventShardDataset({str(tmp_path / "set")!r}, data_type="frame", frames_number=2,
                                          split_by="number"))) == 3
        assert not {{"scipy", "PIL", "matplotlib"}} & {{m.split(".")[0] for m in sys.modules}}
        print("fine")
        """,
        {"scipy", "PIL", "matplotlib"},
    )
    assert res.returncode == 0 and res.stdout.split()[-1] == "fine", res.stderr


def test_asl_dvs_without_scipy_names_the_extra(tmp_path: Path) -> None:
    write_asldvs(tmp_path / "raw", per_class=1)
    out = tmp_path / "out"
    res = _run(
        f"""
        from shardgen.cli import main
        from shardgen.formats.mat import read_asl_mat
        try:
            read_asl_mat(b"MATLAB 5.0", "a.mat")
        except ImportError as exc:
            print("read:", exc)
        rc = main(["convert", "asl-dvs", "--raw", {str(tmp_path / "raw")!r}, "--out", {str(out)!r},
                   "--no-md5", "--quiet", "--workers", "1"])
        print("rc:", rc)
        """,
        {"scipy"},
    )
    assert f"read: {SCIPY_MISSING}\n" in res.stdout, res.stdout + res.stderr
    assert "rc: 0" not in res.stdout and "rc:" in res.stdout, res.stderr
    errors = [line for line in res.stderr.splitlines() if "warning: md5 sums not checked" not in line]
    assert errors == [f"shardgen: error: {SCIPY_MISSING}"], res.stderr
    assert not (out / "index.json").exists()


@pytest.mark.parametrize("blocked", [{"PIL"}, {"PIL", "matplotlib"}])
def test_preview_without_pillow_names_the_extra(shard_set_writer, tmp_path: Path, blocked: set[str]) -> None:
    shard_set_writer(tmp_path / "set", splits={"train": (2,)})
    res = _run(
        f"""
        import numpy as np
        from loader.preview import PILLOW_MISSING, save_frames_gif
        from shardgen.cli import main
        try:
            save_frames_gif(np.zeros((2, 2, 4, 4), np.float32), {str(tmp_path / "a.gif")!r})
        except ImportError as exc:
            assert str(exc) == PILLOW_MISSING
            print("raised")
        rc = main(["preview", {str(tmp_path / "set")!r}, "--split", "train", "--index", "0",
                   "--frames-number", "2", "--split-by", "number", "--out", {str(tmp_path / "b.png")!r}])
        print("rc:", rc)
        """,
        blocked,
    )
    assert "raised" in res.stdout and "rc: 1" in res.stdout, res.stdout + res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "need Pillow: pip install 'eventshard[preview]'" in errors[0], res.stderr
    assert not (tmp_path / "a.gif").exists() and not (tmp_path / "b.png").exists()
