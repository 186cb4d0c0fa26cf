"""Hand-made OME-Zarr stores for reader tests (zarr-python directly, metadata as given).

Independent of our writer, so a writer bug cannot hide a reader bug:

    path = raw_store(tmp_path / "a.zarr", [level0, level1], ngff_attrs(...), version="0.4")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import zarr

__all__ = ["add_raw_labels", "ngff_multiscales", "raw_store"]

AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}


def ngff_multiscales(
    axes: str | None,
    n_levels: int,
    *,
    version: str = "0.4",
    scale: Sequence[float] | None = None,
    units: Mapping[str, str] | None = None,
    paths: Sequence[str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``multiscales[0]`` entry: levels halve y/x, scale ``scale * 2**k`` there."""
    ndim = len(axes) if axes else len(scale or ())
    base = list(scale) if scale is not None else [1.0] * ndim
    datasets = []
    for k in range(n_levels):
        s = [
            v * (2**k) if axes and a in "yx" else v for v, a in zip(base, axes or "", strict=False)
        ]
        if not axes:
            s = base
        datasets.append(
            {
                "path": paths[k] if paths else str(k),
                "coordinateTransformations": [{"type": "scale", "scale": s}],
            }
        )
    ms: dict[str, Any] = {"datasets": datasets, "name": "raw"}
    if axes:
        ms["axes"] = [
            {
                "name": a,
                "type": AXIS_TYPES[a],
                **({"unit": units[a]} if units and a in units else {}),
            }
            for a in axes
        ]
    if version != "0.5":
        ms["version"] = version
    ms.update(extra or {})
    return ms


def _write_group(
    path: Path,
    levels: Sequence[np.ndarray],
    attrs: Mapping[str, Any],
    zarr_format: int,
    paths: Sequence[str],
    chunks: Sequence[int] | None,
) -> zarr.Group:
    g = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=zarr_format)
    for p, data in zip(paths, levels, strict=True):
        kw: dict[str, Any] = {}
        if zarr_format == 2:
            kw["chunk_key_encoding"] = {"name": "v2", "separator": "/"}
        arr = g.create_array(
            p,
            shape=data.shape,
            dtype=data.dtype,
            chunks=tuple(min(c, n) for c, n in zip(chunks, data.shape, strict=True))
            if chunks
            else data.shape,
            fill_value=0,
            **kw,
        )
        arr[...] = data
    g.attrs.put(dict(attrs))
    return g


def raw_store(
    path: Path,
    levels: Sequence[np.ndarray],
    ome: Mapping[str, Any],
    *,
    version: str = "0.4",
    paths: Sequence[str] | None = None,
    chunks: Sequence[int] | None = None,
) -> Path:
    """Write ``levels`` and OME attributes ``ome`` (``{"multiscales": [...], ...}``).

    NGFF 0.5 puts ``ome`` under ``attributes.ome`` of a zarr v3 ``zarr.json``
    (with ``version``); older versions write it as ``.zattrs`` (zarr v2).
    """
    paths = list(paths) if paths else [str(k) for k in range(len(levels))]
    if version == "0.5":
        _write_group(path, levels, {"ome": {"version": "0.5", **ome}}, 3, paths, chunks)
    else:
        _write_group(path, levels, ome, 2, paths, chunks)
    return path


def add_raw_labels(
    image: Path,
    name: str,
    levels: Sequence[np.ndarray],
    ome: Mapping[str, Any],
    *,
    version: str = "0.4",
    listed: Sequence[str] | None = None,
) -> Path:
    """Add ``labels/<name>`` (with OME attributes ``ome``) and the ``labels`` list."""
    labels = image / "labels"
    names = list(listed) if listed is not None else [name]
    if version == "0.5":
        zarr.open_group(zarr.storage.LocalStore(labels), mode="a", zarr_format=3).attrs.put(
            {"ome": {"version": "0.5", "labels": names}}
        )
    else:
        zarr.open_group(zarr.storage.LocalStore(labels), mode="a", zarr_format=2).attrs.put(
            {"labels": names}
        )
    return raw_store(labels / name, levels, ome, version=version)
