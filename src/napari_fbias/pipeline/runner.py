"""Run a validated pipeline in this process.

Steps run in dependency order. A *spatial* operation receives one spatial
block (``yx`` or ``zyx``): the runner loops over the other axes (``t``,
``c``) of its first array input and stacks the results (tables get ``t``/``c``
columns). Non-spatial operations receive whole arrays. The context settings
``axes`` and ``spacing`` are filled from the input. Images larger than
``memory_limit`` run chunk-wise with dask (see :mod:`.chunked`).

Memory: before each step the runner estimates its peak (the arrays still held
plus what the step adds, see :mod:`.memory`); a step that would not fit the
budget runs chunk-wise, or is refused before it starts when its operation
cannot. A value is let go as soon as no later step, and no output, needs it.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.ops.types import ARRAY_KINDS, TABLE_KINDS
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.model import Pipeline, Step, thaw
from napari_fbias.pipeline.values import Value, bind_inputs, select, to_value

ProgressCallback = Callable[[int, int, str], None]

#: Version of the run record layout (``run.json``).
RUN_RECORD_VERSION = 1


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
    pipeline: Pipeline,
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
    from napari_fbias.ops.registry import get_op
    from napari_fbias.pipeline.chunked import apply_step_chunked
    from napari_fbias.pipeline.memory import live_bytes
    from napari_fbias.pipeline.provenance import (
        array_sha256,
        hash_block_bytes,
        package_versions,
        utc_now_iso,
    )
    from napari_fbias.pipeline.validate import topological_order

    pipeline = pipeline.validated()
    started = utc_now_iso()
    t_start = time.perf_counter()
    if memory_limit is not None:
        limit = memory_limit
    else:
        limit = 0 if chunked else default_memory_limit()
    bound = bind_inputs(pipeline.inputs, image, more_inputs)
    values: dict[str, Value] = {}
    inputs_record: dict[str, Any] = {}
    for name, decl in pipeline.inputs.items():
        raw, source = to_value(bound[name], decl, name)
        entry: dict[str, Any] = {**source, "axes": raw.axes}
        entry["shape"] = [int(n) for n in raw.data.shape]
        entry["dtype"] = str(raw.data.dtype)
        if decl.selection():
            entry["selection"] = decl.selection()
        if checksum:  # read in slabs that fit the memory budget
            entry["sha256"] = array_sha256(raw.data, block_bytes=hash_block_bytes(limit))
        values[name] = select(raw, decl, name)
        inputs_record[name] = entry
    if chunked is None:
        chunked = any(v.data.nbytes > limit for v in values.values() if v.is_array)
    if chunked:
        from napari_fbias.pipeline.chunked import as_dask

        values = {k: as_dask(v, chunks) for k, v in values.items()}
    else:
        values = {k: materialise(v) for k, v in values.items()}
    inputs = dict(values)
    order = topological_order(pipeline)
    last_use = _last_uses(pipeline, order)
    sources = {o.source for o in pipeline.outputs.values()}
    steps_record: list[dict[str, Any]] = []
    fed: dict[str, dict[str, Value]] = {}
    n = len(order)
    for i, step in enumerate(order):
        if progress is not None:
            progress(i, n, step.id)
        spec = get_op(step.op)
        args = [values[step.inputs[s.name]] if s.name in step.inputs else None for s in spec.inputs]
        t0 = time.perf_counter()
        live = live_bytes([*values.values(), *inputs.values()])
        out = apply_step_chunked(spec, step, args, limit, live=live)
        steps_record.append(
            {
                "id": step.id,
                "op": step.op,
                "params": thaw({**spec.defaults(), **step.params}),
                "seconds": round(time.perf_counter() - t0, 6),
                "mode": "chunked" if out.is_array and out.is_lazy else "in-memory",
            }
        )
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
    chunked = chunked or any(s["mode"] == "chunked" for s in steps_record)
    record = {
        "fbias_run": RUN_RECORD_VERSION,
        "pipeline": {"name": pipeline.name, "sha256": pipeline.sha256()},
        "inputs": inputs_record,
        "mode": "chunked" if chunked else "in-memory",
        "versions": package_versions(),
        "started": started,
        "finished": utc_now_iso(),
        "seconds": round(time.perf_counter() - t_start, 6),
        "steps": steps_record,
        "outputs": {k: v.describe() for k, v in outputs.items()},
    }
    feeds = {name: fed.get(o.source, {}) for name, o in pipeline.outputs.items()}
    return Results(outputs, record, inputs, feeds)


def _last_uses(pipeline: Pipeline, order: list[Step]) -> dict[str, int]:
    """Return, per value name, the index of the last step that reads it (outputs: past the end)."""
    last: dict[str, int] = {}
    for i, step in enumerate(order):
        for ref in step.inputs.values():
            last[ref] = i
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


def materialise(value: Value) -> Value:
    """Return the value with its array computed into memory (numpy)."""
    if value.is_array and value.is_lazy:
        return Value(
            np.asarray(value.data.compute()), value.kind, value.axes, value.spacing, value.units
        )
    return value


def context_kwargs(spec: Any, axes: str, spacing: tuple[float, ...] | None) -> dict[str, Any]:
    """Fill in the context settings (``axes``, ``spacing``) this op declares."""
    kwargs: dict[str, Any] = {}
    if "axes" in spec.context:
        kwargs["axes"] = axes
    if "spacing" in spec.context:
        kwargs["spacing"] = spacing
    return kwargs


def call_op(spec: Any, step: Step, args: list[Any], kwargs: Mapping[str, Any]) -> Any:
    """Call the op's function, turning its errors into a :class:`StepError`."""
    try:
        return spec.func(*args, **kwargs)
    except StepError:
        raise
    except ValueError as exc:
        raise StepError(step.id, step.op, str(exc)) from exc
    except Exception as exc:
        raise StepError(step.id, step.op, f"{type(exc).__name__}: {exc}") from exc


def check_output(spec: Any, step: Step, out: Any) -> None:
    """Check that an op returned the kind it declares (an op bug otherwise)."""
    if spec.output in ARRAY_KINDS:
        if not hasattr(out, "shape") or not hasattr(out, "dtype") or isinstance(out, pd.DataFrame):
            raise StepError(step.id, step.op, f"returned {type(out).__name__}, not an array")
        if spec.output == "labels" and not np.issubdtype(out.dtype, np.integer):
            raise StepError(step.id, step.op, f"returned {out.dtype} labels, not integers")
    elif spec.output in TABLE_KINDS and not isinstance(out, pd.DataFrame):
        raise StepError(step.id, step.op, f"returned {type(out).__name__}, not a table")


def primary_input(args: list[Value | None]) -> Value | None:
    """Return the input that sets axes and spacing: the first array, else the first input."""
    for v in args:
        if v is not None and v.is_array:
            return v
    return next((v for v in args if v is not None), None)


def compute_step(spec: Any, step: Step, args: list[Value | None]) -> Value:
    """Run one step on values that may be lazy: compute them into memory, then :func:`apply_step`.

    This is the single-step path the napari widgets, the headless demo and the
    in-memory runner share, so a recorded step reruns bit for bit.
    """
    return apply_step(spec, step, [None if v is None else materialise(v) for v in args])


def apply_step(spec: Any, step: Step, args: list[Value | None]) -> Value:
    """Run one step in memory (numpy in, numpy/DataFrame out)."""
    primary = primary_input(args)
    params = dict(step.params)
    if primary is None:
        out = call_op(spec, step, [], params)
        check_output(spec, step, out)
        return Value(out, spec.output)
    if spec.spatial and primary.is_array:
        return _apply_spatial(spec, step, args, primary, params)
    kwargs = {**params, **context_kwargs(spec, primary.axes, primary.spacing)}
    out = call_op(spec, step, [None if v is None else v.data for v in args], kwargs)
    check_output(spec, step, out)
    return wrap_output(spec, step, out, primary, primary.axes)


def wrap_output(spec: Any, step: Step, out: Any, primary: Value, axes_in: str) -> Value:
    """Give an op's raw output its kind, axes, spacing and units."""
    if spec.output in TABLE_KINDS:
        return Value(out, spec.output, primary.axes, primary.spacing, primary.units)
    if spec.axes_out is not None:
        axes = spec.axes_out(axes_in, dict(step.params))
    elif out.ndim == len(axes_in):
        axes = axes_in
    else:
        raise StepError(
            step.id,
            step.op,
            f"returned {out.ndim} dimensions for an input with axes {axes_in!r} "
            "(an op that changes axes must declare axes_out)",
        )
    if len(axes) != out.ndim:
        raise StepError(step.id, step.op, f"returned {out.ndim} dimensions, expected axes {axes!r}")
    return Value(out, spec.output, axes, primary.spacing_of(axes), primary.units_of(axes))


def loop_plan(step: Step, args: list[Value | None], primary: Value) -> list[tuple[str, int]]:
    """Return the non-spatial axes a spatial op loops over, with their lengths.

    Raises
    ------
    StepError
        When another array input has an axis the primary lacks or a different size.
    """
    loop = [(a, int(primary.data.shape[i])) for i, a in enumerate(primary.axes) if a not in "zyx"]
    spatial = primary.spatial_axes
    shape = {a: int(n) for a, n in zip(primary.axes, primary.data.shape, strict=True)}
    for v in args:
        if v is None or v is primary or not v.is_array:
            continue
        if v.spatial_axes != spatial:
            raise StepError(
                step.id,
                step.op,
                f"inputs have different spatial axes ({spatial!r} and {v.spatial_axes!r})",
            )
        for a, n in zip(v.axes, v.data.shape, strict=True):
            if a not in shape:
                raise StepError(
                    step.id,
                    step.op,
                    f"one input has a {a!r} axis that the first "
                    "lacks; select a single channel/time point first",
                )
            if shape[a] != int(n):
                raise StepError(
                    step.id, step.op, f"inputs differ in size along {a!r} ({shape[a]} and {int(n)})"
                )
    return loop


def _apply_spatial(
    spec: Any, step: Step, args: list[Value | None], primary: Value, params: dict[str, Any]
) -> Value:
    loop = loop_plan(step, args, primary)
    spatial = primary.spatial_axes
    kwargs = {**params, **context_kwargs(spec, spatial, primary.spacing_of(spatial))}
    if not loop:
        out = call_op(spec, step, [None if v is None else v.data for v in args], kwargs)
        check_output(spec, step, out)
        return wrap_output(spec, step, out, primary, spatial)
    names = [a for a, _ in loop]
    tables: list[tuple[dict[str, int], pd.DataFrame]] = []
    data: np.ndarray | None = None
    first_axes = ""
    for idx in itertools.product(*(range(n) for _, n in loop)):
        where = dict(zip(names, idx, strict=True))
        block_args = [None if v is None else _index(v, where) for v in args]
        out = call_op(spec, step, block_args, kwargs)
        check_output(spec, step, out)
        if spec.output in TABLE_KINDS:
            tables.append((where, out))
            continue
        out = np.asarray(out)
        if data is None:  # filled block by block: no list of blocks, no second copy
            first_axes = wrap_output(spec, step, out, primary, spatial).axes
            data = np.empty(tuple(n for _, n in loop) + out.shape, dtype=out.dtype)
        elif out.shape != data.shape[len(loop) :]:
            shapes = sorted({tuple(data.shape[len(loop) :]), out.shape})
            raise StepError(step.id, step.op, f"returned blocks of different shapes {shapes}")
        elif out.dtype != data.dtype:
            data = data.astype(np.result_type(data.dtype, out.dtype))
        data[idx] = out
    if spec.output in TABLE_KINDS:
        return Value(
            stack_tables(tables, names), spec.output, primary.axes, primary.spacing, primary.units
        )
    axes = "".join(names) + first_axes
    return Value(data, spec.output, axes, primary.spacing_of(axes), primary.units_of(axes))


def _index(value: Value, where: Mapping[str, int]) -> Any:
    if not value.is_array:
        return value.data
    index = tuple(where[a] if a in where else slice(None) for a in value.axes)
    return value.data[index]


def stack_tables(
    pieces: list[tuple[dict[str, int], pd.DataFrame]], names: list[str]
) -> pd.DataFrame:
    """Concatenate per-block tables, adding the loop indices (``t``, ``c``) as first columns."""
    frames = []
    for where, df in pieces:
        df = df.copy()
        for pos, axis in enumerate(names):
            if axis in df.columns:
                df = df.drop(columns=axis)
            df.insert(pos, axis, np.full(len(df), where[axis], dtype=np.int64))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out.attrs = dict(pieces[0][1].attrs)
    return out
