"""Batches on dask.distributed: small images one per worker, large ones spread over all.

An input that fits a worker's memory budget is one task: a worker opens it,
runs the pipeline and writes its result folder, and several inputs run side
by side. An input larger than the budget would leave the rest of the cluster
idle as one task, so it runs from this process instead, chunk-wise, with the
cluster computing its blocks (every pass's batches and the region-by-region
writes go to all the workers, see :mod:`napari_fbias.io.dask_parallel`).
The large inputs run first, one after the other, then the small ones are
sent to the workers.

The budget is ``fbias run --memory`` when given, else a quarter of the
smallest worker's memory limit (dask's ``memory_limit``), else a quarter of
this machine's memory. Clusters: a ``LocalCluster``, a running scheduler by
address, or SLURM through dask-jobqueue (``docs/cluster.md``).
"""

from __future__ import annotations

import dataclasses
import os
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from napari_fbias.pipeline.errors import BatchError
from napari_fbias.pipeline.inputs import BatchInput

#: ``task(pipeline_dict, item, outdir, options)``: one input's run (``batch.process_input``).
InputTask = Callable[[Mapping[str, Any], BatchInput, str, Mapping[str, Any]], Any]
#: ``failed(item, message, t0)``: the failed outcome of an input (``batch._failed``).
Failed = Callable[[BatchInput, str, float], Any]

__all__ = ["SCHEDULER_TIMEOUT", "make_slurm_cluster", "run_distributed", "worker_budget"]

#: How long to try reaching a dask scheduler given by address.
SCHEDULER_TIMEOUT = "10s"


def _default_workers(n_inputs: int) -> int:
    return max(1, min(4, os.cpu_count() or 1, n_inputs))


def make_slurm_cluster(n_workers: int | None) -> Any:
    """Start a dask-jobqueue ``SLURMCluster`` (settings from the dask jobqueue config).

    Raises
    ------
    BatchError
        When dask-jobqueue is not installed or not configured.
    """
    try:
        from dask_jobqueue import SLURMCluster
    except ImportError:
        raise BatchError(
            "--cluster slurm needs dask-jobqueue: install it with "
            "`pip install 'napari-fbias[slurm]'` (see docs/cluster.md)"
        ) from None
    try:
        cluster = SLURMCluster()
    except (ValueError, TypeError) as exc:
        raise BatchError(
            f"cannot start SLURM workers: {exc}. Set cores/memory/queue in "
            "~/.config/dask/jobqueue.yaml (see docs/cluster.md)"
        ) from exc
    cluster.scale(jobs=n_workers or 1)
    return cluster


def _make_client(
    scheduler: str | None,
    cluster: str | None,
    n_workers: int | None,
    processes: bool,
    n_inputs: int,
) -> tuple[Any, Any]:
    from distributed import Client, LocalCluster

    if cluster == "slurm":
        c = make_slurm_cluster(n_workers)
        return Client(c, set_as_default=False), c
    if cluster is not None:
        raise BatchError(f"unknown cluster type {cluster!r}; the one supported is 'slurm'")
    if scheduler == "local":
        c = LocalCluster(
            n_workers=n_workers or _default_workers(n_inputs),
            threads_per_worker=1,
            processes=processes,
            dashboard_address=":0",  # any free port: never clash with another cluster
        )
        return Client(c, set_as_default=False), c
    try:
        return Client(scheduler, timeout=SCHEDULER_TIMEOUT, set_as_default=False), None
    except (OSError, TimeoutError) as exc:
        raise BatchError(f"cannot reach the dask scheduler at {scheduler}: {exc}") from None


def worker_budget(client: Any, memory_limit: int | None) -> int:
    """Return the memory budget of one run on the cluster (see the module docstring)."""
    from napari_fbias.pipeline.runner import default_memory_limit

    if memory_limit:
        return int(memory_limit)
    try:
        workers = client.scheduler_info()["workers"].values()
        limits = [int(w.get("memory_limit") or 0) for w in workers]
    except Exception:  # a scheduler that cannot say: this machine's default
        limits = []
    limits = [n for n in limits if n > 0]
    return min(limits) // 4 if limits else default_memory_limit()


def _input_bytes(pdict: Mapping[str, Any], item: BatchInput, options: Mapping[str, Any]) -> int:
    """Bytes of the pixels the pipeline reads from ``item`` (0 when it cannot be opened here).

    Opens the input lazily (metadata only); an input this process cannot open
    goes to a worker, which reports why it fails.
    """
    from napari_fbias.pipeline.model import Pipeline
    from napari_fbias.pipeline.record import RunRecorder
    from napari_fbias.pipeline.values import open_source

    try:
        pipeline = Pipeline.from_dict(pdict)
        ((name, decl),) = pipeline.inputs.items()
        image = open_source(item.source, decl, options.get("storage_options"))
        value = RunRecorder(checksum=False).take_input(image, decl, name)
        return int(value.data.nbytes) if value.is_array else 0
    except Exception:
        return 0


#: Inputs opened at once to read their sizes (metadata only; remote stores answer slowly).
SIZE_THREADS = 8


def _large_inputs(
    pdict: Mapping[str, Any], items: list[BatchInput], options: Mapping[str, Any], budget: int
) -> set[int]:
    """Return the indices of the inputs larger than ``budget`` (metadata read a few at a time)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=SIZE_THREADS) as pool:
        sizes = list(pool.map(lambda item: _input_bytes(pdict, item, options), items))
    return {i for i, n in enumerate(sizes) if n > budget}


def run_distributed(
    pdict: Mapping[str, Any],
    items: list[BatchInput],
    out: Path,
    options: Mapping[str, Any],
    *,
    task: InputTask,
    failed: Failed,
    scheduler: str | None,
    cluster: str | None,
    n_workers: int | None,
    processes: bool,
    progress: Callable[[int, int, str], None] | None,
    retries: int,
) -> list[Any]:
    """Run every input on the cluster; return their outcomes (``BatchItem``) in input order."""
    from distributed import as_completed

    client, own_cluster = _make_client(scheduler, cluster, n_workers, processes, len(items))
    try:
        budget = worker_budget(client, options.get("memory_limit"))
        large = _large_inputs(pdict, items, options, budget)
        done: dict[str, Any] = {}

        def finished(item: Any) -> None:
            done[item.stem] = item
            if progress is not None:
                progress(len(done), len(items), item.stem)

        # the large inputs first, one after the other: dask's settings are the
        # process's, so a task on a worker thread of this process (a LocalCluster
        # of threads) would otherwise compute on the cluster too, and back
        options_here = {**options, "memory_limit": budget}
        for i in sorted(large):
            finished(_spread(client, task, pdict, items[i], out, options_here))
        token = uuid.uuid4().hex[:8]
        futures = {}
        for i, item in enumerate(items):
            if i in large:
                continue
            fut = client.submit(
                task,
                dict(pdict),
                item,
                str(out),
                dict(options),
                key=f"fbias-{item.stem}-{token}",
                pure=False,
                retries=retries,
            )
            futures[fut.key] = (fut, item)
        for fut in as_completed([f for f, _ in futures.values()], loop=client.loop):
            _, item = futures[fut.key]
            try:
                result = fut.result()
            except Exception as exc:  # a worker died more often than retried, etc.
                result = failed(item, f"{type(exc).__name__}: {exc}", time.perf_counter())
            finished(result)
        return [done[item.stem] for item in items]
    finally:
        client.close()
        if own_cluster is not None:
            own_cluster.close()


def _spread(
    client: Any,
    task: InputTask,
    pdict: Mapping[str, Any],
    item: BatchInput,
    out: Path,
    options: Mapping[str, Any],
) -> Any:
    """Run one large input from here, chunk-wise, its blocks computed by the cluster's workers."""
    import dask

    with dask.config.set(scheduler=client):
        result = task(dict(pdict), item, str(out), dict(options))
    if result.status != "done":
        return result
    n = len(client.scheduler_info()["workers"])
    note = f"larger than a worker's budget: its blocks ran on the cluster's {n} workers"
    message = f"{result.message}; {note}" if result.message else note
    return dataclasses.replace(result, message=message)
