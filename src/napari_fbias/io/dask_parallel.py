"""How many dask tasks run at once where this process computes, and on what.

Chunk-wise passes compute a few blocks per ``dask.compute`` and writes go
region by region: enough at once to keep every thread (or cluster worker)
busy, few enough that what one compute holds (its blocks, the neighbours
their halos read, their intermediate arrays) stays a small multiple of the
memory budget's blocks, not of the image. On a distributed client the
blocks live in the workers and every compute is a round trip, so fewer,
larger computes are better there.
"""

from __future__ import annotations

from typing import Any

__all__ = ["distributed_client", "parallel_tasks"]


def distributed_client() -> Any:
    """Return the ``distributed.Client`` that computes here, or None (a local scheduler)."""
    try:
        from dask.base import get_scheduler

        owner = getattr(get_scheduler(), "__self__", None)
    except Exception:  # no scheduler to ask: the local default
        return None
    return owner if callable(getattr(owner, "nthreads", None)) else None


def parallel_tasks() -> int:
    """Return how many tasks dask runs at once here.

    The cluster's threads when a distributed client computes, else the local
    scheduler's workers (``num_workers``, else the CPU count).
    """
    import dask
    from dask.system import CPU_COUNT

    client = distributed_client()
    if client is not None:
        try:
            return max(1, sum(int(n) for n in client.nthreads().values()))
        except Exception:  # a client that cannot answer: one task at a time
            return 1
    return max(1, int(dask.config.get("num_workers", None) or CPU_COUNT or 1))
