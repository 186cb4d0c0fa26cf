"""How many dask tasks run at once where this process computes.

Chunk-wise passes compute a few blocks per ``dask.compute`` and writes go
region by region: enough at once to keep every thread (or cluster worker)
busy, few enough that what one compute holds (its blocks, the neighbours
their halos read, their intermediate arrays) stays a small multiple of the
memory budget's blocks, not of the image.
"""

from __future__ import annotations

__all__ = ["parallel_tasks"]


def parallel_tasks() -> int:
    """Return how many tasks dask runs at once here.

    The cluster's threads when a distributed client computes, else the local
    scheduler's workers (``num_workers``, else the CPU count).
    """
    import dask
    from dask.system import CPU_COUNT

    try:
        from dask.base import get_scheduler

        owner = getattr(get_scheduler(), "__self__", None)
    except Exception:
        owner = None
    nthreads = getattr(owner, "nthreads", None)
    if callable(nthreads):  # a distributed.Client
        try:
            return max(1, sum(int(n) for n in nthreads().values()))
        except Exception:
            return 1
    return max(1, int(dask.config.get("num_workers", None) or CPU_COUNT or 1))
