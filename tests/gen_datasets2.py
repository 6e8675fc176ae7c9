"""Generated downloads of the second-wave 2-D datasets, laid out as their authors ship them.

- N-CARS: ``Prophesee_Dataset_n_cars.zip`` ⊃ ``n-cars_train.zip`` / ``n-cars_test.zip`` ⊃
  ``<split>/<cars|background>/obj_<n>_td.dat`` (Prophesee DAT Event2D, :func:`tests.gen_eventfiles.encode_dat`).
- NAVGesture: ``navgesture-<walk|sit>.zip`` ⊃ ``userNN.zip`` ⊃ ``userNN/userNN_<gesture>_<k>_td.dat``
  (kAER ATIS TD ``.dat``: ``%`` header lines, type and size bytes, uint64 LE words: t bits 0–31,
  x bits 32–40, y bits 41–48, p bit 49; :func:`atis_td_dat_bytes`).
- DVS-Lip: ``DVS-Lip.zip`` ⊃ ``DVS-Lip/<train|test>/<word>/<n>.npy`` (structured ``t i4, x i1, y i1, p i1``).
- HARDVS: ``MINI_HARDVS_files.zip`` ⊃ ``MINI_HARDVS_files/action_NNN.zip`` ⊃ ``<sample>.npz``; label lists
  ``<split>_label.txt`` with lines ``action_NNN/<sample> <N-1>``.
- ES-ImageNet: the extracted ``ES-imagenet-0.18/`` (``train/class<N>/class<N>_<k>.npz``,
  ``val/ILSVRC2012_val_<8 digits>.npz``, ``vallabel.txt``); npz ``pos``/``neg`` uint8 ``(n, 3)`` rows
  ``(x, y, t)`` as the authors' converter writes them.
- Bullying10K: ``<category>.zip`` ⊃ ``<category>/<session>/dvSave-<date>.npy``: pickled object arrays of
  structured event packets (dv-processing's ``timestamp, x, y, polarity``), as ``np.save`` writes a list.

Written from the formats' documentation and the authors' converters, not from the parsers.
"""

from __future__ import annotations

import hashlib
import io
import struct
from pathlib import Path

import numpy as np

from tests.gen_classfolders import _zip_bytes
from tests.gen_eventfiles import encode_dat


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _counts(rng: np.random.Generator, n: int, max_events: int, empty: bool, one: bool = True) -> list[int]:
    counts = [int(c) for c in rng.integers(2, max_events + 1, size=n)]
    if one and n > 1:
        counts[1] = 1
    if empty and n:
        counts[0] = 0
    return counts


def _sorted_times(rng: np.random.Generator, n: int, span: int, start: int = 0) -> np.ndarray:
    return (start + np.sort(rng.integers(0, span, size=n))).astype(np.int64)


class Download:
    """A generated download: RAW folder, md5 of its files, samples ``(split, key) → (label, events, member)``."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.md5: dict[str, str] = {}
        self.samples: dict[tuple[str, str], tuple[int, dict[str, np.ndarray], str]] = {}

    def write(self, name: str, data: bytes) -> None:
        (self.root / name).parent.mkdir(parents=True, exist_ok=True)
        (self.root / name).write_bytes(data)
        self.md5[name] = _md5(data)


# --------------------------------------------------------------------------------------------------- N-CARS


def write_ncars(root: Path, per_class: int = 4, seed: int = 10, max_events: int = 300) -> Download:
    """Outer zip ⊃ two inner zips; stems repeat across ``cars/`` and ``background/``."""
    rng = np.random.default_rng(seed)
    gen = Download(root)
    inner = {}
    for split in ("train", "test"):
        members = {}
        for ci, cls in enumerate(("background", "cars")):
            for k, n in enumerate(_counts(rng, per_class, max_events, empty=split == "train" and ci == 0)):
                stem = f"obj_{k:06d}_td"  # the same stems in both classes
                ev = {"t": _sorted_times(rng, n, 100_000), "x": rng.integers(0, 120, n), "y": rng.integers(0, 100, n),
                      "p": rng.integers(0, 2, n)}
                member = f"{split}/{cls}/{stem}.dat"
                members[member] = encode_dat(ev["t"], ev["x"], ev["y"], ev["p"])
                gen.samples[(split, f"{cls}/{stem}")] = (ci, ev, member)
        inner[f"n-cars_{split}.zip"] = _zip_bytes(members)
    gen.write("Prophesee_Dataset_n_cars.zip", _zip_bytes(inner, dirs=False))
    return gen


# ----------------------------------------------------------------------------------------------- NAVGesture

NAV_GESTURES = ("le", "ri", "up", "do", "ho", "se")


def atis_td_dat_bytes(t, x, y, p, header: bool = True, event_type: int = 0) -> bytes:
    """kAER ATIS TD ``.dat``: ``% `` lines, type byte, size byte 8, uint64 LE (t | x << 32 | y << 41 | p << 49)."""
    t, x, y, p = (np.asarray(a, dtype=np.uint64).reshape(-1) for a in (t, x, y, p))
    assert (t < 2**32).all() and (x < 512).all() and (y < 256).all() and (p < 2).all()
    word = t | (x << np.uint64(32)) | (y << np.uint64(41)) | (p << np.uint64(49))
    head = b""
    if header:
        head = b"% Data file containing TD events.\n% Version 2\n% Date 2017-02-14 10:00:00\n"
        head += bytes([event_type, 8])
    return head + word.astype("<u8").tobytes()


def write_navgesture(root: Path, which: str = "walk", users: int = 3, per_gesture: int = 2, seed: int = 11,
                     max_events: int = 400, shuffled: bool = False) -> Download:
    """``navgesture-<which>.zip`` ⊃ ``userNN.zip`` ⊃ ``userNN/userNN_<g>_<k>_td.dat``.

    ``shuffled``: some time stamps go backwards (SpikingJelly's reader drops and re-orders those).
    Events hold raw ATIS coordinates (``y`` before SpikingJelly's ``239 - y``).
    """
    rng = np.random.default_rng(seed)
    gen = Download(root)
    inner = {}
    for u in range(1, users + 1):
        user = f"user{u:02d}"
        members = {}
        for g in NAV_GESTURES:
            for k, n in enumerate(_counts(rng, per_gesture, max_events, empty=False, one=u == 1)):
                t = _sorted_times(rng, n, 3_000_000, start=int(rng.integers(0, 2**31)))
                if shuffled and n > 4:
                    swap = rng.choice(n - 1, size=max(1, n // 10), replace=False)
                    t[swap], t[swap + 1] = t[swap + 1].copy(), t[swap].copy()
                    t[n // 2] = t[n // 2] - 5000 if t[n // 2] >= 5000 else t[n // 2]
                ev = {"t": t, "x": rng.integers(0, 304, n), "y": rng.integers(0, 240, n), "p": rng.integers(0, 2, n)}
                stem = f"{user}_{g}_{k}_td"
                member = f"{user}/{stem}.dat"
                members[member] = atis_td_dat_bytes(ev["t"], ev["x"], ev["y"], ev["p"])
                gen.samples[("all", f"{g}/{stem}")] = (sorted(NAV_GESTURES).index(g), ev, member)
        inner[f"{user}.zip"] = _zip_bytes(members)
    gen.write(f"navgesture-{which}.zip", _zip_bytes(inner, dirs=False))
    return gen


# -------------------------------------------------------------------------------------------------- DVS-Lip

LIP_DTYPE = np.dtype([("t", "<i4"), ("x", "i1"), ("y", "i1"), ("p", "i1")])


def lip_npy_bytes(ev: dict[str, np.ndarray]) -> bytes:
    arr = np.zeros(len(ev["t"]), dtype=LIP_DTYPE)
    for c in "txyp":
        arr[c] = ev[c]
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def write_dvslip(root: Path, words: tuple[str, ...] = ("accused", "between", "young"), per_word: int = 3,
                 seed: int = 12, max_events: int = 500) -> Download:
    """``DVS-Lip.zip`` ⊃ ``DVS-Lip/<split>/<word>/<n>.npy``; file numbers repeat across words."""
    rng = np.random.default_rng(seed)
    gen = Download(root)
    members = {}
    for split in ("train", "test"):
        for wi, word in enumerate(words):
            for k, n in enumerate(_counts(rng, per_word, max_events, empty=split == "train" and wi == 0)):
                ev = {"t": _sorted_times(rng, n, 1_200_000), "x": rng.integers(0, 128, n), "y": rng.integers(0, 128, n),
                      "p": rng.integers(0, 2, n)}
                member = f"DVS-Lip/{split}/{word}/{k}.npy"
                members[member] = lip_npy_bytes(ev)
                gen.samples[(split, f"{word}/{k}")] = (wi, ev, member)
    gen.write("DVS-Lip.zip", _zip_bytes(members))
    return gen


# --------------------------------------------------------------------------------------------------- HARDVS


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def write_hardvs(root: Path, classes: int = 3, per_split: int = 2, seed: int = 13, max_events: int = 500,
                 crlf: bool = False) -> Download:
    """``MINI_HARDVS_files.zip`` ⊃ ``MINI_HARDVS_files/action_NNN.zip`` ⊃ ``dvSave-….npz``; label lists."""
    rng = np.random.default_rng(seed)
    gen = Download(root)
    inner = {}
    lists: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for c in range(1, classes + 1):
        cls = f"action_{c:03d}"
        members = {}
        k = 0
        for split in ("train", "val", "test"):
            for j, n in enumerate(_counts(rng, per_split, max_events, empty=c == 1 and split == "train")):
                stem = f"dvSave-2021_10_{c:02d}_19_{k:02d}_{j:02d}"
                k += 1
                ev = {"t": _sorted_times(rng, n, 4_000_000, start=int(rng.integers(0, 2**40))),
                      "x": rng.integers(0, 346, n).astype(np.int16), "y": rng.integers(0, 260, n).astype(np.int16),
                      "p": rng.integers(0, 2, n).astype(np.int8)}
                members[f"{stem}.npz"] = npz_bytes(t=ev["t"], x=ev["x"], y=ev["y"], p=ev["p"])
                lists[split].append(f"{cls}/{stem} {c - 1}")
                gen.samples[(split, f"{cls}/{stem}")] = (c - 1, ev, f"{stem}.npz")
        inner[f"MINI_HARDVS_files/{cls}.zip"] = _zip_bytes(members, dirs=False)
    for c in range(classes + 1, 301):  # the release has all 300 class zips (SpikingJelly opens each)
        inner[f"MINI_HARDVS_files/action_{c:03d}.zip"] = _zip_bytes({}, dirs=False)
    gen.write("MINI_HARDVS_files.zip", _zip_bytes(inner))
    nl = "\r\n" if crlf else "\n"
    for split, lines in lists.items():
        gen.write(f"{split}_label.txt", (nl.join(lines) + nl).encode())
    return gen


# ---------------------------------------------------------------------------------------------- ES-ImageNet


def es_npz_bytes(pos: np.ndarray, neg: np.ndarray) -> bytes:
    return npz_bytes(pos=pos.astype(np.uint8), neg=neg.astype(np.uint8))


def write_esimagenet(root: Path, classes: int = 3, per_class: int = 3, val: int = 5, seed: int = 14,
                     max_events: int = 400) -> Download:
    """The extracted ``ES-imagenet-0.18/`` folder; rows ``(x, y, t)`` with t in 0…7 (many equal times)."""
    rng = np.random.default_rng(seed)
    gen = Download(root)
    base = "ES-imagenet-0.18"

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        m = int(rng.integers(0, n + 1))
        rows = lambda k: np.stack([rng.integers(0, 256, k), rng.integers(0, 256, k), rng.integers(0, 8, k)], 1)  # noqa: E731
        return rows(m), rows(n - m)

    for c in range(classes):
        for k, n in enumerate(_counts(rng, per_class, max_events, empty=c == 0)):
            pos, neg = sample(n)
            if n == 1:
                pos, neg = pos[:1] if len(pos) else neg[:1], neg[:0]
            name = f"train/class{c}/class{c}_{k}.npz"
            gen.write(f"{base}/{name}", es_npz_bytes(pos, neg))
            gen.samples[("train", name[:-4])] = (c, {"pos": pos, "neg": neg}, name)
    lines = []
    for v in range(val):
        label = v % classes  # every class gets validation samples once val >= classes
        pos, neg = sample(int(rng.integers(1, max_events)))
        stem = f"ILSVRC2012_val_{v * 7 + 1:08d}"
        gen.write(f"{base}/val/{stem}.npz", es_npz_bytes(pos, neg))
        lines.append(f"{stem}.npz {label} {int(rng.integers(43, 255))} 254")
        gen.samples[("test", f"val/{stem}")] = (label, {"pos": pos, "neg": neg}, f"val/{stem}.npz")
    gen.write(f"{base}/vallabel.txt", ("\n".join(lines) + "\n").encode())
    return gen


# ---------------------------------------------------------------------------------------------- Bullying10K

BULLYING_CATEGORIES = ("handshake", "slapping", "punching", "walking", "fingerguess", "strangling", "greeting",
                       "pushing", "hairgrabs", "kicking")
DV_DTYPE = np.dtype([("timestamp", "<i8"), ("x", "<i2"), ("y", "<i2"), ("polarity", "i1")])


def bullying_npy_bytes(packets: list[np.ndarray]) -> bytes:
    """``np.save`` of a list of structured packets: an object array, pickled into the ``.npy`` body."""
    arr = np.empty(len(packets), dtype=object)
    for i, pk in enumerate(packets):
        arr[i] = pk
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def write_bullying10k(root: Path, categories: tuple[str, ...] = ("handshake", "punching", "walking"),
                      sessions: int = 2, per_session: int = 4, seed: int = 15, max_events: int = 400,
                      repeat_names: bool = True) -> Download:
    """``<cat>.zip`` ⊃ ``<cat>/<cat>_<p>_<p>_<L|R>_<dark|light>/dvSave-<date>.npy``.

    With ``repeat_names`` the same file names occur in two sessions of a category (as in the real
    lists), which SpikingJelly's ``<label>/<stem>.npz`` overwrites. Keys are ``<cat>/<session>/<stem>``;
    the split is left to the test.
    """
    rng = np.random.default_rng(seed)
    gen = Download(root)
    for ci, cat in enumerate(categories):
        members = {}
        for s in range(sessions):
            session = f"{cat}_p{s}_q{s}_{'LR'[s % 2]}_{('dark', 'light')[s % 2]}"
            for k in range(per_session):
                day = k if repeat_names else s * per_session + k
                stem = f"dvSave-2022_02_25_16_{day:02d}_{ci:02d}"
                n_packets = 0 if (ci, s, k) == (0, 0, 0) else int(rng.integers(1, 4))  # the first holds no packet
                packets = []
                t0 = int(rng.integers(10**15, 2 * 10**15))
                for _ in range(n_packets):
                    n = 1 if (ci, s, k) == (0, 0, 1) else int(rng.integers(1, max_events))
                    pk = np.zeros(n, DV_DTYPE)
                    pk["timestamp"] = t0 + np.sort(rng.integers(0, 10**6, n))
                    pk["x"], pk["y"] = rng.integers(0, 346, n), rng.integers(0, 260, n)
                    pk["polarity"] = rng.integers(0, 2, n)
                    t0 = int(pk["timestamp"][-1])
                    packets.append(pk)
                member = f"{cat}/{session}/{stem}.npy"
                members[member] = bullying_npy_bytes(packets)
                cat_ev = np.concatenate(packets) if packets else np.zeros(0, DV_DTYPE)
                ev = {"t": cat_ev["timestamp"], "x": cat_ev["x"], "y": cat_ev["y"], "p": cat_ev["polarity"]}
                gen.samples[(None, member[:-4])] = (BULLYING_CATEGORIES.index(cat), ev, member)  # type: ignore[index]
        gen.write(f"{cat}.zip", _zip_bytes(members))
    return gen


def struct_pack_u64(values) -> bytes:
    """Little-endian uint64 words (helper for hand-made damaged files)."""
    return b"".join(struct.pack("<Q", int(v)) for v in values)
