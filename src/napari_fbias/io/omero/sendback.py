"""Send results back to OMERO: labels as ROIs, tables, the report and the pipeline.

* **Labels** become one ROI per label id, with one mask shape per plane the
  label touches (``theZ``/``theT``/``theC`` set), made with omero-rois'
  ``mask_from_binary_image``.
* **Measurement tables** become an OMERO.table (with ``Image`` and, when a
  ``label`` column matches sent ROIs, ``Roi`` columns), or a CSV file
  annotation when the server has no OMERO.tables service.
* **Files** (session report, pipeline, script...) become file annotations.

Everything is linked to the image (files may also go to its dataset) and
marked with the namespace :data:`NAMESPACE`. ROIs have no namespace field
in the OMERO model, so theirs is carried in the description
(``napari-fbias:<label set name>``). Sending again replaces our previous
upload of the same name (ROIs of the same label set, annotations with our
namespace and the same file name) instead of adding a copy; nothing else on
the image is touched.

Needs omero-py (and omero-rois for ROIs); raises a clear install message otherwise.
"""

from __future__ import annotations

import colorsys
import csv
import logging
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from napari_fbias.io.omero.availability import require_omero
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroSendBackError
from napari_fbias.io.omero.pixels import get_image

logger = logging.getLogger(__name__)

#: Namespace on every annotation we create (and, for ROIs, in their description).
NAMESPACE = "napari-fbias"
#: ROIs are saved in batches of this many (one server call each).
ROI_BATCH = 200
_LABEL_AXES = ("t", "c", "z", "y", "x")


@dataclass(frozen=True)
class SendBackResult:
    """What :func:`send_back` created (ids on the server) and how much it replaced."""

    image_id: int
    roi_ids: Mapping[int, int] = field(default_factory=dict)  # label id -> ROI id
    table_annotation_id: int | None = None
    table_format: str | None = None  # "omero.tables" or "csv"
    file_annotation_ids: Mapping[str, int] = field(default_factory=dict)  # file name -> id
    replaced: Mapping[str, int] = field(default_factory=dict)  # "rois"/"annotations" -> count


def roi_description(label_set: str) -> str:
    """Return the description marking our ROIs of one label set (ROIs have no namespace)."""
    return f"{NAMESPACE}:{label_set}"


def label_colour(label_id: int) -> tuple[int, int, int, int]:
    """Return a distinct, deterministic RGBA colour for a label id (golden-ratio hues)."""
    hue = (label_id * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.8, 1.0)
    return int(r * 255), int(g * 255), int(b * 255), 128


def _check_label_shape(image: Any, labels: np.ndarray, axes: str) -> None:
    sizes = {
        "t": int(image.getSizeT()),
        "c": int(image.getSizeC()),
        "z": int(image.getSizeZ()),
        "y": int(image.getSizeY()),
        "x": int(image.getSizeX()),
    }
    if len(axes) != labels.ndim or any(a not in _LABEL_AXES for a in axes) or axes[-2:] != "yx":
        raise OmeroSendBackError(
            f"labels axes {axes!r} do not describe a {labels.ndim}-D array ending in y, x"
        )
    for a, n in zip(axes, labels.shape, strict=True):
        if n != sizes[a]:
            raise OmeroSendBackError(
                f"labels have {n} pixels along {a} but Image:{image.getId()} has {sizes[a]}; "
                "send labels of the full-resolution image (same size as the OMERO image)"
            )
    if not np.issubdtype(labels.dtype, np.integer):
        raise OmeroSendBackError(f"labels must be integers, got {labels.dtype}")


def labels_to_rois(
    labels: np.ndarray, axes: str, image_id: int, label_set: str = "labels"
) -> list[tuple[int, Any]]:
    """Build (unsaved) ``omero.model.RoiI`` objects, one per label id, with mask shapes.

    Parameters
    ----------
    labels : numpy.ndarray
        Integer labels, 0 = background.
    axes : str
        Axis names of ``labels`` (subset of ``tczyx`` ending in ``yx``).
    image_id : int
        Image the ROIs belong to.
    label_set : str
        Name of the label layer (ROI names are ``"<label_set> <id>"``).

    Returns
    -------
    list of (int, omero.model.RoiI)
        ``(label id, ROI)`` in increasing label order.
    """
    model = require_omero("omero.model")
    rtypes = require_omero("omero.rtypes")
    rois_lib = require_omero("omero_rois")
    from scipy import ndimage

    labels = np.asarray(labels)
    if labels.min(initial=0) < 0:
        raise OmeroSendBackError("labels contain negative values")
    slices = ndimage.find_objects(labels)
    lead = axes[:-2]
    out = []
    for index, sl in enumerate(slices):
        if sl is None:
            continue
        label_id = index + 1
        roi = model.RoiI()
        roi.setName(rtypes.rstring(f"{label_set} {label_id}"))
        roi.setDescription(rtypes.rstring(roi_description(label_set)))
        roi.setImage(model.ImageI(int(image_id), False))
        ys, xs = sl[-2], sl[-1]
        ranges = [range(s.start, s.stop) for s in sl[:-2]]
        for lead_index in np.ndindex(*[len(r) for r in ranges]) if ranges else [()]:
            pos = {a: ranges[i][j] for i, (a, j) in enumerate(zip(lead, lead_index, strict=True))}
            plane = labels[tuple(pos[a] for a in lead) + (ys, xs)] == label_id
            if not plane.any():
                continue
            # One zero row and column in front: omero-rois' mask_from_binary_image tests
            # ``any(nonzero indices)`` and so misses a mask that starts at index 0 and is one
            # pixel wide or high.
            mask = rois_lib.mask_from_binary_image(
                np.pad(plane.astype(np.uint8), ((1, 0), (1, 0))),
                rgba=label_colour(label_id),
                z=pos.get("z"),
                c=pos.get("c"),
                t=pos.get("t"),
                text=str(label_id),
            )
            # The mask was placed within the padded crop: shift it into the image.
            mask.setX(rtypes.rdouble(mask.getX().getValue() - 1 + xs.start))
            mask.setY(rtypes.rdouble(mask.getY().getValue() - 1 + ys.start))
            roi.addShape(mask)
        out.append((label_id, roi))
    return out


def _find_our_rois(conn: OmeroConnection, image_id: int, label_set: str, ctx: dict) -> list[int]:
    with conn.errors(f"listing the ROIs of Image:{image_id}"):
        result = conn.gateway.getRoiService().findByImage(int(image_id), None, ctx)
    wanted = roi_description(label_set)
    ids = []
    for roi in result.rois:
        desc = roi.getDescription()
        if desc is not None and desc.getValue() == wanted:
            ids.append(int(roi.getId().getValue()))
    return ids


def _delete(conn: OmeroConnection, graph: str, ids: Sequence[int], what: str) -> int:
    if not ids:
        return 0
    with conn.errors(f"deleting our previous {what}"):
        conn.gateway.deleteObjects(graph, [int(i) for i in ids], wait=True)
    return len(ids)


def send_labels_as_rois(
    conn: OmeroConnection,
    image_id: int,
    labels: np.ndarray,
    axes: str,
    *,
    label_set: str = "labels",
    replace: bool = True,
) -> tuple[dict[int, int], int]:
    """Save labels as ROIs on an image, replacing our previous ROIs of that label set.

    Returns
    -------
    roi_ids : dict of int to int
        Label id -> ROI id on the server.
    replaced : int
        How many of our earlier ROIs (same label set) were deleted.
    """
    image = get_image(conn, image_id)
    labels = np.asarray(labels)
    _check_label_shape(image, labels, axes)
    pairs = labels_to_rois(labels, axes, image_id, label_set)
    roi_ids: dict[int, int] = {}
    with _in_group(conn, "Image", image_id) as ctx:
        old = _find_our_rois(conn, image_id, label_set, ctx) if replace else []
        replaced = _delete(conn, "Roi", old, "ROIs")
        update = conn.gateway.getUpdateService()
        for start in range(0, len(pairs), ROI_BATCH):
            batch = pairs[start : start + ROI_BATCH]
            with conn.errors(f"saving {len(batch)} ROIs on Image:{image_id}"):
                saved = update.saveAndReturnArray([roi for _, roi in batch], ctx)
            for (label_id, _), roi in zip(batch, saved, strict=True):
                roi_ids[label_id] = int(roi.getId().getValue())
    return roi_ids, replaced


def _our_annotations(conn: OmeroConnection, kind: str, oid: int, names: set[str]) -> list[int]:
    with conn.errors(f"listing the annotations of {kind}:{oid}"):
        obj = conn.gateway.getObject(kind, int(oid))
        if obj is None:
            return []
        found = []
        for ann in obj.listAnnotations(ns=NAMESPACE):
            get_name = getattr(ann, "getFileName", None)
            if get_name is not None and get_name() in names:
                found.append(int(ann.getId()))
    return found


def _link(conn: OmeroConnection, kind: str, oid: int, ann_id: int, ctx: dict) -> None:
    model = require_omero("omero.model")
    link = getattr(model, f"{kind}AnnotationLinkI")()
    link.setParent(getattr(model, f"{kind}I")(int(oid), False))
    link.setChild(model.FileAnnotationI(int(ann_id), False))
    with conn.errors(f"linking annotation {ann_id} to {kind}:{oid}"):
        conn.gateway.getUpdateService().saveAndReturnObject(link, ctx)


def send_file(
    conn: OmeroConnection,
    path: str | os.PathLike[str],
    targets: Sequence[tuple[str, int]],
    *,
    name: str | None = None,
    mimetype: str | None = None,
    description: str | None = None,
    replace: bool = True,
) -> tuple[int, int]:
    """Attach a local file to OMERO objects (Image, Dataset...) as one file annotation.

    Parameters
    ----------
    path : path
        The file to upload (left untouched).
    targets : sequence of (kind, id)
        Objects to link it to, e.g. ``[("Image", 5), ("Dataset", 2)]``.
    name : str, optional
        File name on the server (default: the local name).
    replace : bool
        Delete our earlier annotations with this file name on the targets first.

    Returns
    -------
    annotation_id, replaced : int
    """
    path = Path(path)
    if not path.is_file():
        raise OmeroSendBackError(f"cannot send {path}: no such file")
    if not targets:
        raise OmeroSendBackError(f"no OMERO object to attach {path.name} to")
    file_name = name or path.name
    with _in_group(conn, *targets[0]) as ctx:
        replaced = 0
        if replace:
            old: dict[int, None] = {}
            for kind, oid in targets:
                old.update(dict.fromkeys(_our_annotations(conn, kind, oid, {file_name})))
            replaced = _delete(conn, "Annotation", list(old), f"'{file_name}' attachments")
        with conn.errors(f"uploading {file_name}"):
            ann = conn.gateway.createFileAnnfromLocalFile(
                str(path),
                origFilePathAndName=file_name,
                mimetype=mimetype,
                ns=NAMESPACE,
                desc=description,
            )
        ann_id = int(ann.getId())
        for kind, oid in targets:
            _link(conn, kind, oid, ann_id, ctx)
    return ann_id, replaced


def _table_columns(table: Any, image_id: int, roi_ids: Mapping[int, int]) -> list[Any]:
    grid = require_omero("omero.grid")
    import pandas as pd

    n = len(table)
    cols: list[Any] = [grid.ImageColumn("Image", "OMERO image", [int(image_id)] * n)]
    if roi_ids and "label" in table.columns:
        labels = [int(v) for v in table["label"]]
        if all(v in roi_ids for v in labels):
            cols.append(
                grid.RoiColumn("Roi", "OMERO ROI of the label", [roi_ids[v] for v in labels])
            )
    for name in table.columns:
        values = table[name]
        desc = ""
        if pd.api.types.is_bool_dtype(values):
            cols.append(grid.BoolColumn(str(name), desc, [bool(v) for v in values]))
        elif pd.api.types.is_integer_dtype(values):
            cols.append(grid.LongColumn(str(name), desc, [int(v) for v in values]))
        elif pd.api.types.is_float_dtype(values):
            cols.append(grid.DoubleColumn(str(name), desc, [float(v) for v in values]))
        else:
            text = ["" if v is None else str(v) for v in values]
            size = max([len(t.encode("utf-8")) for t in text] + [1])
            cols.append(grid.StringColumn(str(name), desc, size, text))
    return cols


def _close_quietly(obj: Any) -> None:
    try:
        obj.close()
    except Exception as exc:  # the data are saved (or an error is on its way): never mask it
        logger.debug("ignored while closing an OMERO.table: %s", type(exc).__name__)


@contextmanager
def _in_group(conn: OmeroConnection, kind: str, oid: int) -> Iterator[dict[str, str]]:
    """Work in the group of an object while writing (objects are created in it).

    Yields the call context for that group; the session's group setting
    (possibly -1, all groups, which cannot be written to) is restored after.
    """
    with conn.errors(f"looking up {kind}:{oid}"):
        obj = conn.gateway.getObject(kind, int(oid))
    if obj is None:
        raise OmeroSendBackError(
            f"{kind}:{oid} does not exist on {conn.host} or is not visible to user {conn.user}"
        )
    gid = int(obj.getDetails().getGroup().getId())
    opts = conn.gateway.SERVICE_OPTS
    previous = opts.get("omero.group")
    opts.setOmeroGroup(str(gid))
    try:
        yield conn.context_for_group(gid)
    finally:
        opts.setOmeroGroup(previous)


def _tables_enabled(resources: Any, ctx: dict) -> bool:
    try:
        return bool(resources.areTablesEnabled(ctx))
    except Exception:  # old servers without the call: try to create one anyway
        return True


def send_table(
    conn: OmeroConnection,
    image_id: int,
    table: Any,
    *,
    name: str = "measurements",
    roi_ids: Mapping[int, int] | None = None,
    replace: bool = True,
) -> tuple[int, str, int]:
    """Attach a measurement table (pandas DataFrame) to an image.

    As an OMERO.table named ``<name>.h5`` when the server has OMERO.tables,
    else as a CSV file annotation ``<name>.csv``.

    Returns
    -------
    annotation_id : int
    table_format : str
        ``"omero.tables"`` or ``"csv"``.
    replaced : int
        Our earlier annotations of this name that were deleted.
    """
    get_image(conn, image_id)
    model = require_omero("omero.model")
    rtypes = require_omero("omero.rtypes")
    cols = _table_columns(table, image_id, roi_ids or {})  # fails early on odd columns
    gw = conn.gateway
    with _in_group(conn, "Image", image_id) as ctx:
        replaced = 0
        if replace:
            old = _our_annotations(conn, "Image", image_id, {f"{name}.h5", f"{name}.csv"})
            replaced = _delete(conn, "Annotation", old, f"'{name}' tables")
        with conn.errors("opening OMERO.tables"):
            resources = gw.c.sf.sharedResources()
            omero_table = None
            if _tables_enabled(resources, ctx):
                repos = resources.repositories()
                repo_id = int(repos.descriptions[0].getId().getValue())
                omero_table = resources.newTable(repo_id, f"{name}.h5", ctx)
        if omero_table is None:
            return _send_csv(conn, image_id, table, name), "csv", replaced
        try:
            with conn.errors(f"writing table {name}"):
                omero_table.initialize(cols)
                omero_table.addData(cols)
                original = omero_table.getOriginalFile()
        finally:
            _close_quietly(omero_table)
        ann = model.FileAnnotationI()
        ann.setNs(rtypes.rstring(NAMESPACE))
        ann.setFile(model.OriginalFileI(int(original.getId().getValue()), False))
        with conn.errors(f"saving the annotation of table {name}"):
            ann = gw.getUpdateService().saveAndReturnObject(ann, ctx)
        ann_id = int(ann.getId().getValue())
        _link(conn, "Image", image_id, ann_id, ctx)
    return ann_id, "omero.tables", replaced


def _send_csv(conn: OmeroConnection, image_id: int, table: Any, name: str) -> int:
    with tempfile.TemporaryDirectory(prefix="fbias-omero-") as tmp:
        path = Path(tmp) / f"{name}.csv"
        table.to_csv(path, index=False, quoting=csv.QUOTE_MINIMAL)
        ann_id, _ = send_file(
            conn,
            path,
            [("Image", image_id)],
            mimetype="text/csv",
            description=f"napari-fbias measurements '{name}'",
            replace=False,
        )
    return ann_id


def send_back(
    conn: OmeroConnection,
    image_id: int,
    *,
    labels: np.ndarray | None = None,
    labels_axes: str = "yx",
    label_set: str = "labels",
    table: Any = None,
    table_name: str = "measurements",
    files: Sequence[str | os.PathLike[str]] = (),
    dataset_id: int | None = None,
    replace: bool = True,
) -> SendBackResult:
    """Send a session's results for one image: ROIs, table, report/pipeline files.

    Parameters
    ----------
    conn : OmeroConnection
        Open connection (with write permission in the image's group).
    image_id : int
        Image the results belong to.
    labels : numpy.ndarray, optional
        Label image (full resolution) with axes ``labels_axes``.
    label_set : str
        Name of the label layer (identifies our ROIs for replacement).
    table : pandas.DataFrame, optional
        Measurements; a ``label`` column links rows to the sent ROIs.
    files : sequence of path
        Session report, pipeline, script... attached as files.
    dataset_id : int, optional
        Also attach the files to this dataset.
    replace : bool
        Replace our earlier upload of the same names (default) instead of adding copies.
    """
    roi_ids: dict[int, int] = {}
    replaced = {"rois": 0, "annotations": 0}
    if labels is not None:
        roi_ids, n = send_labels_as_rois(
            conn, image_id, labels, labels_axes, label_set=label_set, replace=replace
        )
        replaced["rois"] += n
    table_id = table_format = None
    if table is not None:
        table_id, table_format, n = send_table(
            conn, image_id, table, name=table_name, roi_ids=roi_ids, replace=replace
        )
        replaced["annotations"] += n
    file_ids: dict[str, int] = {}
    targets = [("Image", int(image_id))]
    if dataset_id is not None:
        targets.append(("Dataset", int(dataset_id)))
    for f in files:
        ann_id, n = send_file(conn, f, targets, replace=replace)
        file_ids[Path(f).name] = ann_id
        replaced["annotations"] += n
    return SendBackResult(
        image_id=int(image_id),
        roi_ids=roi_ids,
        table_annotation_id=table_id,
        table_format=table_format,
        file_annotation_ids=file_ids,
        replaced=replaced,
    )
