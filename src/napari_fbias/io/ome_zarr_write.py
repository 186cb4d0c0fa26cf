"""Write OME-Zarr images and labels (NGFF 0.4 on zarr v2, NGFF 0.5 on zarr v3).

Written with zarr-python directly (one array per level, then the NGFF
metadata), because we need exact per-level transforms and an atomic build in
a temporary sibling; the result is checked in the tests against
``ome-zarr-models`` and ome-zarr-py's own reader.

Pyramids halve y and x at each level (t, c and z are kept). Images are
downsampled by 2x2 block means (edges replicated for odd sizes; integer types
rounded back), so level ``k`` has scale ``s * 2**k`` and translation
``t + (2**k - 1) / 2 * s`` in y and x: the centre of a coarse pixel. Labels
are downsampled by nearest neighbour (the fine pixel at the centre of each
coarse pixel), never mixing ids; labels added to an image get the image's
level shapes, scales and translations.

Everything is written atomically: a new store is built in a temporary
sibling and renamed into place; a new label image is built next to
``labels/<name>`` and renamed, then the ``labels`` list is rewritten
atomically. The parent image's data are never touched.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import dask.array as da
import numpy as np
import zarr

from napari_fbias.io.atomic import atomic_dir, atomic_write_text
from napari_fbias.io.dask_view import dask_view
from napari_fbias.io.errors import (
    FbiasIOError,
    MetadataError,
    NotOmeZarrError,
    OutputExistsError,
    UnsupportedAxesError,
)
from napari_fbias.io.image import Channel, MultiscaleImage, validate_axes
from napari_fbias.io.region_read import restride

__all__ = [
    "LabelColors",
    "LabelProperties",
    "downsample_labels",
    "downsample_mean",
    "write_image",
    "write_image_with_labels",
    "write_label_image",
    "write_labels",
]

NgffVersion = Literal["0.4", "0.5"]
#: ``{label value: (r, g, b, a)}`` with 0-255 integers, or NGFF ``colors`` entries.
LabelColors = Mapping[int, Sequence[int]] | Sequence[Mapping[str, Any]]
#: ``{label value: {property: value}}`` or NGFF ``properties`` entries.
LabelProperties = Mapping[int, Mapping[str, Any]] | Sequence[Mapping[str, Any]]

#: Per-level (scale, translation).
_Transform = tuple[tuple[float, ...], tuple[float, ...]]

_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\- ]*$")


# --- pyramids ------------------------------------------------------------------------


def _as_dask(data: Any) -> da.Array:
    if isinstance(data, da.Array):
        return data
    arr = np.asarray(data)
    return dask_view(arr, chunks=arr.shape or ())  # no copy of what is written


def downsample_mean(data: da.Array, axes: Sequence[str]) -> da.Array:
    """Halve ``y`` and ``x`` by 2x2 block means (odd edges replicated), keeping the dtype."""
    pad = [(0, 0)] * data.ndim
    factors = {}
    for i, a in enumerate(axes):
        if a in ("y", "x"):
            pad[i] = (0, data.shape[i] % 2)
            factors[i] = 2
    if any(p != (0, 0) for p in pad):
        data_p = da.pad(data, pad, mode="edge")
    else:
        data_p = data
    if data.dtype == np.dtype(bool):
        return downsample_labels(data, axes, _shape_halved(data.shape, axes))
    mean = da.coarsen(np.mean, data_p.astype(np.float64), factors, trim_excess=False)
    if np.issubdtype(data.dtype, np.integer):
        info = np.iinfo(data.dtype)
        mean = da.clip(da.round(mean), info.min, info.max)
    return mean.astype(data.dtype)


def _shape_halved(shape: Sequence[int], axes: Sequence[str]) -> tuple[int, ...]:
    return tuple((n + 1) // 2 if a in ("y", "x") else n for n, a in zip(shape, axes, strict=True))


def downsample_labels(data: da.Array, axes: Sequence[str], shape: Sequence[int]) -> da.Array:
    """Resample ``data`` to ``shape`` by nearest neighbour (per axis, no id mixing)."""
    out = data
    for i, (n_in, n_out) in enumerate(zip(data.shape, shape, strict=True)):
        if n_in == n_out:
            continue
        idx = np.minimum(
            np.floor((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.int64), n_in - 1
        )
        sel: list[Any] = [slice(None)] * data.ndim
        sel[i] = idx
        out = out[tuple(sel)]
    return out


def _image_pyramid(data: da.Array, axes: Sequence[str], n_levels: int) -> list[da.Array]:
    levels = [data]
    for _ in range(1, n_levels):
        levels.append(downsample_mean(levels[-1], axes))
    return levels


def _image_transforms(
    scale: Sequence[float], axes: Sequence[str], n_levels: int
) -> list[tuple[list[float], list[float]]]:
    out = []
    for k in range(n_levels):
        f = 2**k
        s = [v * f if a in ("y", "x") else v for v, a in zip(scale, axes, strict=True)]
        t = [(f - 1) / 2 * v if a in ("y", "x") else 0.0 for v, a in zip(scale, axes, strict=True)]
        out.append((s, t))
    return out


# --- argument checks ----------------------------------------------------------------


def _check_axes(axes: str | Sequence[str], ndim: int, what: str) -> tuple[str, ...]:
    axes_t = tuple(axes)
    validate_axes(axes_t)
    if len(axes_t) != ndim:
        raise UnsupportedAxesError(
            f"{what}: axes {''.join(axes_t)!r} do not match data with {ndim} dimensions"
        )
    return axes_t


def _check_scale(
    scale: Sequence[float] | None, axes: Sequence[str], what: str
) -> tuple[float, ...]:
    if scale is None:
        return (1.0,) * len(axes)
    s = tuple(float(v) for v in scale)
    if len(s) != len(axes):
        raise MetadataError(f"{what}: scale {list(s)} needs one value per axis {''.join(axes)}")
    if any(not (v > 0 and math.isfinite(v)) for v in s):
        raise MetadataError(f"{what}: scale {list(s)} must be positive numbers")
    return s


def _check_units(
    units: Sequence[str | None] | None, axes: Sequence[str], what: str
) -> tuple[str | None, ...]:
    if units is None:
        return (None,) * len(axes)
    u = tuple(units)
    if len(u) != len(axes):
        raise MetadataError(f"{what}: units {list(u)} need one value per axis {''.join(axes)}")
    for a, v in zip(axes, u, strict=True):
        if a == "c" and v:
            raise MetadataError(f"{what}: the channel axis c cannot have a unit ({v!r})")
    return u


def _check_version(version: str) -> NgffVersion:
    if version not in ("0.4", "0.5"):
        raise MetadataError(f"NGFF version {version!r} is not supported; use '0.4' or '0.5'")
    return version  # type: ignore[return-value]


def _check_name(name: str, what: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise MetadataError(
            f"{what} {name!r} is not a valid name: use letters, digits, '_', '-', '.' and spaces"
        )
    return name


def _default_chunks(shape: Sequence[int], axes: Sequence[str]) -> tuple[int, ...]:
    """Chunks of 512^2 pixels per plane, or 16 x 256 x 256 voxels for a volume.

    A volume's chunks are 4x a plane's, not 16x (16 x 512 x 512): a lazy
    result is written one chunk per thread at a time, with its sources
    (``store_in_regions``), so the chunk sets what the write holds.
    """
    volume = "z" in axes and int(shape[list(axes).index("z")]) > 1
    side = 256 if volume else 512
    limits = {"t": 1, "c": 1, "z": 16, "y": side, "x": side}
    return tuple(max(1, min(int(n), limits[a])) for n, a in zip(shape, axes, strict=True))


def _level_chunks(
    chunks: Sequence[int] | None, shape: Sequence[int], axes: Sequence[str], what: str
) -> tuple[int, ...]:
    if chunks is None:
        return _default_chunks(shape, axes)
    c = tuple(int(v) for v in chunks)
    if len(c) != len(axes) or any(v < 1 for v in c):
        raise MetadataError(f"{what}: chunks {list(c)} need one positive size per axis")
    return tuple(max(1, min(v, int(n))) for v, n in zip(c, shape, strict=True))


# --- metadata ------------------------------------------------------------------------


def _axes_meta(axes: Sequence[str], units: Sequence[str | None]) -> list[dict[str, str]]:
    out = []
    for a, u in zip(axes, units, strict=True):
        d = {"name": a, "type": _AXIS_TYPES[a]}
        if u:
            d["unit"] = u
        out.append(d)
    return out


def _multiscales_meta(
    axes: Sequence[str],
    units: Sequence[str | None],
    transforms: Sequence[tuple[Sequence[float], Sequence[float]]],
    name: str,
    version: NgffVersion,
    method: str,
) -> dict[str, Any]:
    datasets = []
    for k, (s, t) in enumerate(transforms):
        ct: list[dict[str, Any]] = [{"type": "scale", "scale": [float(v) for v in s]}]
        if any(v != 0 for v in t):
            ct.append({"type": "translation", "translation": [float(v) for v in t]})
        datasets.append({"path": str(k), "coordinateTransformations": ct})
    ms: dict[str, Any] = {
        "axes": _axes_meta(axes, units),
        "datasets": datasets,
        "name": name,
        "type": method,
        "metadata": {"method": method, "writer": "napari-fbias"},
    }
    if version == "0.4":
        ms["version"] = "0.4"
    return ms


def _omero_meta(channels: Sequence[Channel], dtype: np.dtype) -> dict[str, Any]:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    elif np.dtype(dtype) == np.dtype(bool):
        lo, hi = 0.0, 1.0
    else:
        lo, hi = None, None
    out = []
    for ch in channels:
        if ch.window is not None:
            start, end = float(ch.window[0]), float(ch.window[1])
        else:
            start, end = (lo, hi) if lo is not None else (0.0, 1.0)
        wmin = min(start, lo) if lo is not None else start
        wmax = max(end, hi) if hi is not None else end
        out.append(
            {
                "label": ch.name,
                "color": (ch.color or "FFFFFF").lstrip("#").upper(),
                "window": {"start": start, "end": end, "min": wmin, "max": wmax},
                "active": bool(ch.visible),
            }
        )
    return {"channels": out, "rdefs": {"model": "color"}}


def _label_colors(colors: LabelColors | None) -> list[dict[str, Any]] | None:
    if colors is None:
        return None
    items: list[tuple[Any, Any]]
    if isinstance(colors, Mapping):
        items = list(colors.items())
    else:
        items = [(c.get("label-value"), c.get("rgba")) for c in colors]
    out = []
    for value, rgba in items:
        rgba_t = tuple(rgba) if rgba is not None else ()
        if (
            not isinstance(value, int | np.integer)
            or len(rgba_t) != 4
            or not all(isinstance(v, int | np.integer) and 0 <= v <= 255 for v in rgba_t)
        ):
            raise MetadataError(
                f"label colour {value!r}: {rgba!r} must be an integer label value and four "
                "integers 0-255 (r, g, b, a)"
            )
        out.append({"label-value": int(value), "rgba": [int(v) for v in rgba_t]})
    values = [c["label-value"] for c in out]
    if len(set(values)) != len(values):
        raise MetadataError(f"label colours repeat a label value: {values}")
    return out


def _label_properties(props: LabelProperties | None) -> list[dict[str, Any]] | None:
    if props is None:
        return None
    if isinstance(props, Mapping):
        out = [{"label-value": int(k), **dict(v)} for k, v in props.items()]
    else:
        out = [dict(p) for p in props]
    for p in out:
        if not isinstance(p.get("label-value"), int | np.integer):
            raise MetadataError(f"label property {p!r} has no integer 'label-value'")
        p["label-value"] = int(p["label-value"])
    try:
        json.dumps(out)
    except TypeError as exc:
        raise MetadataError(f"label properties must be JSON values: {exc}") from exc
    return out


def _image_label_meta(
    colors: LabelColors | None,
    properties: LabelProperties | None,
    version: NgffVersion,
    *,
    source_image: str | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    c = _label_colors(colors)
    p = _label_properties(properties)
    if c is not None and p is not None:
        if {x["label-value"] for x in c} != {x["label-value"] for x in p}:
            raise MetadataError(
                "label colours and properties must describe the same label values "
                "(NGFF image-label rule)"
            )
    if c is not None:
        meta["colors"] = c
    if p is not None:
        meta["properties"] = p
    if source_image is not None:
        meta["source"] = {"image": source_image}
    if version == "0.4":
        meta["version"] = "0.4"
    return meta


# --- group writing -------------------------------------------------------------------

#: Largest region (pixels) of an array computed and written by one ``da.store`` call.
STORE_REGION_PIXELS = 4096 * 4096
#: Stored chunks per region for each task dask runs at once (the default region size).
STORE_CHUNKS_PER_TASK = 1


def store_in_regions(
    data: da.Array,
    target: Any,
    chunks: Sequence[int],
    axes: Sequence[str],
    region_pixels: int | None = None,
) -> None:
    """Write ``data`` into ``target`` region by region (whole chunks, about ``region_pixels``).

    By default a region holds :data:`STORE_CHUNKS_PER_TASK` stored chunks per
    task dask runs at once (:func:`~napari_fbias.io.dask_parallel.parallel_tasks`),
    at most :data:`STORE_REGION_PIXELS`: every thread busy, and what a region
    holds bounded by the blocks in flight (4096^2 regions: 106 MiB added by the
    write of a chunk-wise watershed at 8192^2 with a 32 MiB budget; 1024^2: 79 MiB).

    A lazy result (a chunk-wise run's labels) is computed while it is
    written. Computed as one graph, dask walks it row after row of blocks,
    and every source block a row reads stays in memory until the row is done:
    a band as wide as the image, so the memory grew with the image. Region by
    region (one frame, one channel and a square or cube of whole chunks each),
    it holds one region's sources and their halos.
    """
    shape = tuple(int(n) for n in data.shape)
    spatial = [i for i, a in enumerate(axes) if a in "zyx"]
    chunk = [max(1, min(int(c), n)) for c, n in zip(chunks, shape, strict=True)]
    if region_pixels is None:
        from napari_fbias.io.dask_parallel import distributed_client, parallel_tasks

        per_chunk = math.prod(chunk[i] for i in spatial)
        region_pixels = per_chunk * STORE_CHUNKS_PER_TASK * parallel_tasks()
        region_pixels = min(STORE_REGION_PIXELS, region_pixels)
        if distributed_client() is not None:  # the blocks are the workers' memory
            region_pixels = STORE_REGION_PIXELS
    if math.prod(shape) <= region_pixels:
        da.store(data, target, lock=False)
        return
    step = list(chunk)  # one chunk per axis, then grow the spatial ones evenly
    while True:
        size = math.prod(step[i] for i in spatial)
        growable = [
            i
            for i in spatial
            if step[i] < shape[i]
            and size // step[i] * min(step[i] + chunk[i], shape[i]) <= region_pixels
        ]
        if not growable:
            break
        i = min(growable, key=lambda j: step[j])
        step[i] = min(step[i] + chunk[i], shape[i])
    for corner in np.ndindex(*(-(-n // s) for n, s in zip(shape, step, strict=True))):
        region = tuple(
            slice(k * s, min((k + 1) * s, n)) for k, s, n in zip(corner, step, shape, strict=True)
        )
        da.store(data[region], target, regions=region, lock=False)


def _write_multiscale_group(
    path: Path,
    levels: Sequence[da.Array],
    axes: Sequence[str],
    units: Sequence[str | None],
    transforms: Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    name: str,
    version: NgffVersion,
    method: str,
    chunks: Sequence[int] | None,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """Write ``levels`` as arrays ``0``, ``1``... of a new group at ``path``, then metadata."""
    zarr_format = 2 if version == "0.4" else 3
    group = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=zarr_format)
    for k, level in enumerate(levels):
        ch = _level_chunks(chunks, level.shape, axes, "chunks")
        kwargs: dict[str, Any] = {}
        if zarr_format == 2:
            kwargs["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        else:
            kwargs["dimension_names"] = list(axes)
        arr = group.create_array(
            str(k),
            shape=level.shape,
            dtype=level.dtype,
            chunks=ch,
            fill_value=0,
            **kwargs,
        )
        store_in_regions(restride(level, ch), arr, ch, axes)
    ms = _multiscales_meta(axes, units, transforms, name, version, method)
    attrs: dict[str, Any] = {"multiscales": [ms], **(extra or {})}
    if version == "0.5":
        group.attrs.put({"ome": {"version": "0.5", **attrs}})
    else:
        group.attrs.put(attrs)


def _labels_group_path(image: Path, version: NgffVersion) -> Path:
    """Return ``image/labels``, creating it (as an empty labels group) if needed."""
    labels = image / "labels"
    if not labels.exists():
        with atomic_dir(labels) as tmp:
            zarr.open_group(
                zarr.storage.LocalStore(tmp), mode="w", zarr_format=2 if version == "0.4" else 3
            )
            _write_labels_list(tmp, version, [])
    return labels


def _read_labels_list(labels: Path, version: NgffVersion) -> list[str]:
    f = labels / (".zattrs" if version == "0.4" else "zarr.json")
    if not f.exists():
        return []
    try:
        doc = json.loads(f.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MetadataError(f"{f} is not valid JSON: {exc}") from exc
    attrs = doc if version == "0.4" else doc.get("attributes", {}).get("ome", {})
    names = attrs.get("labels", [])
    if not isinstance(names, list):
        raise MetadataError(f"{f}: 'labels' is not a list")
    return [str(n) for n in names]


def _write_labels_list(labels: Path, version: NgffVersion, names: Sequence[str]) -> None:
    if version == "0.4":
        f = labels / ".zattrs"
        doc = json.loads(f.read_text(encoding="utf-8")) if f.exists() else {}
        doc["labels"] = list(names)
        if not (labels / ".zgroup").exists():
            atomic_write_text(labels / ".zgroup", json.dumps({"zarr_format": 2}))
    else:
        f = labels / "zarr.json"
        doc = (
            json.loads(f.read_text(encoding="utf-8"))
            if f.exists()
            else {"zarr_format": 3, "node_type": "group"}
        )
        attrs = doc.setdefault("attributes", {})
        ome = attrs.setdefault("ome", {})
        ome["version"] = "0.5"
        ome["labels"] = list(names)
    atomic_write_text(f, json.dumps(doc, indent=2))


def _dest_path(dest: str | os.PathLike[str]) -> Path:
    s = str(dest)
    if "://" in s and not s.startswith("file://"):
        raise FbiasIOError(f"writing to {s} is not supported: write to a local folder")
    return Path(s.removeprefix("file://")).expanduser().resolve()


# --- public API ----------------------------------------------------------------------


def write_image(
    dest: str | os.PathLike[str],
    data: Any,
    axes: str | Sequence[str],
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    channels: Sequence[Channel] = (),
    name: str | None = None,
    n_levels: int = 1,
    ngff_version: NgffVersion = "0.4",
    chunks: Sequence[int] | None = None,
    overwrite: bool = False,
) -> str:
    """Write a new OME-Zarr image store.

    Parameters
    ----------
    dest : path-like
        The new store (e.g. ``"out.ome.zarr"``); its parent folder must exist.
    data : array-like
        Pixels (numpy or dask), one dimension per axis.
    axes : str or sequence of str
        Axis names, a subset of ``tczyx`` in that order (``"czyx"``).
    scale : sequence of float, optional
        Physical pixel size per axis at full resolution (default 1).
    units : sequence of str or None, optional
        Unit per axis (``"micrometer"``, ``"second"``), None where unknown.
    channels : sequence of Channel
        Display metadata, one per index along ``c`` (or one when there is no
        ``c``), written as ``omero`` metadata. Empty: no ``omero`` block.
    name : str, optional
        Image name (default: the store's name without ``.ome.zarr``).
    n_levels : int
        Number of resolution levels; each halves y and x.
    ngff_version : {"0.4", "0.5"}
        NGFF 0.4 (zarr v2) or 0.5 (zarr v3).
    chunks : sequence of int, optional
        Chunk shape per axis (clipped to each level), default
        ``t, c: 1; z: 16; y, x: 512``.
    overwrite : bool
        Replace an existing ``dest`` (default: refuse).

    Returns
    -------
    str
        The absolute path of the store written.

    Raises
    ------
    OutputExistsError
        If ``dest`` exists and ``overwrite`` is False.
    UnsupportedAxesError, MetadataError
        If axes, scale, units, channels or chunks do not fit the data.
    """
    return write_image_with_labels(
        dest,
        data,
        axes,
        {},
        scale=scale,
        units=units,
        channels=channels,
        name=name,
        n_levels=n_levels,
        ngff_version=ngff_version,
        chunks=chunks,
        overwrite=overwrite,
    )


def write_label_image(
    dest: str | os.PathLike[str],
    labels: Any,
    axes: str | Sequence[str],
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    name: str | None = None,
    n_levels: int = 1,
    ngff_version: NgffVersion = "0.4",
    chunks: Sequence[int] | None = None,
    colors: LabelColors | None = None,
    properties: LabelProperties | None = None,
    overwrite: bool = False,
) -> str:
    """Write a new store whose image *is* a label image (``image-label`` at its root).

    Used when labels are saved without a parent image. Levels are
    downsampled by nearest neighbour. Parameters as in :func:`write_image`
    (``axes`` may not contain ``c``); ``colors`` and ``properties`` as in
    :func:`write_labels`.

    Returns
    -------
    str
        The absolute path of the store written.
    """
    version = _check_version(ngff_version)
    dest_p = _dest_path(dest)
    data = _as_dask(labels)
    axes_t = _check_axes(axes, data.ndim, f"labels for {dest_p}")
    if "c" in axes_t:
        raise UnsupportedAxesError(f"labels for {dest_p}: label images have no channel axis c")
    _check_integer_labels(data, f"labels for {dest_p}")
    data = _integer_labels(data)
    scale_t = _check_scale(scale, axes_t, f"labels for {dest_p}")
    units_t = _check_units(units, axes_t, f"labels for {dest_p}")
    levels = [data]
    transforms = _image_transforms(scale_t, axes_t, max(1, int(n_levels)))
    for _ in range(1, max(1, int(n_levels))):
        levels.append(downsample_labels(data, axes_t, _shape_halved(levels[-1].shape, axes_t)))
    label_meta = _image_label_meta(colors, properties, version, source_image=None)
    with atomic_dir(dest_p, overwrite=overwrite) as tmp:
        _write_multiscale_group(
            tmp,
            levels,
            axes_t,
            units_t,
            transforms,
            name=name or _default_name(dest_p),
            version=version,
            method="nearest",
            chunks=chunks,
            extra={"image-label": label_meta},
        )
    return str(dest_p)


def _check_integer_labels(data: da.Array, what: str) -> None:
    if not (np.issubdtype(data.dtype, np.integer) or data.dtype == np.dtype(bool)):
        raise MetadataError(f"{what}: labels must be integers, not {data.dtype}")


def _integer_labels(data: da.Array) -> da.Array:
    """NGFF label images are integers: a boolean mask is written as uint8 0/1."""
    return data.astype(np.uint8) if data.dtype == np.dtype(bool) else data


def _default_name(dest: Path) -> str:
    n = dest.name
    for suffix in (".ome.zarr", ".zarr"):
        if n.lower().endswith(suffix):
            return n[: -len(suffix)] or n
    return n


def write_image_with_labels(
    dest: str | os.PathLike[str],
    image: Any,
    axes: str | Sequence[str],
    labels: Mapping[str, Any],
    *,
    scale: Sequence[float] | None = None,
    units: Sequence[str | None] | None = None,
    channels: Sequence[Channel] = (),
    name: str | None = None,
    n_levels: int = 1,
    ngff_version: NgffVersion = "0.4",
    chunks: Sequence[int] | None = None,
    label_colors: Mapping[str, LabelColors] | None = None,
    overwrite: bool = False,
) -> str:
    """Write a new OME-Zarr store with an image and label images, in one atomic step.

    Parameters
    ----------
    dest, image, axes, scale, units, channels, name, n_levels, ngff_version, chunks, overwrite
        As in :func:`write_image`.
    labels : mapping of str to array-like
        Label images by name; each has the image's shape without ``c``.
    label_colors : mapping of str to colours, optional
        ``image-label`` colours per label name (see :func:`write_labels`).

    Returns
    -------
    str
        The absolute path of the store written.
    """
    version = _check_version(ngff_version)
    dest_p = _dest_path(dest)
    data = _as_dask(image)
    what = f"image for {dest_p}"
    axes_t = _check_axes(axes, data.ndim, what)
    scale_t = _check_scale(scale, axes_t, what)
    units_t = _check_units(units, axes_t, what)
    if chunks is not None:
        _level_chunks(chunks, data.shape, axes_t, what)
    n_levels = int(n_levels)
    if n_levels < 1:
        raise MetadataError(f"{what}: n_levels must be at least 1, not {n_levels}")
    channels = tuple(channels)
    if channels:
        n_c = data.shape[axes_t.index("c")] if "c" in axes_t else 1
        if len(channels) != n_c:
            raise MetadataError(
                f"{what}: {len(channels)} channel descriptions for {n_c} channel(s)"
            )
    levels = _image_pyramid(data, axes_t, n_levels)
    transforms = _image_transforms(scale_t, axes_t, n_levels)
    extra = {"omero": _omero_meta(channels, data.dtype)} if channels else None
    prepared = {
        _check_name(k, "label name"): _prepare_labels(
            v, levels, axes_t, transforms, units_t, f"labels {k!r} for {dest_p}"
        )
        for k, v in labels.items()
    }
    colors_by_name = dict(label_colors or {})
    unknown = set(colors_by_name) - set(prepared)
    if unknown:
        raise MetadataError(f"{what}: colours given for unknown labels {sorted(unknown)}")
    with atomic_dir(dest_p, overwrite=overwrite) as tmp:
        _write_multiscale_group(
            tmp,
            levels,
            axes_t,
            units_t,
            transforms,
            name=name or _default_name(dest_p),
            version=version,
            method="mean",
            chunks=chunks,
            extra=extra,
        )
        if prepared:
            lab_root = tmp / "labels"
            lab_root.mkdir()
            zarr.open_group(
                zarr.storage.LocalStore(lab_root),
                mode="w",
                zarr_format=2 if version == "0.4" else 3,
            )
            for lname, (llevels, laxes, ltransforms, lunits) in prepared.items():
                meta = _image_label_meta(
                    colors_by_name.get(lname), None, version, source_image="../../"
                )
                _write_multiscale_group(
                    lab_root / lname,
                    llevels,
                    laxes,
                    lunits,
                    ltransforms,
                    name=lname,
                    version=version,
                    method="nearest",
                    chunks=_drop_c(chunks, axes_t) if chunks is not None else None,
                    extra={"image-label": meta},
                )
            _write_labels_list(lab_root, version, list(prepared))
    return str(dest_p)


def _drop_c(values: Sequence[Any], axes: Sequence[str]) -> tuple[Any, ...]:
    return tuple(v for v, a in zip(values, axes, strict=True) if a != "c")


def _prepare_labels(
    labels: Any,
    image_levels: Sequence[tuple[int, ...] | da.Array],
    image_axes: Sequence[str],
    image_transforms: Sequence[tuple[Sequence[float], Sequence[float]]],
    image_units: Sequence[str | None],
    what: str,
) -> tuple[list[da.Array], tuple[str, ...], list[_Transform], tuple[str | None, ...]]:
    """Check labels against an image and build their pyramid on the image's levels."""
    data = _as_dask(labels)
    laxes = tuple(a for a in image_axes if a != "c")
    shapes = [
        _drop_c(lv.shape if isinstance(lv, da.Array) else lv, image_axes) for lv in image_levels
    ]
    if tuple(data.shape) != shapes[0]:
        raise MetadataError(
            f"{what}: shape {tuple(data.shape)} does not match the image "
            f"({shapes[0]} for axes {''.join(laxes)})"
        )
    _check_integer_labels(data, what)
    data = _integer_labels(data)
    levels = [data] + [downsample_labels(data, laxes, s) for s in shapes[1:]]
    transforms = [(_drop_c(s, image_axes), _drop_c(t, image_axes)) for s, t in image_transforms]
    return levels, laxes, transforms, _drop_c(image_units, image_axes)


def write_labels(
    dest: str | os.PathLike[str],
    labels: Any,
    name: str,
    *,
    colors: LabelColors | None = None,
    overwrite: bool = False,
    properties: LabelProperties | None = None,
) -> str:
    """Add ``labels/<name>`` to an existing OME-Zarr image.

    The label image gets the image's axes without ``c``, one level per image
    level (same shapes without ``c``, same scales and translations; nearest
    neighbour downsampling), ``image-label`` metadata, the image's NGFF
    version, and is added to the ``labels`` list. The image's own data and
    metadata are not touched.

    Parameters
    ----------
    dest : path-like
        An existing local OME-Zarr image.
    labels : array-like
        Integer labels, the shape of the image's full resolution without ``c``.
    name : str
        Name of the label image (``"nuclei"``).
    colors : mapping or sequence, optional
        ``{label value: (r, g, b, a)}`` (0-255) or NGFF ``colors`` entries.
    overwrite : bool
        Replace an existing label image of that name (default: refuse).
    properties : mapping or sequence, optional
        ``{label value: {property: value}}`` or NGFF ``properties`` entries.

    Returns
    -------
    str
        The absolute path of the label image (``<dest>/labels/<name>``).

    Raises
    ------
    NotOmeZarrError
        If ``dest`` is not an OME-Zarr image (or is itself a label image).
    OutputExistsError
        If ``labels/<name>`` exists and ``overwrite`` is False.
    MetadataError
        If the labels' shape or type does not fit the image.
    """
    from napari_fbias.io.ome_zarr_read import read_ome_zarr

    dest_p = _dest_path(dest)
    _check_name(name, "label name")
    parent = read_ome_zarr(dest_p, labels=False)
    if parent.is_label:
        raise NotOmeZarrError(f"{dest_p} is a label image; add labels to an image instead")
    if "group" in parent.metadata:
        raise NotOmeZarrError(
            f"{dest_p} holds its image in {parent.metadata['group']!r}; "
            "add labels to that image group instead"
        )
    version = _check_version(str(parent.metadata.get("ngff_version")))
    target = dest_p / "labels" / name
    if target.exists() and not overwrite:
        raise OutputExistsError(
            f"labels {name!r} already exist in {dest_p}; choose another name or allow overwriting"
        )
    what = f"labels {name!r} for {dest_p}"
    levels, laxes, transforms, units = _prepare_labels(
        labels,
        [lv.shape for lv in parent.levels],
        parent.axes,
        list(zip(parent.scales, parent.translations, strict=True)),
        parent.units,
        what,
    )
    meta = _image_label_meta(colors, properties, version, source_image="../../")
    lab_root = _labels_group_path(dest_p, version)
    with atomic_dir(target, overwrite=overwrite) as tmp:
        _write_multiscale_group(
            tmp,
            levels,
            laxes,
            units,
            transforms,
            name=name,
            version=version,
            method="nearest",
            chunks=_parent_chunks(parent),
            extra={"image-label": meta},
        )
    names = _read_labels_list(lab_root, version)
    if name not in names:
        _write_labels_list(lab_root, version, [*names, name])
    return str(target)


def _parent_chunks(parent: MultiscaleImage) -> tuple[int, ...]:
    """Chunk shape for labels of ``parent``: our default chunks, without ``c``."""
    return _drop_c(_default_chunks(parent.shape, parent.axes), parent.axes)
