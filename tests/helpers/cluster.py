"""A real dask LocalCluster of two single-thread workers, as the default scheduler."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def two_worker_client(*, processes: bool = True) -> Iterator[Any]:
    """Yield a ``distributed.Client`` of 2 workers (separate processes by default).

    Inside, ``dask.compute`` and ``.compute()`` run on the cluster (the client
    is the default scheduler, ``scheduler=None`` lifts any set before).
    """
    import dask
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=processes, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
        dask.config.set(scheduler=None),
    ):
        yield client
