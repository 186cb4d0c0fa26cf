"""An OME-Zarr image with an ``angle`` axis (written by ome-zarr-py) in a real napari viewer:
one layer per channel with an angle slider; the Segment widget reads the angle the slider
shows, records it as ``store[angle=N]``, and the session reruns and exports exactly it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV05
from ome_zarr.writer import write_image
from widget_helpers import click, wait_widget

from napari_fbias._qt.segment_widget import SegmentWidget
from napari_fbias._qt.workspace import WorkspaceError
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.ops.segment import threshold
from napari_fbias.session.export.pipeline_inputs import pipeline_images
from napari_fbias.session.recompute import recompute_approach
from napari_fbias.session.to_pipeline import approach_to_pipeline

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

ANGLES = 4


def _blobs(angle: int) -> np.ndarray:
    """Two channels of 48x40 pixels: bright discs at places that depend on the angle."""
    rng = np.random.default_rng(angle)
    yy, xx = np.mgrid[:48, :40]
    img = rng.normal(100, 10, (2, 48, 40))
    for k in range(angle + 1):
        cy, cx = 8 + 10 * k, 8 + 7 * ((k * angle) % 4)
        img[0][(yy - cy) ** 2 + (xx - cx) ** 2 < 16] += 400
    img[1] = img[0][::-1]
    return img.clip(0, 65535).astype(np.uint16)


PIXELS = np.stack([_blobs(a) for a in range(ANGLES)])


def write_spim(root: Path) -> Path:
    group = zarr.open_group(str(root), mode="w", zarr_format=3)
    write_image(
        PIXELS,
        group,
        axes=[
            {"name": "angle", "type": "custom"},
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", "unit": "micrometer"},
            {"name": "x", "type": "space", "unit": "micrometer"},
        ],
        fmt=FormatV05(),
        scale_factors=[2],
        scale={"angle": 1.0, "c": 1.0, "y": 0.5, "x": 0.25},
    )
    return root


def test_an_op_reads_the_angle_the_slider_shows(
    qtbot: Any, make_napari_viewer: Any, tmp_path: Path
) -> None:
    root = write_spim(tmp_path / "spim.ome.zarr")
    viewer = make_napari_viewer()
    layers = viewer.open(str(root), plugin="napari-fbias")
    assert [ly.data[0].shape for ly in layers] == [(ANGLES, 48, 40)] * 2
    image = layers[0]
    k = viewer.dims.axis_labels.index("angle")
    assert viewer.dims.nsteps[k] == ANGLES
    widget = SegmentWidget(viewer)
    viewer.window.add_dock_widget(widget)
    widget.method.value = "segment.threshold"
    widget.inputs["image"].value = image
    # the angle is no t, c or z: the form shows the axes of one angle, no plane to pick
    assert widget.axes.value == "yx" and not widget.axes.enabled
    assert widget.present_axes == frozenset()

    viewer.dims.set_current_step(k, 2)
    click(widget.run_button)
    wait_widget(qtbot, widget)
    out = viewer.layers["A: threshold (angle 2)"]
    expected = threshold(read_ome_zarr(root, extra={"angle": 2}).data[0].compute())
    np.testing.assert_array_equal(out.data, expected)
    assert int(expected.max()) == 3  # three discs at angle 2
    assert not np.array_equal(expected, threshold(PIXELS[0, 0]))  # another angle differs
    # the result has no angle axis and lies on the image's y, x grid (napari aligns the
    # trailing dimensions): same world extent along y and x
    assert out.data.shape == (48, 40) and out.metadata["fbias"]["extra"] == {"angle": 2}
    np.testing.assert_allclose(out.extent.world[:, -2:], image.extent.world[:, -2:])
    np.testing.assert_allclose(out.scale, (0.5, 0.25))

    rec = widget.workspace.recorder
    (step,) = rec.active.steps
    read = step.inputs["image"]
    assert read.layer == image.name and dict(read.select) == {"c": 0}
    source = rec.session.image(read.image).source
    assert source.endswith("[angle=2]") and source == f"{root}[angle=2]"

    # another angle: its own result and step, the first one kept
    viewer.dims.set_current_step(k, 0)
    click(widget.run_button)
    wait_widget(qtbot, widget)
    assert "A: threshold (angle 2)" in viewer.layers
    np.testing.assert_array_equal(
        viewer.layers["A: threshold (angle 0)"].data, threshold(PIXELS[0, 0])
    )
    first, second = rec.active.steps
    assert rec.session.image(second.inputs["image"].image).source == f"{root}[angle=0]"
    assert rec.session.image(first.inputs["image"].image).source == f"{root}[angle=2]"

    # the session reruns each step on its angle, headless
    again = recompute_approach(rec.session, "A")
    np.testing.assert_array_equal(np.asarray(again[first.id].data), expected)
    np.testing.assert_array_equal(np.asarray(again[second.id].data), threshold(PIXELS[0, 0]))
    # the exported pipeline reads the recorded sources: exactly those angles
    pipeline = approach_to_pipeline(rec.session, "A")
    sources = {
        rec.session.image(i).source for i in pipeline_images(rec.session, "A", pipeline).values()
    }
    assert sources == {f"{root}[angle=2]", f"{root}[angle=0]"}

    # measuring angle 2's objects on the image while the slider shows angle 0 is refused
    with pytest.raises(WorkspaceError, match="different angles"):
        widget.workspace.run_op(
            "measure.regionprops",
            {"labels": viewer.layers["A: threshold (angle 2)"], "image": image},
            {},
        )


def test_the_run_pipeline_panel_runs_on_the_angle_the_slider_shows(
    make_napari_viewer: Any, tmp_path: Path
) -> None:
    from napari_fbias._qt.layer_axes import shown_extra
    from napari_fbias._qt.run_pipeline.inputs_model import layer_input

    root = write_spim(tmp_path / "spim.ome.zarr")
    viewer = make_napari_viewer()
    layers = viewer.open(str(root), plugin="napari-fbias")
    k = viewer.dims.axis_labels.index("angle")
    viewer.dims.set_current_step(k, 3)
    shown = shown_extra(layers[0], viewer.dims)
    assert shown == {"angle": 3}
    # a channel layer: the whole image of that angle, both channels
    value = layer_input(layers[0], "image", viewer.layers, extra=shown)
    assert value.axes == "cyx"
    np.testing.assert_array_equal(np.asarray(value.data), PIXELS[3])
    # with a channel layer missing, the source of exactly that angle
    viewer.layers.remove(layers[1])
    assert layer_input(layers[0], "image", viewer.layers, extra=shown) == f"{root}[angle=3]"


def test_tuning_annotations_are_cut_to_the_angle_shown(
    make_napari_viewer: Any, tmp_path: Path
) -> None:
    from napari_fbias._qt.tune_widget import annotations_of

    root = write_spim(tmp_path / "spim.ome.zarr")
    viewer = make_napari_viewer()
    image = viewer.open(str(root), plugin="napari-fbias")[0]
    painted = np.zeros((ANGLES, 48, 40), dtype=np.int32)
    painted[2, 5:9, 5:9] = 1
    painted[1, 20:25, 20:25] = 2
    labels = viewer.add_labels(painted, scale=image.scale)
    got = annotations_of(labels, image, {"angle": 2}).labels
    assert got.shape == (48, 40) and set(np.unique(got)) == {0, 1}
    points = viewer.add_points(
        np.array([[2, 10, 10], [0, 30, 30], [2, 40, 20]], float), scale=image.scale
    )
    pts = annotations_of(points, image, {"angle": 2}).points
    np.testing.assert_allclose(pts, [[10, 10], [40, 20]])
