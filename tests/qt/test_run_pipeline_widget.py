"""The "Run pipeline" panel in a real napari viewer.

The guarantee under test: the panel gives the same labels (bit for bit) and
the same tables as ``Pipeline.run`` / ``fbias run`` on the same data; an
invalid or unsafe pipeline file shows all its problems and cannot run; edits
are validated and saved as a new file.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from widget_helpers import add_sample, errors, notifications

import pipeline_testops as testops
from napari_fbias._qt.layer_axes import LayerAxesError
from napari_fbias._qt.run_pipeline.inputs_model import layer_input
from napari_fbias._qt.run_pipeline.panel import RunPipelineWidget
from napari_fbias._qt.run_pipeline.run_model import pipeline_job
from napari_fbias.io import samples
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch

pytestmark = pytest.mark.qt

NUCLEI = """\
fbias_pipeline: 1
name: nuclei-classical
description: classical nuclei recipe, then measurements
inputs:
  image: {kind: image}
steps:
  - id: nuclei
    op: segment.nuclei
    inputs: {image: image}
    params: {smoothing_sigma: 1.5, min_size: 30}
  - id: props
    op: measure.regionprops
    inputs: {labels: nuclei, image: image}
outputs:
  nuclei: {from: nuclei}
  props: {from: props}
"""

BROKEN = """\
fbias_pipeline: 1
name: broken
inputs:
  image: {kind: image}
steps:
  - id: smooth
    op: preprocess.gaussian
    inputs: {image: image}
    params: {sigma: 80.0}
  - id: nuclei
    op: segment.threshhold
    inputs: {image: smooth}
outputs:
  nuclei: {from: nuclei}
  extra: {from: nowhere}
"""

UNSAFE = """\
fbias_pipeline: 1
name: unsafe
inputs:
  image: {kind: image}
steps:
  - id: smooth
    op: preprocess.gaussian
    inputs: {image: image}
    params: {sigma: !!python/object/apply:os.system ["touch {marker}"]}
outputs:
  smooth: {from: smooth}
"""


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def nuclei_file(tmp_path: Path) -> Path:
    path = tmp_path / "nuclei.fbias.yaml"
    path.write_text(NUCLEI, encoding="utf-8")
    return path


def panel_for(
    make_napari_viewer: Any, sample: str | None = "nuclei_2d", *, docked: bool = False
) -> tuple[Any, Any]:
    viewer = make_napari_viewer()
    if sample:
        add_sample(viewer, sample)
    if docked:  # as Plugins > napari-fbias > Run pipeline does (napari hands over a proxy)
        _, panel = viewer.window.add_plugin_dock_widget("napari-fbias", "Run pipeline")
        assert isinstance(panel, RunPipelineWidget) and panel.viewer is viewer
        return viewer, panel
    return viewer, RunPipelineWidget(viewer)


def wait_idle(qtbot: Any, panel: RunPipelineWidget, timeout: int = 60000) -> None:
    qtbot.waitUntil(lambda: not panel.busy, timeout=timeout)


def run_clicked(qtbot: Any, panel: RunPipelineWidget) -> None:
    assert panel.run_button.isEnabled()
    panel.run_button.click()
    assert panel.busy
    wait_idle(qtbot, panel)


def features_table(layer: Any) -> pd.DataFrame:
    return layer.features.drop(columns="index").reset_index(drop=True)


# --- run on a layer ----------------------------------------------------------------------


def test_run_on_the_image_layer_equals_pipeline_run(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path
) -> None:
    viewer, panel = panel_for(make_napari_viewer, docked=True)
    panel.file_edit.value = nuclei_file  # as the file picker / path field does
    assert panel.pipeline is not None and panel.problems == []
    assert panel.run_button.isEnabled() and panel.problems_box.isHidden()
    tree = panel.steps_view.tree
    assert [tree.topLevelItem(i).text(0) for i in range(tree.topLevelItemCount())] == [
        "nuclei",
        "props",
    ]
    assert tree.topLevelItem(1).text(1) == "Regionprops"
    assert "labels \u2190 nuclei" in tree.topLevelItem(1).text(2)
    # only image layers are offered for the image input (not the ground-truth labels)
    picker = panel.inputs_form["layer_image"]
    assert list(picker.choices) == [viewer.layers["nuclei_2d"]]
    assert picker.value is viewer.layers["nuclei_2d"]
    assert panel.inputs_form["axes_image"].native.placeholderText() == "yx"

    run_clicked(qtbot, panel)

    img, _ = samples.load_nuclei_2d()
    expected = Pipeline.load(nuclei_file).run(img)
    labels = viewer.layers["nuclei-classical: nuclei"]
    assert type(labels).__name__ == "Labels"
    assert labels.data.dtype == expected["nuclei"].dtype
    np.testing.assert_array_equal(labels.data, expected["nuclei"])
    assert tuple(labels.scale) == pytest.approx((0.65, 0.65))  # overlays the image
    pd.testing.assert_frame_equal(features_table(labels), expected["props"])
    pd.testing.assert_frame_equal(panel.tables["nuclei-classical: props"], expected["props"])
    assert "area_physical" in expected["props"]  # the pixel size reached the measurement
    assert panel.table_view.table.equals(expected["props"])
    assert panel.progress_bar.value() == 2 and panel.progress_bar.maximum() == 2

    # running again replaces the results, it does not add layers
    n_layers = len(viewer.layers)
    run_clicked(qtbot, panel)
    assert len(viewer.layers) == n_layers
    assert viewer.layers["nuclei-classical: nuclei"] is labels
    np.testing.assert_array_equal(labels.data, expected["nuclei"])


def test_editing_a_setting_makes_a_new_validated_pipeline_and_changes_the_result(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path, tmp_path: Path
) -> None:
    viewer, panel = panel_for(make_napari_viewer)
    loaded = panel.load(nuclei_file)
    panel.steps_view.select_step("nuclei")
    min_size = panel.steps_view.param_widget("min_size")
    assert min_size.value == 30 and min_size.max == 100000  # the op's bounds
    with pytest.raises(ValueError, match="outside of the allowed range"):
        panel.steps_view.param_widget("edge_level").value = 1.5  # widgets enforce bounds

    min_size.value = 400  # as a user typing in the spin box
    edited = panel.pipeline
    assert edited is not loaded and loaded.step("nuclei").params["min_size"] == 30
    assert edited.step("nuclei").params["min_size"] == 400
    assert edited.problems() == [] and panel.edited
    assert "(edited)" in panel.name_label.text()

    run_clicked(qtbot, panel)
    img, _ = samples.load_nuclei_2d()
    got = viewer.layers["nuclei-classical: nuclei"].data
    np.testing.assert_array_equal(got, edited.run(img)["nuclei"])
    assert got.max() < loaded.run(img)["nuclei"].max()  # fewer nuclei pass 400 pixels

    # a value the validator refuses is not taken and the widget shows the old one again
    with notifications() as seen:
        assert not panel.set_param("nuclei", "edge_level", 2.0)
        assert not panel.set_param("nuclei", "threshold_method", "otsuu")
    assert panel.pipeline is edited
    assert any("edge_level" in m and "maximum" in m for m in errors(seen))
    assert any("otsuu" in m for m in errors(seen))
    assert panel.steps_view.param_widget("min_size").value == 400

    # Save as: a new file, atomically; never over the delivered file
    original = nuclei_file.read_text(encoding="utf-8")
    assert panel.save_as(nuclei_file, overwrite=True) is None
    assert nuclei_file.read_text(encoding="utf-8") == original
    out = panel.save_as(tmp_path / "nuclei-edited")
    assert out == tmp_path / "nuclei-edited.fbias.yaml"
    again = Pipeline.load(out)
    assert again.sha256() == edited.sha256()
    prov = yaml.safe_load(out.read_text(encoding="utf-8"))["provenance"]["source"]
    assert prov["edited_from"]["sha256"] == loaded.sha256()
    assert prov["edits"] == [{"step": "nuclei", "setting": "min_size", "from": 30, "to": 400}]
    assert panel.save_as(out) is None  # exists: refused without overwrite
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []

    # a text field (a list of properties) is read when editing ends
    panel.steps_view.select_step("props")
    props = panel.steps_view.param_widget("properties")
    props.value = "area, centroid"
    assert panel.pipeline is edited  # not per keystroke
    props.native.editingFinished.emit()
    assert panel.pipeline.step("props").params["properties"] == ("area", "centroid")
    assert panel.edits[("props", "properties")][1] == ("area", "centroid")


# --- files that cannot run ---------------------------------------------------------------


def test_invalid_pipeline_lists_every_problem_and_cannot_run(
    make_napari_viewer: Any, tmp_path: Path
) -> None:
    viewer, panel = panel_for(make_napari_viewer)
    path = tmp_path / "broken.fbias.yaml"
    path.write_text(BROKEN, encoding="utf-8")
    with notifications() as seen:
        panel.file_edit.value = path
    text = panel.problems_box.toPlainText()
    assert not panel.problems_box.isHidden()
    assert "3 problems" in text
    assert "step 'smooth', params.sigma: 80.0 is above the maximum 50.0" in text
    assert "segment.threshhold" in text and "segment.threshold" in text  # suggests the fix
    assert "nowhere" in text
    assert errors(seen)
    assert not panel.run_button.isEnabled() and not panel.batch_button.isEnabled()
    assert panel.steps_view.tree.topLevelItemCount() == 2  # steps are shown all the same
    assert panel.run(viewer.layers["nuclei_2d"]) is None
    assert "nuclei" not in " ".join(layer.name for layer in viewer.layers if ":" in layer.name)

    # a file whose only problem is a setting becomes runnable once it is fixed here
    path.write_text(
        BROKEN.replace("segment.threshhold", "segment.threshold").replace(
            "  extra: {from: nowhere}\n", ""
        ),
        encoding="utf-8",
    )
    panel.load(path)
    assert len(panel.problems) == 1 and not panel.run_button.isEnabled()
    panel.steps_view.select_step("smooth")
    panel.steps_view.param_widget("sigma").value = 2.0
    assert panel.problems == [] and panel.run_button.isEnabled()
    assert panel.problems_box.isHidden()


def test_python_tag_yaml_is_refused(make_napari_viewer: Any, tmp_path: Path) -> None:
    _, panel = panel_for(make_napari_viewer, sample=None)
    marker = tmp_path / "pwned"
    path = tmp_path / "unsafe.fbias.yaml"
    path.write_text(UNSAFE.replace("{marker}", str(marker)), encoding="utf-8")
    panel.load(path)
    assert panel.pipeline is None
    assert "!!python/object/apply:os.system is not allowed" in panel.problems_box.toPlainText()
    assert not panel.run_button.isEnabled() and not panel.save_button.isEnabled()
    assert panel.steps_view.tree.topLevelItemCount() == 0
    assert not marker.exists()


# --- inputs: axes and channels -----------------------------------------------------------


@pytest.mark.parametrize("typo", ["xy", "zz"])
def test_axes_typo_is_said_under_the_field_without_a_notification(
    make_napari_viewer: Any, nuclei_file: Path, typo: str
) -> None:
    viewer, panel = panel_for(make_napari_viewer, sample=None)
    viewer.add_image(testops.make_blobs((48, 48), n=4, seed=3), name="plain")
    panel.load(nuclei_file)
    field = panel.inputs_form["axes_image"]
    problem = panel.inputs_form["problem_image"]
    with notifications() as seen:
        field.value = typo[:1]
        field.value = typo  # typed letter by letter: no exception, no toast
        assert problem.value.startswith(f"axes {typo!r} do not fit layer 'plain': ")
        assert problem.value.endswith("in that order (e.g. 'yx')")
        assert panel.run() is None
    assert not seen, [str(n.message) for n in seen]
    assert panel.status.value == f"Not run: {problem.value}"
    assert not panel.busy and "axes" not in viewer.layers["plain"].metadata
    field.value = "yx"
    assert problem.value == ""


def test_typed_axes_and_tracks_output(make_napari_viewer: Any, qtbot: Any, tmp_path: Path) -> None:
    viewer, panel = panel_for(make_napari_viewer, sample=None)
    movie = np.stack(
        [np.roll(testops.make_blobs((48, 48), n=4, seed=3), 2 * t, 1) for t in range(4)]
    )
    layer = viewer.add_image(movie, name="movie")
    path = tmp_path / "track.fbias.yaml"
    path.write_text(
        """\
fbias_pipeline: 1
name: tracking
inputs:
  image: {kind: image}
steps:
  - {id: objects, op: segment.threshold, inputs: {image: image}, params: {min_size: 5}}
  - {id: tracks, op: track.track_labels, inputs: {labels: objects}}
outputs:
  objects: {from: objects}
  tracks: {from: tracks}
""",
        encoding="utf-8",
    )
    panel.load(path)
    assert panel.inputs_form["axes_image"].native.placeholderText() == "zyx"  # a guess
    panel.inputs_form["axes_image"].value = "tczyx"
    with notifications() as seen:
        assert panel.run() is None
    assert not errors(seen)  # said under the axes field, not as a notification
    assert "'tczyx' do not fit" in panel.inputs_form["problem_image"].value
    assert panel.status.value.startswith("Not run: axes 'tczyx' do not fit")

    panel.inputs_form["axes_image"].value = "tyx"
    run_clicked(qtbot, panel)
    assert layer.metadata["axes"] == "tyx"  # the correction is kept with the layer
    expected = Pipeline.load(path).run((movie, "tyx"))
    np.testing.assert_array_equal(viewer.layers["tracking: objects"].data, expected["objects"])
    tracks = viewer.layers["tracking: tracks"]
    assert type(tracks).__name__ == "Tracks"
    want = expected["tracks"][["track_id", "t", "y", "x"]].to_numpy(dtype=float)
    np.testing.assert_allclose(tracks.data, want)
    assert tracks.data[:, 0].max() >= 1


def test_a_channel_layer_runs_with_the_whole_image(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    viewer, panel = panel_for(make_napari_viewer, sample="cells_3d")
    img, _ = samples.load_cells_3d()
    dapi = viewer.layers["DAPI"]
    value = layer_input(dapi, "image", viewer.layers)
    assert value.axes == "czyx" and value.spacing == pytest.approx(img.scale)
    np.testing.assert_array_equal(np.asarray(value.data), np.asarray(img.data))

    path = tmp_path / "membrane.fbias.yaml"
    path.write_text(
        """\
fbias_pipeline: 1
name: membrane
inputs:
  image: {kind: image, channel: 1}
steps:
  - {id: mask, op: segment.threshold, inputs: {image: image}}
outputs:
  mask: {from: mask}
""",
        encoding="utf-8",
    )
    panel.load(path)
    expected = Pipeline.load(path).run(img)["mask"]
    panel.run(dapi)  # the DAPI layer is chosen, the pipeline reads channel 1 of its image
    wait_idle(qtbot, panel)
    np.testing.assert_array_equal(viewer.layers["membrane: mask"].data, expected)

    # with a channel layer gone, the image is read from its source
    viewer.layers.remove("Membrane")
    source = layer_input(dapi, "image", viewer.layers)
    assert source == img.source
    np.testing.assert_array_equal(pipeline_job(panel.pipeline, {"image": source})["mask"], expected)
    with pytest.raises(LayerAxesError):
        layer_input(dapi, "image", viewer.layers, axes="tyx")


# --- batch --------------------------------------------------------------------------------


def result_files(folder: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for stem in sorted(p.name for p in folder.iterdir() if p.is_dir()):
        labels = read_ome_zarr(folder / stem / "result.ome.zarr").labels["nuclei"]
        out[stem] = (
            np.asarray(labels.data),
            pd.read_csv(folder / stem / "props.csv"),
        )
    return out


def test_batch_equals_fbias_run_and_is_never_written_into_inputs(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path, tmp_path: Path
) -> None:
    _, panel = panel_for(make_napari_viewer, sample=None)
    folder = samples.sample_dir() / "nuclei_batch"
    before = sorted(p.name for p in folder.iterdir())
    panel.load(nuclei_file)

    with notifications() as seen:
        assert panel.run_batch([str(folder)], folder / "results") is None
    assert any("inside the input" in m for m in errors(seen))
    assert not (folder / "results").exists()

    panel.batch_inputs.setPlainText(str(folder))
    panel.outdir_edit.value = tmp_path / "gui"
    panel.tabs.setCurrentIndex(1)
    panel.batch_button.click()
    assert panel.busy
    wait_idle(qtbot, panel)
    assert panel.report.summary().startswith("4 done, 0 skipped")
    assert (
        "4 done" in panel.summary.toPlainText()
        and str(tmp_path / "gui") in panel.summary.toPlainText()
    )
    assert panel.progress_bar.value() == 4

    cli = run_batch(Pipeline.load(nuclei_file), str(folder), tmp_path / "cli")
    assert cli.ok
    gui, ref = result_files(tmp_path / "gui"), result_files(tmp_path / "cli")
    assert list(gui) == ["nuclei_01", "nuclei_02", "nuclei_03", "nuclei_04"] == list(ref)
    for stem in gui:
        np.testing.assert_array_equal(gui[stem][0], ref[stem][0])
        assert gui[stem][0].max() > 5
        pd.testing.assert_frame_equal(gui[stem][1], ref[stem][1])
    assert sorted(p.name for p in folder.iterdir()) == before

    # running again skips the finished images
    panel.run_batch()
    wait_idle(qtbot, panel)
    assert panel.report.summary().startswith("0 done, 4 skipped")


def test_batch_reports_failures_and_can_be_cancelled(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path, tmp_path: Path
) -> None:
    _, panel = panel_for(make_napari_viewer, sample=None)
    data = tmp_path / "data"
    data.mkdir()
    for src in sorted((samples.sample_dir() / "nuclei_batch").iterdir())[:3]:
        shutil.copy(src, data / src.name)
    (data / "broken.tif").write_bytes(b"not a tiff at all")
    panel.load(nuclei_file)

    with notifications() as seen:
        panel.run_batch([str(data)], tmp_path / "out")
        wait_idle(qtbot, panel)
    assert panel.report.summary().startswith("3 done, 0 skipped (already finished), 1 failed")
    summary = panel.summary.toPlainText()
    assert "broken: failed: cannot open" in summary
    assert any("broken" in str(n.message) for n in seen)

    # Cancel: the image in progress is finished, the others are not started
    images = [str(p) for p in sorted(data.glob("nuclei_*"))]
    panel.run_batch(images, tmp_path / "cancelled")
    panel.cancel()
    wait_idle(qtbot, panel)
    summary = panel.summary.toPlainText()
    assert "cancelled after 1 of 3 images" in summary
    done = [p.name for p in (tmp_path / "cancelled").iterdir()]
    assert len(done) == 1 and (tmp_path / "cancelled" / done[0] / "run.json").is_file()
    assert panel.run_button.isEnabled() and not panel.cancel_button.isEnabled()


# --- the documented rerun path: File > Open an OME-TIFF, Run pipeline ----------------------


def test_ome_tiff_opened_with_napari_fbias_reruns_like_fbias_run(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path
) -> None:
    path = samples.sample_path("nuclei_2d.ome.tif")
    viewer, panel = panel_for(make_napari_viewer, sample=None)
    [layer] = viewer.open(str(path), plugin="napari-fbias")
    assert tuple(layer.scale) == pytest.approx((0.65, 0.65))
    panel.load(nuclei_file)
    assert panel.inputs_form["layer_image"].value is layer
    with notifications() as seen:
        run_clicked(qtbot, panel)
    assert not [n for n in seen if "pixel size" in str(n.message)]

    from napari_fbias.io.open import open_image

    expected = Pipeline.load(nuclei_file).run(open_image(path))  # what `fbias run` computes
    labels = viewer.layers["nuclei-classical: nuclei"]
    np.testing.assert_array_equal(labels.data, expected["nuclei"])
    table = panel.tables["nuclei-classical: props"]
    pd.testing.assert_frame_equal(table, expected["props"])
    assert "area_physical" in table.columns


def test_a_layer_that_lost_its_pixel_size_is_warned_about(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path
) -> None:
    path = samples.sample_path("nuclei_2d.ome.tif")
    viewer, panel = panel_for(make_napari_viewer, sample=None)
    [layer] = viewer.open(str(path), plugin="napari")  # napari's builtin reader: scale 1
    assert tuple(layer.scale) == (1.0, 1.0)
    panel.load(nuclei_file)
    with notifications() as seen:
        run_clicked(qtbot, panel)
    warned = [str(n.message) for n in seen if "pixel size" in str(n.message)]
    assert warned and str(path) in warned[0] and "napari-fbias" in warned[0]
    assert f"Note: layer {layer.name!r} has no pixel size" in panel.status.value


def test_batch_over_some_wells_of_a_plate(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path, tmp_path: Path
) -> None:
    from test_plate_batch import write_cell_plate

    plate = write_cell_plate(tmp_path / "screen.ome.zarr")  # written by ome-zarr-py
    _, panel = panel_for(make_napari_viewer, sample=None)
    panel.load(nuclei_file)
    tab = panel.batch_tab
    panel.batch_inputs.setPlainText(str(plate))
    panel.outdir_edit.value = tmp_path / "out"
    tab.wells.value = "B1, A2"
    tab.fields.value = "zero"
    with notifications() as seen:
        assert panel.run_batch() is None  # refused before anything runs, and says why
    assert any("Fields: whole numbers" in m for m in errors(seen))
    tab.fields.value = "1"
    panel.batch_button.click()
    wait_idle(qtbot, panel)
    assert panel.report.ok, panel.summary.toPlainText()
    assert [i.stem for i in panel.report.items] == ["screen_B1_f1", "screen_A2_f1"]
    summary = pd.read_csv(tmp_path / "out" / "screen_plate_summary.csv")
    assert list(summary["well"]) == ["B1", "A2"]


def test_a_plate_batch_in_a_session_puts_its_heat_map_in_the_report(
    make_napari_viewer: Any, qtbot: Any, nuclei_file: Path, tmp_path: Path
) -> None:
    from napari_fbias._qt.workspace import get_workspace
    from napari_fbias.session.export.report import render_report
    from test_plate_batch import write_cell_plate

    plate = write_cell_plate(tmp_path / "screen.ome.zarr")
    viewer, panel = panel_for(make_napari_viewer, sample=None)
    rec = get_workspace(viewer).start_session(title="screen", folder=tmp_path / "session")
    rec.add_approach("nuclei", "Marie")
    rec.set_result({"objects": 3})
    panel.load(nuclei_file)
    panel.batch_inputs.setPlainText(str(plate))
    panel.outdir_edit.value = tmp_path / "out"
    panel.batch_tab.fields.value = "0"
    panel.batch_button.click()
    wait_idle(qtbot, panel)
    assert panel.report.ok, panel.summary.toPlainText()
    assert "plate heat map of screen recorded in approach A" in panel.summary.toPlainText()
    result = rec.session.approach("A").result
    assert result["objects"] == 3, "the approach's other results stay"
    plate_result = result["plates"]["screen"]
    assert plate_result["rows"] == ["A", "B"] and plate_result["values"][1][1] is None
    html = render_report(rec.session)
    assert "<h3>Plates</h3>" in html and 'alt="Plate screen: ' in html
