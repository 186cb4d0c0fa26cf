"""Settings that follow the size of the objects: the rules behind a recipe's "auto".

A size-dependent setting left automatic (None) is derived from the typical
object diameter ``d`` (pixels along the finest axis):

* for ``segment.nuclei``, from the **image** (:func:`nuclei_diameter`): the
  scale-space estimate of :func:`~napari_fbias.ops.object_size.object_diameter`
  sets a light smoothing, the smoothed image is thresholded (Otsu), and ``d``
  is twice the median height of the distance transform's local maxima in
  what was found (in physical space for anisotropic volumes; specks narrower
  than 3 pixels do not count): one maximum per nucleus, inside a clump of
  touching nuclei too, so ``d`` does not depend on how they clump;
* for trackpy's spot diameter and cellpose's diameter, the scale-space
  estimate itself (:func:`image_diameter`);
* from **labels** (:func:`labels_diameter`: twice the median over labels of
  their largest inscribed radius) for ``segment.watershed_split``, and from the objects' pixel
  counts for ``segment.remove_small_objects``.

The rules scale the numbers the nuclei recipe was tuned with (smoothing 1.5,
seed distance 5, min size 30) by ``k = d / D``, where ``D`` is what
:func:`nuclei_diameter` measures on the project's own sample the numbers were
tuned on (:data:`TUNED_DIAMETER`, the middle of what it measures on ``nuclei_2d``
and the ``nuclei_batch`` images, in 2D; :data:`TUNED_DIAMETER_3D` on ``cells_3d``
in 3D). ``k`` is rounded to half
octaves (:func:`scale_factor`: 1, 1.41, 2, 2.83... and 0.71, 0.5...): the
estimate is good to about 15 %, and the recipe's result can change a lot with
a 10 % change of smoothing (measured: AP@0.5 1.0 -> 0.83 on a ``nuclei_batch``
image for smoothing 1.5 -> 1.37), so an image whose objects are within about
20 % of the tuned size gets the tuned numbers exactly:

* smoothing ``sigma = 1.5 k`` pixels (:func:`smoothing_for`);
* seed distance ``min_distance = round(5 k)`` pixels, and in an anisotropic
  volume at least the coarse step (z step / xy pixel): seeds closer than one
  z step cannot be told apart (:func:`min_distance_for`);
* ``min_size``: :data:`MIN_SIZE_FRACTION` (30 pixels of the tuned nuclei) of
  a disc or ball of the tuned diameter times ``k``, counted on the actual
  grid: ``30 k^2`` pixels in 2D (:func:`min_size_for`); in 3D 177 voxels on
  ``cells_3d`` (the old 30 gives the same AP there, 0.923; 30 leaves
  fragments at a z step of 4: 0.61 against 0.88);
* trackpy's spot ``diameter``: the odd number nearest ``1.5 d`` (:func:`spot_diameter_for`);
* cellpose's ``diameter``: ``d``.

Each operation reports what it chose with
:func:`~napari_fbias.ops.chosen.report_chosen` (``object_diameter`` too,
and ``object_diameter_physical`` with a pixel size), so the step records it.
The estimate is deterministic: the same image gives the same settings, bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from napari_fbias.ops.chosen import report_chosen

__all__ = [
    "MIN_SIZE_FRACTION",
    "TUNED_DIAMETER",
    "TUNED_DIAMETER_3D",
    "frames_diameter",
    "image_diameter",
    "labels_diameter",
    "min_distance_for",
    "min_size_for",
    "min_size_from_counts",
    "nuclei_diameter",
    "resolve_auto",
    "scale_factor",
    "smoothing_for",
    "spot_diameter_for",
]

#: The 2D diameter the recipe's numbers were tuned for: :func:`nuclei_diameter` measures 15.2 px
#: on the sample ``nuclei_2d`` and 12.8 to 16.1 px on the four ``nuclei_batch`` images it was
#: tuned on; 14.4 puts them all in its half octave (they get the tuned numbers exactly).
TUNED_DIAMETER = 14.4
#: :func:`nuclei_diameter` of the 3D sample ``cells_3d`` (channel 0, voxel 1 x 0.3 x 0.3 um).
TUNED_DIAMETER_3D = 19.3
#: Smallest object kept, as a share of a typical object's pixels (voxels): the
#: tuned 30 px of a disc of 15.6 px (the sample's nuclei).
MIN_SIZE_FRACTION = 30.0 / (math.pi / 4 * 15.6**2)
#: Objects narrower than this (pixels, inscribed diameter) are specks: not counted.
_SPECK = 3.0


def _usable(spacing: Sequence[float] | None, ndim: int) -> tuple[float, ...] | None:
    from napari_fbias.ops.preprocess import usable_spacing

    return usable_spacing(spacing, ndim)


def _report_diameter(d: float, spacing: tuple[float, ...] | None) -> None:
    report_chosen("object_diameter", round(d, 2))
    if spacing is not None:
        report_chosen("object_diameter_physical", round(d * min(spacing), 4))


def image_diameter(
    image: Any, spacing: Sequence[float] | None = None, fallback: float = TUNED_DIAMETER
) -> float:
    """Return (and report) the typical object diameter of an image, pixels along the finest axis.

    An image without contrast (nothing to measure) gives ``fallback``.
    """
    from napari_fbias.ops.object_size import object_diameter

    sp = _usable(spacing, np.ndim(image))
    try:
        d, _ = object_diameter(image, sp)
    except ValueError:  # no contrast: no object either
        d = fallback
    d = round(float(d), 2)
    _report_diameter(d, sp)
    return d


def frames_diameter(frames: Iterable[Any], spacing: Sequence[float] | None = None) -> float:
    """Return (and report once) the median :func:`image_diameter` of a few frames of a movie.

    ``frames`` may be a generator: each frame is measured, then let go, before
    the next is made (the chunk-wise run reads large sampled frames lazily).
    """
    from napari_fbias.ops.chosen import collect_chosen

    ds = []
    ndim = 0
    with collect_chosen():  # the frames' own reports stay here
        for f in frames:
            ndim = np.ndim(f)
            ds.append(image_diameter(f, spacing))
            del f
    d = round(float(np.median(ds)), 2)
    _report_diameter(d, _usable(spacing, ndim))
    return d


def _inscribed_diameter(labels: np.ndarray, sp: tuple[float, ...] | None) -> float | None:
    """Twice the median largest inscribed radius of the objects (finest-axis pixels).

    Specks narrower than :data:`_SPECK` pixels do not count (unless nothing
    else is there); None without any object.
    """
    ids = np.unique(labels)
    ids = ids[ids > 0]
    if ids.size == 0:
        return None
    sampling = None if sp is None else tuple(s / min(sp) for s in sp)
    dist = ndi.distance_transform_edt(labels > 0, sampling=sampling)
    inner = 2.0 * np.asarray(ndi.maximum(dist, labels, ids), dtype=np.float64)
    wide = inner[inner > _SPECK]
    # a pixel-wide object has distance 1 (its own pixel): d = 2 * r, at least 1 pixel
    return max(1.0, float(np.median(wide if wide.size else inner)))


def _ridge_diameter(labels: np.ndarray, sp: tuple[float, ...] | None, d0: float) -> float | None:
    """Twice the median height of the distance transform's local maxima (finest-axis pixels).

    One maximum per round object, also inside a clump of touching ones, so
    the measure does not depend on how the objects clump: the median over
    the clumps' own widths swung from 13 to 40 px for balls of 24 in crowded
    volumes, where the Otsu cut holds only a handful of clumps. Maxima are
    at least a quarter of the scale-space size ``d0`` apart; specks narrower
    than :data:`_SPECK` pixels do not count (unless nothing else is there).
    None without any object.
    """
    from skimage.feature import peak_local_max

    if not labels.any():
        return None
    sampling = None if sp is None else tuple(s / min(sp) for s in sp)
    dist = ndi.distance_transform_edt(labels > 0, sampling=sampling)
    peaks = peak_local_max(
        dist, min_distance=max(1, round(d0 / 4)), labels=labels, exclude_border=False
    )
    if len(peaks) == 0:
        return _inscribed_diameter(labels, sp)
    heights = 2.0 * dist[tuple(np.asarray(peaks).T)]
    wide = heights[heights > _SPECK]
    return max(1.0, float(np.median(wide if wide.size else heights)))


def labels_diameter(
    labels: np.ndarray, spacing: Sequence[float] | None = None, fallback: float = TUNED_DIAMETER
) -> float:
    """Return (and report) the typical diameter of labelled objects, pixels along the finest axis.

    Twice the median over objects of the largest distance to their edge
    (physical distances, in finest-axis pixels): clumps of touching objects
    measure as their members, not as the clump. No objects: ``fallback``.
    """
    sp = _usable(spacing, labels.ndim)
    d = _inscribed_diameter(labels, sp)
    d = round(fallback if d is None else d, 2)
    _report_diameter(d, sp)
    return d


def nuclei_diameter(image: Any, spacing: Sequence[float] | None = None) -> float:
    """Return (and report) the typical width of the bright objects of a 2D/3D image.

    The scale-space estimate (:func:`~napari_fbias.ops.object_size.object_diameter`)
    sets a smoothing (:func:`smoothing_for`), the smoothed image is cut at
    Otsu's threshold and the objects found are measured as in
    :func:`labels_diameter`. This is the ``d`` of ``segment.nuclei``'s rules:
    it does not take a clump of touching nuclei for one large nucleus.
    An image without contrast gives the tuned diameter (the tuned numbers).
    """
    from skimage.filters import threshold_otsu

    from napari_fbias.ops.object_size import object_diameter

    arr = np.asarray(image, dtype=np.float32)
    sp = _usable(spacing, arr.ndim)
    tuned = TUNED_DIAMETER if arr.ndim == 2 else TUNED_DIAMETER_3D
    try:
        d0, _ = object_diameter(arr, sp)
    except ValueError:  # no contrast: no object either
        d = tuned
    else:
        ratio = np.ones(arr.ndim) if sp is None else min(sp) / np.asarray(sp)
        # the tuned smoothing for the scale-space size (20.8 px on nuclei_2d), unrounded
        smooth = ndi.gaussian_filter(arr, max(0.5, 1.5 * d0 / 20.8) * ratio)
        found = ndi.label(smooth > threshold_otsu(smooth))[0]
        measured = _ridge_diameter(found, sp, d0)
        d = d0 if measured is None else measured
    d = round(float(d), 2)
    _report_diameter(d, sp)
    return d


def scale_factor(d: float, ndim: int = 2) -> float:
    """Return ``d`` over the tuned diameter, rounded to half octaves (1, 2**0.5, 2, 0.5...)."""
    tuned = TUNED_DIAMETER if ndim == 2 else TUNED_DIAMETER_3D
    return float(2.0 ** (round(2.0 * math.log2(max(d, 1e-3) / tuned)) / 2.0))


def smoothing_for(d: float, ndim: int = 2) -> float:
    """Gaussian smoothing (pixels along the finest axis) for objects of diameter ``d``."""
    return round(1.5 * scale_factor(d, ndim), 2)


def min_distance_for(d: float, ndim: int = 2, spacing: Sequence[float] | None = None) -> int:
    """Smallest distance between two watershed seeds (pixels) for objects of diameter ``d``.

    In an anisotropic volume, at least the coarse step in finest-axis pixels.
    """
    sp = _usable(spacing, ndim)
    floor = 1 if sp is None else math.ceil(max(sp) / min(sp) - 1e-9)
    return max(floor, round(5.0 * scale_factor(d, ndim)))


def min_size_for(d: float, ndim: int, spacing: Sequence[float] | None = None) -> int:
    """Smallest object kept (pixels, or voxels) for objects of diameter ``d``.

    :data:`MIN_SIZE_FRACTION` of a disc (2D) or ball (3D) of the tuned
    diameter times ``k`` (:func:`scale_factor`), counted on the actual grid (a
    z step 4 times the xy pixel holds a quarter as many voxels): ``30 k**2``
    pixels in 2D.
    """
    k = scale_factor(d, ndim)
    if ndim == 2:
        return max(1, round(30.0 * k**2))
    sp = _usable(spacing, ndim)
    voxel = 1.0 if sp is None else math.prod(sp) / min(sp) ** ndim
    ball = math.pi / 6 * (k * TUNED_DIAMETER_3D) ** 3 / voxel
    return max(1, round(MIN_SIZE_FRACTION * ball))


def min_size_from_counts(counts: np.ndarray) -> int:
    """Smallest object kept, from the pixel counts of the objects (``counts[0]``: background).

    The typical object is the one holding the median object pixel (so that
    many specks of debris do not make it small); the rule is that of
    :func:`min_size_for`: :data:`MIN_SIZE_FRACTION` of it.
    """
    sizes = np.sort(np.asarray(counts[1:], dtype=np.int64))
    sizes = sizes[sizes > 0]
    if sizes.size == 0:
        return 1
    cumulative = np.cumsum(sizes)
    typical = int(sizes[np.searchsorted(cumulative, cumulative[-1] / 2.0)])
    return max(1, round(MIN_SIZE_FRACTION * typical))


def spot_diameter_for(d: float) -> int:
    """Return trackpy's ``diameter`` (odd, at least 3 pixels) for spots of size ``d``."""
    n = max(3, round(1.5 * d))
    return n if n % 2 else n + 1


def _nuclei_auto(arr: np.ndarray, params: dict[str, Any], sp: Any) -> dict[str, Any]:
    if any(params.get(k) is None for k in ("smoothing_sigma", "min_size", "min_distance")):
        d = nuclei_diameter(arr, sp)
        rules = {
            "smoothing_sigma": lambda: smoothing_for(d, arr.ndim),
            "min_size": lambda: min_size_for(d, arr.ndim, sp),
            "min_distance": lambda: min_distance_for(d, arr.ndim, sp),
        }
        for k, rule in rules.items():
            if params.get(k) is None:
                params[k] = rule()
                report_chosen(k, params[k])
    return params


def _split_auto(arr: np.ndarray, params: dict[str, Any], sp: Any) -> dict[str, Any]:
    if params.get("min_distance") is None:
        if params.get("h", 0.0) > 0:  # h-maxima seeds: the distance is not used
            params["min_distance"] = 1
        else:
            d = labels_diameter(arr, sp)
            params["min_distance"] = min_distance_for(d, arr.ndim, sp)
            report_chosen("min_distance", params["min_distance"])
    return params


def _small_auto(arr: np.ndarray, params: dict[str, Any], sp: Any) -> dict[str, Any]:
    if params.get("min_size") is None:
        params["min_size"] = min_size_from_counts(np.bincount(np.asarray(arr).ravel()))
        report_chosen("min_size", params["min_size"])
    return params


_RESOLVERS = {
    "segment.nuclei": _nuclei_auto,
    "segment.watershed_split": _split_auto,
    "segment.remove_small_objects": _small_auto,
}


def resolve_auto(
    op: str, data: Any, params: Mapping[str, Any], spacing: Sequence[float] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``op``'s settings with the automatic ones (None) resolved, and what was chosen.

    The one place the rules are applied: the operations call it on their
    input, and a chunk-wise run calls it once on the whole image (or a
    view of it: tiles sampled over it, a subsample with ``spacing`` scaled) before
    any block runs, then runs every block with the numbers. The values chosen
    are also reported (:func:`~napari_fbias.ops.chosen.report_chosen`).

    Parameters
    ----------
    op : str
        ``segment.nuclei``, ``segment.watershed_split`` or
        ``segment.remove_small_objects`` (any other operation: returned as is).
    data : array-like
        The operation's first input, spatial axes only: the image
        (``segment.nuclei``) or the labels.
    params : mapping
        The step's settings (the defaults filled in).
    spacing : sequence of float, optional
        Pixel size along each axis of ``data``.

    Returns
    -------
    tuple of dict
        ``(settings, chosen)``: settings with numbers, and name -> value chosen
        (``object_diameter`` too); ``chosen`` is empty when nothing was automatic.
    """
    from napari_fbias.ops.chosen import collect_chosen

    resolver = _RESOLVERS.get(op)
    out = dict(params)
    if resolver is None:
        return out, {}
    arr = np.asarray(data)
    with collect_chosen() as box:
        out = resolver(arr, out, _usable(spacing, arr.ndim))
    chosen = box.summary()
    for name, value in chosen.items():
        report_chosen(name, value)
    return out, chosen
