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

import numpy as np

__all__ = [
    "NoiseCounts",
    "at_ranks",
    "block_counts",
    "countable",
    "median_of_counts",
    "noise_from_counts",
]

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


def block_counts(rows: np.ndarray, core_width: int, first: bool) -> dict[str, np.ndarray]:
    """Count one block's x differences and (``first``: of the first sampled frame) grey levels.

    ``rows`` are the block's pixels and, where the frame goes on to the
    right, the column after them: each difference between two neighbours is
    counted by the block holding its left pixel. ``core_width`` is the
    block's own width (grey levels are counted on it). ``diffs[j]`` counts the
    difference ``j - (levels - 1)``; ``values[j]`` the level ``lowest + j``.
    """
    levels, lowest = _levels(rows.dtype)
    out: dict[str, np.ndarray] = {}
    if rows.shape[-1] > 1:
        d = np.diff(rows.astype(np.int32), axis=-1)
        out["diffs"] = np.bincount(d.ravel() + (levels - 1), minlength=2 * levels - 1)
    if first:
        core = rows[..., :core_width].ravel().astype(np.int64) - lowest
        out["values"] = np.bincount(core, minlength=levels)
    return out


def _levels(dtype: np.dtype) -> tuple[int, int]:
    info = np.iinfo(dtype)
    return int(info.max) - int(info.min) + 1, int(info.min)


class NoiseCounts:
    """The counts of the sampled frames, folded block by block (:func:`block_counts`).

    Parameters
    ----------
    dtype : numpy.dtype
        The prepared frames' type (:func:`countable`).
    n_frames : int
        The number of sampled frames; the first one's grey levels are counted.
    """

    def __init__(self, dtype: np.dtype, n_frames: int) -> None:
        self.levels, self.lowest = _levels(np.dtype(dtype))
        self.diffs = np.zeros((n_frames, 2 * self.levels - 1), np.int64)
        self.values = np.zeros(self.levels, np.int64)

    def add(self, frame: int, counts: dict[str, np.ndarray]) -> None:
        """Add one block's counts of sampled frame ``frame`` (0: the first)."""
        if "diffs" in counts:
            self.diffs[frame] += counts["diffs"]
        if "values" in counts:
            self.values += counts["values"]

    def result(self) -> tuple[np.ndarray, float]:
        """``sigma`` per frame (0 for frames one pixel wide, as in memory), the first's median."""
        sigma = np.array(
            [noise_from_counts(h, self.levels) if h.any() else 0.0 for h in self.diffs]
        )
        seen = np.flatnonzero(self.values)
        return sigma, median_of_counts(seen + self.lowest, self.values[seen])
