"""``cellpose.segment`` chunk-wise: overlapping blocks, objects stitched across block faces.

The approach of cellpose's own ``cellpose/contrib/distributed_segmentation.py``
(blocks with an overlap of two object diameters, each block's masks cropped to
its core, objects cut by a block face joined), on the stitching machinery of
:mod:`napari_fbias.ops.chunk_stitch`: each block is segmented *with a halo*
of :data:`CELLPOSE_HALO_DIAMETERS` object diameters (none past the image
border), every object is keyed by its first pixel in the extended block, each
block keeps the keys of its core pixels, and the keys are renumbered 1..N per
time point in raster order of the objects' first pixels
(:func:`~napari_fbias.ops.chunk_stitch.halo_keys`,
:func:`~napari_fbias.ops.chunk_stitch.renumber_keys`): ids are globally unique
and deterministic.

What is global, resolved once per time point before any block runs (so that
every block sees the network input the in-memory run sees):

* the normalisation: cellpose's percentile normalisation (1st-99th, as
  ``cellpose.transforms.normalize99`` computes it, subsampled the same way
  for very large frames) is computed on the whole frame, exactly and chunk by
  chunk (:func:`~napari_fbias.ops.chunk_stats.frame_percentiles`), applied to
  each block, and the blocks go to cellpose with ``normalize=False``
  (cellpose's distributed segmentation normalises each block on its own);
* ``diameter``: automatic (None) is measured on the whole frame (a sample of
  tiles over it above :data:`~napari_fbias.ops.chunk_stitch.AUTO_FULL_PIXELS` pixels)
  with the in-memory rule; 0 (cellpose's size model) is estimated once on the
  same view;
* NaN/infinite pixels are set to the frame's smallest finite value, as in memory;
* ``max_size_fraction`` is a fraction of the frame, rescaled to each block.

Exactness: cellpose cannot be exact near block faces (the network sees a
different context there and cellpose's own tiles fall elsewhere; an object
whose mask differs by a pixel in two blocks gets two keys, joined again by
:func:`stitched_keys`), so the result is *measured*, AP@0.5 of the
chunk-wise labels against the in-memory ones with the test model of
``tests/helpers/cellpose_model.py`` (``tests/test_chunked_cellpose.py``,
``bench/bench_cellpose_tiles.py``):

* 128^2 test image (10 objects), 64^2 chunks: 1.0;
* 512^2 synthetic image (``make_nuclei_2d(..., 360, seed=3)``, 290 objects),
  128^2 chunks: 0.953 (7 objects missed or added, most of them *not* cut by
  a face); a halo of 1, 4 or 6 diameters gives 0.930, 0.943, 0.956;
* one chunk per frame: the in-memory labels exactly (up to renumbering).

The loss is cellpose's own sensitivity to where the image starts, not the
stitching: the *in-memory* op on the same image shifted by 1 pixel agrees
with itself at AP@0.5 = 0.959 (8 px: 0.952), with this weakly trained test
model. Normalising each block on its own, as cellpose's distributed
segmentation does, gives 0.770.

Z-stacks: true 3D (``do_3d``) takes the halo along z too; planes and
stitched planes keep the whole z axis in each block. An image with a channel
axis cannot run chunk-wise (:class:`~napari_fbias.ops.chunks.NotChunkable`:
select the channel first): the chunk-wise runner keeps the loop axes of its
input, and the channels cellpose combines are picked from the whole image.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_fbias.ops import cellpose_op as cpo
from napari_fbias.ops.chunk_stitch import (
    Frame,
    block_regions,
    core_slice,
    frame_view,
    halo_keys,
    keys_scratch,
    relabel_keys,
    relabeled,
    with_halo,
)
from napari_fbias.ops.chunks import NotChunkable
from napari_fbias.ops.registry import register_chunked

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "CELLPOSE_HALO_DIAMETERS",
    "cellpose_chunks",
    "resolve_cellpose_globals",
    "stitched_keys",
]

#: Halo of ``cellpose.segment`` blocks, in object diameters (cellpose's distributed default).
CELLPOSE_HALO_DIAMETERS = 2.0
#: ``cellpose.transforms.normalize99`` subsamples arrays larger than this (``downsample``).
_NORM_FULL = 224**3
#: The percentiles of cellpose's default normalisation.
_PERCENTILES = (1.0, 99.0)


def _mode(params: Mapping[str, Any], nd: int, nz: int) -> str:
    if nd == 2 or nz == 1:
        return "2d"
    if params["do_3d"]:
        return "3d"
    return "stitch" if params["stitch_threshold"] > 0 else "planes"


# --- global settings, once per frame ------------------------------------------------------


def _filled(data: da.Array, n_loop: int) -> da.Array:
    """Return the image as float32, non-finite pixels set to their frame's smallest finite value."""
    import dask.array as da

    x = data.astype(np.float32)
    if data.dtype.kind != "f":
        return x
    finite = da.isfinite(x)
    spatial = tuple(range(n_loop, x.ndim))
    lo = da.where(finite, x, np.inf).min(axis=spatial, keepdims=True).compute()
    if not np.isfinite(lo).all():
        raise ValueError(
            "cellpose.segment: the image (or one of its time points) has no finite pixel "
            "value (all NaN or infinite)"
        )
    return da.where(finite, x, lo.astype(np.float32))


def _normalize99_bounds(x: da.Array, n_loop: int, per_plane: bool) -> dict[Frame, np.ndarray]:
    """Per frame, cellpose's (1st, 99th) percentiles: shape ``(2,)``, or ``(nz, 2)`` per plane.

    As ``normalize99(..., downsample=True)``: exact percentiles of the whole
    frame (or plane), or of its strided subsample when it has more than
    ``224**3`` pixels. NaN bounds mark a flat frame (cellpose leaves it as it is).
    """
    from napari_fbias.ops.chunk_stats import frame_percentiles, frame_range

    frames = list(np.ndindex(*x.shape[:n_loop]))
    if per_plane:  # a plane is a frame of its own: the z axis becomes a loop axis
        stacked = _normalize99_bounds(x.rechunk({n_loop: 1}), n_loop + 1, per_plane=False)
        nz = x.shape[n_loop]
        return {f: np.stack([stacked[(*f, z)] for z in range(nz)]) for f in frames}
    spatial = x.shape[n_loop:]
    lo, hi = frame_range(x, n_loop)
    out: dict[Frame, np.ndarray] = {}
    if math.prod(spatial) <= _NORM_FULL:
        pct = frame_percentiles(x, n_loop, _PERCENTILES)
    else:
        nskip = [max(1, n // 224) for n in spatial]
        if len(spatial) == 3:
            nskip[0] = max(1, spatial[0] // 50)
        slc = tuple(slice(0, n, s) for n, s in zip(spatial, nskip, strict=True))
        pct = {
            f: [float(v) for v in np.percentile(np.asarray(x[f + slc].compute()), _PERCENTILES)]
            for f in frames
        }
    for f in frames:
        bounds = np.asarray(pct[f], dtype=np.float32)
        flat = not float(hi[f]) > float(lo[f])
        out[f] = np.full(2, np.nan, np.float32) if flat else bounds
    return out


def _normalized(block: np.ndarray, bounds: np.ndarray, invert: bool) -> np.ndarray:
    """``normalize99`` with the frame's bounds (then ``1 - x`` when inverted), in float32."""
    x = np.array(block, dtype=np.float32)
    planes = [x] if bounds.ndim == 1 else list(x)
    rows = [bounds] if bounds.ndim == 1 else list(bounds)
    for p, (x01, x99) in zip(planes, rows, strict=True):
        if np.isnan(x01):  # flat: cellpose neither normalises nor inverts it
            continue
        if x99 - x01 > 1e-3:
            p -= x01
            p /= x99 - x01
        else:
            p[:] = 0
        if invert:
            p *= -1
            p += 1
    return x


def _estimated_diameter(view: np.ndarray, params: Mapping[str, Any], mode: str) -> float | None:
    """Cellpose's own size-model estimate (``diameter=0``) on one view of the frame."""
    from napari_fbias.ops.cellpose_models import load_model

    loaded = load_model(params["model"], gpu=bool(params["gpu"]))
    s = cpo._Settings(
        diameter=0.0,
        flow_threshold=float(params["flow_threshold"]),
        cellprob_threshold=float(params["cellprob_threshold"]),
        min_size=int(params["min_size"]),
        max_size_fraction=float(params["max_size_fraction"]),
        stitch_threshold=float(params["stitch_threshold"]),
        anisotropy=None,
        normalize=bool(params["normalize"]),
        invert=bool(params["invert"]),
        tile_overlap=float(params["tile_overlap"]),
        batch_size=int(params["batch_size"]),
        niter=int(params["niter"]),
    )
    d = cpo._estimate_diameter(loaded, view[..., np.newaxis], mode, s)
    return float(d) if d else None


def _model_diameter(params: Mapping[str, Any]) -> float:
    """Return the diameter the model is made for (what cellpose uses without one)."""
    from napari_fbias.ops.cellpose_models import load_model

    loaded = load_model(params["model"], gpu=bool(params["gpu"]))
    d = getattr(loaded.model, "diam_labels", None)
    return float(d) if d else 30.0


def resolve_cellpose_globals(
    x: da.Array, n_loop: int, params: Mapping[str, Any], mode: str
) -> dict[Frame, dict[str, Any]]:
    """Per frame, the settings decided on the whole frame: ``diameter``, ``d`` and ``bounds``.

    Parameters
    ----------
    x : dask.array.Array
        The image as float32, non-finite pixels filled (:func:`_filled`).
    n_loop : int
        Number of leading loop axes (t).
    params : mapping
        The operation's complete settings (``axes``, ``spacing`` spatial).
    mode : str
        ``"2d"``, ``"planes"``, ``"stitch"`` or ``"3d"``.

    Returns
    -------
    dict
        ``diameter`` to pass to each block (None: automatic resolved, 0 kept
        when cellpose has no size model), ``d`` the diameter in pixels that
        sizes the halo, ``bounds`` the normalisation bounds (None without
        normalisation).
    """
    from napari_fbias.ops.auto_scale import image_diameter
    from napari_fbias.ops.chosen import report_chosen

    axes = params.get("axes") or ("yx" if x.ndim - n_loop == 2 else "zyx")
    spacing = cpo._spatial_spacing(axes, params.get("spacing"))
    bounds = (
        _normalize99_bounds(x, n_loop, per_plane=mode == "planes") if params["normalize"] else None
    )
    out: dict[Frame, dict[str, Any]] = {}
    for frame in np.ndindex(*x.shape[:n_loop]):
        diameter = params["diameter"]
        if diameter is None:
            view = frame_view(x, frame, n_loop)
            diameter = round(image_diameter(view, spacing), 1)
            report_chosen("diameter", diameter)
        elif diameter == 0 and mode == "2d":
            view = frame_view(x, frame, n_loop)
            diameter = _estimated_diameter(view, params, mode) or 0.0
        d = float(diameter) if diameter else _model_diameter(params)
        out[frame] = {
            "diameter": float(diameter),
            "d": d,
            "bounds": None if bounds is None else bounds[frame],
        }
    return out


# --- the strategy ------------------------------------------------------------------------


def _spatial_context(params: Mapping[str, Any], nd: int) -> dict[str, Any]:
    """``params`` with ``axes``/``spacing`` of the spatial axes only (what one block has).

    Raises :class:`NotChunkable` when the axes name a channel axis.
    """
    out = dict(params)
    axes = str(out.get("axes") or "")
    if "c" in axes:
        raise NotChunkable(
            "cellpose on an image with a channel axis picks its channels from the whole "
            "image; select one channel first (or run in memory)"
        )
    spacing = out.get("spacing")
    if spacing is not None and len(spacing) > nd:
        spacing = tuple(spacing)[-nd:]
    out.update(axes="yx" if nd == 2 else "zyx", spacing=spacing)
    return out


def cellpose_chunks(
    call: Callable[..., Any], data: da.Array, n_loop: int, params: Mapping[str, Any]
) -> da.Array:
    """``cellpose.segment`` chunk-wise: blocks with a halo of two diameters, stitched by keys.

    Parameters
    ----------
    call : callable
        ``call(block, **settings)``: the operation on one spatial block.
    data : dask.array.Array
        The image; the first ``n_loop`` axes (t) have chunks of 1.
    n_loop : int
        Number of leading loop axes.
    params : mapping
        The operation's complete settings.

    Returns
    -------
    dask.array.Array
        int32 labels, objects 1..N per time point in raster order of their first pixel.

    Raises
    ------
    NotChunkable
        For two channels (``nuclear_channel``): select one channel, or run in memory.
    ValueError
        For settings the operation refuses, or an image without a finite pixel.

    Notes
    -----
    Measured AP@0.5 against the in-memory labels (test model): 1.0 on the
    128^2 test image in 64^2 chunks, 0.953 on a 512^2 synthetic image in
    128^2 chunks (the in-memory op against itself on the image shifted by
    one pixel: 0.959); see the module docstring.
    """
    nd = data.ndim - n_loop
    params = _spatial_context(params, nd)
    if params["nuclear_channel"] >= 0 or params["channel"] != 0:
        raise NotChunkable(
            "cellpose with a nuclear channel (or a channel other than 0) needs the channel "
            "axis, which a chunk-wise run does not keep; select one channel first"
        )
    if params["invert"] and not params["normalize"]:
        raise ValueError("cellpose.segment: invert=True needs normalize=True")
    nz = data.shape[n_loop] if nd == 3 else 1
    mode = _mode(params, nd, nz)
    if mode in ("planes", "stitch"):  # planes are segmented whole: z stays in one block
        data = data.rechunk({n_loop: -1})
    x = _filled(data, n_loop)
    per_frame = resolve_cellpose_globals(x, n_loop, params, mode)
    depth = max(int(math.ceil(CELLPOSE_HALO_DIAMETERS * p["d"])) for p in per_frame.values())
    frame_pixels = math.prod(data.shape[n_loop:])
    invert = bool(params["invert"])
    settings = {k: v for k, v in params.items() if k not in ("diameter", "max_size_fraction")}
    if params["normalize"]:
        settings.update(normalize=False, invert=False)

    def block_fn(frame: Frame, block: np.ndarray) -> np.ndarray:
        p = per_frame[frame]
        if p["bounds"] is not None:
            block = _normalized(block, p["bounds"], invert)
        fraction = float(params["max_size_fraction"]) * frame_pixels / block.size
        return call(block, **settings, diameter=p["diameter"], max_size_fraction=min(1.0, fraction))

    if all(len(c) == 1 for c in x.chunks[n_loop:]):
        depth = 0  # one block per frame: nothing to stitch
    return stitched_keys(x, n_loop, depth, block_fn)


# --- stitching: keys by first pixel, joined where two blocks disagree ----------------------


def _strips(
    block: np.ndarray,
    loc: tuple[int, ...],
    chunks: Any,
    depth: int,
    n_loop: int,
    scratch: Any = None,
    region: tuple[slice, ...] = (),
) -> dict[str, Any]:
    """One extended block of keys: its core's keys, and for every axis and side two strips.

    With ``scratch``, the core's keys are also written there at ``region``.

    ``core[k][s]``: the core's first (s=0) / last (s=1) ``depth`` planes along
    spatial axis ``k``; ``halo[k][s]``: the halo before / after the core (what
    this block sees of its neighbour's core). Both cropped to the core along
    the other axes, so that they line up with the neighbour's strips.
    """
    b = block.reshape(block.shape[n_loop:])
    nd = b.ndim
    sl = [core_slice(chunks, n_loop + k, loc, depth) for k in range(nd)]
    core = b[tuple(sl)]
    if scratch is not None:
        scratch[region] = core.reshape((1,) * n_loop + core.shape)
    strips: dict[str, Any] = {"keys": np.unique(core[core >= 0]), "core": [], "halo": []}
    for k in range(nd):
        other = list(sl)
        c_lo, c_hi, h_lo, h_hi = list(other), list(other), list(other), list(other)
        n = sl[k].stop - sl[k].start
        c_lo[k] = slice(sl[k].start, sl[k].start + min(depth, n))
        c_hi[k] = slice(sl[k].stop - min(depth, n), sl[k].stop)
        h_lo[k] = slice(0, sl[k].start)
        h_hi[k] = slice(sl[k].stop, b.shape[k])
        strips["core"].append((b[tuple(c_lo)], b[tuple(c_hi)]))
        strips["halo"].append((b[tuple(h_lo)], b[tuple(h_hi)]))
    return strips


def _agreeing_pairs(seen: np.ndarray, owned: np.ndarray, min_iou: float) -> np.ndarray:
    """Key pairs (seen by one block, owned by its neighbour) of one object: IoU >= ``min_iou``."""
    if seen.shape != owned.shape or not seen.size:
        return np.empty((0, 2), np.int64)
    a, b = seen.ravel(), owned.ravel()
    both = (a >= 0) & (b >= 0) & (a != b)
    if not both.any():
        return np.empty((0, 2), np.int64)
    pairs, n = np.unique(np.stack([a[both], b[both]], axis=1), axis=0, return_counts=True)
    ka, na = np.unique(a[a >= 0], return_counts=True)
    kb, nb = np.unique(b[b >= 0], return_counts=True)
    size_a = na[np.searchsorted(ka, pairs[:, 0])]
    size_b = nb[np.searchsorted(kb, pairs[:, 1])]
    iou = n / (size_a + size_b - n)
    return pairs[iou >= min_iou]


def stitched_keys(
    x: da.Array,
    n_loop: int,
    depth: int,
    block_fn: Callable[..., np.ndarray],
    *,
    min_iou: float = 0.5,
) -> da.Array:
    """Segment blocks with a halo and stitch them: labels 1..N per frame (int32).

    Objects are keyed by their first pixel (:func:`~napari_fbias.ops.chunk_stitch.halo_keys`):
    an object two blocks segment alike gets one key. Where two blocks segment
    it a little differently (cellpose near a face), its first pixel, hence its
    key, differs: the two keys are joined when what one block sees of the
    neighbour's core (its halo) and the neighbour's own keys there overlap
    with an IoU of at least ``min_iou``. Ids are then numbered in raster
    order of each object's first key (its smallest).

    The blocks run once: the pass that collects the keys and strips also
    keeps each core's keys in a scratch array, which the labels read
    (:func:`~napari_fbias.ops.chunk_stitch.keys_scratch`; where none can be
    used, the blocks run again to write the labels).
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    from napari_fbias.ops.chunk_stats import block_tasks, compute_in_batches

    core = with_halo([x], n_loop, depth)[0][0]
    ext = halo_keys([x], n_loop, depth, block_fn, crop=False)
    blocks = block_tasks(ext)
    locs = list(np.ndindex(*blocks.shape))
    scratch = keys_scratch(core)  # the cores' keys, kept for the labels: the network runs once
    regions = block_regions(core.chunks)
    calls = [
        (_strips, blocks[loc], loc, core.chunks, depth, n_loop, scratch, region)
        for loc, region in zip(locs, regions, strict=True)
    ]
    infos = dict(zip(locs, compute_in_batches(calls, blocks.shape), strict=True))
    every = np.unique(np.concatenate([np.empty(0, np.int64), *(i["keys"] for i in infos.values())]))
    edges = [np.empty((0, 2), np.int64)]
    for loc in locs:
        for k in range(ext.ndim - n_loop):
            nxt = list(loc)
            nxt[n_loop + k] += 1
            other = infos.get(tuple(nxt))
            if other is None:
                continue
            mine = infos[loc]
            edges.append(_agreeing_pairs(mine["halo"][k][1], other["core"][k][0], min_iou))
            edges.append(_agreeing_pairs(other["halo"][k][0], mine["core"][k][1], min_iou))
    e = np.concatenate(edges)
    e = e[np.isin(e, every).all(axis=1)]  # keys of objects kept in some core only
    idx = np.searchsorted(every, e)
    graph = coo_matrix(
        (np.ones(len(idx), np.int8), (idx[:, 0], idx[:, 1])), (every.size, every.size)
    )
    _, comp = connected_components(graph, directed=False)
    first = np.full(comp.max() + 1 if comp.size else 0, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(first, comp, every)
    pixels = math.prod(x.shape[n_loop:])
    order = np.argsort(first, kind="stable")
    frame = first[order] // pixels
    start = np.searchsorted(frame, frame, side="left")
    comp_id = np.empty(first.size, np.int32)
    comp_id[order] = (np.arange(first.size) - start + 1).astype(np.int32)
    new_ids = comp_id[comp] if comp.size else np.empty(0, np.int32)

    meta = np.empty((0,) * ext.ndim, np.int32)
    if scratch is not None:
        return relabeled(core, scratch, every, new_ids)

    def relabel(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = tuple(block_info[0]["chunk-location"])
        b = block.reshape(block.shape[n_loop:])
        sl = tuple(core_slice(core.chunks, n_loop + k, loc, depth) for k in range(b.ndim))
        out = relabel_keys(b[sl], every, new_ids)
        return out.reshape((1,) * n_loop + out.shape)

    return ext.map_blocks(relabel, chunks=core.chunks, dtype=np.int32, meta=meta)


register_chunked("cellpose.segment", cellpose_chunks)
