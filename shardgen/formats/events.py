"""What every raw-format reader returns, and the error it raises on a damaged file."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from loader.errors import EventshardError


class FormatError(EventshardError, ValueError):
    """A raw file is damaged or not in the expected format.

    The message always starts with ``<file>: byte <offset>:`` (or ``<file>:`` when no offset applies),
    so the CLI can print it as one line that says where to look.
    """

    def __init__(self, name: str, offset: int | None = None, message: str | None = None):
        if message is None:  # one ready-made message that already names the file
            self.name, self.offset, self.message = "", None, name
            super().__init__(name)
            return
        self.name = name
        self.offset = offset
        self.message = message
        where = f"{name}: byte {offset}: " if offset is not None else f"{name}: "
        super().__init__(where + message)

    def __reduce__(self) -> tuple:
        # worker processes send errors back to the converter: rebuild from the three parts
        if not self.name:
            return (type(self), (self.message,))
        return (type(self), (self.name, self.offset, self.message))


@dataclass
class Events:
    """Events of one raw file in file order: ``t`` (µs, int64), ``x``, ``y`` (unsigned ints), ``p`` (0/1 uint8).

    ``width``/``height``/``camera`` are what the file itself says about the sensor (``None`` when it
    says nothing). ``skipped`` counts words that were read but are not polarity events (APS, IMU,
    triggers, overflow markers …) by kind, so nothing is dropped silently. ``truncated_bytes`` is the
    length of a damaged tail that was dropped (only when the caller allowed it).
    """

    t: np.ndarray
    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    width: int | None = None
    height: int | None = None
    camera: str | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    truncated_bytes: int = 0

    def __len__(self) -> int:
        return int(self.t.size)
