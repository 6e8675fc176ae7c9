"""Which job of a ``--num-jobs`` conversion converts which input file: balanced by bytes, the same in every job.

Every job of an array lists the same download, so each can work out the whole assignment on its own
and keep its share; no job talks to another. The unit is one input file (a sample file of a
class-folder download, a recording, a block of rows of an HDF5 file), never a class batch.

* **A listing known up front** (:meth:`Source.listing`, e.g. zip members): greedy longest
  processing time. Files sorted by (size descending, name) go one by one to the job with the fewest
  bytes so far (lowest index on a tie). The largest job then holds at most 4/3 of the optimum.
* **A streamed archive** (a ``.tar.gz``, RAR volumes), whose files are only known as they come:
  each file, in archive order, goes to the job with the fewest bytes so far. The largest job then
  exceeds the mean by less than the largest file.

Each job's input bytes and files are recorded in its part index (``job``) and shown by the benchmark.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

from loader.errors import ConfigurationError


class JobShare:
    """The share of job ``job_index`` of ``num_jobs``: call it as the sources' ``want(name, size)``.

    Parameters
    ----------
    num_jobs, job_index : int
        The array's size and this job's place in it.
    listing : iterable of (name, size), optional
        Every input file of the download (all jobs' files), when known before it is read; ``None``
        for a streamed archive (files are then assigned as they are offered, in the order offered).

    Raises
    ------
    ConfigurationError
        ``job_index`` outside ``[0, num_jobs)``, or a name listed twice.
    """

    def __init__(self, num_jobs: int, job_index: int, listing: Iterable[tuple[str, int]] | None = None):
        if num_jobs < 1 or not 0 <= job_index < num_jobs:
            raise ConfigurationError(
                f"--job-index must lie in [0, --num-jobs) and --num-jobs >= 1, got {job_index} of {num_jobs}"
            )
        self.num_jobs = num_jobs
        self.job_index = job_index
        self.bytes = [0] * num_jobs
        """Input bytes of each job (complete once every file was offered)."""
        self.files = [0] * num_jobs
        """Input files of each job."""
        self._job: dict[str, int] = {}
        self._planned = listing is not None
        if listing is not None:
            self._plan(listing)

    def _plan(self, listing: Iterable[tuple[str, int]]) -> None:
        items = sorted(((int(size), name) for name, size in listing), key=lambda it: (-it[0], it[1]))
        heap = [(0, j) for j in range(self.num_jobs)]
        for size, name in items:
            if name in self._job:
                raise ConfigurationError(f"input file {name!r} listed twice")
            load, j = heapq.heappop(heap)
            self._job[name] = j
            self.bytes[j] += size
            self.files[j] += 1
            heapq.heappush(heap, (load + size, j))

    def __call__(self, name: str, size: int = 0) -> bool:
        """Whether this job converts the file ``name`` of ``size`` bytes (assigns it when first offered)."""
        if self.num_jobs == 1:
            return True
        job = self._job.get(name)
        if job is None:
            if self._planned:
                raise ConfigurationError(f"input file {name!r} was not in the listing every job planned from")
            job = min(range(self.num_jobs), key=lambda j: (self.bytes[j], j))
            self._count(name, job, size)
        return job == self.job_index

    def _count(self, name: str, job: int, size: int) -> None:
        if name in self._job:
            return
        self._job[name] = job
        self.bytes[job] += int(size)
        self.files[job] += 1

    def owns(self, name: str) -> bool:
        """Whether ``name`` went to this job; ``True`` for a name never offered (a job's own batch)."""
        job = self._job.get(name)
        return job is None or job == self.job_index

    def record(self) -> dict[str, int]:
        """This job's part of the index's ``job`` entry: its input bytes and files."""
        return {"input_bytes": self.bytes[self.job_index], "input_files": self.files[self.job_index]}
