"""Writing OME-Zarr: validated by ome-zarr-models, read back by ome-zarr-py and by us; atomic."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dask.array as da
import numpy as np
import ome_zarr_models.v04 as models04
import ome_zarr_models.v05 as models05
import pytest
import zarr
from ome_zarr.io import parse_url
from ome_zarr.reader import Reader

from napari_fbias.io.atomic import atomic_dir, atomic_write_bytes, atomic_write_text
from napari_fbias.io.errors import (
    MetadataError,
    NotOmeZarrError,
    OutputExistsError,
    UnsupportedAxesError,
)
from napari_fbias.io.image import Channel
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import (
    downsample_labels,
    downsample_mean,
    write_image,
    write_image_with_labels,
    write_label_image,
    write_labels,
)

RNG = np.random.default_rng(2)
MODELS = {"0.4": models04, "0.5": models05}
CHANNELS = (Channel("DAPI", "0000FF", (0.0, 900.0), True), Channel("GFP", "00FF00", None, False))


@pytest.fixture(params=["0.4", "0.5"])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def _tree_digest(root: Path, *, skip: str = "labels") -> dict[str, str]:
    """Content hashes of every file under ``root`` except the ``skip`` subfolder."""
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file() and f.relative_to(root).parts[0] != skip
    }


def _siblings(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir())


def _leftovers(root: Path) -> list[str]:
    """Temporary build/backup folders or files left anywhere under ``root``."""
    return [str(p) for p in root.rglob("*") if ".tmp-" in p.name or ".old-" in p.name]


def _ome_zarr_py_nodes(path: Path) -> list:
    return list(Reader(parse_url(str(path)))())


def test_write_image_validates_and_reads_back_everywhere(tmp_path: Path, version: str) -> None:
    data = RNG.integers(0, 1000, (2, 3, 33, 30), dtype=np.uint16)
    dest = tmp_path / "img.ome.zarr"
    out = write_image(
        dest,
        data,
        "czyx",
        scale=(1.0, 2.0, 0.5, 0.5),
        units=(None, "micrometer", "micrometer", "micrometer"),
        channels=CHANNELS,
        n_levels=3,
        ngff_version=version,
        chunks=(1, 2, 16, 16),
    )
    assert out == str(dest)
    assert _siblings(dest) == ["img.ome.zarr"]  # no temporary left behind

    # 1. the NGFF models accept it
    model = MODELS[version].Image.from_zarr(zarr.open_group(str(dest), mode="r"))
    attrs = model.attributes.ome if version == "0.5" else model.attributes
    assert [d.path for d in attrs.multiscales[0].datasets] == ["0", "1", "2"]

    # 2. ome-zarr-py reads it
    node = _ome_zarr_py_nodes(dest)[0]
    assert [lv.shape for lv in node.data] == [(2, 3, 33, 30), (2, 3, 17, 15), (2, 3, 9, 8)]
    assert node.metadata["channel_names"] == ["DAPI", "GFP"]
    assert node.metadata["axes"][1] == {"name": "z", "type": "space", "unit": "micrometer"}

    # 3. we read it: values, pyramid, transforms, channels
    img = read_ome_zarr(dest)
    np.testing.assert_array_equal(img.data.compute(), data)
    padded = np.pad(data, [(0, 0), (0, 0), (0, 1), (0, 0)], mode="edge").astype(float)
    mean = padded.reshape(2, 3, 17, 2, 15, 2).mean(axis=(3, 5))
    np.testing.assert_array_equal(img.levels[1].compute(), np.round(mean).astype(np.uint16))
    assert img.scales == ((1, 2, 0.5, 0.5), (1, 2, 1.0, 1.0), (1, 2, 2.0, 2.0))
    assert img.translations[2] == (0, 0, 0.75, 0.75)
    assert img.units == (None, "micrometer", "micrometer", "micrometer")
    assert img.channels[0] == CHANNELS[0]
    assert img.channels[1].name == "GFP" and not img.channels[1].visible
    assert img.channels[1].window == (0.0, 65535.0)  # no window given: the dtype's range
    assert zarr.open_array(str(dest / "0"), mode="r").chunks == (1, 2, 16, 16)


def test_write_labels_adds_to_existing_image_without_touching_it(
    tmp_path: Path, version: str
) -> None:
    data = RNG.integers(0, 1000, (2, 5, 20, 18), dtype=np.uint16)
    dest = Path(write_image(tmp_path / "img.zarr", data, "tcyx", n_levels=2, ngff_version=version))
    before = _tree_digest(dest)
    labels = RNG.integers(0, 4, (2, 20, 18), dtype=np.uint32)

    out = write_labels(
        dest,
        labels,
        "cells",
        colors={1: (255, 0, 0, 255), 2: (0, 255, 0, 255)},
        properties={1: {"class": "a"}, 2: {"class": "b"}},
    )
    assert out == str(dest / "labels" / "cells")
    assert _tree_digest(dest) == before  # parent image untouched
    assert _leftovers(tmp_path) == []

    group = zarr.open_group(str(dest), mode="r")
    MODELS[version].Image.from_zarr(group)
    MODELS[version].ImageLabel.from_zarr(group["labels/cells"])

    img = read_ome_zarr(dest)
    lab = img.labels["cells"]
    assert lab.axes == ("t", "y", "x")
    assert [lv.shape for lv in lab.levels] == [(2, 20, 18), (2, 10, 9)]
    assert lab.scales == ((1, 1, 1), (1, 2, 2))
    assert lab.translations[1] == (0, 0.5, 0.5)
    np.testing.assert_array_equal(lab.data.compute(), labels)
    np.testing.assert_array_equal(lab.levels[1].compute(), labels[:, 1::2, 1::2])
    assert lab.metadata["image-label"]["colors"][1] == {"label-value": 2, "rgba": [0, 255, 0, 255]}
    assert lab.metadata["ngff_version"] == version

    # ome-zarr-py sees the labels too
    nodes = _ome_zarr_py_nodes(dest)
    assert any(n.metadata.get("name") == "cells" for n in nodes)

    # a second label image is added to the list
    write_labels(dest, labels[:, :, :] * 0, "empty")
    assert sorted(read_ome_zarr(dest).labels) == ["cells", "empty"]


def test_write_labels_refuses_to_overwrite_unless_asked(tmp_path: Path, version: str) -> None:
    dest = write_image(
        tmp_path / "img.zarr", np.zeros((8, 8), np.uint8), "yx", ngff_version=version
    )
    write_labels(dest, np.ones((8, 8), np.uint8), "mask")
    with pytest.raises(OutputExistsError, match=r"labels 'mask' already exist in .*img\.zarr"):
        write_labels(dest, np.full((8, 8), 2, np.uint8), "mask")
    assert read_ome_zarr(dest).labels["mask"].data.compute().max() == 1

    write_labels(dest, np.full((8, 8), 2, np.uint8), "mask", overwrite=True)
    img = read_ome_zarr(dest)
    assert img.labels["mask"].data.compute().min() == 2
    lab_list = (
        json.loads((Path(dest) / "labels" / ".zattrs").read_text())["labels"]
        if version == "0.4"
        else json.loads((Path(dest) / "labels" / "zarr.json").read_text())["attributes"]["ome"][
            "labels"
        ]
    )
    assert lab_list == ["mask"]
    assert _leftovers(tmp_path) == []


def test_write_labels_on_a_store_written_by_ome_zarr_py(tmp_path: Path) -> None:
    from ome_zarr.format import FormatV05
    from ome_zarr.writer import write_image as ozw_write_image

    path = tmp_path / "ozw.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    ozw_write_image(
        np.zeros((3, 16, 16), np.uint8), group, axes="zyx", fmt=FormatV05(), scale_factors=[2]
    )
    write_labels(path, np.ones((3, 16, 16), np.uint16), "seg")
    img = read_ome_zarr(path)
    assert [lv.shape for lv in img.labels["seg"].levels] == [(3, 16, 16), (3, 8, 8)]
    models05.ImageLabel.from_zarr(zarr.open_group(str(path / "labels" / "seg"), mode="r"))


def test_write_image_with_labels(tmp_path: Path, version: str) -> None:
    data = RNG.integers(0, 255, (2, 16, 16), dtype=np.uint8)
    labels = {"a": (data[0] > 100).astype(np.uint8), "b": (data[1] > 50).astype(np.uint16)}
    dest = write_image_with_labels(
        tmp_path / "both.zarr",
        data,
        "cyx",
        labels,
        n_levels=2,
        ngff_version=version,
        label_colors={"a": {1: (1, 2, 3, 255)}},
    )
    MODELS[version].Image.from_zarr(zarr.open_group(dest, mode="r"))
    img = read_ome_zarr(dest)
    assert sorted(img.labels) == ["a", "b"]
    np.testing.assert_array_equal(img.labels["b"].data.compute(), labels["b"])
    assert img.labels["a"].metadata["image-label"]["colors"][0]["rgba"] == [1, 2, 3, 255]


def test_write_label_image_reads_back_as_label(tmp_path: Path, version: str) -> None:
    labels = RNG.integers(0, 9, (4, 12, 12), dtype=np.int32)
    dest = write_label_image(
        tmp_path / "seg.zarr", labels, "zyx", scale=(2, 0.3, 0.3), n_levels=2, ngff_version=version
    )
    img = read_ome_zarr(dest)
    assert img.is_label
    np.testing.assert_array_equal(img.data.compute(), labels)
    np.testing.assert_array_equal(img.levels[1].compute(), labels[:, 1::2, 1::2])
    assert img.scale == pytest.approx((2, 0.3, 0.3))
    MODELS[version].ImageLabel.from_zarr(zarr.open_group(dest, mode="r"))


def test_downsampling_with_odd_dask_chunks() -> None:
    x = np.arange(35 * 33, dtype=np.uint16).reshape(35, 33)
    d = da.from_array(x, chunks=(7, 11))
    ref = np.pad(x, [(0, 1), (0, 1)], mode="edge").astype(float).reshape(18, 2, 17, 2)
    np.testing.assert_array_equal(
        downsample_mean(d, "yx").compute(), np.round(ref.mean(axis=(1, 3))).astype(np.uint16)
    )
    lab = downsample_labels(d, "yx", (18, 17)).compute()
    # the fine pixel under the centre of each coarse pixel
    rows = np.floor((np.arange(18) + 0.5) * 35 / 18).astype(int)
    cols = np.floor((np.arange(17) + 0.5) * 33 / 17).astype(int)
    assert rows[0] == 0 and rows[-1] == 34 and cols[-1] == 32
    np.testing.assert_array_equal(lab, x[np.ix_(rows, cols)])
    assert set(np.unique(lab)) <= set(np.unique(x))


# --- bad input -----------------------------------------------------------------------


def test_write_image_refuses_existing_and_can_overwrite(tmp_path: Path) -> None:
    dest = tmp_path / "img.zarr"
    write_image(dest, np.zeros((4, 4), np.uint8), "yx")
    with pytest.raises(OutputExistsError, match=r"img\.zarr already exists"):
        write_image(dest, np.ones((4, 4), np.uint8), "yx")
    assert read_ome_zarr(dest).data.compute().max() == 0
    write_image(dest, np.ones((4, 4), np.uint8), "yx", overwrite=True)
    assert read_ome_zarr(dest).data.compute().min() == 1
    assert _siblings(dest) == ["img.zarr"]


def test_failed_write_leaves_nothing_and_keeps_the_old_store(tmp_path: Path) -> None:
    dest = tmp_path / "img.zarr"
    write_image(dest, np.full((4, 4), 5, np.uint8), "yx")

    def boom(block: np.ndarray) -> np.ndarray:
        raise RuntimeError("disk on fire")

    bad = da.zeros((4, 4), dtype=np.uint8, chunks=2).map_blocks(boom, dtype=np.uint8)
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_image(dest, bad, "yx", overwrite=True)
    assert _siblings(dest) == ["img.zarr"]
    assert read_ome_zarr(dest).data.compute().max() == 5

    with pytest.raises(RuntimeError, match="disk on fire"):
        write_image(tmp_path / "new.zarr", bad, "yx")
    assert _siblings(dest) == ["img.zarr"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"axes": "zyx"}, UnsupportedAxesError, "do not match data with 2 dimensions"),
        ({"axes": "xy"}, UnsupportedAxesError, "not in t, c, z, y, x order"),
        ({"scale": (1.0,)}, MetadataError, "one value per axis"),
        ({"scale": (1.0, -1.0)}, MetadataError, "must be positive"),
        ({"channels": CHANNELS}, MetadataError, "2 channel descriptions for 1 channel"),
        ({"ngff_version": "0.6"}, MetadataError, "NGFF version '0.6' is not supported"),
        ({"n_levels": 0}, MetadataError, "n_levels must be at least 1"),
    ],
)
def test_write_image_bad_arguments(tmp_path: Path, kwargs: dict, error: type, match: str) -> None:
    args = {"axes": "yx", **kwargs}
    with pytest.raises(error, match=match):
        write_image(tmp_path / "bad.zarr", np.zeros((4, 4), np.uint8), **args)
    assert list(tmp_path.iterdir()) == []


def test_write_labels_bad_input(tmp_path: Path) -> None:
    dest = write_image(tmp_path / "img.zarr", np.zeros((2, 8, 8), np.uint8), "cyx")
    with pytest.raises(MetadataError, match=r"shape \(8, 9\) does not match the image \(\(8, 8\)"):
        write_labels(dest, np.zeros((8, 9), np.uint8), "x")
    with pytest.raises(MetadataError, match="labels must be integers, not float32"):
        write_labels(dest, np.zeros((8, 8), np.float32), "x")
    with pytest.raises(MetadataError, match="not a valid name"):
        write_labels(dest, np.zeros((8, 8), np.uint8), "../evil")
    with pytest.raises(MetadataError, match="four integers 0-255"):
        write_labels(dest, np.zeros((8, 8), np.uint8), "x", colors={1: (300, 0, 0, 255)})
    with pytest.raises(MetadataError, match="same label values"):
        write_labels(
            dest, np.zeros((8, 8), np.uint8), "x", colors={1: (1, 1, 1, 1)}, properties={2: {}}
        )
    assert not (Path(dest) / "labels").exists() or read_ome_zarr(dest).labels == {}

    with pytest.raises(NotOmeZarrError):
        write_labels(tmp_path / "nothing.zarr", np.zeros((8, 8), np.uint8), "x")
    seg = write_label_image(tmp_path / "seg.zarr", np.zeros((8, 8), np.uint8), "yx")
    with pytest.raises(NotOmeZarrError, match="is a label image"):
        write_labels(seg, np.zeros((8, 8), np.uint8), "x")


# --- atomic helpers --------------------------------------------------------------------


def test_atomic_write_text_and_bytes(tmp_path: Path) -> None:
    f = tmp_path / "a.txt"
    atomic_write_text(f, "one")
    atomic_write_text(f, "two")
    assert f.read_text() == "two"
    with pytest.raises(OutputExistsError, match=r"a\.txt already exists"):
        atomic_write_bytes(f, b"three", overwrite=False)
    assert f.read_text() == "two"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01", overwrite=False)
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_atomic_dir_cleans_up_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out"
    with pytest.raises(ValueError, match="half way"), atomic_dir(dest) as tmp:
        (tmp / "part").write_text("x")
        raise ValueError("half way")
    assert list(tmp_path.iterdir()) == []

    with atomic_dir(dest) as tmp:
        (tmp / "done").write_text("ok")
        assert not dest.exists()  # nothing visible before the end
    assert (dest / "done").read_text() == "ok"

    with pytest.raises(OutputExistsError):
        with atomic_dir(dest):
            pass
    with atomic_dir(dest, overwrite=True) as tmp:
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


@pytest.mark.parametrize(
    ("shape", "axes", "chunks"),
    [((70, 90), "yx", (16, 32)), ((3, 2, 9, 40, 50), "tczyx", (1, 1, 4, 16, 16))],
)
def test_store_in_regions_writes_every_pixel_once(tmp_path, monkeypatch, shape, axes, chunks):
    """Region by region (whole chunks, one frame/channel each) gives the array itself."""
    import dask.array as da
    import zarr

    import napari_fbias.io.ome_zarr_write as writer

    data = np.arange(np.prod(shape), dtype=np.int64).reshape(shape)
    regions = []
    real_store = da.store

    def counting_store(part, target, regions=None, **kwargs):
        seen.append(regions)
        return real_store(part, target, regions=regions, **kwargs)

    seen = regions
    monkeypatch.setattr(writer.da, "store", counting_store)
    target = zarr.open_array(
        str(tmp_path / "x.zarr"), mode="w", shape=shape, chunks=chunks, dtype=data.dtype
    )
    source = da.from_array(data, chunks=chunks)
    writer.store_in_regions(source, target, chunks, axes, region_pixels=32 * 32)
    np.testing.assert_array_equal(target[...], data)
    assert len(regions) > 1
    per_frame = np.prod([c for c, a in zip(chunks, axes, strict=True) if a not in "zyx"])
    for region in regions:
        for sl, c, n in zip(region, chunks, shape, strict=True):
            assert sl.start % c == 0 and (sl.stop % c == 0 or sl.stop == n), "whole chunks"
        one_chunk = np.prod(chunks)
        assert np.prod([sl.stop - sl.start for sl in region]) <= max(32 * 32 * per_frame, one_chunk)
