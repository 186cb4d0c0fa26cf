"""Run a validated pipeline in this process: the walk through its steps.

Steps run in dependency order, each through the single-step path
(:mod:`.apply`, via :func:`.chunked.apply_step_chunked`, which runs it in
memory when it fits). Images larger than ``memory_limit`` run chunk-wise
with dask (see :mod:`.chunked`). The run record comes from
:class:`.record.RunRecorder`.

Memory: before each step the runner estimates its peak (the arrays still held
plus what the step adds, see :mod:`.memory`); a step that would not fit the
budget runs chunk-wise, or is refused before it starts when its operation
cannot. A value is let go as soon as no later step, and no output, needs it.
A chunk-wise step's lazy result that a later step reads is written once to
scratch disk and read from there (:mod:`.checkpoint`).

``compute_step``, ``apply_step`` and ``materialise`` are re-exported from
:mod:`.apply`, where they live.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from napari_fbias.ops.registry import get_op
from napari_fbias.pipeline.apply import apply_step, compute_step, materialise
from napari_fbias.pipeline.memory import live_bytes
from napari_fbias.pipeline.parts import PipelineLike, Step
from napari_fbias.pipeline.record import RUN_RECORD_VERSION, RunRecorder
from napari_fbias.pipeline.validate import topological_order
from napari_fbias.pipeline.values import Value, bind_inputs

__all__ = [
    "RUN_RECORD_VERSION",
    "Results",
    "apply_step",
    "compute_step",
    "default_memory_limit",
    "materialise",
    "run_pipeline",
]

ProgressCallback = Callable[[int, int, str], None]


class Results(Mapping[str, Any]):
    """Outputs of a pipeline run: output name -> numpy array or DataFrame.

    After a chunk-wise run (images larger than memory) arrays are dask arrays:
    nothing is computed until they are written or ``.compute()`` is called.

    Attributes
    ----------
    record : dict
        The run record (JSON-safe): pipeline name and sha256, inputs with
        sources and pixel checksums, package versions, per-step settings and
        timings, and a description of each output.
    inputs : dict of str to Value
        The inputs after selection (what the first steps received).
    feeds : dict of str to dict of str to Value
        For each output, the data its step received (by the op's parameter
        name): e.g. the labels a tracks output was made from.
    """

    def __init__(
        self,
        values: Mapping[str, Value],
        record: dict[str, Any],
        inputs: Mapping[str, Value],
        feeds: Mapping[str, Mapping[str, Value]] | None = None,
    ) -> None:
        self._values = dict(values)
        self.record = record
        self.inputs = dict(inputs)
        self.feeds = {k: dict(v) for k, v in (feeds or {}).items()}

    def __getitem__(self, name: str) -> Any:
        return self._values[name].data

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def value(self, name: str) -> Value:
        """Return the output ``name`` with its kind, axes and spacing."""
        return self._values[name]

    def __repr__(self) -> str:
        items = ", ".join(f"{k}: {v.kind}" for k, v in self._values.items())
        return f"Results({items})"


def run_pipeline(
    pipeline: PipelineLike,
    image: Any = None,
    /,
    *,
    progress: ProgressCallback | None = None,
    chunked: bool | None = None,
    chunks: Any = None,
    memory_limit: int | None = None,
    checksum: bool = True,
    **more_inputs: Any,
) -> Results:
    """Run ``pipeline`` on the given data; see :meth:`Pipeline.run`.

    Parameters
    ----------
    pipeline : Pipeline
        Validated first (settings coerced); invalid pipelines raise PipelineError.
    image : object
        Data for the first declared input.
    progress : callable, optional
        ``progress(step_index, n_steps, step_id)``.
    chunked : bool or None
        Force (True) or forbid (False) chunk-wise execution with dask; None
        decides from the size of the inputs and ``memory_limit``.
    chunks : optional
        Chunk shape for chunk-wise runs (dask ``rechunk`` argument); by default
        the input's own chunks.
    memory_limit : int, optional
        The memory budget in bytes (default: a quarter of the machine's
        memory; 0 when ``chunked`` is True, so that every step that can runs
        chunk-wise). Inputs larger than it stay lazy, and a step whose
        estimated peak exceeds it runs chunk-wise, or raises
        :class:`~napari_fbias.pipeline.errors.MemoryLimitError` before starting
        when its operation cannot.
    checksum : bool
        Compute the SHA-256 of each input's full-resolution pixels for the record.
    **more_inputs
        Data for the other inputs, by name.

    Returns
    -------
    Results
    """
    from napari_fbias.pipeline.checkpoint import checkpoint, checkpoint_possible
    from napari_fbias.pipeline.chunked import apply_step_chunked, as_dask  # imports dask

    pipeline = pipeline.validated()
    if memory_limit is not None:
        limit = memory_limit
    else:
        limit = 0 if chunked else default_memory_limit()
    recorder = RunRecorder(checksum=checksum, memory_limit=limit)
    bound = bind_inputs(pipeline.inputs, image, more_inputs)
    values = {
        name: recorder.take_input(bound[name], decl, name) for name, decl in pipeline.inputs.items()
    }
    if chunked is None:
        chunked = any(v.data.nbytes > limit for v in values.values() if v.is_array)
    if chunked:
        values = {k: as_dask(v, chunks) for k, v in values.items()}
    else:
        values = {k: materialise(v) for k, v in values.items()}
    inputs = dict(values)
    order = topological_order(pipeline)
    last_use = _last_uses(pipeline, order)
    read_later = _last_uses(pipeline, order, outputs=False)
    sources = {o.source for o in pipeline.outputs.values()}
    fed: dict[str, dict[str, Value]] = {}
    keep_on_disk: bool | None = None  # asked once, when a lazy result is read later
    n = len(order)
    for i, step in enumerate(order):
        if progress is not None:
            progress(i, n, step.id)
        spec = get_op(step.op)
        args = [values[step.inputs[s.name]] if s.name in step.inputs else None for s in spec.inputs]
        t0 = time.perf_counter()
        live = live_bytes([*values.values(), *inputs.values()])
        out = apply_step_chunked(spec, step, args, limit, live=live)
        lazy = (out.is_array and out.is_lazy) or out.chunkwise
        if out.is_array and out.is_lazy and read_later.get(step.id, -1) > i:
            if keep_on_disk is None:
                keep_on_disk = checkpoint_possible()
            if keep_on_disk:  # computed once, not once per block a later step reads
                out = checkpoint(out, step.id, step.op)
        recorder.add_step(spec, step, time.perf_counter() - t0, chunked=lazy, chosen=out.chosen)
        if step.id in sources:
            fed[step.id] = {k: values[ref] for k, ref in step.inputs.items()}
        for ref in step.inputs.values():  # let go of what no later step or output needs
            if last_use[ref] <= i:
                values.pop(ref, None)
        if last_use.get(step.id, -1) > i:
            values[step.id] = out
        del args, out
    if progress is not None:
        progress(n, n, "")
    outputs = {name: values[o.source] for name, o in pipeline.outputs.items()}
    record = recorder.finish(pipeline.name, pipeline.sha256(), outputs, chunked=chunked)
    feeds = {name: fed.get(o.source, {}) for name, o in pipeline.outputs.items()}
    return Results(outputs, record, inputs, feeds)


def _last_uses(
    pipeline: PipelineLike, order: list[Step], *, outputs: bool = True
) -> dict[str, int]:
    """Return, per value name, the index of the last step that reads it.

    With ``outputs``, an output's source counts as read past the last step.
    """
    last: dict[str, int] = {}
    for i, step in enumerate(order):
        for ref in step.inputs.values():
            last[ref] = i
    if outputs:
        for o in pipeline.outputs.values():
            last[o.source] = len(order)
    return last


def default_memory_limit() -> int:
    """Return a quarter of this machine's memory (2 GiB if unknown)."""
    try:
        import psutil

        return int(psutil.virtual_memory().total // 4)
    except Exception:  # pragma: no cover - psutil ships with distributed
        return 2 * 2**30
