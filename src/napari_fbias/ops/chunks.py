"""Chunk-wise strategies of the segmentation operations, for images larger than memory.

An operation declares its strategy beside itself, ``register_op(...,
chunked=threshold_chunks)``; the pipeline's chunk-wise runner
(:mod:`napari_fbias.pipeline.chunked`) calls it when the step does not fit
the memory budget. A strategy is::

    strategy(call, data, n_loop, params) -> dask.array.Array

``data`` is the operation's array input as a dask array whose first
``n_loop`` axes (``t``, ``c``) have chunks of 1; ``params`` its complete
settings (defaults filled in); ``call(block, **settings)`` runs the
operation itself on one spatial block (with the runner's error handling).
It returns the result lazily, with ``data``'s axes. It raises
``ValueError`` for data or settings that cannot be used, and
:class:`NotChunkable` for settings that need the whole image in memory.

The strategies here label each chunk with the operation itself, then merge
objects that cross chunk borders (:func:`merge_labels`);
``segment.remove_small_objects`` counts object sizes over the whole image.
Thresholds come from a histogram of the whole image (per time point /
channel), built chunk by chunk exactly as scikit-image builds it, so the
threshold is the same number. Labels are made unique across chunks and
renumbered in raster order of each object's first pixel (per time point /
channel), the order the in-memory operations use: the chunk-wise result is
identical to the in-memory one, pixel for pixel. Merging reads the data
twice (once to find the objects, once to write them), threshold strategies
twice more (range, then histogram).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # dask is imported when a strategy runs: importing the ops stays light
    import dask.array as da

__all__ = [
    "ChunkStrategy",
    "NotChunkable",
    "block_pixels_budget",
    "budget_block_pixels",
    "components_chunks",
    "merge_labels",
    "remove_small_chunks",
    "table_fits",
    "threshold_chunks",
]

#: ``strategy(call, data, n_loop, params) -> dask array`` (see the module docstring).
ChunkStrategy = Callable[[Callable[..., Any], "da.Array", int, Mapping[str, Any]], "da.Array"]


class NotChunkable(Exception):
    """These settings of the operation need the whole image in memory."""


#: The block size (pixels) of the step running chunk-wise for memory, None otherwise.
_BLOCK_PIXELS: ContextVar[int | None] = ContextVar("block_pixels", default=None)
#: The memory budget (bytes) of the step running chunk-wise for memory, None otherwise.
_MEMORY: ContextVar[int | None] = ContextVar("memory_budget", default=None)
#: A table a chunk-wise step makes stays in memory up to 1/TABLE_SHARE of the budget.
TABLE_SHARE = 4


@contextmanager
def block_pixels_budget(pixels: int | None, memory: int | None = None) -> Iterator[None]:
    """Make ``pixels`` the block budget :func:`budget_block_pixels` tells, inside the block.

    ``memory`` is the step's memory budget in bytes (:func:`table_fits`).
    """
    token = _BLOCK_PIXELS.set(None if pixels is None else int(pixels))
    mem = _MEMORY.set(None if memory is None else int(memory))
    try:
        yield
    finally:
        _MEMORY.reset(mem)
        _BLOCK_PIXELS.reset(token)


def table_fits(nbytes: int) -> bool:
    """Tell whether a table of ``nbytes`` a chunk-wise step made may be held in memory.

    Without a memory budget, any may; within one, up to 1/:data:`TABLE_SHARE`
    of it (a larger one stays on disk, :mod:`napari_fbias.io.column_table`).
    """
    memory = _MEMORY.get()
    return memory is None or nbytes <= memory // TABLE_SHARE


def budget_block_pixels() -> int | None:
    """Return the pixels a block (halo included) may hold, or None without a memory budget.

    Set by the chunk-wise runner (``pipeline.chunked.apply_step_chunked``)
    while a step runs chunk-wise for memory: the ``pipeline.memory.block_pixels``
    its blocks were sized with. A chunk-wise strategy that widens its blocks by
    a halo keeps them within it.
    """
    return _BLOCK_PIXELS.get()


# --- labels across chunks ----------------------------------------------------------------

#: The first pixel of an id with no pixel (larger than any pixel index).
_NO_PIXEL = np.iinfo(np.int64).max


def _block_summary(block: np.ndarray, n_loop: int) -> dict[str, Any]:
    """Per-block facts for merging: object count, sizes, first pixels, border planes."""
    b = block.reshape(block.shape[n_loop:])
    n = int(b.max()) if b.size else 0
    flat = b.ravel()
    counts = np.bincount(flat, minlength=n + 1).astype(np.int64)
    first = np.full(n + 1, _NO_PIXEL, dtype=np.int64)
    nz = np.flatnonzero(flat)
    if nz.size:
        np.minimum.at(first, flat[nz], nz)
    faces = []
    for k in range(b.ndim):
        faces.append((np.take(b, 0, axis=k).copy(), np.take(b, -1, axis=k).copy()))
    return {"n": n, "counts": counts, "first": first, "shape": b.shape, "faces": faces}


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

    from napari_fbias.ops.chunk_stats import block_tasks, iter_batches
    from napari_fbias.ops.label_faces import BorderPairs

    blocks = block_tasks(local)
    grid = blocks.shape
    locs = list(np.ndindex(*grid))
    spatial_shape = local.shape[n_loop:]
    starts = [np.cumsum((0, *c[:-1])) for c in local.chunks]
    frame_index = {f: i for i, f in enumerate(np.ndindex(*grid[:n_loop]))}
    borders = BorderPairs(grid, n_loop, diagonal)
    # ids are made unique in the order the blocks come (the final numbering is by
    # first pixel, so it does not depend on that order); each block's facts are
    # folded as it comes and its border planes kept only until they are paired
    block_offsets = np.zeros(grid, dtype=np.int64)
    frame_of: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    area: list[np.ndarray] = [np.zeros(1, dtype=np.int64)]
    first_px: list[np.ndarray] = [np.full(1, _NO_PIXEL, dtype=np.int64)]
    total = 0
    calls = [(_block_summary, blocks[loc], n_loop) for loc in locs]
    for j, s in iter_batches(calls, grid):
        loc = locs[j]
        block_offsets[loc] = total
        borders.add(loc, total, s["faces"])
        if s["n"] == 0:
            continue
        total += s["n"]
        frame_of.append(np.full(s["n"], frame_index[loc[:n_loop]], dtype=np.int64))
        area.append(s["counts"][1:])
        local_first = s["first"][1:]
        present = local_first != _NO_PIXEL
        coords = np.unravel_index(local_first[present], s["shape"])
        origin = [starts[n_loop + k][loc[n_loop + k]] for k in range(len(spatial_shape))]
        glob = tuple(c + o for c, o in zip(coords, origin, strict=True))
        firsts = np.full(s["n"], _NO_PIXEL, dtype=np.int64)
        firsts[present] = np.ravel_multi_index(glob, spatial_shape)
        first_px.append(firsts)
    del calls
    n_ids = total + 1
    frame_of_a = np.concatenate(frame_of)
    area_a = np.concatenate(area)
    first_a = np.concatenate(first_px)
    del frame_of, area, first_px
    e = borders.edges()
    if e.size:
        graph = coo_matrix((np.ones(len(e), dtype=np.int8), (e[:, 0], e[:, 1])), (n_ids, n_ids))
        _, comp = connected_components(graph, directed=False)
    else:
        comp = np.arange(n_ids)
    del e
    comp_area = np.bincount(comp, weights=area_a, minlength=comp.max() + 1).astype(np.int64)
    comp_first = np.full(comp.max() + 1, _NO_PIXEL, dtype=np.int64)
    np.minimum.at(comp_first, comp[1:], first_a[1:])
    comp_frame = np.zeros(comp.max() + 1, dtype=np.int64)
    comp_frame[comp[1:]] = frame_of_a[1:]
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
    return local.map_blocks(
        _apply_lut,
        lut=lut,
        block_offsets=block_offsets,
        dtype=np.int32,
        meta=np.empty((0,) * local.ndim, dtype=np.int32),
    )


def _apply_lut(
    block: np.ndarray, lut: np.ndarray, block_offsets: np.ndarray, block_info: Any = None
) -> np.ndarray:
    loc = tuple(block_info[0]["chunk-location"])
    offset = block_offsets[loc]
    ids = block.astype(np.int64) + offset
    out = lut[ids]
    out[block == 0] = 0
    return out


# --- strategies of the built-in segmentation ops ---------------------------------------


def _frame_reduce(x: da.Array, n_loop: int) -> tuple[np.ndarray, np.ndarray]:
    from napari_fbias.ops.chunk_stats import frame_range

    return frame_range(x, n_loop)


def _frame_thresholds(x: da.Array, n_loop: int, method: str) -> np.ndarray:
    """Threshold of each frame (NaN for a flat frame), as ``skimage.filters`` computes it."""
    from napari_fbias.ops.chunk_stats import frame_thresholds

    return frame_thresholds(x, n_loop, method)


def _labelled(call: Callable[..., Any], n_loop: int, settings: Mapping[str, Any]) -> Any:
    """Return a dask block function: the operation on one spatial block, as int32 labels."""

    def label_block(block: np.ndarray) -> np.ndarray:
        out = call(block.reshape(block.shape[n_loop:]), **settings)
        return np.asarray(out, dtype=np.int32).reshape(block.shape)

    return label_block


def threshold_chunks(
    call: Callable[..., Any], data: da.Array, n_loop: int, params: Mapping[str, Any]
) -> da.Array:
    """``segment.threshold`` chunk-wise: every method, on the whole image (reduction pass)."""
    from napari_fbias.ops.chunk_stats import METHODS

    method = params["method"]
    if method == "manual":
        thresholds = np.full(tuple(data.shape[:n_loop]), float(params["value"]))
    elif method in METHODS:
        thresholds = _frame_thresholds(data, n_loop, method)
    else:
        raise ValueError(f"unknown threshold method {method!r}")

    def label_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        t = thresholds[tuple(block_info[0]["chunk-location"][:n_loop])]
        if np.isnan(t):
            return np.zeros(block.shape, dtype=np.int32)
        settings = {"method": "manual", "value": float(t), "min_size": 0}
        return _labelled(call, n_loop, settings)(block)

    local = data.map_blocks(
        label_block, dtype=np.int32, meta=np.empty((0,) * data.ndim, dtype=np.int32)
    )
    return merge_labels(local, n_loop, diagonal=False, min_size=int(params["min_size"]))


def components_chunks(
    call: Callable[..., Any], data: da.Array, n_loop: int, params: Mapping[str, Any]
) -> da.Array:
    """``segment.connected_components`` chunk-wise: label each chunk, merge across borders."""
    diagonal = bool(params["diagonal"])
    label_block = _labelled(call, n_loop, {"diagonal": diagonal, "min_size": 0})
    local = data.map_blocks(
        label_block, dtype=np.int32, meta=np.empty((0,) * data.ndim, dtype=np.int32)
    )
    return merge_labels(local, n_loop, diagonal=diagonal, min_size=int(params["min_size"]))


def _block_counts(block: np.ndarray) -> np.ndarray:
    return np.bincount(block.ravel().astype(np.int64))


def remove_small_chunks(
    call: Callable[..., Any], data: da.Array, n_loop: int, params: Mapping[str, Any]
) -> da.Array:
    """``segment.remove_small_objects`` chunk-wise: object sizes counted over the whole image."""
    from napari_fbias.ops.chunk_stats import block_tasks, compute_in_batches

    min_size, max_size = params["min_size"], params["max_size"]
    if min_size is not None and max_size is not None and max_size < min_size:
        raise ValueError(f"max_size ({max_size}) is below min_size ({min_size})")
    lo, _ = _frame_reduce(data, n_loop)
    if (lo < 0).any():
        raise ValueError("labels contain negative object ids")
    blocks = block_tasks(data)
    locs = list(np.ndindex(*blocks.shape))
    counts = compute_in_batches([(_block_counts, blocks[loc]) for loc in locs], blocks.shape)
    per_frame: dict[tuple[int, ...], np.ndarray] = {}
    for loc, c in zip(locs, counts, strict=True):
        f = loc[:n_loop]
        prev = per_frame.get(f)
        if prev is None:
            per_frame[f] = c
        else:
            n = max(prev.size, c.size)
            per_frame[f] = np.pad(prev, (0, n - prev.size)) + np.pad(c, (0, n - c.size))
    luts: dict[tuple[int, ...], np.ndarray] = {}
    for f, c in per_frame.items():
        keep = c >= max(_min_size(min_size, c), 1)
        if max_size is not None:
            keep &= c <= max_size
        keep[0] = False
        lut = np.zeros(c.size, dtype=np.int32)
        lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
        luts[f] = lut

    def relabel_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        return luts[tuple(block_info[0]["chunk-location"][:n_loop])][block]

    return data.map_blocks(
        relabel_block, dtype=np.int32, meta=np.empty((0,) * data.ndim, dtype=np.int32)
    )


def _min_size(min_size: int | None, counts: np.ndarray) -> int:
    """``min_size`` as given, or automatic (None): from the frame's object sizes, reported."""
    if min_size is not None:
        return int(min_size)
    from napari_fbias.ops.auto_scale import min_size_from_counts
    from napari_fbias.ops.chosen import report_chosen

    chosen = min_size_from_counts(counts)
    report_chosen("min_size", chosen)
    return chosen
