"""The automatic ``minmass``'s noise numbers for 8- and 16-bit movies, from one histogram pass.

``track._auto_minmass`` measures, on the sampled frames, the noise level
``sigma`` (the median over the frames of ``1.4826 * MAD`` of the x
differences divided by the square root of two) and the median grey level of
the first frame. Order statistics of a movie larger than memory take about
ten narrowing passes each (:func:`~napari_fbias.ops.chunk_stats.frame_order_statistics`):
28 passes over the sampled frames at 3 x 16384^2, most of chunk-wise spot
tracking's time.

For integer frames of at most 16 bits the differences are integers between
``-(levels - 1)`` and ``levels - 1``, so one pass that counts them (one bin
per value, 1 MiB per 16-bit frame) and counts the first frame's grey levels
gives every number exactly:

* the median of the differences: the values at the two middle ranks of the
  counts, divided by the square root of two and averaged, as ``np.median``
  does on the divided differences;
* the MAD: the distances ``|d - median|`` of the distinct differences (the
  same float operations numpy applies to each pixel), ordered, with their
  counts; the median of that weighted sample;
* the level: the median of the grey-level counts.

``tests/test_ops_spot_noise.py`` checks them against numpy, bit for bit.
Floating-point and 32-bit frames keep the order-statistics passes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_fbias.ops.chunk_stats import fold_blocks

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["at_ranks", "countable", "counted_noise", "median_of_counts", "noise_from_counts"]

#: Largest integer item size (bytes) whose values are counted one bin per value.
MAX_ITEMSIZE = 2
_ROOT2 = math.sqrt(2.0)


def countable(dtype: np.dtype) -> bool:
    """Whether frames of ``dtype`` are counted (integers of at most 16 bits)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "iu" and dtype.itemsize <= MAX_ITEMSIZE


def at_ranks(values: np.ndarray, counts: np.ndarray, ranks: Sequence[int]) -> np.ndarray:
    """Return the values at 0-based ``ranks`` of a sample given by its counts.

    The sample holds ``counts[i]`` times ``values[i]``; ``values`` are sorted.
    """
    cum = np.cumsum(counts)
    return values[np.searchsorted(cum, np.asarray(ranks), side="right")]


def median_of_counts(values: np.ndarray, counts: np.ndarray) -> float:
    """``np.median`` of the sample holding ``counts[i]`` times ``values[i]`` (values sorted)."""
    n = int(np.sum(counts))
    pair = at_ranks(values, counts, [(n - 1) // 2, n // 2])
    return float(np.mean(pair))  # np.median averages the middle pair the same way


def noise_from_counts(diffs: np.ndarray, levels: int) -> float:
    """``track._noise_sigma`` of a frame from the counts of its integer x differences.

    ``diffs[j]`` counts the difference ``j - (levels - 1)``.
    """
    seen = np.flatnonzero(diffs)
    counts = diffs[seen]
    d = (seen - (levels - 1)).astype(np.float64) / _ROOT2  # as np.diff(...) / sqrt(2)
    med = median_of_counts(d, counts)
    dev = np.abs(d - med)
    order = np.argsort(dev, kind="stable")
    return float(1.4826 * median_of_counts(dev[order], counts[order]))


def _block_diffs(block: np.ndarray, frame: tuple[int, ...], levels: int) -> np.ndarray:
    return np.bincount(block.ravel().astype(np.int64) + (levels - 1), minlength=2 * levels - 1)


def _block_values(
    block: np.ndarray, frame: tuple[int, ...], lowest: int, levels: int
) -> np.ndarray:
    return np.bincount(block.ravel().astype(np.int64) - lowest, minlength=levels)


def counted_noise(frames: da.Array) -> tuple[np.ndarray, float]:
    """Noise ``sigma`` of each frame and the first frame's median, from counts (module docstring).

    Parameters
    ----------
    frames : dask.array.Array
        The prepared sampled frames, time first, of a :func:`countable` type.

    Returns
    -------
    (numpy.ndarray, float)
        ``sigma`` per frame (zeros for frames one pixel wide, as in memory)
        and the median grey level of the first frame.
    """
    info = np.iinfo(frames.dtype)
    levels = int(info.max) - int(info.min) + 1
    n_t = int(frames.shape[0])
    sigma = np.zeros(n_t)
    if frames.shape[-1] > 1:
        right = frames[..., 1:]
        d = right.astype(np.int32) - frames[..., :-1].astype(np.int32)
        d = d.rechunk(right.chunks)  # not the pieces one pixel wide the shift cuts at each seam
        hists = np.zeros((n_t, 2 * levels - 1), np.int64)
        for (t,), h in fold_blocks(d, 1, _block_diffs, levels):
            hists[t] += h
        sigma = np.array([noise_from_counts(h, levels) for h in hists])
    values = np.zeros(levels, np.int64)
    for _, h in fold_blocks(frames[:1], 1, _block_values, int(info.min), levels):
        values += h
    seen = np.flatnonzero(values)
    level = median_of_counts(seen + int(info.min), values[seen])
    return sigma, level
