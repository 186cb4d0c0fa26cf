"""Measurement operations: a table of object properties per label (and time point).

:func:`regionprops` wraps :func:`skimage.measure.regionprops_table` for the
shape measurements and :mod:`scipy.ndimage` label statistics for the
intensities, and gives the columns plain, stable, snake_case names. Labels
larger than memory are measured chunk-wise by
:func:`~napari_fbias.ops.measure_chunks.regionprops_chunks` (the same table).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from napari_fbias.ops.registry import register_op
from napari_fbias.ops.types import Image, Labels, Table

#: Properties that :func:`regionprops` can measure.
PROPERTIES: tuple[str, ...] = (
    "area",
    "centroid",
    "bbox",
    "eccentricity",
    "solidity",
    "perimeter",
    "orientation",
    "axis_major_length",
    "axis_minor_length",
    "extent",
    "equivalent_diameter_area",
)
#: Properties only defined for 2D objects (left out for 3D labels).
PROPERTIES_2D_ONLY: frozenset[str] = frozenset({"eccentricity", "perimeter", "orientation"})
#: Properties measured when none are chosen.
DEFAULT_PROPERTIES: tuple[str, ...] = ("area", "centroid", "bbox", "eccentricity", "solidity")
#: Intensity statistics measured per channel when an image is given.
INTENSITY_STATS: tuple[str, ...] = ("mean", "min", "max", "sum")
#: Unit assumed for ``spacing`` (the OME-NGFF convention for microscopy).
SPACING_UNIT = "um"

_OP = "measure.regionprops"


def _label_axes(axes: str, ndim: int) -> str:
    """Axes of the labels: from ``axes`` (dropping a ``c`` that labels lack) or guessed."""
    if axes:
        if "c" in axes and len(axes) == ndim + 1:
            axes = axes.replace("c", "")
        if "c" in axes:
            raise ValueError(
                f"{_OP}: the labels have a channel axis (axes {axes!r}); segment one channel "
                "(select it with preprocess.select first) and measure those labels"
            )
        if len(axes) != ndim:
            raise ValueError(f"{_OP}: axes {axes!r} do not match labels with {ndim} dimensions")
        bad = set(axes) - set("tzyx")
        if bad or axes[-2:] != "yx" or len(set(axes)) != len(axes):
            raise ValueError(
                f"{_OP}: labels axes must be t, z, y, x in that order (y and x required); "
                f"got {axes!r}"
            )
        return axes
    guess = {2: "yx", 3: "zyx", 4: "tzyx"}.get(ndim)
    if guess is None:
        raise ValueError(
            f"{_OP} expects 2D (y, x), 3D (z, y, x) or 4D (t, z, y, x) labels; got {ndim} "
            "dimension(s)"
        )
    return guess


def _spatial_spacing(
    spacing: Sequence[float] | None, axes: str, full_axes: str
) -> tuple[float, ...] | None:
    """Pixel size along the spatial axes of the labels, or None."""
    if spacing is None:
        return None
    spacing = tuple(float(s) for s in spacing)
    spatial = [a for a in axes if a in "zyx"]
    if full_axes and len(spacing) == len(full_axes):
        out = tuple(s for a, s in zip(full_axes, spacing, strict=True) if a in "zyx")
    elif len(spacing) == len(axes):
        out = tuple(s for a, s in zip(axes, spacing, strict=True) if a in "zyx")
    elif len(spacing) == len(spatial):
        out = spacing
    else:
        raise ValueError(
            f"{_OP}: spacing {spacing} does not give one pixel size per axis of {axes!r}"
        )
    if min(out) <= 0:
        raise ValueError(f"{_OP}: pixel sizes in spacing must be > 0; got {spacing}")
    return out


def _channel_layout(
    labels_shape: tuple[int, ...], image_shape: tuple[int, ...], axes: str, full_axes: str
) -> int | None:
    """Position of the channel axis in the image (None: no channel axis)."""
    if image_shape == labels_shape:
        return None
    if len(image_shape) == len(labels_shape) + 1:
        pos = full_axes.index("c") if "c" in full_axes else (1 if axes.startswith("t") else 0)
        rest = image_shape[:pos] + image_shape[pos + 1 :]
        if rest == labels_shape:
            return pos
    raise ValueError(
        f"{_OP}: image shape {image_shape} does not fit labels shape {labels_shape} "
        "(expected the same shape, or the same shape plus one channel axis)"
    )


def _check_properties(properties: Sequence[str], ndim: int) -> list[str]:
    if isinstance(properties, str):
        properties = (properties,)
    unknown = [p for p in properties if p not in PROPERTIES]
    if unknown:
        raise ValueError(
            f"{_OP}: unknown propert{'y' if len(unknown) == 1 else 'ies'} {unknown}; "
            f"choose from {', '.join(PROPERTIES)}"
        )
    props = [p for p in dict.fromkeys(properties) if p != "label"]
    if ndim == 3:
        props = [p for p in props if p not in PROPERTIES_2D_ONLY]
    return props


def _columns(
    props: Sequence[str], spatial_axes: str, physical: bool, n_channels: int, has_t: bool
) -> tuple[list[str], dict[str, str]]:
    """Output columns in order, and the unit of each physical column."""
    cols = ["t"] if has_t else []
    cols.append("label")
    units: dict[str, str] = {}
    nd = len(spatial_axes)
    for p in props:
        if p == "area":
            cols.append("area")
            if physical:
                cols.append("area_physical")
                units["area_physical"] = f"{SPACING_UNIT}^{nd}"
        elif p == "centroid":
            cols += [f"centroid_{a}" for a in spatial_axes]
            if physical:
                for a in spatial_axes:
                    cols.append(f"centroid_{a}_physical")
                    units[f"centroid_{a}_physical"] = SPACING_UNIT
        elif p == "bbox":
            cols += [f"bbox_min_{a}" for a in spatial_axes]
            cols += [f"bbox_max_{a}" for a in spatial_axes]
        else:
            cols.append(p)
    for c in range(n_channels):
        cols += [f"{s}_intensity_{c}" for s in INTENSITY_STATS]
    return cols, units


@dataclass(frozen=True)
class MeasurePlan:
    """What :func:`regionprops` measures, checked from the shapes and settings alone."""

    labels_shape: tuple[int, ...]
    spatial_axes: str
    spacing: tuple[float, ...] | None
    props: list[str]
    c_pos: int | None
    n_channels: int
    has_t: bool
    columns: list[str]
    units: dict[str, str]


def measure_plan(
    labels_shape: Sequence[int],
    image_shape: Sequence[int] | None,
    properties: Sequence[str],
    axes: str,
    spacing: Sequence[float] | None,
) -> MeasurePlan:
    """Check the settings of :func:`regionprops` against the data's shapes; say what it measures.

    Raises
    ------
    ValueError
        Axes, shapes, spacing or properties that cannot be measured.
    """
    lab_shape = tuple(int(n) for n in labels_shape)
    lab_axes = _label_axes(axes, len(lab_shape))
    if 0 in lab_shape:
        raise ValueError(f"{_OP}: the labels are empty (shape {lab_shape})")
    spatial_axes = lab_axes.replace("t", "")
    sp = _spatial_spacing(spacing, lab_axes, axes)
    props = _check_properties(properties, len(spatial_axes))
    c_pos = None
    n_channels = 0
    if image_shape is not None:
        img_shape = tuple(int(n) for n in image_shape)
        c_pos = _channel_layout(lab_shape, img_shape, lab_axes, axes)
        n_channels = 1 if c_pos is None else img_shape[c_pos]
    has_t = lab_axes.startswith("t")
    columns, units = _columns(props, spatial_axes, sp is not None, n_channels, has_t)
    return MeasurePlan(lab_shape, spatial_axes, sp, props, c_pos, n_channels, has_t, columns, units)


#: Shown once where objects are flat: scikit-image's convex hull fails on them.
FLAT_SOLIDITY = (
    f"{_OP}: solidity is undefined for flat objects (all pixels in one plane or line, "
    "no convex volume); it is NaN for them"
)


def shape_properties(lab: np.ndarray, props: Sequence[str]) -> dict[str, Any]:
    """scikit-image's ``regionprops_table`` of ``label`` and ``props``, flat objects handled.

    scikit-image computes a flat object's solidity (``area / area_convex``)
    after Qhull fails on it: a long Qhull warning per object, then a division
    by zero (``inf``). Here the solidity is NaN and :data:`FLAT_SOLIDITY` is
    warned once. The division is silenced with ``np.errstate`` (per thread);
    Qhull's warning with a filter, which is process-wide: blocks measured in
    threads at once can leave that one filter in place, silencing only
    scikit-image's convex-hull warning.
    """
    import warnings

    from skimage.measure import regionprops_table

    with warnings.catch_warnings(), np.errstate(divide="ignore"):
        warnings.filterwarnings("ignore", message="Failed to get convex hull image")
        raw = regionprops_table(lab, properties=("label", *props))
    if "solidity" in raw:
        solidity = np.asarray(raw["solidity"], dtype=np.float64)
        flat = ~np.isfinite(solidity)
        if flat.any():
            raw["solidity"] = np.where(flat, np.nan, solidity)
            warnings.warn(FLAT_SOLIDITY, RuntimeWarning, stacklevel=2)
    return raw


def check_labels_dtype(dtype: Any) -> None:
    """Raise ValueError unless ``dtype`` holds integer object ids."""
    if np.dtype(dtype).kind not in "iu":
        raise ValueError(f"{_OP}: labels must hold integer object ids; got {np.dtype(dtype)}")


def _measure_block(
    lab: np.ndarray,
    img: np.ndarray | None,
    props: Sequence[str],
    spatial_axes: str,
    spacing: tuple[float, ...] | None,
) -> dict[str, np.ndarray]:
    """Measure one spatial block; ``img`` has the channel axis last (or is None)."""
    check_labels_dtype(lab.dtype)
    if lab.dtype.kind == "i" and lab.size and lab.min() < 0:
        raise ValueError(f"{_OP}: labels contain negative object ids")
    raw = shape_properties(lab, props)
    out: dict[str, np.ndarray] = {"label": np.asarray(raw["label"], dtype=np.int64)}
    nd = len(spatial_axes)
    for p in props:
        if p == "area":
            out["area"] = np.asarray(raw["area"]).round().astype(np.int64)
        elif p == "centroid":
            for i, a in enumerate(spatial_axes):
                out[f"centroid_{a}"] = np.asarray(raw[f"centroid-{i}"], dtype=np.float64)
        elif p == "bbox":
            for i, a in enumerate(spatial_axes):
                out[f"bbox_min_{a}"] = np.asarray(raw[f"bbox-{i}"], dtype=np.int64)
                out[f"bbox_max_{a}"] = np.asarray(raw[f"bbox-{i + nd}"], dtype=np.int64)
        else:
            out[p] = np.asarray(raw[p], dtype=np.float64)
    if img is not None:
        ids = out["label"]
        counts = np.bincount(lab.ravel())[ids] if ids.size else np.zeros(0, np.int64)
        for c in range(img.shape[-1]):
            chan = img[..., c]
            if ids.size:
                total = np.asarray(ndi.sum_labels(chan, lab, ids), dtype=np.float64)
                lo = np.asarray(ndi.minimum(chan, lab, ids), dtype=np.float64)
                hi = np.asarray(ndi.maximum(chan, lab, ids), dtype=np.float64)
            else:
                total = lo = hi = np.zeros(0)
            out[f"mean_intensity_{c}"] = total / np.maximum(counts, 1)
            out[f"min_intensity_{c}"] = lo
            out[f"max_intensity_{c}"] = hi
            out[f"sum_intensity_{c}"] = total
    add_physical(out, spatial_axes, spacing)
    return out


def add_physical(
    out: dict[str, np.ndarray], spatial_axes: str, spacing: tuple[float, ...] | None
) -> None:
    """Add the physical columns (``area_physical``, ``centroid_<axis>_physical``) to ``out``."""
    if spacing is None:
        return
    if "area" in out:
        out["area_physical"] = out["area"] * float(np.prod(spacing))
    for i, a in enumerate(spatial_axes):
        if f"centroid_{a}" in out:
            out[f"centroid_{a}_physical"] = out[f"centroid_{a}"] * spacing[i]


def assemble_table(
    per_frame: Iterable[tuple[int | None, dict[str, np.ndarray]]],
    columns: Sequence[str],
    units: dict[str, str],
    spacing: tuple[float, ...] | None,
) -> pd.DataFrame:
    """Build the :func:`regionprops` table from per-frame columns (``t`` None without a t axis)."""
    frames: list[pd.DataFrame] = []
    for t, data in per_frame:
        if not data["label"].size:
            continue
        if t is not None:
            data = {"t": np.full(data["label"].size, t, dtype=np.int64), **data}
        # the columns as they are (no consolidated copy): a table of 10^5 objects or more
        # is measured chunk-wise, where every copy counts
        frames.append(pd.DataFrame(data, columns=columns, copy=False))
    if len(frames) == 1:
        df = frames[0]
    else:
        df = pd.concat(frames, ignore_index=True) if frames else _empty_frame(columns)
    df.attrs["units"] = units
    df.attrs["spacing"] = list(spacing) if spacing is not None else None
    return df


def _empty_frame(columns: Sequence[str]) -> pd.DataFrame:
    ints = {"t", "label", "area"}
    return pd.DataFrame(
        {
            c: pd.Series(dtype=np.int64 if c in ints or c.startswith("bbox_") else np.float64)
            for c in columns
        }
    )


@register_op(
    "measure.regionprops",
    category="measure",
    spatial=False,
    memory=(64, 0),
)
def regionprops(
    labels: Labels,
    image: Image | None = None,
    *,
    properties: tuple[str, ...] = DEFAULT_PROPERTIES,
    axes: str = "",
    spacing: tuple[float, ...] | None = None,
) -> Table:
    """Measure every object: size, position, shape and (with an image) intensity.

    One row per object (per time point when there is a ``t`` axis), sorted by
    ``t`` then ``label``. Columns, in this order:

    * ``t`` (only with a time axis), ``label``;
    * ``area``: pixels (voxels in 3D) and, when the pixel size is known,
      ``area_physical`` in um^2 (um^3 in 3D);
    * ``centroid_z`` (3D), ``centroid_y``, ``centroid_x`` in pixels and
      ``centroid_<axis>_physical`` in um when the pixel size is known;
    * ``bbox_min_<axis>``, ``bbox_max_<axis>``: bounding box in pixels
      (max exclusive);
    * the other chosen properties (``eccentricity``, ``solidity``...; 2D-only
      ones, such as eccentricity and perimeter, are left out for 3D);
    * with an image, per channel ``c`` (0 without a channel axis):
      ``mean_intensity_<c>``, ``min_intensity_<c>``, ``max_intensity_<c>``,
      ``sum_intensity_<c>``.

    ``df.attrs["units"]`` gives the unit of each physical column and
    ``df.attrs["spacing"]`` the pixel size used (assumed in um).

    Parameters
    ----------
    labels : Labels
        Labels (``yx``, ``zyx``, ``tyx`` or ``tzyx``), 0 is background.
    image : Image, optional
        Intensity image of the same shape, optionally with a channel axis
        (``tczyx`` order), to measure intensities.
    properties : tuple of str
        Measurements: any of area, centroid, bbox, eccentricity, solidity,
        perimeter, orientation, axis_major_length, axis_minor_length, extent,
        equivalent_diameter_area.
    axes : str
        Axes of the labels (or of the image), e.g. ``"tyx"`` (filled by the
        pipeline; when empty, 2D is ``yx``, 3D ``zyx``, 4D ``tzyx``).
    spacing : tuple of float, optional
        Pixel size per axis, same order as ``axes`` (filled by the pipeline).

    Returns
    -------
    Table
        One row per object (and time point).
    """
    plan = measure_plan(
        np.shape(labels), None if image is None else np.shape(image), properties, axes, spacing
    )
    has_t, c_pos, sp = plan.has_t, plan.c_pos, plan.spacing

    def per_frame() -> Iterator[tuple[int | None, dict[str, np.ndarray]]]:
        for t in range(plan.labels_shape[0]) if has_t else [None]:
            lab = np.asarray(labels if t is None else labels[t])
            img = None
            if image is not None:
                block = image if t is None else image[t]
                if c_pos is None:
                    img = np.asarray(block)[..., np.newaxis]
                else:
                    img = np.moveaxis(np.asarray(block), c_pos - (1 if has_t else 0), -1)
            yield t, _measure_block(lab, img, plan.props, plan.spatial_axes, sp)

    return assemble_table(per_frame(), plan.columns, plan.units, sp)


def measured_columns(
    properties: Sequence[str] = DEFAULT_PROPERTIES,
    *,
    axes: str = "yx",
    physical: bool = False,
    n_channels: int = 0,
) -> list[str]:
    """Columns that :func:`regionprops` returns for these settings (in order).

    Parameters
    ----------
    properties : sequence of str
        As for :func:`regionprops`.
    axes : str
        Axes of the labels (``yx``, ``zyx``, ``tyx``, ``tzyx``).
    physical : bool
        Whether the pixel size is known.
    n_channels : int
        Number of image channels measured (0 without an image).

    Returns
    -------
    list of str
        Column names.
    """
    spatial_axes = axes.replace("t", "")
    props = _check_properties(properties, len(spatial_axes))
    return _columns(props, spatial_axes, physical, n_channels, axes.startswith("t"))[0]
