"""The Track widget: spots (trackpy) or segmented objects over time -> a Tracks layer.

``track.track_spots`` finds and links spots in a movie; ``track.track_labels``
links the objects of a labels movie. The result is a Tracks layer
(``track_id, t, (z), y, x``, every column of the tracks table as a feature)
and the table below the form; the tracks can be coloured by any numeric
feature (speed, track length, straightness...).

Only movies are offered: layers with a time axis first (the first one is
preselected), then layers of 3 or more dimensions whose axes are only
guessed (type ``tyx`` in the axes field when the first axis is time). A run
on data without a time axis is refused with the reason in the widget.
"""

from __future__ import annotations

from typing import Any

import napari
from magicgui.widgets import ComboBox, Container

from napari_fbias._qt.layer_axes import (
    LayerAxesError,
    axes_editable,
    layer_axes,
    layer_ndim,
)
from napari_fbias._qt.layer_data import numeric_columns
from napari_fbias._qt.op_widget import OpWidget, layer_choices
from napari_fbias._qt.table_widget import TableView

__all__ = ["TRACK_METHODS", "TrackWidget"]

TRACK_METHODS = ("track.track_spots", "track.track_labels")
_NOT_COLOURS = ("t", "z", "y", "x")


class TrackWidget(OpWidget):
    """Track spots or labels over time; show the tracks, their table and colour them."""

    title = "Track"

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
        self.form.layout().addWidget(self.table)

    def offered_layers(self, kind: str, widget: Any = None) -> list[tuple[str, Any]]:
        """Movies first (a time axis), then 3D+ layers whose axes may be corrected; no 2D data."""
        movies, maybe = [], []
        for name, layer in layer_choices(self.viewer, kind):
            if _has_time(layer):
                movies.append((name, layer))
            elif layer_ndim(layer) >= 3 and axes_editable(layer):
                maybe.append((name, layer))
        return movies + maybe

    def _on_layers_changed(self, event: Any = None) -> None:
        super()._on_layers_changed(event)
        for picker in self.inputs:  # a movie that appears replaces a pick without time
            if picker.value is None or not _has_time(picker.value):
                movie = next((ly for ly in picker.choices if _has_time(ly)), None)
                if movie is not None:
                    picker.value = movie

    def refusal(self) -> str | None:
        """Refuse data without a time axis (tracking a single frame gives one-point tracks)."""
        problem = super().refusal()
        if problem:
            return problem
        layer = self.primary_layer()
        if layer is None:
            return "nothing to track: open a movie (an image or labels layer with a time axis, t)"
        axes = self.axes.value.strip().lower()
        if "t" in axes:
            return None
        hint = " If its first axis is time, type it in the axes field (e.g. 'tyx')."
        return (
            f"tracking needs a movie: layer {layer.name!r} has axes {axes!r}, without a time "
            f"axis (t).{hint if self.axes.enabled else ''}"
        )

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


def _has_time(layer: Any) -> bool:
    try:
        return "t" in layer_axes(layer)
    except LayerAxesError:
        return False
