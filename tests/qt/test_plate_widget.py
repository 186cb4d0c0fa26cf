"""The Plate widget with a real viewer, on a plate written by ome-zarr-py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from widget_helpers import wait_widget

from napari_fbias._qt.plate_widget import PlateWidget
from test_io_ome_zarr_plate import field_pixels, write_plate

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


def test_read_a_plate_show_its_overview_and_open_one_field(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    root = write_plate(tmp_path / "screen.ome.zarr", "0.4", wrap=True)
    viewer = make_napari_viewer()
    widget = PlateWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Plate")
    assert not widget.open_button.enabled  # nothing read yet
    widget.read()
    assert "Type the path" in widget.status.value
    widget.source.value = str(root)
    widget.read()
    wait_widget(qtbot, widget)
    assert widget.plate is not None, widget.status.value
    assert list(widget.well.choices) == ["A1", "A2", "A3", "B1", "B3"]
    assert "2 x 3, 5 wells, 10 fields" in widget.status.value

    widget.field.value = 1
    widget.show_overview()
    wait_widget(qtbot, widget)
    *channels, wells = list(viewer.layers)
    assert len(channels) == 2 and wells.metadata["plate"]["field"] == 1
    assert channels[0].metadata["plate"]["source"] == str(root)

    widget.well.value = "B3"
    widget.field.value = 1
    widget.open_field()
    wait_widget(qtbot, widget)
    opened = [ly for ly in viewer.layers if ly.metadata.get("source", "").endswith("B/3/1")]
    assert len(opened) == 2, widget.status.value  # two channels, at full resolution
    np.testing.assert_array_equal(np.asarray(opened[0].data[0]), field_pixels("B/3", 1)[0])

    # a selected overview layer gives its plate to a new widget
    other = PlateWidget(viewer)
    viewer.layers.selection.active = channels[0]
    assert other.source.value == str(root)


def test_a_path_that_is_not_a_plate_says_why(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    widget = PlateWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Plate")
    widget.source.value = str(tmp_path / "nothing.zarr")
    widget.read()
    wait_widget(qtbot, widget)
    assert widget.plate is None and "does not exist" in widget.status.value


def test_a_closed_widget_stops_listening(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    from napari_fbias._reader import read_plate_layers

    root = write_plate(tmp_path / "screen.ome.zarr", "0.4")
    viewer = make_napari_viewer()
    widget = PlateWidget(viewer)
    dock = viewer.window.add_dock_widget(widget, name="Plate")
    events = viewer.layers.selection.events.active
    n_before = len(events.callbacks)
    viewer.window.remove_dock_widget(dock)
    widget.native.deleteLater()
    qtbot.wait(50)
    for data, kwargs, kind in read_plate_layers(str(root)):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    viewer.layers.selection.active = viewer.layers[0]
    widget._on_active_layer()  # what napari calls: no error from the closed widget...
    assert len(events.callbacks) == n_before - 1  # ...and it stopped listening
