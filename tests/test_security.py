"""Hostile input: nobody let in.

- The package (``shardgen/``, ``loader/``) never unpickles, evaluates or runs a shell: its tokens are scanned.
- Archives are never a way out: tar/zip members named ``../x`` or ``/abs/x``, symbolic and hard links never make
  a file appear outside the output and temporary folders (DVS128 Gesture ``.tar.gz``, class-folder ``.zip``s).
- An ``index.json`` names shard files relative to itself only: a shard ``file`` that is a path out
  (``../``, absolute, backslashes, ``%2e%2e``) or a URL (``http://``, ``s3://``, ``file://``) is refused when the
  index is opened, before anything else is read, so only the user chooses hosts.
- Lengths claimed by a file are never allocated before the bytes are there: a zstd frame claiming 4 GB, msgpack
  headers claiming 2**31 bytes or elements, an events map with n = 10**12, a tar member of 8 GB, an AEDAT 3.1
  packet of 2**31 events, MAT, AEDAT 4, zip sizes … are refused with the library's own error while memory stays
  small (tracemalloc here, and an address-space cap in a subprocess).
"""

from __future__ import annotations

import copy
import functools
import gzip
import io
import json
import os
import struct
import subprocess
import sys
import tarfile
import tokenize
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zstandard

from loader import format as F
from loader import sampletar
from loader.errors import EventshardError
from loader.shards import open_shard_set
from shardgen.archive import ArchiveError, TarGzStream, read_zip_entry, zip_entry
from shardgen.convert import convert
from shardgen.datasets.base import DatasetError
from shardgen.formats import aedat2, aedat3, atis_bin, dat, es, evt2, evt3, mat
from shardgen.formats.aedat4 import read_aedat4
from tests.servers import FlakyHTTPServer

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("shardgen", "loader")

# ====================================================================================== no pickle, eval, shell

BANNED_MODULES = {"pickle", "_pickle", "cPickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"}


def scan_source(text: str) -> list[str]:
    """Forbidden constructs in Python source, found by its tokens (comments and docstrings do not count).

    A banned module named anywhere (``import pickle``, ``pickle.loads``, ``import_module("pickle")``), a call of
    the builtins ``eval``/``exec``, ``torch.load``, ``yaml.load``/``unsafe_load``, ``allow_pickle=True`` and
    ``shell=True``.
    """
    found = []
    toks = [t for t in tokenize.generate_tokens(io.StringIO(text).readline)
            if t.type not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT)]
    for i, tok in enumerate(toks):
        prev = toks[i - 1].string if i else ""
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        after = toks[i + 2].string if i + 2 < len(toks) else ""
        where = f"line {tok.start[0]}: {tok.line.strip()}"
        if tok.type == tokenize.NAME:
            if tok.string in BANNED_MODULES:
                found.append(where)
            elif tok.string in ("eval", "exec") and prev != "." and nxt == "(":
                found.append(where)
            elif tok.string in ("torch", "yaml") and nxt == "." and after in ("load", "unsafe_load", "full_load"):
                found.append(where)
            elif tok.string in ("allow_pickle", "shell") and nxt == "=" and after == "True":
                found.append(where)
        elif tok.type == tokenize.STRING and tok.string.strip("\"'rbRB") in BANNED_MODULES:
            found.append(where)
    return found


def _package_sources() -> list[Path]:
    files = sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))
    assert len(files) > 20
    return files


def test_no_pickle_eval_or_shell_in_the_package():
    findings = {str(p.relative_to(ROOT)): scan_source(p.read_text()) for p in _package_sources()}
    assert {k: v for k, v in findings.items() if v} == {}


def test_no_pickle_in_the_package_by_grep():
    """The same by plain text, comments included: no file even imports or calls the unsafe loaders."""
    needles = ("import pickle", "from pickle", "pickle.load", "cPickle", "cloudpickle", "import marshal",
               "marshal.load", "torch.load", "allow_pickle=True", "shell=True", "eval(", "exec(")
    hits = [f"{p.relative_to(ROOT)}: {n}" for p in _package_sources() for n in needles
            if n in p.read_text().replace(".eval(", "").replace(".exec(", "").replace("literal_eval(", "")]
    assert hits == []


@pytest.mark.parametrize("source", [
    "import pickle\n", "from pickle import loads\n", "import marshal as m\n", "x = dill.loads(b)\n",
    "importlib.import_module('pickle')\n", "eval(text)\n", "exec(code, {})\n", "torch.load(path)\n",
    "np.load(f, allow_pickle=True)\n", "subprocess.run(cmd, shell=True)\n", "yaml.load(s)\n",
])
def test_the_scan_finds_what_it_looks_for(source):
    assert scan_source(source), source


@pytest.mark.parametrize("source", [
    "model.eval()\n", "# pickle is never used\n", '"""No pickle, ever."""\n', "np.load(f)\n",
    "subprocess.run(cmd, shell=False)\n", "yaml.safe_load(s)\n", "picklable = 1\n",
])
def test_the_scan_lets_harmless_code_pass(source):
    assert scan_source(source) == [], source


# ============================================================================================ extraction


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


class Sandbox:
    """``tmp_path`` with a private temporary folder and canary paths hostile member names point at.

    :meth:`start` takes a listing of ``tmp_path``; :meth:`check` asserts that every path created since lies in
    ``out/`` or ``tmp/`` and that no canary file exists anywhere the names could lead.
    """

    def __init__(self, root: Path):
        self.root = root
        self.canary = root / "canary"
        self.names = {
            "dotdot": "../canary-dotdot.bin",
            "deep": "../" * 40 + str(self.canary / "deep.bin").lstrip("/"),  # reaches canary/ from any folder
            "absolute": str(self.canary / "absolute.bin"),
            "inside-out": "DvsGesture/../../canary-inside.bin",
        }
        self._before: set[str] = set()

    def start(self) -> None:
        self._before = _tree(self.root)

    def check(self) -> None:
        new = _tree(self.root) - self._before
        assert sorted(p for p in new if not p.startswith(("out", "tmp"))) == []
        assert not self.canary.exists()
        assert not [*self.root.glob("canary-*"), *self.root.parent.glob("canary-*"), *Path("/").glob("canary-*")]


@pytest.fixture
def sandbox(tmp_path, monkeypatch) -> Sandbox:
    """A :class:`Sandbox` in ``tmp_path``; temporary files (TMPDIR, also of worker processes) go to ``tmp/``."""
    import tempfile

    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return Sandbox(tmp_path)


def _tar_gz(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return gzip.compress(buf.getvalue(), mtime=0)


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.size, info.linkname, info.mtime = kind, size, link, 0
    return info


def _gesture_members(raw: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """The members of a generated ``DvsGesture.tar.gz`` (in order, with their bytes)."""
    with tarfile.open(raw / "DvsGesture.tar.gz", "r:gz") as tf:
        return [(m, tf.extractfile(m).read() if m.isreg() else b"") for m in tf.getmembers()]


def _gesture_download(raw: Path) -> None:
    from tests.gen_dvsgesture import write_gesture_download

    write_gesture_download(raw, n_train=1, n_test=1, events_per_sample=30, seed=5)


@pytest.mark.parametrize("kind", ["dotdot", "deep", "absolute", "inside-out"])
def test_gesture_archive_member_outside_its_folder_is_refused(sandbox, kind):
    tmp_path, names = sandbox.root, sandbox.names
    raw = tmp_path / "raw"
    _gesture_download(raw)
    members = _gesture_members(raw)
    name = names[kind] if kind != "dotdot" else "DvsGesture/../" + names[kind]
    members.insert(1, (_info(name, size=4), b"evil"))
    (raw / "DvsGesture.tar.gz").write_bytes(_tar_gz(members))
    sandbox.start()
    with pytest.raises(DatasetError, match="points outside the extraction folder"):
        convert("dvs128-gesture", raw, tmp_path / "out", workers=1, check_md5=False, progress=False)
    sandbox.check()
    assert not (tmp_path / "out" / F.INDEX_NAME).exists()


def test_gesture_archive_links_are_never_followed(sandbox):
    """Symbolic links, hard links, devices and FIFOs in the archive are passed over; the samples are unchanged."""
    tmp_path, names = sandbox.root, sandbox.names
    raw = tmp_path / "raw"
    _gesture_download(raw)
    clean = convert("dvs128-gesture", raw, tmp_path / "out" / "clean", workers=1, check_md5=False, progress=False)
    members = _gesture_members(raw)
    stem = next(m.name for m, _ in members if m.name.endswith(".aedat"))
    hostile = [
        (_info("DvsGesture/evil.aedat", tarfile.SYMTYPE, link="/etc/passwd"), b""),
        (_info("DvsGesture/evil_labels.csv", tarfile.SYMTYPE, link="../../../../etc/hostname"), b""),
        (_info(stem, tarfile.LNKTYPE, link="../../../../etc/passwd"), b""),  # a hard link shadowing a recording
        (_info("DvsGesture/dev.aedat", tarfile.CHRTYPE), b""),
        (_info("DvsGesture/fifo.aedat", tarfile.FIFOTYPE), b""),
        (_info("DvsGesture/escape", tarfile.SYMTYPE, link=names["absolute"]), b""),
    ]
    members[1:1] = hostile
    (raw / "DvsGesture.tar.gz").write_bytes(_tar_gz(members))
    sandbox.start()
    got = convert("dvs128-gesture", raw, tmp_path / "out" / "links", workers=1, check_md5=False, progress=False)
    sandbox.check()
    assert got["samples"] == clean["samples"]
    for split in ("train", "test"):
        a = (tmp_path / "out" / "clean" / f"{split}-000000.tar.zst").read_bytes()
        assert (tmp_path / "out" / "links" / f"{split}-000000.tar.zst").read_bytes() == a
    streamed = [str(m) for m, _, _ in TarGzStream(raw / "DvsGesture.tar.gz", hash_md5=False)]
    assert not any(n.startswith(("DvsGesture/evil", "DvsGesture/dev", "DvsGesture/fifo", "DvsGesture/escape"))
                   for n in streamed)


@pytest.mark.parametrize("name", ["", ".", "./", "C:x.aedat", "\\abs.aedat", "/etc/passwd", "a/../../b"])
def test_tar_stream_refuses_odd_member_names(tmp_path, name):
    """Names a tar header can hold that are not a plain relative path: refused, or streamed as a harmless name."""
    path = tmp_path / "a.tar.gz"
    path.write_bytes(_tar_gz([(_info(name, size=2), b"hi")]))
    try:
        members = [(str(m), r.read()) for m, _, r in TarGzStream(path, hash_md5=False)]
    except ArchiveError:
        return
    assert all(not Path(m).is_absolute() and ".." not in Path(m).parts and ":" not in m for m, _ in members)


def _zip_with(path: Path, extra: list[tuple[zipfile.ZipInfo | str, bytes]]) -> None:
    with zipfile.ZipFile(path, "a") as zf:
        for info, data in extra:
            zf.writestr(info, data)


def _symlink(name: str, target: str) -> tuple[zipfile.ZipInfo, bytes]:
    info = zipfile.ZipInfo(name)
    info.external_attr = 0o120777 << 16
    return info, target.encode()


def test_class_folder_zip_members_stay_inside(sandbox):
    """CIFAR10-DVS zips with members named out of the archive, absolute, with backslashes, and links."""
    from tests.gen_classfolders import write_cifar10dvs
    from tests.gen_rawfiles import aedat2_bytes, dvs128_address

    tmp_path, names = sandbox.root, sandbox.names
    gen = write_cifar10dvs(tmp_path / "raw", per_class=2)
    rec = aedat2_bytes(dvs128_address([1], [2], [1]), [10])
    _zip_with(gen.root / "airplane.zip", [
        (names["dotdot"].replace(".bin", ".aedat"), rec),
        (names["deep"].replace(".bin", ".aedat"), rec),
        (names["absolute"].replace(".bin", ".aedat"), rec),
        ("airplane\\..\\..\\canary-backslash.aedat", rec),
        ("C:/canary-drive/airplane/x.aedat", rec),
        _symlink("airplane/cifar10_airplane_77.aedat", "/etc/passwd"),
        _symlink("airplane/cifar10_airplane_78.aedat", "../../" + names["absolute"]),
    ])
    sandbox.start()
    s = convert("cifar10-dvs", gen.root, tmp_path / "out", workers=1, check_md5=False, progress=False,
                split={"train_ratio": 0.5, "seed": 1})
    sandbox.check()
    assert sum(s["samples"].values()) == len(gen.samples)
    skipped = "\n".join(s["skipped"])
    assert skipped.count("points outside") == 5 and skipped.count("symbolic link") == 2


def test_nested_zips_stay_inside(sandbox):
    """ASL-DVS: inner zips are copied to the temporary folder under generated names, whatever they are called."""
    from tests.gen_classfolders import write_asldvs
    from tests.gen_rawfiles import asl_mat_bytes

    tmp_path, names = sandbox.root, sandbox.names
    gen = write_asldvs(tmp_path / "raw", per_class=2)
    mat = asl_mat_bytes([1, 2], [3, 4], [5, 6], [0, 1])
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr(names["dotdot"].replace(".bin", ".mat"), mat)
        zf.writestr(names["absolute"].replace(".bin", ".mat"), mat)
        info, target = _symlink("a/a_0099.mat", "/etc/passwd")
        zf.writestr(info, target)
    outer = gen.root / "ICCV2019_DVS_dataset.zip"
    _zip_with(outer, [("../../canary-inner.zip", inner.getvalue()), (names["absolute"][:-4] + ".zip",
                                                                     inner.getvalue()), ("b.zip", inner.getvalue())])
    sandbox.start()
    s = convert("asl-dvs", gen.root, tmp_path / "out", workers=1, check_md5=False, progress=False,
                split={"train_ratio": 0.5, "seed": 1})
    sandbox.check()
    assert sum(s["samples"].values()) == len(gen.samples)
    assert list((tmp_path / "tmp").iterdir()) == []  # the copies of the inner zips are gone again


# ======================================================================================= index URLs

HOSTILE_FILES = [
    "../other/x.tar.zst",
    "http://evil.example/x.tar.zst",
    "s3://other-bucket/x",
    "../other/train-000000.tar.zst",
    "/etc/passwd",
    "/abs/train-000000.tar.zst",
    "http://evil.example/train-000000.tar.zst",
    "https://evil.example/x/train-000000.tar.zst",
    "s3://other-bucket/train-000000.tar.zst",
    "file:///etc/passwd",
    "file:///tmp/train-000000.tar.zst",
    "//evil.example/train-000000.tar.zst",
    "%2e%2e/train-000000.tar.zst",
    "..%2ftrain-000000.tar.zst",
    "%2e%2e%2ftrain-000000.tar.zst",
    "..\\train-000000.tar.zst",
    "job-0001-of-0002\\train-000000.tar.zst",
    "job-0001-of-0002/../../other/train-000000.tar.zst",
    "job-0001-of-0002/job-0001-of-0002/train-000000.tar.zst",
    "train-000000.tar.zst\n",
    "train-000000.tar.zst/..",
    "train-000000.tar.zst?x=1",
    "train-000000.tar.zst#x",
    "~/train-000000.tar.zst",
    "C:/train-000000.tar.zst",
    "\uff0e\uff0e/train-000000.tar.zst",
    "train-000000.tar.zst\x00.png",
    "",
    "train-000000.tar.zst ",
]


def _index(path: Path) -> dict:
    return json.loads((path / F.INDEX_NAME).read_text())


@pytest.mark.parametrize("name", HOSTILE_FILES)
def test_index_with_a_shard_outside_its_folder_is_refused(small_shard_set, tmp_path, name):
    index = _index(small_shard_set[0])
    index["splits"]["train"]["shards"][1]["file"] = name
    with pytest.raises(F.FormatError, match="bad file name"):
        F.validate_index(copy.deepcopy(index))
    with pytest.raises(F.FormatError):
        F.loads_index(json.dumps(index).encode())
    # through the loader: refused when the set is opened, before any shard is read
    (tmp_path / F.INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(F.FormatError, match="bad file name"):
        open_shard_set(tmp_path)


def test_index_cannot_send_the_loader_to_another_host(small_shard_set, tmp_path):
    """Over HTTP: only the index is requested; the host the index names hears nothing."""
    set_dir, evil_dir = tmp_path / "set", tmp_path / "evil"
    set_dir.mkdir()
    evil_dir.mkdir()
    for p in small_shard_set[0].iterdir():
        (evil_dir / p.name).write_bytes(p.read_bytes())
    with FlakyHTTPServer(set_dir) as good, FlakyHTTPServer(evil_dir) as evil:
        for target in (evil.url("train-000000.tar.zst"), "//" + evil.url("train-000000.tar.zst").split("//", 1)[1]):
            index = _index(small_shard_set[0])
            index["splits"]["train"]["shards"][0]["file"] = target
            (set_dir / F.INDEX_NAME).write_text(json.dumps(index))
            with pytest.raises(F.FormatError, match="bad file name"):
                open_shard_set(good.url(""))
        assert evil.requests == []
        assert {p for _, p, _ in good.requests} == {"/" + F.INDEX_NAME}


@pytest.mark.parametrize("how", ["folder", "index-path", "file-url"])
def test_shard_urls_resolve_next_to_the_index(small_shard_set, how):
    folder = small_shard_set[0]
    url = {"folder": str(folder), "index-path": str(folder / F.INDEX_NAME), "file-url": folder.as_uri()}[how]
    ss = open_shard_set(url)
    for split in ("train", "test"):
        for shard in ss.shards(split):
            assert ss.path(shard).startswith(ss.base.rstrip("/") + "/")
            assert Path(ss.path(shard)).resolve().parent == folder.resolve()
            assert ss.shard_url(shard).startswith(ss.url.rstrip("/") + "/")
    assert ss.read_sample("train", 0)  # and they are the right files


@pytest.mark.parametrize("field,value", [
    ("sensor_size", [10**9, 10**9]), ("sensor_size", [128, 128, 2]), ("sensor_size", "128x128"),
    ("sensor_size", [0, 128]), ("sensor_size", [True, 128]), ("classes", "abc"), ("classes", [1, 2]),
])
def test_index_sizes_are_checked(small_shard_set, field, value):
    """The sensor size sets the size of every frame: an index cannot ask for 10**18 pixels."""
    index = _index(small_shard_set[0])
    index[field] = value
    with pytest.raises(F.FormatError, match=field):
        F.validate_index(index)


@pytest.mark.parametrize("data", [b"[" * 100_000, b'{"a":' * 50_000, b"1" * 10_000, b'{"format": 1e999999}'])
def test_index_json_bombs_are_format_errors(data):
    with pytest.raises(F.FormatError):
        F.loads_index(data)


# ====================================================================================== length bombs


def zstd_frame(claim: int, payload: bytes = b"hello") -> bytes:
    """A zstd frame whose header claims ``claim`` content bytes, holding one raw block of ``payload``."""
    header = b"\x28\xb5\x2f\xfd" + bytes([0xC0, 0x00]) + struct.pack("<Q", claim)  # 8-byte content size
    return header + (1 | (len(payload) << 3)).to_bytes(3, "little") + payload


@functools.cache
def _many_events_frame() -> bytes:
    """2**28 events claimed by a 32 MiB polarity column of zeros (a legal size; ~1 KB compressed), no x, y, dt.

    Allocating ``t`` for them before checking the other columns would take 2 GiB.
    """
    many_p = 1 << 25
    return _frame_of(_events_map(n=8 * many_p, p=bytes(many_p), x=b"", y=b"", dt=b""))


def _frame_of(events: bytes, label: bytes | None = None) -> bytes:
    """A compressed sample frame with the given events payload (and a valid label)."""
    label = label if label is not None else F.encode_label({"label": 0, "class": "c"})
    return F.compress_frame(F.sample_tar("0/a_0", events, label), F.new_compressor())


def _events_map(**fields) -> bytes:
    base = {"n": 3, "t0": 0, "dt_dtype": "u1", "dt": b"\x01\x01", "xy_dtype": "u1", "x": b"\x00\x01\x02",
            "y": b"\x00\x01\x02", "p": b"\x05"}
    base.update(fields)
    return msgpack.packb(base, use_bin_type=True)


def _tar_member_claiming(size: int) -> bytes:
    header = sampletar._tar_header("0/a_0" + F.EVENTS_SUFFIX, size)
    return header + b"\x00" * 1024


def _aedat31(packet: bytes) -> bytes:
    from tests.gen_dvsgesture import aedat31_header

    return aedat31_header() + packet


def _aedat31_packet(etype: int, esize: int, capacity: int) -> bytes:
    return struct.pack("<hhiiiiii", etype, 1, esize, 4, 0, capacity, capacity, capacity) + bytes(64)


def _mat_claiming(count: int | None = None, dims: tuple[int, int] | None = None) -> bytes:
    from tests.gen_rawfiles import asl_mat_bytes

    data = bytearray(asl_mat_bytes([1, 2], [3, 4], [5, 6], [0, 1]))
    if count is not None:
        data[132:136] = struct.pack("<I", count)  # the first variable's byte count
    if dims is not None:
        at = data.index(struct.pack("<iiii", 5, 8, 2, 1))  # miINT32, 8 bytes, dims 2 x 1
        data[at + 8 : at + 16] = struct.pack("<ii", *dims)
    return bytes(data)


def _aedat4(hsize: int | None = None, packet: int | None = None) -> bytes:
    from tests.fuzz_targets import aedat4_bytes

    data = bytearray(aedat4_bytes([1, 2, 3], [1, 2, 3], [1, 2, 3], [0, 1, 0], packets=1))
    if hsize is not None:
        data[14:18] = struct.pack("<I", hsize)
    if packet is not None:
        first = 18 + struct.unpack_from("<I", data, 14)[0]
        data[first + 4 : first + 8] = struct.pack("<i", packet)
    return bytes(data)


def _zip_claiming(tmp: Path, size: int, csize: int | None = None, stored: bool = False) -> Callable[[], object]:
    """Read a zip member whose central directory claims ``size`` bytes (and ``csize`` stored bytes)."""

    def run() -> object:
        path = tmp / ("stored.zip" if stored else "deflated.zip")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a/x.bin", b"0123456789" * 10)
        with zipfile.ZipFile(path) as zf:
            entry = list(zip_entry(zf.getinfo("a/x.bin")))
        entry[2] = size
        if csize is not None:
            entry[1] = csize
        return read_zip_entry(str(path), "a/x.bin", tuple(entry))

    return run


def _tar_gz_claiming(tmp: Path, size: int) -> Callable[[], object]:
    """Stream a tar.gz whose only member's header claims ``size`` bytes (4 KiB follow)."""

    def run() -> object:
        path = tmp / "claim.tar.gz"
        raw = _info("DvsGesture/big.aedat", size=size).tobuf(tarfile.GNU_FORMAT) + b"\x01" * 4096
        path.write_bytes(gzip.compress(raw, mtime=0))
        return [len(r.read()) for _, _, r in TarGzStream(path, hash_md5=False)]

    return run


def _raw(fmt: str, data: bytes, **kw) -> Callable[[], object]:
    def run() -> object:
        readers = {"aedat2": aedat2.read_aedat2, "aedat3": aedat3.read_aedat3, "dat": dat.read_dat,
                   "es": es.read_es, "evt2": evt2.read_evt2, "evt3": evt3.read_evt3,
                   "atis_bin": atis_bin.read_atis_bin, "mat": mat.read_asl_mat}
        return readers[fmt](data, f"bomb.{fmt}", **kw)

    return run


def _aedat4_file(tmp: Path, data: bytes, **kw) -> Callable[[], object]:
    def run() -> object:
        path = tmp / "bomb.aedat4"
        path.write_bytes(data)
        return read_aedat4(path, **kw)

    return run


def bombs(tmp: Path) -> dict[str, Callable[[], object]]:
    """Inputs whose headers claim far more than they hold; each must end in the library's own error."""
    dctx = zstandard.ZstdDecompressor()
    return {
        "zstd frame claiming 4 GB": lambda: F.decode_sample(zstd_frame(4 << 30), dctx),
        "zstd frame claiming 2**64-1": lambda: F.decode_sample(zstd_frame(2**64 - 1), dctx),
        "zstd frame claiming 1.9 GB (under the limit)": lambda: F.decode_sample(zstd_frame(1_900_000_000), dctx),
        "zstd frame claiming 1.9 GB, real block": lambda: F.decode_sample(
            zstd_frame(1_900_000_000, F.sample_tar("0/a_0", _events_map(), F.encode_label({"label": 0, "class": "c"}))),
            dctx),
        "msgpack bin32 claiming 2**31 bytes": lambda: F.decode_events(b"\x81\xa1x\xc6\x80\x00\x00\x00"),
        "msgpack bin32 claiming 2**31 bytes, in a frame": lambda: F.decode_sample(
            _frame_of(b"\x81\xa1x\xc6\x80\x00\x00\x00"), dctx),
        "msgpack array32 claiming 2**32-1 items": lambda: F.decode_events(b"\xdd\xff\xff\xff\xff"),
        "msgpack map32 claiming 2**32-1 pairs": lambda: F.decode_label(b"\xdf\xff\xff\xff\xff"),
        "msgpack str32 claiming 2**31 bytes": lambda: F.decode_label(b"\x81\xa5label\xdb\x80\x00\x00\x00"),
        "events map with n = 10**12": lambda: F.decode_events(_events_map(n=10**12)),
        "events map with n = 2**64": lambda: F.decode_events(_events_map(n=2**64 - 1)),
        "events map with n = MAX_EVENTS, p short": lambda: F.decode_events(_events_map(n=F.MAX_EVENTS)),
        "events map with n = inf": lambda: F.decode_events(_events_map(n=float("inf"))),
        "events map with 2**28 events, only p": lambda: F.decode_sample(_many_events_frame(), dctx, ("t",)),
        "tar member claiming 8 GB": lambda: F.split_sample_tar(_tar_member_claiming(8**11 - 1)),
        "tar member claiming 8 GB, in a frame": lambda: F.decode_sample(
            F.compress_frame(_tar_member_claiming(8**11 - 1), F.new_compressor()), dctx),
        "aedat3 polarity packet of 2**31-1 events": _raw("aedat3", _aedat31(_aedat31_packet(1, 8, 2**31 - 1))),
        "aedat3 polarity packet of 2**31-1 events, lenient": _raw(
            "aedat3", _aedat31(_aedat31_packet(1, 8, 2**31 - 1)), allow_truncated=True),
        "aedat3 packet of (2**31-1) x (2**31-1) bytes": _raw("aedat3", _aedat31(_aedat31_packet(3, 2**31 - 1,
                                                                                                2**31 - 1))),
        "aedat3 packet with negative capacity": _raw("aedat3", _aedat31(_aedat31_packet(1, 8, -(2**31)))),
        "aedat4 IOHeader claiming 4 GB": _aedat4_file(tmp, _aedat4(hsize=2**32 - 1)),
        "aedat4 packet claiming 2 GB": _aedat4_file(tmp, _aedat4(packet=2**31 - 1)),
        "aedat4 packet claiming 2 GB, lenient": _aedat4_file(tmp, _aedat4(packet=2**31 - 1), allow_truncated=True),
        "mat variable claiming 4 GB": _raw("mat", _mat_claiming(count=2**32 - 1)),
        "mat dims (2**31-1) x (2**31-1)": _raw("mat", _mat_claiming(dims=(2**31 - 1, 2**31 - 1))),
        "tar.gz member claiming 8 GB": _tar_gz_claiming(tmp, 8**11 - 1),
        "zip member claiming 4 GB (deflated)": _zip_claiming(tmp, 2**32 - 2),
        "zip member claiming 4 GB (stored)": _zip_claiming(tmp, 2**32 - 2, csize=2**32 - 2, stored=True),
    }


def _peak(fn: Callable[[], object]) -> tuple[EventshardError | None, int]:
    """Run ``fn``; return the library error it raised (``None`` if it returned) and the traced memory peak."""
    err = None
    tracemalloc.start()
    try:
        fn()
    except EventshardError as exc:
        err = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return err, peak


BOMB_NAMES = sorted(bombs(Path("/nonexistent")))


@pytest.mark.parametrize("name", BOMB_NAMES)
def test_length_bombs_are_refused_without_allocating(tmp_path, name):
    err, peak = _peak(bombs(tmp_path)[name])
    assert err is not None or name.endswith("lenient"), f"{name}: accepted"
    # the 32 MiB column of the 2**28 events is really there (and legal; 2 GiB for t are not allocated); the tar.gz
    # member is read in 16 MiB steps
    limit = {"events map with 2**28 events, only p": 200 << 20, "tar.gz member claiming 8 GB": 40 << 20}
    assert peak < limit.get(name, 8 << 20), f"{name}: peak {peak / 2**20:.1f} MiB"


_CAPPED = """
import json, resource, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from tests.test_security import bombs
from loader.errors import EventshardError
fns = bombs(Path({tmp!r}))
with open("/proc/self/status") as f:
    vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (vm + (768 << 20), resource.getrlimit(resource.RLIMIT_AS)[1]))
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {{}}
for name, fn in fns.items():
    try:
        fn()
    except EventshardError:
        out[name] = "library error"
    except BaseException as exc:
        out[name] = type(exc).__name__ + ": " + str(exc)[:200]
    else:
        out[name] = "lenient" if name.endswith("lenient") else "accepted"
out["rss growth (MiB)"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
print(json.dumps(out))
"""


def test_length_bombs_under_an_address_space_cap(tmp_path):
    """All the bombs in one process that may map only 768 MiB more than after its imports: no MemoryError."""
    code = _CAPPED.format(root=str(ROOT), tmp=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, "RUST_BACKTRACE": "0"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    growth = out.pop("rss growth (MiB)")
    assert {k: v for k, v in out.items() if v not in ("library error", "lenient")} == {}
    assert growth < 300, growth


def _bigger(seed: bytes, extra: int, rng: np.random.Generator) -> bytes:
    return seed + rng.integers(0, 256, extra, dtype=np.uint8).tobytes()


@pytest.mark.parametrize("fmt", ["aedat2", "aedat3", "dat", "es", "evt2", "evt3", "atis_bin"])
def test_raw_reader_memory_follows_the_file_not_its_header(fmt):
    """Headers claiming the largest sensor (or count) do not change what is allocated: it follows the file size.

    The seeds carry the largest geometry their header can state (``% Width 65535``, ES 65535 x 65535, ``%
    geometry 65535x65535``); 256 KiB of random body bytes follow. Events ≤ what the bytes can hold, and the
    peak stays within a constant factor of the file.
    """
    from tests import fuzz_targets as ft

    seed = {
        "aedat2": lambda: ft.seeds("aedat2")[0],
        "aedat3": lambda: ft.seeds("aedat3")[0],
        "dat": lambda: ft.seeds("dat")[1].replace(b"% Width 304", b"% Width 65535"),
        "es": lambda: ft.seeds("es")[0][:16] + b"\xff\xff\xff\xff" + ft.seeds("es")[0][20:],
        "evt2": lambda: ft.seeds("evt2")[0].replace(b"% geometry 640x480", b"% geometry 65535x65535"),
        "evt3": lambda: ft.seeds("evt3")[0].replace(b"height=720;width=1280", b"height=65535;width=65535"),
        "atis_bin": lambda: ft.seeds("atis_bin")[0],
    }[fmt]()
    data = _bigger(seed, 1 << 18, np.random.default_rng(0))
    if fmt == "aedat3":  # one more packet whose capacity covers exactly the random bytes
        data = seed + _aedat31_packet(1, 8, (1 << 18) // 8)[:28] + data[len(seed):]
    per_event = {"evt3": 12 / 2, "evt2": 1 / 4, "es": 1 / 5, "atis_bin": 1 / 5}.get(fmt, 1 / 8)  # events per byte
    err, peak = _peak(_raw(fmt, data, allow_truncated=True))
    if err is None:
        ev = _raw(fmt, data, allow_truncated=True)()
        n = len(ev) if hasattr(ev, "__len__") else len(ev.t)
        assert n <= per_event * len(data)
    assert peak < 160 * len(data) + (4 << 20), f"{fmt}: peak {peak / 2**20:.1f} MiB for {len(data)} bytes"
