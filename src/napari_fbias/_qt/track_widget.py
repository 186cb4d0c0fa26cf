"""The Track widget: spots (trackpy) or segmented objects over time -> a Tracks layer.

``track.track_spots`` finds and links spots in a movie; ``track.track_labels``
links the objects of a labels movie. The result is a Tracks layer
(``track_id, t, (z), y, x``, every column of the tracks table as a feature)
and the table below the form; the tracks can be coloured by any numeric
feature (speed, track length, straightness...).
"""

from __future__ import annotations

from typing import Any

import napari
from magicgui.widgets import ComboBox, Container

from napari_fbias._qt.layer_data import numeric_columns
from napari_fbias._qt.op_widget import OpWidget
from napari_fbias._qt.table_widget import TableView

__all__ = ["TRACK_METHODS", "TrackWidget"]

TRACK_METHODS = ("track.track_spots", "track.track_labels")
_NOT_COLOURS = ("t", "z", "y", "x")


class TrackWidget(OpWidget):
    """Track spots or labels over time; show the tracks, their table and colour them."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, TRACK_METHODS, select_axes=("c", "z"))
        self.color_by = ComboBox(
            name="color_by",
            label="colour tracks by",
            choices=["track_id"],
            value="track_id",
            tooltip="A numeric feature of the tracks",
        )
        self.color_by.changed.connect(self._on_color_by)
        self.insert(len(self) - 1, Container(labels=True, widgets=[self.color_by]))
        self.table = TableView()
        self.native.layout().addWidget(self.table)

    def tracks_layer(self) -> Any:
        """Return the Tracks layer of the last result (None if it is gone)."""
        name = self._last_output
        layers = self.viewer.layers
        return layers[name] if name is not None and name in layers else None

    def show_result(self, job: Any) -> None:
        """Show the tracks table and offer its numeric columns as colours."""
        df = job.value.data
        self.table.set_table(df, job.output_layer)
        columns = numeric_columns(df, skip=_NOT_COLOURS)
        current = self.color_by.value
        self.color_by.choices = columns or ["track_id"]
        self.color_by.value = current if current in columns else "track_id"
        self._on_color_by(self.color_by.value)

    def _on_color_by(self, column: str | None) -> None:
        layer = self.tracks_layer()
        if layer is not None and column and column in layer.features:
            layer.color_by = column
