"""Running a pipeline from the panel: the work, a run in flight, and what is said of it (no Qt).

The work done in the worker thread is the CLI's: :func:`pipeline_job` runs
:func:`napari_fbias.pipeline.runner.run_pipeline` on the layers' data,
:func:`batch_job` runs :func:`napari_fbias.pipeline.batch.run_batch` on
files. :func:`run_with_progress` hands either a ``progress`` callback that
reports each step (or image) and stops at the next one once Cancel was
pressed. A :class:`Job` is one run in flight: its kind (``"layers"`` or
``"batch"``), what the panel says while it runs and when it ends.
:func:`batch_plan` checks a batch before it starts.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from napari_fbias.io.errors import FbiasIOError
from napari_fbias.pipeline.errors import BatchError, PipelineError
from napari_fbias.pipeline.inputs import Selection
from napari_fbias.pipeline.model import Pipeline

__all__ = [
    "META_KEY",
    "BatchPlan",
    "Job",
    "Progress",
    "RunCancelled",
    "batch_job",
    "batch_plan",
    "batch_summary",
    "measured_output",
    "output_layer_name",
    "output_metadata",
    "pipeline_job",
    "run_with_progress",
]

#: ``layer.metadata`` key of the layers a pipeline run made.
META_KEY = "fbias_pipeline"


class RunCancelled(Exception):
    """Raised in the worker thread when the user cancelled the run."""


def output_layer_name(pipeline_name: str, output: str) -> str:
    """Name of the layer showing ``output`` of a pipeline run: ``"<pipeline>: <output>"``."""
    return f"{pipeline_name}: {output}"


def output_metadata(pipeline: Pipeline, output: str) -> dict[str, Any]:
    """``layer.metadata`` of the layer showing ``output``: which pipeline made it."""
    return {META_KEY: {"pipeline": pipeline.name, "sha256": pipeline.sha256(), "output": output}}


def measured_output(results: Any, table: str) -> str | None:
    """Return the labels output that table output ``table`` measured (None if not an output)."""
    fed = results.feeds.get(table, {})
    labels = next((v for v in fed.values() if v.kind == "labels"), None)
    if labels is None:
        return None
    return next((out for out in results if results.value(out) is labels), None)


# --- the work (worker thread) -------------------------------------------------------------


def pipeline_job(pipeline: Pipeline, inputs: Mapping[str, Any], progress: Any = None) -> Any:
    """Run ``pipeline`` on ``inputs`` (input name -> data) with the CLI's runner (worker thread).

    Returns
    -------
    Results
        As :func:`napari_fbias.pipeline.runner.run_pipeline` returns them.
    """
    from napari_fbias.pipeline.runner import run_pipeline

    names = list(pipeline.inputs)
    more = {n: inputs[n] for n in names[1:] if n in inputs}
    return run_pipeline(pipeline, inputs.get(names[0]), progress=progress, **more)


def batch_job(
    pipeline: Pipeline,
    inputs: Sequence[str],
    outdir: str,
    progress: Any = None,
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Run ``pipeline`` on every input with :func:`run_batch` (worker thread); return its report."""
    from napari_fbias.pipeline.batch import run_batch

    return run_batch(pipeline, list(inputs), outdir, progress=progress, **dict(options or {}))


class Progress:
    """The ``progress(done, total, what)`` callback of the runner: reports, and stops on Cancel.

    Parameters
    ----------
    send : callable
        Called with ``(done, total, what)`` (thread-safe: the panel's relay).
    cancel : threading.Event
        Set by Cancel: the run stops (:class:`RunCancelled`) before the next
        step or image.
    """

    def __init__(self, send: Callable[[Any], Any], cancel: threading.Event) -> None:
        self.send = send
        self.cancel = cancel

    def __call__(self, done: int, total: int, what: str) -> None:
        try:
            self.send((int(done), int(total), str(what)))
        except RuntimeError:  # the panel was closed
            self.cancel.set()
        if self.cancel.is_set() and done < total:
            raise RunCancelled("cancelled")


def run_with_progress(
    job: Callable[..., Any],
    *args: Any,
    cancel: threading.Event,
    report: Callable[[Any], Any],
    mid_step: bool = True,
    **kwargs: Any,
) -> Any:
    """Call ``job(*args, progress=..., **kwargs)``, the progress sent to ``report``.

    Inside a step, the dask tasks of a large image's passes are reported as
    ``("tasks", done, total)``; with ``mid_step`` Cancel also stops the pass in
    flight (a batch rather finishes the image in progress).
    """
    from napari_fbias.pipeline.block_progress import BlockProgress, ComputeCancelled

    def tasks(done: int, total: int) -> None:
        try:
            report(("tasks", done, total))
        except RuntimeError:  # the panel was closed
            cancel.set()

    try:
        with BlockProgress(tasks, every=0.5, cancel=cancel if mid_step else None):
            return job(*args, progress=Progress(report, cancel), **kwargs)
    except ComputeCancelled:
        raise RunCancelled("cancelled") from None


# --- a run in flight ----------------------------------------------------------------------


@dataclass
class Job:
    """A run in flight (one at a time): on layers (``kind="layers"``) or a batch (``"batch"``)."""

    kind: str
    pipeline: Pipeline
    total: int
    cancel: threading.Event = field(default_factory=threading.Event)
    like: Any = None
    outdir: str = ""
    worker: Any = None
    seen: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The last progress line (where the run is).
    line: str = ""

    @property
    def desc(self) -> str:
        """What runs, for the progress bars."""
        what = "Batch" if self.kind == "batch" else "Running"
        return f"{what} {self.pipeline.name}"

    def progressed(self, done: int, total: int, what: str) -> str:
        """Take a progress report; return the line that says where the run is."""
        self.total = total
        if self.kind == "batch":
            if what:
                self.seen.append(what)
            return f"{done}/{total} images (last: {what})" if what else f"{done}/{total} images"
        return f"step {done + 1}/{total}: {what}" if what else "writing results"

    def cancelling(self) -> str:
        """Say what Cancel does for this run."""
        when = "after the current image" if self.kind == "batch" else "at the next block or step"
        return f"Cancelling {when}..."

    def cancelled(self) -> str:
        """Say what a cancelled run left."""
        name = self.pipeline.name
        if self.kind == "batch":
            return (
                f"Batch {name!r} cancelled after {len(self.seen)} of {self.total} images. "
                f"Results of finished images are in {self.outdir}; run again to finish "
                "(finished images are skipped)."
            )
        return f"Run of {name!r} cancelled; no layer was changed."

    def failed(self, exc: BaseException) -> str:
        """Why the run failed (the type of an unexpected error is named)."""
        if isinstance(exc, (PipelineError, BatchError, FbiasIOError, ValueError)):
            message = str(exc)
        else:
            message = f"{type(exc).__name__}: {exc}"
        what = "Batch" if self.kind == "batch" else "Run of"
        return f"{what} {self.pipeline.name!r} failed: {message}"


# --- batch ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPlan:
    """A batch that may start: its inputs, output folder and where it runs."""

    inputs: tuple[str, ...]
    outdir: str
    n_items: int
    options: Mapping[str, Any]


def batch_plan(
    pipeline: Pipeline,
    inputs: Sequence[str],
    outdir: str | None,
    *,
    workers: int = 1,
    scheduler: str = "",
    wells: str = "",
    fields: str = "",
    series: str = "",
) -> BatchPlan:
    """Check a batch before it starts.

    Parameters
    ----------
    inputs : sequence of str
        Folders, files, OME-Zarr paths or URLs, globs.
    outdir : str or None
        Output folder; never inside an input.
    workers : int
        1 runs one image after the other here; more start a local dask cluster.
    scheduler : str
        Address of a running dask scheduler (empty: this computer).
    wells, fields, series : str
        For OME-Zarr plates, only these wells (``"A1, B3"``) and fields
        (``"0"``); for bioformats2raw containers, only these series (``"0, 2"``).
        Empty: all.

    Raises
    ------
    BatchError
        Saying what is missing or wrong.
    """
    from napari_fbias.pipeline.inputs import check_outdir, expand_inputs

    if not inputs:
        raise BatchError("Add the images to run on (folders, files or URLs).")
    if not outdir:
        raise BatchError("Choose an output folder for the results.")
    if len(pipeline.inputs) != 1:
        raise BatchError(
            f"A batch feeds one image to each run, but pipeline {pipeline.name!r} has "
            f"{len(pipeline.inputs)} inputs ({', '.join(pipeline.inputs)})."
        )
    try:
        select = Selection.parse(wells, fields, series)
        items = expand_inputs(list(inputs), select)
        out = check_outdir(outdir, items)
    except BatchError as exc:
        raise BatchError(f"Batch not started: {exc}") from None
    address = scheduler.strip()
    options: dict[str, Any] = {"select": select}
    if address:
        options["scheduler"] = address
    elif workers > 1:
        options.update(scheduler="local", n_workers=int(workers))
    return BatchPlan(tuple(inputs), str(out), len(items), options)


def record_plates(recorder: Any, plates: Mapping[str, Any]) -> str | None:
    """Record a batch's plate heat maps as the result of the approach being recorded.

    They go under the approach result's ``plates`` (plate name -> the heat map
    as data, see ``pipeline.plate_tables.plate_result``; a plate run again
    replaces its earlier one), so the session report draws them. Returns what
    was recorded, or None when no session records into an approach.
    """
    from napari_fbias.session.export.results import PLATES

    if not plates or recorder is None or recorder.active is None:
        return None
    approach = recorder.active
    earlier = approach.result.get(PLATES)
    merged = {**(dict(earlier) if isinstance(earlier, Mapping) else {}), **plates}
    recorder.set_result({**approach.result, PLATES: merged})
    names = ", ".join(plates)
    return f"plate heat map of {names} recorded in approach {approach.key}"


def batch_summary(report: Any) -> tuple[str, str]:
    """Return the first line of a batch report and the whole text (with each failure)."""
    lines = [f"{report.summary()} \u2192 {report.outdir}"]
    for item in report.items:
        if item.status == "failed":
            lines.append(f"\u2022 {item.stem}: failed: {item.message}")
    return lines[0], "\n".join(lines)
