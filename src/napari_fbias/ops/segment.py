"""Classical segmentation: thresholds, clean-up, watershed splitting, the nuclei recipe.

Every operation returns ``int32`` labels with 0 as background. Operations that
make objects number them 1..N in raster order (the order in which their first
pixel, or for watershed splits their seed, is met reading the image row by
row); :func:`fill_holes` and :func:`expand_labels` keep the input ids. Each is
a thin wrapper over scikit-image / scipy calls. ``threshold``, ``connected_components``
and ``remove_small_objects`` declare their chunk-wise strategies (for images larger
than memory) beside them; the strategies are in :mod:`.chunks`.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
from scipy import ndimage as ndi

from napari_fbias.ops.auto_scale import resolve_auto
from napari_fbias.ops.chunk_stitch import nuclei_chunks, watershed_split_chunks
from napari_fbias.ops.chunks import components_chunks, remove_small_chunks, threshold_chunks
from napari_fbias.ops.preprocess import (
    _ellipsoid,
    _float_type,
    _sigma_per_axis,
    spatial_block,
    usable_spacing,
)
from napari_fbias.ops.registry import keep_old_default, register_op
from napari_fbias.ops.types import Image, Labels

ThresholdMethod = Literal["otsu", "li", "triangle", "yen", "manual"]
_INT32_MAX = np.iinfo(np.int32).max


# --- helpers ---------------------------------------------------------------------------


def labels_block(labels: Any, op: str, name: str = "labels") -> np.ndarray:
    """Return ``labels`` as a 2D/3D non-negative ``int32`` array (no copy when it already is).

    Raises
    ------
    ValueError
        When the data are not 2D/3D integer labels, or are negative or too large.
    """
    arr = spatial_block(labels, op, name)
    if arr.dtype.kind not in "iu":
        hint = (
            " (a yes/no mask: use segment.connected_components first)" if arr.dtype == bool else ""
        )
        raise ValueError(f"{op}: {name} must hold integer object ids; got {arr.dtype}{hint}")
    if arr.dtype == np.int32:
        if arr.min() < 0:
            raise ValueError(f"{op}: {name} contain negative object ids")
        return arr
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0:
        raise ValueError(f"{op}: {name} contain negative object ids")
    if hi > _INT32_MAX:
        raise ValueError(f"{op}: {name} contain an object id ({hi}) too large for int32")
    return arr.astype(np.int32)


def relabel(labels: np.ndarray, min_size: int = 0, max_size: int | None = None) -> np.ndarray:
    """Drop objects outside ``[min_size, max_size]`` pixels and renumber the rest 1..N.

    The order of the ids is kept. Returns ``labels`` itself (no copy) when
    nothing changes.
    """
    counts = np.bincount(labels.ravel())
    keep = counts >= max(min_size, 1)
    if max_size is not None:
        keep &= counts <= max_size
    keep[0] = False
    if keep[1:].all():
        return labels if labels.dtype == np.int32 else labels.astype(np.int32)
    lut = np.zeros(counts.size, dtype=np.int32)
    lut[keep] = np.arange(1, int(np.count_nonzero(keep)) + 1, dtype=np.int32)
    return lut[labels]


def _fresh(out: np.ndarray, original: Any) -> np.ndarray:
    """Return ``out``, copied if it shares memory with the caller's ``original`` input."""
    if isinstance(original, np.ndarray) and np.may_share_memory(out, original):
        return out.copy()
    return out


def _structure(ndim: int, diagonal: bool) -> np.ndarray:
    return ndi.generate_binary_structure(ndim, ndim if diagonal else 1)


def _label_mask(mask: np.ndarray, min_size: int, diagonal: bool = False) -> np.ndarray:
    labels, _ = ndi.label(mask, structure=_structure(mask.ndim, diagonal))
    return relabel(labels, min_size) if min_size > 1 else labels


def _threshold_value(arr: np.ndarray, method: str, value: float, op: str) -> float | None:
    """Threshold of ``arr`` by ``method``, or None when the image is flat."""
    if method == "manual":
        return float(value)
    from skimage import filters

    funcs = {
        "otsu": filters.threshold_otsu,
        "li": filters.threshold_li,
        "triangle": filters.threshold_triangle,
        "yen": filters.threshold_yen,
    }
    if method not in funcs:
        raise ValueError(
            f"{op}: unknown threshold method {method!r}; choose one of "
            f"{', '.join([*funcs, 'manual'])}"
        )
    if arr.min() == arr.max():
        return None
    return float(funcs[method](arr))


def _check_min_size(min_size: int, op: str) -> None:
    if min_size < 0:
        raise ValueError(f"{op}: min_size must be >= 0 pixels; got {min_size}")


def _check_min_distance(min_distance: int, op: str) -> None:
    """Raise a ``ValueError`` naming ``op`` when a seed distance is below one pixel.

    Parameters
    ----------
    min_distance : int
        Smallest distance in pixels between two watershed seeds.
    op : str
        Name of the operation, used in the error message.
    """
    if min_distance < 1:
        raise ValueError(f"{op}: min_distance must be >= 1 pixel; got {min_distance}")


# --- thresholds ------------------------------------------------------------------------


@register_op("segment.threshold", category="segment", memory=(8, 1.25), chunked=threshold_chunks)
def threshold(
    image: Image,
    *,
    method: ThresholdMethod = "otsu",
    value: float = 0.0,
    min_size: Annotated[int, {"min": 0, "max": 100000}] = 0,
) -> Labels:
    """Global threshold, then one label per connected bright region.

    Parameters
    ----------
    image : Image
        2D or 3D image, bright objects on a dark background.
    method : {'otsu', 'li', 'triangle', 'yen', 'manual'}
        How the threshold is chosen; ``manual`` uses ``value``.
    value : float
        Threshold used when ``method`` is ``manual`` (pixels above it are objects).
    min_size : int
        Objects smaller than this many pixels are dropped (0 keeps all).

    Returns
    -------
    Labels
        int32 labels, objects numbered 1..N in raster order.
    """
    op = "segment.threshold"
    arr = spatial_block(image, op)
    _check_min_size(min_size, op)
    t = _threshold_value(arr, method, value, op)
    if t is None:
        return np.zeros(arr.shape, dtype=np.int32)
    return _label_mask(arr > t, min_size)


@register_op("segment.local_threshold", category="segment", memory=(24, 1.5))
def local_threshold(
    image: Image,
    *,
    block_size: Annotated[int, {"min": 3, "max": 1001, "step": 2}] = 51,
    offset: float = 0.0,
    method: Literal["gaussian", "mean", "median"] = "gaussian",
    min_size: Annotated[int, {"min": 0, "max": 100000}] = 0,
) -> Labels:
    """Local (adaptive) threshold for uneven illumination, then connected regions.

    Parameters
    ----------
    image : Image
        2D or 3D image, bright objects on a dark background.
    block_size : int
        Odd size in pixels of the neighbourhood a pixel is compared with;
        make it a few times larger than an object.
    offset : float
        A pixel is an object when it is brighter than its neighbourhood
        average plus this value (in image intensity units).
    method : {'gaussian', 'mean', 'median'}
        How the neighbourhood average is computed.
    min_size : int
        Objects smaller than this many pixels are dropped (0 keeps all).

    Returns
    -------
    Labels
        int32 labels, objects numbered 1..N in raster order.
    """
    op = "segment.local_threshold"
    arr = spatial_block(image, op)
    _check_min_size(min_size, op)
    if block_size < 3 or block_size % 2 == 0:
        raise ValueError(f"{op}: block_size must be an odd number >= 3; got {block_size}")
    if method not in ("gaussian", "mean", "median"):
        raise ValueError(f"{op}: unknown method {method!r}; choose gaussian, mean or median")
    from skimage.filters import threshold_local

    local = threshold_local(arr, block_size, method=method, offset=-offset)
    return _label_mask(arr > local, min_size)


@register_op(
    "segment.connected_components", category="segment", memory=(6, 0), chunked=components_chunks
)
def connected_components(
    image: Image,
    *,
    diagonal: bool = False,
    min_size: Annotated[int, {"min": 0, "max": 100000}] = 0,
) -> Labels:
    """One label per connected region of a mask (every non-zero pixel is foreground).

    Parameters
    ----------
    image : Image
        2D or 3D mask (booleans or numbers; non-zero is foreground).
    diagonal : bool
        Also connect pixels that touch only by a corner.
    min_size : int
        Objects smaller than this many pixels are dropped (0 keeps all).

    Returns
    -------
    Labels
        int32 labels, objects numbered 1..N in raster order.
    """
    op = "segment.connected_components"
    arr = spatial_block(image, op, "mask")
    _check_min_size(min_size, op)
    return _label_mask(arr.astype(bool, copy=False), min_size, diagonal)


# --- clean-up --------------------------------------------------------------------------


@register_op(
    "segment.remove_small_objects", category="segment", memory=(10, 0), chunked=remove_small_chunks
)
def remove_small_objects(
    labels: Labels,
    *,
    min_size: Annotated[int | None, {"min": 0, "max": 1000000}] = None,
    max_size: Annotated[int | None, {"min": 1}] = None,
) -> Labels:
    """Remove objects smaller (or larger) than a size, renumbering the others.

    Parameters
    ----------
    labels : Labels
        2D or 3D labels.
    min_size : int, optional
        Objects with fewer pixels than this are removed; empty = automatic:
        a share of the typical object (the one holding the median object
        pixel), recorded with the step.
    max_size : int, optional
        Objects with more pixels than this are removed (debris, clumps);
        None keeps every large object.

    Returns
    -------
    Labels
        int32 labels, the kept objects renumbered 1..N in their original order.
    """
    op = "segment.remove_small_objects"
    arr = labels_block(labels, op)
    if min_size is None:
        min_size = resolve_auto(op, arr, {"min_size": None})[0]["min_size"]
    _check_min_size(min_size, op)
    if max_size is not None and max_size < min_size:
        raise ValueError(f"{op}: max_size ({max_size}) is below min_size ({min_size})")
    return _fresh(relabel(arr, min_size, max_size), labels)


keep_old_default("segment.remove_small_objects", min_size=64)


@register_op("segment.fill_holes", category="segment", memory=(20, 0))
def fill_holes(
    labels: Labels,
    *,
    max_hole_size: Annotated[int | None, {"min": 1}] = None,
) -> Labels:
    """Fill holes inside objects (background fully enclosed by objects).

    A hole takes the id of the object around it; a hole enclosed by several
    touching objects is shared between them by nearest distance.

    Parameters
    ----------
    labels : Labels
        2D or 3D labels.
    max_hole_size : int, optional
        Only fill holes of at most this many pixels; None fills all holes.

    Returns
    -------
    Labels
        int32 labels with the same object ids.
    """
    op = "segment.fill_holes"
    arr = labels_block(labels, op)
    mask = arr > 0
    holes = ndi.binary_fill_holes(mask)
    holes &= ~mask
    if max_hole_size is not None:
        if max_hole_size < 1:
            raise ValueError(f"{op}: max_hole_size must be >= 1 pixel; got {max_hole_size}")
        hole_ids, _ = ndi.label(holes)
        sizes = np.bincount(hole_ids.ravel())
        small = sizes <= max_hole_size
        small[0] = False
        holes = small[hole_ids]
    if not holes.any():
        return _fresh(arr, labels)
    nearest = ndi.distance_transform_edt(~mask, return_distances=False, return_indices=True)
    out = arr.copy()
    out[holes] = arr[tuple(idx[holes] for idx in nearest)]
    return out


# --- splitting and growing -------------------------------------------------------------


def _split(
    labels: np.ndarray,
    landscape: np.ndarray | None,
    min_distance: int,
    h: float,
    sampling: tuple[float, ...] | None,
    *,
    may_touch: bool = True,
) -> np.ndarray:
    """Distance-transform watershed of ``labels`` (one seed per distance peak).

    With ``may_touch``, pixels where two input objects touch are kept out of
    the flooding (so that no seed grows into a neighbouring object) and are
    given back to their own object afterwards.
    """
    from skimage.feature import peak_local_max
    from skimage.segmentation import watershed

    mask = labels > 0
    contact = _contact_pixels(labels) if may_touch else None
    if contact is not None:
        mask &= ~contact
    distance = ndi.distance_transform_edt(mask, sampling=sampling)
    if h > 0:
        from skimage.morphology import h_maxima

        seeds = h_maxima(distance, h).astype(bool, copy=False)
        seeds &= mask
        markers, _ = ndi.label(seeds, structure=_structure(mask.ndim, True))
    else:
        if sampling is not None and max(sampling) > min(sampling):
            peaks = peak_local_max(
                distance,
                footprint=_ellipsoid(min_distance, mask.ndim, sampling),
                labels=labels,
                exclude_border=False,
            )
            peaks = _thin_peaks(peaks, distance, min_distance, sampling)
        else:
            peaks = peak_local_max(
                distance, min_distance=int(min_distance), labels=labels, exclude_border=False
            )
        peaks = peaks.reshape(-1, mask.ndim)  # skimage returns (0, 2) when there are none
        order = np.lexsort(peaks.T[::-1])  # raster order: deterministic numbering
        markers = np.zeros(mask.shape, dtype=np.int32)
        markers[tuple(peaks[order].T)] = np.arange(1, len(peaks) + 1, dtype=np.int32)
    flood = -distance if landscape is None else -landscape
    split = watershed(flood, markers, mask=mask)
    if contact is not None:
        nearest = ndi.distance_transform_edt(
            split == 0, sampling=sampling, return_distances=False, return_indices=True
        )
        split[contact] = split[tuple(idx[contact] for idx in nearest)]
    return split


def _contact_pixels(labels: np.ndarray) -> np.ndarray | None:
    """Pixels of an object that touch (face to face) a different object; None if none do."""
    contact = np.zeros(labels.shape, dtype=bool)
    for axis in range(labels.ndim):
        lo = [slice(None)] * labels.ndim
        hi = [slice(None)] * labels.ndim
        lo[axis], hi[axis] = slice(None, -1), slice(1, None)
        a, b = labels[tuple(lo)], labels[tuple(hi)]
        touch = (a != b) & (a > 0) & (b > 0)
        contact[tuple(lo)] |= touch
        contact[tuple(hi)] |= touch
    return contact if contact.any() else None


def _thin_peaks(
    peaks: np.ndarray, height: np.ndarray, radius: float, sampling: tuple[float, ...]
) -> np.ndarray:
    """Keep the highest of peaks closer than ``radius`` (finest-axis pixels, anisotropy-aware)."""
    if len(peaks) < 2:
        return peaks
    from scipy.spatial import cKDTree

    order = np.argsort(-height[tuple(peaks.T)], kind="stable")
    peaks = peaks[order]
    scaled = peaks * (np.asarray(sampling) / min(sampling))
    tree = cKDTree(scaled)
    removed = np.zeros(len(peaks), dtype=bool)
    for i, near in enumerate(tree.query_ball_point(scaled, r=radius, p=np.inf)):
        if not removed[i]:
            for j in near:
                if j > i:
                    removed[j] = True
    return peaks[~removed]


def _sampling(spacing: tuple[float, ...] | None, ndim: int) -> tuple[float, ...] | None:
    return usable_spacing(spacing, ndim)


def _keep_input_boundaries(split: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Make every output object lie inside a single input object."""
    n = int(split.max())
    if n == 0:  # no seed at all: nothing to split
        return labels
    index = np.arange(1, n + 1)
    lo = ndi.minimum(labels, split, index)
    hi = ndi.maximum(labels, split, index)
    n_in = int(np.count_nonzero(np.bincount(labels.ravel())[1:]))
    if np.array_equal(lo, hi) and np.unique(lo).size == n_in:
        return split
    key = labels.astype(np.int64) * (n + 1) + split
    _, inverse = np.unique(key, return_inverse=True)
    out = inverse.reshape(labels.shape).astype(np.int32)
    return out if key.min() == 0 else out + 1


@register_op(
    "segment.watershed_split", category="segment", memory=(64, 0), chunked=watershed_split_chunks
)
def watershed_split(
    labels: Labels,
    image: Image | None = None,
    *,
    min_distance: Annotated[int | None, {"min": 1, "max": 200}] = None,
    h: Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.5}] = 0.0,
    spacing: tuple[float, ...] | None = None,
) -> Labels:
    """Split touching objects along their necks (distance-transform watershed).

    Each object gets one seed per bump of its distance-to-edge map; the seeds
    then grow back over the object (over the dark valleys of ``image`` when
    one is given). Objects never merge or cross their input outline.

    Parameters
    ----------
    labels : Labels
        2D or 3D labels (or a thresholded mask as labels) to split.
    image : Image, optional
        Intensity image, bright objects: when given, split lines follow its
        dark valleys instead of the narrowest neck.
    min_distance : int, optional
        Smallest distance in pixels between two seeds: about the radius of
        the smallest object to keep whole. Empty = automatic, from the
        objects' typical width (twice their median largest inscribed
        radius, in physical units with ``spacing``), recorded with the step.
    h : float
        If above 0, use h-maxima seeds instead: a bump of the distance map
        must rise ``h`` (pixels, or physical units with ``spacing``) above
        its surroundings to get its own seed. ``min_distance`` is then unused.
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline), for anisotropic 3D.

    Returns
    -------
    Labels
        int32 labels, objects numbered 1..N in raster order of their seeds.
    """
    op = "segment.watershed_split"
    arr = labels_block(labels, op)
    landscape = None
    if image is not None:
        landscape = spatial_block(image, op, "image")
        if landscape.shape != arr.shape:
            raise ValueError(
                f"{op}: image shape {landscape.shape} differs from labels shape {arr.shape}"
            )
    if h < 0:
        raise ValueError(f"{op}: h must be >= 0; got {h}")
    sampling = _sampling(spacing, arr.ndim)
    if min_distance is None:
        auto = {"min_distance": None, "h": h}
        min_distance = resolve_auto(op, arr, auto, sampling)[0]["min_distance"]
    _check_min_distance(min_distance, op)
    split = _split(arr, landscape, min_distance, h, sampling)
    return _fresh(relabel(_keep_input_boundaries(split, arr)), labels)


keep_old_default("segment.watershed_split", min_distance=5)


@register_op(
    "segment.expand_labels",
    category="segment",
    depth=lambda p: math.ceil(float(p.get("distance", 10))) + 1,
    memory=(56, 0),
)
def expand_labels(
    labels: Labels,
    *,
    distance: Annotated[float, {"min": 0.0, "max": 500.0, "step": 1.0}] = 10.0,
    spacing: tuple[float, ...] | None = None,
) -> Labels:
    """Grow every object outwards by a distance without overlapping (e.g. cells from nuclei).

    Parameters
    ----------
    labels : Labels
        2D or 3D labels (e.g. nuclei).
    distance : float
        How far to grow, in pixels (or in physical units when ``spacing`` is known).
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline).

    Returns
    -------
    Labels
        int32 labels with the same object ids.
    """
    op = "segment.expand_labels"
    arr = labels_block(labels, op)
    if distance < 0:
        raise ValueError(f"{op}: distance must be >= 0; got {distance}")
    from skimage.segmentation import expand_labels as _expand

    sampling = spacing if spacing is not None and len(spacing) == arr.ndim else 1
    return _expand(arr, distance=distance, spacing=sampling).astype(np.int32, copy=False)


def nuclei_from_threshold(
    arr: np.ndarray,
    t: float,
    background: float,
    *,
    fill_holes: bool,
    split_touching: bool,
    min_size: int,
    min_distance: int,
    refine_edges: bool,
    edge_level: float,
    sampling: tuple[float, ...] | None,
) -> np.ndarray:
    """Run the nuclei recipe once its threshold ``t`` and background are known (steps 2 to 4).

    ``arr`` is the smoothed image. Shared by :func:`nuclei` and its chunk-wise
    run (:mod:`napari_fbias.ops.chunk_stitch`), which computes ``t`` and the
    background on the whole image and runs this on each block with a halo.
    """
    labels = _nuclei_pass(arr > t, fill_holes, split_touching, min_size, min_distance, sampling)
    if refine_edges and labels.any():
        from skimage.segmentation import expand_labels as _expand

        peak = ndi.maximum(arr, labels, np.arange(int(labels.max()) + 1))
        level = background + edge_level * (np.asarray(peak, dtype=np.float64) - background)
        level[0] = np.inf
        finest = min(sampling) if sampling is not None else 1.0
        grown = _expand(labels, distance=3 * finest, spacing=sampling or 1)
        mask = arr > level[grown]
        labels = _nuclei_pass(mask, fill_holes, split_touching, min_size, min_distance, sampling)
    return labels


# --- the default recipe ----------------------------------------------------------------


# the chunk-wise run gets the recipe's own code for what follows the threshold (no import back)
@register_op(
    "segment.nuclei",
    category="segment",
    memory=(72, 1.5),
    chunked=partial(nuclei_chunks, after_threshold=nuclei_from_threshold),
)
def nuclei(
    image: Image,
    *,
    smoothing_sigma: Annotated[float | None, {"min": 0.0, "max": 20.0, "step": 0.5}] = None,
    threshold_method: ThresholdMethod = "otsu",
    threshold_value: float = 0.0,
    min_size: Annotated[int | None, {"min": 0, "max": 100000}] = None,
    fill_holes: bool = True,
    split_touching: bool = True,
    min_distance: Annotated[int | None, {"min": 1, "max": 200}] = None,
    refine_edges: bool = True,
    edge_level: Annotated[float, {"min": 0.05, "max": 0.95, "step": 0.05}] = 0.4,
    spacing: tuple[float, ...] | None = None,
) -> Labels:
    """Segment nuclei: smooth, threshold, split touching nuclei, fit each outline.

    The default recipe for fluorescent nuclei (DAPI, Hoechst, H2B-FP) in 2D
    or 3D:

    1. Gaussian smoothing;
    2. a global threshold finds the nuclei (with ``refine_edges`` an
       automatic threshold is lowered halfway towards the background, so that
       dim nuclei are found too); holes are filled and debris removed;
    3. a distance-transform watershed splits touching nuclei;
    4. with ``refine_edges``, each nucleus gets its own outline: the pixels
       around it brighter than ``edge_level`` of the way from the background
       to its own peak (bright and dim nuclei alike get an outline at the
       same relative level), then touching nuclei are split again.

    The size-dependent settings (``smoothing_sigma``, ``min_size``,
    ``min_distance``) left empty are automatic: they follow the typical
    nucleus diameter measured on the image (``measure.object_size``, in
    physical space for anisotropic volumes), and the values chosen are
    recorded with the step (rules: :mod:`napari_fbias.ops.auto_scale`).

    Parameters
    ----------
    image : Image
        2D or 3D nuclear stain, bright nuclei on a dark background.
    smoothing_sigma : float, optional
        Gaussian blur in pixels before thresholding (0 for none); empty =
        automatic (1.5 px for nuclei 21 px across, in proportion).
    threshold_method : {'otsu', 'li', 'triangle', 'yen', 'manual'}
        How the threshold that finds nuclei is chosen; ``manual`` uses
        ``threshold_value`` as is.
    threshold_value : float
        Threshold (on the smoothed image) when ``threshold_method`` is ``manual``.
    min_size : int, optional
        Nuclei (and split fragments) smaller than this many pixels are
        removed; empty = automatic (about a tenth of a typical nucleus).
    fill_holes : bool
        Fill holes inside nuclei (dim nucleoli).
    split_touching : bool
        Split touching nuclei with a distance-transform watershed.
    min_distance : int, optional
        Smallest distance in pixels between the centres of two touching
        nuclei: about the radius of the smallest nucleus; empty = automatic
        (a quarter of the typical diameter).
    refine_edges : bool
        Fit each nucleus' outline to its own brightness (recommended when
        nuclei differ in brightness or the illumination is uneven).
    edge_level : float
        Where the outline lies, from 0 (background) to 1 (the nucleus' peak);
        lower gives larger nuclei.
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline), for anisotropic 3D.

    Returns
    -------
    Labels
        int32 labels, nuclei numbered 1..N.
    """
    op = "segment.nuclei"
    arr = spatial_block(image, op)
    if not 0 < edge_level < 1:
        raise ValueError(f"{op}: edge_level must be between 0 and 1; got {edge_level}")
    sampling = _sampling(spacing, arr.ndim)
    if smoothing_sigma is None or min_size is None or min_distance is None:
        given = {"smoothing_sigma": smoothing_sigma, "min_size": min_size}
        got = resolve_auto(op, arr, {**given, "min_distance": min_distance}, sampling)[0]
        smoothing_sigma, min_size, min_distance = (
            got["smoothing_sigma"],
            got["min_size"],
            got["min_distance"],
        )
    _check_min_size(min_size, op)
    if smoothing_sigma < 0:
        raise ValueError(f"{op}: smoothing_sigma must be >= 0; got {smoothing_sigma}")
    _check_min_distance(min_distance, op)
    if smoothing_sigma > 0:
        arr = ndi.gaussian_filter(
            arr,
            _sigma_per_axis(smoothing_sigma, arr.ndim, sampling),
            output=_float_type(arr.dtype),
            mode="nearest",
        )
    t = _threshold_value(arr, threshold_method, threshold_value, op)
    if t is None:
        return np.zeros(arr.shape, dtype=np.int32)
    background = 0.0
    if refine_edges:
        below = arr[arr <= t]
        if below.size == 0:  # a manual threshold under every pixel
            return np.zeros(arr.shape, dtype=np.int32)
        background = float(np.median(below))
        if threshold_method != "manual":
            t = background + 0.5 * (t - background)
    return nuclei_from_threshold(
        arr,
        t,
        background,
        fill_holes=fill_holes,
        split_touching=split_touching,
        min_size=min_size,
        min_distance=min_distance,
        refine_edges=refine_edges,
        edge_level=edge_level,
        sampling=sampling,
    )


keep_old_default("segment.nuclei", smoothing_sigma=1.5, min_size=30, min_distance=5)


def _nuclei_pass(
    mask: np.ndarray,
    fill_holes: bool,
    split_touching: bool,
    min_size: int,
    min_distance: int,
    sampling: tuple[float, ...] | None,
) -> np.ndarray:
    """Fill holes, drop debris and (optionally) split one foreground mask."""
    if fill_holes:
        mask = ndi.binary_fill_holes(mask)
    labels = _label_mask(mask, min_size)
    if not split_touching:
        return labels
    split = _split(labels, None, min_distance, 0.0, sampling, may_touch=False)
    return relabel(split, min_size)
