"""OMERO Plates in the same model as OME-Zarr plates (:mod:`napari_fbias.io.plate_model`).

:func:`read_omero_plate` reads an OMERO Plate's layout (row and column
labels, wells, one image per field) into a
:class:`~napari_fbias.io.ome_zarr_plate.Plate` with ``origin="omero"``:
each well's fields are its images' ``omero://HOST/Image:ID`` URIs, so
:meth:`Plate.fields` (with ``wells=``/``fields=`` selections), the overview
(:func:`~napari_fbias.io.ome_zarr_plate.plate_overview`), the Plate widget
and batch runs treat both sources alike. Opening a field opens an ordinary
OMERO image (its OME-Zarr store when it has one: :mod:`.zarr_pixels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.limits import check_count
from napari_fbias.io.omero.browse import Node, _get, list_children
from napari_fbias.io.omero.connection import OmeroConnection, get_connection
from napari_fbias.io.omero.errors import OmeroUriError
from napari_fbias.io.omero.uri import OmeroRef, format_omero_uri, parse_omero_uri
from napari_fbias.io.plate_model import MAX_FIELDS, MAX_WELLS, Plate, Well

__all__ = ["open_fields", "read_omero_plate"]

#: Field images opened at once for an overview (each reads metadata from the server).
OPEN_AT_ONCE = 4


def _labels(raw: Sequence[Any], n: int, letters: bool) -> tuple[str, ...]:
    """Row or column names: the plate's labels when usable, else A, B... or 1, 2..."""
    names = [str(v) for v in raw]
    if len(names) >= n and all(v.isalnum() for v in names) and len(set(names)) == len(names):
        return tuple(names)
    return tuple(_letters(i) if letters else str(i + 1) for i in range(n))


def _letters(i: int) -> str:
    out = ""
    i += 1
    while i:
        i, r = divmod(i - 1, 26)
        out = chr(65 + r) + out
    return out


def read_omero_plate(ref: str | OmeroRef, *, connection: OmeroConnection | None = None) -> Plate:
    """Read an OMERO Plate's layout (no pixels) as a :class:`Plate`.

    Parameters
    ----------
    ref : str or OmeroRef
        ``omero://HOST/Plate:ID`` or an OMERO.web link to a plate.
    connection : OmeroConnection, optional
        Default: the connection registered for the host.

    Raises
    ------
    OmeroUriError
        When ``ref`` names something other than a Plate.
    OmeroObjectNotFoundError
        No such plate visible to the user.
    TooLargeError
        More wells or fields than an OME-Zarr plate may have.
    """
    ref = ref if isinstance(ref, OmeroRef) else parse_omero_uri(ref)
    if ref.kind != "Plate":
        raise OmeroUriError(f"{ref.uri} is a {ref.kind}, not a Plate")
    conn = connection if connection is not None else get_connection(ref.host)
    plate = _get(conn, "Plate", ref.id)
    source = format_omero_uri(conn.host, "Plate", ref.id)
    node = Node(kind="Plate", id=int(ref.id), name="", has_children=True, host=conn.host)
    wells = list_children(conn, node)
    check_count(len(wells), MAX_WELLS, "wells", source)
    with conn.errors(f"reading the layout of Plate:{ref.id}"):
        n_rows = max((int(w.extra["row"]) for w in wells), default=-1) + 1
        n_cols = max((int(w.extra["column"]) for w in wells), default=-1) + 1
        rows = _labels(plate.getRowLabels(), n_rows, letters=True)
        columns = _labels(plate.getColumnLabels(), n_cols, letters=False)
        name = str(plate.getName() or f"Plate:{ref.id}")
    out = []
    for w in wells:
        images = [n for n in list_children(conn, w) if n.is_image]
        check_count(len(images), MAX_FIELDS, "fields in a well", w.uri or source)
        row, column = rows[int(w.extra["row"])], columns[int(w.extra["column"])]
        out.append(
            Well(
                row=row,
                column=column,
                path=f"{row}/{column}",
                fields=tuple(f"Image:{n.id}" for n in images),
                sources=tuple(format_omero_uri(conn.host, "Image", n.id) for n in images),
            )
        )
    return Plate(
        source=source,
        name=name,
        rows=rows,
        columns=columns,
        wells=tuple(out),
        origin="omero",
    )


def open_fields(plate: Plate, wells: Sequence[Well], field: int) -> dict[str, MultiscaleImage]:
    """Open field ``field`` of each well lazily (metadata only), a few at a time."""
    from napari_fbias.io.omero.pixels import open_omero_image

    def one(w: Well) -> MultiscaleImage:
        return open_omero_image(w.sources[field])

    with ThreadPoolExecutor(max_workers=OPEN_AT_ONCE) as pool:
        images = list(pool.map(one, wells))
    return {w.name: img for w, img in zip(wells, images, strict=True)}
