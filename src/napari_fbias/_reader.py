"""napari reader contributions: OME-Zarr folders and URLs, OME-TIFF and TIFF files.

Each ``napari_get_*reader`` answers quickly and only for what it can read:
``napari_get_reader`` for OME-Zarr (a cheap look at the top-level metadata),
``napari_get_tiff_reader`` for local TIFF files whose axes it can tell (their
metadata are parsed, no pixels read). For anything else they return None so
that other readers can try; the manifest claims only ``*.zarr``, folders and
``*.tif``/``*.tiff``. Layers come with the physical pixel size, axes and
channel names and colours, exactly as the pipeline runner reads the file.
No Qt here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from napari_fbias._layers import image_to_layer_data
from napari_fbias.io.errors import FbiasIOError
from napari_fbias.io.open import is_ome_zarr, is_omero_source, is_tiff, open_image

__all__ = [
    "napari_get_reader",
    "napari_get_tiff_reader",
    "read_ome_zarr_layers",
    "read_tiff_layers",
]

PathOrPaths = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]
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
    """Return a reader for an OME-Zarr path or URL, None for anything else.

    Parameters
    ----------
    path : str, path-like or list of one
        What napari was asked to open.

    Returns
    -------
    callable or None
        :func:`read_ome_zarr_layers`, or None when ``path`` is not an
        OME-Zarr image (several paths, TIFF files, OMERO links...).
    """
    p = _single_path(path)
    if p is None or is_tiff(p) or is_omero_source(p):
        return None
    if not is_ome_zarr(p):
        return None
    return read_ome_zarr_layers


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
    return image_to_layer_data(open_image(p))


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
