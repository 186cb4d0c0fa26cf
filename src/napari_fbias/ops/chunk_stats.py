"""Global statistics of images larger than memory, by reduction passes over their chunks.

The chunk-wise strategies (:mod:`napari_fbias.ops.chunks`) need numbers of
the *whole* image: a threshold, a percentile, the median of the background.
Each function here computes them per frame (one value per ``t``/``c`` index
of the first ``n_loop`` axes) by passes over the chunks, never holding more
than one chunk (plus small histograms) at a time.

Exactness, against the in-memory scikit-image / numpy call on the same frame:

* otsu, yen, triangle: exact (the same histogram, built chunk by chunk;
  integer images: one bin per value, float images: 256 bins over the range,
  as :func:`skimage.exposure.histogram` builds them).
* li, integer images: exact (scikit-image iterates on the histogram; so do we).
* li, float images: scikit-image iterates on the pixels; we iterate with the
  same formula, one pass per iteration (float64 sums instead of numpy's
  float32 pairwise sums) and stop at a tolerance no larger than
  scikit-image's (half the smallest gap between values, taken per chunk, and
  at most 1e-6 of the range). Measured: the two thresholds differ by less than
  1e-5 of the image range (``tests/test_ops_chunk_stats.py``).
* order statistics (percentiles, medians): exact, by narrowing histograms
  (each pass keeps one bin of 4096 until it holds at most
  :data:`COLLECT_LIMIT` values or a single value), then a pass that collects
  that bin's values.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "block_tasks",
    "fold_blocks",
    "frame_histograms",
    "frame_medians_below",
    "frame_order_statistics",
    "frame_percentiles",
    "frame_range",
    "frame_thresholds",
    "per_block",
    "triangle_from_histogram",
]

#: Threshold methods computed chunk-wise.
METHODS = ("otsu", "yen", "li", "triangle")
#: Most values a narrowing pass collects into memory at once.
COLLECT_LIMIT = 2**20
#: Bins of one narrowing pass.
NARROW_BINS = 4096

Frame = tuple[int, ...]


def _frames(x: da.Array, n_loop: int) -> list[Frame]:
    return list(np.ndindex(*x.shape[:n_loop]))


def block_tasks(x: da.Array) -> np.ndarray:
    """Return ``x``'s blocks as delayed objects (an array shaped like its block grid).

    The blocks share ``x``'s graph as it is, not optimized: an optimized graph
    is a materialized, fused copy of every task of the image, held for the
    whole pass (measured: 94 MiB held at 16384^2 for the nuclei keys pass's
    graph against 42 MiB unoptimized; each batch's compute culls what it
    needs from the shared graph, in the same time).
    """
    return x.to_delayed(optimize_graph=False)


def per_block(
    x: da.Array, n_loop: int, func: Callable[..., Any], *args: Any
) -> list[tuple[Frame, Any]]:
    """Run ``func(block, frame, *args)`` on every block; return ``(frame, result)`` pairs.

    In the blocks' raster order, all kept: for small results whose order
    matters (float sums); :func:`fold_blocks` folds large ones as they come.
    """
    blocks = block_tasks(x)
    locs = list(np.ndindex(*blocks.shape))
    out = compute_in_batches(
        [(func, blocks[loc], loc[:n_loop], *args) for loc in locs], blocks.shape
    )
    return [(loc[:n_loop], r) for loc, r in zip(locs, out, strict=True)]


def fold_blocks(
    x: da.Array, n_loop: int, func: Callable[..., Any], *args: Any
) -> Iterator[tuple[Frame, Any]]:
    """Yield ``(frame, func(block, frame, *args))`` per block, as batches are computed.

    For results folded in an order-free way (integer histograms and counts,
    minima, maxima): a batch's results are held, not every block's.
    """
    blocks = block_tasks(x)
    locs = list(np.ndindex(*blocks.shape))
    calls = [(func, blocks[loc], loc[:n_loop], *args) for loc in locs]
    for j, r in iter_batches(calls, blocks.shape):
        yield locs[j][:n_loop], r


#: Blocks computed together by a reduction pass, per task dask runs at once
#: (:func:`~napari_fbias.io.dask_parallel.parallel_tasks`). dask orders one large
#: compute of many small results breadth-first, loading most input blocks before
#: it reduces them (measured: about 0.8x the image held at 8192 x 8192); a batch
#: holds its blocks, the neighbours their halos read and their intermediate
#: arrays until it is done (16 blocks per batch: 88 MiB added in the watershed
#: keys pass at 8192^2, 32 MiB budget; 2 per thread: 74 MiB).
BATCH_PER_TASK = 2
#: Blocks per batch at least when a distributed client computes (the blocks' memory is
#: the workers'; a compute costs a round trip and the graph sent: 4 per compute made a
#: 2048^2 chunk-wise run on a 2-worker LocalCluster several times slower).
DISTRIBUTED_BATCH_BLOCKS = 16
#: Side (in blocks) of the square groups a block grid is batched in: a batch of
#: 2 x 2 blocks reads the halos of 4 x 4, a raster run of 4 those of 3 x 6.
BATCH_TILE = 2


def _tile_order(grid: Sequence[int]) -> list[int]:
    """Raster indices of a block grid, grouped in tiles of :data:`BATCH_TILE` blocks a side."""
    locs = list(np.ndindex(*grid))
    return sorted(
        range(len(locs)), key=lambda i: (tuple(n // BATCH_TILE for n in locs[i]), locs[i])
    )


def compute_in_batches(
    calls: Sequence[tuple[Any, ...]], grid: Sequence[int] | None = None
) -> list[Any]:
    """Compute ``func(*args)`` for each ``(func, *args)`` (args may be delayed), in batches.

    With ``grid`` (the block grid, ``calls`` in its raster order), batches are
    compact groups of neighbouring blocks rather than runs of a row: what a
    batch holds (its blocks and the neighbours their halos read) then does not
    grow with the image's width. Results come back in the order of ``calls``.
    """
    out: list[Any] = [None] * len(calls)
    for j, r in iter_batches(calls, grid):
        out[j] = r
    return out


def iter_batches(
    calls: Sequence[tuple[Any, ...]], grid: Sequence[int] | None = None
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, func(*args))`` for each call, batch after batch (see compute_in_batches).

    The results come in the order they are computed (compact groups of
    neighbouring blocks with ``grid``) and are not kept: a caller that
    folds them (sums histograms) holds one batch's results, not the
    image's (4096 bins a block: 128 MiB for the 4096 blocks of a 32768^2
    slide).
    """
    import dask

    from napari_fbias.io.dask_parallel import distributed_client, parallel_tasks

    batch = max(2, BATCH_PER_TASK * parallel_tasks())
    if distributed_client() is not None:  # each compute is a round trip: fewer, larger ones
        batch = max(batch, DISTRIBUTED_BATCH_BLOCKS)
    n = len(calls)
    order = _tile_order(grid) if grid is not None and math.prod(grid) == n else list(range(n))
    for i in range(0, n, batch):
        idx = order[i : i + batch]
        done = dask.compute(*[dask.delayed(calls[j][0])(*calls[j][1:]) for j in idx])
        yield from zip(idx, done, strict=True)


def _block_range(block: np.ndarray, frame: Frame) -> tuple[Any, Any]:
    return block.min(), block.max()


def frame_range(x: da.Array, n_loop: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the minimum and maximum of each frame (arrays shaped like the loop axes)."""
    shape = tuple(x.shape[:n_loop])
    lo = np.zeros(shape, dtype=x.dtype)
    hi = np.zeros(shape, dtype=x.dtype)
    seen: set[Frame] = set()
    for frame, (a, b) in fold_blocks(x, n_loop, _block_range):
        lo[frame] = a if frame not in seen else min(lo[frame], a)
        hi[frame] = b if frame not in seen else max(hi[frame], b)
        seen.add(frame)
    if np.issubdtype(lo.dtype, np.floating) and (np.isnan(lo).any() or np.isnan(hi).any()):
        raise ValueError(
            "the image contains NaN (not-a-number) pixel values; "
            "replace or crop them before this step"
        )
    return lo, hi


def _block_histogram(block: np.ndarray, frame: Frame, lo: np.ndarray, hi: np.ndarray) -> Any:
    if lo[frame] == hi[frame]:
        return None
    if np.issubdtype(block.dtype, np.integer):
        lo_i, hi_i = int(lo[frame]), int(hi[frame])
        shifted = block.ravel().astype(np.int64) - lo_i
        return np.bincount(shifted, minlength=hi_i - lo_i + 1)
    return np.histogram(block, bins=256, range=(lo[frame], hi[frame]))[0]


def frame_histograms(
    x: da.Array, n_loop: int, lo: np.ndarray, hi: np.ndarray
) -> dict[Frame, tuple[np.ndarray, np.ndarray]]:
    """Histogram ``(counts, centers)`` of each non-flat frame, as scikit-image makes it."""
    hists: dict[Frame, np.ndarray] = {}
    for frame, h in fold_blocks(x, n_loop, _block_histogram, lo, hi):
        if h is not None:
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


def triangle_from_histogram(hist: np.ndarray, bin_centers: np.ndarray) -> float:
    """``skimage.filters.threshold_triangle`` from the image's histogram (its own code)."""
    nbins = len(hist)
    arg_peak_height = np.argmax(hist)
    peak_height = hist[arg_peak_height]
    arg_low_level, arg_high_level = np.flatnonzero(hist)[[0, -1]]
    if arg_low_level == arg_high_level:
        return float(bin_centers[arg_low_level])
    flip = arg_peak_height - arg_low_level < arg_high_level - arg_peak_height
    if flip:
        hist = hist[::-1]
        arg_low_level = nbins - arg_high_level - 1
        arg_peak_height = nbins - arg_peak_height - 1
    width = arg_peak_height - arg_low_level
    x1 = np.arange(width)
    y1 = hist[x1 + arg_low_level]
    norm = np.sqrt(peak_height**2 + width**2)
    peak_height = peak_height / norm
    width = width / norm
    length = peak_height * x1 - width * y1
    arg_level = np.argmax(length) + arg_low_level
    if flip:
        arg_level = nbins - arg_level - 1
    return float(bin_centers[arg_level])


def _li_from_histogram(hist: np.ndarray, centers: np.ndarray) -> float:
    """``skimage.filters.threshold_li`` of an integer image, from its histogram (same loop)."""
    image_min = centers[0]
    bin_centers = centers - image_min
    n = hist.sum()
    t_next = float((bin_centers * hist).sum() / n)  # np.mean of the integer image
    tolerance = 0.5
    t_curr = -2 * tolerance
    weights = hist.astype("float32", copy=False)
    while abs(t_next - t_curr) > tolerance:
        t_curr = t_next
        foreground = bin_centers > t_curr
        background = ~foreground
        mean_fore = np.average(bin_centers[foreground], weights=weights[foreground])
        mean_back = np.average(bin_centers[background], weights=weights[background])
        if mean_back == 0:
            break
        t_next = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
    return float(t_next + image_min)


def _block_li_sums(block: np.ndarray, frame: Frame, lo: np.ndarray, t: np.ndarray) -> Any:
    if np.isnan(t[frame]):
        return None
    v = block.astype(np.float64) - float(lo[frame])
    fg = v > t[frame]
    n_fg = int(np.count_nonzero(fg))
    s_fg = float(v[fg].sum())
    return np.array([s_fg, n_fg, float(v.sum()) - s_fg, v.size - n_fg])


def _block_min_gap(block: np.ndarray, frame: Frame) -> float:
    u = np.unique(block)
    return float(np.min(np.diff(u))) if u.size > 1 else np.inf


def _li_float(x: da.Array, n_loop: int, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Li's iteration on a float image, one pass over the chunks per iteration."""
    shape = tuple(x.shape[:n_loop])
    flat = lo == hi
    gap = np.full(shape, np.inf)
    for frame, g in fold_blocks(x, n_loop, _block_min_gap):
        gap[frame] = min(gap[frame], g)
    tol = np.minimum(gap / 2, 1e-6 * (hi.astype(np.float64) - lo))
    t_curr = np.full(shape, np.nan)
    t_next = np.full(shape, -1.0)  # "mean of the image", from a first pass at t = -1
    active = ~flat
    first = True
    for _ in range(1000):
        if not active.any():
            break
        probe = np.where(active, t_next, np.nan)
        sums: dict[Frame, np.ndarray] = {}
        for frame, s in per_block(x, n_loop, _block_li_sums, lo, probe):
            if s is not None:
                sums[frame] = s if frame not in sums else sums[frame] + s
        for frame, (s_fg, n_fg, s_bg, n_bg) in sums.items():
            if first:
                t_curr[frame] = -2 * tol[frame]
                t_next[frame] = (s_fg + s_bg) / (n_fg + n_bg)
                continue
            t_curr[frame] = t_next[frame]
            mean_fore, mean_back = s_fg / n_fg, s_bg / max(n_bg, 1)
            if mean_back == 0:
                active[frame] = False
                continue
            t_next[frame] = (mean_back - mean_fore) / (np.log(mean_back) - np.log(mean_fore))
        first = False
        active &= np.abs(t_next - t_curr) > tol
    return np.where(flat, np.nan, t_next + lo)


def frame_thresholds(x: da.Array, n_loop: int, method: str) -> np.ndarray:
    """Threshold of each frame (NaN for a flat frame), as ``skimage.filters`` computes it.

    Parameters
    ----------
    x : dask.array.Array
        The image; the first ``n_loop`` axes are looped over (one threshold each).
    n_loop : int
        Number of leading ``t``/``c`` axes.
    method : {'otsu', 'yen', 'li', 'triangle'}
        The threshold method.
    """
    from skimage import filters

    if method not in METHODS:
        raise ValueError(f"unknown threshold method {method!r}")
    lo, hi = frame_range(x, n_loop)
    shape = tuple(x.shape[:n_loop])
    if method == "li" and not np.issubdtype(x.dtype, np.integer):
        return _li_float(x, n_loop, lo, hi)
    hists = frame_histograms(x, n_loop, lo, hi)
    funcs: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
        "otsu": lambda h, c: float(filters.threshold_otsu(hist=(h, c))),
        "yen": lambda h, c: float(filters.threshold_yen(hist=(h, c))),
        "li": _li_from_histogram,
        "triangle": triangle_from_histogram,
    }
    out = np.full(shape, np.nan)
    for frame, (counts, centers) in hists.items():
        out[frame] = funcs[method](counts, centers)
    return out


# --- order statistics ---------------------------------------------------------------------


def _bin_index(v: np.ndarray, a: float, b: float) -> np.ndarray:
    """Bin of each value among :data:`NARROW_BINS` over ``[a, b]`` (clipped to the ends)."""
    if b <= a:
        return np.zeros(v.shape, dtype=np.int64)
    idx = np.floor((v - a) * (NARROW_BINS / (b - a)))
    return np.clip(idx, 0, NARROW_BINS - 1).astype(np.int64)


def _selected(v: np.ndarray, path: Sequence[tuple[float, float, int]]) -> np.ndarray:
    """Return the values of ``v`` (float64) in the chosen bin at every narrowing level."""
    for a, b, k in path:
        v = v[_bin_index(v, a, b) == k]
    return v


def _block_level(
    block: np.ndarray,
    frame: Frame,
    want: Frame,
    path: Sequence[tuple[float, float, int]],
    rng: tuple[float, float] | None,
    below: np.ndarray | None,
) -> Any:
    """One narrowing pass on one block: the histogram of the selection (or the selection)."""
    if frame != want:
        return None
    v = block.ravel()
    if below is not None:
        v = v[v <= below[frame]]
    v = _selected(v.astype(np.float64), path)
    if rng is None:
        return v
    if v.size == 0:
        return np.zeros(NARROW_BINS, dtype=np.int64), np.inf, -np.inf
    return np.bincount(_bin_index(v, *rng), minlength=NARROW_BINS), v.min(), v.max()


def _range_below(x: da.Array, n_loop: int, below: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    shape = tuple(x.shape[:n_loop])
    lo, hi = np.full(shape, np.inf), np.full(shape, -np.inf)
    for frame, r in fold_blocks(x, n_loop, _block_range_below, below):
        if r is not None:
            lo[frame] = min(lo[frame], float(r[0]))
            hi[frame] = max(hi[frame], float(r[1]))
    return lo, hi


def _block_range_below(block: np.ndarray, frame: Frame, below: np.ndarray) -> Any:
    v = block[block <= below[frame]]
    return (v.min(), v.max()) if v.size else None


def _one_rank(
    x: da.Array, n_loop: int, frame: Frame, rank: int, a: float, b: float, below: Any
) -> float:
    """Return the value of the given rank among the (selected) pixels of one frame."""
    path: list[tuple[float, float, int]] = []
    while True:
        counts = np.zeros(NARROW_BINS, dtype=np.int64)
        mn, mx = np.inf, -np.inf
        for _, r in fold_blocks(x, n_loop, _block_level, frame, path, (a, b), below):
            if r is not None:
                counts += r[0]
                mn, mx = min(mn, r[1]), max(mx, r[2])
        if mn == mx:
            return float(mn)
        if int(counts.sum()) <= COLLECT_LIMIT:
            break
        cum = np.cumsum(counts)
        k = int(np.searchsorted(cum, rank, side="right"))
        rank -= int(cum[k - 1]) if k else 0
        path.append((a, b, k))
        a, b = a + (b - a) * k / NARROW_BINS, a + (b - a) * (k + 1) / NARROW_BINS
    parts = [r for _, r in per_block(x, n_loop, _block_level, frame, path, None, below)]
    values = np.concatenate([p for p in parts if p is not None])
    return float(np.partition(values, rank)[rank])


def frame_order_statistics(
    x: da.Array, n_loop: int, ranks: dict[Frame, list[int]], below: np.ndarray | None = None
) -> dict[Frame, list[float]]:
    """Return exact order statistics of each frame (0-based ranks in the sorted pixels).

    Parameters
    ----------
    x : dask.array.Array
        The image.
    n_loop : int
        Number of leading loop axes.
    ranks : dict
        Per frame, the ranks wanted.
    below : numpy.ndarray, optional
        Per frame, only pixels ``<= below[frame]`` count (as ``arr[arr <= t]``).
    """
    lo, hi = frame_range(x, n_loop) if below is None else _range_below(x, n_loop, below)
    return {
        frame: [
            _one_rank(x, n_loop, frame, r, float(lo[frame]), float(hi[frame]), below)
            for r in wanted
        ]
        for frame, wanted in ranks.items()
    }


def _block_count_below(block: np.ndarray, frame: Frame, below: np.ndarray) -> int:
    return int(np.count_nonzero(block <= below[frame]))


def frame_medians_below(x: da.Array, n_loop: int, below: np.ndarray) -> np.ndarray:
    """``np.median(frame[frame <= below])`` of each frame, exactly (NaN where none is below)."""
    shape = tuple(x.shape[:n_loop])
    n = np.zeros(shape, dtype=np.int64)
    for frame, c in fold_blocks(x, n_loop, _block_count_below, below):
        n[frame] += c
    ranks = {f: sorted({(int(n[f]) - 1) // 2, int(n[f]) // 2}) for f in _frames(x, n_loop) if n[f]}
    stats = frame_order_statistics(x, n_loop, ranks, below)
    out = np.full(shape, np.nan)
    for frame, vals in stats.items():
        pair = [vals[0], vals[-1]]
        out[frame] = float(np.mean(np.asarray(pair, dtype=x.dtype)))  # as np.median does
    return out


def frame_percentiles(x: da.Array, n_loop: int, q: Sequence[float]) -> dict[Frame, list[float]]:
    """Return ``np.percentile(frame, q)`` (linear interpolation) of each frame, exactly.

    The two order statistics around each percentile are found exactly
    (:func:`frame_order_statistics`) and interpolated with numpy's formula.
    """
    n = int(np.prod(x.shape[n_loop:]))
    ranks: dict[Frame, list[int]] = {}
    fracs = []
    for p in q:
        pos = p / 100.0 * (n - 1)
        k = int(np.floor(pos))
        fracs.append((k, min(k + 1, n - 1), pos - k))
    for frame in _frames(x, n_loop):
        ranks[frame] = sorted({r for k, k1, _ in fracs for r in (k, k1)})
    stats = frame_order_statistics(x, n_loop, ranks)
    out = {}
    for frame, vals in stats.items():
        by_rank = dict(zip(ranks[frame], vals, strict=True))
        res = []
        for k, k1, f in fracs:
            a, b = by_rank[k], by_rank[k1]
            # numpy's _lerp: a + (b - a) * t, from the other end when t >= 0.5; numpy
            # subtracts in the image's dtype (float32 rounds b - a)
            diff = float(np.subtract(b, a, dtype=x.dtype)) if x.dtype.kind == "f" else b - a
            res.append(float(b - diff * (1 - f)) if f >= 0.5 else float(a + diff * f))
        out[frame] = res
    return out
