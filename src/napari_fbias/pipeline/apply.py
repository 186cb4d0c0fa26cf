"""One step of a pipeline, in memory: the single-step path every way of running shares.

:func:`compute_step` is what the napari widgets (``_qt/workspace.py``), the
headless demo, the recomputation of another analyst's approach, the
exported scripts (:class:`~napari_fbias.session.export.runtime.StepRunner`)
and the pipeline runner (:mod:`.runner`, through :mod:`.chunked` when a step
fits in memory) call for one step, so a recorded step reruns bit for bit.

A *spatial* operation receives one spatial block (``yx`` or ``zyx``):
:func:`apply_step` loops over the other axes (``t``, ``c``) of its first
array input and stacks the results (tables get ``t``/``c`` columns).
Non-spatial operations receive whole arrays. The context settings ``axes``
and ``spacing`` are filled from the input.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias.ops.chosen import collect_chosen
from napari_fbias.ops.types import ARRAY_KINDS, TABLE_KINDS
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.parts import Step
from napari_fbias.pipeline.values import Value

__all__ = [
    "apply_step",
    "call_op",
    "check_output",
    "compute_step",
    "context_kwargs",
    "loop_plan",
    "materialise",
    "primary_input",
    "stack_tables",
    "wrap_output",
]


def materialise(value: Value) -> Value:
    """Return the value with its array computed into memory (numpy), its table read (pandas).

    A table a chunk-wise step left on disk (``io.column_table.ColumnTable``) is
    read whole here: the step that takes it runs in memory.
    """
    from napari_fbias.io.column_table import ColumnTable

    if value.is_array and value.is_lazy:
        return Value(
            np.asarray(value.data.compute()), value.kind, value.axes, value.spacing, value.units
        )
    if isinstance(value.data, ColumnTable):
        return replace(value, data=value.data.to_pandas())
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
    """Run one step in memory (numpy in, numpy/DataFrame out).

    Settings the step leaves out take :meth:`~napari_fbias.ops.registry.OpSpec.defaults`
    (for a setting that became automatic, the number it had before). What the
    operation chose for its automatic settings comes back as the value's ``chosen``.
    """
    with collect_chosen() as chosen:
        out = _apply_step(spec, step, args)
    return replace(out, chosen=chosen.summary()) if chosen else out


def _apply_step(spec: Any, step: Step, args: list[Value | None]) -> Value:
    primary = primary_input(args)
    params = {**spec.defaults(), **step.params}
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
