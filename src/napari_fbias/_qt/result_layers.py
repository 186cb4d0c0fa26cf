"""Showing a result as a layer: the same layer when a step runs again, tables as features.

Used by every way a result reaches the viewer (a step run from a widget, an
approach recomputed here, a pipeline run from the Run pipeline panel), so
that a result replaces its previous version in place and a measurement table
lands on the labels layer it measured the same way. No widgets here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from napari_fbias._qt.layer_axes import layer_kind

__all__ = ["attach_table", "put_layer"]


def attach_table(layer: Any, df: pd.DataFrame) -> bool:
    """Give a measured labels layer a table as its features (one row per label).

    Returns
    -------
    bool
        False when the table is not one row per label of one time point
        (no ``label`` column, a ``t`` column, or a label twice): then the
        layer is left as it is.
    """
    if "label" not in df or "t" in df or not df["label"].is_unique:
        return False
    layer.features = pd.concat(
        [pd.DataFrame({"index": df["label"].to_numpy()}), df.reset_index(drop=True)], axis=1
    )
    return True


def put_layer(
    viewer: Any,
    data: Any,
    kwargs: Mapping[str, Any],
    ltype: str,
    *,
    remove: Callable[[Any], Any] | None = None,
) -> Any:
    """Show a result as the layer ``kwargs["name"]``; return the layer.

    When a layer of that name and type exists (the step was run again), the
    new data go into it; otherwise a new layer is added, in place of a layer
    of that name of another type (removed with ``remove``, default
    ``viewer.layers.remove``).
    """
    layers = viewer.layers
    name = kwargs["name"]
    existing = layers[name] if name in layers else None
    if existing is not None and layer_kind(existing) == ltype:
        try:
            _update_layer(existing, data, kwargs)
            return existing
        except (ValueError, TypeError, IndexError):  # napari refused an in-place update
            pass
    if existing is not None:
        (remove or layers.remove)(existing)
    return getattr(viewer, f"add_{ltype}")(data, **kwargs)


def _update_layer(layer: Any, data: Any, kwargs: Mapping[str, Any]) -> None:
    """Put a new result into an existing layer of the same type (the step was re-run)."""
    if "features" in kwargs:
        colour = getattr(layer, "color_by", None)
        if colour is not None:
            layer.color_by = "track_id"
        with layer.events.blocker_all():
            layer.features = pd.DataFrame(index=range(len(data)))
        layer.data = data
        layer.features = kwargs["features"]
        if colour is not None and colour in kwargs["features"]:
            layer.color_by = colour
    else:
        layer.data = data
    for key in ("scale", "translate", "units"):
        if key in kwargs:
            setattr(layer, key, kwargs[key])
    meta = dict(layer.metadata)
    meta.update(kwargs["metadata"])
    layer.metadata = meta
