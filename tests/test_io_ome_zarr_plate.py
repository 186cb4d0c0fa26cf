"""OME-Zarr plates and bioformats2raw series, on stores written by ome-zarr-py (not by us).

Plates in NGFF 0.4 and 0.5, bare and wrapped in a bioformats2raw container;
containers with an ``OME/series`` list and without one; ``file://`` URLs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04, FormatV05
from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata

from napari_fbias.io.errors import MetadataError, NotOmeZarrError
from napari_fbias.io.ome_zarr_plate import (
    container_kind,
    list_series,
    parse_well_names,
    plate_overview,
    read_plate,
)
from napari_fbias.io.ome_zarr_read import read_ome_zarr

ROWS = ["A", "B"]
COLUMNS = ["1", "2", "3"]
#: wells written (B/2 is missing: an empty well of the plate)
WELLS = ["A/1", "A/2", "A/3", "B/1", "B/3"]
FIELDS = 2


def _fmt(version: str) -> FormatV04 | FormatV05:
    return FormatV04() if version == "0.4" else FormatV05()


def field_pixels(well: str, field: int) -> np.ndarray:
    """Distinct pixels per well and field (so a mix-up shows)."""
    r, c = well.split("/")
    value = 100 * (ROWS.index(r) + 1) + 10 * int(c) + field
    data = np.full((2, 40, 48), value, dtype=np.uint16)
    data[1] += 1000  # second channel
    return data


def write_plate(root: Path, version: str, *, wrap: bool = False) -> Path:
    """A 2x3 plate (5 wells written, 2 fields each, 2 channels) written by ome-zarr-py."""
    fmt = _fmt(version)
    top = zarr.open_group(str(root), mode="w", zarr_format=fmt.zarr_format)
    if wrap:  # bioformats2raw: the layout attribute beside the plate, and an OME group
        top.attrs["bioformats2raw.layout"] = 3
        top.create_group("OME")
    write_plate_metadata(top, ROWS, COLUMNS, WELLS, fmt=fmt, field_count=FIELDS, name="screen 7")
    for well in WELLS:
        r, c = well.split("/")
        wg = top.require_group(r).require_group(c)
        write_well_metadata(wg, [str(f) for f in range(FIELDS)], fmt=fmt)
        for f in range(FIELDS):
            write_image(
                field_pixels(well, f),
                wg.require_group(str(f)),
                axes="cyx",
                fmt=fmt,
                scale_factors=[2, 4],
                scale={"c": 1.0, "y": 0.65, "x": 0.65},
            )
    return root


@pytest.fixture(params=["0.4", "0.5"])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.mark.parametrize("wrap", [False, True], ids=["plate", "bioformats2raw-plate"])
def test_a_plate_reads_its_layout_and_each_field_opens(
    tmp_path: Path, version: str, wrap: bool
) -> None:
    root = write_plate(tmp_path / "plate.ome.zarr", version, wrap=wrap)
    assert container_kind(root) == "plate"
    plate = read_plate(root)
    assert plate.name == "screen 7"
    assert plate.rows == tuple(ROWS) and plate.columns == tuple(COLUMNS)
    assert [w.name for w in plate.wells] == ["A1", "A2", "A3", "B1", "B3"]
    assert all(len(w.fields) == FIELDS for w in plate.wells)
    fields = plate.fields()
    assert len(fields) == len(WELLS) * FIELDS
    chosen = plate.fields(wells=parse_well_names("b3, A01"), fields=[1])
    assert [(f.well.name, f.index, f.stem) for f in chosen] == [
        ("B3", 1, "B3_f1"),
        ("A1", 1, "A1_f1"),
    ]
    for f in chosen:
        img = read_ome_zarr(f.source)
        assert img.axes == ("c", "y", "x") and img.scales[0] == pytest.approx((1.0, 0.65, 0.65))
        np.testing.assert_array_equal(
            img.levels[0].compute(), field_pixels(f"{f.well.row}/{f.well.column}", f.index)
        )


def test_a_plate_is_not_opened_as_one_image_and_says_how(tmp_path: Path, version: str) -> None:
    root = write_plate(tmp_path / "plate.ome.zarr", version, wrap=True)
    # the plate takes precedence over the bioformats2raw layout (no misleading ".../0" error)
    with pytest.raises(NotOmeZarrError, match="plate") as info:
        read_ome_zarr(root)
    assert "/0 is not" not in str(info.value)
    with pytest.raises(NotOmeZarrError, match="well of a plate"):
        read_ome_zarr(root / "A" / "1")


def test_selections_that_do_not_fit_are_refused(tmp_path: Path) -> None:
    plate = read_plate(write_plate(tmp_path / "p.zarr", "0.4"))
    with pytest.raises(KeyError, match="no well 'B2'"):
        plate.fields(wells=["B2"])  # a well of the grid that was never written
    with pytest.raises(ValueError, match="no field"):
        plate.fields(fields=[5])
    with pytest.raises(ValueError, match="start at 0"):
        plate.fields(fields=[-1])
    with pytest.raises(ValueError, match="not a well name"):
        parse_well_names("A1,12")


def test_the_overview_tiles_every_well_lazily(tmp_path: Path, version: str) -> None:
    plate = read_plate(write_plate(tmp_path / "plate.ome.zarr", version))
    over = plate_overview(plate, field=1, tile=24)
    # each field is 40x48 at level 0, 20x24 at level 1: level 1 fits a 24-pixel tile
    assert over.axes == ("c", "y", "x")
    assert over.shape == (2, 2 * 20, 3 * 24)
    assert over.scales[0] == pytest.approx((1.0, 1.3, 1.3))
    info = over.metadata["plate"]
    assert info["tile"] == (20, 24) and info["origins"]["B3"] == (20, 48)
    pixels = over.levels[0].compute()
    for well in WELLS:
        r, c = well.split("/")
        y, x = info["origins"][f"{r}{c}"]
        np.testing.assert_array_equal(
            pixels[:, y : y + 20, x : x + 24], field_pixels(well, 1)[:, ::2, ::2]
        )
    assert not pixels[:, 20:40, 24:48].any()  # B2 was never written: black


def test_mismatched_wells_are_named(tmp_path: Path) -> None:
    root = write_plate(tmp_path / "plate.zarr", "0.4")
    wg = zarr.open_group(str(root / "B" / "3" / "0"), mode="w", zarr_format=2)
    write_image(
        np.zeros((3, 40, 48), np.uint16), wg, axes="cyx", fmt=FormatV04(), scale_factors=[2, 4]
    )
    with pytest.raises(MetadataError, match="well B3's field 0"):
        plate_overview(read_plate(root), field=0, tile=24)


def test_broken_plate_metadata_is_named(tmp_path: Path) -> None:
    root = tmp_path / "bad.zarr"
    g = zarr.open_group(str(root), mode="w", zarr_format=2)
    g.attrs["plate"] = {
        "rows": [{"name": "A"}],
        "columns": [{"name": "1"}],
        "wells": [{"path": "../x"}],
    }
    with pytest.raises(MetadataError, match="wells\\[0\\]"):
        read_plate(root)
    with pytest.raises(NotOmeZarrError, match="not an OME-Zarr plate"):
        read_plate(write_series(tmp_path / "s.zarr", "0.4", listed=True))


def write_series(root: Path, version: str, *, listed: bool, n: int = 3) -> Path:
    """A bioformats2raw container of ``n`` images, with or without the OME/series list."""
    fmt = _fmt(version)
    top = zarr.open_group(str(root), mode="w", zarr_format=fmt.zarr_format)
    top.attrs["bioformats2raw.layout"] = 3
    ome = top.create_group("OME")
    # the series in another order than their group names (the list decides)
    paths = [str(i) for i in range(n)][::-1] if listed else [str(i) for i in range(n)]
    if listed:
        ome.attrs["series"] = paths
    for i in range(n):
        write_image(
            np.full((16, 12), i + 1, np.uint8),
            top.require_group(str(i)),
            axes="yx",
            fmt=fmt,
            scale_factors=[],
        )
    return root


@pytest.mark.parametrize("listed", [True, False], ids=["OME-series", "consecutive"])
def test_every_series_of_a_bioformats2raw_container_opens(
    tmp_path: Path, version: str, listed: bool
) -> None:
    root = write_series(tmp_path / "b2r.zarr", version, listed=listed)
    assert container_kind(root) == "series"
    paths = list_series(root)
    assert paths == (["2", "1", "0"] if listed else ["0", "1", "2"])
    first = read_ome_zarr(root)  # the first series, and it says there are more
    assert first.metadata["series"] == {"index": 0, "count": 3, "path": paths[0]}
    for i, p in enumerate(paths):
        img = read_ome_zarr(root, series=i)
        assert int(img.levels[0][0, 0].compute()) == int(p) + 1
        assert img.metadata["group"] == p
    with pytest.raises(NotOmeZarrError, match="3 series"):
        read_ome_zarr(root, series=3)


def test_a_file_url_opens_the_local_store(tmp_path: Path) -> None:
    root = write_series(tmp_path / "with space.zarr", "0.4", listed=False)
    url = root.as_uri()  # file:///.../with%20space.zarr
    assert url.startswith("file:///") and "%20" in url
    img = read_ome_zarr(url)
    assert img.shape == (16, 12)
    assert container_kind(url) == "series"
    with pytest.raises(Exception, match="not the host"):
        read_ome_zarr("file://server/share/image.zarr")


def test_a_server_ignoring_range_requests_is_named_for_sharded_arrays(tmp_path: Path) -> None:
    """Python's http.server ignores Range: a sharded zarr v3 array cannot be read through it."""
    from helpers.http_server import FolderServer
    from napari_fbias.io.errors import UnreachableSourceError

    root = tmp_path / "sharded.ome.zarr"
    g = zarr.open_group(str(root), mode="w", zarr_format=3)
    arr = g.create_array("0", shape=(64, 64), chunks=(16, 16), shards=(32, 32), dtype="uint16")
    arr[:] = np.arange(64 * 64, dtype=np.uint16).reshape(64, 64)
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    scale = [{"type": "scale", "scale": [1.0, 1.0]}]
    g.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {"axes": axes, "datasets": [{"path": "0", "coordinateTransformations": scale}]}
        ],
    }
    np.testing.assert_array_equal(read_ome_zarr(root).levels[0].compute(), arr[:])  # locally fine
    with FolderServer(tmp_path) as server:
        img = read_ome_zarr(server.url_for("sharded.ome.zarr"))
        with pytest.raises(UnreachableSourceError, match="does not support HTTP range requests"):
            img.levels[0][:16, :16].compute()
