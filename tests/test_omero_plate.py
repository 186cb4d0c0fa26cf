"""OMERO Plates in the plate model shared with OME-Zarr plates (FAKE OMERO server)."""

from __future__ import annotations

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image

from fakes.fake_blitz import standard_server
from napari_fbias.io.ome_zarr_plate import plate_overview, read_plate
from napari_fbias.io.omero.connection import OmeroConnection, connections
from napari_fbias.io.omero.errors import OmeroUriError
from napari_fbias.io.omero.plate import read_omero_plate
from napari_fbias.io.omero.zarr_pixels import NGFF_ENTITY_TYPE
from napari_fbias.io.open import open_image


@pytest.fixture
def server():
    return standard_server()


@pytest.fixture
def conn(server):
    c = OmeroConnection.login(server.host, "alice", "secret-pw", backend=server.backend())
    yield c
    for other in set(connections().values()):
        other.close()


def _plate_uri(server, name: str = "PL1") -> str:
    return f"omero://{server.host}/Plate:{server.named[name]}"


def _image_of(server, plate: str, pos: str, field: int) -> int:
    return next(i for i, img in server.images.items() if img.name == f"{plate} {pos} f{field}")


def test_an_omero_plate_reads_into_the_shared_model(server, conn):
    plate = read_plate(_plate_uri(server))  # the same entry point as an OME-Zarr plate
    assert plate.origin == "omero" and plate.name == "PL1"
    assert plate.source == _plate_uri(server)
    assert plate.rows == ("A", "B") and plate.columns == ("1", "2")
    assert [w.name for w in plate.wells] == ["A1", "A2", "B1", "B2"]
    assert all(len(w.fields) == 2 for w in plate.wells)
    (field,) = plate.fields(wells=["b2"], fields=[1])
    iid = _image_of(server, "PL1", "B2", 1)
    assert field.source == f"omero://{server.host}/Image:{iid}" and field.stem == "B2_f1"
    assert len(plate.fields()) == 8 and len(plate.fields(fields=[0])) == 4
    with pytest.raises(KeyError, match="no well 'C1'"):
        plate.fields(wells=["C1"])
    image = open_image(field.source)  # an ordinary OMERO image
    assert image.source == field.source
    np.testing.assert_array_equal(np.asarray(image.data), server.images[iid].data[0, 0, 0])


def test_the_overview_of_an_omero_plate(server, conn):
    plate = read_omero_plate(_plate_uri(server))
    over = plate_overview(plate, field=1)
    assert over.metadata["format"] == "omero-plate"
    info = over.metadata["plate"]
    assert info["tile"] == (8, 8) and info["origins"]["B1"] == (8, 0)
    data = np.asarray(over.data)
    assert data.shape == (16, 16)
    for r, row in enumerate("AB"):
        for c in range(2):
            y, x = info["origins"][f"{row}{c + 1}"]
            assert (data[y : y + 8, x : x + 8] == 10 * r + c + 1).all()


def test_big_fields_are_strided_to_fit_a_tile(server, conn):
    pid = server.add_plate(
        "BIG",
        group=server.named["lab"],
        owner=server.named["alice"],
        rows=1,
        columns=2,
        fields=1,
        shape=(600, 500),
    )
    over = plate_overview(read_omero_plate(f"omero://{server.host}/Plate:{pid}"))
    assert over.data.shape == (200, 2 * 167) and over.scales[0] == (3.0, 3.0)


def test_only_plates_are_read_as_plates(server, conn):
    with pytest.raises(OmeroUriError, match="not a Plate"):
        read_omero_plate(f"omero://{server.host}/Image:{server.named['a']}")


def test_a_field_stored_as_ome_zarr_is_read_from_its_store(server, conn, tmp_path):
    iid = _image_of(server, "PL2", "A1", 0)
    data = server.images[iid].data
    store = tmp_path / "pl2_a1_0.zarr"
    write_image(
        data,
        zarr.open_group(str(store), mode="w", zarr_format=2),
        axes="tczyx",
        fmt=FormatV04(),
        scale_factors=[],
    )
    server.images[iid].external_info = (NGFF_ENTITY_TYPE, str(store))
    (field,) = read_plate(_plate_uri(server, "PL2")).fields()
    image = open_image(field.source)
    assert image.source == field.source  # the session records the OMERO image
    assert image.metadata["omero"]["pixels_from"]["path"] == "ome-zarr"
    np.testing.assert_array_equal(np.asarray(image.data), data[0, 0, 0])


def test_a_plate_batch_gets_every_field_or_a_selection_with_its_place(server, conn):
    """What ``fbias run PIPELINE omero://HOST/Plate:ID --wells B2 --fields 1`` expands to."""
    from napari_fbias.io.ome_zarr_plate import container_kind
    from napari_fbias.pipeline.inputs import Selection, _members

    uri = _plate_uri(server)
    assert container_kind(uri) == "plate"
    assert container_kind(f"omero://{server.host}/Image:1") == "image"
    members = _members(uri, None, Selection.parse(wells="B2, A1", fields="1"))
    iid = _image_of(server, "PL1", "B2", 1)
    source, container, stem, place = members[0]
    assert source == f"omero://{server.host}/Image:{iid}" and container is None
    assert stem == f"Plate-{server.named['PL1']}_B2_f1"
    assert (place.row, place.column, place.field, place.well) == ("B", "2", 1, "B2")
    assert [m[2].rsplit("_", 2)[1] for m in members] == ["B2", "A1"]
    assert len(_members(uri, None, Selection())) == 8


def test_a_pipeline_runs_over_an_omero_plate_into_plate_tables(server, conn, tmp_path):
    """``fbias run PIPELINE omero://HOST/Plate:ID --wells B2,A1 --fields 1``, end to end."""
    import pandas as pd

    import pipeline_testops as testops
    from napari_fbias.pipeline.batch import run_batch
    from napari_fbias.pipeline.inputs import Selection

    pfile = tmp_path / "blobs.fbias.yaml"
    pfile.write_text(testops.classical_pipeline_yaml("blobs", measure=False))
    out = tmp_path / "out"
    select = Selection.parse(wells="B2,A1", fields="1")
    report = run_batch(pfile, _plate_uri(server), out, select=select)
    assert report.ok, [i.message for i in report.items]
    stem = f"Plate-{server.named['PL1']}"
    summary = pd.read_csv(out / f"{stem}_plate_summary.csv")
    assert list(summary["well"]) == ["B2", "A1"] and set(summary["field"]) == {1}
    assert (out / f"{stem}_plate_heatmap.png").read_bytes()[:4] == b"\x89PNG"
    result = report.plates[stem]
    assert result["rows"] == ["A", "B"] and result["columns"] == ["1", "2"]
    assert result["values"][0][1] is None and result["values"][1][0] is None  # not chosen
    assert result["values"][1][1] == summary.loc[0, "nuclei_objects"]
