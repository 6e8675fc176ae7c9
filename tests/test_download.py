"""``shardgen.download.fetch_resources`` against real servers on 127.0.0.1 (HTTP with ranges, moto S3, local folders).

The HTTP server is :class:`tests.servers.RangeHTTPServer` extended here to record every request, to cut the
connection after N bytes of a body, and to ignore ``Range`` headers (answering 200 with the whole file).
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from shardgen import download as dl
from shardgen.datasets.base import DatasetError, Resource
from shardgen.download import DownloadError, fetch_resources, format_report, where_to_get
from tests.servers import FlakyHTTPServer

SIZES = {"a.bin": 300_000, "b.bin": 200_003}
CUT_AT = 100_000


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@pytest.fixture
def files(tmp_path: Path) -> dict[str, bytes]:
    """Random files in ``tmp_path/srv`` (the served folder)."""
    srv = tmp_path / "srv"
    srv.mkdir()
    out = {}
    for i, (name, size) in enumerate(SIZES.items()):
        out[name] = os.urandom(size) if i % 2 else bytes(reversed(os.urandom(size)))
        (srv / name).write_bytes(out[name])
    return out


@pytest.fixture
def server(tmp_path: Path, files: dict[str, bytes]):
    with FlakyHTTPServer(tmp_path / "srv") as s:
        yield s


def _resources(files: dict[str, bytes], server: FlakyHTTPServer | None = None) -> list[Resource]:
    return [
        Resource(name, server.url(name) if server else None, _md5(data), page=f"https://example.org/{name}")
        for name, data in files.items()
    ]


def _fetch(resources: list[Resource], raw: Path, **kw: Any) -> tuple[dl.DownloadReport, list[str]]:
    lines: list[str] = []
    kw.setdefault("backoff", 0.01)
    rep = fetch_resources(resources, raw, log=lines.append, **kw)
    return rep, lines


def _assert_complete(raw: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        assert (raw / name).read_bytes() == data
        assert not (raw / (name + ".part")).exists()


def test_fetch_from_http_server(tmp_path, files, server):
    raw = tmp_path / "raw"
    rep, lines = _fetch(_resources(files, server), raw)
    _assert_complete(raw, files)
    assert [r.file for r in rep.fetched] == list(files)
    assert rep.already_present == [] and rep.manual == []
    assert rep.bytes_downloaded == sum(SIZES.values())
    assert rep.resumed_count == 0
    assert all(server.gets(n) == [None] for n in files)  # one plain GET each
    assert any("a.bin: done" in line and "md5 ok" in line for line in lines)
    text = format_report(rep)
    assert "fetched        a.bin" in text and "2 fetched, 0 already there, 0 to get by hand" in text


def test_skip_when_present_with_right_md5(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    for name, data in files.items():
        (raw / name).write_bytes(data)
    rep, lines = _fetch(_resources(files, server), raw)
    assert [r.file for r in rep.already_present] == list(files)
    assert rep.fetched == [] and rep.bytes_downloaded == 0
    assert server.requests == []
    assert any("already there" in line for line in lines)


def test_redownload_when_present_with_wrong_md5(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.bin").write_bytes(b"not the file")
    (raw / "b.bin").write_bytes(files["b.bin"])
    rep, lines = _fetch(_resources(files, server), raw)
    _assert_complete(raw, files)
    assert [r.file for r in rep.fetched] == ["a.bin"]
    assert [r.file for r in rep.already_present] == ["b.bin"]
    assert rep.bytes_downloaded == SIZES["a.bin"]
    assert any("downloading it again" in line for line in lines)


def test_no_md5_check_keeps_a_present_file(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.bin").write_bytes(b"whatever")
    rep, _ = _fetch(_resources(files, server)[:1], raw, check_md5=False)
    assert [r.file for r in rep.already_present] == ["a.bin"]
    assert (raw / "a.bin").read_bytes() == b"whatever" and server.requests == []


def test_resume_after_connection_cut(tmp_path, files, server):
    raw = tmp_path / "raw"
    server.cut_next(CUT_AT)
    res = _resources(files, server)[:1]
    rep, lines = _fetch(res, raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    ranges = server.gets("a.bin")
    assert len(ranges) == 2 and ranges[0] is None
    assert ranges[1] is not None and ranges[1].startswith("bytes=") and ranges[1].endswith("-")
    start = int(ranges[1][len("bytes=") : -1])
    assert 0 < start <= CUT_AT
    assert rep.resumed_count == 1
    assert rep.bytes_downloaded == SIZES["a.bin"]  # nothing fetched twice: the second try began at the .part's size
    assert any("retry 1 of 5" in line for line in lines)
    assert any(f"resuming at byte {start}" in line for line in lines)


def test_resume_a_part_left_by_an_earlier_run(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    keep = 123_457
    (raw / "a.bin.part").write_bytes(files["a.bin"][:keep])
    rep, _ = _fetch(_resources(files, server)[:1], raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    assert server.gets("a.bin") == [f"bytes={keep}-"]
    assert rep.resumed_count == 1 and rep.bytes_downloaded == SIZES["a.bin"] - keep


def test_whole_part_left_by_an_earlier_run_is_checked_and_renamed(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.bin.part").write_bytes(files["a.bin"])  # interrupted between the last byte and the rename
    rep, _ = _fetch(_resources(files, server)[:1], raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    assert server.gets("a.bin") == [f"bytes={SIZES['a.bin']}-"]  # answered 416 with the size
    assert rep.bytes_downloaded == 0 and [r.file for r in rep.fetched] == ["a.bin"]


def test_part_longer_than_the_file_starts_over(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.bin.part").write_bytes(os.urandom(SIZES["a.bin"] + 100))
    rep, _ = _fetch(_resources(files, server)[:1], raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    assert server.gets("a.bin") == [f"bytes={SIZES['a.bin'] + 100}-", None]
    assert rep.resumed_count == 0 and rep.bytes_downloaded == SIZES["a.bin"]


def test_server_ignoring_range_restarts_from_zero(tmp_path, files, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.bin.part").write_bytes(os.urandom(50_000))  # would corrupt the file if appended to
    server.ignore_range = True
    rep, lines = _fetch(_resources(files, server)[:1], raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    assert server.gets("a.bin") == ["bytes=50000-"]
    assert rep.resumed_count == 0 and rep.bytes_downloaded == SIZES["a.bin"]
    assert any("starting over from 0" in line for line in lines)


def test_cut_with_server_ignoring_range(tmp_path, files, server):
    raw = tmp_path / "raw"
    server.ignore_range = True
    server.cut_next(CUT_AT)
    rep, _ = _fetch(_resources(files, server)[:1], raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    ranges = server.gets("a.bin")
    assert len(ranges) == 2 and ranges[0] is None and ranges[1] is not None
    assert rep.resumed_count == 0 and rep.bytes_downloaded > SIZES["a.bin"]  # the start came twice


def test_file_changing_size_between_tries_starts_over(tmp_path, files, server):
    raw = tmp_path / "raw"
    new = os.urandom(SIZES["a.bin"] + 5000)
    server.after_cut = lambda: (tmp_path / "srv" / "a.bin").write_bytes(new)
    server.cut_next(CUT_AT)
    rep, lines = _fetch([Resource("a.bin", server.url("a.bin"), _md5(new))], raw)
    _assert_complete(raw, {"a.bin": new})
    ranges = server.gets("a.bin")
    assert len(ranges) == 3 and ranges[0] is None and ranges[1] is not None and ranges[2] is None
    assert any("size changed" in line for line in lines)


def test_503_then_success_is_retried(tmp_path, files, server):
    raw = tmp_path / "raw"
    server.fail_next(2, 503)
    rep, lines = _fetch(_resources(files, server)[:1], raw)
    _assert_complete(raw, {"a.bin": files["a.bin"]})
    assert server.gets("a.bin") == [None, None, None]
    assert sum("HTTP 503" in line for line in lines) == 2
    assert rep.bytes_downloaded == SIZES["a.bin"]


def test_gives_up_after_retries_and_keeps_nothing_final(tmp_path, files, server):
    raw = tmp_path / "raw"
    server.fail_next(10, 503)
    with pytest.raises(DownloadError, match=r"a\.bin.*HTTP 503.*3 tries"):
        _fetch(_resources(files, server)[:1], raw, retries=2)
    assert len(server.gets("a.bin")) == 3
    assert not (raw / "a.bin").exists()


def test_404_is_not_retried(tmp_path, files, server):
    raw = tmp_path / "raw"
    res = [Resource("missing.bin", server.url("missing.bin"), None)]
    with pytest.raises(DownloadError, match=r"missing\.bin.*404"):
        _fetch(res, raw)
    assert len(server.gets("missing.bin")) == 1


def test_corrupted_file_on_server_is_rejected(tmp_path, files, server):
    raw = tmp_path / "raw"
    good = _md5(files["a.bin"])
    bad = bytearray(files["a.bin"])
    bad[1000] ^= 0xFF
    (tmp_path / "srv" / "a.bin").write_bytes(bytes(bad))
    with pytest.raises(DownloadError) as info:
        _fetch(_resources(files, server)[:1], raw)
    msg = str(info.value)
    assert isinstance(info.value, DatasetError)
    assert str(raw.resolve() / "a.bin") in msg and good in msg and _md5(bytes(bad)) in msg
    assert not (raw / "a.bin").exists() and not (raw / "a.bin.part").exists()


@pytest.mark.parametrize("kind", ["folder", "file_url", "http"])
def test_mirror(tmp_path, files, server, kind):
    raw = tmp_path / "raw"
    raw.mkdir()
    srv = (tmp_path / "srv").resolve()
    mirror = {"folder": str(srv) + "/", "file_url": srv.as_uri(), "http": server.url("")}[kind]
    # the resources' own URLs lead nowhere (or are missing): the mirror replaces the host
    res = [Resource(n, "http://127.0.0.1:9/" + n if i else None, _md5(d)) for i, (n, d) in enumerate(files.items())]
    keep = 77_777
    (raw / "b.bin.part").write_bytes(files["b.bin"][:keep])
    rep, _ = _fetch(res, raw, mirror=mirror)
    _assert_complete(raw, files)
    assert [r.file for r in rep.fetched] == list(files) and rep.manual == []
    assert rep.resumed_count == 1 and rep.bytes_downloaded == sum(SIZES.values()) - keep
    assert (server.gets("b.bin") == [f"bytes={keep}-"]) if kind == "http" else (server.requests == [])


def test_mirror_missing_file(tmp_path, files):
    with pytest.raises(DownloadError, match=r"nope\.bin.*not found"):
        _fetch([Resource("nope.bin", None, None)], tmp_path / "raw", mirror=str(tmp_path / "srv"))


def test_s3_mirror(tmp_path, files):
    pytest.importorskip("s3fs")
    pytest.importorskip("moto")
    from tests.servers import MotoS3

    raw = tmp_path / "raw"
    raw.mkdir()
    with MotoS3("dl-test") as s3:
        url = s3.upload_folder(tmp_path / "srv", "mirror")
        keep = 4321
        (raw / "a.bin.part").write_bytes(files["a.bin"][:keep])
        rep, _ = _fetch(_resources(files), raw, mirror=url, storage_options=s3.storage_options)
    _assert_complete(raw, files)
    assert rep.resumed_count == 1 and rep.bytes_downloaded == sum(SIZES.values()) - keep


def test_resources_without_url_are_listed_for_manual_download(tmp_path, files):
    raw = tmp_path / "raw"
    res = _resources(files) + [Resource("c.txt", None, None)]
    raw.mkdir()
    (raw / "b.bin").write_bytes(b"wrong")
    rep, _ = _fetch(res, raw)
    assert rep.fetched == [] and rep.already_present == [] and rep.bytes_downloaded == 0
    assert [r.file for r, _ in rep.manual] == ["a.bin", "b.bin", "c.txt"]
    msgs = dict((r.file, m) for r, m in rep.manual)
    assert str(raw.resolve() / "a.bin") in msgs["a.bin"] and "https://example.org/a.bin" in msgs["a.bin"]
    assert _md5(files["a.bin"]) in msgs["a.bin"]
    assert "replace it" in msgs["b.bin"] and _md5(b"wrong") in msgs["b.bin"]
    assert str(raw.resolve() / "c.txt") in msgs["c.txt"]
    assert sorted(p.name for p in raw.iterdir()) == ["b.bin"]  # nothing fetched, nothing written
    assert not rep.complete
    text = format_report(rep)
    assert "0 fetched, 0 already there, 3 to get by hand" in text and msgs["a.bin"] in text
    how = where_to_get(res, raw)
    assert all(str(raw.resolve() / n) in how for n in ["a.bin", "b.bin", "c.txt"])
    assert "https://example.org/b.bin" in how
    assert where_to_get([Resource("x", "http://h/x", None)], raw) == ""
    # once there with the right md5 they count as present
    for name, data in files.items():
        (raw / name).write_bytes(data)
    rep2, _ = _fetch(res[:2], raw)
    assert rep2.complete and [r.file for r in rep2.already_present] == ["a.bin", "b.bin"]


def test_unsafe_file_name_is_refused(tmp_path, server):
    with pytest.raises(DownloadError, match="relative"):
        _fetch([Resource("../escape.bin", server.url("a.bin"), None)], tmp_path / "raw")
    assert not (tmp_path / "escape.bin").exists()


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_and_log_lines_otherwise(tmp_path, files, server, monkeypatch):
    res = _resources(files, server)[:1]
    tty = _TTY()
    monkeypatch.setattr(sys, "stderr", tty)
    _fetch(res, tmp_path / "raw1")
    assert "a.bin" in tty.getvalue() and "100%" in tty.getvalue()  # a tqdm bar

    plain = io.StringIO()
    monkeypatch.setattr(sys, "stderr", plain)
    monkeypatch.setattr("shardgen.progress.LOG_EVERY", 0.0)
    _, lines = _fetch(res, tmp_path / "raw2")
    assert plain.getvalue() == ""  # no bar when stderr is not a terminal
    assert any(line.startswith("a.bin: ") and "%" in line for line in lines)

    _, lines = _fetch(res, tmp_path / "raw3", progress=False)
    assert plain.getvalue() == "" and not any("%" in line for line in lines)
