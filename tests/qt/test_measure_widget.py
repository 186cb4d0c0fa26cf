"""The Measure widget: a table per labels layer, shown, put into the layer and saved as CSV."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from magicgui.widgets import Select
from widget_helpers import click, errors, notifications, wait_job, wait_widget

from napari_fbias._qt.measure_widget import MeasureWidget
from napari_fbias.io.tables import read_table_csv
from napari_fbias.ops.measure import DEFAULT_PROPERTIES

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


@pytest.fixture
def widget(viewer: Any) -> MeasureWidget:
    w = MeasureWidget(viewer)
    viewer.window.add_dock_widget(w, name="Measure")
    return w


def test_measure_a_result_layer_show_and_save(
    qtbot: Any, viewer: Any, widget: MeasureWidget, tmp_path: Path
) -> None:
    ws = widget.workspace
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": viewer.layers["nuclei_2d"]}, {}))
    nuclei = viewer.layers["A: nuclei"]
    props = widget.settings["properties"]
    assert isinstance(props, Select) and tuple(props.value) == DEFAULT_PROPERTIES
    widget.inputs["labels"].value = nuclei
    widget.inputs["image"].value = viewer.layers["nuclei_2d"]
    props.value = ["area", "centroid", "perimeter"]
    with pytest.raises(ValueError, match="run the measurement first"):
        widget.save_table(tmp_path / "none.csv")
    click(widget.run_button)
    wait_widget(qtbot, widget)
    df = widget.current_table
    n = int(nuclei.data.max())
    assert list(df["label"]) == list(range(1, n + 1))
    assert {"area", "area_physical", "perimeter", "mean_intensity_0"} <= set(df.columns)
    assert "eccentricity" not in df.columns
    assert widget.table.table is df and widget.table.model.rowCount() == n
    # the labels layer carries the table as features, one row per label
    assert list(nuclei.features["index"]) == list(df["label"])
    np.testing.assert_array_equal(nuclei.features["area"], df["area"])
    # recorded with its settings, reading the nuclei step and the image
    step = ws.recorder.active.steps[-1]
    assert step.op == "measure.regionprops" and step.output_layer == "A: measurements"
    assert list(step.params["properties"]) == ["area", "centroid", "perimeter"]
    assert step.inputs["labels"].step == "nuclei" and step.inputs["image"].image == "nuclei_2d"
    # Save table... writes the CSV atomically, replacing an older file
    out = tmp_path / "nuclei.csv"
    out.write_text("old\n", encoding="utf-8")
    assert widget.save_table(out) == out
    back = read_table_csv(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nuclei.csv", "sessions"]  # no temp file
    assert str(out) in widget.status.value
    # a folder that does not exist: a clear error, nothing written
    with notifications() as seen, pytest.raises(Exception, match="does not exist"):
        widget.save_table(tmp_path / "missing" / "t.csv")
    assert not errors(seen)


def test_measure_ground_truth_labels_of_a_sample(
    qtbot: Any, viewer: Any, widget: MeasureWidget
) -> None:
    truth = viewer.layers["ground truth"]
    assert [layer.name for layer in widget.inputs["labels"].choices] == ["ground truth"]
    assert widget.inputs["labels"].value is truth
    # the image the ground truth belongs to is preselected for intensities
    assert widget.inputs["image"].value is viewer.layers["nuclei_2d"]
    click(widget.run_button)
    wait_widget(qtbot, widget)
    df = widget.current_table
    assert len(df) == len(np.unique(np.asarray(truth.data))) - 1
    assert "mean_intensity_0" in df.columns
    rec = widget.workspace.recorder
    kinds = {img.name: img.kind for img in rec.session.images}
    assert kinds == {"ground truth": "labels", "nuclei_2d": "image"}
    assert rec.active.steps[0].inputs["labels"].image == "ground truth"


def test_measure_preselects_the_newest_result_and_its_image(
    qtbot: Any, viewer: Any, widget: MeasureWidget
) -> None:
    ws = widget.workspace
    image = viewer.layers["nuclei_2d"]
    other = viewer.add_image(np.zeros(image.data.shape, np.uint16), name="other image")
    assert widget.inputs["labels"].value is viewer.layers["ground truth"]
    assert widget.inputs["image"].value is image  # the image the ground truth belongs to
    # a result appears while the widget is open: it is picked, with the image it came from
    widget.inputs["image"].value = other
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": image}, {}))
    nuclei = viewer.layers["A: nuclei"]
    assert widget.inputs["labels"].value is nuclei
    assert widget.inputs["image"].value is image
    # a newer result from a preprocessed image: picked, with that image
    wait_job(qtbot, ws.run_op("preprocess.gaussian", {"image": image}, {"sigma": 2.0}))
    smooth = viewer.layers["A: gaussian"]
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": smooth}, {}))
    assert widget.inputs["labels"].value is viewer.layers["A: threshold"]
    assert widget.inputs["image"].value is smooth
    # a Measure widget opened now starts from the newest result too
    again = MeasureWidget(viewer)
    assert again.inputs["labels"].value is viewer.layers["A: threshold"]
    assert again.inputs["image"].value is smooth
    # picking other labels picks their image; a renamed image is still found
    image.name = "raw"
    again.inputs["image"].value = other
    again.inputs["labels"].value = nuclei
    assert again.inputs["image"].value is image
