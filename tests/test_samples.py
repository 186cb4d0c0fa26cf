"""The bundled sample files: found as package resources, equal to a fresh regeneration,
loaded with the right metadata, valid OME-Zarr, and shown by napari's sample menu."""

from __future__ import annotations

import importlib.resources
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_fbias.io import samples, synth
from napari_fbias.io.errors import FbiasIOError
from napari_fbias.io.image import MultiscaleImage

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "make_sample_data.py"


@pytest.fixture(scope="module")
def make_script():
    spec = importlib.util.spec_from_file_location("make_sample_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- where the files are -------------------------------------------------------------------
def test_sample_files_are_package_resources():
    root = importlib.resources.files("napari_fbias") / "sample_data"
    assert samples.sample_dir() == Path(str(root))
    for info in samples.list_samples():
        for f in info.files:
            assert (root / f).is_file() or (root / f).is_dir(), f
            assert samples.sample_path(f).exists()
        assert samples.sample_path(info.name) == samples.sample_dir() / info.files[0]


def test_list_samples_gives_name_description_path():
    listed = samples.list_samples()
    assert [s.name for s in listed] == [
        "nuclei_2d",
        "nuclei_batch",
        "spots_timelapse",
        "cells_3d",
        "nuclei_multiscale",
    ]
    for s in listed:
        d = s.to_dict()
        assert set(d) == {"name", "description", "path"}
        assert len(d["description"]) > 20
        assert Path(d["path"]).exists()


def test_sample_data_is_small():
    total = sum(p.stat().st_size for p in samples.sample_dir().rglob("*") if p.is_file())
    assert total < 6 * 1024**2


def test_unknown_or_outside_names_are_refused():
    with pytest.raises(samples.SampleNotFoundError, match="no sample file 'nuclei_3d'.*nuclei_2d"):
        samples.sample_path("nuclei_3d")
    with pytest.raises(samples.SampleNotFoundError, match="not a file of the sample data folder"):
        samples.sample_path("../pyproject.toml")
    assert issubclass(samples.SampleNotFoundError, FbiasIOError)
    assert issubclass(samples.SampleNotFoundError, FileNotFoundError)


def test_missing_and_broken_files_give_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(samples, "sample_dir", lambda: tmp_path)
    with pytest.raises(samples.SampleNotFoundError, match="nuclei_2d.ome.tif"):
        samples.load_nuclei_2d()
    # a plain TIFF (no OME-XML) where an OME-TIFF is expected
    tifffile.imwrite(tmp_path / "nuclei_2d.ome.tif", np.zeros((8, 8), np.uint16), ome=False)
    with pytest.raises(samples.SampleDataError, match="is not an OME-TIFF"):
        samples.load_nuclei_2d()
    (tmp_path / "cells_3d.ome.tif").write_bytes(b"not a tiff at all")
    (tmp_path / "cells_3d_labels.ome.tif").write_bytes(b"")
    with pytest.raises(samples.SampleDataError, match="cannot read sample file .*cells_3d"):
        samples.load_cells_3d()


def test_wrong_axes_in_a_sample_file_are_reported(tmp_path, monkeypatch, make_script):
    monkeypatch.setattr(samples, "sample_dir", lambda: tmp_path)
    make_script.write_ome_tiff(
        tmp_path / "nuclei_2d.ome.tif",
        np.zeros((2, 8, 8), np.uint16),
        "zyx",
        scale={"z": 1.0, "y": 1.0, "x": 1.0},
        channel_names=["DAPI"],
    )
    with pytest.raises(samples.SampleDataError, match="expected axes 'yx'.*'zyx'"):
        samples.load_nuclei_2d()


# --- shipped files == fresh regeneration, with the right metadata --------------------------
def test_nuclei_2d_sample_equals_generator():
    img, labels = samples.load_nuclei_2d()
    exp_img, exp_labels = synth.make_nuclei_2d(**samples.SAMPLES["nuclei_2d"].params)
    assert isinstance(img, MultiscaleImage)
    np.testing.assert_array_equal(np.asarray(img.data), exp_img)
    np.testing.assert_array_equal(labels, exp_labels)
    assert img.axes == ("y", "x") and img.dtype == np.uint16 and labels.dtype == np.uint16
    assert img.scale == (0.65, 0.65)
    assert img.units == ("micrometer", "micrometer")
    assert [c.name for c in img.channels] == ["DAPI"]
    lo, hi = img.channels[0].window
    assert exp_img.min() == lo < hi < exp_img.max()
    assert img.source.endswith("nuclei_2d.ome.tif")
    # the TIFF also carries a plain resolution tag for non-OME readers
    with tifffile.TiffFile(samples.sample_path("nuclei_2d")) as tif:
        page = tif.pages[0]
        assert page.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        num, den = page.tags["XResolution"].value
        assert abs(1e4 / (num / den) - 0.65) < 1e-6  # pixels per cm -> um per pixel


def test_nuclei_batch_equals_generator():
    pairs = samples.load_nuclei_batch()
    params = samples.SAMPLES["nuclei_batch"].params
    assert len(pairs) == len(params["seed"]) == 4
    seen = set()
    for (img, labels), seed in zip(pairs, params["seed"], strict=True):
        exp_img, exp_labels = synth.make_nuclei_2d(params["shape"], params["n_nuclei"], seed)
        np.testing.assert_array_equal(np.asarray(img.data), exp_img)
        np.testing.assert_array_equal(labels, exp_labels)
        assert img.shape == (256, 256) and img.scale == (0.65, 0.65)
        seen.add(exp_img.tobytes())
    assert len(seen) == 4
    names = [p.name for p, _ in samples.nuclei_batch_paths()]
    assert names == [p.name for _, p in samples.nuclei_batch_paths()]
    assert sorted(p.name for p in samples.sample_path("nuclei_batch").iterdir()) == names


def test_spots_sample_equals_generator():
    img, tracks = samples.load_spots_timelapse()
    exp_movie, exp_tracks = synth.make_spots_timelapse(**samples.SAMPLES["spots_timelapse"].params)
    np.testing.assert_array_equal(np.asarray(img.data), exp_movie)
    pd.testing.assert_frame_equal(tracks, exp_tracks)
    assert img.axes == ("t", "y", "x")
    assert img.scale == (2.0, 0.2, 0.2)
    assert img.units == ("second", "micrometer", "micrometer")


def test_cells_3d_sample_equals_generator():
    img, labels = samples.load_cells_3d()
    exp_img, exp_labels = synth.make_cells_3d(**samples.SAMPLES["cells_3d"].params)
    np.testing.assert_array_equal(np.asarray(img.data), exp_img)
    np.testing.assert_array_equal(labels, exp_labels)
    assert img.axes == ("c", "z", "y", "x")
    assert img.scale == (1.0, 1.0, 0.3, 0.3)
    assert img.units == (None, "micrometer", "micrometer", "micrometer")
    assert [c.name for c in img.channels] == ["DAPI", "Membrane"]
    assert [c.color for c in img.channels] == ["00FFFF", "FF00FF"]
    # OME-XML as written, for other readers
    with tifffile.TiffFile(samples.sample_path("cells_3d")) as tif:
        assert tif.is_ome and tif.series[0].axes == "CZYX"
        assert 'PhysicalSizeZ="1.0"' in tif.ome_metadata
        assert 'Name="Membrane"' in tif.ome_metadata


def test_multiscale_zarr_equals_generator_and_is_ngff_04():
    zarr = pytest.importorskip("zarr")
    path = samples.nuclei_multiscale_path()
    params = {
        k: v for k, v in samples.SAMPLES["nuclei_multiscale"].params.items() if k != "n_levels"
    }
    exp_img, exp_labels = synth.make_nuclei_2d(**params)
    group = zarr.open_group(path, mode="r")
    assert group.metadata.zarr_format == 2
    attrs = json.loads((path / ".zattrs").read_text())
    ms = attrs["multiscales"][0]
    assert ms["version"] == "0.4"
    assert [d["path"] for d in ms["datasets"]] == ["0", "1", "2"]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    assert scales == [[0.65, 0.65], [1.3, 1.3], [2.6, 2.6]]
    assert [a["unit"] for a in ms["axes"]] == ["micrometer", "micrometer"]
    (channel,) = attrs["omero"]["channels"]
    assert channel["label"] == "DAPI" and len(channel["color"]) == 6
    assert channel["window"]["start"] < channel["window"]["end"] <= 65535
    np.testing.assert_array_equal(group["0"][:], exp_img)
    assert [group[str(i)].shape for i in range(3)] == [(512, 512), (256, 256), (128, 128)]
    assert group["0"].chunks == (256, 256)
    np.testing.assert_array_equal(group["labels/ground_truth/0"][:], exp_labels)
    assert group["labels/ground_truth/2"].shape == (128, 128)
    assert json.loads((path / "labels" / ".zattrs").read_text()) == {"labels": ["ground_truth"]}
    label_attrs = json.loads((path / "labels" / "ground_truth" / ".zattrs").read_text())
    assert "image-label" in label_attrs
    n_files = sum(1 for p in path.rglob("*") if p.is_file())
    assert n_files < 40


def test_multiscale_zarr_validates_with_ome_zarr_models():
    zarr = pytest.importorskip("zarr")
    v04 = pytest.importorskip("ome_zarr_models.v04")
    path = samples.nuclei_multiscale_path()
    image = v04.Image.from_zarr(zarr.open_group(path, mode="r"))
    assert len(image.attributes.multiscales[0].datasets) == 3
    label = v04.ImageLabel.from_zarr(zarr.open_group(path / "labels" / "ground_truth", mode="r"))
    assert label.attributes.image_label.source.image == "../../"


def test_multiscale_sample_opens_through_open_image():
    pytest.importorskip("napari_fbias.io.open")
    img = samples.load_nuclei_multiscale()
    assert len(img.levels) == 3 and img.axes == ("y", "x")
    assert img.scale == (0.65, 0.65)
    assert [c.name for c in img.channels] == ["DAPI"]
    assert "ground_truth" in img.labels
    exp_img, exp_labels = synth.make_nuclei_2d(shape=(512, 512), n_nuclei=60, seed=0)
    np.testing.assert_array_equal(img.data.compute(), exp_img)
    np.testing.assert_array_equal(img.labels["ground_truth"].data.compute(), exp_labels)


# --- the script ----------------------------------------------------------------------------
def test_script_regenerates_the_shipped_files(tmp_path, make_script, capsys):
    make_script.main(["--out", str(tmp_path), "--only", "nuclei_batch", "cells_3d"])
    assert "cells_3d" in capsys.readouterr().out
    shipped = samples.sample_dir()
    fresh_files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*.tif"))
    assert len(fresh_files) == 10
    for rel in fresh_files:
        fresh, fresh_meta = samples.read_ome_tiff(tmp_path / rel)
        ship, ship_meta = samples.read_ome_tiff(shipped / rel)
        np.testing.assert_array_equal(fresh, ship)
        assert fresh_meta == ship_meta, rel
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_readme_is_up_to_date(tmp_path, make_script):
    make_script.write_readme(tmp_path)
    fresh = (tmp_path / "README.md").read_text()
    assert fresh == (samples.sample_dir() / "README.md").read_text()
    for info in samples.list_samples():
        assert info.name in fresh
    assert "python scripts/make_sample_data.py" in fresh


def test_samples_modules_import_no_qt_nor_napari():
    code = (
        "import sys, napari_fbias._sample_data, napari_fbias.io.samples, napari_fbias.io.synth\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'magicgui', 'napari', 'superqt')]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- napari sample-data contributions ------------------------------------------------------
def test_sample_contributions_return_layer_data():
    from napari_fbias import _sample_data

    (img, img_kw, img_type), (lab, lab_kw, lab_type) = _sample_data.nuclei_2d()
    assert (img_type, lab_type) == ("image", "labels")
    assert img.shape == lab.shape == (512, 512)
    assert img_kw["scale"] == lab_kw["scale"] == (0.65, 0.65)
    assert lab_kw["name"] == "ground truth"

    layers = _sample_data.spots_timelapse()
    (movie, movie_kw, _), (tracks, tracks_kw, tracks_type) = layers
    assert tracks_type == "tracks" and tracks.shape[1] == 4
    assert tracks_kw["scale"] == movie_kw["scale"] == (2.0, 0.2, 0.2)
    _, gt = samples.load_spots_timelapse()
    np.testing.assert_array_equal(tracks, gt[["track_id", "t", "y", "x"]].to_numpy())

    (stack, stack_kw, _), (nuclei, nuclei_kw, _) = _sample_data.cells_3d()
    assert stack_kw["channel_axis"] == 0 and stack_kw["name"] == ["DAPI", "Membrane"]
    assert stack_kw["scale"] == nuclei_kw["scale"] == (1.0, 0.3, 0.3)
    assert nuclei.shape == stack.shape[1:]


@pytest.mark.qt
@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("nuclei_2d", {"nuclei_2d": "image", "ground truth": "labels"}),
        ("spots_timelapse", {"spots_timelapse": "image", "ground truth tracks": "tracks"}),
        ("cells_3d", {"DAPI": "image", "Membrane": "image", "ground truth": "labels"}),
        ("nuclei_multiscale", {"nuclei_multiscale": "image", "ground_truth": "labels"}),
    ],
)
def test_open_sample_in_viewer(make_napari_viewer, key, expected):
    pytest.importorskip("napari_fbias.io.open")
    viewer = make_napari_viewer()
    viewer.open_sample("napari-fbias", key)
    got = {layer.name: type(layer).__name__.lower() for layer in viewer.layers}
    assert got == expected
    first = viewer.layers[0]
    if key == "nuclei_multiscale":
        assert first.multiscale and len(first.data) == 3
    if key == "cells_3d":
        assert tuple(first.scale) == (1.0, 0.3, 0.3)
        assert viewer.layers["DAPI"].colormap.name == "cyan"
        assert viewer.layers["ground truth"].data.max() == 12
    if key == "spots_timelapse":
        assert viewer.dims.nsteps[0] == 30
        assert len(np.unique(viewer.layers["ground truth tracks"].data[:, 0])) > 30
    if key == "nuclei_2d":
        assert tuple(first.scale) == (0.65, 0.65)
        assert viewer.layers["ground truth"].data.max() == 60
