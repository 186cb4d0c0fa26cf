"""Sending results back to OMERO, without Qt: what goes where, and the work of sending.

Which OMERO image a layer belongs to (:func:`omero_source_of`: opened from
OMERO, or computed by recorded steps from such an image), which table a
recorded step measured from a labels layer (:func:`table_of`), what a send
carries (:func:`send_request`), the work in the worker thread (:func:`send`,
:func:`export_session`) and what is said when it is done
(:func:`sent_message`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_fbias._qt.layer_axes import layer_array, layer_axes, reader_info, step_info
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroUriError
from napari_fbias.io.omero.sendback import SendBackResult, send_back
from napari_fbias.io.omero.uri import OmeroRef, is_omero_uri, parse_omero_uri

__all__ = [
    "NO_TABLE",
    "export_attachments",
    "export_session",
    "omero_images",
    "omero_source_of",
    "omero_uri",
    "send",
    "send_request",
    "sending_message",
    "sent_message",
    "table_file_name",
    "table_of",
]

#: Choice of the table list meaning "send no table".
NO_TABLE = "(no table)"


def table_file_name(name: str) -> str:
    """Return a file name for a table result (``"A: measurements"`` -> ``"A_measurements"``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "measurements"


def omero_uri(source: Any) -> str | None:
    """Return the canonical ``omero://HOST/Image:ID`` of a source (None if not one image)."""
    if not isinstance(source, str) or not is_omero_uri(source):
        return None
    try:
        ref = parse_omero_uri(source)
    except OmeroUriError:
        return None
    return ref.uri if ref.kind == "Image" else None


def omero_source_of(layer: Any, recorder: Any = None) -> str | None:
    """Return the OMERO image a layer shows or was computed from, or None.

    A layer opened from OMERO names it in its metadata; a layer made by a
    recorded step is traced back through the session's steps to the image
    its first image input read.

    Parameters
    ----------
    layer : napari layer
        Typically a labels layer.
    recorder : SessionRecorder, optional
        The running session (needed for step results).
    """
    info = reader_info(layer)
    if info is not None:
        for source in (layer.metadata.get("parent_source"), info.get("source")):
            uri = omero_uri(source)
            if uri is not None:
                return uri
    step = step_info(layer)
    if step is None or recorder is None:
        return None
    session = recorder.session
    pending, seen = [str(step["step_id"])], set()
    while pending:
        sid = pending.pop(0)
        seen.add(sid)
        found = session.find_step(sid)
        if found is None:
            continue
        inputs = sorted(found[1].inputs.items(), key=lambda kv: kv[0] != "image")
        for _, inp in inputs:
            if inp.image is not None:
                img = session.image(inp.image)
                uri = omero_uri(img.source) if img is not None else None
                if uri is not None:
                    return uri
            elif inp.step is not None and inp.step not in seen:
                pending.append(inp.step)
    return None


def omero_images(layers: Any, recorder: Any = None) -> list[str]:
    """OMERO image URIs shown in ``layers`` or recorded in the running session."""
    found: dict[str, None] = {}
    for layer in layers:
        info = reader_info(layer)
        uri = omero_uri(info.get("source")) if info is not None else None
        if uri is not None:
            found[uri] = None
    if recorder is not None:
        for img in recorder.session.images:
            uri = omero_uri(img.source)
            if uri is not None:
                found[uri] = None
    return list(found)


def table_of(recorder: Any, tables: Mapping[str, Any], labels_layer: str) -> str | None:
    """Return the table a recorded step measured from ``labels_layer`` (None if none)."""
    if recorder is None:
        return None
    for _approach, step in recorder.session.all_steps():
        if step.output_layer in tables and any(
            inp.layer == labels_layer for inp in step.inputs.values()
        ):
            return step.output_layer
    return None


def send_request(
    labels: Any, table_name: str, tables: Mapping[str, Any], files: Sequence[str]
) -> dict[str, Any]:
    """Return the keyword arguments of :func:`send` for what was chosen.

    Parameters
    ----------
    labels : napari Labels layer or None
        Sent as ROIs.
    table_name : str
        A table result (``NO_TABLE`` or empty: none), sent as an OMERO.table.
    tables : mapping
        The table results by name.
    files : sequence of str
        Attachments.

    Raises
    ------
    ValueError
        When there is nothing to send.
    """
    kwargs: dict[str, Any] = {"labels": None, "table": None, "files": list(files)}
    if labels is not None:
        kwargs["labels"] = layer_array(labels)
        kwargs["labels_axes"] = layer_axes(labels)
        kwargs["label_set"] = labels.name
    if table_name and table_name != NO_TABLE and table_name in tables:
        kwargs["table"] = tables[table_name].copy()
        kwargs["table_name"] = table_file_name(table_name)
    if kwargs["labels"] is None and kwargs["table"] is None and not kwargs["files"]:
        raise ValueError("nothing to send: choose a labels layer, a table or files")
    return kwargs


def send(conn: OmeroConnection, image_id: int, options: dict[str, Any]) -> SendBackResult:
    """Send labels, a table and files to image ``image_id`` (worker thread)."""
    labels = options.pop("labels", None)
    array = None if labels is None else np.asarray(labels)  # computes a lazy labels layer here
    return send_back(conn, image_id, labels=array, **options)


def sending_message(ref: OmeroRef, options: Mapping[str, Any]) -> str:
    """Say what is being sent where."""
    what = [w for w in ("labels", "table") if options.get(w) is not None]
    if options["files"]:
        what.append(f"{len(options['files'])} file(s)")
    return f"Sending {', '.join(what)} to {ref.uri}..."


def sent_message(ref: OmeroRef, result: SendBackResult) -> str:
    """Say what was sent (and what it replaced)."""
    parts = []
    if result.roi_ids:
        parts.append(f"{len(result.roi_ids)} ROIs")
    if result.table_annotation_id is not None:
        kind = "OMERO.table" if result.table_format == "omero.tables" else "CSV file"
        parts.append(f"the table as {kind}")
    if result.file_annotation_ids:
        parts.append(", ".join(result.file_annotation_ids))
    replaced = sum(result.replaced.values())
    message = f"Sent {'; '.join(parts) or 'nothing'} to {ref.uri}"
    if replaced:
        message += f" (replacing {replaced} earlier upload(s))"
    return message


def export_session(session: Any, dest: str | Path) -> list[Path]:
    """Export a session's delivery bundle to ``dest`` and return its report and pipelines.

    Parameters
    ----------
    session : str
        The running session's link (read from its journals, so that the images
        the analysts opened count as opened; credentials are scrubbed).
    dest : path
        Bundle folder to (re)write.
    """
    from napari_fbias.session.export import export_bundle

    result = export_bundle(session, dest, overwrite=True)
    return export_attachments(result.folder)


def export_attachments(folder: str | Path) -> list[Path]:
    """Return the report and pipeline files of an exported delivery folder.

    Parameters
    ----------
    folder : path
        A folder written by the session export (``report.html``,
        ``*.fbias.yaml``...).

    Raises
    ------
    FileNotFoundError
        When the folder holds neither a report nor a pipeline file.
    """
    root = Path(folder)
    found = sorted(root.glob("report*.html")) + sorted(root.glob("*.fbias.yaml"))
    if not found:
        raise FileNotFoundError(
            f"{root} holds no report (report.html) and no pipeline (*.fbias.yaml); choose the "
            "folder the session export wrote"
        )
    return found
