"""What a pipeline input receives for the layer chosen for it (no Qt).

A layer is read as the pipeline would read its file: axes and pixel size from
our reader's ``layer.metadata`` (or axes typed by the analyst), units too; a
layer showing one channel of a multi-channel image is run with the whole
image, rebuilt from its channel layers or, when one is missing, read again
from the image's source.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from napari_fbias._qt.layer_axes import (
    LayerAxesError,
    channel_index,
    layer_array,
    layer_axes,
    reader_info,
    set_layer_axes,
)
from napari_fbias._qt.layer_data import layer_value
from napari_fbias.io.extra_axes import with_extra
from napari_fbias.pipeline.values import Value

__all__ = ["chosen_axes", "layer_input"]


def _units_of(layer: Any, axes: str) -> tuple[str | None, ...] | None:
    """Units our reader recorded for ``axes`` of a layer's image (None when unknown)."""
    info = reader_info(layer)
    if info is None:
        return None
    full, units = str(info.get("axes", "")), list(info.get("units") or ())
    if len(full) != len(units) or not any(units):
        return None
    by_axis = dict(zip(full, units, strict=True))
    return tuple(by_axis.get(a) for a in axes)


def _channel_layers(layer: Any, layers: Any) -> dict[int, Any]:
    """Return the layers showing the channels of the same image as ``layer``, by channel."""
    info = reader_info(layer)
    found: dict[int, Any] = {}
    for other in layers:
        o = reader_info(other)
        if o is None or type(other) is not type(layer):
            continue
        if (o.get("source"), o.get("name")) != (info.get("source"), info.get("name")):
            continue
        try:
            c = channel_index(other)
        except LayerAxesError:
            continue
        if c is not None:
            found.setdefault(c, other)
    return found


def layer_input(
    layer: Any,
    kind: str,
    layers: Any = (),
    axes: str | None = None,
    extra: Mapping[str, int] | None = None,
) -> Any:
    """Return what the pipeline input of ``kind`` receives for ``layer``.

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer chosen for the input.
    kind : str
        The input's kind (``"image"`` or ``"labels"``).
    layers : sequence of layers
        The viewer's layers: a layer showing one channel of a multi-channel
        image is run with the whole image, rebuilt from its channel layers.
    axes : str, optional
        Corrected axes of the layer (recorded in its metadata); by default
        those recorded by our reader or a step, else guessed.
    extra : mapping, optional
        For a layer with extra axes (``angle``...), the index to run on (the
        one the sliders show, :func:`~napari_fbias._qt.layer_axes.shown_extra`).

    Returns
    -------
    Value or str
        The data with axes, pixel size and units as the pipeline reads them
        from the file; or the image's source (path or URL, opened by the
        runner) when a channel layer of it is missing.

    Raises
    ------
    LayerAxesError
        When the axes do not fit the layer, or the image cannot be rebuilt.
    """
    ax = set_layer_axes(layer, axes) if axes else layer_axes(layer)
    c = channel_index(layer)
    if c is None:
        value = layer_value(layer, kind, axes=ax, extra=extra)
        return replace(value, units=_units_of(layer, ax))
    info = reader_info(layer) or {}
    full = str(info.get("axes", ""))
    n_c = int(info["shape"][full.index("c")])
    found = _channel_layers(layer, layers)
    if all(i in found for i in range(n_c)):
        arrays = [layer_array(found[i], extra) for i in range(n_c)]
        if any(type(a).__module__.startswith("dask") for a in arrays):
            import dask.array as da

            data: Any = da.stack([da.asarray(a) for a in arrays], axis=full.index("c"))
        else:
            data = np.stack([np.asarray(a) for a in arrays], axis=full.index("c"))
        scale = tuple(float(s) for s in info.get("scale") or ())
        return Value(
            data, kind, full, scale if len(scale) == len(full) else None, _units_of(layer, full)
        )
    source = str(info.get("source") or "")
    if source:
        return with_extra(source, extra) if extra else source
    missing = ", ".join(str(i) for i in range(n_c) if i not in found)
    raise LayerAxesError(
        f"layer {layer.name!r} is one channel of image {info.get('name')!r}; the pipeline "
        f"reads the whole image, but the layers of channel(s) {missing} are not in the viewer "
        "and the image has no source to read them from. Open the image again."
    )


def chosen_axes(axes: Mapping[str, str] | str | None, names: Sequence[str]) -> dict[str, str]:
    """Return the corrected axes per input: a str is the first input's; empty ones are dropped."""
    if axes is None:
        return {}
    if isinstance(axes, str):
        return {names[0]: axes} if axes and names else {}
    return {n: a for n, a in axes.items() if a}
