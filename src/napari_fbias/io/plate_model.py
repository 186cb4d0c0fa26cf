"""The plate model shared by OME-Zarr plates and OMERO Plates (no I/O).

A :class:`Plate` (rows, columns, wells) whose :class:`Well` objects list
their fields; :meth:`Plate.fields` picks the fields to open or run (with
``wells=``/``fields=`` selections) as :class:`PlateField` values, each with
the source that opens it and the stem of its results (``B3_f0``).
:mod:`napari_fbias.io.ome_zarr_plate` reads OME-Zarr plates into it,
:mod:`napari_fbias.io.omero.plate` OMERO Plates; the overview, the Plate
widget and batch runs take either.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from napari_fbias.io.remote import is_remote, join_key

__all__ = ["MAX_FIELDS", "MAX_WELLS", "Plate", "PlateField", "Well", "parse_well_names"]

#: Most wells a plate may list (a 3456-well plate has 3456).
MAX_WELLS = 6144
#: Most fields of view a well may list.
MAX_FIELDS = 4096

_WELL_NAME = re.compile(r"^\s*([A-Za-z]+)\s*[/_-]?\s*0*(\d+)\s*$")


@dataclass(frozen=True)
class Well:
    """One well of a plate: its row and column names and its fields' image paths.

    ``sources`` gives each field's own source when it does not lie under the
    plate (an OMERO well's images: ``omero://HOST/Image:ID``); empty for
    OME-Zarr plates, whose fields are ``<plate>/<path>/<field>``.
    """

    row: str
    column: str
    path: str
    fields: tuple[str, ...]
    sources: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``"B3"``: row name then column name."""
        return f"{self.row}{self.column}"


@dataclass(frozen=True, repr=False)
class PlateField:
    """One field of view of one well: an ordinary OME-Zarr image inside the plate.

    ``source`` opens it: for a plate read from a URL with credentials
    (``https://user:password@host/plate.zarr``) it keeps them, in memory
    only, like the plate's own URL (its repr and every image opened from it
    show the URL without them).
    """

    well: Well
    index: int
    source: str

    def __repr__(self) -> str:
        from napari_fbias.io.credentials import sanitize_uri

        return f"PlateField(well={self.well.name!r}, index={self.index}, " + (
            f"source={sanitize_uri(self.source)!r})"
        )

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
    origin : str
        ``"ome-zarr"``, or ``"omero"`` for an OMERO Plate (``source`` is then
        ``omero://HOST/Plate:ID`` and each field an OMERO image).
    """

    source: str
    name: str
    rows: tuple[str, ...]
    columns: tuple[str, ...]
    wells: tuple[Well, ...]
    version: str | None = None
    origin: str = "ome-zarr"
    #: The URL as given when it carries credentials (in memory only: never shown or compared).
    access: str = dc_field(default="", repr=False, compare=False)
    #: fsspec options the plate was read with (in memory only).
    storage_options: Mapping[str, Any] | None = dc_field(default=None, repr=False, compare=False)

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
                    base = self.access or self.source
                    src = w.sources[i] if w.sources else _under(base, w.path, w.fields[i])
                    out.append(PlateField(w, i, src))
        if not out:
            raise ValueError(
                f"plate {self.name!r}: no field matches wells={list(wells or [])} "
                f"fields={list(fields or [])}"
            )
        return out


def _under(base: str, *parts: str) -> str:
    """Join key parts under a path or URL, keeping a URL's query (a token) at its end."""
    from urllib.parse import urlsplit, urlunsplit

    url = urlsplit(base)
    if not (is_remote(base) and url.query):
        return join_key(base, *parts)
    return urlunsplit(url._replace(path=join_key(url.path, *parts), fragment=""))


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
