"""Chunk-wise execution of steps with dask, for images larger than memory.

Three ways a step can run, tried in this order:

1. it fits the memory budget (the arrays still held plus the step's
   estimated peak, see :mod:`.memory`, ``<= memory_limit``): its inputs are
   computed and the step runs in memory through the single-step path
   (:func:`.apply.compute_step`);
2. its operation declares a chunk-wise *strategy* beside itself
   (``register_op(..., chunked=...)``; the built-in ones, for
   ``segment.threshold``, ``segment.connected_components`` and
   ``segment.remove_small_objects``, are in :mod:`napari_fbias.ops.chunks`):
   it gets the input as dask data, one plane per ``t``/``c`` index, and
   returns the labels lazily, identical to the in-memory result;
3. a spatial op declaring ``depth``: the op on each block with that halo, as
   ``dask.array.map_overlap`` runs it, with no padding at the image border
   (the op pads the border itself, as it does in memory); the blocks with
   their halo come from :func:`~napari_fbias.ops.chunk_stitch.with_halo`
   (read region by region where the input can be).

Anything else raises :class:`ChunkingError` naming the step
(:class:`MemoryLimitError` when it is the memory budget that rules out the
in-memory run). A step that runs chunk-wise only for lack of memory gets
blocks small enough for the budget (:func:`.memory.block_pixels`); a strategy
that adds a halo to its blocks reads that size while it runs
(:func:`napari_fbias.ops.chunks.budget_block_pixels`) and keeps each block with its halo
within it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import dask.array as da
import numpy as np

from napari_fbias.io.dask_view import dask_view
from napari_fbias.io.region_read import restride
from napari_fbias.ops.chosen import collect_chosen
from napari_fbias.ops.chunk_stitch import core_slice, with_halo
from napari_fbias.ops.chunks import block_pixels_budget
from napari_fbias.pipeline.apply import (
    call_op,
    check_output,
    compute_step,
    context_kwargs,
    wrap_output,
)
from napari_fbias.pipeline.errors import ChunkingError, MemoryLimitError, StepError
from napari_fbias.pipeline.freed_memory import return_freed_memory
from napari_fbias.pipeline.memory import block_pixels, format_gb, step_bytes
from napari_fbias.pipeline.parts import Step
from napari_fbias.pipeline.values import Value


def chunked_steps(record: Mapping[str, Any] | None) -> list[str]:
    """Return ``"step (op)"`` for each step of a run record that ran chunk-wise."""
    steps = (record or {}).get("steps", [])
    return [f"{s.get('id')} ({s.get('op')})" for s in steps if s.get("mode") == "chunked"]


def can_run_chunked(spec: Any) -> bool:
    """Tell whether operation ``spec`` can run chunk-wise (a strategy, or ``depth``)."""
    return spec.chunked is not None or (spec.spatial and spec.depth is not None)


# --- values -----------------------------------------------------------------------------


def as_dask(value: Value, chunks: Any = None) -> Value:
    """Return ``value`` as a dask array chunked one plane per ``t``/``c`` index.

    Parameters
    ----------
    value : Value
        An image or labels (tables are returned unchanged).
    chunks : int, dict or tuple, optional
        Chunk size along the spatial axes (int), per axis name (dict), or a
        full dask chunks argument. Default: the data's own chunks.
    """
    if not value.is_array:
        return value
    data = value.data
    if not isinstance(data, da.Array):
        data = dask_view(data, "auto" if chunks is None else -1)
    target: dict[int, Any] = {}
    if isinstance(chunks, int):
        target = {i: chunks for i, a in enumerate(value.axes) if a in "zyx"}
    elif isinstance(chunks, Mapping):
        target = {value.axes.index(a): n for a, n in chunks.items() if a in value.axes}
    elif chunks is not None:
        target = dict(enumerate(chunks))
    for i, a in enumerate(value.axes):
        if a not in "zyx":
            target[i] = 1
    data = restride(data, target)
    return Value(data, value.kind, value.axes, value.spacing, value.units)


def fit_blocks(value: Value, pixels: int) -> Value:
    """Return ``value`` as dask data whose blocks hold at most about ``pixels`` pixels.

    One plane per ``t``/``c`` index; blocks that are small enough already are
    kept as they are.
    """
    if not value.is_array:
        return value
    data = value.data
    itemsize = np.dtype(data.dtype).itemsize
    if (
        isinstance(data, da.Array)
        and math.prod(max(c, default=1) for c in data.chunks) <= pixels
        and all(
            max(c, default=1) == 1
            for c, a in zip(data.chunks, value.axes, strict=True)
            if a not in "zyx"
        )
    ):
        return value
    if isinstance(data, da.Array):
        chunks = _split_chunks(data.chunks, value.axes, pixels)
        return Value(restride(data, chunks), value.kind, value.axes, value.spacing, value.units)
    target = {i: ("auto" if a in "zyx" else 1) for i, a in enumerate(value.axes)}
    chunks = da.core.normalize_chunks(
        tuple(target[i] for i in range(data.ndim)),
        data.shape,
        limit=max(int(pixels), 1) * itemsize,
        dtype=data.dtype,
    )
    data = restride(data, chunks) if isinstance(data, da.Array) else dask_view(data, chunks)
    return Value(data, value.kind, value.axes, value.spacing, value.units)


#: Blocks are sized for at least 1/LEFT_FLOOR of the budget, whatever the arrays kept in
#: memory leave of it: smaller blocks would not keep the run within the budget anyway, and
#: multiply the blocks (a 128 x 512 x 512 volume held in memory left nothing of a 64 MiB
#: budget: its nuclei step cut 11 025 blocks of 15^3 voxels and ran for over an hour).
LEFT_FLOOR = 4


def _split_chunks(chunks: tuple[tuple[int, ...], ...], axes: str, pixels: int) -> tuple:
    """Split each chunk into equal parts (an integer number per axis) until it holds ``pixels``.

    Only splitting, never merging, keeps every new block inside one old one:
    a rechunk to unaligned sizes (1024 -> 915) makes dask hold the old blocks
    that straddle several new ones, which was most of the memory a chunk-wise
    run took (``docs/benchmarks.md``).
    """
    parts = [
        1 if a in "zyx" else max(max(c, default=1), 1) for c, a in zip(chunks, axes, strict=True)
    ]
    size = [max(c, default=1) for c in chunks]

    def piece(i: int) -> int:
        return -(-size[i] // parts[i])

    spatial = [i for i, a in enumerate(axes) if a in "zyx"]
    while spatial and math.prod(piece(i) for i in spatial) > max(int(pixels), 1):
        i = max(spatial, key=piece)
        if piece(i) <= 1:
            break
        parts[i] += 1
    out = []
    for i, c in enumerate(chunks):
        split = []
        for n in c:
            f = min(parts[i], n) if n else 1
            split.extend(n // f + (1 if j < n % f else 0) for j in range(f))
        out.append(tuple(split))
    return tuple(out)


def _n_loop(value: Value) -> int:
    return len(value.loop_axes)


def apply_step_chunked(
    spec: Any, step: Step, args: list[Value | None], memory_limit: int, *, live: int = 0
) -> Value:
    """Run one step within the memory budget; see the module docstring for the rules.

    Parameters
    ----------
    spec : OpSpec
        The step's operation.
    step : Step
        The step.
    args : list of Value or None
        Its inputs (numpy or dask), in the order of ``spec.inputs``.
    memory_limit : int
        The memory budget in bytes.
    live : int
        Bytes already held by arrays that stay in memory while the step runs.

    Raises
    ------
    MemoryLimitError
        The step does not fit in memory and its operation cannot run chunk-wise.
    """
    need = step_bytes(spec, args)
    if need == 0 or live + need <= memory_limit:
        return compute_step(spec, step, args)
    if not can_run_chunked(spec):
        size = max((v.data.nbytes for v in args if v is not None and v.is_array), default=0)
        raise MemoryLimitError(
            f"step {step.id!r} ({step.op}) cannot run chunk-wise, and in memory it would need "
            f"about {format_gb(live + need)} (its input is {format_gb(size)}; results kept "
            f"for later steps {format_gb(live)}), more than the memory budget "
            f"({format_gb(memory_limit)}). Raise the budget (fbias run --memory) if the "
            "machine has the memory, crop or downsample the image, select a channel/time "
            "point, or run on a machine with more memory."
        )
    return_freed_memory()  # else freed blocks stay in the threads' heaps (about 2x)
    pixels = None
    if memory_limit > 0:  # blocks sized for the budget
        pixels = block_pixels(spec, args, max(memory_limit - live, memory_limit // LEFT_FLOOR))
        args = [None if v is None else fit_blocks(v, pixels) for v in args]
    else:  # chunk-wise whatever the size: the data's own blocks
        args = [None if v is None else as_dask(v) for v in args]
    if spec.chunked is not None:
        # for strategies that add a halo to their blocks, or make tables
        with block_pixels_budget(pixels, memory_limit if memory_limit > 0 else None):
            return _strategy_step(spec, step, args)
    return _map_overlap_step(spec, step, args)


def _aligned_arrays(
    step: Step, args: list[Value | None], *, channel_axis_ok: bool = False
) -> list[Value]:
    """Return the array inputs after checking they have the first one's axes and shape.

    With ``channel_axis_ok`` (a strategy's ``channel_axis_ok`` attribute), a
    later input may also have a ``c`` axis that the first lacks.
    """
    arrays = [v for v in args if v is not None and v.is_array]
    first = arrays[0]
    for v in arrays[1:]:
        if v.axes == first.axes and tuple(v.data.shape) == tuple(first.data.shape):
            continue
        if channel_axis_ok and _extra_channel(first, v):
            continue
        raise ChunkingError(
            f"step {step.id!r} ({step.op}): chunk-wise runs need inputs with the same axes "
            f"and shape ({first.axes} {first.data.shape} vs {v.axes} {v.data.shape})"
        )
    return arrays


def _extra_channel(first: Value, v: Value) -> bool:
    """Tell whether ``v`` is ``first`` plus a ``c`` axis."""
    if "c" in first.axes or "c" not in v.axes or v.axes.replace("c", "") != first.axes:
        return False
    ci = v.axes.index("c")
    return tuple(v.data.shape[:ci] + v.data.shape[ci + 1 :]) == tuple(first.data.shape)


def _chunked_like(v: Value, first: Value) -> Any:
    """``v``'s data in ``first``'s chunks (one channel per chunk along an extra ``c`` axis)."""
    chunks = list(first.data.chunks)
    if v.axes != first.axes:
        ci = v.axes.index("c")
        chunks.insert(ci, (1,) * int(v.data.shape[ci]))
    return restride(v.data, tuple(chunks))


def _depth_of(spec: Any, params: Mapping[str, Any]) -> int:
    depth = spec.depth(params) if callable(spec.depth) else spec.depth
    return int(math.ceil(float(depth)))


def _strategy_step(spec: Any, step: Step, args: list[Value | None]) -> Value:
    """Run the chunk-wise strategy the operation declares.

    It gets the operation's one array input, or all of them in the first
    one's chunks when the strategy ``takes_several``; a strategy that may
    return a table (``measure.regionprops``) gives a value marked
    ``chunkwise``.
    """
    from napari_fbias.ops.chunks import NotChunkable

    channel_axis_ok = getattr(spec.chunked, "channel_axis_ok", False)
    arrays = _aligned_arrays(step, args, channel_axis_ok=channel_axis_ok)
    several = getattr(spec.chunked, "takes_several", False)
    if len(arrays) != 1 and not several:
        raise ChunkingError(
            f"step {step.id!r} ({step.op}): its chunk-wise strategy takes one image, "
            f"not {len(arrays)}"
        )
    value = arrays[0]
    spatial = value.spatial_axes
    if spec.spatial:
        context = context_kwargs(spec, spatial, value.spacing_of(spatial))
    else:  # the whole array's axes, as in memory (apply._apply_step)
        context = context_kwargs(spec, value.axes, value.spacing)

    def call(*blocks: np.ndarray, **settings: Any) -> Any:
        out = call_op(spec, step, list(blocks), settings)
        check_output(spec, step, out)
        return out

    params = {**spec.defaults(), **dict(step.params), **context}
    data = tuple(_chunked_like(a, value) for a in arrays) if several else value.data
    try:
        with collect_chosen() as chosen:  # a strategy resolves auto settings once, eagerly
            out = spec.chunked(call, data, _n_loop(value), params)
    except NotChunkable as exc:
        raise ChunkingError(f"step {step.id!r} ({step.op}): {exc}") from None
    except StepError:
        raise
    except ValueError as exc:
        raise StepError(step.id, step.op, str(exc)) from exc
    summary = chosen.summary() if chosen else None
    return Value(
        out, spec.output, value.axes, value.spacing, value.units, chosen=summary, chunkwise=True
    )


def _map_overlap_step(spec: Any, step: Step, args: list[Value | None]) -> Value:
    arrays = _aligned_arrays(step, args)
    primary = arrays[0]
    if spec.output not in ("image", "labels"):
        raise ChunkingError(
            f"step {step.id!r} ({step.op}) gives a {spec.output}; only image "
            "and labels steps run chunk-wise"
        )
    params = dict(step.params)
    n_loop = _n_loop(primary)
    spatial = primary.spatial_axes
    kwargs = {**params, **context_kwargs(spec, spatial, primary.spacing_of(spatial))}
    positions = [i for i, v in enumerate(args) if v is not None and v.is_array]
    rechunked = [restride(a.data, primary.data.chunks) for a in arrays]

    def run_block(*blocks: np.ndarray) -> np.ndarray:
        call_args: list[Any] = [None if v is None else v.data for v in args]
        for pos, block in zip(positions, blocks, strict=True):
            call_args[pos] = block.reshape(block.shape[n_loop:])
        out = call_op(spec, step, call_args, kwargs)
        check_output(spec, step, out)
        return np.asarray(out).reshape(blocks[0].shape)

    # one block, computed now, tells the output type (and catches shape-changing ops)
    first = tuple(slice(0, c[0]) for c in primary.data.chunks)
    probe_in = [np.asarray(r[first].compute()) for r in rechunked]
    probe_args: list[Any] = [None if v is None else v.data for v in args]
    for pos, block in zip(positions, probe_in, strict=True):
        probe_args[pos] = block.reshape(block.shape[n_loop:])
    probe = call_op(spec, step, probe_args, kwargs)
    check_output(spec, step, probe)
    wrap_output(spec, step, probe, primary, spatial)
    if tuple(probe.shape) != tuple(probe_in[0].shape[n_loop:]):
        raise ChunkingError(
            f"step {step.id!r} ({step.op}) changes the image size; it cannot run chunk-wise"
        )
    depth = _depth_of(spec, params)
    n_space = len(spatial)
    # as dask's map_overlap (no halo past the border, an axis no longer than its halo in one
    # chunk), read by regions where the inputs can be (a graph that does not grow with the image)
    cores, extended = with_halo(rechunked, primary.data.ndim - n_space, depth)
    core_chunks = cores[0].chunks

    def run_extended(*blocks: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = block_info[None]["chunk-location"]
        out = run_block(*blocks)
        crop = tuple(
            core_slice(core_chunks, i, loc, depth) if i >= out.ndim - n_space else slice(None)
            for i in range(out.ndim)
        )
        return out[crop]

    out = extended[0].map_blocks(
        run_extended,
        *extended[1:],
        chunks=core_chunks,
        dtype=probe.dtype,
        meta=np.empty((0,) * primary.data.ndim, dtype=probe.dtype),
    )
    return Value(out, spec.output, primary.axes, primary.spacing, primary.units)
