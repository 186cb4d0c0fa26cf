"""How large are the objects? The typical object diameter of an image, from scale space.

:func:`object_diameter` finds the scale at which the image's bright blobs
respond most to the scale-normalised Laplacian of Gaussian (a blob of
diameter ``d`` peaks at ``sigma = d / (2 sqrt 2)`` in 2D, ``d / (2 sqrt 3)`` in
3D). It works on the whole image at once, so that one number describes the
objects a recipe must handle:

1. the illumination is flattened (a quadratic surface fitted to the
   background, iteratively, is subtracted);
2. the share of the image covered by objects is estimated (pixels above half
   way between the median and the top of a lightly smoothed image), and sets
   which upper percentile of the filter response is followed across scales
   (the blob centres, not the whole image);
3. the response is computed at up to 36 scales from 1 to 32 pixels (larger
   scales on a subsampled image; none that smooths an axis by less than half a
   pixel), and the peak is refined between scales.

In 3D, the smoothing of each axis follows the voxel size, so that the scale
is isotropic in physical space; the diameter is given in pixels along the
finest axis and, with ``spacing``, in physical units.

Measured on generated images (discs of 6 to 60 pixels, 3 to 1000 objects,
uneven illumination): within 25 % of the true mean diameter unless the image
holds only a handful of objects smaller than 10 pixels
(``tests/test_ops_object_size.py``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from napari_fbias.ops.registry import register_op
from napari_fbias.ops.types import Image, Table

__all__ = ["TileSample", "flatten_background", "object_diameter", "object_size", "sample_tiles"]

#: Scales tried (in pixels along the finest axis): 1 to 32, geometric.
SCALES = np.geomspace(1.0, 32.0, 36)
#: Most pixels the background fit looks at.
FIT_PIXELS = 4096
#: Pixels per piece of the normalisation (float64 temporaries of that size only).
ROWS_PIXELS = 2**18
#: Most pixels of a :class:`TileSample` its normalisation bounds are taken from (a subsample,
#: of at most one tile's pixels too).
BOUND_PIXELS = 2**20
#: Stride (per axis) of the subsample of a :class:`TileSample`'s smoothed tiles that gives the
#: median and the covered share.
COVER_STEP = 4
#: Most bytes the pooled top responses of the scales measured together on a
#: :class:`TileSample` hold (more scales: more passes over its tiles).
POOL_BYTES = 16 * 2**20


def _fit_step(shape: Sequence[int]) -> int:
    """Stride of the regular subsample (at most ~:data:`FIT_PIXELS`) the background fit sees."""
    return max(1, math.ceil((math.prod(shape) / FIT_PIXELS) ** (1.0 / len(shape))))


def _terms(coords: Sequence[np.ndarray]) -> list[np.ndarray]:
    out = [np.ones_like(coords[0])]
    out += list(coords)
    out += [a * b for i, a in enumerate(coords) for b in coords[i:]]
    return out


def _background_coef(sub: np.ndarray) -> np.ndarray:
    """Coefficients of the quadratic background fitted to ``sub`` (the fit's subsample)."""
    grids = np.meshgrid(*(np.linspace(0.0, 1.0, n) for n in sub.shape), indexing="ij")
    design = np.stack([t.ravel() for t in _terms(grids)], axis=1)
    values = sub.ravel()
    keep = np.ones(values.size, bool)
    coef = np.zeros(design.shape[1])
    for _ in range(4):  # refit on the pixels below the fit: the background, not the objects
        coef, *_ = np.linalg.lstsq(design[keep], values[keep], rcond=None)
        residual = values - design @ coef
        keep = residual <= np.median(residual[keep])
    return coef


def _subtract_background(
    out: np.ndarray,
    coef: np.ndarray,
    shape: Sequence[int],
    region: Sequence[slice] | None = None,
) -> np.ndarray:
    """Subtract, in place, the background ``coef`` of an image of ``shape`` from ``out``.

    ``out`` holds the pixels ``region`` (slices, steps allowed) of that image:
    all of it by default.
    """
    axes = [np.linspace(0.0, 1.0, n) for n in shape]
    if region is not None:
        axes = [a[r] for a, r in zip(axes, region, strict=True)]
    full = np.meshgrid(*axes, indexing="ij", sparse=True)
    for c, t in zip(coef, _terms(full), strict=True):  # term by term: no full-size temporaries
        out -= np.float32(c) * t.astype(np.float32)
    return out


def flatten_background(image: np.ndarray) -> np.ndarray:
    """Return ``image`` minus a smooth (quadratic) background fitted to its darker pixels."""
    im = np.asarray(image, dtype=np.float32)
    # the fit sees at most ~4096 pixels (a regular subsample): the background is smooth
    step = _fit_step(im.shape)
    coef = _background_coef(im[tuple(slice(None, None, step) for _ in im.shape)])
    return _subtract_background(im.copy(), coef, im.shape)


def _laplacian(im: np.ndarray, sigma: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """Return the Laplacian of Gaussian in physical space.

    Each axis's second derivative is weighted by ``ratio**2`` (its pixel size
    relative to the finest), so that a coarse z counts as it should.
    """
    if np.all(ratio == 1):
        return ndi.gaussian_laplace(im, sigma)
    out = np.zeros_like(im)
    for axis in range(im.ndim):  # float32 in, float32 out
        order = [0] * im.ndim
        order[axis] = 2
        out += ratio[axis] ** 2 * ndi.gaussian_filter(im, sigma, order=order)
    return out


def _covered_fraction(im: np.ndarray) -> float:
    smooth = ndi.gaussian_filter(im, 2.0)
    low, top = float(np.median(smooth)), float(np.percentile(smooth, 99.99))
    if top <= low:
        return 0.0
    return float(np.mean(smooth > (low + top) / 2))


def _normalized(im: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``clip((im - lo) / (hi - lo), 0, 1)`` in float32, a few rows at a time.

    The same values as computing it whole (in float64, ``lo`` and ``hi`` being
    float64) then casting, without the float64 temporaries of the whole image.
    """
    out = np.empty(im.shape, np.float32)
    rows = max(1, ROWS_PIXELS // max(1, math.prod(im.shape[1:])))
    for a in range(0, im.shape[0], rows):
        out[a : a + rows] = np.clip((im[a : a + rows] - lo) / (hi - lo), 0.0, 1.0)
    return out


class TileSample(np.ndarray):
    """A sample of a large image: tiles of it laid side by side, with their places (``tiles``).

    ``tiles`` holds one box (a tuple of slices) per tile, in the sample's
    coordinates; the pixels between them (gaps) are not the image's.
    :func:`object_diameter` measures such a sample tile by tile
    (:func:`_tiled_responses`), never the whole of it in floats. Elementwise
    results of the same shape keep the boxes; anything else drops them.
    """

    tiles: tuple[tuple[slice, ...], ...] | None

    def __new__(cls, array: np.ndarray, tiles: Sequence[tuple[slice, ...]]) -> TileSample:
        """Wrap ``array`` (not copied) with the tiles' boxes."""
        obj = np.asarray(array).view(cls)
        obj.tiles = tuple(tuple(b) for b in tiles)
        return obj

    def __array_finalize__(self, obj: Any) -> None:
        tiles = getattr(obj, "tiles", None)
        same = tiles is not None and getattr(obj, "shape", None) == self.shape
        self.tiles = tiles if same else None


def sample_tiles(image: Any) -> tuple[tuple[slice, ...], ...] | None:
    """Return the tiles' boxes of a :class:`TileSample`; None for any other image."""
    tiles = getattr(image, "tiles", None)
    return tiles if isinstance(image, TileSample) and tiles else None


class _TopPool:
    """The ``q``-th percentile (numpy's "linear") of ``n`` values given piece by piece.

    Only the values that can be the two order statistics it interpolates
    between are kept: the ``n - floor(q (n - 1) / 100)`` largest.
    """

    def __init__(self, q: float, n: int) -> None:
        index = q / 100.0 * (n - 1)
        self.lower = int(math.floor(index))
        self.frac = index - self.lower
        self.keep = n - self.lower
        self.top = np.empty(0, np.float32)

    def add(self, values: np.ndarray) -> None:
        v = np.asarray(values, np.float32).ravel()
        if self.top.size >= self.keep:
            v = v[v >= self.top[0]]  # top[0]: the smallest kept
        if v.size == 0:
            return
        both = np.concatenate([self.top, v])
        if both.size > self.keep:
            both = np.partition(both, both.size - self.keep)[both.size - self.keep :]
        self.top = np.sort(both)

    @property
    def nbytes(self) -> int:
        return 4 * self.keep

    def value(self) -> float:
        a = float(self.top[0])
        b = float(self.top[1]) if self.top.size > 1 else a
        return a + (b - a) * self.frac


def _whole_responses(
    im: np.ndarray, scales: np.ndarray, ratio: np.ndarray
) -> tuple[list[float], float, float]:
    """Return the responses of :func:`object_diameter`, the covered share and the percentile."""
    covered = _covered_fraction(im)
    q = float(np.clip(100.0 * (1.0 - covered / 4.0), 90.0, 99.99))
    response = []
    for s in scales:
        factor = max(1, int(s // 4))  # larger scales on a subsampled image: same result, faster
        sub = im[tuple(slice(None, None, factor) for _ in range(im.ndim))]
        sigma = s * ratio / factor
        r = -((s / factor) ** 2) * _laplacian(sub, sigma, ratio)
        response.append(float(np.percentile(r, q)))
    return response, covered, q


def _tiled_responses(
    raw: np.ndarray,
    tiles: Sequence[tuple[slice, ...]],
    scales: np.ndarray,
    ratio: np.ndarray,
) -> tuple[list[float], float, float]:
    """Return :func:`_whole_responses` of a :class:`TileSample`, measured tile by tile.

    As on the whole sample, but the pixels between the tiles do not count
    and no float image of the whole sample is made: the normalisation bounds
    (a subsample) and the background (one quadratic, fitted to the sample's
    subsample) are the sample's, the filters run on each tile (its own
    borders), and the statistics pool the tiles: the covered share and the
    median from a subsample of the smoothed tiles, the percentiles of the
    responses exactly (:class:`_TopPool`). Held at once: one tile in floats,
    its filters, and the pooled top values (at most :data:`POOL_BYTES` for
    the scales measured together).
    """
    most = min(BOUND_PIXELS, max(math.prod(b.stop - b.start for b in box) for box in tiles))
    step = max(1, math.ceil((raw.size / most) ** (1.0 / raw.ndim)))  # at most one tile's pixels
    probe = raw[tuple(slice(None, None, step) for _ in raw.shape)].astype(np.float32)
    lo, hi = (float(v) for v in np.percentile(probe, (1, 99.9)))
    del probe
    if not hi > lo:
        raise ValueError("object size: the image holds no contrast (all pixels alike)")
    fit = _fit_step(raw.shape)
    coef = _background_coef(
        _normalized(raw[tuple(slice(None, None, fit) for _ in raw.shape)], lo, hi)
    )

    def tile(box: tuple[slice, ...]) -> np.ndarray:
        return _subtract_background(_normalized(raw[box], lo, hi), coef, raw.shape, box)

    # the share covered by objects: median and top of the smoothed tiles
    n = sum(math.prod(b.stop - b.start for b in box) for box in tiles)
    top = _TopPool(99.99, n)
    probes = []
    for box in tiles:
        smooth = ndi.gaussian_filter(tile(box), 2.0)
        top.add(smooth)
        probes.append(smooth[tuple(slice(None, None, COVER_STEP) for _ in box)].ravel())
        del smooth
    probe = np.concatenate(probes)
    del probes
    low, high = float(np.median(probe)), top.value()
    covered = float(np.mean(probe > (low + high) / 2)) if high > low else 0.0
    del probe
    q = float(np.clip(100.0 * (1.0 - covered / 4.0), 90.0, 99.99))

    def sizes(factor: int) -> int:
        return sum(math.prod(len(range(b.start, b.stop, factor)) for b in box) for box in tiles)

    pools = [_TopPool(q, sizes(max(1, int(s // 4)))) for s in scales]
    response = []
    i = 0
    while i < len(scales):  # the scales whose pooled values fit together, one pass over the tiles
        j = i + 1
        held = pools[i].nbytes
        while j < len(scales) and held + pools[j].nbytes <= POOL_BYTES:
            held += pools[j].nbytes
            j += 1
        for box in tiles:
            im = tile(box)
            for s, pool in zip(scales[i:j], pools[i:j], strict=True):
                factor = max(1, int(s // 4))
                sub = im[tuple(slice(None, None, factor) for _ in range(im.ndim))]
                r = _laplacian(sub, s * ratio / factor, ratio)
                r *= -((s / factor) ** 2)
                pool.add(r)
                del r
            del im
        response += [pool.value() for pool in pools[i:j]]
        for k in range(i, j):
            pools[k] = None  # type: ignore[call-overload]
        i = j
    return response, covered, q


def object_diameter(
    image: Any, spacing: Sequence[float] | None = None
) -> tuple[float, dict[str, float]]:
    """Return the typical diameter of the bright objects of a 2D or 3D image, in pixels.

    A :class:`TileSample` (tiles of a large image) is measured tile by tile,
    its statistics pooled (:func:`_tiled_responses`).

    Parameters
    ----------
    image : array-like
        ``(y, x)`` or ``(z, y, x)``.
    spacing : sequence of float, optional
        Pixel size per axis; in 3D, smoothing follows it (anisotropic volumes).

    Returns
    -------
    diameter : float
        Pixels along the finest axis.
    details : dict
        ``sigma`` (the selected scale, pixels), ``covered`` (share of the image
        taken by objects), ``percentile`` (of the response followed).

    Raises
    ------
    ValueError
        For an image that is not 2D or 3D, or holds no contrast.
    """
    ndim = np.ndim(image)
    if ndim not in (2, 3):
        raise ValueError(f"object size: the image must be 2D or 3D, not {ndim}D")
    ratio = np.ones(ndim)
    if spacing is not None and len(spacing) == ndim and min(spacing) > 0:
        ratio = min(spacing) / np.asarray(spacing, dtype=np.float64)
    # a scale must smooth every axis by half a pixel at least (a coarse z would otherwise
    # answer to its own sampling at the smallest scales)
    scales = SCALES[SCALES * ratio.min() >= 0.5 - 1e-9]
    tiles = sample_tiles(image)
    if tiles is not None:
        response, covered, q = _tiled_responses(np.asarray(image), tiles, scales, ratio)
    else:
        im = np.asarray(image, dtype=np.float32)  # float32: half the memory, same scale found
        lo, hi = np.percentile(im, (1, 99.9))
        if not hi > lo:
            raise ValueError("object size: the image holds no contrast (all pixels alike)")
        im = _normalized(im, lo, hi)
        step = _fit_step(im.shape)
        coef = _background_coef(im[tuple(slice(None, None, step) for _ in im.shape)])
        im = _subtract_background(im, coef, im.shape)  # in place: the normalised copy is ours
        response, covered, q = _whole_responses(im, scales, ratio)
        del im
    values = np.asarray(response)
    i = int(np.argmax(values))
    log_s = math.log(scales[i])
    if 0 < i < len(scales) - 1:  # parabola through the peak and its neighbours, in log scale
        y0, y1, y2 = values[i - 1 : i + 2]
        bend = y0 - 2 * y1 + y2
        if bend < 0:
            log_s += 0.5 * (y0 - y2) / bend * (math.log(scales[1]) - math.log(scales[0]))
    sigma = math.exp(log_s)
    diameter = 2.0 * math.sqrt(ndim) * sigma
    return diameter, {"sigma": sigma, "covered": covered, "percentile": q}


@register_op("measure.object_size", category="measure", spatial=True, memory=(40, 0))
def object_size(
    image: Image,
    *,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Table:
    """Estimate the typical diameter of the bright objects (nuclei, cells, spots).

    One row (per time point and channel of a larger image) with
    ``diameter`` (pixels along the finest axis), ``diameter_physical`` (with a
    pixel size), ``sigma`` (the scale selected, pixels) and ``covered`` (the
    share of the image taken by objects). Use it to choose the smoothing,
    split distance and minimum size of a recipe, or cellpose's diameter.

    Parameters
    ----------
    image : Image
        2D or 3D image (bright objects on a darker background).
    axes : str
        Axes of the image (filled by the pipeline).
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline).

    Returns
    -------
    Table
        One row: ``diameter``, ``diameter_physical``, ``sigma``, ``covered``.
    """
    diameter, details = object_diameter(image, spacing)
    row: dict[str, Any] = {"diameter": diameter}
    if spacing is not None:
        row["diameter_physical"] = diameter * min(spacing)
    row["sigma"] = details["sigma"]
    row["covered"] = details["covered"]
    return pd.DataFrame([row])
