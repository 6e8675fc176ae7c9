"""Keep freed memory in the process for reuse (glibc malloc tuning for worker processes).

Workers decode one large recording or sample after another. With glibc's defaults, buffers above
the mmap threshold are returned to the kernel when freed and page-faulted in again for the next
sample; on virtual machines a fault costs microseconds, which measured up to three times the
numpy work itself. Worker processes that eventshard starts (``shardgen`` workers, DataLoader
workers iterating an :class:`~loader.dataset.EventShardDataset`) therefore ask malloc to serve
everything from its heap and never trim it. Elsewhere (other C libraries) this does nothing.
"""

from __future__ import annotations

import ctypes
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_done = False


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse in this process; ``True`` if the settings took effect.

    Call it only in processes that eventshard owns (worker processes): the setting is process-wide.
    """
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    _done = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return _done
