"""Retries with exponential backoff for storage requests: one policy for the loader and the writer.

:func:`call_with_retries` repeats a request after a transient error (:func:`is_transient`:
connection errors, timeouts, HTTP 5xx/408/429, other ``OSError`` but missing files and permission
errors) and raises :class:`~loader.errors.StorageError` naming what it read when the tries run out.
:func:`backoff_delay` is the wait before a repeat, also used by ``shardgen download``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

from loader.errors import CacheError, FormatError, StorageError

MAX_BACKOFF = 30.0
T = TypeVar("T")


def backoff_delay(backoff: float, attempt: int) -> float:
    """Seconds to wait before repeat number ``attempt`` (from 1): ``backoff * 2**(attempt-1)``, at most
    :data:`MAX_BACKOFF`."""
    return min(MAX_BACKOFF, float(backoff) * 2 ** (attempt - 1))


# Exceptions of storage libraries that mean "try again", by class name so that none is imported here.
_TRANSIENT_CLASSES = frozenset(
    {
        "botocore.exceptions.ConnectionError",  # EndpointConnectionError, ConnectionClosedError, …
        "botocore.exceptions.HTTPClientError",  # ReadTimeoutError, …
        "botocore.exceptions.IncompleteReadError",
        "botocore.exceptions.ResponseStreamingError",
        "aiohttp.client_exceptions.ClientConnectionError",  # ServerDisconnectedError, …
        "aiohttp.client_exceptions.ClientPayloadError",
        "fsspec.exceptions.FSTimeoutError",
        "http.client.IncompleteRead",
        "urllib3.exceptions.ProtocolError",
    }
)
_PERMANENT = (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError, FileExistsError)


def _http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception (or the one it was translated from) carries, if any."""
    for e in (exc, exc.__cause__):
        if e is None:
            continue
        status = getattr(e, "status", None)  # aiohttp.ClientResponseError
        if isinstance(status, int):
            return status
        response = getattr(e, "response", None)  # botocore ClientError (s3fs puts it in __cause__)
        if isinstance(response, dict):
            code = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(code, int):
                return code
    return None


def is_transient(exc: BaseException) -> bool:
    """Whether a failed storage request is worth repeating.

    True for connection errors, timeouts, HTTP 5xx, 408 and 429, and other ``OSError`` s; false for
    missing files, permission errors, other HTTP 4xx and :class:`~loader.format.FormatError`.
    """
    if isinstance(exc, (*_PERMANENT, FormatError, CacheError)):
        return False
    status = _http_status(exc)
    if status is not None:
        return status >= 500 or status in (408, 429)
    if isinstance(exc, OSError | TimeoutError | asyncio.TimeoutError):
        return True
    return any(f"{c.__module__}.{c.__qualname__}" in _TRANSIENT_CLASSES for c in type(exc).__mro__)


def call_with_retries(
    fn: Callable[[], T],
    what: str,
    *,
    retries: int = 5,
    backoff: float = 0.2,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Call ``fn()``, repeating it after transient errors (:func:`is_transient`) with exponential backoff.

    Parameters
    ----------
    fn : callable
        The request.
    what : str
        What ``fn`` reads (URL and byte range), for the error message.
    retries : int
        Repeats after the first attempt; waits ``backoff, 2·backoff, 4·backoff, …`` (at most
        :data:`MAX_BACKOFF` s each) in between.
    backoff : float
        First wait in seconds.
    on_retry : callable, optional
        Called with the exception before each repeat (to count them).

    Raises
    ------
    StorageError
        The last attempt failed on a transient error too (names ``what``; the cause is chained).
    Exception
        A non-transient error, unchanged, at once.
    """
    attempt = 0
    while True:
        try:
            return fn()
        except Exception as exc:
            if not is_transient(exc):
                raise
            if attempt >= retries:
                raise StorageError(
                    f"{what}: still failing after {attempt + 1} attempts: {type(exc).__name__}: {exc}"
                ) from exc
            attempt += 1
            if on_retry is not None:
                on_retry(exc)
            time.sleep(backoff_delay(backoff, attempt))
