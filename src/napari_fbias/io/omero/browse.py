"""Browse an OMERO server: a Qt-free, lazy tree model (the OMERO widget shows it).

Top level (:func:`list_roots`): Projects, Screens, orphaned Datasets,
orphaned Plates, and one "Orphaned images" node. Children are fetched only
when asked (:func:`list_children`)::

    Project > Dataset > Image
    Screen > Plate > Well > Image (one per field, i.e. WellSample)

Every level is one :class:`Node` (a frozen dataclass), so the widget and the
tests handle plain values. :func:`get_thumbnail` renders an image's
thumbnail to an array; :func:`expand_omero_inputs` turns a Dataset, Plate...
reference into the list of its image URIs for batch runs.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import (
    OmeroConnectionError,
    OmeroError,
    OmeroObjectNotFoundError,
)
from napari_fbias.io.omero.uri import OmeroRef, format_omero_uri

#: Kind of the virtual node holding images that are in no Dataset and no Well.
ORPHANED_IMAGES = "OrphanedImages"

#: For each container kind: (child kind, collection counted by getCollectionCount).
_CHILDREN: dict[str, tuple[str, str]] = {
    "Project": ("Dataset", "datasetLinks"),
    "Dataset": ("Image", "imageLinks"),
    "Screen": ("Plate", "plateLinks"),
    "Plate": ("Well", "wells"),
    "Well": ("Image", "wellSamples"),
}


@dataclass(frozen=True)
class Node:
    """One entry of the OMERO tree.

    Parameters
    ----------
    kind : str
        ``"Project"``, ``"Dataset"``, ``"Image"``, ``"Screen"``, ``"Plate"``,
        ``"Well"`` or ``"OrphanedImages"`` (virtual, id -1).
    id : int
        OMERO id of the object.
    name : str
        Display name (for wells their position, e.g. ``"B3"``; for fields
        ``"B3 field 2: <image name>"``).
    has_children : bool
        Whether expanding it can show something (containers whose count
        could not be fetched say True).
    child_count : int or None
        Number of children when known.
    owner : str or None
        Owner's user name when known.
    host : str
        Server the object lives on.
    parent : tuple of (str, int) or None
        ``(kind, id)`` of the node it was listed under.
    extra : Mapping
        Kind-specific details (``row``/``column`` of a well, ``field`` index...).
    """

    kind: str
    id: int
    name: str
    has_children: bool
    child_count: int | None = None
    owner: str | None = None
    host: str = ""
    parent: tuple[str, int] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def is_image(self) -> bool:
        """True for an image (something :func:`open_omero_image` opens)."""
        return self.kind == "Image"

    @property
    def uri(self) -> str | None:
        """``omero://HOST/Kind:ID`` of the object (None for the virtual orphans node)."""
        if self.kind == ORPHANED_IMAGES or not self.host:
            return None
        return format_omero_uri(self.host, self.kind, self.id)


def _owner(obj: Any) -> str | None:
    try:
        name = obj.getOwnerOmeName()
    except Exception:  # ownership not loaded: not worth a failure
        return None
    return str(name) if name else None


def _counts(conn: OmeroConnection, kind: str, ids: list[int]) -> dict[int, int]:
    """Child counts of many containers in one server call ({} when unavailable)."""
    if not ids or kind not in _CHILDREN:
        return {}
    prop = _CHILDREN[kind][1]
    gw = conn.gateway
    try:
        with conn.errors(f"counting the children of {len(ids)} {kind}s"):
            counts = gw.getContainerService().getCollectionCount(
                kind, prop, ids, None, gw.SERVICE_OPTS
            )
    except OmeroConnectionError:
        raise
    except Exception:  # counts are a nicety (an old server may refuse one): show the tree
        return {}
    return {int(k): int(v) for k, v in dict(counts).items()}


def _container_nodes(
    conn: OmeroConnection, kind: str, objects: Iterable[Any], parent: tuple[str, int] | None
) -> list[Node]:
    objs = sorted(objects, key=lambda o: (str(o.getName() or "").lower(), int(o.getId())))
    counts = _counts(conn, kind, [int(o.getId()) for o in objs])
    nodes = []
    for o in objs:
        oid = int(o.getId())
        count = counts.get(oid)
        nodes.append(
            Node(
                kind=kind,
                id=oid,
                name=str(o.getName() or f"{kind}:{oid}"),
                has_children=True if count is None else count > 0,
                child_count=count,
                owner=_owner(o),
                host=conn.host,
                parent=parent,
            )
        )
    return nodes


def _image_nodes(
    conn: OmeroConnection, images: Iterable[Any], parent: tuple[str, int] | None
) -> list[Node]:
    imgs = sorted(images, key=lambda o: (str(o.getName() or "").lower(), int(o.getId())))
    return [
        Node(
            kind="Image",
            id=int(i.getId()),
            name=str(i.getName() or f"Image:{i.getId()}"),
            has_children=False,
            child_count=0,
            owner=_owner(i),
            host=conn.host,
            parent=parent,
        )
        for i in imgs
    ]


def list_roots(conn: OmeroConnection, *, owner_id: int | None = None) -> list[Node]:
    """List the top of the tree in the connection's current group.

    Parameters
    ----------
    conn : OmeroConnection
        Open connection.
    owner_id : int, optional
        Only objects of this experimenter (default: everyone's in the group).

    Returns
    -------
    list of Node
        Projects, Screens, orphaned Datasets, orphaned Plates (each sorted by
        name), then the virtual "Orphaned images" node.
    """
    gw = conn.gateway
    opts = {"owner": owner_id} if owner_id is not None else None
    with conn.errors("listing Projects and Screens"):
        projects = list(gw.getObjects("Project", opts=opts))
        screens = list(gw.getObjects("Screen", opts=opts))
        datasets = list(gw.listOrphans("Dataset", eid=owner_id))
        plates = list(gw.listOrphans("Plate", eid=owner_id))
    nodes = _container_nodes(conn, "Project", projects, None)
    nodes += _container_nodes(conn, "Screen", screens, None)
    nodes += _container_nodes(conn, "Dataset", datasets, None)
    nodes += _container_nodes(conn, "Plate", plates, None)
    nodes.append(
        Node(
            kind=ORPHANED_IMAGES,
            id=-1 if owner_id is None else int(owner_id),
            name="Orphaned images",
            has_children=True,
            host=conn.host,
        )
    )
    return nodes


def _get(conn: OmeroConnection, kind: str, oid: int) -> Any:
    with conn.errors(f"looking up {kind}:{oid}"):
        obj = conn.gateway.getObject(kind, int(oid))
    if obj is None:
        raise OmeroObjectNotFoundError(
            f"{kind}:{oid} does not exist on {conn.host} or is not visible to user {conn.user} "
            f"in group {conn.group_id} (try group -1: all groups)"
        )
    return obj


def _well_pos(well: Any, labels: tuple[list[Any], list[Any]] | None = None) -> str:
    """Return a well's position ("B3") from its plate's row/column labels."""
    row, column = int(well.getRow()), int(well.getColumn())
    try:
        if labels is not None:
            return f"{labels[0][row]}{labels[1][column]}"
        return str(well.getWellPos())
    except Exception:  # labels not loadable: fall back to row/column numbers
        return f"r{row + 1}c{column + 1}"


def list_children(conn: OmeroConnection, node: Node | OmeroRef) -> list[Node]:
    """Fetch the children of a node (one level, on demand).

    Parameters
    ----------
    conn : OmeroConnection
        Open connection.
    node : Node or OmeroRef
        What to expand (an Image has no children).
    """
    kind, oid = node.kind, int(node.id)
    parent = (kind, oid)
    gw = conn.gateway
    if kind == ORPHANED_IMAGES:
        eid = None if oid < 0 else oid
        with conn.errors("listing orphaned images"):
            return _image_nodes(conn, gw.listOrphans("Image", eid=eid), parent)
    if kind == "Image":
        return []
    obj = _get(conn, kind, oid)
    with conn.errors(f"listing the children of {kind}:{oid}"):
        if kind == "Project":
            return _container_nodes(conn, "Dataset", obj.listChildren(), parent)
        if kind == "Screen":
            return _container_nodes(conn, "Plate", obj.listChildren(), parent)
        if kind == "Dataset":
            return _image_nodes(conn, obj.listChildren(), parent)
        if kind == "Plate":
            wells = sorted(obj.listChildren(), key=lambda w: (int(w.getRow()), int(w.getColumn())))
            counts = _counts(conn, "Well", [int(w.getId()) for w in wells])
            labels = (list(obj.getRowLabels()), list(obj.getColumnLabels()))  # once per plate
            return [
                Node(
                    kind="Well",
                    id=int(w.getId()),
                    name=_well_pos(w, labels),
                    has_children=counts.get(int(w.getId()), 1) > 0,
                    child_count=counts.get(int(w.getId())),
                    host=conn.host,
                    parent=parent,
                    extra={"row": int(w.getRow()), "column": int(w.getColumn())},
                )
                for w in wells
            ]
        if kind == "Well":
            pos = _well_pos(obj)
            nodes = []
            for index, sample in enumerate(obj.listChildren()):
                image = sample.getImage()
                if image is None:
                    continue
                nodes.append(
                    Node(
                        kind="Image",
                        id=int(image.getId()),
                        name=f"{pos} field {index + 1}: {image.getName()}",
                        has_children=False,
                        child_count=0,
                        host=conn.host,
                        parent=parent,
                        extra={"well": pos, "field": index},
                    )
                )
            return nodes
    raise OmeroError(f"cannot list the children of a {kind}")


def get_thumbnail(conn: OmeroConnection, image_id: int, size: int = 96) -> np.ndarray | None:
    """Render an image's thumbnail (longest side ``size``) as an RGB(A) uint8 array.

    Returns None when the server has no thumbnail for it (e.g. still importing).
    """
    from PIL import Image as PILImage

    image = _get(conn, "Image", image_id)
    with conn.errors(f"fetching the thumbnail of Image:{image_id}"):
        data = image.getThumbnail(size=(int(size),))
    if not data:
        return None
    with PILImage.open(io.BytesIO(bytes(data))) as pil:
        return np.asarray(pil.convert("RGBA" if "A" in pil.getbands() else "RGB"))


def expand_omero_inputs(ref: OmeroRef | Node | str, conn: OmeroConnection) -> list[str]:
    """Turn a reference into the URIs of all the images it contains (for batch runs).

    Image -> itself; Dataset -> its images; Project -> the images of its
    datasets; Well -> its fields; Plate -> the fields of its wells (row, then
    column, then field order); Screen -> its plates'. Datasets, projects and
    plates are visited by name; each image appears once.

    Parameters
    ----------
    ref : OmeroRef, Node or str
        What to expand (a str is parsed as an OMERO URI or web link).
    conn : OmeroConnection
        Open connection to its server.

    Returns
    -------
    list of str
        ``omero://HOST/Image:ID`` URIs, in a stable order.
    """
    if isinstance(ref, str):
        from napari_fbias.io.omero.uri import parse_omero_uri

        ref = parse_omero_uri(ref)
    kind = ref.kind
    if kind == "Image":
        _get(conn, "Image", ref.id)
        ids = [int(ref.id)]
    else:
        ids = []
        pending: list[tuple[str, int]] = [(kind, int(ref.id))]
        if kind not in _CHILDREN:
            raise OmeroError(f"cannot expand a {kind} into images")
        while pending:  # depth first, children in listing order
            k, i = pending.pop(0)
            children = list_children(conn, Node(kind=k, id=i, name="", has_children=True))
            ids.extend(c.id for c in children if c.kind == "Image")
            pending[0:0] = [(c.kind, c.id) for c in children if c.kind != "Image"]
    seen: dict[int, None] = dict.fromkeys(ids)
    return [format_omero_uri(conn.host, "Image", i) for i in seen]
