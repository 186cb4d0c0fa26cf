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
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import dask.array as da

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
from napari_fbias.io.remote import join_key, run_sync

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
]

#: Most wells a plate may list (a 3456-well plate has 3456).
MAX_WELLS = 6144
#: Most fields of view a well may list.
MAX_FIELDS = 4096
#: Largest side (pixels) of one well's tile in the plate overview.
OVERVIEW_TILE = 256
_WELL_NAME = re.compile(r"^\s*([A-Za-z]+)\s*[/_-]?\s*0*(\d+)\s*$")


@dataclass(frozen=True)
class Well:
    """One well of a plate: its row and column names and its fields' image paths."""

    row: str
    column: str
    path: str
    fields: tuple[str, ...]

    @property
    def name(self) -> str:
        """``"B3"``: row name then column name."""
        return f"{self.row}{self.column}"


@dataclass(frozen=True)
class PlateField:
    """One field of view of one well: an ordinary OME-Zarr image inside the plate."""

    well: Well
    index: int
    source: str

    @property
    def stem(self) -> str:
        """Name of its results (``B3_f0``)."""
        return f"{self.well.name}_f{self.index}"


@dataclass(frozen=True)
class Plate:
    """The layout of an OME-Zarr plate (no pixels).

    Attributes
    ----------
    source : str
        The plate's path or URL (the group holding ``plate``).
    name : str
        The plate's name (``plate.name``, else the folder name).
    rows, columns : tuple of str
        Row and column names, in plate order.
    wells : tuple of Well
        The wells present, in plate order (row, then column).
    version : str or None
        The NGFF version of the plate metadata.
    """

    source: str
    name: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[Well, ...]
    version: str | None = None

    def well(self, name: str) -> Well:
        """Return the well called ``name`` (``"B3"``, ``"b03"`` or ``"B/3"``).

        Raises
        ------
        KeyError
            When the plate has no such well (the message lists the wells).
        """
        key = _well_key(name)
        for w in self.wells:
            if _well_key(w.name) == key:
                return w
        shown = ", ".join(w.name for w in self.wells[:12])
        more = "..." if len(self.wells) > 12 else ""
        raise KeyError(f"plate {self.name!r} has no well {name!r} (wells: {shown}{more})")

    def fields(
        self, wells: Sequence[str] | None = None, fields: Sequence[int] | None = None
    ) -> list[PlateField]:
        """Return the fields to open or run: every field of every well, or a selection.

        Parameters
        ----------
        wells : sequence of str, optional
            Well names (``["A1", "B3"]``); default every well.
        fields : sequence of int, optional
            Field indices within each well (``[0]``); default every field.
            A well lacking one of them is skipped for that field.

        Raises
        ------
        KeyError
            For a well the plate does not have.
        ValueError
            For a negative field index, or a selection that leaves nothing.
        """
        chosen = self.wells if wells is None else tuple(self.well(w) for w in wells)
        if fields is not None and any(int(f) < 0 for f in fields):
            raise ValueError(f"field indices start at 0, got {list(fields)}")
        out = []
        for w in chosen:
            indices = range(len(w.fields)) if fields is None else [int(f) for f in fields]
            for i in indices:
                if i < len(w.fields):
                    out.append(PlateField(w, i, join_key(self.source, w.path, w.fields[i])))
        if not out:
            raise ValueError(
                f"plate {self.name!r}: no field matches wells={list(wells or [])} "
                f"fields={list(fields or [])}"
            )
        return out


def parse_well_names(text: str) -> list[str]:
    """Split ``"A1,B3 C12"`` into well names, checking each looks like one."""
    names = [n for n in re.split(r"[,\s]+", text.strip()) if n]
    for n in names:
        if not _WELL_NAME.match(n):
            raise ValueError(f"{n!r} is not a well name (a row letter and a column number: B3)")
    return names


def _well_key(name: str) -> tuple[str, int] | str:
    m = _WELL_NAME.match(name)
    return (m.group(1).upper(), int(m.group(2))) if m else name.strip().upper()


# --- reading the layout ----------------------------------------------------------------------


def container_kind(
    source: str | os.PathLike[str],
    *,
    storage_options: Mapping[str, Any] | None = None,
    timeout: float | None = None,
) -> str:
    """Return what an OME-Zarr source holds: ``"plate"``, ``"series"``, ``"image"`` or ``"other"``.

    ``"series"`` is a bioformats2raw container without a plate. One
    metadata read; an unreadable source answers ``"other"``.
    """
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

    Raises
    ------
    NotOmeZarrError
        When ``source`` is not a plate (the message says what it is).
    MetadataError
        Broken plate or well metadata, naming the file and the field.
    TooLargeError
        More than :data:`MAX_WELLS` wells or :data:`MAX_FIELDS` fields in a well.
    """
    store, shown = open_source_store(source, storage_options=storage_options, timeout=timeout)
    return run_sync(_read_plate(store, shown.rstrip("/")))


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

    Raises
    ------
    FbiasIOError
        When a field cannot be opened, or the fields disagree in their
        non-spatial dimensions (channels, time points, planes) or dtype.
    """
    from napari_fbias.io.ome_zarr_read import _read_image

    wells = [w for w in plate.wells if field < len(w.fields)]
    if not wells:
        raise NotOmeZarrError(f"plate {plate.name!r}: no well has a field {field}")
    store, shown = open_source_store(plate.source, storage_options=storage_options, timeout=timeout)

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
    first_well, first = next(iter(images.items()))
    axes = first.axes
    yi, xi = axes.index("y"), axes.index("x")
    chosen: dict[str, tuple[da.Array, int]] = {}
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
        chosen[name] = (img.levels[level], level)

    def rest(shape: tuple[int, ...]) -> list[int]:
        return [n for i, n in enumerate(shape) if i not in (yi, xi)]

    ref, level = chosen[first_well]
    for name, (arr, _) in chosen.items():
        if rest(arr.shape) != rest(ref.shape) or arr.dtype != ref.dtype:
            raise MetadataError(
                f"plate {plate.name!r}: well {name}'s field {field} ({arr.dtype}, shape "
                f"{arr.shape}) does not match well {first_well}'s ({ref.dtype}, {ref.shape})"
            )
    th = max(a.shape[yi] for a, _ in chosen.values())
    tw = max(a.shape[xi] for a, _ in chosen.values())
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
    return MultiscaleImage(
        levels=(data,),
        axes=axes,
        scales=(first.scales[level],),
        translations=(tuple(0.0 for _ in axes),),
        units=first.units,
        channels=first.channels,
        name=f"{plate.name} (plate, field {field})",
        source=plate.source,
        metadata={
            "format": "ome-zarr-plate",
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
