"""Run a pipeline on many images: in this process or on a dask cluster, resumable.

Each input image is one task. Its results are built in a temporary folder
next to ``<outdir>/<stem>/`` and renamed into place once complete, with
``run.json`` (pipeline sha256, input checksum, versions, timings) written
last inside it: a result folder is either complete or absent, so a batch that
was interrupted (or a worker that died and was retried by dask) never leaves
half-written or duplicated results. Running the same batch again skips the
inputs whose ``run.json`` matches the pipeline and the input pixels.

Parallel runs use ``dask.distributed``: a ``LocalCluster`` (``scheduler="local"``),
an existing scheduler (its address), or SLURM through dask-jobqueue
(``cluster="slurm"``; see ``docs/cluster.md``), in :mod:`.batch_cluster`: an
input larger than a worker's memory budget runs from this process with its
blocks spread over the workers. Inputs are never written to, and an output
folder inside an input is refused.

The loop over inputs here (:func:`run_each`: one input after the other, an
error of one input failing it alone, :func:`run_guarded`) also drives the
exported scripts (``napari_fbias.session.export.runtime.script_main``).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from napari_fbias.pipeline.errors import BatchError
from napari_fbias.pipeline.inputs import BatchInput, Selection, check_outdir, expand_inputs
from napari_fbias.pipeline.model import Pipeline

BatchProgress = Callable[[int, int, str], None]


@dataclass(frozen=True)
class BatchItem:
    """Outcome for one input: ``status`` is ``"done"``, ``"skipped"`` or ``"failed"``."""

    source: str
    stem: str
    status: str
    message: str = ""
    seconds: float = 0.0
    folder: str = ""


@dataclass
class BatchReport:
    """What a batch did, input by input."""

    outdir: str
    items: list[BatchItem] = field(default_factory=list)
    #: Plate summaries, object tables and heat maps written (batches over plates).
    plate_files: list[Path] = field(default_factory=list)
    #: Per plate of the batch: its heat map as data (see ``plate_tables.plate_result``).
    plates: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count(self, status: str) -> int:
        """Count the inputs with this status."""
        return sum(1 for i in self.items if i.status == status)

    @property
    def ok(self) -> bool:
        """True when no input failed."""
        return self.count("failed") == 0

    def summary(self) -> str:
        """One line: ``"3 done, 1 skipped (already finished), 0 failed"``."""
        return (
            f"{self.count('done')} done, {self.count('skipped')} skipped (already finished), "
            f"{self.count('failed')} failed"
        )


def run_batch(
    pipeline: Pipeline | str | os.PathLike[str],
    inputs: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    resume: bool = True,
    progress: BatchProgress | None = None,
    cluster: str | None = None,
    processes: bool = True,
    storage_options: Mapping[str, Any] | None = None,
    memory_limit: int | None = None,
    chunks: Any = None,
    retries: int = 2,
    strict: bool = False,
    select: Selection | None = None,
    heatmap: str | None = None,
) -> BatchReport:
    """Run ``pipeline`` on every input image, writing results under ``outdir/<stem>/``.

    Parameters
    ----------
    pipeline : Pipeline or path
        The pipeline (a path is loaded and validated). It must have one input.
    inputs : path, URL, folder, glob, or a list of them
        See :func:`napari_fbias.pipeline.inputs.expand_inputs`.
    outdir : path
        Output folder (created if needed); must not lie inside an input.
    scheduler : None, "local" or str
        None: run here, one input after the other. ``"local"``: a new dask
        ``LocalCluster`` with ``n_workers`` workers. Otherwise the address of a
        running dask scheduler (``"tcp://10.0.0.5:8786"``).
    n_workers : int, optional
        Workers of the local cluster (default: up to 4, one per CPU core), or
        SLURM jobs with ``cluster="slurm"``.
    resume : bool
        Skip inputs whose ``run.json`` says they were done with this pipeline
        on these very pixels. False reruns and replaces every result.
    progress : callable, optional
        ``progress(n_finished, n_inputs, stem)`` after each input.
    cluster : {None, "slurm"}
        ``"slurm"`` starts workers as SLURM jobs via dask-jobqueue.
    processes : bool
        Local cluster workers as processes (True) or threads of this process.
    storage_options : mapping, optional
        fsspec options for remote inputs (e.g. ``{"anon": True}``).
    memory_limit : int, optional
        Memory budget of each run, in bytes (see ``run_pipeline``): steps that
        would exceed it run chunk-wise, or fail clearly when they cannot.
    chunks : optional
        Chunk size for chunk-wise runs (see ``run_pipeline``).
    retries : int
        How often dask retries an input whose worker died.
    strict : bool
        An OME-Zarr chunk missing from its store (a partial copy) fails the
        input, naming the chunk, instead of reading as the fill value (zeros).
    select : Selection, optional
        Only these wells and fields of OME-Zarr plates, series of
        bioformats2raw containers (default: all).
    heatmap : str, optional
        For plates: the summary column of the heat map (see
        :mod:`napari_fbias.pipeline.plate_tables`); plate tables are written
        after the runs into ``outdir`` (``report.plate_files``).

    Returns
    -------
    BatchReport
        One :class:`BatchItem` per input, in input order.

    Raises
    ------
    PipelineError
        The pipeline is not valid (nothing is run).
    BatchError
        No inputs, an input that does not exist, an output folder inside an
        input, a scheduler that cannot be reached.
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = Pipeline.load(pipeline)
    else:
        pipeline = pipeline.validated()
    if len(pipeline.inputs) != 1:
        names = ", ".join(pipeline.inputs)
        raise BatchError(
            f"a batch feeds one image to each run, but the pipeline has "
            f"{len(pipeline.inputs)} inputs ({names})"
        )
    items = expand_inputs(inputs, select)
    out = check_outdir(outdir, items)
    out.mkdir(parents=True, exist_ok=True)
    options = {
        "resume": resume,
        "storage_options": dict(storage_options) if storage_options else None,
        "memory_limit": memory_limit,
        "chunks": chunks,
        "strict": strict,
    }
    pdict = pipeline.to_dict()
    report = BatchReport(str(out))
    if scheduler is None and cluster is None:
        task = partial(_process_input, pdict, outdir=str(out), options=options)
        for done in run_each(items, task):
            report.items.append(done)
            if progress is not None:
                progress(len(report.items), len(items), done.stem)
        return _with_plates(report, items, heatmap)
    import dask

    from napari_fbias.pipeline.batch_cluster import run_distributed

    # workers that are threads of this process share its dask settings
    with dask.config.set(scheduler="threads"):
        results = run_distributed(
            pdict,
            items,
            out,
            options,
            task=process_input,
            failed=_failed,
            scheduler=scheduler,
            cluster=cluster,
            n_workers=n_workers,
            processes=processes,
            progress=progress,
            retries=retries,
        )
    report.items.extend(results)
    return _with_plates(report, items, heatmap)


def _with_plates(report: BatchReport, items: list[BatchInput], heatmap: str | None) -> BatchReport:
    """Write the plate tables of the plates in the batch (when there are any) into the report."""
    if any(item.place is not None for item in items):
        from napari_fbias.pipeline.plate_tables import write_plate_tables

        status = {i.stem: i.status for i in report.items}
        report.plate_files = write_plate_tables(
            items, report.outdir, status, heatmap=heatmap, results=report.plates
        )
    return report


def _failed(item: BatchInput, message: str, t0: float) -> BatchItem:
    from napari_fbias.io.credentials import scrub_text

    return BatchItem(item.shown, item.stem, "failed", scrub_text(message), time.perf_counter() - t0)


def run_guarded(item: BatchInput, task: Callable[[], BatchItem]) -> BatchItem:
    """Run one input's ``task``; any error of that input comes back as a ``"failed"`` item.

    The message is one a user can act on (credentials scrubbed): the error's
    own for problems with the data or the run, its type and text for anything
    unexpected, and what to do when the input ran out of memory.
    """
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.pipeline.errors import PipelineRunError

    t0 = time.perf_counter()
    try:
        return task()
    except MemoryError:
        return _failed(
            item,
            f"ran out of memory with {item.shown}: it (or what its metadata claim) needs more "
            "memory than this machine has free. Give a smaller memory budget (fbias run "
            "--memory) so that steps run chunk-wise, or use a machine with more memory",
            t0,
        )
    except (PipelineRunError, FbiasIOError, ValueError, OSError) as exc:
        return _failed(item, str(exc), t0)
    except Exception as exc:  # an unexpected error must not stop the other inputs
        return _failed(item, f"{type(exc).__name__}: {exc}", t0)


def run_each(
    items: Sequence[BatchInput], task: Callable[[BatchInput], BatchItem]
) -> Iterator[BatchItem]:
    """Run ``task(item)`` on each input in turn, here, and yield each outcome as it comes.

    An error of one input fails that input alone (:func:`run_guarded`); the others run.
    """
    for item in items:
        yield run_guarded(item, partial(task, item))


def process_input(
    pipeline_dict: Mapping[str, Any], item: BatchInput, outdir: str, options: Mapping[str, Any]
) -> BatchItem:
    """Run the pipeline on one input and write its result folder (one batch task).

    Never raises for problems with the data: they come back as a ``"failed"``
    item with a message a user can act on, running out of memory included.
    """
    return run_guarded(item, partial(_process_input, pipeline_dict, item, outdir, options))


def _process_input(
    pipeline_dict: Mapping[str, Any],
    item: BatchInput,
    outdir: str,
    options: Mapping[str, Any],
) -> BatchItem:
    from napari_fbias.extras import MissingExtraError
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.pipeline.errors import PipelineError
    from napari_fbias.pipeline.outputs import earlier_record, write_result_folder
    from napari_fbias.pipeline.provenance import array_sha256, hash_block_bytes
    from napari_fbias.pipeline.runner import run_pipeline
    from napari_fbias.pipeline.values import open_source

    t0 = time.perf_counter()
    _local_scheduler_in_worker()
    try:
        pipeline = Pipeline.from_dict(pipeline_dict)
    except PipelineError as exc:  # e.g. an op plugin missing on this worker
        return _failed(item, f"the pipeline cannot run here: {exc}", t0)
    ((input_name, decl),) = pipeline.inputs.items()
    try:
        image = open_source(
            item.source,
            decl,
            options.get("storage_options"),
            strict=bool(options.get("strict", False)),
        )
    except (FbiasIOError, OSError, ValueError, MissingExtraError) as exc:
        return _failed(item, f"cannot open {item.shown}: {exc}", t0)
    except MemoryError:
        raise
    except Exception as exc:  # a reader's unexpected error must not stop the other inputs
        return _failed(item, f"cannot open {item.shown}: {type(exc).__name__}: {exc}", t0)
    note = ""
    record = earlier_record(Path(outdir) / item.stem)
    if record is not None and options.get("resume", True):
        done_sha = record.get("pipeline", {}).get("sha256")
        if done_sha != pipeline.sha256():
            return _failed(
                item,
                f"{Path(outdir) / item.stem} holds results of a different pipeline "
                f"(sha256 {str(done_sha)[:12]}...); use another output folder, "
                "or --no-resume to replace them",
                t0,
            )
        try:
            checksum = array_sha256(
                image.data, block_bytes=hash_block_bytes(options.get("memory_limit"))
            )
        except (FbiasIOError, OSError, ValueError) as exc:
            return _failed(item, f"cannot read {item.shown}: {exc}", t0)
        if record.get("inputs", {}).get(input_name, {}).get("sha256") == checksum:
            final = str(Path(outdir) / item.stem)
            return BatchItem(
                item.shown, item.stem, "skipped", "already done", time.perf_counter() - t0, final
            )
        note = "input changed since the last run; results replaced"
    _remove_stale_temporaries(Path(outdir), item.stem)
    results = run_pipeline(
        pipeline,
        image,
        memory_limit=options.get("memory_limit"),
        chunks=options.get("chunks"),
    )
    final = write_result_folder(results, outdir, item.stem, source=item.shown)
    return BatchItem(item.shown, item.stem, "done", note, time.perf_counter() - t0, str(final))


def _local_scheduler_in_worker() -> None:
    """Inside a dask worker, compute with local threads (not by submitting to the cluster).

    Set without restoring (every task sets the same value), so tasks running
    side by side in one worker process cannot undo it for each other.
    """
    try:
        from distributed import get_worker

        get_worker()
    except (ImportError, ValueError):
        return
    import dask

    if dask.config.get("scheduler", None) != "threads":
        dask.config.set(scheduler="threads")


def _remove_stale_temporaries(outdir: Path, stem: str) -> None:
    """Remove temporary folders left by an interrupted run of this input."""
    for prefix in (f".{stem}.tmp-", f".{stem}.old-"):
        for p in outdir.glob(prefix + "*"):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
