"""The "Batch" tab of the panel: the images to run on, the output folder, where it runs.

:class:`BatchTab` only collects what the analyst typed or picked; the batch
is checked by :func:`~.run_model.batch_plan` and run by the panel.
"""

from __future__ import annotations

from magicgui.widgets import Container, FileEdit, LineEdit, SpinBox
from qtpy.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

__all__ = ["BatchTab"]


def _choice(label: str, tooltip: str) -> LineEdit:
    """Return a box that chooses part of a container; empty (the default) takes all of it."""
    edit = LineEdit(label=label, tooltip=f"{tooltip} Empty: all.")
    edit.native.setPlaceholderText("all")
    return edit


class BatchTab(QWidget):
    """The batch form: images, output folder, workers, scheduler; wells, fields, series.

    Images are typed one per line; wells and fields choose part of OME-Zarr
    plates, series part of bioformats2raw containers (empty: all).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.batch_inputs = QPlainTextEdit()
        self.batch_inputs.setPlaceholderText(
            "Images to run on, one per line: folders, TIFF files, OME-Zarr paths or URLs, "
            "globs (data/*.tif)"
        )
        self.batch_inputs.setMaximumHeight(110)
        self.add_folder_button = QPushButton("Add folder...")
        self.add_folder_button.clicked.connect(self._on_add_folder)
        self.add_files_button = QPushButton("Add files...")
        self.add_files_button.clicked.connect(self._on_add_files)
        self.outdir_edit = FileEdit(mode="d", label="output folder")
        self.workers = SpinBox(
            value=1,
            min=1,
            max=64,
            label="workers",
            tooltip="1: one image after the other in napari; more: a local dask cluster.",
        )
        self.scheduler = LineEdit(
            label="dask scheduler",
            tooltip="Address of a running dask scheduler (tcp://host:8786); empty: this computer.",
        )
        self.wells = _choice("plate wells", "For OME-Zarr plates: only these wells, e.g. A1, B3.")
        self.fields = _choice("plate fields", "For OME-Zarr plates: only these fields, e.g. 0.")
        self.series = _choice("series", "For bioformats2raw containers: these series, e.g. 0, 2.")
        self.batch_form = Container(
            widgets=[
                self.outdir_edit,
                self.workers,
                self.scheduler,
                self.wells,
                self.fields,
                self.series,
            ]
        )
        self.batch_button = QPushButton("Run batch")
        layout = QVBoxLayout(self)
        layout.addWidget(self.batch_inputs)
        row = QHBoxLayout()
        row.addWidget(self.add_folder_button)
        row.addWidget(self.add_files_button)
        layout.addLayout(row)
        layout.addWidget(self.batch_form.native)
        layout.addWidget(self.batch_button)
        layout.addStretch(1)

    def input_list(self) -> list[str]:
        """Return the images typed or added, one per line."""
        return [s.strip() for s in self.batch_inputs.toPlainText().splitlines() if s.strip()]

    def outdir(self) -> str | None:
        """Return the output folder chosen (None when none)."""
        value = self.outdir_edit.value
        return str(value) if value is not None and str(value) not in ("", ".") else None

    def _on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of images")
        if folder:
            self.batch_inputs.appendPlainText(folder)

    def _on_add_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add images", "", "Images (*.tif *.tiff *.zarr);;All files (*)"
        )
        for f in files:
            self.batch_inputs.appendPlainText(f)
