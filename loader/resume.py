"""Where a consumer stands in its epoch: the resume state of ``torchdata.stateful_dataloader``.

A state is a dict of plain values: the epoch, ``yielded`` (items of the consumer's sequence
already passed) and what must match for a resume to be exact (:data:`MUST_MATCH` when it is
loaded, :data:`CONSUMER` when the iteration starts). The order's definition
(:mod:`loader.order`) makes ``yielded`` enough: a restored iteration replays the draws on
positions and reads only what was not yielded.
"""

from __future__ import annotations

from typing import Any

from loader.errors import ConfigurationError

VERSION = 2
MUST_MATCH = ("split", "samples", "seed", "shuffle", "shuffle_buffer", "streams", "span", "even")
"""Fields a loaded state must share with the dataset it is loaded into."""
CONSUMER = ("rank", "world_size", "worker", "num_workers")
"""Fields the consumer that resumes must share with the one that saved."""


def new_state(epoch: int, yielded: int, settings: dict[str, Any], consumer: dict[str, int]) -> dict[str, Any]:
    """A state at ``yielded`` items into ``epoch``: ``settings`` has the :data:`MUST_MATCH` fields,
    ``consumer`` the :data:`CONSUMER` fields."""
    return {"version": VERSION, "epoch": int(epoch), "yielded": int(yielded), **settings, **consumer}


def check_loadable(state: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``state`` if it can resume the dataset whose fresh state is ``mine``.

    Raises
    ------
    ConfigurationError
        Another state version, or a :data:`MUST_MATCH` field differs (the message names it), or a
        negative ``yielded``.
    """
    if state.get("version") != VERSION:
        raise ConfigurationError(f"not an EventShardDataset state of version {VERSION} (got {state.get('version')!r})")
    for name in MUST_MATCH:
        if name == "shuffle_buffer" and not mine["shuffle"]:
            continue
        if state.get(name) != mine[name]:
            raise ConfigurationError(
                f"cannot resume: the state has {name}={state.get(name)!r}, this dataset {mine[name]!r}"
            )
    if int(state["yielded"]) < 0:
        raise ConfigurationError(f"cannot resume: yielded={state['yielded']}")
    return dict(state)


def check_consumer(state: dict[str, Any], mine: dict[str, Any]) -> None:
    """Raise ``ConfigurationError`` when ``state`` was saved by another rank, worker or worker count."""
    for name in CONSUMER:
        if state.get(name) != mine[name]:
            raise ConfigurationError(
                f"cannot resume: the state was saved with {name}={state.get(name)!r}, this consumer has {mine[name]!r}"
            )
