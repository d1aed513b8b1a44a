"""Run independent trials of a reproduction script in worker processes (or in this one): shared by the examples."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor


def run_jobs(job, jobs: list, processes: int) -> list:
    """``[job(j) for j in jobs]``, in ``processes`` worker processes when there are more than one."""
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            return list(pool.map(job, jobs))
    return [job(j) for j in jobs]
