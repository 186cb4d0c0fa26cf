"""Label stitching across block borders: object-level operations in blocks with a halo.

``segment.nuclei`` and ``segment.watershed_split`` decide each object from
its whole extent (a watershed, the distance to its edge, its own peak
brightness), so they cannot run on plain chunks. Here each block is
processed *with a halo* (``depth`` pixels of its neighbours, none past the
image border), like cellpose's distributed segmentation; every object then
gets a global key, the position (global raster index, per time point /
channel) of its first pixel in the extended block, and the block keeps the
keys of its own core pixels. An object that lies whole inside the extended
blocks of every block it touches gets the same key in each of them, so an
object cut by a block border becomes one object without any merge step.
The keys are finally renumbered 1..N per frame in raster order of the
objects' first pixels (:func:`renumber_keys`): ids are globally unique and
deterministic (the same for any chunking where the result is exact).

Halos are per spatial axis (``depth`` an int, or one int per spatial axis:
:func:`axis_depth`), in voxels, so that an anisotropic volume gets a
shorter halo along its coarse axis.

Exactness: the result equals the in-memory one up to renumbering when every
connected part of the foreground that touches a block lies inside the
block's extended region; a larger cluster of touching objects can be cut
differently near a border. ``segment.watershed_split`` sizes its halo from
the largest object of its input (measured in a first pass), so it is exact
up to :data:`MAX_HALO`. ``segment.nuclei`` sizes it from the largest *clump*
of its thresholded mask, grown by the reach of its edge refinement (a first
pass, :func:`_clump_extent`), plus ``min_distance`` (:func:`nuclei_halo`),
so it is exact too, up to :data:`MAX_HALO`, when it runs in the data's own
blocks (``chunked=True`` runs).

Memory: a step that runs chunk-wise for a memory budget gets blocks of
:func:`~napari_fbias.pipeline.memory.block_pixels` pixels, halo not
counted; ``segment.nuclei`` reads that size
(:func:`~napari_fbias.ops.chunks.budget_block_pixels`) once it knows
its halo and re-cuts the blocks so that each block *with its halo* holds at
most that many pixels (:func:`fit_cores`: equal blocks per axis, the fewest
pixels computed). A crowded image has large clumps: when the exact halo
would make it compute more than :data:`MAX_HALO_WORK` times the image's
pixels, the halo shrinks, not below one object diameter per axis
(:func:`_budget_halo`; logged), and the result is approximate near the
seams (measured: AP@0.5 of chunk-wise against in-memory labels,
``tests/test_chunked_nuclei_3d.py``, ``docs/architecture.md``).

Settings left automatic (None) are resolved once per frame before any block
runs (:func:`resolve_nuclei_auto`, :func:`resolve_split_auto`), with the same
rules as in memory (:mod:`napari_fbias.ops.auto_scale`): on the whole frame
when it has at most :data:`AUTO_FULL_PIXELS` pixels (then the settings equal
the in-memory ones), otherwise on a grid of tiles spread over it, of that
many pixels together (:func:`frame_view`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import ndimage as ndi

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "block_regions",
    "core_slice",
    "frame_view",
    "halo_keys",
    "keys_scratch",
    "nuclei_chunks",
    "RelabeledRegions",
    "relabel_keys",
    "relabeled",
    "renumber_keys",
    "resolve_nuclei_auto",
    "watershed_split_chunks",
    "with_halo",
]

#: Frames with at most this many pixels resolve automatic settings on the whole frame;
#: larger ones on a sample of tiles of about as many pixels (:func:`frame_view`).
AUTO_FULL_PIXELS = 4096 * 4096
#: Tiles a side of that sample in 2D (4 x 4 tiles of 1024^2); half as many in 3D.
AUTO_TILES = 4
#: Pixels between the sample's tiles (filled with their lowest value).
AUTO_GAP = 8
#: Most pixels ``segment.nuclei``'s blocks with their halos may hold together, relative to
#: the image's pixels, before the halo shrinks to fit a memory budget's blocks (3.0: the
#: halos add twice the image).
MAX_HALO_WORK = 3.0
#: Largest halo (pixels); larger objects make a watershed split near borders approximate.
MAX_HALO = 512

logger = logging.getLogger(__name__)

Frame = tuple[int, ...]
#: A halo: one number of pixels for every spatial axis, or one per spatial axis.
Depth = int | Sequence[int]


# --- blocks with a halo ---------------------------------------------------------------------


def axis_depth(depth: Depth, axis: int, ndim: int) -> int:
    """Return the halo along array axis ``axis`` of an ``ndim``-D array.

    ``depth`` is one number for every spatial axis, or one per spatial axis:
    a sequence lines up with the *trailing* axes (``(dz, dy, dx)`` for a
    ``tczyx`` array), and the axes before them get none.
    """
    if isinstance(depth, (int, np.integer)):
        return int(depth)
    d = tuple(depth)
    k = axis - (ndim - len(d))
    return int(d[k]) if k >= 0 else 0


def _halo_chunks(
    x: da.Array, n_loop: int, depth: Depth
) -> tuple[list[tuple[int, ...]], dict[int, int]]:
    """Return ``x``'s chunks widened where narrower than the halo, and the halo per axis."""
    from dask.array.overlap import ensure_minimum_chunksize

    chunks = list(x.chunks)
    depths = {i: 0 for i in range(x.ndim)}
    for i in range(n_loop, x.ndim):
        d = axis_depth(depth, i, x.ndim)
        if d and d < x.shape[i]:
            chunks[i] = ensure_minimum_chunksize(d, x.chunks[i])
        elif d:
            chunks[i] = (x.shape[i],)
        depths[i] = d if len(chunks[i]) > 1 else 0
    return chunks, depths


def with_halo(
    arrays: Sequence[da.Array], n_loop: int, depth: Depth
) -> tuple[list[da.Array], list[da.Array]]:
    """Return the arrays rechunked, and overlapped by ``depth`` pixels (none past the border).

    ``depth`` is an int (every spatial axis) or one int per spatial axis
    (:func:`axis_depth`). A chunk narrower than its axis' halo is widened
    (dask takes a halo from the adjacent block only); an axis no longer than
    its halo is kept in one chunk (no halo).
    """
    from dask.array.overlap import overlap

    from napari_fbias.io.region_read import halo_regions, region_array, region_reader

    x = arrays[0]
    chunks, depths = _halo_chunks(x, n_loop, depth)
    readers = [region_reader(a) for a in arrays]
    if all(r is not None for r in readers):  # one task per block, whatever the image
        per_axis = [depths[i] for i in range(x.ndim)]
        return (
            [region_array(r, chunks) for r in readers],
            [halo_regions(r, chunks, per_axis) for r in readers],
        )
    rechunked = [a.rechunk(tuple(chunks)) for a in arrays]
    return rechunked, [overlap(a, depth=depths, boundary="none") for a in rechunked]


def core_slice(
    chunks: Sequence[Sequence[int]], axis: int, loc: Sequence[int], depth: Depth
) -> slice:
    """Where block ``loc``'s own pixels lie along ``axis`` of its extended block.

    An extended block has the axis' halo (:func:`axis_depth`) of its
    neighbour before it, except the first block of an axis (none past the
    image border) and an axis in one block (not overlapped).
    """
    d = axis_depth(depth, axis, len(chunks))
    lo = d if loc[axis] > 0 and len(chunks[axis]) > 1 else 0
    return slice(lo, lo + chunks[axis][loc[axis]])


def halo_keys(
    arrays: Sequence[da.Array],
    n_loop: int,
    depth: Depth,
    block_fn: Callable[..., np.ndarray],
    *,
    crop: bool = True,
) -> da.Array:
    """Label blocks with a halo and key each object by its first pixel (global raster index).

    Parameters
    ----------
    arrays : sequence of dask.array.Array
        Inputs of the same shape; the first ``n_loop`` axes have chunks of 1.
    n_loop : int
        Number of leading loop axes (t, c).
    depth : int or sequence of int
        Halo in pixels along every spatial axis, or one per spatial axis
        (:func:`axis_depth`).
    block_fn : callable
        ``block_fn(frame, *blocks) -> labels`` on the spatial extended blocks.
    crop : bool
        Keep each block's core (default); False keeps the keys of the whole
        extended blocks (the halos too, chunks of the overlapped array).

    Returns
    -------
    dask.array.Array
        int64 keys (-1 for background): ``frame_index * pixels + raster index``.
    """
    cores, extended = with_halo(arrays, n_loop, depth)
    core = cores[0]
    spatial_shape = core.shape[n_loop:]
    pixels = math.prod(spatial_shape)
    starts = [np.cumsum((0, *c[:-1])) for c in core.chunks]
    frames = list(np.ndindex(*core.shape[:n_loop]))
    frame_index = {f: i for i, f in enumerate(frames)}

    def run(*blocks: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = tuple(block_info[None]["chunk-location"])
        frame = loc[:n_loop]
        spatial = [b.reshape(b.shape[n_loop:]) for b in blocks]
        origin, core_sl, out_shape = [], [], []
        for k in range(len(spatial_shape)):
            i = n_loop + k
            sl = core_slice(core.chunks, i, loc, depth)
            origin.append(int(starts[i][loc[i]]) - sl.start)
            core_sl.append(sl)
            out_shape.append(sl.stop - sl.start)
        labels = np.asarray(block_fn(frame, *spatial))
        flat = labels.ravel()
        ids, first = np.unique(flat, return_index=True)
        coords = np.unravel_index(first, labels.shape)
        glob = tuple(c + o for c, o in zip(coords, origin, strict=True))
        lin = np.ravel_multi_index(glob, spatial_shape).astype(np.int64)
        lut = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
        lut[ids] = lin + frame_index[frame] * pixels
        lut[0] = -1
        if not crop:
            return lut[labels].reshape(blocks[0].shape)
        keys = lut[labels[tuple(core_sl)]]
        return keys.reshape((1,) * n_loop + tuple(out_shape))

    return extended[0].map_blocks(
        run,
        *extended[1:],
        chunks=core.chunks if crop else extended[0].chunks,
        dtype=np.int64,
        meta=np.empty((0,) * core.ndim, dtype=np.int64),
    )


def _block_keys(block: np.ndarray) -> np.ndarray:
    u = np.unique(block)
    return u[u >= 0]


def _keys_once(block: np.ndarray, where: tuple[slice, ...], scratch: Any) -> np.ndarray:
    scratch[where] = block
    return _block_keys(block)


def keys_scratch(keys: da.Array) -> Any:
    """Return a scratch array shaped and chunked like ``keys``, or None where none can be used.

    None when the chunks are not regular, the computing processes cannot read
    a local folder (:func:`~napari_fbias.io.scratch.scratch_readable`), or the
    folder cannot be written (logged): the caller then computes the keys again.
    """
    from napari_fbias.io.scratch import ScratchArray, regular_chunks, scratch_readable

    chunks = regular_chunks(keys.chunks)
    if chunks is None or not scratch_readable():
        return None
    try:
        return ScratchArray(keys.shape, np.int64, chunks, "keys")
    except OSError as exc:
        logger.warning("no scratch disk for the object keys (%s); computing the blocks twice", exc)
        return None


def block_regions(chunks: Sequence[Sequence[int]]) -> list[tuple[slice, ...]]:
    """Return each block's region of an array with dask ``chunks``, in raster order of blocks."""
    starts = [np.cumsum((0, *c)) for c in chunks]
    return [
        tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, idx, strict=True))
        for idx in np.ndindex(*(len(c) for c in chunks))
    ]


def relabel_keys(block: np.ndarray, every: np.ndarray, new_ids: np.ndarray) -> np.ndarray:
    """Map object keys (``every``, sorted; -1 background) to ``new_ids`` (int32, 0 background)."""
    out = np.zeros(block.shape, dtype=np.int32)
    fg = block >= 0
    out[fg] = new_ids[np.searchsorted(every, block[fg])]
    return out


def renumber_keys(keys: da.Array, n_loop: int) -> da.Array:
    """Renumber object keys 1..N per frame in raster order of their first pixel (int32).

    One pass computes the keys (the expensive part: the recipe on each block
    with its halo), keeps them in a scratch array (:func:`keys_scratch`) and
    collects them; the labels then read the stored keys. Where no scratch
    disk can be used, the keys are computed twice.
    """
    from napari_fbias.ops.chunk_stats import block_tasks, compute_in_batches

    pixels = math.prod(keys.shape[n_loop:])
    blocks = block_tasks(keys).ravel()
    scratch = keys_scratch(keys)
    if scratch is None:
        calls: list[tuple[Any, ...]] = [(_block_keys, b) for b in blocks]
    else:
        regions = block_regions(keys.chunks)
        calls = [(_keys_once, b, r, scratch) for b, r in zip(blocks, regions, strict=True)]
    parts = compute_in_batches(calls, keys.numblocks)
    every = np.unique(np.concatenate([np.empty(0, np.int64), *parts]))
    frame = every // pixels
    first_of_frame = np.searchsorted(frame, frame, side="left")
    new_ids = (np.arange(every.size) - first_of_frame + 1).astype(np.int32)
    return relabeled(keys, scratch, every, new_ids)


class RelabeledRegions:
    """Region reader of renumbered labels: the stored object keys mapped to their new ids."""

    def __init__(self, keys: Any, every: np.ndarray, new_ids: np.ndarray) -> None:
        self.keys, self.every, self.new_ids = keys, every, new_ids
        self.shape = tuple(int(n) for n in keys.shape)
        self.dtype = np.dtype(np.int32)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        """Return the labels of ``region``."""
        return relabel_keys(np.asarray(self.keys[region]), self.every, self.new_ids)


def relabeled(keys: da.Array, scratch: Any, every: np.ndarray, new_ids: np.ndarray) -> da.Array:
    """Return the labels from ``keys``, read by regions from their ``scratch`` array if any.

    Read by regions, the labels are a region reader too
    (:mod:`napari_fbias.io.region_read`): writing them in other chunks
    makes no graph that grows with the image.
    """
    from napari_fbias.io.region_read import region_array

    if scratch is not None:
        return region_array(RelabeledRegions(scratch, every, new_ids), keys.chunks)
    relabel = partial(relabel_keys, every=every, new_ids=new_ids)
    return keys.map_blocks(relabel, dtype=np.int32, meta=np.empty((0,) * keys.ndim, np.int32))


def _smooth_frame(b: np.ndarray, sigma: Any, dtype: np.dtype) -> np.ndarray:
    """``segment.nuclei``'s Gaussian of one frame's pixels (none where sigma is 0)."""
    if np.max(sigma) > 0:
        return ndi.gaussian_filter(b, sigma, output=dtype, mode="nearest")
    return b.astype(dtype)


def _smoothed(data: da.Array, n_loop: int, sigmas: Mapping[Frame, Any]) -> da.Array:
    """Smooth the image as ``segment.nuclei`` does, exactly (a halo of the kernel's radius).

    The halo is the Gaussian's radius per axis (``int(4 * sigma + 0.5)``, as
    :func:`scipy.ndimage.gaussian_filter` truncates it): shorter along the
    coarse axis of an anisotropic volume.
    """
    from napari_fbias.ops.preprocess import _float_type

    nd = data.ndim - n_loop
    radius = tuple(
        max(
            (int(4.0 * float(np.broadcast_to(s, (nd,))[k]) + 0.5) for s in sigmas.values()),
            default=0,
        )
        for k in range(nd)
    )
    out_dtype = np.dtype(_float_type(data.dtype))
    if not any(radius):
        return data.astype(out_dtype) if data.dtype != out_dtype else data
    from napari_fbias.io.region_read import region_array, region_reader

    reader = region_reader(data)
    if reader is not None:  # one task per block, each smoothing its region with the radius
        chunks = _halo_chunks(data, n_loop, radius)[0]
        return region_array(_SmoothedRegions(reader, n_loop, sigmas, radius, out_dtype), chunks)
    cores, extended = with_halo([data], n_loop, radius)
    core = cores[0]

    def smooth(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = tuple(block_info[None]["chunk-location"])
        b = block.reshape(block.shape[n_loop:])
        sigma = sigmas[loc[:n_loop]]
        out = _smooth_frame(b, sigma, out_dtype)
        sl = tuple(core_slice(core.chunks, n_loop + k, loc, radius) for k in range(b.ndim))
        return out[sl].reshape((1,) * n_loop + out[sl].shape)

    return extended[0].map_blocks(
        smooth, chunks=core.chunks, dtype=out_dtype, meta=np.empty((0,) * core.ndim, out_dtype)
    )


class _SmoothedRegions:
    """A region reader of ``segment.nuclei``'s smoothed image: each region read with the radius.

    The same values as :func:`_smoothed`'s blocks: each pixel is the Gaussian
    of the pixels within the radius (``mode="nearest"`` only at the image's
    border), computed in the same order.
    """

    def __init__(
        self,
        source: Any,
        n_loop: int,
        sigmas: Mapping[Frame, Any],
        radius: Sequence[int],
        dtype: np.dtype,
    ) -> None:
        self.source, self.n_loop, self.sigmas, self.radius = source, n_loop, sigmas, radius
        self.shape = tuple(source.shape)
        self.dtype = np.dtype(dtype)

    def read(self, region: tuple[slice, ...]) -> np.ndarray:
        n_loop = self.n_loop
        spatial = region[n_loop:]
        wide = tuple(
            slice(max(0, s.start - r), min(n, s.stop + r))
            for s, r, n in zip(spatial, self.radius, self.shape[n_loop:], strict=True)
        )
        crop = tuple(
            slice(s.start - w.start, s.stop - w.start) for s, w in zip(spatial, wide, strict=True)
        )
        raw = self.source.read(tuple(region[:n_loop]) + wide)
        out = np.empty(raw.shape[:n_loop] + tuple(s.stop - s.start for s in spatial), self.dtype)
        for idx in np.ndindex(*raw.shape[:n_loop]):
            frame = tuple(int(s.start) + i for s, i in zip(region[:n_loop], idx, strict=True))
            out[idx] = _smooth_frame(raw[idx], self.sigmas[frame], self.dtype)[crop]
        return out


# --- automatic settings, once per frame -------------------------------------------------------


def frame_view(x: da.Array, frame: Frame, n_loop: int) -> np.ndarray:
    """One frame in memory, or a sample of it of about :data:`AUTO_FULL_PIXELS` pixels.

    A larger frame is sampled by a grid of tiles spread over it
    (:data:`AUTO_TILES` a side, each centred in its cell), read one at a time
    (a stored array chunk by chunk) and laid side by side with a gap of
    :data:`AUTO_GAP` pixels of the tiles' lowest value between them: objects
    cut at the edge of one tile do not touch those of the next. The sample is
    a :class:`~napari_fbias.ops.object_size.TileSample` (it knows its tiles):
    the object size is measured on it tile by tile. A central crop alone, on a slide whose middle is
    empty or unlike the rest, found no objects or the wrong size.
    """
    spatial = tuple(int(n) for n in x.shape[n_loop:])
    if math.prod(spatial) <= AUTO_FULL_PIXELS:
        return np.asarray(x[frame].compute())
    import dask

    nd = len(spatial)
    side = int(round(AUTO_FULL_PIXELS ** (1 / nd)))
    tiles = AUTO_TILES if nd == 2 else max(1, AUTO_TILES // 2)
    per_axis = []
    for n in spatial:
        size = min(n, max(1, side // tiles))
        k = max(1, min(tiles, n // size))
        cells = [i * n // k for i in range(k + 1)]
        starts = [min(n - size, max(0, (cells[i] + cells[i + 1] - size) // 2)) for i in range(k)]
        per_axis.append((size, starts))
    corners = list(np.ndindex(*(len(st) for _, st in per_axis)))
    sources = [[st[c] for (_, st), c in zip(per_axis, cr, strict=True)] for cr in corners]
    places = [
        [c * (size + AUTO_GAP) for (size, _), c in zip(per_axis, cr, strict=True)] for cr in corners
    ]
    sizes = [size for size, _ in per_axis]

    def box(starts: list[int]) -> tuple[slice, ...]:
        return tuple(slice(a, a + n) for a, n in zip(starts, sizes, strict=True))

    from napari_fbias.io.region_read import region_reader
    from napari_fbias.ops.object_size import TileSample

    # one tile at a time, straight into the sample: a stored array is read chunk by chunk
    # (one decoded chunk held), another one computes each tile alone (all 16 in one compute
    # held each tile's whole dask blocks at once)
    reader = region_reader(x)
    shape = tuple(len(st) * size + (len(st) - 1) * AUTO_GAP for size, st in per_axis)
    out: np.ndarray | None = None
    fill = None
    for src, place in zip(sources, places, strict=True):
        region = tuple(slice(i, i + 1) for i in frame) + box(src)
        if reader is not None:
            part = reader.read(region).reshape(sizes)
        else:
            part = np.asarray(dask.compute(x[frame + box(src)])[0])
        if out is None:
            out = np.empty(shape, dtype=part.dtype)
        out[box(place)] = part
        low = part.min()
        fill = low if fill is None else min(fill, low)
        del part
    assert out is not None
    for axis, (size, st) in enumerate(per_axis):  # the gaps: the tiles' lowest value
        for k in range(1, len(st)):
            gap = k * (size + AUTO_GAP) - AUTO_GAP
            out[(slice(None),) * axis + (slice(gap, gap + AUTO_GAP),)] = fill
    return TileSample(out, [box(place) for place in places])


def resolve_nuclei_auto(
    data: da.Array, n_loop: int, params: Mapping[str, Any], sampling: Any
) -> dict[Frame, dict[str, Any]]:
    """Per frame, ``segment.nuclei``'s settings with the automatic ones resolved, plus ``d``.

    The rules are the in-memory ones (:func:`~napari_fbias.ops.auto_scale.resolve_auto`),
    applied to the whole frame (or a sample of tiles over it, see :func:`frame_view`).
    ``d``, the typical object diameter, sizes the halo.
    """
    from napari_fbias.ops.auto_scale import TUNED_DIAMETER, TUNED_DIAMETER_3D, resolve_auto

    out = {}
    nd = data.ndim - n_loop
    auto = any(params.get(k) is None for k in ("smoothing_sigma", "min_size", "min_distance"))
    tuned = TUNED_DIAMETER if nd == 2 else TUNED_DIAMETER_3D
    for frame in np.ndindex(*data.shape[:n_loop]):
        chosen: dict[str, Any] = {}
        p = dict(params)
        if auto:
            view = frame_view(data, frame, n_loop)
            p, chosen = resolve_auto("segment.nuclei", view, p, sampling)
        # the diameter measured, else the one the recipe's min_distance is made for
        d = chosen.get("object_diameter") or tuned * float(p["min_distance"]) / 5.0
        p["d"] = float(d)
        out[frame] = p
    return out


# --- segment.nuclei -----------------------------------------------------------------------


def _sampling_of(params: Mapping[str, Any], ndim: int) -> tuple[float, ...] | None:
    from napari_fbias.ops.preprocess import usable_spacing

    return usable_spacing(params.get("spacing"), ndim)


#: How far ``segment.nuclei``'s edge refinement grows each nucleus (finest-axis pixels).
REFINE_REACH = 3.0


def _clump_extent(
    smooth: da.Array,
    n_loop: int,
    t: np.ndarray,
    grow: float,
    sampling: tuple[float, ...] | None,
) -> np.ndarray:
    """Largest bounding-box side, per spatial axis, of a clump of the thresholded mask.

    A clump is a connected part of ``smooth > t`` (each frame its own
    threshold) grown by ``grow`` finest-axis pixels (a Euclidean distance,
    physical with ``sampling``): two parts closer than ``2 * grow`` are one
    clump. A first pass over the whole image: each block, with a halo of the
    growth, is masked, grown and labelled; the labels are merged across block
    borders (:func:`~napari_fbias.ops.chunks.merge_labels`), then the merged
    objects' bounding boxes are collected (:func:`_largest_extent`).
    """
    from napari_fbias.ops.chunks import merge_labels

    nd = smooth.ndim - n_loop
    reach = tuple(int(v) for v in _voxels(grow, sampling, nd)) if grow > 0 else 0
    cores, extended = with_halo([smooth], n_loop, reach)
    core = cores[0]
    finest = min(sampling) if sampling is not None else 1.0

    def label_block(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = tuple(block_info[None]["chunk-location"])
        frame = loc[:n_loop]
        sl = tuple(core_slice(core.chunks, n_loop + k, loc, reach) for k in range(nd))
        out_shape = (1,) * n_loop + tuple(s.stop - s.start for s in sl)
        if np.isnan(t[frame]):
            return np.zeros(out_shape, np.int32)
        mask = block.reshape(block.shape[n_loop:]) > t[frame]
        if grow > 0 and mask.any():
            dist = ndi.distance_transform_edt(~mask, sampling=sampling)
            mask = dist <= grow * finest
        lab, _ = ndi.label(mask[sl])
        return lab.astype(np.int32, copy=False).reshape(out_shape)

    local = extended[0].map_blocks(
        label_block, chunks=core.chunks, dtype=np.int32, meta=np.empty((0,) * core.ndim, np.int32)
    )
    return _largest_extent(merge_labels(local, n_loop), n_loop)


def _voxels(length: float, sampling: tuple[float, ...] | None, nd: int) -> np.ndarray:
    """Voxels per axis spanning ``length`` pixels of the finest axis (rounded up)."""
    if sampling is None:
        return np.full(nd, int(math.ceil(length)))
    sp = np.asarray(sampling, dtype=float)
    return np.ceil(length * sp.min() / sp - 1e-9).astype(int)


def nuclei_halo(
    extent: Sequence[int],
    per_frame: Mapping[Frame, Mapping[str, Any]],
    sampling: tuple[float, ...] | None,
) -> tuple[int, ...]:
    """Return the halo per spatial axis that makes ``segment.nuclei`` chunk-wise exact.

    ``extent`` is the largest clump's bounding box (:func:`_clump_extent`,
    the thresholded mask grown by :data:`REFINE_REACH` when the outlines are
    refined). An object's labels depend on its clump alone (holes are filled
    inside it; edge refinement grows each nucleus by :data:`REFINE_REACH`
    before fitting its outline, inside the grown clump), except that the
    split's peaks are thinned within ``min_distance`` across objects
    (``m`` voxels per axis, from the physical sampling). A clump touching a
    block lies within ``extent - 1`` of it, so with a halo of
    ``extent + m + 1`` along each axis every object touching a block is
    computed as in memory. At most :data:`MAX_HALO`.
    """
    nd = len(extent)
    reach = np.ones(nd, dtype=int)
    for p in per_frame.values():
        if p["split_touching"]:
            reach = np.maximum(reach, _voxels(float(p["min_distance"]), sampling, nd) + 1)
    return tuple(int(min(MAX_HALO, e + r)) for e, r in zip(extent, reach, strict=True))


def _axis_options(n: int, h: int) -> list[tuple[int, int, int, int]]:
    """``(core, widest extended block, pixels computed, blocks)`` along one axis of ``n``."""
    out = {}
    for m in {*range(1, 9), *np.unique(np.geomspace(1, max(n, 1), 48).round().astype(int))}:
        c = -(-n // int(m))
        blocks = -(-n // c)
        if blocks == 1:
            out[c] = (c, n, n, 1)
        elif c >= h:  # dask takes a halo from the adjacent block only
            out[c] = (
                c,
                min(n, c + (h if blocks == 2 else 2 * h)),
                n + 2 * h * (blocks - 1),
                blocks,
            )
    return sorted(out.values())


def fit_cores(
    shape: Sequence[int], halo: Sequence[int], budget: int
) -> tuple[tuple[int, ...], float] | None:
    """Block cores (pixels per axis) whose blocks with ``halo`` hold at most ``budget`` pixels.

    Among the ways to cut each axis into equal blocks, the one computing the
    fewest pixels (halos computed twice included); None when no block with
    this halo fits. Also returns that work, relative to the image's pixels.
    """
    from napari_fbias.io.limits import MAX_DASK_BLOCKS

    opts = [
        np.array(_axis_options(int(n), int(h)), dtype=np.float64)
        for n, h in zip(shape, halo, strict=True)
    ]
    grids = np.meshgrid(*[o[:, 1] for o in opts], indexing="ij")
    ext = np.prod(grids, axis=0)
    work = np.prod(np.meshgrid(*[o[:, 2] for o in opts], indexing="ij"), axis=0)
    blocks = np.prod(np.meshgrid(*[o[:, 3] for o in opts], indexing="ij"), axis=0)
    ok = (ext <= budget) & (blocks <= MAX_DASK_BLOCKS)
    if not ok.any():
        return None
    best = np.unravel_index(np.argmin(np.where(ok, work, np.inf)), ok.shape)
    cores = tuple(int(o[i, 0]) for o, i in zip(opts, best, strict=True))
    return cores, float(work[best] / math.prod(int(n) for n in shape))


def _budget_halo(
    shape: Sequence[int], exact: Sequence[int], floor: Sequence[int], budget: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return the halo and block cores for a block budget: the exact halo if it costs little.

    The exact halo is kept when blocks with it fit ``budget`` and compute at
    most :data:`MAX_HALO_WORK` times the image's pixels; otherwise it shrinks
    step by step, not below ``floor`` (one object across), until they do
    (approximate near the seams), else it is the smallest that fits. When
    even the floor halo does not fit, the blocks' cores are about twice the
    floor halo across and exceed the budget: smaller halos cut most nuclei
    (AP@0.5 0.06 measured with a 3 px halo on a crowded volume).
    """
    exact_a, floor_a = np.asarray(exact), np.minimum(np.asarray(floor), exact)
    fallback = None
    for f in np.linspace(1.0, 0.0, 21):
        h = tuple(int(v) for v in np.maximum(np.ceil(f * exact_a), floor_a))
        got = fit_cores(shape, h, budget)
        if got is not None and got[1] <= MAX_HALO_WORK:
            return h, got[0]
        if got is not None:
            fallback = (h, got[0])
    if fallback is not None:  # the smallest halo that fits: the least work
        return fallback
    h = tuple(int(v) for v in floor_a)
    over = fit_cores(shape, h, math.prod(min(int(n), 4 * v) for n, v in zip(shape, h, strict=True)))
    return h, over[0] if over is not None else tuple(int(n) for n in shape)


def nuclei_chunks(
    call: Callable[..., Any],
    data: da.Array,
    n_loop: int,
    params: Mapping[str, Any],
    *,
    after_threshold: Callable[..., np.ndarray],
) -> da.Array:
    """``segment.nuclei`` chunk-wise: global threshold and background, then blocks with a halo.

    1. automatic settings resolved per frame (:func:`resolve_nuclei_auto`);
    2. the smoothed image, lazily and exactly (a halo of the Gaussian's radius);
    3. its threshold and the median of the pixels below it, by reduction passes
       (:mod:`napari_fbias.ops.chunk_stats`: exact, li on float images to a tolerance);
    4. the halo per axis: the largest clump of the thresholded mask (a first
       pass, :func:`_clump_extent`) plus what the recipe reaches beyond it
       (:func:`nuclei_halo`);
    5. when the step runs for a memory budget
       (:func:`~napari_fbias.ops.chunks.budget_block_pixels`), the blocks
       are re-cut so that each one *with its halo* holds at most the budget's
       block size (:func:`fit_cores`); a halo that would cost more than
       :data:`MAX_HALO_WORK` times the image's pixels shrinks, not below one
       object diameter per axis (:func:`_budget_halo`, logged: approximate);
       without a budget the blocks are the data's own;
    6. the rest of the recipe per block with its halo, stitched by object keys:
       ``after_threshold`` is the in-memory recipe's own code for it
       (``segment.nuclei_from_threshold``, bound where the strategy is registered).
    """
    from napari_fbias.io.region_read import restride
    from napari_fbias.ops.chunk_stats import frame_medians_below, frame_thresholds
    from napari_fbias.ops.chunks import budget_block_pixels
    from napari_fbias.ops.preprocess import _sigma_per_axis

    nd = data.ndim - n_loop
    sampling = _sampling_of(params, nd)
    per_frame = resolve_nuclei_auto(data, n_loop, params, sampling)
    for p in per_frame.values():
        if p["min_size"] < 0 or p["smoothing_sigma"] < 0 or p["min_distance"] < 1:
            raise ValueError("min_size, smoothing_sigma must be >= 0 and min_distance >= 1")
        if not 0 < p["edge_level"] < 1:
            raise ValueError(f"edge_level must be between 0 and 1; got {p['edge_level']}")
    sigmas = {
        f: _sigma_per_axis(p["smoothing_sigma"], nd, sampling) if p["smoothing_sigma"] > 0 else 0
        for f, p in per_frame.items()
    }
    smooth = _smoothed(data, n_loop, sigmas)
    shape = tuple(data.shape[:n_loop])
    method = params["threshold_method"]
    if method == "manual":
        t = np.full(shape, float(params["threshold_value"]))
    else:
        t = frame_thresholds(smooth, n_loop, method)
    background = np.zeros(shape)
    if params["refine_edges"]:
        ok = ~np.isnan(t)
        background = frame_medians_below(smooth, n_loop, np.where(ok, t, -np.inf))
        if method != "manual":
            t = background + 0.5 * (t - background)
    grow = REFINE_REACH if params["refine_edges"] else 0.0
    extent = _clump_extent(smooth, n_loop, t, grow, sampling)
    depth = nuclei_halo(extent, per_frame, sampling)
    budget = budget_block_pixels()
    if budget is not None:
        d = max(p["d"] for p in per_frame.values())
        floor = tuple(int(v) for v in _voxels(d, sampling, nd))
        exact = depth
        depth, cores = _budget_halo(data.shape[n_loop:], exact, floor, budget)
        if depth != exact:
            logger.warning(
                "segment.nuclei chunk-wise: halo %s px (exact: %s) to fit blocks of %d px; "
                "objects near block seams may differ from an in-memory run",
                depth,
                exact,
                budget,
            )
        data = restride(data, (1,) * n_loop + cores)
        smooth = _smoothed(data, n_loop, sigmas)

    def block_fn(frame: Frame, block: np.ndarray) -> np.ndarray:
        if np.isnan(t[frame]) or np.isnan(background[frame]):
            return np.zeros(block.shape, dtype=np.int32)
        p = per_frame[frame]
        return after_threshold(
            block,
            t[frame],
            background[frame],
            fill_holes=p["fill_holes"],
            split_touching=p["split_touching"],
            min_size=int(p["min_size"]),
            min_distance=int(p["min_distance"]),
            refine_edges=p["refine_edges"],
            edge_level=p["edge_level"],
            sampling=sampling,
        )

    return renumber_keys(halo_keys([smooth], n_loop, depth, block_fn), n_loop)


# --- segment.watershed_split -------------------------------------------------------------------


def _largest_extent(labels: da.Array, n_loop: int) -> np.ndarray:
    """Return the largest bounding-box side per spatial axis of any object of ``labels``."""
    from napari_fbias.ops.measure_chunks import label_stats

    nd = labels.ndim - n_loop
    extent = np.zeros(nd, dtype=int)
    for s in label_stats(labels, n_loop).values():
        for k in range(nd):
            extent[k] = max(extent[k], int((s[f"hi{k}"] - s[f"lo{k}"]).max()))
    return extent


def resolve_split_auto(
    labels: da.Array, n_loop: int, params: Mapping[str, Any], sampling: Any
) -> dict[Frame, dict[str, Any]]:
    """Per frame, ``segment.watershed_split``'s settings with ``min_distance`` resolved."""
    from napari_fbias.ops.auto_scale import labels_diameter, min_distance_for
    from napari_fbias.ops.chosen import report_chosen

    out = {}
    for frame in np.ndindex(*labels.shape[:n_loop]):
        p = dict(params)
        if p.get("min_distance") is None:
            p["min_distance"] = min_distance_for(
                labels_diameter(frame_view(labels, frame, n_loop), sampling)
            )
            report_chosen("min_distance", p["min_distance"])
        out[frame] = p
    return out


def watershed_split_chunks(
    call: Callable[..., Any],
    data: da.Array | tuple[da.Array, ...],
    n_loop: int,
    params: Mapping[str, Any],
) -> da.Array:
    """``segment.watershed_split`` chunk-wise: the op itself on blocks with a halo.

    The halo is the largest object's bounding-box side (found by a first pass)
    plus ``min_distance`` and 2 pixels, at most :data:`MAX_HALO`: every object
    touching a block then lies whole in its extended block, and the result is
    exact up to renumbering.
    """
    arrays = list(data) if isinstance(data, tuple) else [data]
    labels = arrays[0]
    nd = labels.ndim - n_loop
    sampling = _sampling_of(params, nd)
    per_frame = resolve_split_auto(labels, n_loop, params, sampling)
    reach = max(int(p["min_distance"]) for p in per_frame.values())
    extent = _largest_extent(labels, n_loop)
    depth = tuple(int(min(MAX_HALO, e + reach + 2)) for e in extent)
    settings = {k: v for k, v in params.items() if k not in ("min_distance",)}

    def block_fn(frame: Frame, *blocks: np.ndarray) -> np.ndarray:
        return call(*blocks, **{**settings, "min_distance": per_frame[frame]["min_distance"]})

    return renumber_keys(halo_keys(arrays, n_loop, depth, block_fn), n_loop)


watershed_split_chunks.takes_several = True  # type: ignore[attr-defined]
