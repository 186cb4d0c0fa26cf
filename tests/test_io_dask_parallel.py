"""How many tasks dask runs at once: the local scheduler's workers, or a cluster's threads."""

from __future__ import annotations

import dask
import pytest

from helpers.cluster import local_client
from napari_fbias.io.dask_parallel import parallel_tasks


def test_local_scheduler_workers():
    with dask.config.set(scheduler="threads", num_workers=3):
        assert parallel_tasks() == 3


def test_a_distributed_client_counts_its_threads():
    with local_client(2, 2, processes=False):
        assert parallel_tasks() == 4


def test_batches_are_larger_on_a_distributed_client():
    """Each distributed compute is a round trip: passes batch at least 16 blocks there."""
    import dask.array as da

    from napari_fbias.ops import chunk_stats

    sizes: list[int] = []
    real = dask.compute

    def counting(*args, **kwargs):
        sizes.append(len(args))
        return real(*args, **kwargs)

    x = da.ones((64, 64), chunks=8)
    calls = [(lambda b: float(b.sum()), b) for b in x.to_delayed().ravel()]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dask, "compute", counting)
        with dask.config.set(scheduler="threads", num_workers=2):
            chunk_stats.compute_in_batches(calls, x.numblocks)
        local = list(sizes)
        sizes.clear()
        with local_client(1, 1, processes=False):
            out = chunk_stats.compute_in_batches(calls, x.numblocks)
    assert max(local) == 4  # 2 blocks per thread here
    assert max(sizes) == chunk_stats.DISTRIBUTED_BATCH_BLOCKS
    assert out == [64.0] * 64
