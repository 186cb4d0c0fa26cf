"""The Segment widget on "auto" (issue 15): what the run chose is shown and recorded."""

from __future__ import annotations

from typing import Any

import pytest
from widget_helpers import click, wait_widget

from napari_fbias._qt.auto_number import AutoNumber
from napari_fbias._qt.segment_widget import SegmentWidget

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


def test_nuclei_on_auto_shows_and_records_what_it_chose(qtbot: Any, viewer: Any) -> None:
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Segment")
    assert widget.method.value == "segment.nuclei"
    auto = {n: widget.settings[n] for n in ("smoothing_sigma", "min_size", "min_distance")}
    assert all(isinstance(w, AutoNumber) and w.value is None for w in auto.values())
    click(widget.run_button)
    wait_widget(qtbot, widget)
    (step,) = widget.workspace.recorder.active.steps
    # the nuclei sample gets the numbers the recipe was tuned with
    assert step.chosen["smoothing_sigma"] == 1.5 and step.chosen["min_size"] == 30
    assert step.chosen["min_distance"] == 5 and step.chosen["object_diameter"] > 0
    assert all(step.params[n] is None for n in auto)  # the step stays automatic
    assert auto["smoothing_sigma"].auto.text == "auto (1.5)"
    assert auto["min_size"].auto.text == "auto (30)"
    assert auto["min_distance"].auto.text == "auto (5)"
    assert all(w.value is None for w in auto.values())  # still on auto after the run
    assert "auto: chose smoothing sigma 1.5, min size 30, min distance 5" in widget.status.value
    # a reopened session keeps what was chosen
    rec = widget.workspace.recorder
    assert rec.session.approaches[0].steps[0].to_dict()["chosen"] == dict(step.chosen)
