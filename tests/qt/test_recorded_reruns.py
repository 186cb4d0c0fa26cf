"""A recorded approach IS a pipeline: exported and run headless, it gives the layers bit for bit.

Each test drives the widgets in a real viewer, exports the approach with
``approach_to_pipeline``, writes and reloads the pipeline file, runs it with
``Pipeline.run`` on the image's source file, and compares every output with
the layer (and table) the widgets produced.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import tifffile
from widget_helpers import add_image_file, add_sample, click, wait_job, wait_widget

from napari_fbias._qt.measure_widget import MeasureWidget
from napari_fbias._qt.segment_widget import SegmentWidget
from napari_fbias._qt.track_widget import TrackWidget
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io import samples
from napari_fbias.ops import cellpose_op
from napari_fbias.pipeline import Pipeline
from napari_fbias.session import approach_to_pipeline

pytestmark = pytest.mark.qt


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))


def rerun(ws: Any, tmp_path: Path, key: str = "A", **inputs: Any) -> tuple[Pipeline, Any]:
    """Export approach ``key``, write the file, load it back and run it headless."""
    pipeline = approach_to_pipeline(ws.recorder.session, key)
    path = pipeline.dump(tmp_path / f"approach_{key}.fbias.yaml")
    loaded = Pipeline.load(path)
    assert loaded.sha256() == pipeline.sha256()
    return loaded, loaded.run(**inputs)


def check_outputs(viewer: Any, ws: Any, pipeline: Pipeline, results: Any) -> None:
    """Every output equals the widgets' result, bit for bit (tables exactly)."""
    session = ws.recorder.session
    assert set(results) == set(pipeline.outputs)
    for name, decl in pipeline.outputs.items():
        _, step = session.find_step(decl.source)
        got = results[name]
        mine = ws.result(step.id).data
        if isinstance(got, pd.DataFrame):
            pd.testing.assert_frame_equal(got, mine, check_exact=True)
            if step.output_layer in viewer.layers:  # tracks
                layer = viewer.layers[step.output_layer]
                cols = ["track_id", "t", *[c for c in "zyx" if c in got.columns]]
                np.testing.assert_array_equal(layer.data, got[cols].to_numpy(np.float64))
        else:
            layer = viewer.layers[step.output_layer]
            assert got.dtype == layer.data.dtype and got.shape == layer.data.shape
            np.testing.assert_array_equal(got, layer.data)


def test_classical_recipe_and_measurements(
    qtbot: Any, make_napari_viewer: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "nuclei_2d")
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg)
    seg.settings["smoothing_sigma"].value = 2.0
    seg.settings["min_size"].value = 45
    seg.settings["edge_level"].value = 0.35
    click(seg.run_button)
    wait_widget(qtbot, seg)
    seg.settings["min_distance"].value = 4  # a re-run: the recorded step is replaced
    click(seg.run_button)
    wait_widget(qtbot, seg)
    meas = MeasureWidget(viewer)
    viewer.window.add_dock_widget(meas)
    meas.inputs["labels"].value = viewer.layers["A: nuclei"]
    meas.inputs["image"].value = viewer.layers["nuclei_2d"]
    click(meas.run_button)
    wait_widget(qtbot, meas)
    ws = get_workspace(viewer)
    source = samples.sample_path("nuclei_2d.ome.tif")
    pipeline, results = rerun(ws, tmp_path, image=str(source))
    assert [s.op for s in pipeline.steps] == ["segment.nuclei", "measure.regionprops"]
    assert pipeline.steps[0].params["min_distance"] == 4
    assert set(pipeline.outputs) == {"A_nuclei", "A_measurements"}
    check_outputs(viewer, ws, pipeline, results)
    assert results["A_measurements"]["label"].max() == viewer.layers["A: nuclei"].data.max()


def test_channels_planes_and_3d(qtbot: Any, make_napari_viewer: Any, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "cells_3d")
    ws = get_workspace(viewer)
    # 3D nuclei on the DAPI channel (anisotropic voxels) ...
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": viewer.layers["DAPI"]}, {}))
    # ... and a threshold of one plane of the membrane channel
    worker = ws.run_op(
        "segment.threshold",
        {"image": viewer.layers["Membrane"]},
        {"method": "li", "min_size": 10},
        select={"image": {"z": 12}},
    )
    assert wait_job(qtbot, worker).error is None
    assert viewer.layers["A: nuclei"].data.shape == (24, 128, 128)
    pipeline, results = rerun(ws, tmp_path, image=str(samples.sample_path("cells_3d.ome.tif")))
    ops = [s.op for s in pipeline.steps]
    assert ops.count("preprocess.select") >= 2  # the image is read at two different places
    check_outputs(viewer, ws, pipeline, results)


def write_movie_crop(path: Path) -> Path:
    img, _ = samples.load_spots_timelapse()
    crop = np.asarray(img.data[:8, :128, :128])
    meta = {"axes": "TYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "TimeIncrement": 2.0}
    tifffile.imwrite(path, crop, ome=True, metadata=meta)
    return path


def test_tracking_spots_and_labels(qtbot: Any, make_napari_viewer: Any, tmp_path: Path) -> None:
    movie = write_movie_crop(tmp_path / "spots.ome.tif")
    viewer = make_napari_viewer()
    (movie_layer,) = add_image_file(viewer, movie)
    track = TrackWidget(viewer)
    viewer.window.add_dock_widget(track)
    track.settings["search_range"].value = 5.0
    click(track.run_button)
    wait_widget(qtbot, track)
    ws = get_workspace(viewer)
    # labels over time: threshold every frame, then link the objects
    worker = ws.run_op(
        "segment.threshold", {"image": viewer.layers["spots"]}, {"method": "yen", "min_size": 4}
    )
    assert wait_job(qtbot, worker).error is None
    track.method.value = "track.track_labels"
    track.inputs["labels"].value = viewer.layers["A: threshold"]
    assert track.axes.value == "tyx"
    click(track.run_button)
    wait_widget(qtbot, track)
    assert "A: label tracks" in viewer.layers
    # spots found, shown as points, then linked from the points layer
    assert wait_job(qtbot, ws.run_op("track.locate_spots", {"image": movie_layer}, {})).step_id
    assert type(viewer.layers["A: spots"]).__name__ == "Points"
    worker = ws.run_op("track.link_spots", {"spots": viewer.layers["A: spots"]}, {"memory": 1})
    assert wait_job(qtbot, worker).output_layer == "A: tracks (2)"  # "A: tracks" is another op's
    pipeline, results = rerun(ws, tmp_path, image=str(movie))
    assert [s.op for s in pipeline.steps] == [
        "track.track_spots",
        "segment.threshold",
        "track.track_labels",
        "track.locate_spots",
        "track.link_spots",
    ]
    check_outputs(viewer, ws, pipeline, results)
    assert len(results["A_tracks"]) > 10


@pytest.fixture(scope="module")
def model_path() -> Path:
    from helpers.cellpose_model import build_test_model

    cache = os.environ.get("FBIAS_TEST_CACHE") or Path.home() / ".cache/napari-fbias/test-models"
    return build_test_model(cache)


def test_cellpose_with_rethreshold(
    qtbot: Any, make_napari_viewer: Any, tmp_path: Path, model_path: Path
) -> None:
    from helpers.cellpose_model import nuclei_image

    img, _ = nuclei_image((96, 96), 8, seed=5)
    tifffile.imwrite(tmp_path / "nuclei.tif", img)
    viewer = make_napari_viewer()
    add_image_file(viewer, tmp_path / "nuclei.tif")
    seg = SegmentWidget(viewer)
    viewer.window.add_dock_widget(seg)
    seg.method.value = "cellpose.segment"
    seg.settings["model"].value = str(model_path)
    cellpose_op.clear_cache()
    click(seg.run_button)
    wait_widget(qtbot, seg, timeout=120000)
    seg.settings["cellprob_threshold"].value = -1.0  # re-thresholded from cached flows
    click(seg.run_button)
    wait_widget(qtbot, seg, timeout=120000)
    assert cellpose_op.cache_info()["hits"] == 1
    assert viewer.layers["A: cellpose"].data.max() >= 3
    cellpose_op.clear_cache()  # the headless run computes everything afresh
    ws = get_workspace(viewer)
    pipeline, results = rerun(ws, tmp_path, image=str(tmp_path / "nuclei.tif"))
    assert pipeline.steps[0].params["cellprob_threshold"] == -1.0
    assert pipeline.steps[0].params["model"] == str(model_path)
    check_outputs(viewer, ws, pipeline, results)
    cellpose_op.clear_cache()
