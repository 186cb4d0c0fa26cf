"""OMERO images stored as OME-Zarr (FAKE OMERO server, real stores written by ome-zarr-py).

A registered store (external info, as ``omero zarr register`` writes it) on a
local path or over HTTP on 127.0.0.1, and a server serving images as
OME-Zarr (a URL template); the pixels equal the pixel service's, and every
store that is unreachable or disagrees with OMERO falls back to the service.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from ome_zarr.format import FormatV04
from ome_zarr.writer import write_image

from fakes.fake_blitz import standard_server
from helpers.http_server import free_port
from napari_fbias.io.omero import zarr_pixels
from napari_fbias.io.omero.connection import OmeroConnection, connections
from napari_fbias.io.omero.errors import OmeroPixelsError
from napari_fbias.io.omero.pixels import open_omero_image
from napari_fbias.io.omero.zarr_pixels import (
    NGFF_ENTITY_TYPE,
    ZarrAccess,
    _store_location,
    set_zarr_access,
)

PASSWORD = "secret-pw"
SHAPE = (1, 2, 3, 64, 80)  # t c z y x


@pytest.fixture
def server():
    s = standard_server()
    rng = np.random.default_rng(7)
    data = rng.integers(0, 60000, SHAPE, dtype=np.uint16)
    s.named["zimg"] = s.add_image(  # type: ignore[attr-defined]
        "zimg", data, group=s.named["lab"], owner=s.named["alice"], pixel_size=(0.5, 0.5, 2.0)
    )
    return s


@pytest.fixture
def conn(server):
    c = OmeroConnection.login(server.host, "alice", PASSWORD, backend=server.backend())
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _clean():
    yield
    for c in set(connections().values()):
        c.close()
    zarr_pixels._ACCESS.clear()
    zarr_pixels._UNREACHABLE.clear()


def write_store(path: Path, data: np.ndarray) -> Path:
    """An OME-Zarr image as omero-web-zarr serves it (5-D tczyx), written by ome-zarr-py."""
    group = zarr.open_group(str(path), mode="w", zarr_format=2)
    write_image(data, group, axes="tczyx", fmt=FormatV04(), scale_factors=[2])
    return path


def _image(server) -> tuple[int, np.ndarray]:
    iid = server.named["zimg"]
    return iid, server.images[iid].data


def _reads(server) -> int:
    return server.calls["getPlane"] + server.calls["getTile"]


def _service_pixels(server, conn) -> np.ndarray:
    iid, _ = _image(server)
    img = open_omero_image(f"omero://{server.host}/Image:{iid}", zarr=ZarrAccess(mode="off"))
    assert img.metadata["omero"]["pixels_from"]["path"] == "pixel-service"
    return img.data.compute(scheduler="sync")


def test_a_registered_local_store_is_read_directly(server, conn, tmp_path):
    iid, data = _image(server)
    store = write_store(tmp_path / "plate" / "image.ome.zarr", data)
    server.images[iid].external_info = (NGFF_ENTITY_TYPE, str(store) + "/")
    expected = _service_pixels(server, conn)

    before = _reads(server)
    img = open_omero_image(f"omero://{server.host}/Image:{iid}", zarr=ZarrAccess(verify=False))
    assert img.source == f"omero://{server.host}/Image:{iid}"  # what the session records
    assert img.metadata["omero"]["pixels_from"] == {
        "path": "ome-zarr",
        "store": str(store),
        "found_by": "registered",
    }
    assert img.axes == ("c", "z", "y", "x") and img.shape == SHAPE[1:]
    assert img.name == "zimg" and img.scales[0] == (1.0, 2.0, 0.5, 0.5)
    assert len(img.levels) == 2 and img.scales[1][-2:] == (1.0, 1.0)
    np.testing.assert_array_equal(img.data.compute(), expected)
    assert _reads(server) == before  # not one plane from the pixel service


def test_a_store_served_over_http_by_url_template(server, conn, tmp_path, http_folder):
    iid, data = _image(server)
    write_store(tmp_path / "zarr" / "v0.4" / "image" / f"{iid}.zarr", data)
    expected = _service_pixels(server, conn)
    template = http_folder.url + "/zarr/v0.4/image/{id}.zarr"
    set_zarr_access(server.host, ZarrAccess(url_template=template))

    img = open_omero_image(f"omero://{server.host}/Image:{iid}")
    assert img.metadata["omero"]["pixels_from"]["path"] == "ome-zarr"
    assert img.metadata["omero"]["pixels_from"]["found_by"] == "url-template"
    http_folder.reset()
    np.testing.assert_array_equal(img.data.compute(), expected)
    assert http_folder.chunk_requests()  # the chunks came over HTTP


def test_a_registered_http_store_with_credentials_never_shows_them(
    server, conn, tmp_path, http_folder
):
    iid, data = _image(server)
    write_store(tmp_path / "img.zarr", data)
    url = http_folder.url.replace("http://", "http://reader:s3cr3t-pw@") + "/img.zarr"
    server.images[iid].external_info = (NGFF_ENTITY_TYPE, url)
    img = open_omero_image(f"omero://{server.host}/Image:{iid}")
    assert img.metadata["omero"]["pixels_from"]["path"] == "ome-zarr"
    text = json.dumps(dict(img.metadata)) + img.source
    assert "s3cr3t-pw" not in text and "reader:" not in text


def _fallback(server, conn, access: ZarrAccess) -> dict:
    iid, data = _image(server)
    img = open_omero_image(f"omero://{server.host}/Image:{iid}", zarr=access)
    pixels_from = img.metadata["omero"]["pixels_from"]
    assert pixels_from["path"] == "pixel-service", pixels_from
    before = _reads(server)
    np.testing.assert_array_equal(img.data.compute(scheduler="sync"), data[0])
    assert _reads(server) > before  # read through the pixel service
    return pixels_from


def test_an_unreachable_store_falls_back_and_is_not_probed_again(server, conn):
    template = f"http://127.0.0.1:{free_port()}/zarr/v0.4/image/{{id}}.zarr"
    note = _fallback(server, conn, ZarrAccess(url_template=template, timeout=1))["note"]
    assert "127.0.0.1" in note
    note = _fallback(server, conn, ZarrAccess(url_template=template, timeout=1))["note"]
    assert "not probed" in note


def test_a_missing_registered_store_falls_back(server, conn, tmp_path):
    iid, _ = _image(server)
    server.images[iid].external_info = (NGFF_ENTITY_TYPE, str(tmp_path / "gone.zarr"))
    assert "does not exist" in _fallback(server, conn, ZarrAccess())["note"]


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda d: d[..., :32, :], "sizes"),
        (lambda d: d.astype(np.float32), "float32"),
        (lambda d: d + 1, "differ"),
    ],
    ids=["shape", "dtype", "pixels"],
)
def test_a_store_that_disagrees_with_omero_is_refused(server, conn, tmp_path, change, words):
    iid, data = _image(server)
    store = write_store(tmp_path / "other.zarr", change(data))
    server.images[iid].external_info = (NGFF_ENTITY_TYPE, str(store))
    assert words in _fallback(server, conn, ZarrAccess())["note"]


def test_require_and_off(server, conn, tmp_path):
    iid, _ = _image(server)
    uri = f"omero://{server.host}/Image:{iid}"
    with pytest.raises(OmeroPixelsError, match="no usable OME-Zarr store"):
        open_omero_image(uri, zarr=ZarrAccess(mode="require"))
    server.images[iid].external_info = (NGFF_ENTITY_TYPE, str(tmp_path / "gone.zarr"))
    with pytest.raises(OmeroPixelsError, match="does not exist"):
        open_omero_image(uri, zarr=ZarrAccess(mode="require"))
    img = open_omero_image(uri, zarr=ZarrAccess(mode="off"))
    assert img.metadata["omero"]["pixels_from"]["note"] == "OME-Zarr reading is off"


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("FBIAS_OMERO_ZARR", "off")
    monkeypatch.setenv("FBIAS_OMERO_ZARR_URL", "https://{host}/zarr/v0.4/image/{id}.zarr")
    access = zarr_pixels.zarr_access("omero.example.org")
    assert access.mode == "off" and access.url_template.endswith("{id}.zarr")
    set_zarr_access("omero.example.org", ZarrAccess(timeout=1))
    assert zarr_pixels.zarr_access("OMERO.example.org").mode == "auto"
    with pytest.raises(ValueError, match="credentials"):
        ZarrAccess(url_template="https://u:pw@{host}/zarr/{id}.zarr")


def test_s3_locations_as_omero_cli_zarr_writes_them():
    url, opts = _store_location("s3://minio.example.org/bucket/data/img.zarr/?anonymous=true", None)
    assert url == "s3://bucket/data/img.zarr"
    assert opts == {"endpoint_url": "https://minio.example.org", "anon": True}
    assert _store_location("/data/ngff/img.zarr/", None) == ("/data/ngff/img.zarr", None)
