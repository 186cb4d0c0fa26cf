"""Axes, pixel size and image references of napari layers.

A layer opened by our reader carries its axes (without ``c``) in
``layer.metadata["axes"]`` and the whole image's description in
``layer.metadata["fbias"]`` (see :func:`napari_fbias._layers.image_to_layer_data`);
a layer made by a recorded step carries ``metadata["fbias"] = {"step_id",
"approach", "op", "axes", "spacing"}``. For any other layer the axes come from
its axis labels when they are axis letters, else from its number of
dimensions (``yx``, ``zyx``, ``tzyx``, ``tczyx``), and the analyst may correct
them (:func:`set_layer_axes`). Plain functions of a layer: no widgets here.

A layer of an image with extra axes (``angle``..., see
:mod:`napari_fbias.io.extra_axes`) has them as leading dimensions, one
napari slider each, and lists them in ``metadata["extra_axes"]``
(:func:`layer_extra`). Everything here but :func:`layer_extra` and
:func:`shown_extra` describes one index of them: :func:`layer_axes`,
:func:`layer_ndim` and :func:`layer_shape` leave them out, and
:func:`layer_array` and :func:`image_ref` need the index (``extra``), which
the widgets take from the sliders (:func:`shown_extra`); they never guess it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from napari_fbias.io.errors import FbiasIOError
from napari_fbias.io.extra_axes import split_extra, with_extra
from napari_fbias.io.image import validate_axes
from napari_fbias.session.model import ImageRef

__all__ = [
    "DEFAULT_AXES",
    "axes_editable",
    "LayerAxesError",
    "channel_index",
    "check_axes",
    "fit_axes",
    "guess_axes",
    "image_ref",
    "is_step_output",
    "layer_array",
    "layer_extra",
    "layer_kind",
    "layer_axes",
    "layer_ndim",
    "layer_shape",
    "layer_spacing",
    "made_from",
    "reader_info",
    "set_layer_axes",
    "shown_extra",
    "step_info",
    "unwrap",
]

#: Axes assumed for a layer that does not say, by number of dimensions.
DEFAULT_AXES: dict[int, str] = {2: "yx", 3: "zyx", 4: "tzyx", 5: "tczyx"}
_NAPARI_COPY = re.compile(r" \[\d+\]$")
#: napari's own axis labels (``"-1"``, ``"axis -2"``...): they name no axis.
_DEFAULT_LABEL = re.compile(r"^(axis )?-?\d+$")
_AXIS_LETTERS = ("t", "c", "z", "y", "x")


class LayerAxesError(ValueError):
    """Axes that do not fit a layer (wrong letters, order or number)."""


def unwrap(obj: Any) -> Any:
    """Return the napari object behind the proxy napari hands to plugin widgets.

    One viewer must give one workspace whichever widget asks, and layers
    must be compared and read as themselves.
    """
    return getattr(obj, "__wrapped__", obj)


def layer_kind(layer: Any) -> str:
    """Return the napari layer type of ``layer``: ``"image"``, ``"labels"``, ``"points"``..."""
    from napari import layers

    for cls in (layers.Labels, layers.Image, layers.Points, layers.Tracks, layers.Shapes):
        if isinstance(layer, cls):
            return cls.__name__.lower()
    return type(unwrap(layer)).__name__.lower()


def step_info(layer: Any) -> Mapping[str, Any] | None:
    """Return ``metadata["fbias"]`` of a layer made by a recorded step, else None."""
    info = getattr(layer, "metadata", {}).get("fbias")
    return info if isinstance(info, Mapping) and "step_id" in info else None


def is_step_output(layer: Any) -> bool:
    """Tell whether a recorded step made this layer."""
    return step_info(layer) is not None


def reader_info(layer: Any) -> Mapping[str, Any] | None:
    """Return the image description our reader put in ``metadata["fbias"]``, else None."""
    info = getattr(layer, "metadata", {}).get("fbias")
    if isinstance(info, Mapping) and "source" in info and "step_id" not in info:
        return info
    return None


def axes_editable(layer: Any) -> bool:
    """Tell whether the analyst may correct a layer's axes (they come from no file or step)."""
    return reader_info(layer) is None and not is_step_output(layer)


def _full_array(layer: Any) -> Any:
    """Level 0 of a layer's data, with its leading extra axes."""
    data = layer.data
    if getattr(layer, "multiscale", False):
        return data[0]
    return data


def layer_extra(layer: Any) -> tuple[tuple[str, int], ...]:
    """Return the extra axes a layer has as leading dimensions: ``(name, size)`` each.

    They are listed by our reader in ``metadata["extra_axes"]`` (an entry
    with an ``index`` is an index already picked, not a dimension); ``()``
    for any other layer.
    """
    meta = getattr(layer, "metadata", {}).get("extra_axes")
    if not isinstance(meta, list | tuple) or not meta or not hasattr(layer, "data"):
        return ()
    names = [str(d["name"]) for d in meta if isinstance(d, Mapping) and "index" not in d]
    if not names or layer_kind(layer) not in ("image", "labels"):
        return ()
    shape = tuple(int(n) for n in getattr(_full_array(layer), "shape", ()))
    if len(shape) < len(names) + 2:
        return ()
    return tuple(zip(names, shape[: len(names)], strict=True))


def _picks(layer: Any, extra: Mapping[str, int] | None) -> tuple[int, ...]:
    """Index along each leading extra axis of ``layer`` from ``extra``, checked."""
    lead = layer_extra(layer)
    extra = dict(extra or {})
    unknown = sorted(set(extra) - {n for n, _ in lead})
    if unknown:
        raise LayerAxesError(f"layer {layer.name!r} has no extra axis {', '.join(unknown)}")
    missing = [n for n, _ in lead if n not in extra]
    if missing:
        raise LayerAxesError(
            f"layer {layer.name!r} has the extra axes {', '.join(n for n, _ in lead)} "
            f"(sliders); say which index of {', '.join(missing)} to use"
        )
    out = []
    for name, size in lead:
        i = int(extra[name])
        if not 0 <= i < size:
            raise LayerAxesError(
                f"layer {layer.name!r}: {name} {i} does not exist (0 to {size - 1})"
            )
        out.append(i)
    return tuple(out)


def shown_extra(layer: Any, dims: Any) -> dict[str, int]:
    """Return the index the viewer's sliders show along each extra axis of ``layer``.

    Parameters
    ----------
    layer : napari.layers.Layer
        A layer (``{}`` when it has no extra axis, see :func:`layer_extra`).
    dims : napari.components.Dims
        The viewer's dims (``viewer.dims``): its current point, in world
        coordinates, aligned with the layer's trailing dimensions.

    Raises
    ------
    LayerAxesError
        When the sliders stand outside the layer along an extra axis.
    """
    lead = layer_extra(layer)
    if not lead:
        return {}
    coords = layer.world_to_data(tuple(dims.point))
    out = {}
    for k, (name, size) in enumerate(lead):
        i = int(round(float(coords[k])))
        if not 0 <= i < size:
            raise LayerAxesError(
                f"layer {layer.name!r}: the {name} slider is at {i}, outside the layer "
                f"(0 to {size - 1}); move it onto the layer"
            )
        out[name] = i
    return out


def layer_array(layer: Any, extra: Mapping[str, int] | None = None) -> Any:
    """Return a layer's full-resolution pixel array (level 0 of a multiscale layer).

    For a layer with extra axes (:func:`layer_extra`), the index ``extra``
    picks along them (``{"angle": 2}``), those axes dropped (lazily).

    Raises
    ------
    LayerAxesError
        When ``extra`` does not pick one existing index of each extra axis.
    """
    data = _full_array(layer)
    picks = _picks(layer, extra)
    return data[picks] if picks else data


def layer_shape(layer: Any) -> tuple[int, ...]:
    """Return the shape of one index of a layer's pixels (its extra axes left out)."""
    shape = tuple(int(n) for n in getattr(_full_array(layer), "shape", ()))
    return shape[len(layer_extra(layer)) :]


def layer_ndim(layer: Any) -> int:
    """Return the number of data dimensions of a layer (coordinates for points, tracks).

    Extra axes (:func:`layer_extra`) do not count: an operation sees one index.
    """
    kind = layer_kind(layer)
    if kind == "tracks":
        return int(layer.data.shape[1]) - 1
    if kind == "points":
        return int(layer.data.shape[1])
    return len(layer_shape(layer))


def check_axes(axes: str, ndim: int, what: str = "layer") -> str:
    """Return ``axes`` (lower case) if they fit ``ndim`` dimensions, else raise.

    Raises
    ------
    LayerAxesError
        Naming what is wrong and what would fit, e.g. ``"axes 'xy' do not fit
        layer 'cells': axes xy are not in t, c, z, y, x order; give ..."``.
    """
    axes = str(axes).strip().lower()
    hint = (
        f"give one letter per dimension among t, c, z, y, x, in that order "
        f"(e.g. {DEFAULT_AXES.get(ndim, 'tczyx')!r})"
    )
    if len(axes) != ndim:
        raise LayerAxesError(f"axes {axes!r} do not fit {what} with {ndim} dimensions; {hint}")
    try:
        validate_axes(tuple(axes))
    except (ValueError, FbiasIOError) as exc:  # UnsupportedAxesError is no ValueError
        raise LayerAxesError(f"axes {axes!r} do not fit {what}: {exc}; {hint}") from None
    return axes


def guess_axes(layer: Any) -> str:
    """Axes of a layer that does not record them: its axis labels, else by dimensions.

    Leading extra axes (:func:`layer_extra`) are left out. An axis label that
    names another axis (``angle``...) is never taken for t, c or z.

    Raises
    ------
    LayerAxesError
        When the layer has too many dimensions, or an axis label that is not
        t, c, z, y or x.
    """
    ndim = layer_ndim(layer)
    labels = getattr(layer, "axis_labels", None)
    if labels is not None:
        labels = [str(a) for a in labels][len(layer_extra(layer)) :]
    if labels is not None and len(labels) == ndim:
        text = "".join(a.lower() for a in labels)
        if len(text) == ndim:
            try:
                return check_axes(text, ndim)
            except LayerAxesError:
                pass
        other = [
            a for a in labels if not _DEFAULT_LABEL.match(a) and a.lower() not in _AXIS_LETTERS
        ]
        if other:
            raise LayerAxesError(
                f"layer {layer.name!r} has the axis {other[0]!r}, which is not t, c, z, y or x; "
                "open its image with napari-fbias (an extra axis becomes a slider) or type "
                "its axes (e.g. 'tczyx')"
            )
    axes = DEFAULT_AXES.get(ndim)
    if axes is None:
        raise LayerAxesError(
            f"layer {layer.name!r} has {ndim} dimensions; name its axes (e.g. 'tczyx')"
        )
    return axes


def layer_axes(layer: Any) -> str:
    """Return the axes of a layer's data (``"tyx"``...), without ``c`` for split channels.

    Recorded axes come first (step outputs, our reader, a correction with
    :func:`set_layer_axes`); otherwise they are guessed (:func:`guess_axes`).
    """
    ndim = layer_ndim(layer)
    info = step_info(layer)
    for axes in (info.get("axes") if info else None, layer.metadata.get("axes")):
        if isinstance(axes, str) and axes:
            try:
                return check_axes(axes, ndim, f"layer {layer.name!r}")
            except LayerAxesError:
                continue
    return guess_axes(layer)


def fit_axes(layer: Any, axes: str) -> str:
    """Return ``axes`` (lower case) when they may be given to a layer, else raise.

    They must fit its dimensions and, for a layer whose axes come from its
    file or its step, be those axes.

    Raises
    ------
    LayerAxesError
        Saying what is wrong.
    """
    axes = check_axes(axes, layer_ndim(layer), f"layer {layer.name!r}")
    if not axes_editable(layer):
        known = layer_axes(layer)
        if axes != known:
            raise LayerAxesError(
                f"layer {layer.name!r} has axes {known!r} from its file or step; they cannot "
                f"be changed to {axes!r}"
            )
    return axes


def set_layer_axes(layer: Any, axes: str) -> str:
    """Record the analyst's correction of a layer's axes in ``metadata["axes"]``.

    Raises
    ------
    LayerAxesError
        When the axes do not fit the layer (:func:`fit_axes`).
    """
    axes = fit_axes(layer, axes)
    if axes_editable(layer):
        layer.metadata["axes"] = axes
    return axes


def layer_spacing(layer: Any, axes: str | None = None) -> tuple[float, ...] | None:
    """Physical pixel size along ``axes`` (default: the layer's axes), None if unknown.

    Exactly what the pipeline runner gives an op for the same data: the image
    file's pixel size for layers of our reader, the step output's spacing for
    layers of a step, and the layer's scale otherwise (None when it is all 1).
    """
    own = layer_axes(layer)
    axes = own if axes is None else axes
    info = step_info(layer)
    by_axis: dict[str, float] | None = None
    if info is not None:
        sp = info.get("spacing")
        if sp is not None and len(sp) == len(info.get("axes", "")):
            by_axis = dict(zip(info["axes"], (float(s) for s in sp), strict=True))
        elif sp is None:
            return None
    elif (r := reader_info(layer)) is not None:
        full, scale = str(r.get("axes", "")), r.get("scale") or ()
        if len(full) == len(scale):
            by_axis = dict(zip(full, (float(s) for s in scale), strict=True))
    if by_axis is None:
        scale = [float(s) for s in layer.scale][len(layer_extra(layer)) :]
        if len(scale) != len(own) or all(s == 1.0 for s in scale):
            return None
        by_axis = dict(zip(own, scale, strict=True))
    if any(a not in by_axis for a in axes):
        return None
    return tuple(by_axis[a] for a in axes)


def made_from(layer: Any, layers: Any) -> Any:
    """Return the image layer of ``layers`` that a labels layer was made from, else None.

    For a result, the image its step read (through earlier steps on labels,
    e.g. labels expanded from segmented nuclei); for a label image opened
    with its image (OME-Zarr ``labels/``, ground truth of a sample), that
    image's first layer. None when that layer is not in ``layers`` any more.
    """
    seen: set[int] = set()
    while layer is not None and id(layer) not in seen:
        seen.add(id(layer))
        info = step_info(layer)
        if info is None:
            parent = layer.metadata.get("parent_source")
            found = [
                ly
                for ly in layers
                if parent and layer_kind(ly) == "image" and ly.metadata.get("source") == parent
            ]
            return found[0] if found else None
        names = [n for n in dict(info.get("inputs") or {}).values() if n in layers]
        images = [layers[n] for n in names if layer_kind(layers[n]) == "image"]
        if images:
            return images[0]
        more = [layers[n] for n in names if layer_kind(layers[n]) == "labels"]
        layer = more[0] if more else None
    return None


def channel_index(layer: Any) -> int | None:
    """Index along ``c`` that a layer of our reader shows (one layer per channel), or None.

    Raises
    ------
    LayerAxesError
        When the layer is one channel of an image but which one cannot be told.
    """
    info = reader_info(layer)
    if info is None or "c" not in str(info.get("axes", "")):
        return None
    names = [str(c.get("name", "")) for c in info.get("channels") or ()]
    n_c = int(info["shape"][str(info["axes"]).index("c")])
    names += [f"channel {i}" for i in range(len(names), n_c)]
    for name in (layer.name, _NAPARI_COPY.sub("", layer.name)):
        if names.count(name) == 1:
            return names.index(name)
    if n_c == 1:
        return 0
    raise LayerAxesError(
        f"layer {layer.name!r} shows one channel of {info.get('name')!r}, but its name does not "
        f"tell which (channels: {', '.join(names)}); rename it back to its channel name"
    )


def image_ref(
    layer: Any, kind: str, extra: Mapping[str, int] | None = None
) -> tuple[ImageRef, dict[str, int]]:
    """Describe the image a layer shows, for ``SessionRecorder.add_image``.

    Parameters
    ----------
    layer : napari.layers.Layer
        The layer an operation read.
    kind : str
        The input's kind (``"image"``, ``"labels"``...).
    extra : mapping, optional
        The index read along the layer's extra axes (``{"angle": 2}``, see
        :func:`shown_extra`); required for a layer that has them. The image
        is then that index: its source ends with ``[angle=2]`` (so a session
        or pipeline reruns exactly that index) and its name says it.

    Returns
    -------
    tuple
        The :class:`~napari_fbias.session.model.ImageRef` (source without
        credentials) and the index the layer shows along ``c`` (``{"c": 1}``
        for one channel of a multi-channel image, else ``{}``).

    Raises
    ------
    LayerAxesError
        When ``extra`` does not pick one index of each extra axis of the layer.
    """
    picked = _picks(layer, extra)
    picks = {n: i for (n, _), i in zip(layer_extra(layer), picked, strict=True)}
    info = reader_info(layer)
    if info is not None:
        source = str(info.get("source") or "")
        parent = layer.metadata.get("parent_source")
        label = layer.metadata.get("label_name")
        if label and parent and source == parent:
            # a label image of an OME-Zarr image, or ground truth bundled with a sample
            # (of one index along extra axes: the index stays at the end, store/labels/x[angle=2])
            base, own = split_extra(source)
            labels = f"{base.rstrip('/')}/labels/{label}"
            source = with_extra(labels, {**own, **picks}) if _is_zarr(base) else ""
        elif source and picks:
            source = with_extra(source, picks)
        sel = {}
        c = channel_index(layer)
        if c is not None:
            sel = {"c": c}
        name = str(info.get("name") or layer.name)
        if picks:
            name = f"{name} ({', '.join(f'{k} {v}' for k, v in picks.items())})"
        ref = ImageRef(
            name=name,
            source=source,
            axes=str(info.get("axes", "")),
            shape=tuple(int(n) for n in info.get("shape") or ()),
            kind="labels" if info.get("is_label") else kind,
        )
        return ref, sel
    src = getattr(getattr(layer, "source", None), "path", None) or ""
    ref = ImageRef(
        name=layer.name,
        source=str(src),
        axes=layer_axes(layer),
        shape=layer_shape(layer),
        kind=kind,
    )
    return ref, {}


def _is_zarr(source: str) -> bool:
    return source.rstrip("/").lower().endswith(".zarr") or "://" in source
