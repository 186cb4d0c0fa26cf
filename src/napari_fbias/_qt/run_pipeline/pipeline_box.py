"""The pipeline part of the panel: file chooser, name, problems, steps and *Save as...*.

:class:`PipelineBox` shows a :class:`~.edit_model.PipelineDocument` and says
what the analyst asked for (:attr:`PipelineBox.file_chosen`,
:attr:`PipelineBox.save_requested`); the panel decides.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import FileEdit
from qtpy.QtCore import Signal
from qtpy.QtWidgets import QFileDialog, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout, QWidget

from napari_fbias._qt.fit_width import wrap_label
from napari_fbias._qt.run_pipeline.edit_model import (
    PIPELINE_SUFFIX,
    PipelineDocument,
    problem_lines,
)
from napari_fbias._qt.run_pipeline.steps_view import PipelineStepsView

__all__ = ["PipelineBox"]


class PipelineBox(QWidget):
    """File chooser, pipeline name, problem list, steps view and Save button.

    Signals
    -------
    file_chosen(Path)
        A pipeline file was picked or typed.
    save_requested(str)
        Where to save the (edited) pipeline (the dialog asked before replacing a file).
    """

    file_chosen = Signal(object)
    save_requested = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._start_dir = ""
        self.file_edit = FileEdit(
            mode="r", filter=f"Pipeline files (*{PIPELINE_SUFFIX} *.yaml *.yml)", label="pipeline"
        )
        self.file_edit.changed.connect(self._on_file_changed)
        self.name_label = QLabel("No pipeline loaded.")
        wrap_label(self.name_label)
        self.problems_box = QPlainTextEdit()
        self.problems_box.setReadOnly(True)
        self.problems_box.setMaximumHeight(130)
        self.problems_box.setVisible(False)
        self.steps_view = PipelineStepsView()
        self.save_button = QPushButton("Save as...")
        self.save_button.setToolTip("Write the (edited) pipeline to a new file.")
        self.save_button.clicked.connect(self._on_save_clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for w in (self.file_edit.native, self.name_label, self.problems_box):
            layout.addWidget(w)
        layout.addWidget(self.steps_view)
        layout.addWidget(self.save_button)

    def show_document(self, doc: PipelineDocument, *, busy: bool) -> None:
        """Show the pipeline's name and problems; nothing can change while a run is ``busy``."""
        self._start_dir = str(doc.path.parent) if doc.path is not None else ""
        self.save_button.setEnabled(doc.pipeline is not None and not busy)
        self.file_edit.enabled = not busy
        if doc.problems:
            self.problems_box.setPlainText(problem_lines(doc.problems))
            self.problems_box.setVisible(True)
        else:
            self.problems_box.clear()
            self.problems_box.setVisible(False)
        self.name_label.setText(doc.summary())

    def _on_file_changed(self, value: Any) -> None:
        if value is None or str(value) in ("", "."):
            return
        path = Path(value)
        if path.is_file():
            self.file_chosen.emit(path)

    def _on_save_clicked(self) -> None:
        name, _ = QFileDialog.getSaveFileName(
            self, "Save pipeline as", self._start_dir, f"Pipeline files (*{PIPELINE_SUFFIX})"
        )
        if name:
            self.save_requested.emit(name)
