"""Turn a :class:`~napari_fbias.io.image.MultiscaleImage` into napari layer data.

Plain data only (napari ``LayerData`` tuples): no Qt, no napari import, so
that readers, sample data and tests can use it anywhere.

* an image with a ``c`` axis becomes one image layer per channel
  (``channel_axis``), named, coloured, with contrast limits and visibility
  from the channel metadata;
* scale, translation, axis labels and units are physical, without ``c``;
* several resolution levels give a ``multiscale`` layer;
* every label image (and an image that *is* a label image) becomes a labels
  layer on the same grid, coloured from its ``image-label`` colours.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np

from napari_fbias.io.image import Channel, MultiscaleImage

__all__ = ["channel_colormap", "image_to_layer_data", "label_colormap"]

LayerData = tuple[Any, dict[str, Any], str]

#: napari's built-in colormaps for pure colours (hex RGB, upper case).
_NAMED_COLORMAPS = {
    "FF0000": "red",
    "00FF00": "green",
    "0000FF": "blue",
    "FF00FF": "magenta",
    "00FFFF": "cyan",
    "FFFF00": "yellow",
    "FFFFFF": "gray",
}
#: Colour of labels that the image-label colours do not list.
_UNLISTED_LABEL_RGBA = (0.6, 0.6, 0.6, 1.0)


def channel_colormap(color: str | None) -> str | dict[str, Any]:
    """Return a napari colormap for a channel colour (hex RGB, or None for grey).

    Pure colours map to napari's named colormaps; others to a linear
    black-to-colour colormap given as plain data (``{"colors", "name"}``).
    """
    if not color:
        return "gray"
    hex6 = color.lstrip("#").upper()[:6]
    if hex6 in _NAMED_COLORMAPS:
        return _NAMED_COLORMAPS[hex6]
    rgb = [int(hex6[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return {"colors": [[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], "name": f"#{hex6}"}


def label_colormap(image_label: Any) -> dict[Any, list[float]] | None:
    """Return a napari ``{label: rgba}`` colormap from NGFF ``image-label`` metadata.

    None when there are no colours; labels not listed get a light grey,
    background (0) stays transparent.
    """
    if not isinstance(image_label, dict):
        return None
    colors = image_label.get("colors")
    if not isinstance(colors, list) or not colors:
        return None
    out: dict[Any, list[float]] = {None: list(_UNLISTED_LABEL_RGBA)}
    for c in colors:
        if not isinstance(c, dict):
            continue
        value, rgba = c.get("label-value"), c.get("rgba")
        if isinstance(value, int) and isinstance(rgba, list | tuple) and len(rgba) == 4:
            out[value] = [float(v) / 255 for v in rgba]
    return out if len(out) > 1 else None


@lru_cache(maxsize=64)
def _napari_unit(unit: str | None) -> str:
    """Return ``unit`` if pint (napari's unit library) knows it, else ``"pixel"``."""
    if not unit:
        return "pixel"
    try:
        import pint

        pint.get_application_registry().Unit(unit)
    except Exception:
        return "pixel"
    return unit


def _contrast_limits(ch: Channel) -> tuple[float, float] | None:
    if ch.window is None:
        return None
    start, end = ch.window
    if not (np.isfinite(start) and np.isfinite(end)) or end <= start:
        return None
    return (float(start), float(end))


def _common_kwargs(img: MultiscaleImage, keep: list[int]) -> dict[str, Any]:
    """Scale, translation, axis labels and units for the axes at ``keep``."""
    return {
        "scale": tuple(float(img.scales[0][i]) for i in keep),
        "translate": tuple(float(img.translations[0][i]) for i in keep),
        "axis_labels": tuple(img.axes[i] for i in keep),
        "units": tuple(_napari_unit(img.units[i]) for i in keep),
        "multiscale": img.is_multiscale,
    }


def _data(img: MultiscaleImage) -> Any:
    return list(img.levels) if img.is_multiscale else img.levels[0]


def _metadata(img: MultiscaleImage, keep: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "fbias": img.describe(),
        "axes": "".join(img.axes[i] for i in keep),
        "source": img.source,
        **extra,
    }


def _labels_layer(lab: MultiscaleImage, name: str, parent: MultiscaleImage | None) -> LayerData:
    keep = [i for i, a in enumerate(lab.axes) if a != "c"]
    if len(keep) != len(lab.axes):
        # a label image with a channel axis: show its first channel
        lab = lab.with_(
            levels=tuple(
                lv[tuple(0 if a == "c" else slice(None) for a in lab.axes)] for lv in lab.levels
            ),
            axes=tuple(lab.axes[i] for i in keep),
            scales=tuple(tuple(s[i] for i in keep) for s in lab.scales),
            translations=tuple(tuple(t[i] for i in keep) for t in lab.translations),
            units=tuple(lab.units[i] for i in keep),
            channels=(),
        )
        keep = list(range(len(lab.axes)))
    kwargs: dict[str, Any] = {
        "name": name,
        **_common_kwargs(lab, keep),
        "metadata": _metadata(
            lab,
            keep,
            label_name=name,
            parent_source=parent.source if parent is not None else None,
        ),
    }
    cmap = label_colormap(lab.metadata.get("image-label"))
    if cmap is not None:
        kwargs["colormap"] = cmap
    return (_data(lab), kwargs, "labels")


def image_to_layer_data(img: MultiscaleImage) -> list[LayerData]:
    """Return napari layer data tuples for an image and its label images.

    Parameters
    ----------
    img : MultiscaleImage
        The image, as opened by :func:`napari_fbias.io.open.open_image`.

    Returns
    -------
    list of tuple
        ``(data, kwargs, layer_type)`` tuples: the image layer(s) first, then
        one ``"labels"`` layer per label image. Data stay lazy (dask).
    """
    if img.is_label:
        return [_labels_layer(img, img.name, None)]

    c = img.axis_index("c")
    keep = [i for i in range(img.ndim) if i != c]
    kwargs: dict[str, Any] = {
        **_common_kwargs(img, keep),
        "rgb": False,
        "metadata": _metadata(img, keep),
    }
    if c is not None:
        n_c = img.shape[c]
        chans = list(img.channels[:n_c])
        chans += [Channel(name=f"channel {i}") for i in range(len(chans), n_c)]
        kwargs["channel_axis"] = c
        kwargs["name"] = [ch.name for ch in chans]
        if any(ch.color for ch in chans) or n_c == 1:
            kwargs["colormap"] = [channel_colormap(ch.color) for ch in chans]
        limits = [_contrast_limits(ch) for ch in chans]
        if any(lim is not None for lim in limits):
            kwargs["contrast_limits"] = limits
        kwargs["visible"] = [ch.visible for ch in chans]
    else:
        ch = img.channels[0] if img.channels else None
        kwargs["name"] = img.name
        if ch is not None:
            kwargs["colormap"] = channel_colormap(ch.color)
            lim = _contrast_limits(ch)
            if lim is not None:
                kwargs["contrast_limits"] = lim
            kwargs["visible"] = ch.visible
    layers: list[LayerData] = [(_data(img), kwargs, "image")]
    for name, lab in img.labels.items():
        layers.append(_labels_layer(lab, name, img))
    return layers
