"""Fetching a dataset's raw files: resumable, md5-checked, from the authors' hosts or a mirror.

:func:`fetch_resources` downloads every :class:`~shardgen.datasets.base.Resource` that has a URL (or every
resource, when a mirror is given) into RAW and lists the others with instructions for getting them by hand
(:func:`where_to_get`). :func:`format_report` turns the result into the text ``shardgen download`` prints.

How a file is fetched:

- ``RAW/<file>`` present with the published md5 (or present, when there is no md5 to check): skipped.
- Otherwise bytes go to ``RAW/<file>.part``. A ``.part`` left by an interrupted run is continued from its size
  with a byte range (HTTP ``Range: bytes=<size>-``, or a seek for every other fsspec protocol: ``file://``, a
  local folder, ``s3://`` ...). A server that ignores the range (answers 200 with the whole body), a range that
  starts elsewhere, or a file whose size changed between two tries starts the download over from byte 0.
- A cut connection, a time-out or an HTTP 5xx / 408 / 429 is retried after a back-off (doubling from
  ``backoff`` seconds, at most 30 s), continuing from what has arrived. ``retries`` bounds the tries in a row
  that bring no new bytes; a try that gets further than any before starts the count again, so a long
  download over a flaky link finishes while a server that always fails the same way is given up on.
  A 404 or another 4xx is not retried. When the tries run out the ``.part`` is kept, so a later run resumes.
- When complete, the md5 (computed while writing) is compared with the published one: a mismatch deletes the
  ``.part`` and raises :class:`DownloadError` naming the file and both checksums; a match renames the
  ``.part`` to ``RAW/<file>`` atomically (an older, wrong file there is replaced only then).
- A tqdm bar (bytes) on stderr when ``progress`` and stderr is a terminal; otherwise plain log lines (one
  every :data:`shardgen.progress.LOG_EVERY` seconds while ``progress``) through ``log``.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from loader.retry import backoff_delay
from shardgen.archive import md5_file
from shardgen.datasets.base import DatasetError, Resource
from shardgen.progress import Progress, human_bytes, stderr_is_terminal
from shardgen.transfer import CHUNK, Body, Fatal, Sources, Transient


class DownloadError(DatasetError):
    """A file could not be fetched, or what arrived does not match its published md5; the message names it."""


@dataclass
class DownloadReport:
    """What :func:`fetch_resources` did.

    Attributes
    ----------
    fetched : list of Resource
        Resources downloaded (and md5-checked where an md5 is known) in this run.
    already_present : list of Resource
        Resources found in RAW with the right md5 (or with no md5 to check), not downloaded again.
    manual : list of (Resource, str)
        Resources that cannot be fetched automatically, each with the message saying where to get it by hand
        and the exact path to put it at.
    bytes_downloaded : int
        Bytes received in this run, all files and tries together (bytes thrown away by a restart included).
    resumed_count : int
        Tries that continued a ``.part`` from a non-zero offset (a byte range the source honoured).
    raw : Path or None
        The RAW folder, absolute.
    """

    fetched: list[Resource] = field(default_factory=list)
    already_present: list[Resource] = field(default_factory=list)
    manual: list[tuple[Resource, str]] = field(default_factory=list)
    bytes_downloaded: int = 0
    resumed_count: int = 0
    raw: Path | None = None

    @property
    def complete(self) -> bool:
        """Whether every resource is now in RAW (nothing is left to get by hand)."""
        return not self.manual


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------------------------
# Fetching.


def _target(raw: Path, resource: Resource) -> Path:
    """``RAW/<file>``, refusing names that would leave RAW."""
    name = PurePosixPath(resource.file)
    if not resource.file or name.is_absolute() or ".." in name.parts or "\\" in resource.file:
        raise DownloadError(f"{resource.file!r}: not a plain relative file name; refusing to write it")
    return raw.joinpath(*name.parts)


def _md5_prefix(path: Path, n: int) -> Any:
    """An md5 object fed with the first ``n`` bytes of ``path``."""
    h = hashlib.md5(usedforsecurity=False)
    left = n
    with open(path, "rb") as f:
        while left > 0:
            block = f.read(min(left, 1 << 22))
            if not block:
                break
            h.update(block)
            left -= len(block)
    return h


def _manual_message(resource: Resource, dest: Path) -> str:
    """Where to get one resource by hand and where to put it."""
    where = resource.page or "the dataset authors (no download page is recorded; see the dataset's docs)"
    lines = [
        f"{resource.file}: cannot be downloaded automatically",
        f"  get it from  {where}",
        f"  put it at    {dest}",
    ]
    if resource.md5:
        lines.append(f"  md5          {resource.md5}")
    return "\n".join(lines)


class _Fetcher:
    """The state of one :func:`fetch_resources` run."""

    def __init__(
        self,
        report: DownloadReport,
        sources: Sources,
        bar: bool,
        lines: bool,
        retries: int,
        backoff: float,
        log: Callable[[str], None],
    ):
        self.report, self.sources = report, sources
        self.bar, self.lines = bar, lines
        self.retries, self.backoff, self.log = max(0, int(retries)), max(0.0, float(backoff)), log

    def fetch(self, resource: Resource, url: str, dest: Path, expected: str | None) -> None:
        """Download ``url`` to ``dest`` through ``dest.part``; check ``expected`` md5 (if any); rename."""
        part = dest.with_name(dest.name + ".part")
        dest.parent.mkdir(parents=True, exist_ok=True)
        hasher: Any = None
        hashed = -1  # the hasher holds the md5 of part[:hashed]
        failures = 0
        furthest = part.stat().st_size if part.exists() else 0
        validator: str | None = None
        seen_total: int | None = None
        self.log(
            f"{resource.file}: downloading from {url}"
            + (f" (a .part of {human_bytes(furthest)} is there)" if furthest else "")
        )
        while True:
            offset = part.stat().st_size if part.exists() else 0
            if seen_total is not None and offset > seen_total:
                offset = 0
            pos = offset
            body: Body | None = None
            try:
                body = self.sources.open(url, offset, validator)
                if offset and seen_total is not None and body.start and body.total not in (None, seen_total):
                    body.close()
                    self.log(
                        f"{resource.file}: the size changed from {seen_total} to {body.total} bytes; starting over"
                    )
                    seen_total, validator, offset = body.total, None, 0
                    body = self.sources.open(url, 0, None)
                seen_total = body.total if body.total is not None else seen_total
                validator = body.validator or validator
                start = body.start
                if offset and start == 0:
                    self.log(f"{resource.file}: the source did not continue at byte {offset}; starting over from 0")
                elif start:
                    self.report.resumed_count += 1
                    self.log(f"{resource.file}: resuming at byte {start}" + (f" of {body.total}" if body.total else ""))
                if hashed != start:
                    hasher = _md5_prefix(part, start) if start else hashlib.md5(usedforsecurity=False)
                    hashed = start
                with open(part, "r+b" if part.exists() else "wb") as out:
                    out.truncate(start)
                    out.seek(start)
                    pos = start
                    progress = Progress(resource.file, body.total, unit="B", enabled=self.bar or self.lines,
                                        bar=self.bar, initial=start, emit=self.log, summary=False)
                    try:
                        while block := body.read(CHUNK):
                            out.write(block)
                            hasher.update(block)
                            pos += len(block)
                            hashed = pos
                            self.report.bytes_downloaded += len(block)
                            progress.update(len(block))
                    finally:
                        progress.close()
                    if body.total is not None and pos < body.total:
                        raise Transient(f"connection ended at byte {pos} of {body.total}")
                    out.flush()
                    os.fsync(out.fileno())
                break
            except Fatal as exc:
                raise DownloadError(f"{dest}: cannot fetch {url}: {exc}") from exc
            except Transient as exc:
                if pos > furthest:
                    furthest, failures = pos, 0
                failures += 1
                if failures > self.retries:
                    raise DownloadError(
                        f"{dest}: cannot fetch {url}: {exc} (gave up after {failures} tries in a row without new "
                        f"bytes; {human_bytes(pos)} kept in {part.name}, run again to resume)"
                    ) from exc
                wait = backoff_delay(self.backoff, failures)
                self.log(f"{resource.file}: {exc}; retry {failures} of {self.retries} in {wait:.1f} s")
                time.sleep(wait)
            finally:
                if body is not None:
                    body.close()
        got = hasher.hexdigest()
        if expected is not None and got != expected:
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"{dest}: md5 {got} differs from the expected {expected} (downloaded from {url}); "
                "the download was deleted"
            )
        os.replace(part, dest)
        self.report.fetched.append(resource)
        self.log(f"{resource.file}: done, {human_bytes(pos)}" + (", md5 ok" if expected else ""))


def fetch_resources(
    resources: Sequence[Resource],
    raw: Path | str,
    mirror: str | None = None,
    progress: bool = True,
    check_md5: bool = True,
    retries: int = 5,
    log: Callable[[str], None] | None = None,
    *,
    backoff: float = 1.0,
    storage_options: dict[str, Any] | None = None,
) -> DownloadReport:
    """Fetch what can be fetched into RAW; say where to get the rest by hand.

    Parameters
    ----------
    resources : sequence of Resource
        The dataset's files (``file`` is the name inside RAW).
    raw : path
        The RAW folder (created if missing).
    mirror : str, optional
        A base URL replacing every resource's host: the URL of ``resource.file`` is
        ``mirror.rstrip('/') + '/' + resource.file``. ``http(s)://``, ``file://``, a local folder or any fsspec
        URL (``s3://bucket/prefix`` ...). With a mirror every resource is fetched, also those without a URL.
    progress : bool
        Show progress: a tqdm bar on stderr when it is a terminal, else a log line every
        :data:`shardgen.progress.LOG_EVERY` s.
    check_md5 : bool
        Compare files with their published md5 (when the resource has one): a present file that differs is
        downloaded again, a download that differs is deleted and raises :class:`DownloadError`.
    retries : int
        Tries in a row without new bytes allowed after the first (cut connection, time-out, HTTP 5xx).
    log : callable, optional
        Receives one line per event (start, resume, retry, done). Default: print to stderr.
    backoff : float
        Seconds to wait before the first retry; doubled for each further one, at most :data:`loader.retry.MAX_BACKOFF`.
    storage_options : dict, optional
        Passed to fsspec for the mirror's (or a URL's) file system, e.g. ``endpoint_url`` for ``s3://``;
        ``client_kwargs`` for HTTP go to aiohttp.

    Returns
    -------
    DownloadReport
        What was fetched, found, and left to get by hand.

    Raises
    ------
    DownloadError
        A download failed for good (404, retries spent) or its md5 differs from the published one; the
        message names the file. Files fetched before stay in RAW.
    """
    raw_path = Path(raw).expanduser().resolve()  # created only when a file is fetched (see _Fetcher)
    say = log if log is not None else _stderr_log
    bar = bool(progress) and stderr_is_terminal()
    report = DownloadReport(raw=raw_path)
    sources = Sources(storage_options)
    fetcher = _Fetcher(report, sources, bar, bool(progress), retries, backoff, say)
    try:
        for resource in resources:
            dest = _target(raw_path, resource)
            expected = resource.md5.strip().lower() if (check_md5 and resource.md5) else None
            url = mirror.rstrip("/") + "/" + resource.file if mirror else resource.url
            wrong_md5: str | None = None
            if dest.is_file():
                got = md5_file(dest) if expected is not None else None
                if got == expected:
                    report.already_present.append(resource)
                    say(f"{resource.file}: already there" + (", md5 ok" if expected else ""))
                    continue
                wrong_md5 = got
            if url is None:
                message = _manual_message(resource, dest)
                if wrong_md5 is not None:
                    message += f"\n  the file there now has md5 {wrong_md5}, not {expected}: replace it"
                report.manual.append((resource, message))
                continue
            if wrong_md5 is not None:
                say(f"{resource.file}: the file there has md5 {wrong_md5}, not {expected}; downloading it again")
            fetcher.fetch(resource, url, dest, expected)
    finally:
        sources.close()
    return report


def where_to_get(resources: Sequence[Resource], raw: Path | str) -> str:
    """Printable instructions for the resources that cannot be fetched automatically (those without a URL).

    Parameters
    ----------
    resources : sequence of Resource
        The dataset's files; those with a ``url`` are left out.
    raw : path
        The RAW folder the files belong in.

    Returns
    -------
    str
        For each manual resource: where to get it (``resource.page``), the exact path to put it at
        (``RAW/<file>``, absolute) and its md5 when published; ``""`` when there is none.
    """
    raw_path = Path(raw).expanduser().resolve()
    manual = [r for r in resources if r.url is None]
    if not manual:
        return ""
    return _manual_text([_manual_message(r, _target(raw_path, r)) for r in manual])


def _manual_text(messages: Sequence[str]) -> str:
    head = "Get these files by hand and put them at the paths shown, then run the command again:"
    return "\n".join([head, *messages])


def format_report(report: DownloadReport) -> str:
    """The text ``shardgen download`` prints for a :class:`DownloadReport`.

    Parameters
    ----------
    report : DownloadReport
        What :func:`fetch_resources` returned.

    Returns
    -------
    str
        One line per fetched and already-present file, a summary line, then the instructions for the files
        to get by hand (if any).
    """
    lines = [f"fetched        {r.file}" for r in report.fetched]
    lines += [f"already there  {r.file}" for r in report.already_present]
    summary = (
        f"{len(report.fetched)} fetched, {len(report.already_present)} already there, "
        f"{len(report.manual)} to get by hand; {report.bytes_downloaded:,} bytes downloaded"
    )
    if report.resumed_count:
        summary += f", {report.resumed_count} resumed"
    if report.raw is not None:
        summary += f" (in {report.raw})"
    lines.append(summary)
    if report.manual:
        lines.append(_manual_text([m for _, m in report.manual]))
    return "\n".join(lines)


__all__ = ["DownloadError", "DownloadReport", "fetch_resources", "where_to_get", "format_report", "CHUNK"]
