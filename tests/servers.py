"""Real storage servers on 127.0.0.1 for tests and benchmarks: moto's S3 server and a Range-capable HTTP server.

- :class:`MotoS3`: ``moto.server.ThreadedMotoServer`` on a free port, with a bucket, its endpoint URL,
  ``storage_options`` for s3fs and the ``AWS_*`` environment for code that takes no options (the
  ``shardgen`` CLI). :meth:`MotoS3.stop` / :meth:`MotoS3.start` take it down and bring it back on the same
  port mid-test; moto keeps its buckets in process memory, so the objects survive a restart.
- :class:`FlakyHTTPServer`: a :class:`RangeHTTPServer` that also records requests, can cut the next body
  short (a dropped connection) and can ignore ``Range`` (a server without range support).
- :class:`RangeHTTPServer`: ``http.server.ThreadingHTTPServer`` serving a folder, answering ``Range:
  bytes=a-b`` requests with 206 (the standard library's handler ignores Range and sends whole files), and
  able to answer the next requests with an error status (:meth:`RangeHTTPServer.fail_next`) to exercise
  retries.

Both bind 127.0.0.1 only; waits are bounded in time.
"""

from __future__ import annotations

import io
import logging
import os
import re
import socket
import threading
import time
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
START_TIMEOUT = 10.0  # seconds a server may take to accept connections


def _wait_listening(port: int, up: bool, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``HOST:port`` accepts connections (``up``) or refuses them (not ``up``), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                listening = True
        except OSError:
            listening = False
        if listening == up:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{HOST}:{port} still {'not ' if up else ''}listening after {timeout} s")
        time.sleep(0.02)


def _wait_bindable(port: int, timeout: float = START_TIMEOUT) -> None:
    """Wait until ``HOST:port`` can be bound (as a server with ``SO_REUSEADDR`` binds it), at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((HOST, port))
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
        time.sleep(0.05)


class MotoS3:
    """moto's standalone S3 server on 127.0.0.1 with one bucket.

    Parameters
    ----------
    bucket : str
        Bucket created on :meth:`start` (if missing).
    region : str
        Region name the clients use.

    Examples
    --------
    >>> with MotoS3("data") as s3:  # doctest: +SKIP
    ...     fs = s3.filesystem()
    ...     fs.pipe(f"{s3.bucket}/x", b"1")
    """

    KEY = SECRET = "testing"

    def __init__(self, bucket: str = "eventshard-test", region: str = "us-east-1"):
        self.bucket = bucket
        self.region = region
        self.port = 0  # chosen by the first start, kept by later ones
        self._server: Any = None

    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._server is not None

    def start(self) -> MotoS3:
        """Start the server (on the port of the first start, if any) and create the bucket."""
        if self._server is not None:
            return self
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log on stderr
        if self.port:
            # ThreadedMotoServer binds in its thread and would wait forever for a port it cannot bind: check first.
            _wait_bindable(self.port)
        server = ThreadedMotoServer(ip_address=HOST, port=self.port, verbose=False)
        server.start()
        self._server = server
        self.port = server.get_host_and_port()[1]
        _wait_listening(self.port, up=True)
        fs = self.filesystem()
        if not fs.exists(self.bucket):
            fs.mkdir(self.bucket)
        return self

    def stop(self) -> None:
        """Stop the server: new connections are refused until :meth:`start` (moto's objects are kept)."""
        if self._server is None:
            return
        self._server.stop()
        self._server = None
        _wait_listening(self.port, up=False)

    @property
    def endpoint_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{HOST}:{self.port}"

    @property
    def storage_options(self) -> dict[str, Any]:
        """fsspec/s3fs options reaching this server (credentials and endpoint; no region: s3fs would send it
        as the bucket's LocationConstraint, which S3 refuses for us-east-1)."""
        return {
            "endpoint_url": self.endpoint_url,
            "key": self.KEY,
            "secret": self.SECRET,
        }

    @property
    def env(self) -> dict[str, str]:
        """``AWS_*`` variables that point botocore (and so s3fs and the ``shardgen`` CLI) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.KEY,
            "AWS_SECRET_ACCESS_KEY": self.SECRET,
            "AWS_DEFAULT_REGION": self.region,
        }

    def url(self, prefix: str) -> str:
        """``s3://<bucket>/<prefix>``."""
        return f"s3://{self.bucket}/{prefix.strip('/')}"

    def filesystem(self) -> Any:
        """A fresh s3fs filesystem on this server (not from fsspec's instance cache)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, **self.storage_options)

    def upload_folder(self, folder: str | os.PathLike[str], prefix: str) -> str:
        """Copy the files of a local folder to ``s3://<bucket>/<prefix>/`` (``index.json`` last); return the URL."""
        fs = self.filesystem()
        url = self.url(prefix)
        files = sorted(Path(folder).iterdir(), key=lambda p: (p.name == "index.json", p.name))
        for p in files:
            if p.is_file():
                fs.put_file(str(p), f"{url}/{p.name}")
        return url

    def __enter__(self) -> MotoS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class RangeRequestHandler(SimpleHTTPRequestHandler):
    """``SimpleHTTPRequestHandler`` plus single byte ranges (206 / 416), one request per connection and no log."""

    # One request per connection: with keep-alive, a client (aiohttp) request on a pooled connection sometimes
    # went unanswered until the client's read timeout when tests ran after each other. A new connection per
    # request costs nothing on loopback and keeps every test's retry counts its own.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def end_headers(self) -> None:
        self.send_header("Accept-Ranges", "bytes")
        super().end_headers()

    def send_head(self) -> Any:
        status = self.server.take_failure()  # type: ignore[attr-defined]
        if status is not None:
            self.send_error(status, "injected failure")
            return None
        header = self.headers.get("Range")
        path = self.translate_path(self.path)
        if header is None or os.path.isdir(path):
            return super().send_head()
        m = _RANGE.fullmatch(header.strip())
        try:
            f = open(path, "rb")
        except OSError:
            self.send_error(HTTPStatus.NOT_FOUND, "File not found")
            return None
        with f:
            size = os.fstat(f.fileno()).st_size
            if m is None or m.groups() == ("", ""):
                start, end = 1, 0  # malformed: unsatisfiable
            elif m.group(1) == "":  # the last n bytes
                start, end = max(0, size - int(m.group(2))), size - 1
            else:
                start = int(m.group(1))
                end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
            if start > end or start >= size:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            f.seek(start)
            data = f.read(end - start + 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        return io.BytesIO(data)


class RangeHTTPServer:
    """A threaded HTTP server on 127.0.0.1 serving ``folder`` with byte-range support.

    Parameters
    ----------
    folder : str or path
        The folder served at ``/``.
    """

    def __init__(self, folder: str | os.PathLike[str]):
        self.folder = Path(folder)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._failures: list[int] = []
        self.port = 0

    def fail_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` requests (GET or HEAD) with ``status`` instead of the file."""
        with self._lock:
            self._failures.extend([int(status)] * n)

    def _take_failure(self) -> int | None:
        with self._lock:
            return self._failures.pop(0) if self._failures else None

    def start(self) -> RangeHTTPServer:
        """Start serving (on the port of the first start, if any)."""
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((HOST, self.port), partial(RangeRequestHandler, directory=str(self.folder)))
        server.block_on_close = False  # do not wait for idle keep-alive connections on stop
        server.take_failure = self._take_failure  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=START_TIMEOUT)
        self._server = None

    def url(self, path: str = "") -> str:
        """``http://127.0.0.1:<port>/<path>``."""
        return f"http://{HOST}:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> RangeHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _FlakyHandler(RangeRequestHandler):
    """:class:`RangeRequestHandler` that records requests, can ignore ``Range`` and can cut a body short."""

    def send_head(self) -> Any:
        owner: FlakyHTTPServer = self.server.owner  # type: ignore[attr-defined]
        owner.record(self.command, self.path, self.headers.get("Range"))
        if owner.ignore_range:
            status = self.server.take_failure()  # type: ignore[attr-defined]
            if status is not None:
                self.send_error(status, "injected failure")
                return None
            return SimpleHTTPRequestHandler.send_head(self)  # the standard library's: whole files, 200
        return super().send_head()

    def copyfile(self, source: Any, outputfile: Any) -> None:
        cut = self.server.owner.take_cut()  # type: ignore[attr-defined]
        if cut is None:
            return super().copyfile(source, outputfile)
        outputfile.write(source.read(cut))
        outputfile.flush()
        time.sleep(0.3)  # let the client take in what was sent before the connection drops
        if self.server.owner.after_cut is not None:  # type: ignore[attr-defined]
            self.server.owner.after_cut()  # type: ignore[attr-defined]
        # returning closes the connection (HTTP/1.0) short of Content-Length


class FlakyHTTPServer(RangeHTTPServer):
    """:class:`RangeHTTPServer` with a request log, :meth:`cut_next` and :attr:`ignore_range`."""

    def __init__(self, folder: str | os.PathLike[str]):
        super().__init__(folder)
        self.requests: list[tuple[str, str, str | None]] = []
        self.ignore_range = False
        self.after_cut: Any = None  # called once a body was cut short
        self._cuts: list[int] = []
        self._log_lock = threading.Lock()

    def record(self, method: str, path: str, range_header: str | None) -> None:
        with self._log_lock:
            self.requests.append((method, path, range_header))

    def gets(self, name: str) -> list[str | None]:
        """The ``Range`` headers of the GET requests for ``/name``, in order (``None``: no header)."""
        with self._log_lock:
            return [r for m, p, r in self.requests if m == "GET" and p == "/" + name]

    def cut_next(self, nbytes: int) -> None:
        """Send only ``nbytes`` of the next response body, then close the connection."""
        with self._log_lock:
            self._cuts.append(nbytes)

    def take_cut(self) -> int | None:
        with self._log_lock:
            return self._cuts.pop(0) if self._cuts else None

    def start(self) -> FlakyHTTPServer:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer((HOST, self.port), partial(_FlakyHandler, directory=str(self.folder)))
        server.block_on_close = False
        server.take_failure = self._take_failure  # type: ignore[attr-defined]
        server.owner = self  # type: ignore[attr-defined]
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self
