"""The ``shardgen`` command line: list, info, verify, download, and start-up without torch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from loader.format import FORMAT_VERSION
from shardgen.cli import main
from shardgen.datasets import DATASETS
from tests.gen_dvsgesture import write_gesture_download

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shard_set(tmp_path_factory):
    """A tiny converted DVS128 Gesture set (extracted input, so no md5 to skip)."""
    root = tmp_path_factory.mktemp("cli")
    write_gesture_download(root / "raw", n_train=2, n_test=1, events_per_sample=200, seed=9, extracted="only")
    out = root / "out"
    assert (
        main(
            [
                "convert",
                "dvs128-gesture",
                "--raw",
                str(root / "raw"),
                "--out",
                str(out),
                "--quiet",
                "--workers",
                "1",
                "--shard-size",
                "8k",
            ]
        )
        == 0
    )
    return out


def test_list(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["id", "sensor", "HxW"]
    assert [ln.split()[0] for ln in lines[1:]] == sorted(DATASETS)
    gesture = next(ln for ln in lines if ln.startswith("dvs128-gesture"))
    assert gesture.split()[1:4] == ["128x128", "11", "by"]


def test_info(shard_set, capsys, tmp_path):
    capsys.readouterr()
    assert main(["info", str(shard_set), "--quiet"]) == 0
    out = capsys.readouterr().out
    index = json.loads((shard_set / "index.json").read_bytes())
    assert "dvs128-gesture" in out and f"eventshard format v{FORMAT_VERSION}" in out
    assert "128 x 128" in out
    assert "hand_clapping" in out and "other_gestures" in out
    for split, info in index["splits"].items():
        cells = next(ln for ln in out.splitlines() if ln.startswith(split)).split()
        assert cells[1] == str(info["samples"]) and cells[2] == f"{info['events']:,}"
    png = tmp_path / "info.png"
    assert main(["info", str(shard_set), "--quiet", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["info", str(shard_set), "--no-scan"]) == 0


def test_preview_writes_gif_and_png(shard_set, tmp_path, capsys):
    from PIL import Image

    for name in ("s.gif", "s.png"):
        assert main(["preview", str(shard_set), "--split", "test", "--index", "1", "--frames-number", "6",
                     "--out", str(tmp_path / name)]) == 0
        assert "6 frames" in capsys.readouterr().out
        with Image.open(tmp_path / name) as img:
            assert img.format == ("GIF" if name.endswith("gif") else "PNG")
            assert getattr(img, "n_frames", 1) == (6 if name.endswith("gif") else 1)
    assert main(["preview", str(shard_set), "--split", "test", "--index", "999", "--out", str(tmp_path / "x.png")]) == 1
    assert "999" in capsys.readouterr().err


def test_info_and_verify_on_a_folder_without_index(tmp_path, capsys):
    for cmd in ("info", "verify"):
        assert main([cmd, str(tmp_path)]) != 0
        err = capsys.readouterr().err
        assert err.startswith("shardgen: error:") and "index.json" in err and str(tmp_path) in err
        assert len(err.strip().splitlines()) == 1


def test_verify_ok(shard_set, capsys):
    assert main(["verify", str(shard_set)]) == 0
    assert capsys.readouterr().out.startswith("OK: ")


def test_download_says_where_to_get_it(tmp_path, capsys):
    raw = tmp_path / "raw"
    rc = main(["download", "dvs128-gesture", "--raw", str(raw)])
    assert rc != 0
    out = capsys.readouterr().out
    assert "https://research.ibm.com/interactive/dvsgesture/" in out
    assert "DvsGesture.tar.gz" in out
    assert str(raw.resolve()) in out  # where to put it
    assert not raw.exists()


def test_unknown_dataset_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "no-such-dataset", "--raw", "r", "--out", "o"])
    assert exc.value.code == 2
    assert "no-such-dataset" in capsys.readouterr().err


def test_cli_does_not_import_torch():
    code = (
        "import shardgen.cli, shardgen.convert, loader.format, loader.shards; import sys; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_console_script(shard_set):
    script = Path(sys.executable).with_name("shardgen")
    if not script.exists():
        pytest.skip("console script not installed next to this interpreter")
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    res = subprocess.run([str(script), "list"], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0 and "dvs128-gesture" in res.stdout.split()
    res = subprocess.run([str(script), "verify", str(shard_set)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("OK: ")
    res = subprocess.run(
        [str(script), "download", "dvs128-gesture", "--raw", str(shard_set.parent / "x")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "https://" in res.stdout


def test_verify_reports_progress_per_shard(shard_set):
    from loader.verify import verify

    calls: list[tuple[int, int]] = []
    rep = verify(shard_set, progress=lambda done, total: calls.append((done, total)))
    n = len({s["file"] for info in json.loads((shard_set / "index.json").read_bytes())["splits"].values()
             for s in info["shards"]})
    assert rep["ok"] and calls[-1] == (n, n) and [d for d, _ in calls] == list(range(1, n + 1))
