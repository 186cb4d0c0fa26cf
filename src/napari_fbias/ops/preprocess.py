"""Preprocessing operations: smoothing, background, normalisation, selection.

Spatial operations here take one 2D ``yx`` or 3D ``zyx`` block; the runner
loops over time points and channels. :func:`select` and
:func:`max_projection` work on the whole array and change its axes.

The input checks shared by every built-in operation (:func:`spatial_block`,
:func:`axis_position`) live here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal

import numpy as np
from scipy import ndimage as ndi

from napari_fbias.ops.registry import register_op
from napari_fbias.ops.types import Image

# --- input checks shared by the built-in operations ---------------------------------


def spatial_block(image: Any, op: str, name: str = "image") -> np.ndarray:
    """Return ``image`` as a numpy array after checking it is one spatial block.

    Parameters
    ----------
    image : array-like
        The data given to the operation.
    op : str
        Name of the operation, used in error messages.
    name : str
        Name of the input, used in error messages.

    Returns
    -------
    numpy.ndarray
        The same data (no copy for a numpy array).

    Raises
    ------
    ValueError
        When the data are not 2D/3D, empty, not numeric or all NaN.
    """
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise ValueError(
            f"{op} expects a 2D (y, x) or 3D (z, y, x) {name}; got {arr.ndim} dimension(s)"
            " — select a channel/time point first"
        )
    if arr.size == 0:
        raise ValueError(f"{op}: the {name} is empty (shape {arr.shape})")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{op}: the {name} must hold numbers; got pixel type {arr.dtype}")
    if arr.dtype.kind == "f" and np.isnan(arr.max()):
        n_nan = int(np.count_nonzero(np.isnan(arr)))
        what = "only NaN" if n_nan == arr.size else f"{n_nan} NaN"
        raise ValueError(
            f"{op}: the {name} contains {what} (not-a-number) pixel values; "
            "replace or crop them before this step"
        )
    return arr


def axis_position(axes: str, axis: str, ndim: int, op: str) -> int:
    """Return the position of ``axis`` in ``axes`` after checking ``axes`` fits the data.

    Raises
    ------
    ValueError
        When ``axes`` is missing, does not match ``ndim`` or lacks ``axis``.
    """
    if not axes:
        raise ValueError(
            f"{op} needs the axes of the image (e.g. axes='czyx'); the pipeline fills them, "
            "pass axes=... when calling it yourself"
        )
    if len(axes) != ndim:
        raise ValueError(f"{op}: axes {axes!r} do not match an image with {ndim} dimensions")
    if axis not in axes:
        raise ValueError(f"{op}: the image has no {axis!r} axis (its axes are {axes!r})")
    return axes.index(axis)


def usable_spacing(spacing: Any, ndim: int) -> tuple[float, ...] | None:
    """Return ``spacing`` as floats if it gives one finite positive size per axis, else None.

    The one rule for a pixel size the operations can use: a missing one, one
    of the wrong length, or one with a size that is not finite and > 0 makes
    the block isotropic (pixels).
    """
    if spacing is None or len(spacing) != ndim:
        return None
    sp = tuple(float(s) for s in spacing)
    return sp if all(math.isfinite(s) and s > 0 for s in sp) else None


def _usable_spacing(spacing: tuple[float, ...] | None, ndim: int) -> bool:
    """Tell whether ``spacing`` gives one positive pixel size per axis of an ``ndim`` block.

    Parameters
    ----------
    spacing : tuple of float, optional
        Pixel size per axis, as the pipeline fills it.
    ndim : int
        Number of axes of the block.

    Returns
    -------
    bool
        False for a missing spacing, one of the wrong length, or one with a size <= 0
        (the block is then treated as isotropic).
    """
    return usable_spacing(spacing, ndim) is not None


def _sigma_per_axis(sigma: float, ndim: int, spacing: tuple[float, ...] | None) -> Any:
    """Sigma in pixels along the finest axis, scaled for coarser (e.g. z) axes."""
    if spacing is None or not _usable_spacing(spacing, ndim):
        return sigma
    finest = min(spacing)
    return tuple(sigma * finest / s for s in spacing)


def _float_type(dtype: np.dtype) -> type:
    return np.float64 if dtype == np.float64 else np.float32


# --- smoothing -----------------------------------------------------------------------


def _gaussian_depth(params: Mapping[str, Any]) -> int:
    return math.ceil(4 * float(params.get("sigma", 1.0))) + 1


@register_op("preprocess.gaussian", category="preprocess", depth=_gaussian_depth, memory=(4, 1))
def gaussian(
    image: Image,
    *,
    sigma: Annotated[float, {"min": 0.0, "max": 50.0, "step": 0.5}] = 1.0,
    spacing: tuple[float, ...] | None = None,
) -> Image:
    """Gaussian smoothing (reduces noise, blurs edges).

    Parameters
    ----------
    image : Image
        2D or 3D image.
    sigma : float
        Width of the blur in pixels (along x); 0 leaves the image unchanged.
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline); a coarser z gets a
        proportionally smaller sigma in pixels.

    Returns
    -------
    Image
        float32 image (float64 if the input was float64), same shape.
    """
    arr = spatial_block(image, "preprocess.gaussian")
    if sigma < 0:
        raise ValueError(f"preprocess.gaussian: sigma must be >= 0; got {sigma}")
    out_type = _float_type(arr.dtype)
    if sigma == 0:
        return arr.astype(out_type)
    return ndi.gaussian_filter(
        arr, _sigma_per_axis(sigma, arr.ndim, spacing), output=out_type, mode="nearest"
    )


def _ellipsoid(radius: float, ndim: int, spacing: tuple[float, ...] | None) -> np.ndarray:
    """Boolean disk/ball of ``radius`` pixels (along x), flattened along coarse axes."""
    if spacing is None or not _usable_spacing(spacing, ndim):
        radii = (radius,) * ndim
    else:
        finest = min(spacing)
        radii = tuple(radius * finest / s for s in spacing)
    grids = np.ogrid[tuple(slice(-math.floor(r), math.floor(r) + 1) for r in radii)]
    dist = sum((g / max(r, 1e-9)) ** 2 for g, r in zip(grids, radii, strict=True))
    return dist <= 1.0


@register_op(
    "preprocess.median",
    category="preprocess",
    depth=lambda p: int(p.get("radius", 2)) + 1,
    memory=(1, 1),
)
def median(
    image: Image,
    *,
    radius: Annotated[int, {"min": 1, "max": 25}] = 2,
    spacing: tuple[float, ...] | None = None,
) -> Image:
    """Median filter (removes salt-and-pepper noise, keeps edges).

    Parameters
    ----------
    image : Image
        2D or 3D image.
    radius : int
        Radius of the disk (2D) or ball (3D) in pixels.
    spacing : tuple of float, optional
        Pixel size per axis (filled by the pipeline), to flatten the ball
        along a coarser z.

    Returns
    -------
    Image
        Filtered image of the same type and shape.
    """
    arr = spatial_block(image, "preprocess.median")
    if radius < 1:
        raise ValueError(f"preprocess.median: radius must be >= 1; got {radius}")
    return ndi.median_filter(arr, footprint=_ellipsoid(radius, arr.ndim, spacing), mode="nearest")


# --- background ----------------------------------------------------------------------


@register_op(
    "preprocess.subtract_background",
    category="preprocess",
    depth=lambda p: 2 * int(p.get("radius", 25)) + 1,
    memory=(2, 3.25),
)
def subtract_background(
    image: Image,
    *,
    method: Literal["tophat", "rolling_ball"] = "tophat",
    radius: Annotated[int, {"min": 1, "max": 500}] = 25,
) -> Image:
    """Remove uneven background (illumination, autofluorescence) smoother than the objects.

    Works plane by plane (2D) for 3D images, like Fiji's "Subtract Background".

    Parameters
    ----------
    image : Image
        2D or 3D image (bright objects on a darker background).
    method : {'tophat', 'rolling_ball'}
        ``tophat``: white top-hat (image minus its morphological opening with
        a disk, fast); ``rolling_ball``: image minus the background traced by
        a ball rolled under the intensity surface (slower, follows curved
        backgrounds more closely).
    radius : int
        Radius in pixels; use one larger than the largest object to keep.

    Returns
    -------
    Image
        Background-subtracted image of the same type and shape (never negative).
    """
    arr = spatial_block(image, "preprocess.subtract_background")
    if radius < 1:
        raise ValueError(f"preprocess.subtract_background: radius must be >= 1; got {radius}")
    if arr.dtype == bool:
        raise ValueError("preprocess.subtract_background: expects an intensity image, got a mask")
    if arr.ndim == 3:
        out = np.empty_like(arr)
        for z in range(arr.shape[0]):
            out[z] = _subtract_background_2d(arr[z], method, radius)
        return out
    return _subtract_background_2d(arr, method, radius)


def _subtract_background_2d(arr: np.ndarray, method: str, radius: int) -> np.ndarray:
    if method == "tophat":
        from skimage.morphology import disk, white_tophat

        return white_tophat(arr, footprint=disk(radius, decomposition="sequence"))
    if method == "rolling_ball":
        from skimage.restoration import rolling_ball

        background = rolling_ball(arr, radius=radius)
        return arr - background.astype(arr.dtype, copy=False)
    raise ValueError(
        f"preprocess.subtract_background: unknown method {method!r}; "
        "choose 'tophat' or 'rolling_ball'"
    )


# --- intensity -----------------------------------------------------------------------


def _check_percentiles(low: float, high: float) -> None:
    if not 0 <= low < high <= 100:
        raise ValueError(
            f"preprocess.normalize: need 0 <= low < high <= 100; got low={low}, high={high}"
        )


def _rescale(arr: np.ndarray, lo: Any, hi: Any, clip: bool) -> np.ndarray:
    """Map ``lo`` to 0 and ``hi`` to 1 (float32); all zeros when ``hi <= lo``."""
    out = arr.astype(np.float32)
    if hi <= lo:
        out.fill(0)
        return out
    out -= np.float32(lo)
    out *= np.float32(1.0 / (hi - lo))
    if clip:
        np.clip(out, 0.0, 1.0, out=out)
    return out


def normalize_chunks(call: Any, data: Any, n_loop: int, params: Mapping[str, Any]) -> Any:
    """``preprocess.normalize`` chunk-wise: whole-frame percentiles, then block by block.

    The two percentiles of each frame (``t``/``c`` index) come from reduction
    passes over the chunks (:func:`~napari_fbias.ops.chunk_stats.frame_percentiles`:
    exactly ``np.percentile``'s numbers), then every block is rescaled with
    them as in memory, so the result is identical to the in-memory one.
    """
    from napari_fbias.ops.chunk_stats import frame_percentiles

    low, high, clip = float(params["low"]), float(params["high"]), bool(params["clip"])
    _check_percentiles(low, high)
    if np.dtype(data.dtype).kind not in "iuf":  # np.percentile cannot take booleans either
        raise ValueError(
            f"preprocess.normalize: the image must hold numbers; got pixel type {data.dtype}"
        )
    bounds = np.zeros((*data.shape[:n_loop], 2), dtype=np.float64)
    for frame, values in frame_percentiles(data, n_loop, (low, high)).items():
        bounds[frame] = values

    def block(b: np.ndarray, block_info: Any = None) -> np.ndarray:
        lo, hi = bounds[tuple(block_info[0]["chunk-location"][:n_loop])]
        return _rescale(b, lo, hi, clip)

    return data.map_blocks(block, dtype=np.float32, meta=np.empty((0,) * data.ndim, np.float32))


@register_op("preprocess.normalize", category="preprocess", memory=(4, 1), chunked=normalize_chunks)
def normalize(
    image: Image,
    *,
    low: Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.1}] = 1.0,
    high: Annotated[float, {"min": 0.0, "max": 100.0, "step": 0.1}] = 99.8,
    clip: bool = True,
) -> Image:
    """Percentile normalisation to the 0..1 range (float32).

    The ``low`` percentile of the block maps to 0 and the ``high`` percentile
    to 1, which makes images with different brightness comparable.

    Parameters
    ----------
    image : Image
        2D or 3D image.
    low : float
        Percentile (0-100) that becomes 0.
    high : float
        Percentile (0-100) that becomes 1; must be above ``low``.
    clip : bool
        Clip the result to 0..1 (otherwise values outside the percentiles
        fall below 0 / above 1).

    Returns
    -------
    Image
        float32 image of the same shape; all zeros when the image is flat.
    """
    arr = spatial_block(image, "preprocess.normalize")
    _check_percentiles(low, high)
    lo, hi = np.percentile(arr, (low, high))
    return _rescale(arr, lo, hi, clip)


# --- axes: selection and projection ------------------------------------------------------


def _drop_axis(axes: str, params: Mapping[str, Any], default: str) -> str:
    return axes.replace(str(params.get("axis", default)), "")


@register_op(
    "preprocess.select",
    category="preprocess",
    spatial=False,
    axes_out=lambda axes, p: _drop_axis(axes, p, "c"),
    memory=(0, 1),
)
def select(
    image: Image,
    *,
    axis: Literal["c", "z", "t"] = "c",
    index: Annotated[int, {"min": 0}] = 0,
    axes: str = "",
) -> Image:
    """Select one channel, z-plane or time point.

    Parameters
    ----------
    image : Image
        Image with the chosen axis.
    axis : {'c', 'z', 't'}
        Axis to select along: channel, z-plane or time point.
    index : int
        Which channel / plane / time point (0 = first).
    axes : str
        Axes of the image, e.g. ``"tczyx"`` (filled by the pipeline).

    Returns
    -------
    Image
        The image without that axis (a view, no copy).
    """
    pos = axis_position(axes, axis, np.ndim(image), "preprocess.select")
    n = image.shape[pos]
    if not 0 <= index < n:
        raise ValueError(
            f"preprocess.select: index {index} is out of range for axis {axis!r}, "
            f"which has {n} entries (0 to {n - 1})"
        )
    return image[(slice(None),) * pos + (index,)]


@register_op(
    "preprocess.max_projection",
    category="preprocess",
    spatial=False,
    axes_out=lambda axes, p: _drop_axis(axes, p, "z"),
    memory=(0, 1),
)
def max_projection(
    image: Image,
    *,
    axis: Literal["z", "t"] = "z",
    axes: str = "",
) -> Image:
    """Maximum-intensity projection along z (or t).

    Parameters
    ----------
    image : Image
        Image with the chosen axis.
    axis : {'z', 't'}
        Axis to project along.
    axes : str
        Axes of the image, e.g. ``"czyx"`` (filled by the pipeline).

    Returns
    -------
    Image
        The brightest value along ``axis`` for every other position.
    """
    pos = axis_position(axes, axis, np.ndim(image), "preprocess.max_projection")
    if image.shape[pos] == 0:
        raise ValueError(f"preprocess.max_projection: the {axis!r} axis is empty")
    return image.max(axis=pos)
