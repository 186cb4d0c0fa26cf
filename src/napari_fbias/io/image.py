"""The one image model of the core: :class:`MultiscaleImage`.

Every reader (OME-Zarr local or remote, TIFF, OMERO) returns this, and every
consumer (the napari reader, the pipeline runner, the session record) reads
it. Pixel data are lazy dask arrays, one per resolution level, largest first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import dask.array as da
import numpy as np

#: Axis names in canonical NGFF order. Any subset, in this order, is allowed.
CANONICAL_AXES = ("t", "c", "z", "y", "x")
SPACE_AXES = ("z", "y", "x")


@dataclass(frozen=True)
class Channel:
    """Display metadata of one channel.

    Parameters
    ----------
    name : str
        Channel label (e.g. ``"DAPI"``).
    color : str or None
        Hex RGB colour without ``#`` (``"00FF00"``), or None for grey.
    window : tuple of float or None
        Contrast limits ``(start, end)`` to display with.
    visible : bool
        Whether the channel is shown when opened.
    """

    name: str
    color: str | None = None
    window: tuple[float, float] | None = None
    visible: bool = True

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, JSON-safe dict."""
        return {
            "name": self.name,
            "color": self.color,
            "window": list(self.window) if self.window is not None else None,
            "visible": self.visible,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Channel:
        """Inverse of :meth:`to_dict`."""
        window = d.get("window")
        return cls(
            name=str(d["name"]),
            color=d.get("color"),
            window=tuple(window) if window is not None else None,  # type: ignore[arg-type]
            visible=bool(d.get("visible", True)),
        )


@dataclass(frozen=True)
class MultiscaleImage:
    """A (possibly multiscale, possibly remote) image, read lazily.

    Parameters
    ----------
    levels : tuple of dask.array.Array
        Pixel data per resolution level, full resolution first. All levels
        have the same number of dimensions, one per entry of ``axes``.
    axes : tuple of str
        Axis names, a subset of ``("t", "c", "z", "y", "x")`` in that order.
    scales : tuple of tuple of float
        Physical size of one pixel along each axis, per level.
    translations : tuple of tuple of float
        Physical offset of the first pixel along each axis, per level.
    units : tuple of str or None
        Unit per axis (``"micrometer"``, ``"second"``...), None if unknown.
    channels : tuple of Channel
        One entry per index along ``"c"`` (empty when there is no ``c`` axis
        and no metadata; a single-channel image may carry one entry).
    name : str
        Human-readable name of the image.
    source : str
        Where it came from: a local path, a URL or an ``omero://`` URI.
    labels : Mapping[str, MultiscaleImage]
        Label images attached to this image (OME-Zarr ``labels/``), by name.
    is_label : bool
        True for a label image (integer object ids, 0 = background).
    metadata : Mapping[str, Any]
        Format-specific extras (NGFF version, OMERO ids...), JSON-safe.
    """

    levels: tuple[da.Array, ...]
    axes: tuple[str, ...]
    scales: tuple[tuple[float, ...], ...]
    translations: tuple[tuple[float, ...], ...] = ()
    units: tuple[str | None, ...] = ()
    channels: tuple[Channel, ...] = ()
    name: str = "image"
    source: str = ""
    labels: Mapping[str, MultiscaleImage] = field(default_factory=dict)
    is_label: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.levels:
            raise ValueError("an image needs at least one resolution level")
        ndim = self.levels[0].ndim
        if len(self.axes) != ndim:
            raise ValueError(f"axes {self.axes} do not match data with {ndim} dimensions")
        validate_axes(self.axes)
        for i, level in enumerate(self.levels):
            if level.ndim != ndim:
                raise ValueError(f"level {i} has {level.ndim} dimensions, level 0 has {ndim}")
        if len(self.scales) != len(self.levels):
            raise ValueError("one scale per level is needed")
        for s in self.scales:
            if len(s) != ndim:
                raise ValueError(f"scale {s} does not have one value per axis {self.axes}")
        if not self.translations:
            object.__setattr__(self, "translations", tuple((0.0,) * ndim for _ in self.levels))
        if not self.units:
            object.__setattr__(self, "units", (None,) * ndim)

    # --- convenience -------------------------------------------------------------
    @property
    def data(self) -> da.Array:
        """Full-resolution pixel data (lazy)."""
        return self.levels[0]

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the full-resolution level."""
        return tuple(int(n) for n in self.levels[0].shape)

    @property
    def dtype(self) -> np.dtype:
        """Pixel type."""
        return self.levels[0].dtype

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return len(self.axes)

    @property
    def scale(self) -> tuple[float, ...]:
        """Pixel size of the full-resolution level, per axis."""
        return self.scales[0]

    @property
    def is_multiscale(self) -> bool:
        """True when there is more than one resolution level."""
        return len(self.levels) > 1

    def axis_index(self, axis: str) -> int | None:
        """Return the position of ``axis`` or None if the image has no such axis."""
        return self.axes.index(axis) if axis in self.axes else None

    def spatial_scale(self) -> tuple[float, ...]:
        """Pixel size along the spatial axes (z, y, x present), full resolution."""
        return tuple(s for a, s in zip(self.axes, self.scale, strict=True) if a in SPACE_AXES)

    def with_(self, **changes: Any) -> MultiscaleImage:
        """Return a copy with some fields replaced."""
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """Return a JSON-safe summary (no pixel data), for records and logs."""
        return {
            "name": self.name,
            "source": self.source,
            "axes": "".join(self.axes),
            "shape": list(self.shape),
            "dtype": str(self.dtype),
            "levels": len(self.levels),
            "scale": list(self.scale),
            "units": list(self.units),
            "channels": [c.to_dict() for c in self.channels],
            "labels": sorted(self.labels),
            "is_label": self.is_label,
        }


def validate_axes(axes: Sequence[str]) -> None:
    """Check that ``axes`` is an allowed subset of TCZYX in canonical order.

    Raises
    ------
    UnsupportedAxesError
        With the reason, e.g. a repeated or unknown axis.
    """
    from napari_fbias.io.errors import UnsupportedAxesError

    axes = tuple(axes)
    unknown = [a for a in axes if a not in CANONICAL_AXES]
    if unknown:
        raise UnsupportedAxesError(
            f"unsupported axis name(s) {unknown}; expected a subset of {''.join(CANONICAL_AXES)}"
        )
    if len(set(axes)) != len(axes):
        raise UnsupportedAxesError(f"repeated axis in {''.join(axes)}")
    order = [CANONICAL_AXES.index(a) for a in axes]
    if order != sorted(order):
        raise UnsupportedAxesError(f"axes {''.join(axes)} are not in t, c, z, y, x order")
    n_space = sum(a in SPACE_AXES for a in axes)
    if n_space < 2:
        raise UnsupportedAxesError(
            f"axes {''.join(axes)} have {n_space} spatial axis; at least y and x are needed"
        )


def from_array(
    data: Any,
    axes: str | Sequence[str],
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    channels: Sequence[Channel] = (),
    name: str = "image",
    source: str = "",
    is_label: bool = False,
    chunks: Any = "auto",
) -> MultiscaleImage:
    """Wrap an in-memory (numpy or dask) array as a single-level image."""
    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=chunks)
    axes_t = tuple(axes)
    scale_t = tuple(float(s) for s in scale) if scale is not None else (1.0,) * arr.ndim
    return MultiscaleImage(
        levels=(arr,),
        axes=axes_t,
        scales=(scale_t,),
        units=tuple(units) if units is not None else (),
        channels=tuple(channels),
        name=name,
        source=source,
        is_label=is_label,
    )
