"""OME-Zarr images with an extra axis (``angle``, NGFF type custom or none), written by
ome-zarr-py: each index opens as a ``tczyx`` image with the right pixels, scales, units and
labels, napari shows the extra axis as a slider of one layer per channel, and ``fbias run``
runs each index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image, write_labels

from napari_fbias.cli import main
from napari_fbias.io.errors import ExtraAxesError, UnsupportedAxesError
from napari_fbias.io.extra_axes import split_extra, with_extra
from napari_fbias.io.ome_zarr_read import list_extra_axes, read_ome_zarr
from napari_fbias.io.open import open_image
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.errors import BatchError
from napari_fbias.pipeline.inputs import Selection, expand_inputs, stem_of

ANGLES = 3
PIXELS = np.random.default_rng(7).integers(0, 1000, (ANGLES, 2, 32, 24)).astype(np.uint16)
MASKS = (PIXELS[:, 0] > 500).astype(np.uint8)


def write_angles(root: Path, version: str, *, typed: bool = True) -> Path:
    """An (angle, c, y, x) image with a label image (angle, y, x), by ome-zarr-py.

    ``typed=False`` removes the angle axis's type from the metadata afterwards
    (ome-zarr-py writes ``custom`` for an axis without one; the spec allows none).
    """
    fmt = FormatV04() if version == "0.4" else FormatV05()
    group = zarr.open_group(str(root), mode="w", zarr_format=fmt.zarr_format)
    angle = {"name": "angle", "type": "custom"}
    space = [{"name": a, "type": "space", "unit": "micrometer"} for a in "yx"]
    write_image(
        PIXELS,
        group,
        axes=[angle, {"name": "c", "type": "channel"}, *space],
        fmt=fmt,
        scale_factors=[2],
        scale={"angle": 1.0, "c": 1.0, "y": 0.5, "x": 0.25},
        axes_units={"y": "micrometer", "x": "micrometer"},
    )
    write_labels(MASKS, group, name="cells", axes=[angle, *space], fmt=fmt, scale_factors=[2])
    if not typed:
        meta = root / (".zattrs" if version == "0.4" else "zarr.json")
        doc = json.loads(meta.read_text())
        attrs = doc if version == "0.4" else doc["attributes"]["ome"]
        del attrs["multiscales"][0]["axes"][0]["type"]
        meta.write_text(json.dumps(doc))
    return root


@pytest.fixture(params=["0.4", "0.5"])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("typed", [True, False], ids=["custom", "untyped"])
def test_each_angle_opens_with_its_pixels_scales_units_and_labels(
    tmp_path: Path, version: str, typed: bool
) -> None:
    root = write_angles(tmp_path / "spim.ome.zarr", version, typed=typed)
    (axis,) = list_extra_axes(root)
    assert (axis.name, axis.size, axis.type) == ("angle", ANGLES, "custom" if typed else None)
    with pytest.raises(ExtraAxesError, match=r"'angle' \(3 indices: 0 to 2\).*\[angle=0\]"):
        read_ome_zarr(root)
    for i in range(ANGLES):
        img = read_ome_zarr(root, extra={"angle": i})
        assert img.axes == ("c", "y", "x") and img.shape == (2, 32, 24)
        np.testing.assert_array_equal(np.asarray(img.data), PIXELS[i])
        assert img.scales[0] == (1.0, 0.5, 0.25) and img.scales[1] == (1.0, 1.0, 0.5)
        assert img.units == (None, "micrometer", "micrometer")
        np.testing.assert_array_equal(np.asarray(img.levels[1]).shape, (2, 16, 12))
        assert img.metadata["extra_axes"][0] == {**axis.to_dict(), "index": i}
        assert img.source == f"{root}[angle={i}]" and img.name.endswith(f"(angle {i})")
        lab = img.labels["cells"]
        assert lab.axes == ("y", "x")
        np.testing.assert_array_equal(np.asarray(lab.data), MASKS[i])
        # the recorded source reopens exactly that index
        again = open_image(img.source)
        np.testing.assert_array_equal(np.asarray(again.data), PIXELS[i])
        assert again.source == img.source
    with pytest.raises(ExtraAxesError, match=r"angle 3 does not exist \(0 to 2\)"):
        read_ome_zarr(root, extra={"angle": 3})
    with pytest.raises(ExtraAxesError, match="no extra axis"):
        read_ome_zarr(root, extra={"angle": 0, "phase": 1})


def test_a_space_axis_of_unknown_name_stays_refused(tmp_path: Path) -> None:
    root = write_angles(tmp_path / "s.ome.zarr", "0.4")
    meta = root / ".zattrs"
    doc = json.loads(meta.read_text())
    doc["multiscales"][0]["axes"][0]["type"] = "space"
    meta.write_text(json.dumps(doc))
    with pytest.raises(UnsupportedAxesError, match="unsupported axis name") as info:
        read_ome_zarr(root)
    assert not isinstance(info.value, ExtraAxesError)


def test_the_source_suffix_is_parsed_in_one_place_and_survives_credentials() -> None:
    assert split_extra("/d/a.zarr[angle=2]") == ("/d/a.zarr", {"angle": 2})
    assert split_extra("/d/a.zarr") == ("/d/a.zarr", {})
    url = "https://h/a.zarr?token=abc"
    picked = with_extra(url, {"angle": 1234})
    assert picked == "https://h/a.zarr[angle=1234]?token=abc"
    assert split_extra(picked) == (url, {"angle": 1234})
    from napari_fbias.io.credentials import sanitize_uri

    assert sanitize_uri(picked) == "https://h/a.zarr[angle=1234]"  # no token, index kept
    assert stem_of("/d/spim.ome.zarr[angle=2]") == "spim_angle2"


def test_a_folder_named_like_the_suffix_is_a_folder(tmp_path: Path) -> None:
    odd = tmp_path / "x[angle=1]"
    odd.mkdir()
    assert split_extra(str(odd)) == (str(odd), {})


def test_fbias_run_runs_each_angle_and_a_selection(tmp_path: Path) -> None:
    root = write_angles(tmp_path / "spim.ome.zarr", "0.4")
    items = expand_inputs(root)
    assert [i.stem for i in items] == ["spim_angle0", "spim_angle1", "spim_angle2"]
    assert [i.source for i in items] == [f"{root}[angle={i}]" for i in range(ANGLES)]
    assert all(i.container == str(root) for i in items)
    chosen = expand_inputs(root, Selection.parse(extra="angle=0,2"))
    assert [i.stem for i in chosen] == ["spim_angle0", "spim_angle2"]
    with pytest.raises(BatchError, match="no angle=5"):
        expand_inputs(root, Selection.parse(extra="angle=5"))
    with pytest.raises(BatchError, match="name=indices"):
        Selection.parse(extra="angle")
    # one index named directly (as a session records it) is that index alone
    assert [i.stem for i in expand_inputs(f"{root}[angle=1]")] == ["spim_angle1"]

    pipe = tmp_path / "t.fbias.yaml"
    Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "threshold",
            "inputs": {"image": {"kind": "image"}},
            "steps": [{"id": "mask", "op": "segment.threshold", "inputs": {"image": "image"}}],
            "outputs": {"mask": {"from": "mask"}},
        }
    ).dump(pipe)
    out = tmp_path / "out"
    assert main(["run", str(pipe), str(root), "-o", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == [
        "spim_angle0",
        "spim_angle1",
        "spim_angle2",
    ]
    record = json.loads((out / "spim_angle1" / "run.json").read_text())
    assert f"{root}[angle=1]" in json.dumps(record)
    out2 = tmp_path / "out2"
    assert main(["run", str(pipe), str(root), "-o", str(out2), "--extra", "angle=2"]) == 0
    assert sorted(p.name for p in out2.iterdir() if p.is_dir()) == ["spim_angle2"]


def test_napari_shows_the_angle_axis_as_a_slider(make_napari_viewer, tmp_path: Path) -> None:
    from napari.layers import Image

    from napari_fbias._qt.layer_axes import (
        LayerAxesError,
        guess_axes,
        image_ref,
        layer_array,
        layer_axes,
        layer_extra,
        layer_shape,
        shown_extra,
    )
    from napari_fbias._reader import napari_get_reader

    root = write_angles(tmp_path / "spim.ome.zarr", "0.5")
    assert napari_get_reader(str(root)) is not None
    viewer = make_napari_viewer()
    layers = viewer.open(str(root), plugin="napari-fbias")
    images = [ly for ly in layers if ly.__class__.__name__ == "Image"]
    labels = [ly for ly in layers if ly.__class__.__name__ == "Labels"]
    # one layer per channel and one per label image, the angle a leading dimension
    assert len(images) == 2 and len(labels) == 1
    assert "angle" in viewer.dims.axis_labels
    k = viewer.dims.axis_labels.index("angle")
    assert viewer.dims.nsteps[k] == ANGLES
    axis = {"name": "angle", "size": ANGLES, "type": "custom", "unit": None}
    for channel, ly in enumerate(images):
        assert ly.multiscale and type(ly.data[0]).__module__.startswith("dask")
        assert ly.data[0].shape == (ANGLES, 32, 24) and ly.data[1].shape == (ANGLES, 16, 12)
        assert ly.axis_labels == ("angle", "y", "x")
        np.testing.assert_allclose(ly.scale, (1.0, 0.5, 0.25))
        assert ly.metadata["extra_axes"] == [axis] and ly.metadata["source"] == str(root)
        assert layer_extra(ly) == (("angle", ANGLES),)
        assert layer_axes(ly) == "yx" and layer_shape(ly) == (32, 24)
        for angle in range(ANGLES):
            got = layer_array(ly, {"angle": angle})
            np.testing.assert_array_equal(np.asarray(got), PIXELS[angle, channel])
        with pytest.raises(LayerAxesError, match="say which index of angle"):
            layer_array(ly)  # never a guess
    (lab,) = labels
    assert lab.data[0].shape == (ANGLES, 32, 24) and lab.metadata["extra_axes"] == [axis]
    np.testing.assert_array_equal(np.asarray(layer_array(lab, {"angle": 2})), MASKS[2])
    # the index an operation reads is the one the slider shows
    viewer.dims.set_current_step(k, 2)
    assert shown_extra(images[1], viewer.dims) == {"angle": 2}
    viewer.dims.set_current_step(k, 1)
    assert shown_extra(images[1], viewer.dims) == {"angle": 1}
    # what a step records for that index reopens exactly it
    ref, sel = image_ref(images[1], "image", shown_extra(images[1], viewer.dims))
    assert ref.source == f"{root}[angle=1]" and sel == {"c": 1}
    assert ref.name.endswith("(angle 1)") and ref.shape == (2, 32, 24)
    np.testing.assert_array_equal(np.asarray(open_image(ref.source).data), PIXELS[1])
    with pytest.raises(LayerAxesError, match="angle 3 does not exist"):
        image_ref(images[1], "image", {"angle": 3})
    lref, _ = image_ref(lab, "labels", {"angle": 2})
    assert lref.source == f"{root}/labels/cells[angle=2]"
    np.testing.assert_array_equal(np.asarray(open_image(lref.source).data), MASKS[2])
    # a layer whose axis labels name another axis is not guessed as t or z
    plain = Image(np.zeros((3, 8, 8)), axis_labels=("angle", "y", "x"))
    with pytest.raises(LayerAxesError, match="'angle', which is not t, c, z, y or x"):
        guess_axes(plain)
    assert guess_axes(Image(np.zeros((3, 8, 8)))) == "zyx"
