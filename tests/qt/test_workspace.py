"""The Workspace in a real napari viewer: runs ops off the GUI thread and records them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from widget_helpers import add_sample, errors, journal, notifications, wait_job

from napari_fbias._qt.layer_axes import image_ref, layer_axes, layer_spacing
from napari_fbias._qt.workspace import Workspace, WorkspaceError, get_workspace
from napari_fbias.io import samples
from napari_fbias.session import load_session

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


@pytest.fixture
def ws(viewer: Any) -> Workspace:
    return get_workspace(viewer)


def test_one_workspace_per_viewer_and_an_untitled_session_on_demand(
    make_napari_viewer: Any, tmp_path: Path
) -> None:
    a, b = make_napari_viewer(), make_napari_viewer()
    assert get_workspace(a) is get_workspace(a)
    assert get_workspace(a) is not get_workspace(b)
    ws = get_workspace(a)
    assert ws.recorder is None
    seen: list[Any] = []
    ws.events.session_changed.connect(seen.append)
    rec = ws.ensure_session()
    assert seen == [rec]
    assert rec.session.active == "A"
    assert ws.ensure_session() is rec
    assert rec.journal_path.is_file()
    assert (tmp_path / "sessions") in rec.journal_path.parents
    assert [e["event"] for e in journal(rec)] == ["session_started", "approach_added"]


def test_run_records_the_step_and_shows_the_result_layer(qtbot: Any, viewer: Any, ws: Any) -> None:
    recorded: list[str] = []
    ws.events.step_recorded.connect(recorded.append)
    image = viewer.layers["nuclei_2d"]
    job = wait_job(qtbot, ws.run_op("segment.nuclei", {"image": image}, {"min_size": 40}))
    assert job.error is None
    assert recorded == [job.step_id] == ["nuclei"]
    layer = viewer.layers["A: nuclei"]
    assert type(layer).__name__ == "Labels"
    assert layer.data.dtype == np.int32 and layer.data.shape == (512, 512)
    assert layer.data.max() > 20
    assert tuple(layer.scale) == tuple(image.scale) == (0.65, 0.65)
    assert layer.metadata["fbias"] == {
        "step_id": "nuclei",
        "approach": "A",
        "op": "segment.nuclei",
        "axes": "yx",
        "spacing": [0.65, 0.65],
        "inputs": {"image": "nuclei_2d"},
    }
    (step,) = ws.recorder.active.steps
    assert step.op == "segment.nuclei" and step.output_layer == "A: nuclei"
    assert step.params["min_size"] == 40 and step.params["smoothing_sigma"] is None  # auto
    assert step.chosen["smoothing_sigma"] == 1.5  # what auto chose on the sample, recorded
    assert step.inputs["image"].image == "nuclei_2d"
    # the journal on disk has the image (with its source) and the step
    added = journal(ws.recorder, "image_added")[0]  # (a second one adds its checksum)
    assert added["image"]["source"] == str(samples.sample_path("nuclei_2d.ome.tif"))
    assert added["image"]["layers"] == {"nuclei_2d": {}}
    (rec_step,) = journal(ws.recorder, "step_recorded")
    assert rec_step["step"]["output_layer"] == "A: nuclei"


def test_rerun_replaces_layer_and_step_new_result_keeps_both(
    qtbot: Any, viewer: Any, ws: Any
) -> None:
    image = viewer.layers["nuclei_2d"]
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": image}, {}))
    layer = viewer.layers["A: nuclei"]
    first = np.array(layer.data)
    n_layers = len(viewer.layers)
    job = wait_job(qtbot, ws.run_op("segment.nuclei", {"image": image}, {"min_size": 400}))
    assert job.step_id == "nuclei"
    assert len(viewer.layers) == n_layers
    assert viewer.layers["A: nuclei"] is layer
    assert layer.data.max() < first.max()
    assert [s.params["min_size"] for s in ws.recorder.active.steps] == [400]
    (replaced,) = journal(ws.recorder, "step_replaced")
    assert replaced["tried"]["params"]["min_size"] is None  # the first run left it on auto
    assert replaced["tried"]["chosen"]["min_size"] == 30
    job = wait_job(qtbot, ws.run_op("segment.nuclei", {"image": image}, {}, new_result=True))
    assert job.output_layer == "A: nuclei (2)" and job.step_id == "nuclei_2"
    assert len(viewer.layers) == n_layers + 1
    assert [s.id for s in ws.recorder.active.steps] == ["nuclei", "nuclei_2"]
    np.testing.assert_array_equal(viewer.layers["A: nuclei (2)"].data, first)


def test_deleting_a_result_layer_removes_its_step(qtbot: Any, viewer: Any, ws: Any) -> None:
    image = viewer.layers["nuclei_2d"]
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": image}, {}))
    assert [s.id for s in ws.recorder.active.steps] == ["threshold"]
    viewer.layers.remove("A: threshold")
    qtbot.waitUntil(lambda: ws.recorder.active.steps == ())
    (removed,) = journal(ws.recorder, "layer_removed")
    assert removed["layer"] == "A: threshold"
    assert [s["id"] for s in removed["removed"]] == ["threshold"]
    assert ws.result("threshold") is None


def test_closing_the_viewer_keeps_the_record(qtbot: Any, viewer: Any, ws: Any) -> None:
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": viewer.layers["nuclei_2d"]}, {}))
    rec = ws.recorder
    folder = rec.folder
    viewer.close()  # removes every layer, then the window
    qtbot.waitUntil(lambda: ws.recorder is None, timeout=5000)  # the session is released
    assert ws.closed
    assert not journal(rec, "layer_removed")
    assert [s.id for s in load_session(folder).approach("A").steps] == ["threshold"]


def test_renaming_a_layer_is_followed_by_the_record(qtbot: Any, viewer: Any, ws: Any) -> None:
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": viewer.layers["nuclei_2d"]}, {}))
    viewer.layers["A: threshold"].name = "otsu nuclei"
    assert ws.recorder.active.steps[0].output_layer == "otsu nuclei"
    assert ws.recorder.layer_source("otsu nuclei").step == "threshold"


def test_op_error_is_notified_and_nothing_is_recorded(qtbot: Any, make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    viewer.add_image(np.full((32, 32), np.nan, dtype=np.float32), name="empty")
    ws = get_workspace(viewer)
    failed: list[str] = []
    ws.events.step_failed.connect(failed.append)
    with notifications() as seen:
        job = wait_job(qtbot, ws.run_op("segment.threshold", {"image": viewer.layers["empty"]}, {}))
        qtbot.waitUntil(lambda: bool(errors(seen)))
    assert job.step_id is None and "NaN" in job.error
    assert failed == [job.error]
    assert any("NaN" in m for m in errors(seen))
    assert [layer.name for layer in viewer.layers] == ["empty"]
    assert ws.recorder.active.steps == ()
    assert not journal(ws.recorder, "step_recorded") and not journal(ws.recorder, "image_added")


def test_a_run_that_cannot_start_raises_and_notifies(viewer: Any, ws: Any) -> None:
    image = viewer.layers["nuclei_2d"]
    with notifications() as seen:
        with pytest.raises(WorkspaceError, match="choose a layer for 'image'"):
            ws.run_op("segment.nuclei", {}, {})
        with pytest.raises(WorkspaceError, match="min_size"):
            ws.run_op("segment.nuclei", {"image": image}, {"min_size": -5})
        with pytest.raises(WorkspaceError, match="needs labels data"):
            ws.run_op("segment.expand_labels", {"labels": image}, {})
        with pytest.raises(WorkspaceError, match="unknown operation"):
            ws.run_op("segment.nucle", {}, {})
    assert len(errors(seen)) == 4
    assert "choose a layer" in errors(seen)[0]
    assert errors(seen)[1] == "Nuclei: 'min_size' -5 is below the minimum 0"
    assert ws.recorder is None  # nothing was started, nothing recorded
    assert "A: nuclei" not in viewer.layers


def test_cancel_discards_the_result(qtbot: Any, viewer: Any, ws: Any) -> None:
    worker = ws.run_op("segment.nuclei", {"image": viewer.layers["nuclei_2d"]}, {})
    ws.cancel(worker)  # before the result reaches the GUI thread
    job = wait_job(qtbot, worker)
    assert job.cancelled and job.step_id is None and job.error is None
    assert "A: nuclei" not in viewer.layers
    assert ws.recorder.active.steps == ()
    assert not ws.busy


def test_plain_layer_axes_can_be_corrected(qtbot: Any, make_napari_viewer: Any) -> None:
    viewer = make_napari_viewer()
    movie = np.zeros((3, 40, 40), np.uint16)
    for t in range(3):
        movie[t, 5 + 8 * t : 15 + 8 * t, 10:20] = 1000
    layer = viewer.add_image(movie, name="movie")
    assert layer_axes(layer) == "zyx"  # guessed from 3 dimensions
    ws = get_workspace(viewer)
    with pytest.raises(WorkspaceError, match="do not fit"):
        ws.run_op("segment.threshold", {"image": layer}, {}, axes="yx")
    job = wait_job(qtbot, ws.run_op("segment.threshold", {"image": layer}, {}, axes="tyx"))
    assert job.error is None
    assert layer.metadata["axes"] == "tyx" and layer_axes(layer) == "tyx"
    out = viewer.layers["A: threshold"]
    assert out.metadata["fbias"]["axes"] == "tyx"
    # each frame is thresholded on its own: one object per frame, ids restart
    assert [int(out.data[t].max()) for t in range(3)] == [1, 1, 1]
    (img,) = ws.recorder.session.images
    assert (img.axes, img.shape, img.source) == ("tyx", (3, 40, 40), "")


def test_channel_layers_map_to_their_channel_and_pixel_size(
    qtbot: Any, make_napari_viewer: Any
) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "cells_3d")
    membrane = viewer.layers["Membrane"]
    assert layer_axes(membrane) == "zyx"
    assert layer_spacing(membrane) == (1.0, 0.3, 0.3)
    ref, sel = image_ref(membrane, "image")
    assert (ref.name, ref.axes, sel) == ("cells_3d", "czyx", {"c": 1})
    gt_ref, gt_sel = image_ref(viewer.layers["ground truth"], "labels")
    assert (gt_ref.kind, gt_ref.source, gt_sel) == ("labels", "", {})
    ws = get_workspace(viewer)
    worker = ws.run_op("segment.threshold", {"image": membrane}, {}, select={"image": {"z": 12}})
    job = wait_job(qtbot, worker)
    assert job.error is None
    out = viewer.layers["A: threshold"]
    assert out.data.shape == (128, 128) and out.metadata["fbias"]["axes"] == "yx"
    assert tuple(out.scale) == (0.3, 0.3)
    (step,) = ws.recorder.active.steps
    assert step.inputs["image"].image == "cells_3d"
    assert dict(step.inputs["image"].select) == {"c": 1, "z": 12}


def test_open_session_reopens_images_and_steps(
    qtbot: Any, viewer: Any, ws: Any, make_napari_viewer: Any
) -> None:
    rec = ws.start_session(title="Nuclei count", user="Ann", question="How many?")
    rec.add_approach("classical", "Bob")
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": viewer.layers["nuclei_2d"]}, {}))
    folder = rec.folder
    ws.close_session()
    assert ws.recorder is None
    other = make_napari_viewer()
    ws2 = get_workspace(other)
    worker = ws2.open_session(folder, analysts=["Cy"])
    job = worker.fbias_job
    qtbot.waitUntil(lambda: job.done, timeout=60000)
    assert job.error is None and job.problems == []
    rec2 = ws2.recorder
    assert rec2 is job.recorder
    assert rec2.session.title == "Nuclei count"
    assert [s.id for s in rec2.session.approach("A").steps] == ["nuclei"]
    assert [layer.name for layer in other.layers] == ["nuclei_2d", "A: nuclei"]  # result too
    np.testing.assert_array_equal(
        other.layers["A: nuclei"].data, np.asarray(viewer.layers["A: nuclei"].data)
    )
    np.testing.assert_array_equal(
        np.asarray(other.layers["nuclei_2d"].data), np.asarray(viewer.layers["nuclei_2d"].data)
    )
    assert rec2.layer_source("nuclei_2d").image == "nuclei_2d"
    # new runs go on recording into the reopened session
    job = wait_job(qtbot, ws2.run_op("segment.threshold", {"image": other.layers["nuclei_2d"]}, {}))
    assert job.step_id == "threshold"
    assert journal(rec2)[-1]["event"] == "step_recorded"


def test_manifest_widgets_open_through_napari(make_napari_viewer: Any) -> None:
    from napari_fbias._qt.measure_widget import MeasureWidget
    from napari_fbias._qt.op_widget import OperationWidget
    from napari_fbias._qt.open_widget import OpenWidget
    from napari_fbias._qt.segment_widget import SegmentWidget
    from napari_fbias._qt.track_widget import TrackWidget

    viewer = make_napari_viewer()
    expected = {
        "Segment": SegmentWidget,
        "Track": TrackWidget,
        "Measure": MeasureWidget,
        "Open OME-Zarr / URL": OpenWidget,
        "Any operation": OperationWidget,
    }
    for name, cls in expected.items():
        _, widget = viewer.window.add_plugin_dock_widget("napari-fbias", name)
        assert isinstance(widget, cls)
        assert widget.viewer is viewer  # not napari's proxy: one workspace per viewer
        if hasattr(widget, "workspace"):
            assert widget.workspace is get_workspace(viewer)
