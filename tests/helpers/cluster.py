"""A real dask LocalCluster, as the default scheduler for what runs inside."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any


@contextlib.contextmanager
def local_client(
    n_workers: int = 2, threads_per_worker: int = 1, *, processes: bool = True
) -> Iterator[Any]:
    """Yield a ``distributed.Client`` of a LocalCluster (worker processes by default).

    Inside, ``dask.compute`` and ``.compute()`` run on the cluster (the client
    is the default scheduler, ``scheduler=None`` lifts any set before).
    """
    import dask
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
        dask.config.set(scheduler=None),
    ):
        yield client
