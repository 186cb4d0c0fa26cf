"""Reopening a session brings the work back, without freezing napari (issue 11, item 4).

A first viewer records a session and is closed: its workspace releases the
session (recorder closed, its live thread stopped). A second viewer reopens
it through the Session panel: the journals are read, the image re-opened
from its source and every result recomputed bit for bit, all in a worker
thread; the result layers equal the session's own recomputation and the
Compare tab counts them. A recorded step's settings load back into the
widget made for its operation.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from widget_helpers import add_sample, wait_job, wait_widget

from napari_fbias._qt.op_widget import OperationWidget
from napari_fbias._qt.segment_widget import SegmentWidget
from napari_fbias._qt.session_widget import SessionWidget
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io import open as io_open
from napari_fbias.session import load_session
from napari_fbias.session.recompute import recompute_approach

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

#: Seconds the patched reader takes per image (a slow disk or server).
SLOW = 1.0


def live_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "fbias-live-session"}


def settle(qtbot: Any, panel: SessionWidget, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: not panel.busy and not panel.workspace.busy, timeout=timeout)


def record_first_sitting(qtbot: Any, viewer: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Record gaussian -> threshold -> measurements; return the recorder and the layers shown."""
    ws = get_workspace(viewer)
    rec = ws.start_session(title="Nuclei count", user="Ann", question="How many?")
    rec.add_approach("classical", "Marie")
    image = viewer.layers["nuclei_2d"]
    wait_job(qtbot, ws.run_op("preprocess.gaussian", {"image": image}, {"sigma": 2.0}))
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": viewer.layers["A: gaussian"]}, {}))
    job = wait_job(
        qtbot,
        ws.run_op(
            "measure.regionprops",
            {"labels": viewer.layers["A: threshold"], "image": image},
            {"properties": ["area", "centroid"]},
        ),
    )
    assert job.error is None, job.error
    qtbot.waitUntil(lambda: not ws.busy, timeout=30000)  # the checksum is recorded too
    shown = {n: np.asarray(viewer.layers[n].data).copy() for n in ("A: gaussian", "A: threshold")}
    return rec, shown


def test_a_closed_viewer_releases_its_session_and_a_new_one_brings_the_work_back(
    make_napari_viewer: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = live_threads()
    first = make_napari_viewer()
    add_sample(first, "nuclei_2d")
    rec, shown = record_first_sitting(qtbot, first)
    (live,) = live_threads() - before
    link = rec.link
    ws = get_workspace(first)
    first.close()
    qtbot.waitUntil(lambda: ws.recorder is None and not live.is_alive(), timeout=10000)

    second = make_napari_viewer()
    panel = SessionWidget(second)
    second.window.add_dock_widget(panel, name="Session")
    settle(qtbot, panel)
    opened: list[bool] = []  # per image opened: was it on the GUI thread?
    real_open = io_open.open_image

    def slow_open(source: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(threading.current_thread() is threading.main_thread())
        time.sleep(SLOW)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(io_open, "open_image", slow_open)
    assert [info.path.name for info in panel.session_table.infos] == [Path(link).name]
    panel.session_table.selectRow(0)
    t0 = time.perf_counter()
    panel.reopen_button.click()
    assert time.perf_counter() - t0 < SLOW / 2, "reopening blocked the GUI thread"
    assert "nuclei_2d" not in second.layers  # it is being opened in a worker
    settle(qtbot, panel)
    assert opened and not any(opened), "images were opened on the GUI thread"

    ws2 = get_workspace(second)
    assert ws2.recorder is panel.recorder and ws2.recorder.link == link
    # every result layer is back, equal to the session's own recomputation and to what was shown
    expected = recompute_approach(load_session(link), "A", opener=real_open)
    steps = ws2.recorder.session.approach("A").steps
    for st in steps:
        if st.op == "measure.regionprops":
            pd.testing.assert_frame_equal(ws2.tables[st.output_layer], expected[st.id].data)
            continue
        layer = second.layers[st.output_layer]
        np.testing.assert_array_equal(layer.data, expected[st.id].data)
        np.testing.assert_array_equal(layer.data, shown[st.output_layer])
        assert layer.metadata["fbias"]["step_id"] == st.id
    assert [ly.name for ly in second.layers] == ["nuclei_2d", "A: gaussian", "A: threshold"]
    assert len(second.layers["A: threshold"].features) == len(ws2.tables["A: measurements"])
    assert "results of A recomputed here" in panel.status.text()
    # Compare counts the layer, not the recorded result
    count = int(np.count_nonzero(np.unique(second.layers["A: threshold"].data)))
    assert panel.compare_table.cell_text(0, "Objects") == str(count)
    # and the restored layers take part in new runs (read from the recomputed values)
    job = wait_job(qtbot, ws2.run_op("segment.threshold", {"image": "A: gaussian"}, {}))
    assert job.error is None and job.step_id == "threshold"
    np.testing.assert_array_equal(second.layers["A: threshold"].data, shown["A: threshold"])


def test_an_image_that_cannot_be_read_is_said_and_the_rest_comes_back(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    import tifffile

    src = tmp_path / "cells.tif"
    rng = np.random.default_rng(0)
    data = (rng.random((64, 64)) * 100).astype(np.uint16)
    data[16:40, 16:40] += 1000
    tifffile.imwrite(src, data)
    viewer = make_napari_viewer()
    ws = get_workspace(viewer)
    from widget_helpers import add_image_file

    add_image_file(viewer, src)
    rec = ws.start_session(title="gone")
    rec.add_approach("classical", "Marie")
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": viewer.layers["cells"]}, {}))
    qtbot.waitUntil(lambda: not ws.busy, timeout=30000)
    link = rec.link
    ws.close_session()
    src.unlink()  # the image is gone since

    other = make_napari_viewer()
    panel = SessionWidget(other)
    qtbot.addWidget(panel)
    settle(qtbot, panel)
    panel.reopen(link)
    settle(qtbot, panel)
    assert panel.recorder is not None  # the record is there all the same
    assert [s.id for s in panel.session.approach("A").steps] == ["threshold"]
    assert list(other.layers) == []
    text = panel.status.text()
    assert "not brought back: could not re-open image 'cells'" in text
    assert "approach A cannot be recomputed here" in text


def test_recorded_settings_load_back_into_the_widgets(make_napari_viewer: Any, qtbot: Any) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "nuclei_2d")
    panel = SessionWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Session")
    ws = get_workspace(viewer)
    ws.start_session(title="settings")
    image = viewer.layers["nuclei_2d"]
    recorded = {"min_size": 55, "smoothing_sigma": 2.5, "threshold_method": "li"}
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": image}, recorded))
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": image}, {"method": "yen"}))
    settle(qtbot, panel)
    nuclei, threshold = panel.session.approach("A").steps

    # nothing selected: says so
    assert panel.load_step_settings() == []
    assert "Select a recorded step first" in panel.status.text()
    # no Segment widget open: the one made for the op is docked and filled in
    panel.steps_table.selectRow(0)
    panel.load_settings_button.click()
    _, segment = viewer.window.add_plugin_dock_widget("napari-fbias", "Segment")
    assert isinstance(segment, SegmentWidget)
    assert segment.method.value == "segment.nuclei"
    assert segment.param_values() == dict(nuclei.params)
    assert segment.inputs["image"].value is image
    assert "loaded into Segment" in panel.status.text()

    # with Segment and Any operation open, the widget made for the op takes it
    _, anyop = viewer.window.add_plugin_dock_widget("napari-fbias", "Any operation")
    assert isinstance(anyop, OperationWidget)
    anyop.method.value = "preprocess.gaussian"
    panel.steps_table.selectRow(1)
    assert panel.load_step_settings() == ["Segment"]
    assert segment.method.value == "segment.threshold"
    assert segment.param_values() == dict(threshold.params)
    assert anyop.method.value == "preprocess.gaussian"  # left alone

    # an op only Any operation offers goes there
    wait_job(qtbot, ws.run_op("preprocess.gaussian", {"image": image}, {"sigma": 3.0}))
    settle(qtbot, panel)
    panel.steps_table.selectRow(2)
    assert panel.load_step_settings() == ["Any operation"]
    assert anyop.param_values() == {"sigma": 3.0}

    # running the loaded settings again replaces that step, with the same settings
    panel.steps_table.selectRow(0)
    assert panel.load_step_settings() == ["Segment"]
    segment.run_button.native.click()
    wait_widget(qtbot, segment)
    assert "done -> A: nuclei (step nuclei)" in segment.status.value
    again = panel.session.approach("A").steps[0]
    assert again.id == "nuclei" and dict(again.params) == dict(nuclei.params)
    settle(qtbot, panel)
