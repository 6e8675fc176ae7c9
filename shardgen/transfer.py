"""The bytes of one URL from an offset on: HTTP(S) with ``Range`` requests, or any other fsspec URL by seek.

Used by :mod:`shardgen.download`, which decides what to fetch, retries and checks md5. A source error is
:class:`Transient` (worth another try: a cut connection, a time-out, HTTP 5xx/408/429) or :class:`Fatal`
(another try will not fix it: 404, 403, a missing mirror file).
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, BinaryIO

CHUNK = 1 << 20
"""Bytes asked for per read from the source (and the fsspec block size)."""

HTTP_CONNECT_TIMEOUT = 30.0
"""Seconds to wait for an HTTP connection."""

HTTP_READ_TIMEOUT = 60.0
"""Seconds an HTTP connection may stay silent before the try counts as cut (no limit on the whole transfer)."""

_RETRY_STATUS = frozenset({408, 429})
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class Transient(Exception):
    """A source error worth another try (cut connection, time-out, 5xx)."""


class Fatal(Exception):
    """A source error another try will not fix (404, 403, a missing mirror file)."""


# --------------------------------------------------------------------------------------------------------------
# Sources: the bytes of one URL from an offset on.


class Body:
    """The bytes of a source from :attr:`start` on.

    ``start`` is where the body begins in the file: the offset asked for, or 0 when the source could not
    honour it. ``total`` is the file's size when known. ``complete`` means there is nothing left to read
    (the ``.part`` already holds the whole file). ``validator`` identifies the version of the file (an HTTP
    ETag or Last-Modified), for ``If-Range`` on a later try.
    """

    start: int = 0
    total: int | None = None
    complete: bool = False
    validator: str | None = None

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes; ``b""`` at the end (raises :class:`Transient` / :class:`Fatal`)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the connection or file."""


def _is_http(url: str) -> bool:
    return url.split("://", 1)[0].lower() in ("http", "https") if "://" in url else False


def _classify(exc: BaseException, what: str) -> Exception:
    """Turn an exception raised while reading a source into :class:`Transient` or :class:`Fatal`."""
    if isinstance(exc, (Transient, Fatal)):
        return exc
    if isinstance(exc, FileNotFoundError):
        return Fatal(f"not found: {what}")
    if isinstance(exc, (PermissionError, IsADirectoryError, NotADirectoryError)):
        return Fatal(f"{type(exc).__name__}: {exc}")
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - fsspec[http] is a dependency
        aiohttp = None  # type: ignore[assignment]
    if aiohttp is not None and isinstance(exc, aiohttp.ClientResponseError):
        if exc.status >= 500 or exc.status in _RETRY_STATUS:
            return Transient(f"HTTP {exc.status} {exc.message}")
        return Fatal(f"HTTP {exc.status} {exc.message}")
    if aiohttp is not None and isinstance(exc, aiohttp.ClientError):
        return Transient(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, (OSError, TimeoutError, asyncio.TimeoutError, ConnectionError, EOFError)):
        return Transient(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
    return Fatal(f"{type(exc).__name__}: {exc}")


async def _http_get(session: Any, url: str, headers: dict[str, str]) -> Any:
    return await session.get(url, headers=headers)


async def _http_close(response: Any) -> None:
    response.close()


class _HttpBody(Body):
    """One HTTP(S) GET through fsspec's HTTP file system (its aiohttp session and event loop), streamed."""

    def __init__(self, fs: Any, url: str, offset: int, validator: str | None):
        from fsspec.asyn import sync

        self._sync = sync
        self._loop = fs.loop
        self._url = url
        self._response: Any = None
        try:
            session = sync(self._loop, fs.set_session)
            self._open(session, fs.encode_url(url), offset, validator)
        except BaseException as exc:
            self.close()
            if isinstance(exc, Exception):
                raise _classify(exc, url) from exc
            raise

    def _open(self, session: Any, url: str, offset: int, validator: str | None) -> None:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
            if validator:
                headers["If-Range"] = validator
        r = self._response = self._sync(self._loop, _http_get, session, url, headers)
        status = r.status
        if status == 404:
            raise Fatal(f"not found (HTTP 404): {self._url}")
        if status >= 500 or status in _RETRY_STATUS:
            raise Transient(f"HTTP {status} {r.reason or ''}".rstrip())
        if status == 416 and offset:  # range past the end: maybe the .part is already whole
            m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
            if m and m.group(3) != "*" and int(m.group(3)) == offset:
                self.start, self.total, self.complete = offset, offset, True
                return
            self.close()
            return self._open(session, url, 0, None)  # the file is shorter than the .part: start over
        if status == 206:
            m = _CONTENT_RANGE.fullmatch(r.headers.get("Content-Range", "").strip())
            if not m or m.group(1) is None or int(m.group(1)) != offset:
                self.close()
                return self._open(session, url, 0, None)  # not the range asked for: start over
            self.start = offset
            self.total = None if m.group(3) == "*" else int(m.group(3))
        elif status == 200:
            self.start = 0
            length = r.headers.get("Content-Length")
            encoding = r.headers.get("Content-Encoding", "identity").strip().lower()
            self.total = int(length) if length and encoding in ("", "identity") else None
        else:
            raise Fatal(f"HTTP {status} {r.reason or ''}".rstrip() + f": {self._url}")
        etag = r.headers.get("ETag")
        self.validator = etag if etag and not etag.startswith("W/") else r.headers.get("Last-Modified")

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes of the response body as they arrive."""
        if self.complete:
            return b""
        try:
            return self._sync(self._loop, self._response.content.read, n)
        except Exception as exc:
            raise _classify(exc, self._url) from exc

    def close(self) -> None:
        """Close the response (and its connection)."""
        r, self._response = self._response, None
        if r is not None:
            try:
                self._sync(self._loop, _http_close, r)
            except Exception:  # pragma: no cover - closing a broken connection
                pass


class _FsBody(Body):
    """Any other fsspec file system: open the file with a block size and seek to the offset."""

    def __init__(self, fs: Any, path: str, offset: int, validator: str | None):
        self._f: BinaryIO | None = None
        self._path = path
        try:
            try:
                total = fs.size(path)
            except FileNotFoundError:
                raise
            except Exception:  # some file systems cannot tell; read to the end then
                total = None
            self.total = None if total is None else int(total)
            self.start = offset if self.total is None or offset <= self.total else 0
            if self.total is not None and self.start == self.total and self.start:
                self.complete = True
                return
            self._f = fs.open(path, "rb", block_size=CHUNK)
            if self.start:
                self._f.seek(self.start)
        except Exception as exc:
            self.close()
            raise _classify(exc, path) from exc

    def read(self, n: int) -> bytes:
        """Up to ``n`` bytes from the current position."""
        if self.complete or self._f is None:
            return b""
        try:
            return self._f.read(n)
        except Exception as exc:
            raise _classify(exc, self._path) from exc

    def close(self) -> None:
        """Close the file."""
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except Exception:  # pragma: no cover
                pass


class Sources:
    """Opens :class:`Body` objects for URLs, keeping one fsspec file system per protocol for the whole run."""

    def __init__(self, storage_options: dict[str, Any] | None):
        self._options = dict(storage_options or {})
        self._http: Any = None

    def open(self, url: str, offset: int, validator: str | None) -> Body:
        """The bytes of ``url`` from ``offset`` on (or from 0, see :class:`Body`)."""
        if _is_http(url):
            return _HttpBody(self._http_fs(), url, offset, validator)
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(url, **self._options)
        except Exception as exc:
            raise _classify(exc, url) from exc
        return _FsBody(fs, path, offset, validator)

    def _http_fs(self) -> Any:
        if self._http is None:
            import aiohttp
            import fsspec

            client_kwargs = dict(self._options.pop("client_kwargs", {}) or {})
            client_kwargs.setdefault(
                "timeout",
                aiohttp.ClientTimeout(total=None, sock_connect=HTTP_CONNECT_TIMEOUT, sock_read=HTTP_READ_TIMEOUT),
            )
            client_kwargs.setdefault("auto_decompress", False)  # the bytes as published, never a decoded body
            self._http = fsspec.filesystem("http", skip_instance_cache=True, client_kwargs=client_kwargs)
        return self._http

    def close(self) -> None:
        """Close the HTTP session, if one was opened."""
        fs, self._http = self._http, None
        if fs is not None and getattr(fs, "_session", None) is not None:
            from fsspec.asyn import sync

            try:
                sync(fs.loop, fs._session.close)
            except Exception:  # pragma: no cover
                pass


# --------------------------------------------------------------------------------------------------------------
# Progress: a tqdm bar on a terminal, log lines otherwise.


