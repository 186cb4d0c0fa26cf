"""Long messages never push the napari window wider than the screen (a 1366x768 laptop)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from widget_helpers import add_sample, click

from napari_fbias._qt.measure_widget import MeasureWidget
from napari_fbias._qt.op_widget import OperationWidget
from napari_fbias._qt.run_pipeline.panel import RunPipelineWidget
from napari_fbias._qt.segment_widget import SegmentWidget
from napari_fbias._qt.track_widget import TrackWidget

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

SCREEN = (1366, 768)
#: What cellpose says offline, with the long paths of a real machine: 500 characters.
LONG_ERROR = (
    "Cellpose failed: the weights of cellpose model 'nuclei' are not in "
    "/home/analyst/.cellpose/models and downloading them failed (URLError: <urlopen error "
    "[Errno -3] Temporary failure in name resolution>); is there no network access? To use "
    "this model offline, copy its weights file to "
    "/home/analyst/.cellpose/models/nucleitorch_0_with_a_very_long_name_for_this_machine "
    "(the folder is set by the CELLPOSE_LOCAL_MODELS_PATH environment variable, default "
    "~/.cellpose/models), or pass the path of a model file as 'model'."
)
LONG_ERROR = (LONG_ERROR + " " + "x" * 500)[:500]


def _settle(qtbot: Any, window: Any) -> None:
    window.resize(*SCREEN)
    qtbot.wait(50)
    window.resize(*SCREEN)
    qtbot.wait(50)


def _layout(viewer: Any) -> tuple[int, int, int]:
    window = viewer.window._qt_window
    canvas = viewer.window._qt_viewer.canvas.native
    return window.width(), window.height(), canvas.width()


@pytest.mark.parametrize(
    "make", [SegmentWidget, TrackWidget, MeasureWidget, OperationWidget, RunPipelineWidget]
)
def test_long_error_keeps_the_window_on_a_laptop_screen(
    qtbot: Any, make_napari_viewer: Any, make: Any
) -> None:
    viewer = make_napari_viewer(show=True)
    add_sample(viewer, "nuclei_2d")
    widget = make(viewer)
    viewer.window.add_dock_widget(widget, name="widget")
    window = viewer.window._qt_window
    _settle(qtbot, window)
    assert window.width() <= SCREEN[0]

    widget.status.value = LONG_ERROR
    _settle(qtbot, window)
    width, height, canvas = _layout(viewer)
    assert width <= SCREEN[0], f"the window is {width} px wide"
    assert height <= SCREEN[1], f"the window is {height} px high"
    assert canvas >= 0.4 * width, f"the canvas has {canvas} of {width} px"
    # the message is all there, on demand
    assert widget.status.value == LONG_ERROR
    assert widget.status.shortened
    click(widget.status.details_button)
    _settle(qtbot, window)
    assert widget.status.details.value == LONG_ERROR
    width, height, canvas = _layout(viewer)
    assert width <= SCREEN[0] and height <= SCREEN[1] and canvas >= 0.4 * width


def test_long_layer_names_do_not_widen_the_form(qtbot: Any, make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.zeros((16, 16), np.uint8), name="a_very_long_file_name_" * 20)
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    _settle(qtbot, viewer.window._qt_window)
    width, _, canvas = _layout(viewer)
    assert width <= SCREEN[0] and canvas >= 0.4 * width


def test_message_line_shortens_and_shows_details(qtbot: Any) -> None:
    from napari_fbias._qt.fit_width import MessageLine, breakable, short_message

    line = MessageLine()
    qtbot.addWidget(line.native)
    line.value = "done"
    assert line.text.value == "done" and not line.shortened
    line.value = LONG_ERROR
    assert line.shortened and len(line.text.value) < 300
    assert line.text.value.replace("\u200b", "").endswith("\u2026")
    assert not line.expanded
    line.toggle_details()
    assert line.expanded and line.details.value == LONG_ERROR
    line.value = "first line\nsecond line"
    assert line.shortened and not line.expanded
    line.value = ""
    assert not line.shortened and line.value == ""
    assert short_message("a " * 200).endswith("\u2026")
    assert "\u200b" in breakable("/a/b/c") and breakable("plain words") == "plain words"


def test_switching_method_or_input_clears_a_stale_error(
    qtbot: Any, make_napari_viewer: Any
) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "nuclei_2d")
    viewer.add_image(np.zeros((32, 32), np.uint8), name="other")
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    widget.status.value = LONG_ERROR
    widget.method.value = "segment.threshold"
    assert widget.status.value == ""
    widget.status.value = LONG_ERROR
    widget.inputs["image"].value = viewer.layers["other"]
    assert widget.status.value == ""


def test_the_omero_browser_fits_a_laptop_screen(qtbot: Any, make_napari_viewer: Any) -> None:
    from fakes.fake_blitz import HAVE_OMERO, standard_server
    from napari_fbias._qt.omero_widget import OmeroWidget

    if not HAVE_OMERO:
        pytest.skip("omero-py is not installed")
    viewer = make_napari_viewer(show=True)
    widget = OmeroWidget(viewer, backend=standard_server().backend(), keepalive_ms=0)
    viewer.window.add_dock_widget(widget, name="OMERO")
    window = viewer.window._qt_window
    _settle(qtbot, window)
    width, height, canvas = _layout(viewer)
    assert width <= SCREEN[0] and height <= SCREEN[1], f"the window is {width}x{height}"
    assert canvas >= 0.4 * width
