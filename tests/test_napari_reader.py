"""The napari reader and writer contributions, with real viewers (run under xvfb-run)."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import tifffile
import zarr

from helpers.http_server import FolderServer
from napari_fbias._layers import channel_colormap, image_to_layer_data, label_colormap
from napari_fbias._reader import (
    napari_get_reader,
    napari_get_tiff_reader,
    read_ome_zarr_layers,
    read_tiff_layers,
)
from napari_fbias._writer import label_name, write_labels_layer
from napari_fbias.io import samples
from napari_fbias.io.errors import OutputExistsError
from napari_fbias.io.image import Channel, from_array
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import write_image, write_image_with_labels
from napari_fbias.io.tiff import read_tiff

RNG = np.random.default_rng(4)
PLUGIN = "napari-fbias"


def _store_5d(tmp_path: Path, version: str = "0.4") -> Path:
    data = RNG.integers(0, 1000, (2, 2, 3, 32, 32), dtype=np.uint16)
    mask = (data[:, 0] > 500).astype(np.uint8)
    return Path(
        write_image_with_labels(
            tmp_path / f"five_{version.replace('.', '')}.ome.zarr",
            data,
            "tczyx",
            {"cells": mask},
            scale=(5.0, 1.0, 2.0, 0.5, 0.5),
            units=("second", None, "micrometer", "micrometer", "micrometer"),
            channels=(
                Channel("DAPI", "0000FF", (10.0, 500.0), True),
                Channel("GFP", "00FF00", (0.0, 900.0), False),
            ),
            n_levels=2,
            ngff_version=version,
            label_colors={"cells": {1: (255, 0, 0, 255)}},
        )
    )


def _store_4d_v05(tmp_path: Path) -> Path:
    data = RNG.integers(0, 255, (3, 4, 16, 16), dtype=np.uint8)
    return Path(
        write_image(
            tmp_path / "four.ome.zarr",
            data,
            "czyx",
            scale=(1.0, 3.0, 0.2, 0.2),
            channels=(
                Channel("a", "FF8800", (0.0, 200.0)),
                Channel("b", None, None),
                Channel("c", "FF00FF", (5.0, 100.0)),
            ),
            ngff_version="0.5",
        )
    )


# --- napari_get_reader: only for OME-Zarr ------------------------------------------------


def test_get_reader_answers_only_for_ome_zarr(tmp_path: Path) -> None:
    store = _store_4d_v05(tmp_path)
    assert napari_get_reader(str(store)) is read_ome_zarr_layers
    assert napari_get_reader([str(store)]) is read_ome_zarr_layers
    assert napari_get_reader(store) is read_ome_zarr_layers

    tif = tmp_path / "a.tif"
    tifffile.imwrite(tif, np.zeros((4, 4), np.uint8))
    plain = tmp_path / "plain.zarr"
    zarr.open_group(str(plain), mode="w").attrs.put({"x": 1})
    (tmp_path / "notes.txt").write_text("hi")
    for other in (
        str(tif),
        str(plain),
        str(tmp_path / "notes.txt"),
        str(tmp_path / "missing.zarr"),
        [str(store), str(store)],
        "omero://server/Image:1",
        str(tmp_path),
    ):
        assert napari_get_reader(other) is None, other


def test_get_tiff_reader_answers_only_for_tiff_it_can_read(tmp_path: Path) -> None:
    ome = samples.sample_path("nuclei_2d.ome.tif")
    assert napari_get_tiff_reader(str(ome)) is read_tiff_layers
    assert napari_get_tiff_reader([ome]) is read_tiff_layers
    plain = tmp_path / "plain.TIF"
    tifffile.imwrite(plain, np.zeros((4, 4), np.uint8))
    assert napari_get_tiff_reader(str(plain)) is read_tiff_layers
    four_d = tmp_path / "four_d.tif"  # no metadata: its axes cannot be told
    tifffile.imwrite(four_d, np.zeros((2, 2, 4, 4), np.uint8), photometric="minisblack")
    broken = tmp_path / "broken.tif"
    broken.write_text("not a tiff")
    (tmp_path / "notes.txt").write_text("hi")
    for other in (
        str(four_d),
        str(broken),
        str(tmp_path / "missing.tif"),
        str(tmp_path / "notes.txt"),
        str(_store_4d_v05(tmp_path)),
        "https://host/image.ome.tif",
        [str(ome), str(ome)],
    ):
        assert napari_get_tiff_reader(other) is None, other


def test_manifest_claims_only_what_the_readers_read(tmp_path: Path) -> None:
    from npe2 import PluginManager, PluginManifest

    import napari_fbias

    pm = PluginManager()  # our manifest only, as installed
    pm.register(PluginManifest.from_file(Path(napari_fbias.__file__).parent / "napari.yaml"))

    def ours(path: str) -> list[str]:
        return sorted(
            r.command for r in pm.iter_compatible_readers([path]) if r.plugin_name == PLUGIN
        )

    for path in ("a.txt", "a.png", "a.czi", "a.npy", "https://host/image.png"):
        assert ours(path) == [], path
    assert ours("a.ome.tif") == ours("a.TIFF") == ["napari-fbias.reader.tiff"]
    zarr_reader = ["napari-fbias.reader.ome_zarr"]
    assert ours("a.ome.zarr") == ours("https://host/a.zarr") == zarr_reader
    assert ours(str(tmp_path)) == zarr_reader  # a folder may be an OME-Zarr


# --- layer data (plain data, no viewer) ---------------------------------------------------


def test_image_to_layer_data_kwargs(tmp_path: Path) -> None:
    layers = image_to_layer_data(read_ome_zarr(_store_5d(tmp_path)))
    assert [t[2] for t in layers] == ["image", "labels"]
    data, kw, _ = layers[0]
    assert isinstance(data, list) and all(isinstance(d, da.Array) for d in data)
    assert kw["channel_axis"] == 1
    assert kw["name"] == ["DAPI", "GFP"]
    assert kw["colormap"] == ["blue", "green"]
    assert kw["contrast_limits"] == [(10.0, 500.0), (0.0, 900.0)]
    assert kw["visible"] == [True, False]
    assert kw["scale"] == (5.0, 2.0, 0.5, 0.5)
    assert kw["axis_labels"] == ("t", "z", "y", "x")
    assert kw["units"] == ("second", "micrometer", "micrometer", "micrometer")
    assert kw["multiscale"] is True and kw["rgb"] is False
    assert kw["metadata"]["axes"] == "tzyx"
    assert kw["metadata"]["fbias"]["axes"] == "tczyx"
    lab_data, lab_kw, _ = layers[1]
    assert lab_kw["name"] == "cells"
    assert lab_kw["scale"] == kw["scale"]
    assert lab_kw["colormap"][1] == [1.0, 0.0, 0.0, 1.0]
    assert lab_kw["metadata"]["parent_source"].endswith("five_04.ome.zarr")


def test_single_channel_without_c_and_colormaps() -> None:
    img = from_array(np.zeros((4, 5), np.uint8), "yx", scale=(0.5, 0.5), name="plain")
    [(data, kw, kind)] = image_to_layer_data(img)
    assert kind == "image" and kw["name"] == "plain" and kw["multiscale"] is False
    assert "channel_axis" not in kw and isinstance(data, da.Array)
    assert channel_colormap(None) == "gray"
    assert channel_colormap("ff00ff") == "magenta"
    assert channel_colormap("FF8800") == {
        "colors": [[0.0, 0.0, 0.0, 1.0], [1.0, 136 / 255, 0.0, 1.0]],
        "name": "#FF8800",
    }
    assert label_colormap({"colors": []}) is None
    assert label_colormap(None) is None


# --- real viewers -----------------------------------------------------------------------


def test_viewer_opens_5d_ngff04(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(_store_5d(tmp_path)), plugin=PLUGIN)
    assert [ly.name for ly in layers] == ["DAPI", "GFP", "cells"]
    dapi, gfp, cells = layers
    assert dapi.colormap.name == "blue" and gfp.colormap.name == "green"
    assert list(dapi.contrast_limits) == [10.0, 500.0]
    assert dapi.visible and not gfp.visible
    assert dapi.multiscale and len(dapi.data) == 2
    assert isinstance(dapi.data[0], da.Array)  # still lazy
    np.testing.assert_allclose(dapi.scale, (5.0, 2.0, 0.5, 0.5))
    assert tuple(dapi.axis_labels) == ("t", "z", "y", "x")
    assert str(dapi.units[0]) == "second" and str(dapi.units[-1]) == "micrometer"
    assert cells.__class__.__name__ == "Labels"
    np.testing.assert_allclose(cells.scale, dapi.scale)
    np.testing.assert_allclose(cells.colormap.map(np.array([1]))[0], [1, 0, 0, 1])
    assert dapi.metadata["fbias"]["labels"] == ["cells"]


def test_viewer_opens_4d_ngff05(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    layers = viewer.open(str(_store_4d_v05(tmp_path)), plugin=PLUGIN)
    assert [ly.name for ly in layers] == ["a", "b", "c"]
    assert layers[0].colormap.name == "#FF8800"
    np.testing.assert_allclose(layers[0].colormap.colors[-1], [1.0, 136 / 255, 0.0, 1.0])
    assert layers[1].colormap.name == "gray"
    assert layers[2].colormap.name == "magenta"
    assert list(layers[2].contrast_limits) == [5.0, 100.0]
    assert not layers[0].multiscale and isinstance(layers[0].data, da.Array)
    np.testing.assert_allclose(layers[0].scale, (3.0, 0.2, 0.2))


def test_viewer_opens_remote_url(
    make_napari_viewer, tmp_path: Path, http_folder: FolderServer
) -> None:
    _store_5d(tmp_path)
    url = http_folder.url_for("five_04.ome.zarr")
    viewer = make_napari_viewer()
    layers = viewer.open(url, plugin=PLUGIN)
    assert [ly.name for ly in layers] == ["DAPI", "GFP", "cells"]
    assert isinstance(layers[0].data[0], da.Array)
    assert layers[0].metadata["source"] == url
    # only what the view needs was read: not every chunk of the full resolution
    n_chunks_level0 = 2 * 2 * 3  # t * c * z chunks of 32x32 at full resolution
    full_res = [r for r in http_folder.chunk_requests() if "/0/" in r and "labels" not in r]
    assert len(full_res) < n_chunks_level0


def test_viewer_opens_ome_tiff_with_pixel_size_axes_and_channels(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    [nuclei] = viewer.open(str(samples.sample_path("nuclei_2d.ome.tif")), plugin=PLUGIN)
    np.testing.assert_allclose(nuclei.scale, (0.65, 0.65))
    assert nuclei.metadata["axes"] == "yx" and nuclei.metadata["fbias"]["axes"] == "yx"
    assert str(nuclei.units[0]) == "micrometer"
    assert isinstance(nuclei.data, da.Array)  # lazy
    layers = viewer.open(str(samples.sample_path("cells_3d.ome.tif")), plugin=PLUGIN)
    assert [ly.name for ly in layers] == ["DAPI", "Membrane"]
    img = samples.sample_path("cells_3d.ome.tif")
    expected = read_tiff(img)
    z_y_x = tuple(s for a, s in zip(expected.axes, expected.scales[0], strict=True) if a != "c")
    np.testing.assert_allclose(layers[0].scale, z_y_x)


# --- the writer ---------------------------------------------------------------------------


def test_save_labels_layer_into_existing_image(make_napari_viewer, tmp_path: Path) -> None:
    store = _store_4d_v05(tmp_path)
    viewer = make_napari_viewer()
    viewer.open(str(store), plugin=PLUGIN)
    seg = np.zeros((4, 16, 16), np.uint16)
    seg[:, 4:8, 4:8] = 3
    layer = viewer.add_labels(seg, name="my nuclei", scale=(3.0, 0.2, 0.2))
    viewer.layers.selection = {layer}
    written = viewer.layers.save(str(store), selected=True, plugin=PLUGIN)
    assert written == [str(store / "labels" / "my_nuclei")]

    img = read_ome_zarr(store)
    np.testing.assert_array_equal(img.labels["my_nuclei"].data.compute(), seg)
    assert img.labels["my_nuclei"].scale == pytest.approx((3.0, 0.2, 0.2))

    # saving again under the same name is refused, the first labels stay
    with pytest.raises(OutputExistsError, match="my_nuclei"):
        write_labels_layer(str(store), seg * 0, {"name": "my nuclei"})
    assert img.labels["my_nuclei"].data.compute().max() == 3


def test_save_labels_layer_to_new_store_and_reopen(make_napari_viewer, tmp_path: Path) -> None:
    viewer = make_napari_viewer()
    seg = RNG.integers(0, 5, (3, 12, 10), dtype=np.int32)
    layer = viewer.add_labels(seg, name="seg", scale=(2.0, 0.5, 0.5), units=("micrometer",) * 3)
    viewer.layers.selection = {layer}
    dest = tmp_path / "seg.ome.zarr"
    assert viewer.layers.save(str(dest), selected=True, plugin=PLUGIN) == [str(dest)]

    img = read_ome_zarr(dest)
    assert img.is_label and img.axes == ("z", "y", "x")
    assert img.units == ("micrometer",) * 3
    np.testing.assert_array_equal(img.data.compute(), seg)

    viewer2 = make_napari_viewer()
    [reopened] = viewer2.open(str(dest), plugin=PLUGIN)
    assert reopened.__class__.__name__ == "Labels" and reopened.name == "seg"
    np.testing.assert_allclose(reopened.scale, (2.0, 0.5, 0.5))


def test_writer_refuses_other_existing_paths(tmp_path: Path) -> None:
    other = tmp_path / "results"
    other.mkdir()
    (other / "table.csv").write_text("a,b\n")
    with pytest.raises(OutputExistsError, match="exists and is not an OME-Zarr image"):
        write_labels_layer(str(other), np.zeros((4, 4), np.uint8), {"name": "x"})
    assert [p.name for p in other.iterdir()] == ["table.csv"]
    assert label_name("  my cells (v2) ") == "my_cells_v2"


def test_viewer_opens_a_plate_as_an_overview_with_its_wells_named(
    make_napari_viewer, tmp_path: Path
) -> None:
    from test_io_ome_zarr_plate import write_plate

    root = write_plate(tmp_path / "plate.ome.zarr", "0.5", wrap=True)  # ome-zarr-py, wrapped
    assert napari_get_reader(str(root)) is not None
    viewer = make_napari_viewer()
    layers = viewer.open(str(root), plugin=PLUGIN)
    *channels, wells = layers
    assert len(channels) == 2 and isinstance(channels[0].data, da.Array)  # lazy
    assert channels[0].data.shape == (2 * 40, 3 * 48)  # 40x48 fields fit a tile at full size
    assert wells.__class__.__name__ == "Shapes" and len(wells.data) == 5
    assert list(wells.features["well"]) == ["A1", "A2", "A3", "B1", "B3"]
    np.testing.assert_allclose(wells.scale, channels[0].scale)
    np.testing.assert_allclose(channels[0].scale, (0.65, 0.65))


def test_viewer_opens_every_series_of_a_bioformats2raw_container(
    make_napari_viewer, tmp_path: Path
) -> None:
    from test_io_ome_zarr_plate import write_series

    root = write_series(tmp_path / "b2r.zarr", "0.4", listed=True)
    viewer = make_napari_viewer()
    with pytest.warns(UserWarning, match="3 series"):
        layers = viewer.open(str(root), plugin=PLUGIN)
    assert [ly.name.rsplit(" ", 2)[-2:] for ly in layers] == [
        ["(series", "0)"],
        ["(series", "1)"],
        ["(series", "2)"],
    ]
    assert [int(np.asarray(ly.data[0, 0])) for ly in layers] == [3, 2, 1]  # OME/series order
