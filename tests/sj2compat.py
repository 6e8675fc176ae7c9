"""SpikingJelly 2.0.0's dataset classes run on generated downloads (second-wave datasets).

Each class is subclassed and only ``resource_url_md5`` is overridden (the generated files have
their own md5); SpikingJelly then extracts and converts the download itself under ``root``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


def sj_class(base: type, md5: dict[str, str], **overrides):
    """``base`` with the generated files' md5 (and any classmethods in ``overrides``)."""

    def resource_url_md5(cls) -> list:
        return [(name, "generated://", digest) for name, digest in md5.items()]

    return type(f"Generated{base.__name__}", (base,), {"resource_url_md5": classmethod(resource_url_md5),
                                                        **overrides})


def sj_samples(cls, download: Path, root: Path, **kwargs) -> dict[str, tuple[dict[str, np.ndarray], int]]:
    """``{key: (events, label)}`` of one SpikingJelly dataset; key = path below its split folder, no suffix."""
    if not (root / "download").exists():
        shutil.copytree(download, root / "download")
    ds = cls(str(root), data_type="event", **kwargs)
    base = Path(ds.root)
    out = {}
    for i, (path, label) in enumerate(ds.samples):
        key = Path(path).relative_to(base).with_suffix("").as_posix()
        ev, lab = ds[i]
        assert lab == label
        out[key] = ({c: np.asarray(ev[c]) for c in "txyp"}, int(label))
    return out
