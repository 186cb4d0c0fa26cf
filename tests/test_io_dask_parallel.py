"""How many tasks dask runs at once: the local scheduler's workers, or a cluster's threads."""

from __future__ import annotations

import dask

from napari_fbias.io.dask_parallel import parallel_tasks


def test_local_scheduler_workers():
    with dask.config.set(scheduler="threads", num_workers=3):
        assert parallel_tasks() == 3


def test_a_distributed_client_counts_its_threads():
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=2, processes=False, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
        dask.config.set(scheduler=client),
    ):
        assert parallel_tasks() == 4
