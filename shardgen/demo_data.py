"""A small generated DVS128 Gesture download, so the demo runs from an installed package without the real one.

Written from the format description (``docs/DATASETS.md``, the AEDAT 3.1 layout in cAER's documentation),
not from this package's readers: nothing here imports ``shardgen.formats`` or ``loader``. The folder holds
what IBM distributes, with made-up events::

    DvsGesture.tar.gz        DvsGesture/<stem>.aedat (AEDAT 3.1), DvsGesture/<stem>_labels.csv, LICENSE.txt,
                             README.txt, trials_to_train.txt, trials_to_test.txt
    gesture_mapping.csv      action,label (1..11)
    LICENSE.txt, README.txt  stand-ins

Each recording holds the 11 gestures once, in class order, as windows of ``events_per_sample`` events
(a blob moving on a class-specific path, polarity ON on its leading half), separated by quiet gaps with
a few noise events. Events sit in polarity packets (eventType 1, 8 bytes per event: uint32 address with
valid bit 0, polarity bit 1, y in bits 2-16, x in bits 17-31, then an int32 timestamp), all valid.
The full test generator, with the format's corner cases, is ``tests/gen_dvsgesture.py``.

Same arguments → byte-identical files.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["DemoDownload", "write_gesture_download"]

SIZE = 128  # DVS128: 128 x 128 pixels
CLASSES = 11
ACTIONS = ("hand_clapping", "right_hand_wave", "left_hand_wave", "right_arm_clockwise",
           "right_arm_counter_clockwise", "left_arm_clockwise", "left_arm_counter_clockwise", "arm_roll",
           "air_drums", "air_guitar", "other_gestures")
LIGHTINGS = ("fluorescent", "fluorescent_led", "lab", "led", "natural")
PACKET_EVENTS = 4096
_HEADER = struct.Struct("<hhiiiiii")  # eventType, eventSource, eventSize, eventTSOffset, eventTSOverflow,
#                                       eventCapacity, eventNumber, eventValid
_EVENT = np.dtype([("data", "<u4"), ("ts", "<i4")])


@dataclass
class DemoDownload:
    """What :func:`write_gesture_download` wrote.

    Attributes
    ----------
    root : Path
        The download folder.
    samples : dict
        ``"<label>/<stem>_0"`` → ``{"split", "label", "t", "x", "y", "p"}``: the events of each gesture window
        (label = csv class − 1), the truth a conversion must give back.
    """

    root: Path
    samples: dict[str, dict] = field(default_factory=dict)

    @property
    def recordings(self) -> list[str]:
        return sorted({k.split("/", 1)[1].rsplit("_", 1)[0] for k in self.samples})


def _stems(n_train: int, n_test: int) -> tuple[list[str], list[str]]:
    train = [f"user{1 + i // 5:02d}_{LIGHTINGS[i % 5]}" for i in range(n_train)]
    test = [f"user{24 + i // 5:02d}_{LIGHTINGS[i % 5]}" for i in range(n_test)]
    return train, test


def _window(rng: np.random.Generator, cls: int, start: int, end: int, n: int) -> dict[str, np.ndarray]:
    """``n`` events in ``[start, end)``, the first one at ``start``: a blob on class ``cls``'s path."""
    t = np.sort(rng.integers(start, end, n)).astype(np.int64)
    t[0] = start
    phase = (t - start) / (end - start) * 2 * np.pi * (1 + cls % 3)
    radius = 15 + 3 * cls
    cx = 64 + radius * np.cos(phase + cls)
    cy = 64 + radius * np.sin(phase * (1 + cls % 2))
    x = np.clip(np.rint(cx + rng.normal(0, 4, n)), 0, SIZE - 1).astype(np.int64)
    y = np.clip(np.rint(cy + rng.normal(0, 4, n)), 0, SIZE - 1).astype(np.int64)
    ahead = np.sin(phase) * (x - cx) > 0  # the leading half of the blob turns ON
    p = np.where(rng.random(n) < 0.85, ahead, ~ahead).astype(np.uint8)
    return {"t": t, "x": x, "y": y, "p": p}


def _aedat(t: np.ndarray, x: np.ndarray, y: np.ndarray, p: np.ndarray) -> bytes:
    """An AEDAT 3.1 file: the header, then polarity packets of :data:`PACKET_EVENTS` events."""
    head = "".join(f"{line}\r\n" for line in ("#!AER-DAT3.1", "#Format: RAW", "#Source 1: DVS128",
                                                 "#Start-Time: 2017-03-02 10:00:00 (TZ-0800)", "#!END-HEADER"))
    ev = np.empty(t.size, _EVENT)
    ev["data"] = (x.astype(np.uint32) << 17) | (y.astype(np.uint32) << 2) | (p.astype(np.uint32) << 1) | 1
    ev["ts"] = (t & 0x7FFFFFFF).astype(np.int32)
    parts = [head.encode("ascii")]
    for lo in range(0, t.size, PACKET_EVENTS):
        chunk = ev[lo : lo + PACKET_EVENTS]
        n = chunk.size
        parts.append(_HEADER.pack(1, 1, 8, 4, int(t[lo]) >> 31, n, n, n) + chunk.tobytes())
    return b"".join(parts)


def _tar_gz(members: list[tuple[str, bytes]]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tf.addfile(info, io.BytesIO(data))
    return gzip.compress(raw.getvalue(), mtime=0)


def write_gesture_download(
    root: str | Path, n_train: int = 4, n_test: int = 2, events_per_sample: int = 20_000, seed: int = 1
) -> DemoDownload:
    """Write a generated DVS128 Gesture download folder (as IBM distributes it) under ``root``.

    Parameters
    ----------
    root : str or path
        Folder to write (created).
    n_train, n_test : int
        Recordings of each split (5 lightings per user; users 1.. for train, 24.. for test).
    events_per_sample : int
        Events in each gesture window.
    seed : int
        Seed of the made-up events.

    Returns
    -------
    DemoDownload
        The folder and every sample's events.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    out = DemoDownload(root)
    train, test = _stems(n_train, n_test)
    members: list[tuple[str, bytes]] = []
    for split, stems in (("train", train), ("test", test)):
        for stem in stems:
            cols: list[dict[str, np.ndarray]] = []
            rows = ["class,startTime_usec,endTime_usec"]
            now = int(rng.integers(1_000_000, 5_000_000))
            for cls in range(1, CLASSES + 1):
                quiet = int(rng.integers(300_000, 800_000))
                noise_t = np.sort(rng.integers(now, now + quiet, 20))
                cols.append({"t": noise_t, "x": rng.integers(0, SIZE, 20), "y": rng.integers(0, SIZE, 20),
                             "p": rng.integers(0, 2, 20).astype(np.uint8)})
                start = now + quiet
                end = start + int(rng.integers(3_000_000, 6_000_000))
                window = _window(rng, cls, start, end, events_per_sample)
                cols.append(window)
                rows.append(f"{cls},{start},{end}")
                out.samples[f"{cls - 1}/{stem}_0"] = {"split": split, "label": cls - 1, **window}
                now = end
            ev = {c: np.concatenate([w[c] for w in cols]) for c in "txyp"}
            members.append((f"DvsGesture/{stem}.aedat", _aedat(ev["t"], ev["x"], ev["y"], ev["p"])))
            members.append((f"DvsGesture/{stem}_labels.csv", ("\n".join(rows) + "\n").encode()))
    license_text = b"Generated stand-in for the DVS128 Gesture LICENSE.txt (the real data: IBM, CC BY 4.0).\n"
    readme = b"Generated stand-in for the DVS128 Gesture README.txt: made-up events, not recordings of gestures.\n"
    members += [
        ("DvsGesture/LICENSE.txt", license_text),
        ("DvsGesture/README.txt", readme),
        ("DvsGesture/trials_to_train.txt", "".join(f"{s}.aedat\n" for s in train).encode()),
        ("DvsGesture/trials_to_test.txt", "".join(f"{s}.aedat\n" for s in test).encode()),
    ]
    (root / "DvsGesture.tar.gz").write_bytes(_tar_gz(members))
    mapping = "action,label\n" + "".join(f"{a},{i + 1}\n" for i, a in enumerate(ACTIONS))
    (root / "gesture_mapping.csv").write_text(mapping, encoding="utf-8", newline="\n")
    (root / "LICENSE.txt").write_bytes(license_text)
    (root / "README.txt").write_bytes(readme)
    return out
