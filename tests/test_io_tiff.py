"""TIFF reading (OME-TIFF, ImageJ, plain) and the ``open_image`` dispatcher."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile

from napari_fbias.io.errors import FbiasIOError, UnsupportedAxesError
from napari_fbias.io.image import Channel
from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.io.open import is_omero_source, is_tiff, open_image
from napari_fbias.io.tiff import read_tiff

RNG = np.random.default_rng(3)


def test_ome_tiff_axes_scale_channels(tmp_path: Path) -> None:
    data = RNG.integers(0, 1000, (3, 2, 16, 12), dtype=np.uint16)  # stored ZCYX
    f = tmp_path / "cells.ome.tif"
    tifffile.imwrite(
        f,
        data,
        ome=True,
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeX": 0.3,
            "PhysicalSizeY": 0.3,
            "PhysicalSizeZ": 1.5,
            "Channel": {"Name": ["DAPI", "GFP"]},
        },
    )
    img = read_tiff(f)
    assert img.axes == ("c", "z", "y", "x")
    assert isinstance(img.data, da.Array)
    np.testing.assert_array_equal(img.data.compute(), data.transpose(1, 0, 2, 3))
    assert img.scale == pytest.approx((1.0, 1.5, 0.3, 0.3))
    assert img.units == (None, "micrometer", "micrometer", "micrometer")
    assert [c.name for c in img.channels] == ["DAPI", "GFP"]
    assert img.name == "cells"
    assert img.metadata["format"] == "ome-tiff"


def test_imagej_hyperstack(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, (4, 3, 2, 10, 8), dtype=np.uint8)  # TZCYX
    f = tmp_path / "ij.tif"
    tifffile.imwrite(
        f,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "TZCYX", "spacing": 2.0, "unit": "um", "finterval": 30.0},
    )
    img = read_tiff(f)
    assert img.axes == ("t", "c", "z", "y", "x")
    np.testing.assert_array_equal(img.data.compute(), data.transpose(0, 2, 1, 3, 4))
    assert img.scale == pytest.approx((30.0, 1.0, 2.0, 0.25, 0.25))
    assert img.units == ("second", None, "micrometer", "micrometer", "micrometer")


@pytest.mark.parametrize(
    ("shape", "photometric", "expected_axes"),
    [
        ((10, 8), "minisblack", ("y", "x")),
        ((3, 10, 8), "minisblack", ("z", "y", "x")),
        ((10, 8, 3), "rgb", ("c", "y", "x")),
    ],
)
def test_plain_tiff_axes_inferred(
    tmp_path: Path, shape: tuple[int, ...], photometric: str, expected_axes: tuple
) -> None:
    data = RNG.integers(0, 255, shape, dtype=np.uint8)
    f = tmp_path / "plain.tiff"
    tifffile.imwrite(f, data, photometric=photometric)
    img = read_tiff(f)
    assert img.axes == expected_axes
    expected = np.moveaxis(data, -1, 0) if photometric == "rgb" else data
    np.testing.assert_array_equal(img.data.compute(), expected)
    assert img.scale == (1.0,) * len(shape)


def test_axes_parameter_overrides_and_transposes(tmp_path: Path) -> None:
    data = RNG.integers(0, 255, (3, 5, 10, 8), dtype=np.uint8)  # stored as z, t, y, x
    f = tmp_path / "zt.tif"
    tifffile.imwrite(f, data, photometric="minisblack")
    img = read_tiff(f, axes="ztyx")
    assert img.axes == ("t", "z", "y", "x")
    np.testing.assert_array_equal(img.data.compute(), data.transpose(1, 0, 2, 3))
    assert read_tiff(f.parent / "zt.tif", axes="tzyx").shape == (3, 5, 10, 8)


def test_tiff_errors(tmp_path: Path) -> None:
    f = tmp_path / "four.tif"
    tifffile.imwrite(f, np.zeros((2, 3, 4, 5), np.uint8), photometric="minisblack")
    with pytest.raises(
        UnsupportedAxesError, match=r"four\.tif: 4D TIFF without axis metadata.*axes="
    ):
        read_tiff(f)
    with pytest.raises(UnsupportedAxesError, match=r"do not match the stored shape"):
        read_tiff(f, axes="zyx")
    with pytest.raises(UnsupportedAxesError, match=r"unknown axis 'q'"):
        read_tiff(f, axes="qzyx")
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"this is not a tiff")
    with pytest.raises(FbiasIOError, match=r"cannot read .*bad\.tif as TIFF"):
        read_tiff(bad)


def test_file_closed_with_the_image_not_leaked(tmp_path: Path) -> None:
    import gc
    import sys
    import warnings

    f = tmp_path / "a.tif"
    tifffile.imwrite(f, np.zeros((4, 4), np.uint8))
    unraisable: list = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", ResourceWarning)
            img = read_tiff(f)
            img.data.compute()
            del img
            gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert [str(u.exc_value) for u in unraisable] == []


# --- open_image dispatch -----------------------------------------------------------


def test_open_image_dispatches_by_source(tmp_path: Path) -> None:
    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, np.ones((3, 6, 5), np.uint16), photometric="minisblack")
    img = open_image(tif)
    assert img.metadata["format"] == "tiff" and img.axes == ("z", "y", "x")
    assert open_image(str(tif), axes="tyx").axes == ("t", "y", "x")

    zarr_path = write_image(
        tmp_path / "a.ome.zarr",
        np.ones((2, 6, 5), np.uint16),
        "cyx",
        channels=(Channel("a"), Channel("b")),
    )
    img = open_image(zarr_path)
    assert img.metadata["format"] == "ome-zarr"
    assert [c.name for c in img.channels] == ["a", "b"]
    with pytest.raises(FbiasIOError, match="axes= is for TIFF files only"):
        open_image(zarr_path, axes="cyx")
    with pytest.raises(FbiasIOError, match="remote TIFF files are not supported"):
        open_image("https://example.org/a.tif")


@pytest.mark.parametrize(
    ("source", "omero", "tiff"),
    [
        ("omero://omero.example.org/Image:12", True, False),
        ("https://omero.example.org/webclient/?show=image-12", True, False),
        ("https://omero.example.org/iviewer/?images=12", True, False),
        ("https://example.org/data/img.ome.zarr", False, False),
        ("/data/img.ome.tif", False, True),
        ("/data/IMG.TIFF", False, True),
        ("s3://bucket/img.zarr", False, False),
    ],
)
def test_source_kinds(source: str, omero: bool, tiff: bool) -> None:
    assert is_omero_source(source) is omero
    assert is_tiff(source) is tiff


def test_tiff_dask_array_pickles(tmp_path: Path) -> None:
    import pickle

    data = RNG.integers(0, 255, (3, 9, 7), dtype=np.uint8)
    f = tmp_path / "p.tif"
    tifffile.imwrite(f, data, photometric="minisblack")
    arr = pickle.loads(pickle.dumps(read_tiff(f).data))
    np.testing.assert_array_equal(arr.compute(), data)


def test_corrupt_tiff_without_pages_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.tif"
    bad.write_bytes(b"II*\x00" + b"\x00" * 20)
    with pytest.raises(FbiasIOError, match="holds no image"):
        read_tiff(bad)
