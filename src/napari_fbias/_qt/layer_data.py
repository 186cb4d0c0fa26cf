"""Between napari layers and pipeline values.

:func:`layer_value` turns the layer a widget picked into the
:class:`~napari_fbias.pipeline.values.Value` an op receives (with the same
axes, pixel size and selection the headless pipeline would give it);
:func:`value_layer_data` turns an op's output back into napari layer data;
:func:`lost_pixel_size` tells when a layer lost the pixel size of its file.
No widgets here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from napari_fbias._qt.layer_axes import (
    LayerAxesError,
    axes_editable,
    layer_array,
    layer_axes,
    layer_extra,
    layer_kind,
    layer_spacing,
)
from napari_fbias._qt.layer_kinds import OUTPUT_LAYER
from napari_fbias.io.column_table import as_frame
from napari_fbias.pipeline.values import Value

__all__ = [
    "layer_table",
    "layer_value",
    "lost_pixel_size",
    "numeric_columns",
    "select_value",
    "value_layer_data",
]

_AXIS_WORDS = {"t": "time point", "c": "channel", "z": "plane"}


def select_value(value: Value, select: Mapping[str, int], what: str) -> Value:
    """Take one index along ``t``/``c``/``z`` of an array value (that axis is dropped).

    Raises
    ------
    LayerAxesError
        For an axis the data lack or an index out of range.
    """
    if not select:
        return value
    index: list[Any] = [slice(None)] * len(value.axes)
    keep = list(value.axes)
    for axis, i in select.items():
        if axis not in value.axes:
            raise LayerAxesError(f"{what} has no {axis!r} axis (axes {value.axes!r})")
        pos = value.axes.index(axis)
        n = int(value.data.shape[pos])
        if not 0 <= int(i) < n:
            raise LayerAxesError(
                f"{what}: {_AXIS_WORDS.get(axis, axis)} {i} does not exist (0 to {n - 1})"
            )
        index[pos] = int(i)
        keep.remove(axis)
    axes = "".join(keep)
    if sum(a in "zyx" for a in axes) < 2:
        raise LayerAxesError(f"{what}: after selection the data have axes {axes!r}; y, x needed")
    return Value(value.data[tuple(index)], value.kind, axes, value.spacing_of(axes), None)


def layer_table(layer: Any, kind: str) -> pd.DataFrame:
    """Rebuild a tracks / spots table from a Tracks or Points layer (data plus features)."""
    axes = layer_axes(layer)
    data = np.asarray(layer.data)
    features = pd.DataFrame(getattr(layer, "features", None)).reset_index(drop=True)
    if layer_kind(layer) == "tracks":
        cols = ["track_id", *axes]
    else:
        cols = list(axes)
    if data.shape[1] != len(cols):
        raise LayerAxesError(f"layer {layer.name!r}: {data.shape[1]} columns, axes {axes!r}")
    df = pd.DataFrame(data, columns=cols)
    for c in ("track_id", "t"):
        if c in df:
            df[c] = df[c].round().astype(np.int64)
    extra = features.drop(columns=[c for c in cols if c in features], errors="ignore")
    if len(extra) == len(df):
        df = pd.concat([df, extra], axis=1)
    return df


def layer_value(
    layer: Any,
    kind: str,
    *,
    axes: str | None = None,
    select: Mapping[str, int] | None = None,
    cached: Value | None = None,
    extra: Mapping[str, int] | None = None,
) -> Value:
    """Return the data of ``layer`` as the op would receive it in a pipeline.

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer picked for a data input.
    kind : str
        The input's kind (``"image"``, ``"labels"``, ``"tracks"``...).
    axes : str, optional
        The layer's axes, when known better than :func:`layer_axes` tells.
    select : mapping, optional
        Index along ``t``/``c``/``z`` to take (that axis is dropped).
    cached : Value, optional
        For tables: the value the step that made this layer returned (it
        keeps its exact columns and dtypes that way).
    extra : mapping, optional
        Index along the layer's extra axes (``{"angle": 2}``, the index the
        sliders show, :func:`~napari_fbias._qt.layer_axes.shown_extra`);
        required for a layer that has them, which are dropped.

    Raises
    ------
    LayerAxesError
        When the axes, the selection or the extra index do not fit the layer.
    """
    axes = axes or layer_axes(layer)
    if kind in ("image", "labels"):
        data = layer_array(layer, extra)
        spacing = layer_spacing(layer, axes)
        value = Value(data, kind, axes, spacing, None)
        return select_value(value, select or {}, f"layer {layer.name!r}")
    if select or extra:
        raise LayerAxesError(f"layer {layer.name!r}: a {kind} table cannot be cut to one plane")
    if cached is not None and not cached.is_array:
        return Value(cached.data, kind, cached.axes, cached.spacing, cached.units)
    df = layer_table(layer, kind)
    return Value(df, kind, axes, layer_spacing(layer, axes), None)


def numeric_columns(df: pd.DataFrame, skip: tuple[str, ...] = ()) -> list[str]:
    """Names of the numeric columns of a table (to colour tracks by)."""
    return [
        str(c)
        for c in df.columns
        if c not in skip and pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool
    ]


def _grid(like: Any, axes: str) -> dict[str, tuple[Any, ...]]:
    """Scale, translate and units for ``axes`` from the layer the data came from."""
    if like is None:
        return {"scale": (1.0,) * len(axes), "translate": (0.0,) * len(axes)}
    own = layer_axes(like)
    lead = len(layer_extra(like))  # extra axes (angle...) lead; results have one index
    scale = dict(zip(own, (float(s) for s in like.scale[lead:]), strict=False))
    shift = dict(zip(own, (float(t) for t in like.translate[lead:]), strict=False))
    grid: dict[str, tuple[Any, ...]] = {
        "scale": tuple(scale.get(a, 1.0) for a in axes),
        "translate": tuple(shift.get(a, 0.0) for a in axes),
    }
    units = getattr(like, "units", None)
    units = tuple(units)[lead:] if units is not None else None
    if units is not None and len(units) == len(own):
        by_axis = {a: str(u) for a, u in zip(own, units, strict=True)}
        grid["units"] = tuple(by_axis.get(a, "pixel") for a in axes)
    return grid


def value_layer_data(
    value: Value, name: str, metadata: Mapping[str, Any], like: Any = None
) -> tuple[Any, dict[str, Any], str] | None:
    """Return napari ``(data, kwargs, layer_type)`` for an op's output, None for a table.

    Images and labels keep their axes; tracks become a Tracks layer
    (``track_id, t, (z), y, x``, every column as a feature); spots become a
    Points layer. Scale and translation follow the input layer ``like`` so
    that results overlay the image they came from. A result of one index
    along extra axes (``angle``...) has none of them: napari aligns layers by
    their trailing dimensions, so it lies on the image's ``zyx``/``yx`` grid
    whichever index the sliders show (its name says which index it is of).
    """
    kwargs: dict[str, Any] = {"name": name, "metadata": dict(metadata)}
    if value.kind in ("image", "labels"):
        kwargs.update(_grid(like, value.axes), axis_labels=tuple(value.axes))
        kwargs["metadata"]["axes"] = value.axes
        return np.asarray(value.data), kwargs, OUTPUT_LAYER[value.kind]
    # a napari layer holds its features in memory: a table on disk (ColumnTable) is read whole
    df: pd.DataFrame = as_frame(value.data)
    if value.kind == "tracks":
        pos = [c for c in ("z", "y", "x") if c in df.columns]
        cols = ["track_id", "t", *pos]
        kwargs.update(_grid(like, "".join(cols[1:])), axis_labels=tuple(cols[1:]))
        kwargs["features"] = df.reset_index(drop=True)
        kwargs["tail_length"] = 10
        data = df[cols].to_numpy(dtype=np.float64) if len(df) else np.zeros((0, len(cols)))
        return data, kwargs, OUTPUT_LAYER["tracks"]
    if value.kind == "spots":
        pos = [c for c in ("t", "z", "y", "x") if c in df.columns]
        kwargs.update(_grid(like, "".join(pos)), axis_labels=tuple(pos))
        kwargs["features"] = df.reset_index(drop=True)
        kwargs["size"] = 5
        return df[pos].to_numpy(dtype=np.float64), kwargs, OUTPUT_LAYER["spots"]
    return None


def lost_pixel_size(layer: Any) -> str | None:
    """Say when a layer shows a TIFF file without the pixel size the file records.

    napari's builtin reader opens an OME-TIFF at scale 1: ops then measure in
    pixels and physical columns are left out, unlike a run on the file.

    Returns
    -------
    str or None
        A warning naming the file and what to do, or None when the layer has
        a pixel size, comes from our reader or a step, or its file has none.
    """
    from napari_fbias.io.errors import FbiasIOError
    from napari_fbias.io.open import is_tiff
    from napari_fbias.io.tiff import read_tiff

    path = getattr(getattr(layer, "source", None), "path", None)
    if not path or not axes_editable(layer) or not is_tiff(path) or "://" in str(path):
        return None
    try:
        if layer_spacing(layer) is not None:
            return None
        image = read_tiff(path)
    except (LayerAxesError, FbiasIOError, OSError):
        return None
    if all(float(s) == 1.0 for s in image.scales[0]):
        return None
    return (
        f"layer {layer.name!r} has no pixel size, but its file {path} has one: results are in "
        "pixels and physical measurements are left out. Open the file with napari-fbias "
        "(File > Open, reader napari-fbias) to use its pixel size."
    )
