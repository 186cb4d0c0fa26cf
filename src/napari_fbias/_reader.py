"""napari reader contributions: OME-Zarr images, plates and URLs, OME-TIFF and TIFF files.

Each ``napari_get_*reader`` answers quickly and only for what it can read:
``napari_get_reader`` for OME-Zarr (a cheap look at the top-level metadata;
images and bioformats2raw series as layers, an extra axis such as ``angle``
as a slider of the image's layers, plates as a tiled overview with their
wells outlined and named),
``napari_get_tiff_reader`` for local TIFF files whose axes it can tell (their
metadata are parsed, no pixels read). For anything else they return None so
that other readers can try; the manifest claims only ``*.zarr``, folders and
``*.tif``/``*.tiff``. Layers come with the physical pixel size, axes and
channel names and colours, exactly as the pipeline runner reads the file.
No Qt here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from napari_fbias._layers import image_to_layer_data
from napari_fbias.io.errors import ExtraAxesError, FbiasIOError
from napari_fbias.io.ome_zarr_plate import Plate, container_kind, plate_overview, read_plate
from napari_fbias.io.ome_zarr_read import read_extra_stack, read_ome_zarr
from napari_fbias.io.open import is_ome_zarr, is_omero_source, is_tiff, open_image
from napari_fbias.io.remote import is_remote, local_path

__all__ = [
    "napari_get_reader",
    "napari_get_tiff_reader",
    "read_ome_zarr_layers",
    "plate_layer_data",
    "read_plate_layers",
    "read_tiff_layers",
]

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
#: Most series of a bioformats2raw container opened as layers at once.
MAX_SERIES_LAYERS = 16
LayerData = tuple[Any, dict[str, Any], str]


def _single_path(path: PathOrPaths) -> str | None:
    if isinstance(path, list | tuple):
        if len(path) != 1:
            return None
        path = path[0]
    if isinstance(path, str | os.PathLike):
        return os.fspath(path)
    return None


def napari_get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """Return a reader for an OME-Zarr image, container or plate (path or URL), else None.

    Parameters
    ----------
    path : str, path-like or list of one
        What napari was asked to open.

    Returns
    -------
    callable or None
        :func:`read_ome_zarr_layers` (:func:`read_plate_layers` for a plate),
        or None when ``path`` is not an
        OME-Zarr image (several paths, TIFF files, OMERO links...).
    """
    p = _single_path(path)
    if p is None or is_tiff(p) or is_omero_source(p):
        return None
    if is_ome_zarr(p):
        return read_ome_zarr_layers
    if _may_be_zarr(p) and container_kind(p) == "plate":
        return read_plate_layers
    return None


def _may_be_zarr(p: str) -> bool:
    """Cheap local pre-check: a folder with zarr metadata (a URL is asked)."""
    if is_remote(p):
        return True
    try:
        folder = local_path(p)
    except FbiasIOError:
        return False
    return (folder / "zarr.json").is_file() or (folder / ".zattrs").is_file()


def read_ome_zarr_layers(path: PathOrPaths) -> list[LayerData]:
    """Open an OME-Zarr image lazily and return its napari layer data.

    Parameters
    ----------
    path : str, path-like or list of one
        Local folder or URL of an OME-Zarr image.

    Returns
    -------
    list of tuple
        Image layer(s) and label layers, see
        :func:`napari_fbias._layers.image_to_layer_data`.
    """
    p = _single_path(path)
    if p is None:
        raise FbiasIOError(f"the OME-Zarr reader opens one path at a time, got {path!r}")
    try:
        first = open_image(p)
    except ExtraAxesError:
        return _extra_axes_layers(p)
    series = first.metadata.get("series")
    if not series or series["count"] == 1:
        return image_to_layer_data(first)
    # a bioformats2raw container of several images: each series its own layer(s)
    count = series["count"]
    shown = min(count, MAX_SERIES_LAYERS)
    if count > shown:
        warnings.warn(
            f"{p} holds {count} series; the first {shown} are opened. Open another one with "
            "read_ome_zarr(path, series=N) or run a pipeline on all of them with `fbias run`.",
            stacklevel=2,
        )
    else:
        warnings.warn(f"{p} holds {count} series: each is opened as its own layer(s)", stacklevel=2)
    layers = []
    for i in range(shown):
        img = first if i == 0 else read_ome_zarr(p, series=i)
        img = replace(img, name=f"{img.name} (series {i})")
        layers += image_to_layer_data(img)
    return layers


def _extra_axes_layers(p: str) -> list[LayerData]:
    """Open an image with extra axes (``angle``...) as layers with a slider for each.

    One layer per channel (and label image) as for any image, with the extra
    axes as leading dimensions (lazy, multiscale kept), labelled with their
    names so that napari's sliders say ``angle``. Their metadata carry
    ``extra_axes`` (name, size, type, unit of each leading dimension) and the
    ``tczyx`` axes of one index in ``axes``: an operation run on such a layer
    reads the index shown on the sliders, recorded as ``store[angle=2]``
    (see :func:`napari_fbias._qt.layer_axes.shown_extra`). A label image
    without the extra axes is the same at every index: no leading dimension.
    """
    stack = read_extra_stack(p)
    n = len(stack.axes)
    extra = [a.to_dict() for a in stack.axes]
    lead: dict[str, tuple[Any, ...]] = {
        "scale": (1.0,) * n,
        "translate": (0.0,) * n,
        "axis_labels": tuple(a.name for a in stack.axes),
        "units": ("pixel",) * n,
    }
    layers = []
    for data, kwargs, kind in image_to_layer_data(stack.image):
        if kind == "labels":
            levels = stack.labels.get(kwargs["metadata"].get("label_name"))
            if levels is None:  # no extra axis of its own: shown at every index
                layers.append((data, kwargs, kind))
                continue
        else:
            levels = stack.levels
        data = list(levels) if kwargs.get("multiscale") else levels[0]
        for key, values in lead.items():
            kwargs[key] = (*values, *kwargs[key])
        if "channel_axis" in kwargs:
            kwargs["channel_axis"] += n
        kwargs["metadata"] = {**kwargs["metadata"], "extra_axes": extra}
        layers.append((data, kwargs, kind))
    return layers


def read_plate_layers(path: PathOrPaths) -> list[LayerData]:
    """Open an OME-Zarr plate as an overview and return its napari layer data.

    The overview tiles the first field of every well at a low resolution
    (lazily, see :func:`~napari_fbias.io.ome_zarr_plate.plate_overview`); a
    shapes layer outlines each well with its name. The *Plate* widget opens
    one well's field at full resolution; ``fbias run`` runs a pipeline over
    every field.
    """
    p = _single_path(path)
    if p is None:
        raise FbiasIOError(f"the plate reader opens one path at a time, got {path!r}")
    return plate_layer_data(read_plate(p))


def plate_layer_data(plate: Plate, *, field: int = 0) -> list[LayerData]:
    """Return the layer data of a plate's overview (field ``field``) and of its well outlines.

    The image layers' metadata carry ``plate`` (source, name, field, tile and
    well origins), so a widget can tell which plate an overview shows.
    """
    over = plate_overview(plate, field=field)
    info = dict(over.metadata["plate"], source=plate.source)
    th, tw = info["tile"]
    yi, xi = over.axes.index("y"), over.axes.index("x")
    sy, sx = over.scales[0][yi], over.scales[0][xi]
    names = list(info["origins"])
    boxes = [
        np.array([[y, x], [y, x + tw], [y + th, x + tw], [y + th, x]], dtype=float)
        for y, x in info["origins"].values()
    ]
    wells = (
        boxes,
        {
            "name": f"{info['name']} wells",
            "shape_type": "rectangle",
            "edge_color": "white",
            "edge_width": max(th, tw) / 64,
            "face_color": "transparent",
            "scale": (sy, sx),
            "features": {"well": names},
            "text": {"string": "{well}", "anchor": "upper_left", "color": "white", "size": 10},
            "metadata": {"plate": info},
        },
        "shapes",
    )
    images = image_to_layer_data(over)
    for _data, kwargs, _kind in images:
        kwargs["metadata"] = {**kwargs.get("metadata", {}), "plate": info}
    return [*images, wells]


def napari_get_tiff_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerData]] | None:
    """Return a reader for a local OME-TIFF / TIFF file we can read, None for anything else.

    Parameters
    ----------
    path : str, path-like or list of one
        What napari was asked to open.

    Returns
    -------
    callable or None
        :func:`read_tiff_layers`, or None when ``path`` is not one local TIFF
        file, or one whose axes cannot be told (a 4D TIFF without metadata...).
    """
    from napari_fbias.io.tiff import read_tiff

    p = _single_path(path)
    if p is None or "://" in p or not is_tiff(p) or not os.path.isfile(p):
        return None
    try:
        read_tiff(p)  # metadata only: the pixels stay on disk
    except (FbiasIOError, OSError):
        return None
    return read_tiff_layers


def read_tiff_layers(path: PathOrPaths) -> list[LayerData]:
    """Open a TIFF file lazily and return its napari layer data.

    Parameters
    ----------
    path : str, path-like or list of one
        A local ``.tif``/``.tiff`` file (OME-TIFF, ImageJ or plain TIFF).

    Returns
    -------
    list of tuple
        Image layer(s) with physical scale, axes, channel names and colours,
        see :func:`napari_fbias._layers.image_to_layer_data`.
    """
    p = _single_path(path)
    if p is None:
        raise FbiasIOError(f"the TIFF reader opens one file at a time, got {path!r}")
    return image_to_layer_data(open_image(p))
