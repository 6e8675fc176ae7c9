"""``--num-jobs`` / ``--job-index`` from the scheduler that started the job (SLURM arrays, Kubernetes Indexed Jobs).

One job-array line needs no flags:

* **SLURM** (``sbatch --array=0-15``): the index is ``SLURM_ARRAY_TASK_ID - SLURM_ARRAY_TASK_MIN`` and the
  count ``SLURM_ARRAY_TASK_COUNT`` (else ``SLURM_ARRAY_TASK_MAX - SLURM_ARRAY_TASK_MIN + 1``); an array
  with steps or gaps (``--array=0-15:2``, ``--array=1,5``) is refused, since its tasks do not number
  ``0 … J-1``.
* **Kubernetes** Indexed Job: the index is ``JOB_COMPLETION_INDEX``; the count is ``--num-jobs`` or
  ``JOB_COMPLETIONS`` (Kubernetes does not pass ``.spec.completions`` to the pod: the manifest sets it).

Flags given on the command line are used as given; where the scheduler says something else, that is an
error naming both, never a silent choice (a job converting the wrong share would leave a hole that only
``shardgen merge`` would notice). ``--num-jobs 1`` alone means one whole conversion whatever the scheduler
says (an array of separate conversions).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from loader.errors import ConfigurationError


def _int(env: Mapping[str, str], name: str) -> int | None:
    text = env.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise ConfigurationError(f"{name}={text!r}: not an integer") from None


def from_scheduler(env: Mapping[str, str] | None = None) -> tuple[int | None, int | None, str | None]:
    """``(num_jobs, job_index, where)`` as the scheduler's variables give them (``None`` where they do not).

    ``where`` names the variables, for messages.

    Raises
    ------
    ConfigurationError
        A variable that is not an integer, or a SLURM array whose tasks do not number ``0 … J-1`` from its minimum.
    """
    env = os.environ if env is None else env
    task = _int(env, "SLURM_ARRAY_TASK_ID")
    if task is not None:
        low = _int(env, "SLURM_ARRAY_TASK_MIN") or 0
        count = _int(env, "SLURM_ARRAY_TASK_COUNT")
        high = _int(env, "SLURM_ARRAY_TASK_MAX")
        if count is None and high is not None:
            count = high - low + 1
        where = "SLURM_ARRAY_TASK_ID/SLURM_ARRAY_TASK_COUNT"
        if count is not None and high is not None and high - low + 1 != count:
            raise ConfigurationError(
                f"SLURM array {low}-{high} holds {count} tasks: steps or gaps (--array=0-15:2, --array=1,5) do not "
                "number the jobs 0 … J-1; use --array=0-(J-1), or pass --num-jobs and --job-index"
            )
        return count, task - low, where
    index = _int(env, "JOB_COMPLETION_INDEX")
    if index is not None:
        return _int(env, "JOB_COMPLETIONS"), index, "JOB_COMPLETION_INDEX/JOB_COMPLETIONS"
    return None, None, None


def resolve_jobs(num_jobs: int | None, job_index: int | None, env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The ``(num_jobs, job_index)`` a conversion uses: the flags, else the scheduler's, else one job.

    Raises
    ------
    ConfigurationError
        A flag and the scheduler disagree; an index known without a count (Kubernetes without
        ``--num-jobs`` or ``JOB_COMPLETIONS``); an index outside ``[0, num_jobs)``.
    """
    if num_jobs == 1 and job_index in (None, 0):
        return 1, 0  # one job asked for by name: an array of separate conversions
    env_jobs, env_index, where = from_scheduler(env)
    for flag, given, found in (("--num-jobs", num_jobs, env_jobs), ("--job-index", job_index, env_index)):
        if given is not None and found is not None and given != found:
            raise ConfigurationError(
                f"{flag} {given} but the scheduler says {found} ({where}): drop the flag or start the job with the "
                "matching array size"
            )
    jobs = num_jobs if num_jobs is not None else env_jobs
    index = job_index if job_index is not None else env_index
    if jobs is None and index is not None:
        raise ConfigurationError(
            f"job index {index} from {where} but no job count: pass --num-jobs J (or set JOB_COMPLETIONS in the pod)"
        )
    jobs = 1 if jobs is None else jobs
    index = 0 if index is None else index
    if jobs < 1 or not 0 <= index < jobs:
        raise ConfigurationError(
            f"--job-index must lie in [0, --num-jobs) and --num-jobs >= 1, got {index} of {jobs}"
            + (f" (from {where})" if where else "")
        )
    return jobs, index
