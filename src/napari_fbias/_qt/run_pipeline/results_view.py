"""The results of a run on layers: layers in the viewer, tables in the panel.

:func:`show_results` shows each output as the layer ``"<pipeline>: <output>"``
(labels, images, tracks, spots), on the grid of the layer the run read,
replacing the layer of the previous run; a table output becomes the features
of the labels layer it measured, as after a step run from a widget (both
through :mod:`napari_fbias._qt.result_layers`, as the workspace does). :class:`TablesView` lists the
table outputs and shows the chosen one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from magicgui.widgets import ComboBox
from qtpy.QtWidgets import QVBoxLayout, QWidget

from napari_fbias._qt.layer_data import value_layer_data
from napari_fbias._qt.result_layers import attach_table, put_layer
from napari_fbias._qt.run_pipeline.run_model import (
    Job,
    measured_output,
    output_layer_name,
    output_metadata,
)
from napari_fbias._qt.table_widget import TableView

__all__ = ["TablesView", "show_results"]


def show_results(viewer: Any, job: Job, results: Any) -> dict[str, pd.DataFrame]:
    """Show the outputs of a run on layers in ``viewer``; return its tables by layer-style name."""
    pipeline = job.pipeline
    shown: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}
    for out in results:
        name = output_layer_name(pipeline.name, out)
        made = value_layer_data(results.value(out), name, output_metadata(pipeline, out), job.like)
        if made is None:
            tables[out] = results[out]
        else:
            shown[out] = put_layer(viewer, *made)
    for out, df in tables.items():
        target = shown.get(measured_output(results, out) or "")
        if target is not None:
            attach_table(target, df)
    return {output_layer_name(pipeline.name, out): df for out, df in tables.items()}


class TablesView(QWidget):
    """The table outputs of the runs so far (a list to choose from, and the chosen table).

    Attributes
    ----------
    tables : dict of str to pandas.DataFrame
        By layer-style name (``"nuclei: props"``).
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tables: dict[str, pd.DataFrame] = {}
        self.table_choice = ComboBox(label="table", choices=self._table_choices)
        self.table_choice.changed.connect(self._on_table_chosen)
        self.table_view = TableView()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table_choice.native)
        layout.addWidget(self.table_view)
        self.setVisible(False)

    def add_tables(self, tables: Mapping[str, pd.DataFrame]) -> None:
        """Add (or replace) tables; the first of them is shown."""
        self.tables.update(tables)
        self.table_choice.reset_choices()
        if tables:
            self.table_choice.value = next(iter(tables))
            self._on_table_chosen()
        self.setVisible(bool(self.tables))

    def _table_choices(self, widget: Any = None) -> list[str]:
        return list(self.tables)

    def _on_table_chosen(self, *args: Any) -> None:
        name = self.table_choice.value
        if name in self.tables:
            self.table_view.set_table(self.tables[name], name)
