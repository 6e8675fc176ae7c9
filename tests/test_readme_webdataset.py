"""The README's *With webdataset* block runs as written, on a converted generated DVS128 Gesture download.

The block is read from :data:`DOC` (the README text of that section; one constant to repoint) with its shard-set
path :data:`ROOT` replaced, and run in a temporary working directory; its printed batch is checked against
``EventShardDataset`` with the same frame setting.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
from pathlib import Path

import pytest

from loader import EventShardDataset

DOC = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## With webdataset"
ROOT = "/data/dvsgesture-shards"


def _block() -> str:
    text = DOC.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[: section.find("\n## ", len(SECTION))] if "\n## " in section[len(SECTION):] else section
    blocks = re.findall(r"^```python\n(.*?)^```$", section, flags=re.S | re.M)
    assert len(blocks) == 1, f"{DOC}: expected one python block in {SECTION!r}"
    return blocks[0]


@pytest.fixture(scope="module")
def gesture_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from shardgen.convert import convert
    from tests.gen_dvsgesture import write_gesture_download

    root = tmp_path_factory.mktemp("readme_wds")
    gen = write_gesture_download(root / "raw", n_train=3, n_test=1, events_per_sample=800, seed=6)
    out = root / "dvsgesture-shards"
    convert("dvs128-gesture", gen.root, out, workers=1, check_md5=False, progress=False, shard_size=1 << 14)
    return out


def test_with_webdataset_block_runs_as_written(gesture_set: Path, tmp_path: Path, monkeypatch) -> None:
    code = _block()
    assert ROOT in code
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace(ROOT, str(gesture_set)), f"{DOC.name}:{SECTION}", "exec"), {})
    (line,) = out.getvalue().splitlines()
    m = re.fullmatch(r"torch\.Size\(\[8, (\d+), 2, 128, 128\]\) (\[.*?\]) (\[.*?\]) (\S+)", line)
    assert m, line
    labels, lengths, key = ast.literal_eval(m[2]), ast.literal_eval(m[3]), m[4]
    assert len(labels) == len(lengths) == 8 and max(lengths) == int(m[1])
    ref = {k: (x, label) for x, label, k in EventShardDataset(gesture_set, "train", data_type="frame",
                                                                duration=250_000, shuffle=False, return_key=True)}
    x, label = ref[key]
    assert label == labels[0] and x.shape[0] == lengths[0]
