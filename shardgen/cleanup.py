"""Clean-up that never hides the error that ended a run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

log = logging.getLogger("shardgen")


def clean_up(steps: Iterable[Callable[[], object]], failing: bool) -> None:
    """Run every step, even after one of them fails.

    When the run is ``failing`` (an error is on its way out), a step's own error is logged and
    dropped, so the error the user sees is the one that ended the run. Otherwise the first step
    error is raised once every step has run.
    """
    first: Exception | None = None
    for step in steps:
        try:
            step()
        except Exception as exc:
            if failing:
                log.warning("clean-up after the error failed too: %s: %s", type(exc).__name__, exc)
            elif first is None:
                first = exc
    if first is not None:
        raise first
