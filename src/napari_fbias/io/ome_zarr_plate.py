"""OME-Zarr plates (HCS) and bioformats2raw series: what a container holds, and its overview.

A screening plate is a group with ``plate`` metadata (rows, columns, wells),
each well a group with ``well`` metadata (its fields of view), each field an
ordinary multiscale image (``plate.zarr/B/3/0``). A bioformats2raw container
(``bioformats2raw.layout``) holds either a plate or a list of series
(``OME/series``, else the consecutive groups ``0``, ``1``, ...); the spec
gives the plate precedence.

* :func:`read_plate` reads a plate's layout (one concurrent round trip for
  all the wells' metadata, no pixels) as a :class:`Plate`, whose
  :meth:`Plate.fields` lists the images to open or run (with ``wells=`` and
  ``fields=`` selections), each with its own source path and a stem
  (``B3_f0``) for its results.
* :func:`plate_overview` tiles one field of every well, at the lowest
  resolution level that fits a tile, into one lazy image (row by column;
  wells without that field stay black) for napari.
* :func:`list_series` lists a bioformats2raw container's series.

NGFF 0.4 (``.zattrs``) and 0.5 (``zarr.json`` with ``ome``) are both read.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import dask.array as da

from napari_fbias.io.credentials import sanitize_uri
from napari_fbias.io.errors import FbiasIOError, MetadataError, NotOmeZarrError
from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.limits import check_count
from napari_fbias.io.ome_zarr_read import (
    MAX_SERIES,
    GroupMeta,
    open_source_store,
    read_group_meta,
    series_paths,
)
from napari_fbias.io.plate_model import (
    MAX_FIELDS,
    MAX_WELLS,
    Plate,
    PlateField,
    Well,
    parse_well_names,
)
from napari_fbias.io.remote import is_remote, join_key, run_sync

__all__ = [
    "MAX_FIELDS",
    "MAX_SERIES",
    "MAX_WELLS",
    "Plate",
    "PlateField",
    "Well",
    "container_kind",
    "list_series",
    "parse_well_names",
    "plate_overview",
    "read_plate",
    "tile_overview",
]

#: Largest side (pixels) of one well's tile in the plate overview.
OVERVIEW_TILE = 256

# --- reading the layout ----------------------------------------------------------------------


def container_kind(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> str:
    """Return what an OME-Zarr source holds: ``"plate"``, ``"series"``, ``"image"`` or ``"other"``.

    ``"series"`` is a bioformats2raw container without a plate. One
    metadata read; an unreadable source answers ``"other"``. An OMERO
    reference answers by its kind (``omero://HOST/Plate:ID`` is a
    ``"plate"``, read by :func:`read_plate`), without asking the server.
    """
    if _is_omero(source):
        from napari_fbias.io.omero.errors import OmeroUriError
        from napari_fbias.io.omero.uri import parse_omero_uri

        try:
            kind = parse_omero_uri(str(source)).kind
        except OmeroUriError:
            return "other"
        return {"Plate": "plate", "Image": "image"}.get(kind, "other")
    try:
        store, shown = open_source_store(source, storage_options=storage_options, timeout=timeout)
        meta = run_sync(read_group_meta(store, "", shown))
    except (OSError, ValueError, FbiasIOError):  # unreadable here: the reader will say why
        return "other"
    if meta is None:
        return "other"
    if "plate" in meta.attrs:
        return "plate"
    if "multiscales" in meta.attrs:
        return "image"
    if "bioformats2raw.layout" in meta.attrs:
        return "series"
    return "other"


def read_plate(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> Plate:
    """Read the layout of an OME-Zarr plate (also one wrapped by bioformats2raw).

    An ``omero://HOST/Plate:ID`` reference (or an OMERO.web link to a plate)
    reads the OMERO Plate into the same model
    (:func:`~napari_fbias.io.omero.plate.read_omero_plate`, through the
    connection registered for that host).

    Raises
    ------
    NotOmeZarrError
        When ``source`` is not a plate (the message says what it is).
    MetadataError
        Broken plate or well metadata, naming the file and the field.
    TooLargeError
        More than :data:`MAX_WELLS` wells or :data:`MAX_FIELDS` fields in a well.
    """
    if _is_omero(source):
        from napari_fbias.io.omero.plate import read_omero_plate

        return read_omero_plate(str(source))
    store, shown = open_source_store(source, storage_options=storage_options, timeout=timeout)
    plate = run_sync(_read_plate(store, shown.rstrip("/")))
    raw = str(source).rstrip("/")
    access = raw if is_remote(raw) and sanitize_uri(raw) != raw else ""
    return replace(plate, access=access, storage_options=storage_options)


def _is_omero(source: str | os.PathLike[str]) -> bool:
    from napari_fbias.io.open import is_omero_source

    return isinstance(source, str) and is_omero_source(source)


async def _read_plate(store: Any, source: str) -> Plate:
    meta = await read_group_meta(store, "", source)
    if meta is None or "plate" not in meta.attrs:
        what = "no OME-Zarr metadata" if meta is None else "no 'plate' metadata"
        raise NotOmeZarrError(f"{source} is not an OME-Zarr plate: {what}")
    where = join_key(source, meta.key)
    plate = meta.attrs["plate"]
    if not isinstance(plate, dict):
        raise MetadataError(f"{where}: 'plate' is not a JSON object")
    rows = _names(plate.get("rows"), "rows", where)
    columns = _names(plate.get("columns"), "columns", where)
    raw_wells = plate.get("wells")
    if not isinstance(raw_wells, list) or not raw_wells:
        raise MetadataError(f"{where}: plate 'wells' must be a non-empty list")
    check_count(len(raw_wells), MAX_WELLS, "wells", where)
    places = [_well_place(w, i, rows, columns, where) for i, w in enumerate(raw_wells)]
    metas = await asyncio.gather(
        *(read_group_meta(store, path, source, zarr_format=meta.zarr_format) for path, *_ in places)
    )
    wells = [
        Well(row, column, path, _field_paths(m, join_key(source, path)))
        for (path, row, column), m in zip(places, metas, strict=True)
    ]
    order = {(r, c): (rows.index(r), columns.index(c)) for _, r, c in places}
    wells.sort(key=lambda w: order[(w.row, w.column)])
    version = meta.attrs.get("version") or plate.get("version")
    name = plate.get("name")
    return Plate(
        source=source,
        name=str(name) if isinstance(name, str) and name else source.rstrip("/").rsplit("/")[-1],
        rows=rows,
        columns=columns,
        wells=tuple(wells),
        version=str(version) if version is not None else None,
    )


def _names(raw: Any, what: str, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise MetadataError(f"{where}: plate '{what}' must be a non-empty list")
    check_count(len(raw), MAX_WELLS, f"plate {what}", where)
    names = []
    for i, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not name.isalnum():
            raise MetadataError(f"{where}: plate {what}[{i}] has no alphanumeric 'name'")
        names.append(name)
    if len(set(names)) != len(names):
        raise MetadataError(f"{where}: plate '{what}' repeats a name")
    return tuple(names)


def _well_place(
    raw: Any, i: int, rows: tuple[str, ...], columns: tuple[str, ...], where: str
) -> tuple[str, str, str]:
    """Return (path, row, column) of one ``plate.wells`` entry."""
    path = raw.get("path") if isinstance(raw, dict) else None
    if not isinstance(path, str) or path.count("/") != 1:
        raise MetadataError(f"{where}: plate wells[{i}] needs a 'path' such as 'A/1'")
    row, column = path.split("/")
    r, c = raw.get("rowIndex"), raw.get("columnIndex")
    if isinstance(r, int) and isinstance(c, int) and 0 <= r < len(rows) and 0 <= c < len(columns):
        if (rows[r], columns[c]) != (row, column):
            raise MetadataError(
                f"{where}: plate wells[{i}] path {path!r} disagrees with its rowIndex/columnIndex "
                f"({rows[r]}/{columns[c]})"
            )
    elif row not in rows or column not in columns:
        raise MetadataError(
            f"{where}: plate wells[{i}] path {path!r} names a row or column the plate lacks"
        )
    return path, row, column


def _field_paths(meta: GroupMeta | None, where_well: str) -> tuple[str, ...]:
    if meta is None:
        return ()  # a well listed but not written: no fields (shown black in the overview)
    where = f"{where_well}/{meta.key.rsplit('/', 1)[-1]}"
    well = meta.attrs.get("well")
    images = well.get("images") if isinstance(well, dict) else None
    if not isinstance(images, list):
        raise MetadataError(f"{where}: no 'well' metadata with a list of 'images'")
    check_count(len(images), MAX_FIELDS, "fields in a well", where)
    paths = []
    for i, img in enumerate(images):
        p = img.get("path") if isinstance(img, dict) else None
        if not isinstance(p, str) or not p or "/" in p or p in (".", ".."):
            raise MetadataError(f"{where}: well images[{i}] has no valid 'path'")
        paths.append(p)
    return tuple(paths)


def list_series(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> list[str]:
    """Return the paths of the images of a bioformats2raw container (``["0", "1"]``).

    From ``OME/series`` when the container has it, else the consecutive groups
    ``0``, ``1``, ... that hold an image (the layout's rule).

    Raises
    ------
    NotOmeZarrError
        When ``source`` is not a bioformats2raw container, or is a plate.
    """
    store, shown = open_source_store(source, storage_options=storage_options, timeout=timeout)
    return run_sync(series_paths(store, "", shown.rstrip("/")))


# --- the overview ----------------------------------------------------------------------------


def plate_overview(
    plate: Plate,
    *,
    field: int = 0,
    tile: int = OVERVIEW_TILE,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> MultiscaleImage:
    """Tile field ``field`` of every well into one lazy image (rows x columns of tiles).

    Each well shows the lowest-resolution level of its field whose height and
    width fit ``tile`` pixels (the smallest level otherwise), padded to the
    largest tile; wells without that field, or not written, stay black. The
    overview's ``metadata["plate"]`` gives the tile size and each well's
    tile origin, for labelling.

    An OMERO plate's fields are opened like any OMERO image (from their
    OME-Zarr store when they have one); without a resolution level that fits,
    a tile takes every n-th pixel (only the planes shown are read).

    Raises
    ------
    FbiasIOError
        When a field cannot be opened, or the fields disagree in their
        non-spatial dimensions (channels, time points, planes) or dtype.
    """
    wells = [w for w in plate.wells if field < len(w.fields)]
    if not wells:
        raise NotOmeZarrError(f"plate {plate.name!r}: no well has a field {field}")
    if plate.origin == "omero":
        from napari_fbias.io.omero.plate import open_fields

        images = open_fields(plate, wells, field)
        return tile_overview(plate, images, field=field, tile=tile, stride=True)
    from napari_fbias.io.ome_zarr_read import _read_image

    store, shown = open_source_store(
        plate.access or plate.source,
        storage_options=storage_options if storage_options is not None else plate.storage_options,
        timeout=timeout,
    )

    async def read_all() -> list[Any]:
        return await asyncio.gather(
            *(
                _read_image(
                    store,
                    join_key(w.path, w.fields[field]),
                    shown.rstrip("/"),
                    zarr_format=None,
                    with_labels=False,
                )
                for w in wells
            )
        )

    # one concurrent round of metadata reads; dask arrays are made outside zarr's loop
    parsed = run_sync(read_all())
    images = {w.name: p.to_image() for w, p in zip(wells, parsed, strict=True)}
    return tile_overview(plate, images, field=field, tile=tile)


def tile_overview(
    plate: Plate,
    images: Mapping[str, MultiscaleImage],
    *,
    field: int = 0,
    tile: int = OVERVIEW_TILE,
    stride: bool = False,
) -> MultiscaleImage:
    """Tile one opened field per well (``images`` by well name) into the plate's overview.

    Whatever the plate's origin: :func:`plate_overview` opens the fields,
    this lays them out. With ``stride``, a field whose smallest level is
    larger than ``tile`` takes every n-th pixel to fit.
    """
    first_well, first = next(iter(images.items()))
    axes = first.axes
    yi, xi = axes.index("y"), axes.index("x")
    chosen: dict[str, tuple[da.Array, int, int]] = {}
    for name, img in images.items():
        if img.axes != axes:
            raise MetadataError(
                f"plate {plate.name!r}: well {name} has axes {''.join(img.axes)}, "
                f"well {first_well} {''.join(axes)}"
            )
        level = next(
            (i for i, lv in enumerate(img.levels) if max(lv.shape[yi], lv.shape[xi]) <= tile),
            len(img.levels) - 1,
        )
        arr = img.levels[level]
        step = -(-max(arr.shape[yi], arr.shape[xi]) // tile) if stride else 1
        if step > 1:
            arr = arr[
                tuple(
                    slice(None, None, step) if i in (yi, xi) else slice(None)
                    for i in range(arr.ndim)
                )
            ]
        chosen[name] = (arr, level, step)

    def rest(shape: tuple[int, ...]) -> list[int]:
        return [n for i, n in enumerate(shape) if i not in (yi, xi)]

    ref, level, step = chosen[first_well]
    for name, (arr, *_) in chosen.items():
        if rest(arr.shape) != rest(ref.shape) or arr.dtype != ref.dtype:
            raise MetadataError(
                f"plate {plate.name!r}: well {name}'s field {field} ({arr.dtype}, shape "
                f"{arr.shape}) does not match well {first_well}'s ({ref.dtype}, {ref.shape})"
            )
    th = max(a.shape[yi] for a, *_ in chosen.values())
    tw = max(a.shape[xi] for a, *_ in chosen.values())
    dtype = ref.dtype
    blank_shape = list(ref.shape)
    blank_shape[yi], blank_shape[xi] = th, tw
    grid = []
    origins: dict[str, tuple[int, int]] = {}
    present = {(w.row, w.column): w.name for w in plate.wells}
    for r, row in enumerate(plate.rows):
        tiles = []
        for c, column in enumerate(plate.columns):
            name = present.get((row, column))
            if name in chosen:
                arr = chosen[name][0]
                pad = [(0, 0)] * arr.ndim
                pad[yi], pad[xi] = (0, th - arr.shape[yi]), (0, tw - arr.shape[xi])
                tiles.append(da.pad(arr, pad) if any(p[1] for p in pad) else arr)
                origins[name] = (r * th, c * tw)
            else:
                tiles.append(da.zeros(blank_shape, dtype=dtype, chunks=blank_shape))
        grid.append(tiles)
    data = da.concatenate([da.concatenate(t, axis=xi) for t in grid], axis=yi)
    scale = tuple(v * step if i in (yi, xi) else v for i, v in enumerate(first.scales[level]))
    return MultiscaleImage(
        levels=(data,),
        axes=axes,
        scales=(scale,),
        translations=(tuple(0.0 for _ in axes),),
        units=first.units,
        channels=first.channels,
        name=f"{plate.name} (plate, field {field})",
        source=plate.source,
        metadata={
            "format": "omero-plate" if plate.origin == "omero" else "ome-zarr-plate",
            "plate": {
                "name": plate.name,
                "field": field,
                "tile": (th, tw),
                "rows": plate.rows,
                "columns": plate.columns,
                "wells": {w.name: w.path for w in plate.wells},
                "origins": origins,
            },
        },
    )
