"""Browsing and opening OMERO images, without Qt: the browser's work in worker threads.

The tree (:mod:`.tree`) asks for the children of a node when it is expanded;
:func:`children` fetches them, :func:`thumbnails` then yields the thumbnails
of their images one by one, and :func:`open_images` opens images lazily
(metadata only) as napari layer data, the same as our reader makes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from napari_fbias._layers import image_to_layer_data
from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.omero.browse import Node, get_thumbnail, list_children
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroObjectNotFoundError
from napari_fbias.io.omero.pixels import open_omero_image
from napari_fbias.io.omero.uri import OmeroRef

__all__ = ["THUMBNAIL_SIZE", "children", "open_images", "thumbnails"]

#: Side of the thumbnails asked from the server, in pixels.
THUMBNAIL_SIZE = 48


def children(conn: OmeroConnection, node: Node) -> tuple[Node, list[Node]]:
    """Fetch the children of ``node``; return the node and them."""
    return node, list_children(conn, node)


def thumbnails(conn: OmeroConnection, image_ids: Sequence[int]) -> Iterator[tuple[int, Any]]:
    """Yield ``(image id, RGB array)`` for each image (images gone meanwhile are skipped)."""
    for iid in image_ids:
        try:
            yield iid, get_thumbnail(conn, iid, size=THUMBNAIL_SIZE)
        except OmeroObjectNotFoundError:
            continue


def open_images(
    pairs: Sequence[tuple[OmeroConnection, OmeroRef]],
) -> list[tuple[MultiscaleImage, list[tuple[Any, dict[str, Any], str]]]]:
    """Open OMERO images lazily (metadata only) and make their napari layer data.

    Parameters
    ----------
    pairs : sequence of (OmeroConnection, OmeroRef)
        Each image with the connection to read it through.

    Returns
    -------
    list of (MultiscaleImage, list of layer data tuples)
    """
    out = []
    for conn, ref in pairs:
        image = open_omero_image(ref, connection=conn)
        out.append((image, image_to_layer_data(image)))
    return out
