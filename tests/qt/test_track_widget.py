"""The Track widget: spots or labels over time -> a Tracks layer, its table and colours."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from qtpy.QtCore import Qt
from widget_helpers import add_image_file, click, journal, wait_widget

from napari_fbias._qt.track_widget import TrackWidget
from napari_fbias.io import samples

pytestmark = pytest.mark.qt


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))


def write_movie_crop(path: Path) -> Path:
    """The first 8 frames, top-left 128x128, of the spots sample, as an OME-TIFF."""
    img, _ = samples.load_spots_timelapse()
    crop = np.asarray(img.data[:8, :128, :128])
    meta = {"axes": "TYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "TimeIncrement": 2.0}
    tifffile.imwrite(path, crop, ome=True, metadata=meta)
    return path


@pytest.fixture
def viewer(make_napari_viewer: Any, tmp_path: Path) -> Any:
    v = make_napari_viewer()
    add_image_file(v, write_movie_crop(tmp_path / "spots.ome.tif"))
    return v


@pytest.fixture
def widget(viewer: Any) -> TrackWidget:
    w = TrackWidget(viewer)
    viewer.window.add_dock_widget(w, name="Track")
    return w


def test_track_spots_gives_tracks_table_and_colours(
    qtbot: Any, viewer: Any, widget: TrackWidget
) -> None:
    assert list(widget.method.choices) == ["track.track_spots", "track.track_labels"]
    assert widget.axes.value == "tyx" and widget.present_axes == set()
    assert widget.settings["memory"].value == 2
    click(widget.run_button)
    wait_widget(qtbot, widget)
    layer = viewer.layers["A: tracks"]
    assert type(layer).__name__ == "Tracks"
    df = widget.workspace.result("track_spots").data
    assert len(df) > 10 and df["track_id"].nunique() >= 2
    np.testing.assert_array_equal(layer.data, df[["track_id", "t", "y", "x"]].to_numpy(float))
    for column in ("speed", "track_length", "straightness", "mass"):
        np.testing.assert_array_equal(layer.features[column], df[column])
    assert tuple(layer.scale) == (2.0, 0.2, 0.2)  # overlays the movie
    # the table view shows the tracks table
    assert widget.table.table is df
    assert widget.table.model.rowCount() == len(df)
    assert widget.table.model.headerData(0, Qt.Orientation.Horizontal) == "track_id"
    # colour by a numeric feature
    choices = list(widget.color_by.choices)
    assert {"track_id", "speed", "track_length", "straightness"} <= set(choices)
    assert not {"t", "y", "x"} & set(choices)
    widget.color_by.value = "speed"
    assert layer.color_by == "speed"
    # re-run with another search range: same layer, same step, colour kept
    widget.settings["min_length"].value = 4
    click(widget.run_button)
    wait_widget(qtbot, widget)
    assert viewer.layers["A: tracks"] is layer
    assert layer.features["track_length"].min() >= 4
    assert layer.color_by == "speed"
    rec = widget.workspace.recorder
    assert [(s.id, s.params["min_length"]) for s in rec.active.steps] == [("track_spots", 4)]
    assert len(journal(rec, "step_replaced")) == 1


def test_track_labels_with_corrected_axes(qtbot: Any, viewer: Any, widget: TrackWidget) -> None:
    movie = np.zeros((4, 40, 40), np.int32)
    for t in range(4):
        movie[t, 5:12, 4 + 3 * t : 11 + 3 * t] = 7  # moves right
        movie[t, 25:33, 30 - 2 * t : 37 - 2 * t] = 3  # moves left
    viewer.add_labels(movie, name="cells")
    widget.method.value = "track.track_labels"
    assert [layer.name for layer in widget.inputs["labels"].choices] == ["cells"]
    widget.inputs["labels"].value = viewer.layers["cells"]
    assert widget.axes.value == "zyx" and widget.axes.enabled  # a guess
    widget.axes.value = "tyx"
    click(widget.run_button)
    wait_widget(qtbot, widget)
    layer = viewer.layers["A: label tracks"]
    df = widget.table.table
    assert sorted(df.groupby("track_id")["label"].first()) == [3, 7]
    assert (df.groupby("track_id")["t"].count() == 4).all()
    assert set(df["area"]) == {49, 56}
    assert layer.data.shape == (8, 4)
    assert viewer.layers["cells"].metadata["axes"] == "tyx"
    (img,) = widget.workspace.recorder.session.images
    assert (img.name, img.kind, img.axes) == ("cells", "labels", "tyx")


def test_only_movies_are_offered_and_a_2d_image_is_refused(
    qtbot: Any, make_napari_viewer: Any, tmp_path: Path
) -> None:
    from widget_helpers import add_sample, errors, notifications

    viewer = make_napari_viewer()
    add_sample(viewer, "nuclei_2d")  # a 2D image, first in the layer list
    widget = TrackWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Track")
    # no movie yet: nothing is offered, and Run says why, in the widget
    assert list(widget.inputs["image"].choices) == []
    with notifications() as seen:
        assert widget.run() is None
    assert not errors(seen)
    assert widget.status.value.startswith("Not run: nothing to track: open a movie")
    assert widget.workspace.recorder is None  # nothing recorded

    plain = viewer.add_image(np.zeros((3, 32, 32), np.uint16), name="stack")  # axes guessed
    [movie] = add_image_file(viewer, write_movie_crop(tmp_path / "spots.ome.tif"))
    names = {layer.name for layer in widget.inputs["image"].choices}
    assert names == {movie.name, "stack"}  # no 2D image
    assert widget.inputs["image"].value is movie and widget.axes.value == "tyx"  # preferred
    assert widget.status.value == ""  # the stale message went with the new input

    widget.inputs["image"].value = plain
    assert widget.axes.value == "zyx" and widget.axes.enabled
    assert widget.run() is None
    assert "tracking needs a movie: layer 'stack' has axes 'zyx'" in widget.status.value
    assert "type it in the axes field" in widget.status.value
    assert widget.workspace.recorder is None
