"""Chunk-wise execution of steps with dask, for images larger than memory.

Three ways a step can run chunk-wise, tried in this order:

1. it fits the memory budget (the arrays still held plus the step's
   estimated peak, see :mod:`.memory`, ``<= memory_limit``): its inputs are
   computed and the step runs in memory as usual;
2. a *strategy* registered here for the op (:func:`chunked_strategy`):
   ``segment.threshold`` (otsu, yen, manual) and
   ``segment.connected_components`` label each chunk, then merge objects that
   cross chunk borders; ``segment.remove_small_objects`` counts object sizes
   over the whole image. Thresholds come from a histogram of the whole image
   (per time point / channel), built chunk by chunk exactly as scikit-image
   builds it, so the threshold is the same number;
3. a spatial op declaring ``depth``: ``dask.array.map_overlap`` with that halo
   and no padding at the image border (the op pads the border itself, as it
   does in memory).

Labels are made unique across chunks and renumbered in raster order of each
object's first pixel (per time point / channel), which is the order the
in-memory ops use: the chunk-wise result is identical to the in-memory one,
pixel for pixel. Merging reads the data twice (once to find the objects, once
to write them), threshold strategies twice more (range, then histogram).
Anything else raises :class:`ChunkingError` naming the step
(:class:`MemoryLimitError` when it is the memory budget that rules out the
in-memory run). A step that runs chunk-wise only for lack of memory gets
blocks small enough for the budget (:func:`.memory.block_pixels`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np

from napari_fbias.io.dask_view import dask_view
from napari_fbias.pipeline.errors import ChunkingError, MemoryLimitError, StepError
from napari_fbias.pipeline.memory import block_pixels, format_gb, step_bytes
from napari_fbias.pipeline.model import Step
from napari_fbias.pipeline.runner import (
    call_op,
    check_output,
    compute_step,
)
from napari_fbias.pipeline.values import Value

Strategy = Callable[[Any, Step, list[Value | None]], Value]
_STRATEGIES: dict[str, Strategy] = {}


def chunked_strategy(op_name: str) -> Callable[[Strategy], Strategy]:
    """Register a chunk-wise implementation of operation ``op_name`` (decorator)."""

    def decorator(func: Strategy) -> Strategy:
        _STRATEGIES[op_name] = func
        return func

    return decorator


def can_run_chunked(spec: Any) -> bool:
    """Tell whether operation ``spec`` can run chunk-wise (strategy or ``depth``)."""
    return spec.name in _STRATEGIES or (spec.spatial and spec.depth is not None)


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
    data = data.rechunk(target)
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
    target = {i: ("auto" if a in "zyx" else 1) for i, a in enumerate(value.axes)}
    chunks = da.core.normalize_chunks(
        tuple(target[i] for i in range(data.ndim)),
        data.shape,
        limit=max(int(pixels), 1) * itemsize,
        dtype=data.dtype,
    )
    data = data.rechunk(chunks) if isinstance(data, da.Array) else dask_view(data, chunks)
    return Value(data, value.kind, value.axes, value.spacing, value.units)


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
    if memory_limit > 0:  # blocks sized for the budget
        pixels = block_pixels(spec, args, memory_limit - live)
        args = [None if v is None else fit_blocks(v, pixels) for v in args]
    else:  # chunk-wise whatever the size: the data's own blocks
        args = [None if v is None else as_dask(v) for v in args]
    if spec.name in _STRATEGIES:
        return _STRATEGIES[spec.name](spec, step, args)
    return _map_overlap_step(spec, step, args)


def _aligned_arrays(step: Step, args: list[Value | None]) -> list[Value]:
    arrays = [v for v in args if v is not None and v.is_array]
    first = arrays[0]
    for v in arrays[1:]:
        if v.axes != first.axes or tuple(v.data.shape) != tuple(first.data.shape):
            raise ChunkingError(
                f"step {step.id!r} ({step.op}): chunk-wise runs need inputs with the same axes "
                f"and shape ({first.axes} {first.data.shape} vs {v.axes} {v.data.shape})"
            )
    return arrays


def _depth_of(spec: Any, params: Mapping[str, Any]) -> int:
    depth = spec.depth(params) if callable(spec.depth) else spec.depth
    return int(math.ceil(float(depth)))


def _map_overlap_step(spec: Any, step: Step, args: list[Value | None]) -> Value:
    from napari_fbias.pipeline.runner import context_kwargs, wrap_output

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
    rechunked = [a.data.rechunk(primary.data.chunks) for a in arrays]

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
    depths = {i: (depth if a in "zyx" else 0) for i, a in enumerate(primary.axes)}
    whole = {i: -1 for i, d in depths.items() if d and d >= primary.data.shape[i]}
    if whole:  # a halo as large as the image along an axis: keep that axis in one chunk
        rechunked = [r.rechunk(whole) for r in rechunked]
        depths.update(dict.fromkeys(whole, 0))
    out = da.map_overlap(
        run_block,
        *rechunked,
        depth=depths,
        boundary="none",
        dtype=probe.dtype,
        meta=np.empty((0,) * primary.data.ndim, dtype=probe.dtype),
    )
    return Value(out, spec.output, primary.axes, primary.spacing, primary.units)


# --- labels across chunks -----------------------------------------------------------------


def _block_summary(block: np.ndarray, n_loop: int) -> dict[str, Any]:
    """Per-block facts for merging: object count, sizes, first pixels, border planes."""
    b = block.reshape(block.shape[n_loop:])
    n = int(b.max()) if b.size else 0
    flat = b.ravel()
    counts = np.bincount(flat, minlength=n + 1).astype(np.int64)
    first = np.full(n + 1, np.iinfo(np.int64).max, dtype=np.int64)
    nz = np.flatnonzero(flat)
    if nz.size:
        np.minimum.at(first, flat[nz], nz)
    faces = []
    for k in range(b.ndim):
        faces.append((np.take(b, 0, axis=k).copy(), np.take(b, -1, axis=k).copy()))
    return {"n": n, "counts": counts, "first": first, "shape": b.shape, "faces": faces}


def _face_pairs(lo: np.ndarray, hi: np.ndarray, diagonal: bool) -> np.ndarray:
    """Pairs of ids touching across a border (``lo`` the last plane before, ``hi`` after)."""
    pairs = []
    shifts = list(np.ndindex(*(3,) * lo.ndim)) if diagonal else [(1,) * lo.ndim]
    for shift in shifts:
        src = []
        dst = []
        for s, n in zip(shift, lo.shape, strict=True):
            d = s - 1
            src.append(slice(max(0, d), n + min(0, d)))
            dst.append(slice(max(0, -d), n + min(0, -d)))
        a = lo[tuple(src)]
        b = hi[tuple(dst)]
        both = (a > 0) & (b > 0)
        if both.any():
            pairs.append(np.stack([a[both], b[both]], axis=1))
    if not pairs:
        return np.empty((0, 2), dtype=np.int64)
    return np.unique(np.concatenate(pairs), axis=0)


def merge_labels(
    local: da.Array,
    n_loop: int,
    *,
    diagonal: bool = False,
    min_size: int = 0,
    max_size: int | None = None,
) -> da.Array:
    """Make per-chunk labels one consistent labelling of the whole image.

    Parameters
    ----------
    local : dask.array.Array
        Labels computed chunk by chunk (each chunk numbered 1..n on its own);
        the first ``n_loop`` axes (t, c) have chunks of 1 and are labelled
        independently.
    n_loop : int
        Number of leading non-spatial axes.
    diagonal : bool
        Whether objects touching by a corner across a chunk border are one
        object (the connectivity the chunks were labelled with).
    min_size, max_size : int
        Drop merged objects with fewer (more) pixels than this.

    Returns
    -------
    dask.array.Array
        int32 labels: objects numbered 1..N per time point / channel in raster
        order of their first pixel (as ``scipy.ndimage.label`` numbers them).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    blocks = local.to_delayed()
    grid = blocks.shape
    locs = list(np.ndindex(*grid))
    summaries = dask.compute(*[dask.delayed(_block_summary)(blocks[loc], n_loop) for loc in locs])
    info = dict(zip(locs, summaries, strict=True))
    offsets: dict[tuple[int, ...], int] = {}
    total = 0
    for loc in locs:
        offsets[loc] = total
        total += info[loc]["n"]
    spatial_shape = local.shape[n_loop:]
    starts = [np.cumsum((0, *c[:-1])) for c in local.chunks]
    n_ids = total + 1
    frame_of = np.zeros(n_ids, dtype=np.int64)
    area = np.zeros(n_ids, dtype=np.int64)
    first_px = np.full(n_ids, np.iinfo(np.int64).max, dtype=np.int64)
    frames = list(np.ndindex(*grid[:n_loop]))
    frame_index = {f: i for i, f in enumerate(frames)}
    for loc in locs:
        s = info[loc]
        if s["n"] == 0:
            continue
        ids = np.arange(1, s["n"] + 1) + offsets[loc]
        frame_of[ids] = frame_index[loc[:n_loop]]
        area[ids] = s["counts"][1:]
        local_first = s["first"][1:]
        present = local_first != np.iinfo(np.int64).max
        coords = np.unravel_index(local_first[present], s["shape"])
        origin = [starts[n_loop + k][loc[n_loop + k]] for k in range(len(spatial_shape))]
        glob = tuple(c + o for c, o in zip(coords, origin, strict=True))
        first_px[ids[present]] = np.ravel_multi_index(glob, spatial_shape)
    edges = []
    for loc in locs:
        for k in range(len(spatial_shape)):
            nxt = list(loc)
            nxt[n_loop + k] += 1
            nxt_t = tuple(nxt)
            if nxt_t not in info:
                continue
            lo = _global_ids(info[loc]["faces"][k][1], offsets[loc])
            hi = _global_ids(info[nxt_t]["faces"][k][0], offsets[nxt_t])
            if diagonal:
                lo, hi = _face_plane(info, offsets, loc, nxt_t, k, n_loop, grid)
            pairs = _face_pairs(lo, hi, diagonal)
            if pairs.size:
                edges.append(pairs)
    if edges:
        e = np.concatenate(edges)
        graph = coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), (n_ids, n_ids))
        _, comp = connected_components(graph, directed=False)
    else:
        comp = np.arange(n_ids)
    comp_area = np.bincount(comp, weights=area, minlength=comp.max() + 1).astype(np.int64)
    comp_first = np.full(comp.max() + 1, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(comp_first, comp[1:], first_px[1:])
    comp_frame = np.zeros(comp.max() + 1, dtype=np.int64)
    comp_frame[comp[1:]] = frame_of[1:]
    keep = comp_area >= max(min_size, 1)
    if max_size is not None:
        keep &= comp_area <= max_size
    keep[comp[0]] = False
    new_id = np.zeros(comp.max() + 1, dtype=np.int32)
    kept = np.flatnonzero(keep)
    order = np.lexsort((comp_first[kept], comp_frame[kept]))
    kept = kept[order]
    frames_k = comp_frame[kept]
    for f in np.unique(frames_k):
        sel = kept[frames_k == f]
        new_id[sel] = np.arange(1, sel.size + 1, dtype=np.int32)
    lut = new_id[comp]
    lut[0] = 0
    block_offsets = np.zeros(grid, dtype=np.int64)
    for loc in locs:
        block_offsets[loc] = offsets[loc]
    return local.map_blocks(
        _apply_lut,
        lut=lut,
        block_offsets=block_offsets,
        dtype=np.int32,
        meta=np.empty((0,) * local.ndim, dtype=np.int32),
    )


def _global_ids(face: np.ndarray, offset: int) -> np.ndarray:
    face = face.astype(np.int64)
    return np.where(face > 0, face + offset, 0)


def _face_plane(
    info: Mapping[tuple[int, ...], Any],
    offsets: Mapping[tuple[int, ...], int],
    loc: tuple[int, ...],
    nxt: tuple[int, ...],
    k: int,
    n_loop: int,
    grid: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Return the two planes around one border, extended by a pixel into neighbouring blocks.

    With diagonal connectivity an object may touch one in a *diagonal* block
    across a corner; extending the faces of this block pair by the adjacent
    pixels of the blocks beside it catches those pairs.
    """
    nd = len(grid) - n_loop
    lo_core = _global_ids(info[loc]["faces"][k][1], offsets[loc])
    hi_core = _global_ids(info[nxt]["faces"][k][0], offsets[nxt])
    # pad each plane by one pixel along every other spatial axis, taken from neighbours
    lo = np.pad(lo_core, 1)
    hi = np.pad(hi_core, 1)
    others = [j for j in range(nd) if j != k]
    for side in np.ndindex(*(3,) * len(others)):
        if all(s == 1 for s in side):
            continue
        for plane, src_loc, face_side in ((lo, loc, 1), (hi, nxt, 0)):
            nb = list(src_loc)
            ok = True
            for j, s in zip(others, side, strict=True):
                nb[n_loop + j] += s - 1
                if not 0 <= nb[n_loop + j] < grid[n_loop + j]:
                    ok = False
            nb_t = tuple(nb)
            if not ok or nb_t not in info:
                continue
            face = _global_ids(info[nb_t]["faces"][k][face_side], offsets[nb_t])
            src = []
            dst = []
            for axis_pos in range(len(others)):
                s = side[axis_pos]
                n_face = face.shape[axis_pos]
                n_core = plane.shape[axis_pos] - 2
                if s == 0:  # the block before: its last row goes into pad position 0
                    src.append(slice(n_face - 1, n_face))
                    dst.append(slice(0, 1))
                elif s == 2:  # the block after: its first row goes into the last pad position
                    src.append(slice(0, 1))
                    dst.append(slice(n_core + 1, n_core + 2))
                else:
                    src.append(slice(0, n_face))
                    dst.append(slice(1, n_core + 1))
            plane[tuple(dst)] = face[tuple(src)]
    return lo, hi


def _apply_lut(
    block: np.ndarray, lut: np.ndarray, block_offsets: np.ndarray, block_info: Any = None
) -> np.ndarray:
    loc = tuple(block_info[0]["chunk-location"])
    offset = block_offsets[loc]
    ids = block.astype(np.int64) + offset
    out = lut[ids]
    out[block == 0] = 0
    return out


# --- strategies for the built-in segmentation ops ---------------------------------------------


def _frame_reduce(x: da.Array, n_loop: int) -> tuple[np.ndarray, np.ndarray]:
    axes = tuple(range(n_loop, x.ndim))
    lo, hi = dask.compute(x.min(axis=axes), x.max(axis=axes))
    return np.asarray(lo), np.asarray(hi)


def _block_histogram(block: np.ndarray, lo: Any, hi: Any) -> np.ndarray:
    if np.issubdtype(block.dtype, np.integer):
        lo_i, hi_i = int(lo), int(hi)
        shifted = block.ravel().astype(np.int64) - lo_i
        return np.bincount(shifted, minlength=hi_i - lo_i + 1)
    return np.histogram(block, bins=256, range=(lo, hi))[0]


def _frame_histograms(
    x: da.Array, n_loop: int, lo: np.ndarray, hi: np.ndarray, flat: np.ndarray
) -> dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]]:
    """Histogram of each frame, exactly as ``skimage.exposure.histogram`` makes it."""
    blocks = x.to_delayed()
    tasks = []
    keys = []
    for loc in np.ndindex(*blocks.shape):
        frame = loc[:n_loop]
        if flat[frame]:
            continue
        tasks.append(dask.delayed(_block_histogram)(blocks[loc], lo[frame], hi[frame]))
        keys.append(frame)
    hists: dict[tuple[int, ...], np.ndarray] = {}
    for frame, h in zip(keys, dask.compute(*tasks), strict=True):
        hists[frame] = h if frame not in hists else hists[frame] + h
    out = {}
    for frame, counts in hists.items():
        if np.issubdtype(x.dtype, np.integer):
            centers = np.arange(int(lo[frame]), int(hi[frame]) + 1)
        else:
            edges = np.histogram_bin_edges(
                np.empty(0, dtype=x.dtype), bins=256, range=(lo[frame], hi[frame])
            )
            centers = (edges[:-1] + edges[1:]) / 2.0
        out[frame] = (counts, centers)
    return out


def _check_finite(step: Step, lo: np.ndarray, hi: np.ndarray) -> None:
    if np.issubdtype(lo.dtype, np.floating) and (np.isnan(lo).any() or np.isnan(hi).any()):
        raise StepError(
            step.id,
            step.op,
            "the image contains NaN (not-a-number) pixel values; "
            "replace or crop them before this step",
        )


@chunked_strategy("segment.threshold")
def _threshold_chunked(spec: Any, step: Step, args: list[Value | None]) -> Value:
    (image,) = [v for v in args if v is not None]
    params = {**spec.defaults(), **dict(step.params)}
    method = params["method"]
    x = image.data
    n_loop = _n_loop(image)
    loop_shape = tuple(x.shape[:n_loop])
    if method == "manual":
        thresholds = np.full(loop_shape, float(params["value"]))
    elif method in ("otsu", "yen"):
        from skimage import filters

        func = filters.threshold_otsu if method == "otsu" else filters.threshold_yen
        lo, hi = _frame_reduce(x, n_loop)
        _check_finite(step, lo, hi)
        flat = lo == hi
        hists = _frame_histograms(x, n_loop, lo, hi, flat)
        thresholds = np.full(loop_shape, np.nan)
        for frame in np.ndindex(*loop_shape):
            if not flat[frame]:
                thresholds[frame] = float(func(hist=hists[frame]))
    else:
        raise ChunkingError(
            f"step {step.id!r} ({step.op}): method {method!r} needs the whole image in memory; "
            "use otsu, yen or manual for images larger than memory"
        )

    def label_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        frame = tuple(block_info[0]["chunk-location"][:n_loop])
        t = thresholds[frame]
        if np.isnan(t):
            return np.zeros(block.shape, dtype=np.int32)
        out = call_op(
            spec,
            step,
            [block.reshape(block.shape[n_loop:])],
            {"method": "manual", "value": float(t), "min_size": 0},
        )
        return np.asarray(out, dtype=np.int32).reshape(block.shape)

    local = x.map_blocks(label_block, dtype=np.int32, meta=np.empty((0,) * x.ndim, dtype=np.int32))
    merged = merge_labels(local, n_loop, diagonal=False, min_size=int(params["min_size"]))
    return Value(merged, "labels", image.axes, image.spacing, image.units)


@chunked_strategy("segment.connected_components")
def _components_chunked(spec: Any, step: Step, args: list[Value | None]) -> Value:
    (image,) = [v for v in args if v is not None]
    params = {**spec.defaults(), **dict(step.params)}
    n_loop = _n_loop(image)
    diagonal = bool(params["diagonal"])

    def label_block(block: np.ndarray) -> np.ndarray:
        out = call_op(
            spec, step, [block.reshape(block.shape[n_loop:])], {"diagonal": diagonal, "min_size": 0}
        )
        return np.asarray(out, dtype=np.int32).reshape(block.shape)

    local = image.data.map_blocks(
        label_block, dtype=np.int32, meta=np.empty((0,) * image.data.ndim, dtype=np.int32)
    )
    merged = merge_labels(local, n_loop, diagonal=diagonal, min_size=int(params["min_size"]))
    return Value(merged, "labels", image.axes, image.spacing, image.units)


def _block_counts(block: np.ndarray) -> np.ndarray:
    return np.bincount(block.ravel().astype(np.int64))


@chunked_strategy("segment.remove_small_objects")
def _remove_small_chunked(spec: Any, step: Step, args: list[Value | None]) -> Value:
    (labels,) = [v for v in args if v is not None]
    params = {**spec.defaults(), **dict(step.params)}
    min_size, max_size = int(params["min_size"]), params["max_size"]
    if max_size is not None and max_size < min_size:
        raise StepError(step.id, step.op, f"max_size ({max_size}) is below min_size ({min_size})")
    x = labels.data
    n_loop = _n_loop(labels)
    lo, _ = _frame_reduce(x, n_loop)
    if (lo < 0).any():
        raise StepError(step.id, step.op, "labels contain negative object ids")
    blocks = x.to_delayed()
    locs = list(np.ndindex(*blocks.shape))
    counts = dask.compute(*[dask.delayed(_block_counts)(blocks[loc]) for loc in locs])
    luts: dict[tuple[int, ...], np.ndarray] = {}
    per_frame: dict[tuple[int, ...], np.ndarray] = {}
    for loc, c in zip(locs, counts, strict=True):
        f = loc[:n_loop]
        prev = per_frame.get(f)
        if prev is None:
            per_frame[f] = c
        else:
            n = max(prev.size, c.size)
            per_frame[f] = np.pad(prev, (0, n - prev.size)) + np.pad(c, (0, n - c.size))
    for f, c in per_frame.items():
        keep = c >= max(min_size, 1)
        if max_size is not None:
            keep &= c <= max_size
        keep[0] = False
        lut = np.zeros(c.size, dtype=np.int32)
        lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        luts[f] = lut

    def relabel_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        f = tuple(block_info[0]["chunk-location"][:n_loop])
        return luts[f][block]

    out = x.map_blocks(relabel_block, dtype=np.int32, meta=np.empty((0,) * x.ndim, dtype=np.int32))
    return Value(out, "labels", labels.axes, labels.spacing, labels.units)
