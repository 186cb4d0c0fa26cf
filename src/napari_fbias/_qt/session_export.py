"""The Session panel's *Export* tab: the delivery bundle from napari, then its report.

Choose the approaches to deliver, the bundle folder and whether to zip it,
press *Export bundle*. The bundle is written by
:func:`napari_fbias.session.export.export_bundle` from the session **link**,
the merged record of every analyst that ``fbias export`` reads too, so it
holds exactly what ``fbias export LINK -o FOLDER --approach ... [--zip]``
gives on any machine (the tab shows that command). What this napari
recorded is sent to the session space first, so the bundle has it.

The work (sending, rerunning the approaches for the report's figures,
writing, zipping) runs in a worker thread with a progress bar; afterwards
*Open report* shows ``report.html`` in the system browser.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QUrl, Signal
from qtpy.QtGui import QDesktopServices
from qtpy.QtWidgets import (
    QCheckBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.workers import start_worker
from napari_fbias.session.model import Session

__all__ = [
    "ExportBox",
    "default_approaches",
    "default_bundle_folder",
    "export_command",
    "export_session",
]

#: Seconds to wait for the session space to take what this napari recorded.
FLUSH_TIMEOUT = 30.0
#: Where bundles go unless the analyst chooses another folder.
DELIVERY_ROOT = Path.home() / "fbias-delivery"


def default_approaches(session: Session) -> list[str]:
    """Return the approaches ``fbias export`` delivers by default: the solution's, else all."""
    with_steps = [a.key for a in session.approaches if a.steps]
    chosen = session.solution.approach if session.solution else None
    return [chosen] if chosen in with_steps else with_steps


def default_bundle_folder(link: str, root: Path | None = None) -> Path:
    """Return a bundle folder that does not exist yet: ``<root>/<session folder>-delivery``."""
    root = DELIVERY_ROOT if root is None else root
    base = link.rstrip("/\\").replace("\\", "/").rsplit("/", 1)[-1] or "session"
    folder, n = root / f"{base}-delivery", 2
    while folder.exists() or folder.with_name(folder.name + ".zip").exists():
        folder, n = root / f"{base}-delivery-{n}", n + 1
    return folder


def export_command(link: str, folder: str, approaches: Sequence[str], zip: bool) -> str:
    """Return the ``fbias export`` command line that writes the same bundle."""
    words = ["fbias", "export", link, "-o", folder]
    for key in approaches:
        words += ["--approach", key]
    if zip:
        words.append("--zip")
    return shlex.join(words)


def export_session(
    recorder: Any,
    folder: str | Path,
    approaches: Sequence[str],
    zip: bool,
    *,
    report: Callable[[str], Any],
) -> Any:
    """Send what this napari recorded to the space, then write the bundle (worker thread).

    Returns
    -------
    ExportResult
        What :func:`~napari_fbias.session.export.export_bundle` wrote.

    Raises
    ------
    ExportError
        When the space cannot take this napari's record now (the bundle
        would miss it), or from ``export_bundle``.
    """
    from napari_fbias.session.export import ExportError, export_bundle

    report("Sending this napari's record to the session space…")
    if not recorder.flush(FLUSH_TIMEOUT):
        raise ExportError(
            "the session space cannot be reached, so the bundle would miss what this napari "
            f"recorded lately ({recorder.sync_status}); export again once it is back"
        )
    report("Writing the bundle (the approaches are rerun for the report's figures)…")
    dest = Path(folder).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    return export_bundle(recorder.link, dest, approaches=list(approaches), zip=zip)


def _plain_label(text: str = "") -> QLabel:
    label = QLabel(text)
    label.setTextFormat(Qt.PlainText)
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextSelectableByMouse)
    return label


class ExportBox(QWidget):
    """Approaches, folder and zip of the delivery bundle; exports it and opens its report.

    Signals
    -------
    about_to_export()
        Emitted before exporting (the panel saves text still being edited).
    exported(object)
        The ``ExportResult`` of a successful export.
    """

    about_to_export = Signal()
    exported = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.recorder: Any = None
        self.result: Any = None
        self.error: str | None = None
        self._worker: Any = None
        self._default_folder = ""
        self._picked: dict[str, bool] = {}  # approaches the analyst (un)checked
        self._alive = [True]  # False once Qt deleted the box (late worker results are dropped)
        self.destroyed.connect(lambda *_args, alive=self._alive: alive.__setitem__(0, False))
        self._build()
        self.show_session(None)

    # --- building ------------------------------------------------------------------------
    def _build(self) -> None:
        self.approaches = QListWidget()
        self.approaches.setMaximumHeight(96)
        self.approaches.setToolTip("The approaches whose pipelines the user gets")
        self.approaches.itemChanged.connect(self._on_item_changed)
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("the bundle folder to create")
        self.folder.setToolTip("A new folder; its parent folders are created when missing")
        self.folder.textChanged.connect(lambda _t: self._show_command())
        self.choose_button = QPushButton("Choose…")
        self.choose_button.setToolTip("Choose the folder the bundle goes into")
        self.choose_button.clicked.connect(self._choose_folder)
        self.zip = QCheckBox("Also write a .zip of it (to send by e-mail)")
        self.zip.toggled.connect(lambda _on: self._show_command())
        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.choose_button)
        self.command = _plain_label()
        self.command.setToolTip("The same bundle from a terminal, on any machine")
        self.export_button = QPushButton("Export bundle")
        self.export_button.clicked.connect(self.export)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)  # busy: export_bundle tells no fraction
        self.progress.setTextVisible(False)
        self.progress.setVisible(False)
        self.status = _plain_label()
        self.report_button = QPushButton("Open report")
        self.report_button.setToolTip("Show report.html in the system's web browser")
        self.report_button.clicked.connect(self.open_report)
        self.folder_button = QPushButton("Open folder")
        self.folder_button.clicked.connect(self.open_folder)
        done_row = QHBoxLayout()
        done_row.addWidget(self.report_button)
        done_row.addWidget(self.folder_button)
        done_row.addStretch(1)

        box = QGroupBox("Delivery bundle")
        form = QFormLayout(box)
        form.addRow(
            _plain_label(
                "What the user takes home: the pipeline of each approach chosen, a script, "
                "a notebook, report.html, the session record and checksums."
            )
        )
        form.addRow("Approaches", self.approaches)
        form.addRow("Folder", folder_row)
        form.addRow(self.zip)
        form.addRow(self.export_button)
        form.addRow(self.progress)
        form.addRow(self.status)
        form.addRow(done_row)
        form.addRow(QLabel("Same bundle from a terminal:"))
        form.addRow(self.command)
        layout = QVBoxLayout(self)
        layout.addWidget(box)
        layout.addStretch(1)

    # --- showing the session ---------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while an export runs."""
        return self._worker is not None

    def set_recorder(self, recorder: Any) -> None:
        """Export the session of ``recorder`` (None: no session); proposes a folder for it."""
        self.recorder = recorder
        self.result = None
        self.error = None
        self._picked = {}
        self.status.setText("")
        if recorder is not None and self.folder.text() in ("", self._default_folder):
            self._default_folder = str(default_bundle_folder(recorder.link))
            self.folder.setText(self._default_folder)
        self.show_session(recorder.session if recorder is not None else None)

    def show_session(self, session: Session | None) -> None:
        """List the approaches of ``session``; those with steps can be chosen.

        Those ``fbias export`` would deliver are checked, unless the analyst
        (un)checked them.
        """
        lst = self.approaches
        chosen = set(default_approaches(session)) if session is not None else set()
        lst.blockSignals(True)
        try:
            lst.clear()
            for a in session.approaches if session is not None else ():
                text = f"{a.key} — {a.title}" if a.title else a.key
                text += f" ({a.analyst})" if a.analyst else ""
                item = QListWidgetItem(text if a.steps else f"{text}: no steps yet")
                item.setData(Qt.UserRole, a.key)
                if a.steps:
                    item.setFlags(Qt.ItemIsUserCheckable | Qt.ItemIsEnabled)
                    on = self._picked.get(a.key, a.key in chosen)
                    item.setCheckState(Qt.Checked if on else Qt.Unchecked)
                else:
                    item.setFlags(Qt.NoItemFlags)
                lst.addItem(item)
        finally:
            lst.blockSignals(False)
        self._show_command()
        self._show_state()

    def chosen_approaches(self) -> list[str]:
        """Return the approaches checked, in the session's order."""
        lst = self.approaches
        return [
            lst.item(i).data(Qt.UserRole)
            for i in range(lst.count())
            if lst.item(i).checkState() == Qt.Checked
        ]

    def set_chosen(self, keys: Sequence[str]) -> None:
        """Check exactly the approaches ``keys`` (as the analyst would)."""
        lst = self.approaches
        for i in range(lst.count()):
            item = lst.item(i)
            if item.flags() & Qt.ItemIsUserCheckable:
                on = item.data(Qt.UserRole) in keys
                item.setCheckState(Qt.Checked if on else Qt.Unchecked)

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        self._picked[item.data(Qt.UserRole)] = item.checkState() == Qt.Checked
        self._show_command()

    def _show_command(self) -> None:
        if self.recorder is None:
            self.command.setText("fbias export SESSION -o FOLDER")
        else:
            folder = self.folder.text().strip() or "FOLDER"
            keys = self.chosen_approaches()
            self.command.setText(
                export_command(self.recorder.link, folder, keys, self.zip.isChecked())
            )
        self._show_state()

    def _show_state(self) -> None:
        ready = self.recorder is not None and not self.busy
        self.export_button.setEnabled(
            ready and bool(self.chosen_approaches()) and bool(self.folder.text().strip())
        )
        for w in (self.approaches, self.folder, self.choose_button, self.zip):
            w.setEnabled(ready)
        done = self.result is not None and not self.busy
        self.report_button.setEnabled(done and (self.result.folder / "report.html").is_file())
        self.folder_button.setEnabled(done)

    def _choose_folder(self) -> None:
        start = str(Path(self.folder.text().strip() or DELIVERY_ROOT).expanduser().parent)
        parent = QFileDialog.getExistingDirectory(self, "Put the bundle into this folder", start)
        if parent:
            name = Path(self.folder.text().strip() or "delivery").name
            self.folder.setText(str(Path(parent) / name))

    # --- exporting -----------------------------------------------------------------------
    def export(self) -> Any:
        """Write the bundle in a worker; return the worker (None when it cannot start)."""
        if self.recorder is None or self.busy:
            return None
        keys = self.chosen_approaches()
        folder = self.folder.text().strip()
        if not keys or not folder:
            self.status.setText("Choose at least one approach and a folder first.")
            return None
        self.about_to_export.emit()
        self.result, self.error = None, None
        self.progress.setVisible(True)
        self.status.setText("Exporting…")
        self._worker = start_worker(
            export_session,
            self.recorder,
            folder,
            keys,
            self.zip.isChecked(),
            desc="Exporting the delivery bundle",
            report=self._stage,
            returned=self._exported,
            errored=self._failed,
            finished=self._finished,
        )
        self._show_state()
        return self._worker

    def _stage(self, text: str) -> None:
        if self._alive[0]:
            self.status.setText(text)

    def _exported(self, result: Any) -> None:
        if not self._alive[0]:
            return
        self.result = result
        where = str(result.folder) + (f" and {result.zip_path}" if result.zip_path else "")
        lines = [f"Bundle of approach(es) {', '.join(result.approaches)} written to {where}."]
        lines += [f"Note: {note}" for note in result.notes]
        lines.append("Open the report to check it before sending it.")
        self.status.setText("\n".join(lines))
        self.exported.emit(result)

    def _failed(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        from napari_fbias.session.errors import SessionError
        from napari_fbias.session.secrets import scrub_text

        known = isinstance(exc, (SessionError, ValueError, OSError))
        self.error = scrub_text(str(exc) if known else f"{type(exc).__name__}: {exc}")
        if not self._alive[0]:
            return
        self.status.setText(f"Not exported: {self.error}")
        show_error(f"The bundle was not exported: {self.error}")

    def _finished(self) -> None:
        self._worker = None
        if not self._alive[0]:
            return
        self.progress.setVisible(False)
        self._show_state()

    def open_report(self) -> bool:
        """Show the last bundle's ``report.html`` in the system browser; False when none."""
        if self.result is None:
            return False
        return bool(
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result.folder / "report.html")))
        )

    def open_folder(self) -> bool:
        """Show the last bundle's folder in the system's file manager; False when none."""
        if self.result is None:
            return False
        return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.result.folder))))
