"""The Segment widget docked in a real napari viewer: form, runs, replacement, errors, cellpose."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from magicgui.widgets import CheckBox, ComboBox, FloatSpinBox, SpinBox
from widget_helpers import (
    add_image_file,
    add_sample,
    click,
    errors,
    journal,
    notifications,
    wait_widget,
)

from napari_fbias._qt.auto_number import AutoNumber
from napari_fbias._qt.op_widget import OperationWidget
from napari_fbias._qt.segment_widget import SegmentWidget, segment_methods
from napari_fbias.ops import cellpose_op

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


@pytest.fixture
def widget(viewer: Any) -> SegmentWidget:
    w = SegmentWidget(viewer)
    viewer.window.add_dock_widget(w, name="Segment")
    return w


def test_form_is_built_from_the_op_signature(viewer: Any, widget: SegmentWidget) -> None:
    methods = list(widget.method.choices)
    assert methods[0] == "segment.nuclei" and methods[-1] == "cellpose.segment"
    assert methods == segment_methods()
    assert "segment.expand_labels" not in methods  # takes labels, not an image
    assert widget.method.value == "segment.nuclei"
    # only image layers can be picked
    assert [layer.name for layer in widget.inputs["image"].choices] == ["nuclei_2d"]
    assert widget.axes.value == "yx" and not widget.axes.enabled
    assert not widget.where.native.isHidden() and widget.present_axes == set()
    names = [w.name for w in widget.settings]
    assert names == list(widget.spec.param_names)
    assert "spacing" not in names and "axes" not in names  # context settings are hidden
    sigma = widget.settings["smoothing_sigma"]  # automatic by default (issue 15)
    assert isinstance(sigma, AutoNumber) and sigma.value is None
    assert isinstance(sigma.number, FloatSpinBox)
    assert (sigma.number.min, sigma.number.max, sigma.number.step) == (0.0, 20.0, 0.5)
    assert "Gaussian blur" in sigma.tooltip
    method = widget.settings["threshold_method"]
    assert isinstance(method, ComboBox) and method.value == "otsu"
    assert set(method.choices) == {"otsu", "li", "triangle", "yen", "manual"}
    assert isinstance(widget.settings["fill_holes"], CheckBox)
    assert isinstance(widget.settings["min_size"].number, SpinBox)
    # another method rebuilds the settings
    widget.method.value = "segment.local_threshold"
    assert [w.name for w in widget.settings] == ["block_size", "offset", "method", "min_size"]
    assert widget.settings["block_size"].value == 51


def test_run_then_change_a_setting_replaces_the_result(
    qtbot: Any, viewer: Any, widget: SegmentWidget
) -> None:
    click(widget.run_button)
    assert widget.running and not widget.run_button.enabled and widget.cancel_button.enabled
    wait_widget(qtbot, widget)
    layer = viewer.layers["A: nuclei"]
    n_first = int(layer.data.max())
    assert n_first > 20
    assert "A: nuclei (step nuclei); auto: chose" in widget.status.value
    assert widget.run_button.enabled and not widget.cancel_button.enabled
    n_layers = len(viewer.layers)
    widget.settings["min_size"].value = 300
    click(widget.run_button)
    wait_widget(qtbot, widget)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["A: nuclei"] is layer and int(layer.data.max()) < n_first
    rec = widget.workspace.recorder
    assert [(s.id, s.params["min_size"]) for s in rec.active.steps] == [("nuclei", 300)]
    assert len(journal(rec, "step_replaced")) == 1
    # "new result" keeps the old one; unticked again, the newest one is replaced
    widget.new_result.value = True
    widget.settings["min_size"].value = 30
    click(widget.run_button)
    wait_widget(qtbot, widget)
    assert int(viewer.layers["A: nuclei (2)"].data.max()) == n_first
    widget.new_result.value = False
    widget.settings["min_size"].value = 100
    click(widget.run_button)
    wait_widget(qtbot, widget)
    assert int(viewer.layers["A: nuclei"].data.max()) < n_first
    steps = {s.id: (s.output_layer, s.params["min_size"]) for s in rec.active.steps}
    assert steps == {"nuclei": ("A: nuclei", 300), "nuclei_2": ("A: nuclei (2)", 100)}
    # another approach gets its own layer
    rec.add_approach("threshold", "Jean")
    widget.method.value = "segment.threshold"
    click(widget.run_button)
    wait_widget(qtbot, widget)
    assert viewer.layers["B: threshold"].metadata["fbias"]["approach"] == "B"


def test_plane_and_channel_selection(qtbot: Any, make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "cells_3d")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.inputs["image"].value = viewer.layers["DAPI"]
    assert widget.axes.value == "zyx"
    assert widget.present_axes == {"z"}
    assert widget.selectors["z"].max == 23
    widget.selectors["z"].value = 12
    widget.method.value = "segment.threshold"
    click(widget.run_button)
    wait_widget(qtbot, widget)
    out = viewer.layers["A: threshold"]
    assert out.data.shape == (128, 128)
    (step,) = widget.workspace.recorder.active.steps
    assert dict(step.inputs["image"].select) == {"c": 0, "z": 12}
    # a plain 4D array: its axes are guessed (tzyx) and can be corrected in the form
    viewer.add_image(np.zeros((2, 3, 16, 16), np.uint8), name="plain")
    widget.inputs["image"].value = viewer.layers["plain"]
    assert widget.axes.enabled and widget.axes.value == "tzyx"
    assert widget.present_axes == {"t", "z"}
    widget.axes.value = "czyx"
    assert widget.present_axes == {"c", "z"} and widget.selectors["c"].max == 1
    viewer.add_image(np.zeros((8, 8), np.uint8), name="other")  # typed axes are kept
    assert widget.axes.value == "czyx" and widget.inputs["image"].value.name == "plain"
    widget.selectors["z"].value = -1
    widget.selectors["c"].value = 1
    assert widget.selection(widget.input_layers()) == {"image": {"c": 1}}


def test_op_error_is_shown_and_nothing_recorded(
    qtbot: Any, viewer: Any, widget: SegmentWidget
) -> None:
    widget.method.value = "cellpose.segment"
    widget.settings["nuclear_channel"].value = 0  # the image has no channel axis
    with notifications() as seen:
        click(widget.run_button)
        wait_widget(qtbot, widget)
        qtbot.waitUntil(lambda: bool(errors(seen)))
    (message,) = errors(seen)
    assert "nuclear_channel=0 but the image has no channel axis" in message
    assert message.startswith("Cellpose failed")
    assert widget.status.value == message
    assert "A: cellpose" not in viewer.layers
    rec = widget.workspace.recorder
    assert rec.active.steps == () and not journal(rec, "step_recorded")


def test_cancel_button_discards_the_run(qtbot: Any, viewer: Any, widget: SegmentWidget) -> None:
    click(widget.run_button)
    click(widget.cancel_button)
    assert widget.status.value == "Nuclei: cancelled"
    wait_widget(qtbot, widget)
    assert "A: nuclei" not in viewer.layers
    assert widget.workspace.recorder.active.steps == ()
    assert widget.run_button.enabled


def test_optional_numbers_are_automatic_or_a_bounded_number(qtbot: Any, viewer: Any) -> None:
    from napari_fbias._qt.auto_number import AutoNumber

    widget = OperationWidget(viewer)
    viewer.window.add_dock_widget(widget)
    viewer.add_labels(np.array([[0, 1, 1], [0, 1, 0], [2, 2, 0]], np.int32), name="objects")
    widget.method.value = "segment.remove_small_objects"
    max_size = widget.settings["max_size"]
    assert isinstance(max_size, AutoNumber)
    assert max_size.value is None and not max_size.number.enabled  # automatic by default
    assert max_size.number.min == 1  # the setting's own bound: a typo cannot reach the op
    with pytest.raises(ValueError, match="outside"):
        max_size.value = 0
    widget.inputs["labels"].value = viewer.layers["objects"]
    max_size.auto.value = False
    assert max_size.number.enabled
    max_size.number.value = 2
    widget.settings["min_size"].value = 0
    click(widget.run_button)
    wait_widget(qtbot, widget)
    (step,) = widget.workspace.recorder.active.steps
    assert step.params["max_size"] == 2 and isinstance(step.params["max_size"], int)
    np.testing.assert_array_equal(
        viewer.layers["A: remove small objects"].data, [[0, 0, 0], [0, 0, 0], [1, 1, 0]]
    )
    # a recorded value goes back into the widget, and automatic too
    assert widget.load_settings(step)
    assert max_size.value == 2
    max_size.value = None
    assert max_size.auto.value and not max_size.number.enabled


# --- cellpose ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_path() -> Path:
    from helpers.cellpose_model import build_test_model

    cache = os.environ.get("FBIAS_TEST_CACHE") or Path.home() / ".cache/napari-fbias/test-models"
    return build_test_model(cache)


@pytest.fixture
def forward_calls(model_path: Path) -> Iterator[list[int]]:
    from napari_fbias.ops.cellpose_models import load_model

    calls: list[int] = []
    net = load_model(str(model_path)).model.net
    handle = net.register_forward_hook(lambda *a: calls.append(1))
    cellpose_op.clear_cache()
    yield calls
    handle.remove()
    cellpose_op.clear_cache()


def test_cellpose_rethreshold_reuses_the_network(
    qtbot: Any,
    make_napari_viewer: Any,
    tmp_path: Path,
    model_path: Path,
    forward_calls: list[int],
) -> None:
    from helpers.cellpose_model import nuclei_image

    img, _ = nuclei_image((96, 96), 8, seed=21)
    tifffile.imwrite(tmp_path / "nuclei.tif", img)
    viewer = make_napari_viewer()
    add_image_file(viewer, tmp_path / "nuclei.tif")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.method.value = "cellpose.segment"
    widget.settings["model"].value = str(model_path)
    click(widget.run_button)
    wait_widget(qtbot, widget, timeout=120000)
    layer = viewer.layers["A: cellpose"]
    first = np.array(layer.data)
    assert first.max() >= 3
    n_net = len(forward_calls)
    assert n_net > 0
    widget.settings["cellprob_threshold"].value = 3.0
    widget.settings["flow_threshold"].value = 0.2
    click(widget.run_button)
    wait_widget(qtbot, widget, timeout=120000)
    assert len(forward_calls) == n_net, "the network ran again for new thresholds"
    assert cellpose_op.cache_info()["hits"] == 1
    assert viewer.layers["A: cellpose"] is layer
    assert not np.array_equal(layer.data, first)
    (step,) = widget.workspace.recorder.active.steps
    assert (step.params["cellprob_threshold"], step.params["flow_threshold"]) == (3.0, 0.2)


@pytest.mark.parametrize("typo", ["xy", "zz", "yq"])
def test_axes_typo_is_said_under_the_field_without_a_notification(
    qtbot: Any, make_napari_viewer: Any, typo: str
) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((16, 16), np.uint8), name="plain")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget.axes.enabled and widget.axes.value == "yx"
    with notifications() as seen:
        widget.axes.value = typo[:1]  # typed letter by letter: no exception, no toast
        widget.axes.value = typo
        qtbot.wait(10)
    assert not seen, [str(n.message) for n in seen]
    problem = widget.axes_problem.value
    assert problem.startswith(f"axes {typo!r} do not fit layer 'plain': ")
    assert problem.endswith("in that order (e.g. 'yx')")
    assert not widget.axes_problem.native.isHidden()
    with notifications() as seen:
        assert widget.run() is None
    assert not seen, [str(n.message) for n in seen]
    assert widget.status.value == f"Not run: {problem}"
    assert widget.workspace.recorder is None  # nothing started, nothing recorded
    widget.axes.value = "yx"
    assert widget.axes_problem.value == "" and widget.axes_problem.native.isHidden()
