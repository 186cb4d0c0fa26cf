"""Read a TIFF (OME-TIFF, ImageJ hyperstack or plain) lazily as a MultiscaleImage.

Pixels are read through tifffile's zarr interface (one dask array per
pyramid level), so nothing is read at open. Axes, pixel sizes and units come
from the OME-XML or ImageJ metadata when present; a plain TIFF is taken as
``yx`` (2D) or ``zyx`` (3D), an RGB(A) one as ``cyx``, unless ``axes=`` says
otherwise.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import tifffile
import zarr
from dask.base import tokenize

from napari_fbias.io.errors import FbiasIOError, MetadataError, UnsupportedAxesError
from napari_fbias.io.image import (
    CANONICAL_AXES,
    SPACE_AXES,
    Channel,
    MultiscaleImage,
    validate_axes,
)
from napari_fbias.io.limits import checked_pixel_size as _pixel_size
from napari_fbias.io.limits import dask_chunks, log_ignored_pixel_sizes
from napari_fbias.io.region_read import SelectedRegions, region_array

__all__ = ["read_tiff"]

logger = logging.getLogger(__name__)

_UNITS = {
    "µm": "micrometer",
    "\u03bcm": "micrometer",
    "um": "micrometer",
    "micron": "micrometer",
    "microns": "micrometer",
    "micrometer": "micrometer",
    "\\u00b5m": "micrometer",
    "nm": "nanometer",
    "nanometer": "nanometer",
    "mm": "millimeter",
    "millimeter": "millimeter",
    "cm": "centimeter",
    "m": "meter",
    "s": "second",
    "sec": "second",
    "second": "second",
    "ms": "millisecond",
    "millisecond": "millisecond",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hour": "hour",
}


def _unit(raw: Any) -> str | None:
    if not raw:
        return None
    return _UNITS.get(str(raw).strip().lower(), _UNITS.get(str(raw).strip()))


def _map_axes(letters: str, shape: Sequence[int], path: Path) -> list[str | None]:
    """Map tifffile axis letters to ours; None marks a size-1 axis to drop."""
    out: list[str | None] = []
    has_c = "C" in letters
    for letter, n in zip(letters, shape, strict=True):
        name = {"T": "t", "C": "c", "Z": "z", "Y": "y", "X": "x"}.get(letter)
        if letter == "S" and not has_c:
            name = "c"
        if name is None:
            if n == 1:
                out.append(None)
                continue
            raise UnsupportedAxesError(
                f"{path}: TIFF axis {letter!r} (size {n}) in {letters!r} is not one of TCZYX; "
                "pass axes= to say what each dimension is"
            )
        out.append(name)
    return out


def _infer_axes(letters: str, shape: Sequence[int], path: Path) -> list[str | None]:
    """Axes of a TIFF without OME/ImageJ metadata: yx, zyx, or cyx for RGB."""
    if letters.endswith("YXS"):
        rest = len(shape) - 3
        if rest == 0:
            return ["y", "x", "c"]
        if rest == 1:
            return ["z", "y", "x", "c"]
    if len(shape) == 2:
        return ["y", "x"]
    if len(shape) == 3:
        return ["z", "y", "x"]
    raise UnsupportedAxesError(
        f"{path}: {len(shape)}D TIFF without axis metadata (shape {tuple(shape)}); "
        "pass axes= (e.g. axes='tzyx') to say what each dimension is"
    )


def _ome_info(
    ome_xml: str, path: Path, ignored: dict[str, str]
) -> tuple[dict[str, float], dict[str, str | None], list]:
    """Pixel sizes, units and channels from OME-XML (first image)."""
    try:
        root = ET.fromstring(ome_xml)
    except ET.ParseError as exc:
        raise MetadataError(f"{path}: broken OME-XML metadata: {exc}") from exc
    pixels = next((el for el in root.iter() if el.tag.endswith("}Pixels")), None)
    sizes: dict[str, float] = {}
    units: dict[str, str | None] = {}
    channels: list[Channel] = []
    if pixels is None:
        return sizes, units, channels
    for ax in ("x", "y", "z"):
        v = pixels.get(f"PhysicalSize{ax.upper()}")
        size = None if v is None else _pixel_size(v, ax, ignored)
        if size is not None:
            sizes[ax] = size
            units[ax] = _unit(pixels.get(f"PhysicalSize{ax.upper()}Unit", "µm"))
    v = pixels.get("TimeIncrement")
    step = None if v is None else _pixel_size(v, "t", ignored)
    if step is not None:
        sizes["t"] = step
        units["t"] = _unit(pixels.get("TimeIncrementUnit", "s"))
    for i, ch in enumerate(el for el in pixels if el.tag.endswith("}Channel")):
        color = None
        if ch.get("Color") is not None:
            rgba = int(ch.get("Color", "-1")) & 0xFFFFFFFF
            color = f"{rgba >> 24:02X}{(rgba >> 16) & 0xFF:02X}{(rgba >> 8) & 0xFF:02X}"
        channels.append(Channel(name=ch.get("Name") or f"channel {i}", color=color))
    return sizes, units, channels


def _imagej_info(
    tif: tifffile.TiffFile, ignored: dict[str, str]
) -> tuple[dict[str, float], dict[str, str | None]]:
    meta = tif.imagej_metadata or {}
    sizes: dict[str, float] = {}
    units: dict[str, str | None] = {}
    unit = _unit(meta.get("unit"))
    page = tif.pages.first
    for ax, tag in (("x", "XResolution"), ("y", "YResolution")):
        res = page.tags.get(tag)
        if res is not None:
            num, den = res.value
            size = _pixel_size(den / num if num else math.inf, ax, ignored, f"{den}/{num}")
            if size is not None:
                sizes[ax] = size
                units[ax] = unit
    for key, ax, ax_unit in (("spacing", "z", unit), ("finterval", "t", "second")):
        raw = meta.get(key)
        size = None if raw is None else _pixel_size(raw, ax, ignored)
        if size is not None:
            sizes[ax] = size
            units[ax] = ax_unit
    return sizes, units


class TiffLevel:
    """Array-like view of one pyramid level of a TIFF's first series, for dask.

    Reads go through tifffile's zarr store, opened on first use; the file is
    closed when this object is garbage collected. Pickling keeps only the
    path and level, so dask graphs can be sent to other processes (the file
    is re-opened there).

    Parameters
    ----------
    path : pathlib.Path
        The TIFF file.
    level : int
        Pyramid level (0 = full resolution).
    """

    def __init__(self, path: Path, level: int) -> None:
        self.path = Path(path)
        self.level = int(level)
        self._lock = threading.Lock()
        self._array: zarr.Array | None = None
        arr = self._open()
        self.shape: tuple[int, ...] = tuple(arr.shape)
        self.dtype = arr.dtype
        self.ndim = len(self.shape)
        self.chunks: tuple[int, ...] = tuple(arr.chunks)

    def _open(self) -> zarr.Array:
        with self._lock:
            if self._array is None:
                store = tifffile.imread(self.path, aszarr=True, series=0, level=self.level)
                self._array = zarr.open_array(store, mode="r")
                weakref.finalize(self, store.close)
            return self._array

    def __getitem__(self, key: Any) -> np.ndarray:
        """Read a region (numpy basic indexing)."""
        return np.asarray(self._open()[key])

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "level": self.level}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["level"])  # type: ignore[misc]


def read_tiff(
    path: str | os.PathLike[str], *, axes: str | Sequence[str] | None = None
) -> MultiscaleImage:
    """Open a TIFF file lazily.

    Parameters
    ----------
    path : path-like
        A ``.tif``/``.tiff`` file (OME-TIFF, ImageJ or plain TIFF).
    axes : str or sequence of str, optional
        Names (from ``tczyx``) of the stored dimensions in storage order, to
        override or supply the axes (e.g. ``"ztyx"``; the data are transposed
        to ``tczyx`` order).

    Returns
    -------
    MultiscaleImage
        One level per pyramid level of the first series.

    Raises
    ------
    FbiasIOError
        If the file cannot be read as TIFF.
    UnsupportedAxesError
        If the axes cannot be worked out (pass ``axes=``).
    TooLargeError
        If the file claims more than the limits of :mod:`napari_fbias.io.limits`.

    Notes
    -----
    A pixel size or time step that is not a positive finite number (NaN,
    zero, negative, infinite) is ignored with a logged warning: that axis gets
    a size of 1 and no unit, and the image's ``metadata["ignored_pixel_sizes"]``
    lists what was ignored.
    """
    p = Path(path).expanduser().resolve()
    try:
        with tifffile.TiffFile(p) as tif:
            series = tif.series[0]
            letters, shape = series.axes, tuple(series.shape)
            n_levels = len(series.levels)
            sizes: dict[str, float] = {}
            units: dict[str, str | None] = {}
            channels: list[Channel] = []
            ignored: dict[str, str] = {}
            if tif.is_ome and tif.ome_metadata:
                sizes, units, channels = _ome_info(tif.ome_metadata, p, ignored)
            elif tif.is_imagej:
                sizes, units = _imagej_info(tif, ignored)
            is_ome = bool(tif.is_ome)
            has_meta = bool(tif.is_ome or tif.is_imagej)
    except IndexError as exc:  # tifffile found no image series: a truncated/corrupt file
        raise FbiasIOError(f"cannot read {p} as TIFF: the file holds no image") from exc
    except (OSError, ValueError, tifffile.TiffFileError) as exc:
        raise FbiasIOError(f"cannot read {p} as TIFF: {exc}") from exc

    if axes is not None:
        names: list[str | None] = list(axes)
        if len(names) != len(shape):
            raise UnsupportedAxesError(
                f"{p}: axes {''.join(axes)!r} do not match the stored shape {shape}"
            )
        for n in names:
            if n not in CANONICAL_AXES:
                raise UnsupportedAxesError(f"{p}: unknown axis {n!r} in axes= (use tczyx)")
    elif has_meta:
        names = _map_axes(letters, shape, p)
    else:
        names = _infer_axes(letters, shape, p)

    log_ignored_pixel_sizes(logger, str(p), ignored)
    kept = [n for n in names if n is not None]
    order = sorted(kept, key=CANONICAL_AXES.index)
    try:
        validate_axes(order)
    except UnsupportedAxesError as exc:
        raise UnsupportedAxesError(f"{p}: {exc}") from exc

    levels = []
    for k in range(n_levels):
        source = TiffLevel(p, k)
        token = tokenize(str(p), p.stat().st_mtime_ns, k)
        arr = da.from_array(
            source,
            chunks=dask_chunks(
                source.shape,
                source.dtype,
                source.chunks,
                [n in SPACE_AXES for n in names],
                where=f"{p} (level {k})" if n_levels > 1 else str(p),
                target_bytes=0,
            ),
            name=f"tiff-source-{token}",
            meta=np.empty((0,) * source.ndim, dtype=source.dtype),
        )
        index = tuple(0 if n is None else slice(None) for n in names)
        perm = [kept.index(a) for a in order]
        arr = arr[index].transpose(perm)
        # one task per block reading its region (io/region_read.py), not the
        # slicing and transposing layers: a graph that does not grow with the image
        reader = SelectedRegions(source, [n is not None for n in names], perm)
        levels.append(region_array(reader, arr.chunks, "tiff", token))

    base = tuple(sizes.get(a, 1.0) for a in order)
    scales = []
    for lv in levels:
        scales.append(
            tuple(
                s * (levels[0].shape[i] / lv.shape[i]) if a in ("y", "x") else s
                for i, (a, s) in enumerate(zip(order, base, strict=True))
            )
        )
    n_c = levels[0].shape[order.index("c")] if "c" in order else 1
    chans = tuple(channels) if len(channels) == n_c and channels else ()
    name = p.name
    for suffix in (".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return MultiscaleImage(
        levels=tuple(levels),
        axes=tuple(order),
        scales=tuple(scales),
        units=tuple(units.get(a) for a in order),
        channels=chans,
        name=name,
        source=str(p),
        metadata={
            "format": "ome-tiff" if is_ome else "tiff",
            "tiff_axes": letters,
            **({"ignored_pixel_sizes": ignored} if ignored else {}),
        },
    )
