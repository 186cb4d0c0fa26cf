"""``track.locate_spots`` and ``track.track_spots`` chunk-wise: trackpy on blocks with a halo.

trackpy's ``locate`` (Crocker-Grier) is local except for four numbers of the
whole frame, so each frame is processed in spatial blocks with a halo
(:func:`~napari_fbias.ops.chunk_stitch.with_halo`) after reduction passes
give those numbers:

* the maximum of the band-passed frame, which scales it to integers
  (``preprocessing.convert_to_int``: ``scale = dtype max / max``);
* the ``percentile`` threshold of the local maxima: ``np.percentile`` of the
  non-zero pixels of the *scaled* frame (one histogram pass for 8/16-bit
  scaled images, else exact order statistics,
  :func:`~napari_fbias.ops.chunk_stats.frame_order_statistics`);
* the background mean and standard deviation of the raw frame outside the
  dilated spots (``uncertainty.measure_noise``), which set ``ep``;
* the operation's own whole-frame settings: the NaN fill (median) and the
  ``invert`` maximum of :func:`~napari_fbias.ops.track._prepare_frame`, and
  the automatic ``diameter`` and ``minmass`` (below).

Each block then runs trackpy's own steps (``bandpass``, the grey-dilation
maxima of ``find.grey_dilation`` with the frame's threshold, ``refine_com``,
``where_close``) with those numbers, and keeps a spot when its position,
rounded to the nearest pixel, lies in the block's core; positions are shifted
to the frame. Linking (``track.track_spots``) runs on the whole spots table,
as in memory (:func:`~napari_fbias.ops.track.link_spots`).

The halo (:func:`halo_for`) covers, per axis: the reach of the final
``where_close`` (``separation``), the refinement's walk (at most one pixel
per iteration, :data:`MAX_ITERATIONS`, plus the spot radius), the grey
dilation's box and the exclusion margin, and the band-pass kernels
(Gaussian ``4 noise_size``, boxcar ``diameter``): every spot that can be kept,
and every spot close enough to drop it, is found from the same pixels as in
memory.

Automatic settings are resolved once per movie, from the same sampled
frames as in memory (first, middle, last): ``minmass`` from the exact median
and MAD of the frames' x differences and the first frame's median (one
counting pass for frames of at most 16 bits, :mod:`.spot_noise`; exact
order statistics otherwise), then trackpy on the same seeded noise image
(:func:`~napari_fbias.ops.track._minmass_for_noise`); ``diameter`` from the
sampled frames, each whole when it has at most
:data:`~napari_fbias.ops.chunk_stitch.AUTO_FULL_PIXELS` pixels (then equal to
in memory), otherwise a sample of tiles over it of that size
(:func:`~napari_fbias.ops.chunk_stitch.frame_view`).

Exactness, measured against the in-memory operation
(``tests/test_chunked_spots.py``, and six noise seeds of its border movie):

* integer images: the same spots; ``mass``, ``size``, ``ecc``, ``signal``,
  ``raw_mass`` bit for bit; positions within 3e-14 px (the block origin is
  added after refinement: floating-point rounding); ``ep`` within 1e-12
  relative (the background's mean and standard deviation are combined from
  per-block sums, not numpy's one pass); ``track.track_spots`` gives the
  same track ids.
* float32 images: the same, except ``ep`` within 2e-7 relative: numpy
  averages a float32 background in float32, the blocks in float64.
* float64 images: the same spots, but a spot can move by up to 2e-4 px and
  its ``mass``/``size`` change by up to 5e-4, ``signal`` by one grey level
  (4e-3). Exact equality is impossible here: trackpy's boxcar
  (``scipy.ndimage.uniform_filter1d``) is a running sum along each line, so
  the background it subtracts carries rounding (1e-16 relative) from the
  start of the line -- the frame's edge in memory, the block's edge here;
  trackpy then scales float images to 255 grey levels (``convert_to_int``),
  and a pixel lying on a level boundary lands one level apart. (A float32
  image is filtered in float32, whose rounding hides the difference.)

Settings that ``trackpy.locate`` computes on the whole frame but the
operation does not expose (``topn``) need no pass here.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from napari_fbias.ops.registry import register_chunked
from napari_fbias.ops.spot_noise import at_ranks
from napari_fbias.ops.track import (
    _feature_columns,
    _locate_kwargs,
    _minmass_for_noise,
    _movie_layout,
    _split_spacing,
    _spots_table,
)

if TYPE_CHECKING:
    import dask.array as da
    import pandas as pd

__all__ = ["MAX_ITERATIONS", "halo_for", "locate_spots_chunks", "track_spots_chunks"]

#: trackpy ``locate``'s refinement iterations (its default, which the operation uses).
MAX_ITERATIONS = 10

OP = "track.locate_spots"


# --- settings ---------------------------------------------------------------------------


class _Geometry:
    """trackpy's per-axis sizes for one set of ``locate`` keywords (as ``locate`` sets them)."""

    def __init__(self, kwargs: Mapping[str, Any], ndim: int) -> None:
        from trackpy.utils import validate_tuple

        self.ndim = ndim
        self.diameter = tuple(int(d) for d in validate_tuple(kwargs["diameter"], ndim))
        self.radius = tuple(d // 2 for d in self.diameter)
        sep = kwargs.get("separation")
        self.separation = (
            tuple(d + 1 for d in self.diameter) if sep is None else validate_tuple(sep, ndim)
        )
        self.smoothing = self.diameter
        self.noise_size = validate_tuple(kwargs["noise_size"], ndim)
        self.percentile = float(kwargs["percentile"])
        self.maxsize = kwargs.get("maxsize")
        self.margin = tuple(
            max(r, s // 2 - 1, m // 2)
            for r, s, m in zip(self.radius, self.separation, self.smoothing, strict=True)
        )
        self.box = [int(2 * s / np.sqrt(ndim)) for s in self.separation]

    def bandpass_reach(self) -> int:
        """Pixels from a block edge where the band-passed image is still wrong."""
        gauss = max(int(4.0 * n + 0.5) for n in self.noise_size)  # trackpy's truncate=4
        return max(gauss, max(self.smoothing) // 2) + 1


def halo_for(kwargs: Mapping[str, Any], ndim: int) -> int:
    """Halo (pixels, every axis) that makes each block's spots those of the whole frame.

    A kept spot, or one close enough to drop it (``separation``), ends up at
    most ``MAX_ITERATIONS - 1 + radius`` pixels from the maximum it started
    from; that maximum must be found (dilation box, margin) and refined
    (radius) on correctly band-passed pixels.
    """
    return _halo(_Geometry(kwargs, ndim))


def _halo(g: _Geometry) -> int:
    walk = MAX_ITERATIONS - 1 + max(g.radius)
    reach = math.ceil(max(g.separation)) + 1 + walk  # where a relevant maximum can start
    bp = g.bandpass_reach()
    need = max(max(g.margin) + 1, max(g.box) // 2 + 1 + bp, walk + bp)
    return int(reach + need)


# --- frames ---------------------------------------------------------------------------------


class _Prepare:
    """``track._prepare_frame`` with the frame's NaN fill and maximum computed beforehand."""

    def __init__(self, dtype: np.dtype, fill: np.ndarray, top: np.ndarray, invert: bool) -> None:
        self.dtype = dtype
        self.fill = fill
        self.top = top
        self.invert = invert
        probe = np.zeros(1, dtype)
        if dtype.kind == "f":  # np.where(nan, np.nanmedian(frame), frame) keeps this type
            self.fill_type = np.where(probe > 0, np.nanmedian(probe), probe).dtype
        else:
            self.fill_type = dtype

    def __call__(self, block: np.ndarray, t: int) -> np.ndarray:
        if block.dtype == bool:
            block = block.astype(np.uint8)
        if block.dtype.kind == "f" and not np.isnan(self.fill[t]):
            block = np.where(np.isnan(block), self.fill_type.type(self.fill[t]), block)
        if self.invert:
            block = np.asarray(self.top[t], dtype=block.dtype) - block
        return block


def _block_nan_stats(block: np.ndarray, frame: tuple[int, ...]) -> tuple[int, float, int]:
    nan = np.isnan(block)
    n_nan = int(nan.sum())
    top = float(np.max(block[~nan])) if n_nan < block.size else -np.inf
    return n_nan, top, block.size


def _prepare_for(x: da.Array, invert: bool) -> _Prepare:
    """Reduction passes for the NaN fill and the maximum of every frame (``x``: t first)."""
    from napari_fbias.ops.chunk_stats import frame_medians_below, frame_range, per_block

    n_t = int(x.shape[0])
    dtype = np.dtype(np.uint8) if x.dtype == bool else np.dtype(x.dtype)
    fill = np.full(n_t, np.nan)
    top = np.zeros(n_t)
    if dtype.kind == "f":
        n_nan = np.zeros(n_t, np.int64)
        size = np.zeros(n_t, np.int64)
        top[:] = -np.inf
        for (t,), (k, hi, n) in per_block(x, 1, _block_nan_stats):
            n_nan[t] += k
            size[t] += n
            top[t] = max(top[t], hi)
        if (n_nan == size).any():
            t = int(np.flatnonzero(n_nan == size)[0])
            raise ValueError(f"{OP}: frame t={t} of the image is all NaN (not-a-number)")
        holed = np.flatnonzero(n_nan)
        if holed.size:
            below = np.full(holed.size, np.inf)
            fill[holed] = frame_medians_below(x[holed].rechunk({0: 1}), 1, below)
            top[holed] = np.maximum(top[holed], fill[holed])
    elif invert:
        top = frame_range(x.astype(dtype) if x.dtype == bool else x, 1)[1].astype(np.float64)
    return _Prepare(dtype, fill, top, invert)


def _prepared(x: da.Array, prep: _Prepare, frames: Sequence[int]) -> da.Array:
    """Return the prepared frames ``frames`` of ``x``, lazily."""
    sel = x[list(frames)].rechunk({0: 1})

    def run(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        t = frames[block_info[0]["chunk-location"][0]]
        return prep(block[0], t)[np.newaxis]

    out_type = prep.fill_type if prep.dtype.kind == "f" else prep.dtype
    return sel.map_blocks(run, dtype=out_type, meta=np.empty((0,) * sel.ndim, out_type))


# --- automatic settings ---------------------------------------------------------------------


def _auto_diameter(x: da.Array, prep: _Prepare, sample: list[int], sp: Any) -> int:
    """``locate_spots``' automatic diameter from the sampled frames (or tiles of them)."""
    from napari_fbias.ops.auto_scale import frames_diameter, spot_diameter_for
    from napari_fbias.ops.chunk_stitch import frame_view

    views = (prep(frame_view(x, (t,), 1), t) for t in sample)  # one sampled frame at a time
    return spot_diameter_for(frames_diameter(views, sp))


def _auto_minmass(x: da.Array, prep: _Prepare, sample: list[int], kwargs: dict[str, Any]) -> float:
    """``track._auto_minmass`` on the sampled frames, by exact reduction passes.

    Frames of at most 16 bits take one counting pass
    (:mod:`napari_fbias.ops.spot_noise`); others exact order statistics.
    """
    from napari_fbias.ops.chunk_stats import frame_medians_below
    from napari_fbias.ops.spot_noise import countable

    frames = _prepared(x, prep, sample)
    if countable(frames.dtype):
        sigma, level = _counted_noise(x, prep, sample, frames.dtype)
    else:
        inf = np.full(len(sample), np.inf)
        sigma = np.zeros(len(sample))
        if frames.shape[-1] > 1:
            d = (frames[..., 1:].astype(np.float64) - frames[..., :-1].astype(np.float64)) / (
                math.sqrt(2.0)
            )
            med = frame_medians_below(d, 1, inf)
            dev = abs(d - med.reshape((-1,) + (1,) * (d.ndim - 1)))
            sigma = 1.4826 * frame_medians_below(dev, 1, inf)
        level = float(frame_medians_below(frames[:1], 1, inf[:1])[0])
    s = float(np.median(sigma))
    if s <= 0:
        return 0.0
    return _minmass_for_noise(s, level, frames.shape[1:], frames.dtype, kwargs)


def _counted_noise(
    x: da.Array, prep: _Prepare, sample: list[int], dtype: np.dtype
) -> tuple[np.ndarray, float]:
    """Return the sampled frames' noise and the first one's median, from one counting pass.

    Blocks with a one-pixel halo read their own region, as the spots passes'
    do (not a rechunked graph of shifted arrays); each counts the differences
    whose left pixel it holds (:func:`~napari_fbias.ops.spot_noise.block_counts`).
    """
    from napari_fbias.ops.spot_noise import NoiseCounts

    counts = NoiseCounts(dtype, len(sample))
    which = {t: i for i, t in enumerate(sample)}
    blocks = _Blocks(x, 1, prep)
    for loc, part in blocks.run(_block_noise_counts, sample[0], frames=sample):
        counts.add(which[int(loc[0])], part)
        del part
    return counts.result()


def _block_noise_counts(
    raw: np.ndarray, loc: tuple[int, ...], blocks: _Blocks, first: int
) -> dict[str, np.ndarray]:
    from napari_fbias.ops.spot_noise import block_counts

    core = blocks.core_slices(loc)
    xs = core[-1]
    stop = min(xs.stop + 1, raw.shape[-1])  # the column right of the core, where there is one
    rows = raw[(*core[:-1], slice(xs.start, stop))]
    return block_counts(rows, xs.stop - xs.start, int(loc[0]) == first)


# --- the band-passed, scaled image ------------------------------------------------------------


def _bandpassed(raw: np.ndarray, g: _Geometry) -> np.ndarray:
    from trackpy.preprocessing import bandpass

    threshold = 1 if np.issubdtype(raw.dtype, np.integer) else 1 / 255.0
    return bandpass(raw, g.noise_size, g.smoothing, threshold)


def _int_type(raw_dtype: np.dtype) -> np.dtype:
    """Return the type ``locate`` converts the band-passed image to (uint8: float images)."""
    return np.dtype(raw_dtype) if np.issubdtype(raw_dtype, np.integer) else np.dtype(np.uint8)


def _scaled(bp: np.ndarray, scale: float, dtype: np.dtype) -> np.ndarray:
    return (scale * bp.clip(min=0.0)).astype(dtype)


class _Blocks:
    """One movie's blocks with a halo: prepared raw pixels of each extended block."""

    def __init__(self, x: da.Array, depth: int, prep: _Prepare) -> None:
        from napari_fbias.ops.chunk_stitch import with_halo

        cores, extended = with_halo([x], 1, depth)
        self.core = cores[0]
        self.extended = extended[0]
        self.depth = depth
        self.prep = prep
        self.starts = [np.cumsum((0, *c[:-1])) for c in self.core.chunks]

    def core_slices(self, loc: tuple[int, ...]) -> tuple[slice, ...]:
        from napari_fbias.ops.chunk_stitch import core_slice

        return tuple(
            core_slice(self.core.chunks, i, loc, self.depth) for i in range(1, self.core.ndim)
        )

    def origin(self, loc: tuple[int, ...]) -> np.ndarray:
        """Frame position of the extended block's first pixel."""
        sl = self.core_slices(loc)
        return np.array(
            [int(self.starts[i][loc[i]]) - sl[i - 1].start for i in range(1, self.core.ndim)]
        )

    def run(
        self, func: Callable[..., Any], *args: Any, frames: Sequence[int] | None = None
    ) -> Iterator[tuple[tuple[int, ...], Any]]:
        """Yield ``(loc, func(raw, loc, blocks, *args))`` for every extended block.

        In the blocks' raster order, batch after batch, not kept: the caller
        folds them (per-block histograms of a 16-bit scaled frame are 512 KiB
        each). ``frames``: only the blocks of these frames.
        """
        from napari_fbias.ops.chunk_stats import block_tasks, iter_batches

        delayed = block_tasks(self.extended)
        locs = list(np.ndindex(*delayed.shape))
        if frames is not None:
            wanted = set(frames)
            locs = [loc for loc in locs if loc[0] in wanted]
        calls = [(_on_block, func, delayed[loc], loc, self, *args) for loc in locs]
        for j, out in iter_batches(calls):
            yield locs[j], out


def _on_block(
    func: Callable[..., Any], block: np.ndarray, loc: tuple[int, ...], blocks: _Blocks, *args: Any
) -> Any:
    raw = blocks.prep(block[0], int(loc[0]))
    return func(raw, loc, blocks, *args)


def _block_max(raw: np.ndarray, loc: tuple[int, ...], blocks: _Blocks, g: _Geometry) -> float:
    return float(_bandpassed(raw, g)[blocks.core_slices(loc)].max())


def _block_stats(
    raw: np.ndarray,
    loc: tuple[int, ...],
    blocks: _Blocks,
    g: _Geometry,
    scale: np.ndarray,
    hist: bool,
) -> dict[str, Any]:
    """Non-zero pixels (histogram or count) of the scaled image; background sums of the raw one."""
    from scipy.ndimage import binary_dilation
    from trackpy.masks import binary_mask

    dtype = _int_type(raw.dtype)
    image = _scaled(_bandpassed(raw, g), scale[loc[0]], dtype)
    core = blocks.core_slices(loc)
    background = ~binary_dilation(image, structure=binary_mask(g.radius, image.ndim))
    values = raw[core][background[core]].astype(np.float64)
    mean = float(values.mean()) if values.size else 0.0
    out: dict[str, Any] = {
        "n_bg": int(values.size),
        "mean": mean,
        "m2": float(((values - mean) ** 2).sum()),
    }
    c = image[core]
    if hist:
        out["hist"] = np.bincount(c.ravel().astype(np.int64), minlength=np.iinfo(dtype).max + 1)
    else:
        out["n"] = int(np.count_nonzero(c))
    return out


class _Background:
    """Mean and standard deviation (``measure_noise``'s) folded from per-block sums (Chan et al.).

    Blocks are added in raster order, so the numbers do not depend on how
    the blocks were batched.
    """

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, part: Mapping[str, Any]) -> None:
        nb = part["n_bg"]
        if nb == 0:
            return
        delta = part["mean"] - self.mean
        total = self.n + nb
        self.mean += delta * nb / total
        self.m2 += part["m2"] + delta * delta * self.n * nb / total
        self.n = total

    def result(self) -> tuple[float, float]:
        if self.n == 0:
            return np.nan, np.nan
        if self.n == 1:
            return self.mean, np.nan
        return self.mean, math.sqrt(self.m2 / self.n)


def _lerp(a: float, b: float, f: float) -> float:
    """Interpolate as numpy's linear ``np.percentile`` (exact for integer images)."""
    diff = b - a
    return float(b - diff * (1 - f)) if f >= 0.5 else float(a + diff * f)


def _ranks(n: int, percentile: float) -> tuple[int, int, float]:
    pos = percentile / 100.0 * (n - 1)
    k = int(np.floor(pos))
    return k, min(k + 1, n - 1), pos - k


def _threshold_from_hist(counts: np.ndarray, percentile: float) -> float:
    """``np.percentile`` of the non-zero pixels, from the histogram of the scaled frame."""
    nz = counts.copy()
    nz[0] = 0
    n = int(nz.sum())
    if n == 0:
        return np.nan
    k, k1, f = _ranks(n, percentile)
    a, b = at_ranks(np.arange(nz.size, dtype=np.float64), nz, [k, k1])
    return _lerp(float(a), float(b), f)


def _thresholds_by_rank(
    blocks: _Blocks, g: _Geometry, scale: np.ndarray, counts: np.ndarray
) -> np.ndarray:
    """Return the percentile thresholds by exact order statistics (scaled types over 16 bits)."""
    from napari_fbias.ops.chunk_stats import frame_order_statistics

    def negated(block: np.ndarray, block_info: Any = None) -> np.ndarray:
        loc = tuple(block_info[0]["chunk-location"])
        raw = blocks.prep(block[0], int(loc[0]))
        image = _scaled(_bandpassed(raw, g), scale[loc[0]], _int_type(raw.dtype))
        return -image[blocks.core_slices(loc)].astype(np.float64)[np.newaxis]

    neg = blocks.extended.map_blocks(
        negated, chunks=blocks.core.chunks, dtype=np.float64, meta=np.empty((0,) * blocks.core.ndim)
    )
    ranks: dict[tuple[int, ...], list[int]] = {}
    wanted: dict[int, tuple[int, int, float]] = {}
    for t, n in enumerate(counts.tolist()):
        if n:  # rank r of the non-zero values ascending is rank n - 1 - r of their negatives
            k, k1, f = _ranks(int(n), g.percentile)
            wanted[t] = (k, k1, f)
            ranks[(t,)] = sorted({int(n) - 1 - k, int(n) - 1 - k1})
    stats = frame_order_statistics(neg, 1, ranks, np.full(len(counts), -0.5))
    out = np.full(len(counts), np.nan)
    for t, (k, k1, f) in wanted.items():
        by_rank = dict(zip(ranks[(t,)], stats[(t,)], strict=True))
        n = int(counts[t])
        out[t] = _lerp(-by_rank[n - 1 - k], -by_rank[n - 1 - k1], f)
    return out


# --- spots of one block --------------------------------------------------------------------------


def _block_spots(
    raw: np.ndarray,
    loc: tuple[int, ...],
    blocks: _Blocks,
    g: _Geometry,
    scale: np.ndarray,
    threshold: np.ndarray,
    noise: np.ndarray,
) -> pd.DataFrame | None:
    """``trackpy.locate`` (``minmass=-inf``) on one extended block with the frame's numbers.

    The steps and their order are ``locate``'s; the block keeps the spots
    whose rounded position lies in its core, in frame coordinates.
    """
    import pandas as pd
    from scipy import ndimage
    from trackpy.find import where_close
    from trackpy.masks import N_binary_mask
    from trackpy.refine import refine_com
    from trackpy.uncertainty import _static_error
    from trackpy.utils import default_pos_columns

    t = int(loc[0])
    if np.isnan(threshold[t]):  # "Image is completely black"
        return None
    image = _scaled(_bandpassed(raw, g), scale[t], _int_type(raw.dtype))
    # find.grey_dilation, with the frame's percentile threshold
    dilation = ndimage.grey_dilation(image, g.box, mode="constant")
    pos = np.vstack(np.where((image == dilation) & (image > threshold[t]))).T
    shape = np.array(image.shape)
    margin = np.array(g.margin)
    pos = pos[~np.any((pos < margin) | (pos > (shape - margin - 1)), 1)]
    if len(pos) == 0:
        return None
    refined = refine_com(raw, image, g.radius, pos, max_iterations=MAX_ITERATIONS)
    pos_cols = default_pos_columns(image.ndim)
    if np.all(np.greater(g.separation, 0)):
        drop = where_close(refined[pos_cols], g.separation, refined["mass"])
        refined = refined.drop(drop, axis=0).reset_index(drop=True)
    refined["mass"] /= scale[t]
    refined["signal"] /= scale[t]
    if g.maxsize is not None:
        refined = refined.loc[refined["size"] < g.maxsize].reset_index(drop=True)
    black, sigma = noise[t]
    mass = refined["raw_mass"].to_numpy() - N_binary_mask(g.radius, image.ndim) * black
    ep = _static_error(mass, sigma, g.radius, g.noise_size)
    if ep.ndim == 1:
        refined["ep"] = ep
    else:
        ep_df = pd.DataFrame(ep, columns=[f"ep_{c}" for c in pos_cols])
        refined = pd.concat([refined, ep_df], axis=1)
    origin = blocks.origin(loc)
    core = blocks.core_slices(loc)
    keep = np.ones(len(refined), bool)
    for k, c in enumerate(pos_cols):
        px = np.floor(refined[c].to_numpy() + 0.5)
        keep &= (px >= core[k].start) & (px < core[k].stop)
        refined[c] = refined[c] + origin[k]
    refined = refined.loc[keep]
    refined.insert(0, "t", np.int64(t))
    return refined


# --- strategies ------------------------------------------------------------------------------


class _Layout(NamedTuple):
    """What the spots of a movie were found with: their columns and physical sizes."""

    pos_cols: list[str]
    feature_cols: list[str]
    spacing: tuple[float, ...] | None
    frame_interval: float | None
    mass_min: float
    n_t: int


def _locate_chunked(data: da.Array, n_loop: int, params: Mapping[str, Any]) -> pd.DataFrame:
    """``track.locate_spots`` on a dask movie, frame by frame in blocks (module docstring)."""
    found: list[pd.DataFrame] = []
    lay = _located(data, n_loop, params, lambda _: found.append)
    return _spots_table(
        found, lay.pos_cols, lay.feature_cols, lay.spacing, lay.frame_interval, lay.mass_min
    )


def _located(
    data: da.Array,
    n_loop: int,
    params: Mapping[str, Any],
    sink: Callable[[_Layout], Callable[[pd.DataFrame], Any]],
) -> _Layout:
    """Find the spots of ``data``; give each block's (frames in order) to ``sink(layout)``."""
    from napari_fbias.ops.chosen import report_chosen
    from napari_fbias.ops.chunks import NotChunkable

    axes = str(params.get("axes") or "")
    has_t, n_sp = _movie_layout(data.ndim, axes, OP)
    if math.prod(data.shape) == 0:
        raise ValueError(f"{OP}: the image is empty (shape {tuple(data.shape)})")
    if np.dtype(data.dtype).kind not in "biuf":
        raise ValueError(f"{OP}: the image must hold numbers; got pixel type {data.dtype}")
    if has_t != bool(n_loop):
        raise NotChunkable(f"the movie's time axis is not the first of {data.ndim} axes")
    pos_cols = ["z", "y", "x"][-n_sp:]
    frame_interval, sp = _split_spacing(params.get("spacing"), axes, pos_cols, OP)
    x = data if has_t else data[np.newaxis]
    n_t = int(x.shape[0])
    invert = bool(params.get("invert", False))
    prep = _prepare_for(x, invert)
    sample = sorted({0, n_t // 2, n_t - 1})
    diameter = params.get("diameter")
    if diameter is None:
        diameter = _auto_diameter(x, prep, sample, sp)
        report_chosen("diameter", diameter)
    kwargs, anisotropic = _locate_kwargs(
        diameter,
        params.get("separation"),
        params["percentile"],
        params.get("noise_size", 1.0),
        params.get("max_size"),
        sp,
        n_sp,
        OP,
    )
    g = _Geometry(kwargs, n_sp)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="I am interpreting the image")
        warnings.filterwarnings("ignore", message="No maxima survived")
        warnings.filterwarnings("ignore", message="Image is completely black")
        warnings.filterwarnings("ignore", message="The inplace keyword", module="trackpy")
        minmass = params.get("minmass")
        if minmass is None:
            mass_min = _auto_minmass(x, prep, sample, kwargs)
            report_chosen("minmass", round(mass_min, 4))
        else:
            mass_min = float(minmass)
        feature_cols = _feature_columns(n_sp, anisotropic)
        lay = _Layout(pos_cols, feature_cols, sp, frame_interval, mass_min, n_t)
        _frame_spots(x, prep, g, mass_min, sink(lay))
    return lay


def _frame_spots(
    x: da.Array, prep: _Prepare, g: _Geometry, mass_min: float, keep: Callable[[pd.DataFrame], Any]
) -> None:
    """Every frame's spots above ``mass_min``: reduction passes, then blocks with a halo.

    Per-block results are folded as they come (maxima, background sums,
    histograms), and each block's spots are cut to ``mass_min`` at once and
    given to ``keep`` (frame after frame): what is held is the kept spots,
    not every candidate maximum.
    """
    n_t = int(x.shape[0])
    small = _Blocks(x, g.bandpass_reach() + max(g.radius), prep)
    top = np.full(n_t, -np.inf)
    for loc, m in small.run(_block_max, g):
        top[loc[0]] = max(top[loc[0]], m)
    dtype = _int_type(prep.dtype)
    scale = np.where(top == 0, 1.0, np.iinfo(dtype).max / np.where(top == 0, 1.0, top))
    hist = dtype.itemsize <= 2
    background = [_Background() for _ in range(n_t)]
    counts: list[Any] = [0] * n_t  # per frame: the histogram, or the number of non-zero pixels
    for loc, p in small.run(_block_stats, g, scale, hist):
        t = loc[0]
        background[t].add(p)
        if not hist:
            counts[t] += p["n"]
        elif isinstance(counts[t], np.ndarray):
            counts[t] += p["hist"]
        else:
            counts[t] = p["hist"]
        del p
    noise = np.array([b.result() for b in background])
    if hist:
        threshold = np.array(
            [
                _threshold_from_hist(c, g.percentile) if isinstance(c, np.ndarray) else np.nan
                for c in counts
            ]
        )
    else:
        threshold = _thresholds_by_rank(small, g, scale, np.array(counts))
    del counts
    big = _Blocks(x, _halo(g), prep)
    for _, s in big.run(_block_spots, g, scale, threshold, noise):
        if s is not None and len(s):
            s = s[s["mass"].to_numpy() > mass_min]
            if len(s):
                keep(s)


def locate_spots_chunks(
    call: Callable[..., Any], data: da.Array, n_loop: int, params: Mapping[str, Any]
) -> pd.DataFrame:
    """``track.locate_spots`` chunk-wise: the same spots table, frames processed in blocks.

    Parameters
    ----------
    call : callable
        Runs the operation on one array (not used: the blocks need the
        frame's numbers, which the operation computes itself).
    data : dask.array.Array
        The movie (``t`` first, chunks of one frame) or one frame.
    n_loop : int
        Number of axes before the spatial ones (1 with a time axis).
    params : mapping
        The step's settings, ``axes`` and ``spacing`` of the whole movie.

    Returns
    -------
    pandas.DataFrame
        The spots table, as in memory (see the module docstring for exactness).
    """
    return _locate_chunked(data, n_loop, params)


def track_spots_chunks(
    call: Callable[..., Any], data: da.Array, n_loop: int, params: Mapping[str, Any]
) -> Any:
    """``track.track_spots`` chunk-wise: spots found in blocks, linked as in memory.

    Parameters are those of :func:`locate_spots_chunks`; the spots are found
    with ``track_spots``' own settings (``noise_size`` 1, no ``max_size``,
    not inverted), then linked as by :func:`~napari_fbias.ops.track.link_spots`.
    The spots and tracks tables are kept on disk while they are made
    (:mod:`napari_fbias.ops.spot_tables`).

    Returns
    -------
    pandas.DataFrame or ColumnTable
        The tracks table, as in memory; a
        :class:`~napari_fbias.io.column_table.ColumnTable` when it is larger
        than the run's memory budget allows a table to be
        (:func:`~napari_fbias.ops.chunks.table_fits`).
    """
    from napari_fbias.ops.chunks import table_fits
    from napari_fbias.ops.link_tiles import link_sorted_in_tiles
    from napari_fbias.ops.spot_tables import SpotsOnDisk, tracks_on_disk
    from napari_fbias.ops.track import _check_link_params, _linker, report_tiles
    from napari_fbias.ops.track_features import empty_tracks

    link_op = "track.link_spots"
    _check_link_params(
        params["search_range"], params["memory"], params.get("adaptive_stop"), 0.95, link_op
    )
    locate = {
        "diameter": params.get("diameter"),
        "minmass": params.get("minmass"),
        "separation": params.get("separation"),
        "percentile": params["percentile"],
        "axes": params.get("axes", ""),
        "spacing": params.get("spacing"),
    }
    made: list[SpotsOnDisk] = []

    def sink(lay: _Layout) -> Callable[[pd.DataFrame], None]:
        made.append(SpotsOnDisk(lay.pos_cols, lay.feature_cols, "spots"))
        return made[0].add

    lay = _located(data, n_loop, locate, sink)
    spots, starts = made.pop().sorted(lay.n_t)
    if len(spots) == 0:
        return empty_tracks(
            lay.pos_cols, lay.feature_cols, spacing=lay.spacing, frame_interval=lay.frame_interval
        )
    link_one, reach = _linker(
        lay.pos_cols,
        search_range=params["search_range"],
        memory=params["memory"],
        adaptive_stop=params.get("adaptive_stop"),
        adaptive_step=0.95,
        spacing=lay.spacing,
        op=link_op,
    )
    first_row = report_tiles(link_sorted_in_tiles(spots, lay.pos_cols, link_one, reach, starts))
    tracks = tracks_on_disk(
        spots,
        first_row.particle,
        lay.pos_cols,
        lay.feature_cols,
        min_length=params["min_length"],
        spacing=lay.spacing,
        frame_interval=lay.frame_interval,
        name="tracks",
    )
    del spots, first_row
    if tracks is None:
        return empty_tracks(
            lay.pos_cols, lay.feature_cols, spacing=lay.spacing, frame_interval=lay.frame_interval
        )
    return tracks.to_pandas() if table_fits(tracks.nbytes) else tracks


register_chunked("track.locate_spots", locate_spots_chunks)
register_chunked("track.track_spots", track_spots_chunks)
