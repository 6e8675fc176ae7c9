"""Progress of long work: a tqdm bar on a terminal, plain log lines otherwise, or nothing.

Download, conversion, ``info`` and ``verify`` all report through :class:`Progress`, so
``--quiet`` and ``--log-level`` behave the same everywhere and a log file never fills with
carriage-return bar updates.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

LOG_EVERY = 10.0
"""Seconds between two progress log lines when stderr is not a terminal."""

log = logging.getLogger("shardgen")


def _log_every() -> float:
    return LOG_EVERY  # read at call time, so tests can shorten it


def stderr_is_terminal() -> bool:
    """Whether stderr is an interactive terminal (then a bar is drawn)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def human_bytes(n: float) -> str:
    """``n`` bytes as ``"12.3 MiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover


class Progress:
    """Count work done towards ``total`` (``None``: unknown) and show it.

    Parameters
    ----------
    desc : str
        What is counted (``"recordings"``, a file name …).
    total : int, optional
        Expected count.
    unit : str
        ``"B"`` for bytes (shown with binary prefixes), else a noun such as ``"rec"``.
    enabled : bool
        ``False``: show nothing.
    bar : bool, optional
        Force a tqdm bar on or off (default: on when stderr is a terminal).
    initial : int
        Work already done (a resumed download).
    emit : callable, optional
        Where log lines go (default: the ``shardgen`` logger at INFO level).
    summary : bool
        Log the final count on :meth:`close` (when no bar was drawn).
    """

    def __init__(self, desc: str, total: int | None = None, unit: str = "it", enabled: bool = True,
                 bar: bool | None = None, initial: int = 0, emit: Any = None, summary: bool = True):
        self.desc, self.total, self.unit = desc, total, unit
        self.n = initial
        self._emit = emit or log.info
        self._enabled = enabled
        self._summary = summary
        self._last = time.monotonic()
        self._bar: Any = None
        if enabled and (stderr_is_terminal() if bar is None else bar):
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=initial, unit=unit, unit_scale=unit == "B",
                             unit_divisor=1024, desc=desc, file=sys.stderr, dynamic_ncols=True)

    def describe(self) -> str:
        """``"<desc>: <done> of <total> (<percent>)"``."""
        fmt = human_bytes if self.unit == "B" else (lambda v: f"{int(v):,} {self.unit}")
        if not self.total:
            return f"{self.desc}: {fmt(self.n)}"
        return f"{self.desc}: {fmt(self.n)} of {fmt(self.total)} ({100 * self.n // self.total}%)"

    def set_total(self, total: int | None) -> None:
        """Learn the total once it is known (the bar shows it from then on)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def update(self, n: int = 1) -> None:
        """Count ``n`` more units."""
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._enabled and time.monotonic() - self._last >= _log_every():
            self._last = time.monotonic()
            self._emit(self.describe())

    def close(self) -> None:
        """Close the bar (or log the final count)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self._enabled and self._summary and self.n:
            self._emit(self.describe())
            self._enabled = False
