"""The "Send results to OMERO" part of the browser: labels, table, files, target image.

A labels layer goes back as ROIs, a measurement table as an OMERO.table (CSV
when the server has no tables service) and files (the exported report and
pipeline) as attachments, to the image the layer came from
(:mod:`.sendback_model`, :func:`~napari_fbias.io.omero.sendback.send_back`;
sending again replaces the previous upload). The lists follow the viewer's
layers and the running session.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QListWidget,
    QPushButton,
)

from napari_fbias._qt.layer_axes import layer_kind
from napari_fbias._qt.omero.box import OmeroBox
from napari_fbias._qt.omero.jobs import connection_for
from napari_fbias._qt.omero.sendback_model import (
    NO_TABLE,
    export_attachments,
    export_session,
    omero_images,
    omero_source_of,
    send,
    send_request,
    sending_message,
    sent_message,
    table_of,
)
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroConnectionError, OmeroError
from napari_fbias.io.omero.sendback import SendBackResult
from napari_fbias.io.omero.uri import OmeroRef, parse_omero_uri

__all__ = ["SendBox"]

#: The session export (report, pipeline); "Attach the session export" is offered when present.
EXPORT_MODULE = "napari_fbias.session.export.bundle"


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def _refill(combo: QComboBox, items: Sequence[str]) -> None:
    """Replace a combo box's items, keeping the current one when it is still there."""
    current = combo.currentText()
    if [combo.itemText(i) for i in range(combo.count())] == list(items):
        return
    combo.blockSignals(True)
    try:
        combo.clear()
        combo.addItems(list(items))
        if current in items:
            combo.setCurrentText(current)
    finally:
        combo.blockSignals(False)


class SendBox(OmeroBox):
    """Choose what to send to which OMERO image, and send it (see :class:`OmeroBox`)."""

    def __init__(self, *args: Any) -> None:
        super().__init__("Send results to OMERO", *args)
        self._export_dir: tempfile.TemporaryDirectory[str] | None = None
        self.labels_choice = QComboBox()
        self.labels_choice.currentIndexChanged.connect(self._on_labels_chosen)
        self.target_choice = QComboBox()
        self.target_choice.setToolTip("The OMERO image the results belong to")
        self.table_choice = QComboBox()
        self.attachments = QListWidget()
        self.attachments.setMaximumHeight(80)
        self.add_files_button = QPushButton("Add files...")
        self.add_files_button.clicked.connect(self._on_add_files)
        self.add_export_button = QPushButton("Attach the session export")
        self.add_export_button.setToolTip(
            "Export the running session (report.html and the pipeline) and attach them"
        )
        self.add_export_button.clicked.connect(self.attach_session_export)
        self.add_export_button.setVisible(_has_module(EXPORT_MODULE))
        self.remove_file_button = QPushButton("Remove")
        self.remove_file_button.clicked.connect(self._on_remove_file)
        self.send_button = QPushButton("Send to OMERO")
        self.send_button.setToolTip(
            "Labels as ROIs, the table as an OMERO.table, files as attachments; sending again "
            "replaces the previous upload"
        )
        self.send_button.clicked.connect(self.send)
        form = QFormLayout(self)
        form.addRow("labels", self.labels_choice)
        form.addRow("table", self.table_choice)
        form.addRow("to image", self.target_choice)
        form.addRow("files", self.attachments)
        row = QHBoxLayout()
        row.addWidget(self.add_files_button)
        row.addWidget(self.add_export_button)
        row.addWidget(self.remove_file_button)
        form.addRow(row)
        form.addRow(self.send_button)
        events = (
            self.viewer.layers.events.inserted,
            self.viewer.layers.events.removed,
            self.workspace.events.step_recorded,
            self.workspace.events.session_changed,
        )
        for event in events:
            event.connect(self._on_model_changed)
        self._events = events

    # --- the choices ---------------------------------------------------------------------
    def _on_model_changed(self, *_args: Any) -> None:
        if not self.jobs.alive:
            self._disconnect_model()
            return
        self.refresh_choices()

    def _disconnect_model(self) -> None:
        for event in self._events:
            try:
                event.disconnect(self._on_model_changed)
            except (TypeError, ValueError, RuntimeError):
                pass

    def omero_images(self) -> list[str]:
        """OMERO image URIs shown in the viewer or recorded in the session."""
        return omero_images(self.viewer.layers, self.workspace.recorder)

    def refresh_choices(self) -> None:
        """Refill the labels, table and image lists (keeping what was chosen)."""
        labels = [layer.name for layer in self.viewer.layers if layer_kind(layer) == "labels"]
        _refill(self.labels_choice, labels)
        _refill(self.table_choice, [NO_TABLE, *self.workspace.tables])
        _refill(self.target_choice, self.omero_images())
        self._on_labels_chosen()

    def _on_labels_chosen(self, *_args: Any) -> None:
        name = self.labels_choice.currentText()
        if not name or name not in self.viewer.layers:
            return
        uri = omero_source_of(self.viewer.layers[name], self.workspace.recorder)
        if uri is not None:
            if self.target_choice.findText(uri) < 0:
                self.target_choice.addItem(uri)
            self.target_choice.setCurrentText(uri)
        table = table_of(self.workspace.recorder, self.workspace.tables, name)
        if table is not None:
            self.table_choice.setCurrentText(table)

    # --- attachments ---------------------------------------------------------------------
    def add_attachments(self, paths: Sequence[str | Path]) -> None:
        """Add files to send as attachments (the session report, the pipeline...)."""
        present = {self.attachments.item(i).text() for i in range(self.attachments.count())}
        for p in paths:
            text = str(Path(p))
            if text not in present:
                self.attachments.addItem(text)
                present.add(text)

    def add_export_folder(self, folder: str | Path) -> list[Path]:
        """Add the report and pipeline files of an exported delivery folder."""
        files = export_attachments(folder)
        self.add_attachments(files)
        return files

    def attach_session_export(self) -> Any:
        """Export the running session (in a worker) and add its report and pipelines."""
        from napari.utils.notifications import show_error

        rec = self.workspace.recorder
        if rec is None:
            message = "start a session (Session panel) before attaching its export"
            self.jobs.say(message)
            show_error(f"OMERO: {message}")
            return None
        if self._export_dir is None:  # removed with the widget, or at exit
            self._export_dir = tempfile.TemporaryDirectory(prefix="fbias-omero-export-")
        dest = Path(self._export_dir.name) / "bundle"
        self.jobs.say("Exporting the session's report and pipeline...")
        rec.flush(5)  # what this napari recorded is in the space before the export reads it
        return self.jobs.start(
            export_session,
            rec.link,
            dest,
            done=self._on_exported,
            action="exporting the session",
            progress=True,
        )

    def _on_exported(self, files: list[Path]) -> None:
        self.add_attachments(files)
        self.jobs.say("Attached " + ", ".join(p.name for p in files))

    def _on_add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Files to attach in OMERO")
        self.add_attachments(paths)

    def _on_remove_file(self) -> None:
        for item in self.attachments.selectedItems():
            self.attachments.takeItem(self.attachments.row(item))

    # --- sending -------------------------------------------------------------------------
    def send(self) -> Any:
        """Send the chosen labels, table and files to the chosen OMERO image (in a worker).

        Returns
        -------
        worker or None
            None when something is missing (said in the status and a notification).
        """
        from napari.utils.notifications import show_error, show_info

        try:
            conn, ref, kwargs = self._send_request()
        except (OmeroError, ValueError) as exc:
            self.jobs.say(str(exc))
            show_error(f"OMERO: {exc}")
            return None
        message = sending_message(ref, kwargs)
        self.jobs.say(message)
        show_info(f"OMERO: {message}")
        return self.jobs.start(
            send,
            conn,
            ref.id,
            kwargs,
            done=partial(self._on_sent, ref),
            action=f"sending results to {ref.uri}",
            progress=True,
        )

    def _send_request(self) -> tuple[OmeroConnection, OmeroRef, dict[str, Any]]:
        target = self.target_choice.currentText()
        if not target:
            raise ValueError("choose the OMERO image the results belong to")
        ref = parse_omero_uri(target)
        conn = connection_for(ref, self._connection(), web=False)
        if not conn.is_connected:
            raise OmeroConnectionError(
                f"the connection to {conn.host} was lost; press Reconnect first"
            )
        name = self.labels_choice.currentText()
        labels = self.viewer.layers[name] if name and name in self.viewer.layers else None
        files = [self.attachments.item(i).text() for i in range(self.attachments.count())]
        tables = self.workspace.tables
        return conn, ref, send_request(labels, self.table_choice.currentText(), tables, files)

    def _on_sent(self, ref: OmeroRef, result: SendBackResult) -> None:
        from napari.utils.notifications import show_info

        message = sent_message(ref, result)
        self.jobs.say(message)
        show_info(f"OMERO: {message}")
