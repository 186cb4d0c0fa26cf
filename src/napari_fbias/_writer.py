"""napari writer contribution: save a labels layer as OME-Zarr.

Two cases, decided by what ``path`` is:

* ``path`` is an existing OME-Zarr image: the layer is added to it as
  ``labels/<layer name>`` (the image's levels, scales and NGFF version;
  the image's data are not touched). An existing label image of that name
  is never replaced: rename the layer or delete the old labels first.
* ``path`` does not exist: a new OME-Zarr store (NGFF 0.4) is created whose
  image *is* the label image (``image-label`` metadata at its root), with the
  layer's scale and units. Opening it again gives a labels layer.

Anything else that exists at ``path`` is refused. No Qt here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from napari_fbias.io.errors import OutputExistsError
from napari_fbias.io.image import CANONICAL_AXES
from napari_fbias.io.ome_zarr_read import is_ome_zarr
from napari_fbias.io.ome_zarr_write import write_label_image, write_labels

__all__ = ["label_name", "write_labels_layer"]


def label_name(layer_name: str) -> str:
    """Turn a layer name into a safe label image name (letters, digits, ``_-.``)."""
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", layer_name.strip()).strip("._") or "labels"
    return name


def _axes(meta: Mapping[str, Any], ndim: int) -> tuple[str, ...]:
    axes = (meta.get("metadata") or {}).get("axes")
    if isinstance(axes, str) and len(axes) == ndim and "c" not in axes:
        return tuple(axes)
    axis_labels = meta.get("axis_labels")
    if axis_labels is not None and all(str(a) in CANONICAL_AXES for a in axis_labels):
        labels = tuple(str(a) for a in axis_labels)
        if len(labels) == ndim and "c" not in labels:
            return labels
    return tuple(a for a in CANONICAL_AXES if a != "c")[-ndim:]


def _units(meta: Mapping[str, Any], ndim: int) -> tuple[str | None, ...] | None:
    units = meta.get("units")
    if not isinstance(units, Sequence) or len(units) != ndim:
        return None
    out = tuple(None if str(u) in ("pixel", "", "None") else str(u) for u in units)
    return out if any(out) else None


def write_labels_layer(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """Write one napari labels layer as OME-Zarr (npe2 single-layer writer).

    Parameters
    ----------
    path : str
        An existing OME-Zarr image (labels are added to it) or a new path.
    data : array-like or list of array-like
        The layer data (for a multiscale layer the full resolution is used).
    meta : dict
        The layer's attributes (``name``, ``scale``, ``units``, ``metadata``...).

    Returns
    -------
    list of str
        The path written: ``<image>/labels/<name>`` or the new store.

    Raises
    ------
    OutputExistsError
        If ``path`` exists but is not an OME-Zarr image, or already has labels
        of that name.
    """
    arr = data[0] if meta.get("multiscale") or isinstance(data, list | tuple) else data
    name = label_name(str(meta.get("name") or "labels"))
    dest = Path(path).expanduser()
    if dest.exists():
        if not is_ome_zarr(dest):
            raise OutputExistsError(
                f"{dest} exists and is not an OME-Zarr image: choose a new path, or an "
                "OME-Zarr image to add the labels to"
            )
        return [write_labels(dest, arr, name)]
    ndim = len(arr.shape)
    scale = meta.get("scale")
    return [
        write_label_image(
            dest,
            arr,
            _axes(meta, ndim),
            scale=tuple(float(s) for s in scale) if scale is not None else None,
            units=_units(meta, ndim),
            name=name,
        )
    ]
