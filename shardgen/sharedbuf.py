"""Hand large recordings to worker processes without pickling them through a pipe.

Before the worker pool is forked, the main process maps a few anonymous shared memory slots
(``mmap(-1, size)``, MAP_SHARED). Forked workers inherit the same mappings, so the main process
can inflate an archive member straight into a slot and pass only ``(slot, length)``. Pages are
only backed by memory once written. Where ``fork`` is not available, or a recording does not fit
a free slot, the bytes travel the ordinary (pickled) way.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from typing import BinaryIO

_SLOTS: list[mmap.mmap | None] = []


_MADV_POPULATE_WRITE = 23  # Linux 5.14+: fault the pages in with one call instead of one fault per page


def _populate(m: mmap.mmap, length: int) -> None:
    try:
        m.madvise(_MADV_POPULATE_WRITE, 0, mmap.PAGESIZE * -(-length // mmap.PAGESIZE))
    except (OSError, ValueError, AttributeError):
        pass  # older kernels: the pages fault in as they are written


@dataclass(frozen=True)
class SlotRef:
    """A recording held in shared slot ``slot``, ``length`` bytes long."""

    slot: int
    length: int

    def view(self) -> memoryview:
        """The bytes, as a zero-copy view (valid in the main process and in forked workers)."""
        return memoryview(_SLOTS[self.slot])[: self.length]


class SlotPool:
    """A fixed set of shared slots; create it before forking the workers that read from it."""

    def __init__(self, count: int, size: int):
        self.size = int(size)
        self.base = len(_SLOTS)
        for _ in range(count):
            _SLOTS.append(mmap.mmap(-1, self.size))
        self.free = list(range(self.base, self.base + count))

    def stage(self, src: BinaryIO, length: int) -> SlotRef | bytes:
        """Read ``length`` bytes of ``src`` into a free slot (or return them as bytes if none fits)."""
        if not self.free or length > self.size:
            return src.read(length)
        slot = self.free.pop()
        _populate(_SLOTS[slot], length)
        got = 0
        # released on the way out, also when the read fails: a view left in a traceback would keep
        # the slot from being unmapped
        with memoryview(_SLOTS[slot]) as whole, whole[:length] as view:
            while got < length:
                n = src.readinto(view[got:])
                if not n:
                    break
                got += n
        return SlotRef(slot, got)

    def release(self, ref: object) -> None:
        """Give a slot back once the worker that read it is done."""
        if isinstance(ref, SlotRef) and ref.slot not in self.free:
            self.free.append(ref.slot)

    def close(self) -> None:
        """Unmap the slots (only once no worker uses them any more).

        A slot still viewed somewhere (a view kept by an error's traceback) stays mapped until the
        process ends: closing never raises, so it cannot hide the error that ended the run.
        """
        for i in range(self.base, len(_SLOTS)):
            m = _SLOTS[i]
            if m is not None:
                try:
                    m.close()
                except BufferError:
                    continue
                _SLOTS[i] = None
        self.free = []
