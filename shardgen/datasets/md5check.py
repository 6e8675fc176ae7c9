"""md5 of a download's archives, computed in a background thread while the conversion runs."""

from __future__ import annotations

import threading
from pathlib import Path

from shardgen.archive import md5_file
from shardgen.datasets.base import DatasetError


def md5_mismatch(path: Path | str, got: str, expected: str) -> DatasetError:
    """The error for a file whose md5 differs from the published one."""
    return DatasetError(f"{path}: md5 {got} differs from the published {expected} (corrupt or different file; "
                        "pass --no-md5 to convert it anyway)")


class Md5Check:
    """Hashes ``jobs`` (``(path, published md5)``) in a daemon thread; :meth:`finish` checks them."""

    def __init__(self, jobs: list[tuple[Path, str]]):
        self.jobs = list(jobs)
        self.results: dict[str, str] = {}
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="md5", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            for path, _ in self.jobs:
                self.results[str(path)] = md5_file(path)
        except BaseException as exc:  # reported by wait()
            self.error = exc

    def wait(self) -> dict[str, str]:
        """Block until every archive is hashed; the md5 by path."""
        self.thread.join()
        if self.error is not None:
            raise DatasetError(f"md5 check failed: {self.error}")
        return self.results

    def finish(self, provenance: list[dict[str, str]]) -> None:
        """Wait, record each file's md5 in ``provenance``; :func:`md5_mismatch` for the first that differs."""
        got = self.wait()
        for path, expected in self.jobs:
            md5 = got[str(path)]
            provenance.append({"file": path.name, "md5": md5})
            if md5 != expected:
                raise md5_mismatch(path, md5, expected)
