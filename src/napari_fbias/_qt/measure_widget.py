"""The Measure widget: object measurements of a Labels layer, shown and saved as CSV.

``measure.regionprops`` on a Labels layer (with an optional intensity image)
gives one row per object. The widget preselects the most recent result
labels and the image they were made from (and follows each new labels
result); picking other labels picks their image too, when it is known.
The table becomes the labels layer's ``features`` (hover an object to see
its values), is shown below the form and can be saved as CSV ("Save
table...", written atomically).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import napari
import pandas as pd
from magicgui.widgets import PushButton, Select

from napari_fbias._qt.layer_axes import layer_shape, made_from, step_info
from napari_fbias._qt.op_widget import OpWidget
from napari_fbias._qt.table_widget import TableView
from napari_fbias.io.tables import write_table_csv
from napari_fbias.ops.measure import PROPERTIES
from napari_fbias.ops.registry import OpSpec, ParamSpec

__all__ = ["MeasureWidget", "properties_widget"]


def properties_widget(spec: OpSpec, p: ParamSpec) -> Select:
    """Return a multiple choice of the measurable properties, set to the op's default."""
    return Select(
        name=p.name,
        label="properties",
        choices=list(PROPERTIES),
        value=list(p.default or ()),
        tooltip=p.help or None,
    )


class MeasureWidget(OpWidget):
    """Measure the objects of a Labels layer; show and save the table."""

    title = "Measure"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(
            viewer,
            ("measure.regionprops",),
            select_axes=("t", "c", "z"),
            overrides={"properties": properties_widget},
        )
        self.new_result.visible = False
        self.save_button = PushButton(name="save", text="Save table...", enabled=False)
        self.save_button.changed.connect(self._on_save_clicked)
        self.insert(len(self) - 1, self.save_button)
        self.table = TableView()
        self.form.layout().addWidget(self.table)
        self.workspace.events.step_recorded.connect(self._on_step_recorded)
        self.preselect()

    def build(self, spec: OpSpec) -> None:
        """Show the form of ``spec``; picking labels picks the image they were made from."""
        super().build(spec)
        self.inputs["labels"].changed.connect(self._on_labels_picked)

    def preselect(self, labels: Any = None) -> None:
        """Pick ``labels`` (default: the most recent result labels) and the image they came from."""
        picker = self.inputs["labels"]
        if labels is None:
            recent = self.workspace.recent_results("labels")
            labels = recent[0] if recent else picker.value
        if labels is not None and labels in picker.choices:
            picker.value = labels
        self._on_labels_picked(picker.value)

    def _on_labels_picked(self, labels: Any) -> None:
        image = made_from(labels, self.viewer.layers) if labels is not None else None
        if image is None or layer_shape(image) != layer_shape(labels):
            return
        picker = self.inputs["image"]
        if image in picker.choices:
            picker.value = image

    def _on_step_recorded(self, step_id: str) -> None:
        for layer in self.workspace.recent_results("labels")[:1]:
            if (step_info(layer) or {}).get("step_id") == step_id:
                try:
                    self.preselect(layer)
                except RuntimeError:  # the widget was closed
                    self.workspace.events.step_recorded.disconnect(self._on_step_recorded)

    @property
    def current_table(self) -> pd.DataFrame | None:
        """The table of the last measurement (None before one)."""
        name = self._last_output
        return self.workspace.tables.get(name) if name is not None else None

    def show_result(self, job: Any) -> None:
        """Show the measurements."""
        self.table.set_table(job.value.data, job.output_layer)
        self.save_button.enabled = True

    def save_table(self, path: str | Path) -> Path:
        """Write the current table to ``path`` as CSV (atomically; replaces the file)."""
        df = self.current_table
        if df is None:
            raise ValueError("there is no table to save yet: run the measurement first")
        out = write_table_csv(df, path, overwrite=True)
        self.status.value = f"table saved to {out}"
        return out

    def _on_save_clicked(self) -> None:
        from napari.utils.notifications import show_error
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(
            self.native, "Save table", _file_name(self._last_output), "CSV (*.csv)"
        )
        if not path:
            return
        try:
            self.save_table(path)
        except (OSError, ValueError) as exc:
            show_error(f"could not save the table: {exc}")


def _file_name(name: str | None) -> str:
    """Return a file name for a table result (``"A: measurements"`` -> ``"A_measurements.csv"``)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", name or "table").strip("_.") or "table"
    return f"{stem}.csv"
