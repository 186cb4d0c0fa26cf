"""Reading OME-Zarr (NGFF 0.1-0.5) from local folders: metadata, laziness, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image as ozw_write_image
from ome_zarr.writer import write_labels as ozw_write_labels

from helpers.ome_zarr_stores import add_raw_labels, ngff_multiscales, raw_store
from napari_fbias.io.errors import (
    MetadataError,
    MissingDataError,
    NotOmeZarrError,
    UnsupportedAxesError,
)
from napari_fbias.io.image import Channel
from napari_fbias.io.ome_zarr_read import is_ome_zarr, read_ome_zarr

RNG = np.random.default_rng(0)
OMERO = {
    "channels": [
        {
            "label": "DAPI",
            "color": "0000FF",
            "window": {"start": 10, "end": 500, "min": 0, "max": 65535},
            "active": True,
        },
        {
            "label": "GFP",
            "color": "#00ff00",
            "window": {"start": 0, "end": 900, "min": 0, "max": 65535},
            "active": False,
        },
    ]
}


def _pyramid(data: np.ndarray, axes: str, n: int) -> list[np.ndarray]:
    out = [data]
    for _ in range(1, n):
        sl = tuple(slice(None, None, 2) if a in "yx" else slice(None) for a in axes)
        out.append(out[-1][sl])
    return out


@pytest.fixture(params=["0.4", "0.5"])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def _ozw_store(path: Path, version: str) -> tuple[Path, np.ndarray, np.ndarray]:
    """A 5D tczyx image + labels written by ome-zarr-py (the reference writer)."""
    fmt = FormatV04() if version == "0.4" else FormatV05()
    data = RNG.integers(0, 4000, (2, 2, 3, 32, 24), dtype=np.uint16)
    mask = (data[:, 0] > 2000).astype(np.uint16)
    g = zarr.open_group(str(path), mode="w", zarr_format=fmt.zarr_format)
    ozw_write_image(
        data,
        g,
        axes="tczyx",
        fmt=fmt,
        scale_factors=[2],
        scale={"t": 5.0, "c": 1.0, "z": 2.0, "y": 0.5, "x": 0.5},
        axes_units={"t": "second", "z": "micrometer", "y": "micrometer", "x": "micrometer"},
        storage_options={"chunks": (1, 1, 3, 16, 16)},
    )
    # omero block added by hand (ome-zarr-py passes it through unchanged)
    if version == "0.5":
        attrs = dict(g.attrs)
        attrs["ome"] = {**attrs["ome"], "omero": OMERO}
        g.attrs.put(attrs)
    else:
        g.attrs.update({"omero": OMERO})
    ozw_write_labels(
        mask,
        g,
        name="cells",
        axes="tzyx",
        fmt=fmt,
        scaler=None,
        scale_factors=[2],
        scale={"t": 5.0, "z": 2.0, "y": 0.5, "x": 0.5},
        label_metadata={"colors": [{"label-value": 1, "rgba": [255, 0, 0, 255]}]},
    )
    return path, data, mask


def test_reads_ome_zarr_py_store_lazily_with_all_metadata(tmp_path: Path, version: str) -> None:
    path, data, mask = _ozw_store(tmp_path / "img.ome.zarr", version)
    img = read_ome_zarr(path)

    assert img.axes == ("t", "c", "z", "y", "x")
    assert len(img.levels) == 2
    assert all(isinstance(lv, da.Array) for lv in img.levels)
    assert img.shape == data.shape
    assert img.levels[1].shape == (2, 2, 3, 16, 12)
    assert img.scales[0] == pytest.approx((5.0, 1.0, 2.0, 0.5, 0.5))
    assert img.scales[1] == pytest.approx((5.0, 1.0, 2.0, 1.0, 1.0))
    assert img.units == ("second", None, "micrometer", "micrometer", "micrometer")
    assert img.metadata["ngff_version"] == version
    assert img.metadata["zarr_format"] == (2 if version == "0.4" else 3)
    np.testing.assert_array_equal(img.data.compute(), data)

    assert img.channels == (
        Channel("DAPI", "0000FF", (10.0, 500.0), True),
        Channel("GFP", "00FF00", (0.0, 900.0), False),
    )
    assert list(img.labels) == ["cells"]
    lab = img.labels["cells"]
    assert lab.is_label and lab.name == "cells"
    assert lab.axes == ("t", "z", "y", "x")
    assert lab.scales[0] == pytest.approx((5.0, 2.0, 0.5, 0.5))
    assert lab.metadata["image-label"]["colors"] == [{"label-value": 1, "rgba": [255, 0, 0, 255]}]
    np.testing.assert_array_equal(lab.data.compute(), mask)


@pytest.mark.parametrize("axes", ["yx", "zyx", "cyx", "tyx", "czyx", "tzyx", "tcyx", "tczyx"])
def test_every_axis_subset(tmp_path: Path, version: str, axes: str) -> None:
    sizes = {"t": 2, "c": 3, "z": 4, "y": 10, "x": 9}
    data = RNG.integers(0, 255, tuple(sizes[a] for a in axes), dtype=np.uint8)
    path = raw_store(
        tmp_path / "a.zarr",
        _pyramid(data, axes, 2),
        {"multiscales": [ngff_multiscales(axes, 2, version=version)]},
        version=version,
    )
    img = read_ome_zarr(path)
    assert img.axes == tuple(axes)
    assert img.levels[1].shape == _pyramid(data, axes, 2)[1].shape
    np.testing.assert_array_equal(img.levels[1].compute(), _pyramid(data, axes, 2)[1])
    assert img.scales[1] == tuple(2.0 if a in "yx" else 1.0 for a in axes)


@pytest.mark.parametrize(
    ("ngff", "axes_meta", "shape", "expected"),
    [
        ("0.1", None, (3, 8, 8), ("z", "y", "x")),
        ("0.2", None, (2, 3, 4, 8, 8), ("t", "c", "z", "y", "x")),
        ("0.3", ["c", "y", "x"], (2, 8, 8), ("c", "y", "x")),
    ],
)
def test_old_ngff_axes_inferred_or_strings(
    tmp_path: Path, ngff: str, axes_meta: list[str] | None, shape: tuple[int, ...], expected: tuple
) -> None:
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    ms: dict = {"version": ngff, "datasets": [{"path": "0"}]}
    if axes_meta is not None:
        ms["axes"] = axes_meta
    path = raw_store(tmp_path / "old.zarr", [data], {"multiscales": [ms]}, version=ngff)
    img = read_ome_zarr(path)
    assert img.axes == expected
    assert img.scale == (1.0,) * len(shape)
    assert img.metadata["ngff_version"] == ngff


def test_dataset_and_multiscale_transforms_are_composed(tmp_path: Path, version: str) -> None:
    data = np.zeros((4, 8, 8), dtype=np.uint8)
    ms = ngff_multiscales("zyx", 2, version=version)
    ms["datasets"][0]["coordinateTransformations"] = [
        {"type": "scale", "scale": [2.0, 0.5, 0.5]},
        {"type": "translation", "translation": [0.0, 1.0, 2.0]},
    ]
    ms["datasets"][1]["coordinateTransformations"] = [
        {"type": "scale", "scale": [2.0, 1.0, 1.0]},
        {"type": "translation", "translation": [0.0, 1.25, 2.25]},
    ]
    ms["coordinateTransformations"] = [
        {"type": "scale", "scale": [1.0, 3.0, 3.0]},
        {"type": "translation", "translation": [10.0, 0.0, -1.0]},
    ]
    path = raw_store(
        tmp_path / "t.zarr", _pyramid(data, "zyx", 2), {"multiscales": [ms]}, version=version
    )
    img = read_ome_zarr(path)
    # x_world = ms_scale * (ds_scale * i + ds_translation) + ms_translation
    assert img.scales[0] == pytest.approx((2.0, 1.5, 1.5))
    assert img.translations[0] == pytest.approx((10.0, 3.0, 5.0))
    assert img.scales[1] == pytest.approx((2.0, 3.0, 3.0))
    assert img.translations[1] == pytest.approx((10.0, 3.75, 5.75))


def test_bioformats2raw_container_opens_first_image(tmp_path: Path) -> None:
    root = tmp_path / "b2r.zarr"
    zarr.open_group(str(root), mode="w", zarr_format=2).attrs.put({"bioformats2raw.layout": 3})
    data = np.ones((5, 6), dtype=np.uint8)
    raw_store(root / "0", [data], {"multiscales": [ngff_multiscales("yx", 1)]})
    img = read_ome_zarr(root)
    assert img.shape == (5, 6)
    assert img.metadata["group"] == "0"
    assert is_ome_zarr(root)


def test_label_colors_and_labels_false(tmp_path: Path, version: str) -> None:
    data = np.zeros((2, 8, 8), dtype=np.uint8)
    path = raw_store(
        tmp_path / "l.zarr",
        [data],
        {"multiscales": [ngff_multiscales("cyx", 1, version=version)]},
        version=version,
    )
    lab = np.eye(8, dtype=np.uint32)[None].repeat(1, 0)[0]
    add_raw_labels(
        path,
        "diag",
        [lab],
        {
            "multiscales": [ngff_multiscales("yx", 1, version=version)],
            "image-label": {"colors": [{"label-value": 1, "rgba": [0, 255, 0, 128]}]},
        },
        version=version,
    )
    img = read_ome_zarr(path)
    assert img.labels["diag"].metadata["image-label"]["colors"][0]["rgba"] == [0, 255, 0, 128]
    np.testing.assert_array_equal(img.labels["diag"].data.compute(), lab)
    assert read_ome_zarr(path, labels=False).labels == {}


def test_label_image_opened_directly_is_a_label(tmp_path: Path) -> None:
    path, _, mask = _ozw_store(tmp_path / "img.zarr", "0.4")
    lab = read_ome_zarr(path / "labels" / "cells")
    assert lab.is_label
    np.testing.assert_array_equal(lab.data.compute(), mask)


def test_is_ome_zarr(tmp_path: Path) -> None:
    path = raw_store(
        tmp_path / "a.zarr",
        [np.zeros((4, 4), np.uint8)],
        {"multiscales": [ngff_multiscales("yx", 1)]},
    )
    assert is_ome_zarr(path)
    assert is_ome_zarr(str(path))
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w", zarr_format=2).create_array("x", shape=(2,), dtype="u1")
    assert not is_ome_zarr(plain)
    assert not is_ome_zarr(tmp_path / "missing.zarr")
    (tmp_path / "file.txt").write_text("hello")
    assert not is_ome_zarr(tmp_path / "file.txt")
    broken = tmp_path / "broken.zarr"
    broken.mkdir()
    (broken / ".zattrs").write_text("{not json")
    assert not is_ome_zarr(broken)


# --- missing chunks ------------------------------------------------------------------


def test_missing_chunk_reads_fill_value_or_raises_when_strict(tmp_path: Path, version: str) -> None:
    data = np.full((8, 8), 7, dtype=np.uint8)
    path = raw_store(
        tmp_path / "m.zarr",
        [data],
        {"multiscales": [ngff_multiscales("yx", 1, version=version)]},
        version=version,
        chunks=(4, 4),
    )
    chunk = path / "0" / ("c/1/1" if version == "0.5" else "1/1")
    assert chunk.is_file()
    chunk.unlink()

    filled = read_ome_zarr(path).data.compute()
    assert filled[4:, 4:].max() == 0 and filled[:4, :4].min() == 7

    strict = read_ome_zarr(path, missing_chunks="error")
    np.testing.assert_array_equal(strict.data[:4, :4].compute(), data[:4, :4])
    with pytest.raises(MissingDataError, match=r"chunk '0/(c/)?1/1'.*m\.zarr"):
        strict.data.compute()


# --- errors --------------------------------------------------------------------------


def test_not_ome_zarr_errors(tmp_path: Path) -> None:
    with pytest.raises(NotOmeZarrError, match="does not exist"):
        read_ome_zarr(tmp_path / "nothing.zarr")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NotOmeZarrError, match="neither zarr.json nor .zattrs"):
        read_ome_zarr(empty)
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w", zarr_format=3).attrs.put({"foo": 1})
    with pytest.raises(NotOmeZarrError, match="no 'multiscales'"):
        read_ome_zarr(plain)
    arr = tmp_path / "arr.zarr"
    zarr.create_array(str(arr), shape=(2, 2), dtype="u1", zarr_format=3)
    with pytest.raises(NotOmeZarrError, match="zarr array, not an OME-Zarr image"):
        read_ome_zarr(arr)
    plate = tmp_path / "plate.zarr"
    zarr.open_group(str(plate), mode="w", zarr_format=2).attrs.put({"plate": {"wells": []}})
    with pytest.raises(NotOmeZarrError, match="HCS"):
        read_ome_zarr(plate)


@pytest.mark.parametrize("meta_file", [".zattrs", "zarr.json"])
def test_broken_json_names_the_file(tmp_path: Path, meta_file: str) -> None:
    version = "0.4" if meta_file == ".zattrs" else "0.5"
    path = raw_store(
        tmp_path / "b.zarr",
        [np.zeros((4, 4), np.uint8)],
        {"multiscales": [ngff_multiscales("yx", 1, version=version)]},
        version=version,
    )
    text = (path / meta_file).read_text()
    (path / meta_file).write_text(text[: len(text) // 2])
    with pytest.raises(MetadataError, match=rf"b\.zarr/{meta_file}.*not valid JSON"):
        read_ome_zarr(path)


def test_broken_array_metadata_names_the_file(tmp_path: Path) -> None:
    path = raw_store(
        tmp_path / "b.zarr",
        [np.zeros((4, 4), np.uint8)],
        {"multiscales": [ngff_multiscales("yx", 1)]},
    )
    (path / "0" / ".zarray").write_text("{broken")
    with pytest.raises(MetadataError, match=r"level 0: .*b\.zarr/0/\.zarray is invalid"):
        read_ome_zarr(path)


def test_inconsistent_multiscales(tmp_path: Path, version: str) -> None:
    a = np.zeros((4, 8, 8), np.uint8)
    # level 1 has one dimension fewer than level 0
    path = raw_store(
        tmp_path / "n.zarr",
        [a, a[0, ::2, ::2]],
        {"multiscales": [ngff_multiscales("zyx", 2, version=version)]},
        version=version,
    )
    with pytest.raises(MetadataError, match=r"level 1 \(1\) has 2 dimensions, level 0 \(0\) has 3"):
        read_ome_zarr(path)

    # axes do not match the data
    path = raw_store(
        tmp_path / "ax.zarr",
        [a],
        {"multiscales": [ngff_multiscales("yx", 1, version=version)]},
        version=version,
    )
    with pytest.raises(MetadataError, match=r"2 axes \['y', 'x'\] for data with 3 dimensions"):
        read_ome_zarr(path)

    # a dataset without path
    ms = ngff_multiscales("zyx", 1, version=version)
    del ms["datasets"][0]["path"]
    path = raw_store(tmp_path / "np.zarr", [a], {"multiscales": [ms]}, version=version)
    with pytest.raises(MetadataError, match=r"datasets\[0\] has no 'path'"):
        read_ome_zarr(path)

    # a scale with the wrong length
    ms = ngff_multiscales("zyx", 1, version=version)
    ms["datasets"][0]["coordinateTransformations"] = [{"type": "scale", "scale": [1, 1]}]
    path = raw_store(tmp_path / "sc.zarr", [a], {"multiscales": [ms]}, version=version)
    with pytest.raises(MetadataError, match="does not have one number per axis"):
        read_ome_zarr(path)


def test_missing_level_array(tmp_path: Path, version: str) -> None:
    a = np.zeros((8, 8), np.uint8)
    path = raw_store(
        tmp_path / "m.zarr",
        [a, a[::2, ::2]],
        {"multiscales": [ngff_multiscales("yx", 2, version=version)]},
        version=version,
    )
    shutil.rmtree(path / "1")
    with pytest.raises(MissingDataError, match=r"level 1: no zarr array at .*m\.zarr/1"):
        read_ome_zarr(path)


def test_missing_listed_label(tmp_path: Path) -> None:
    a = np.zeros((8, 8), np.uint8)
    path = raw_store(tmp_path / "m.zarr", [a], {"multiscales": [ngff_multiscales("yx", 1)]})
    add_raw_labels(
        path,
        "cells",
        [a],
        {"multiscales": [ngff_multiscales("yx", 1)], "image-label": {}},
        listed=["cells", "ghost"],
    )
    with pytest.raises(MissingDataError, match=r"label image 'ghost'.*labels=False"):
        read_ome_zarr(path)
    assert read_ome_zarr(path, labels=False).shape == (8, 8)


@pytest.mark.parametrize(
    ("axes", "match"),
    [
        (
            [
                {"name": "angle", "type": "space"},
                {"name": "y", "type": "space"},
                {"name": "x", "type": "space"},
            ],
            "unsupported axis name",
        ),
        (
            [{"name": "x", "type": "space"}, {"name": "y", "type": "space"}],
            "not in t, c, z, y, x order",
        ),
        ([{"name": "c", "type": "channel"}, {"name": "x", "type": "space"}], "at least y and x"),
    ],
)
def test_unsupported_axes(tmp_path: Path, axes: list, match: str) -> None:
    ms = ngff_multiscales(None, 1, scale=[1.0] * len(axes))
    ms["axes"] = axes
    path = raw_store(
        tmp_path / "u.zarr", [np.zeros((4,) * len(axes), np.uint8)], {"multiscales": [ms]}
    )
    with pytest.raises(UnsupportedAxesError, match=match) as info:
        read_ome_zarr(path)
    assert "u.zarr/.zattrs" in str(info.value)


def test_channels_padded_when_omero_lists_fewer(tmp_path: Path) -> None:
    path = raw_store(
        tmp_path / "c.zarr",
        [np.zeros((3, 4, 4), np.uint8)],
        {"multiscales": [ngff_multiscales("cyx", 1)], "omero": {"channels": OMERO["channels"][:1]}},
    )
    img = read_ome_zarr(path)
    assert [c.name for c in img.channels] == ["DAPI", "channel 1", "channel 2"]


def test_metadata_is_json_safe(tmp_path: Path) -> None:
    path, _, _ = _ozw_store(tmp_path / "img.zarr", "0.5")
    img = read_ome_zarr(path)
    json.dumps(dict(img.metadata))
    json.dumps(img.describe())
    json.dumps(dict(img.labels["cells"].metadata))


def test_levels_compute_on_a_dask_cluster(tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    path, data, mask = _ozw_store(tmp_path / "img.zarr", "0.5")
    img = read_ome_zarr(path, missing_chunks="error")
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        total, labels = client.compute([img.levels[1].sum(), img.labels["cells"].data], sync=True)
    assert total == img.levels[1].compute(scheduler="sync").sum()
    np.testing.assert_array_equal(labels, mask)
