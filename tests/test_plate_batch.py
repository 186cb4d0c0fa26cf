"""``fbias run`` over an OME-Zarr plate (written by ome-zarr-py) and a bioformats2raw container:
every field or a selection, resumable, with plate tables and a heat map."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image, write_plate_metadata, write_well_metadata
from skimage.draw import disk

from napari_fbias.cli import main
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch
from napari_fbias.pipeline.errors import BatchError
from napari_fbias.pipeline.inputs import Selection, expand_inputs
from test_io_ome_zarr_plate import write_series

ROWS, COLUMNS = ["A", "B"], ["1", "2"]
WELLS = ["A/1", "A/2", "B/1"]  # B/2 is an empty position of the plate


def n_cells(well: str, field: int) -> int:
    """Known number of cells in each field: differs per well and per field."""
    r, c = well.split("/")
    return 1 + ROWS.index(r) * 2 + int(c) + field


def field_image(well: str, field: int) -> np.ndarray:
    img = np.full((64, 96), 100, np.uint16)
    for k in range(n_cells(well, field)):
        rr, cc = disk((16 + 32 * (k // 4), 12 + 24 * (k % 4)), 7)
        img[rr, cc] = 2000
    return img


def write_cell_plate(root: Path) -> Path:
    fmt = FormatV04()
    top = zarr.open_group(str(root), mode="w", zarr_format=2)
    write_plate_metadata(top, ROWS, COLUMNS, WELLS, fmt=fmt, field_count=2, name="screen")
    for well in WELLS:
        r, c = well.split("/")
        wg = top.require_group(r).require_group(c)
        write_well_metadata(wg, ["0", "1"], fmt=fmt)
        for f in range(2):
            write_image(
                field_image(well, f),
                wg.require_group(str(f)),
                axes="yx",
                fmt=fmt,
                scale_factors=[2],
                scale={"y": 0.5, "x": 0.5},
            )
    return root


@pytest.fixture
def counting(tmp_path: Path) -> Path:
    pipeline = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "count-cells",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {"id": "cells", "op": "segment.threshold", "inputs": {"image": "image"}},
                {
                    "id": "props",
                    "op": "measure.regionprops",
                    "inputs": {"labels": "cells", "image": "image"},
                },
            ],
            "outputs": {"cells": {"from": "cells"}, "props": {"from": "props"}},
        }
    )
    return pipeline.dump(tmp_path / "count.fbias.yaml")


def test_a_plate_runs_field_by_field_into_plate_tables(tmp_path: Path, counting: Path) -> None:
    plate = write_cell_plate(tmp_path / "screen.ome.zarr")
    out = tmp_path / "results"
    assert main(["run", str(counting), str(plate), "-o", str(out)]) == 0
    stems = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert stems == [f"screen_{w.replace('/', '')}_f{f}" for w in WELLS for f in (0, 1)]
    summary = pd.read_csv(out / "screen_plate_summary.csv")
    assert list(summary.columns[:6]) == ["row", "column", "well", "field", "folder", "status"]
    for row in summary.itertuples():
        assert row.cells_objects == n_cells(f"{row.row}/{row.column}", row.field)
        assert row.props_rows == row.cells_objects
    objects = pd.read_csv(out / "screen_plate_objects.csv")
    # one table output: no "output" column
    assert list(objects.columns[:5]) == ["row", "column", "well", "field", "label"]
    assert len(objects) == summary["cells_objects"].sum()
    assert set(objects["well"]) == {"A1", "A2", "B1"}
    assert (out / "screen_plate_heatmap.png").read_bytes()[:4] == b"\x89PNG"

    # run again: every field is skipped, the tables are the same
    first = (out / "screen_plate_summary.csv").read_text()
    report = run_batch(counting, plate, out)
    assert report.count("skipped") == 6
    assert (out / "screen_plate_summary.csv").read_text().replace("skipped", "done") == first


def test_wells_and_fields_can_be_chosen(tmp_path: Path, counting: Path) -> None:
    plate = write_cell_plate(tmp_path / "screen.ome.zarr")
    out = tmp_path / "some"
    args = ["run", str(counting), str(plate), "-o", str(out), "--wells", "b1,A02", "--fields", "1"]
    assert main([*args, "--heatmap", "props_area_mean"]) == 0
    summary = pd.read_csv(out / "screen_plate_summary.csv")
    assert list(summary["well"]) == ["B1", "A2"] and set(summary["field"]) == {1}
    with pytest.raises(BatchError, match="no well 'B2'"):
        expand_inputs(plate, Selection(wells=("B2",)))
    assert main(["run", str(counting), str(plate), "-o", str(out), "--fields", "x"]) != 0
    bad = main(["run", str(counting), str(plate), "-o", str(out), "--heatmap", "nope"])
    assert bad != 0


def test_every_series_of_a_bioformats2raw_container_runs(tmp_path: Path) -> None:
    root = write_series(tmp_path / "b2r.zarr", "0.4", listed=False)
    items = expand_inputs(root)
    assert [i.stem for i in items] == ["b2r_s0", "b2r_s1", "b2r_s2"]
    assert [i.stem for i in expand_inputs(root, Selection(series=(2,)))] == ["b2r_s2"]
    with pytest.raises(BatchError, match="no series"):
        expand_inputs(root, Selection(series=(5,)))
    pipeline = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "threshold",
            "inputs": {"image": {"kind": "image"}},
            "steps": [{"id": "mask", "op": "segment.threshold", "inputs": {"image": "image"}}],
            "outputs": {"mask": {"from": "mask"}},
        }
    )
    report = run_batch(pipeline, root, tmp_path / "out", select=Selection(series=(1, 2)))
    assert report.ok and [i.stem for i in report.items] == ["b2r_s1", "b2r_s2"]
    assert not report.plate_files


def test_the_heat_map_as_data_holds_each_wells_mean(tmp_path: Path, counting: Path) -> None:
    from napari_fbias.pipeline.plate_tables import check_plate_result

    plate = write_cell_plate(tmp_path / "screen.ome.zarr")
    report = run_batch(counting, plate, tmp_path / "out")
    result = check_plate_result(report.plates["screen"])
    assert result["column"] == "cells_objects"
    assert result["rows"] == ROWS and result["columns"] == COLUMNS
    for i, r in enumerate(ROWS):
        for j, c in enumerate(COLUMNS):
            well = f"{r}/{c}"
            want = np.mean([n_cells(well, f) for f in (0, 1)]) if well in WELLS else None
            assert result["values"][i][j] == want, well  # B2 is empty: None
    assert result["fields"] == 6 and result["failed"] == 0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ([1, 2], "must be a mapping"),
        ({"rows": "A", "columns": ["1"], "values": [[1]]}, "lists of rows"),
        ({"rows": ["A"] * 33, "columns": ["1"], "values": [[1]] * 33}, "33 x 1 wells"),
        ({"rows": ["A"], "columns": ["1", "2"], "values": [[1]]}, "do not match"),
        ({"rows": ["A"], "columns": ["1"], "values": [["<script>"]]}, "not a number"),
        ({"rows": ["A"], "columns": ["1"], "values": [[True]]}, "not a number"),
    ],
)
def test_a_malformed_plate_result_is_refused(bad: object, match: str) -> None:
    from napari_fbias.pipeline.plate_tables import check_plate_result

    with pytest.raises(ValueError, match=match):
        check_plate_result(bad)
