"""A plate read from a URL with credentials (or a token) opens its fields with them too.

Real HTTP servers on 127.0.0.1 that refuse requests without the credentials;
plates written by ome-zarr-py. The credentials stay in memory: neither the
plate's source, nor a field's repr, nor an opened image shows them.
"""

from __future__ import annotations

import base64
import functools
from pathlib import Path
from typing import Any

import numpy as np

from helpers.http_server import FolderServer, _Handler
from napari_fbias.io.ome_zarr_plate import plate_overview, read_plate
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from test_io_ome_zarr_plate import field_pixels, write_plate

USER, PASSWORD = "reader", "pl4te-s3cret"
EXPECTED = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


class _AuthHandler(_Handler):
    """Answer 401 to every request without the test's basic-auth header."""

    def _tracked(self, method: Any) -> None:
        if self.headers.get("Authorization") != EXPECTED:
            with self.server.lock:
                self.server.requests.append("DENIED " + self.path)
            self.send_error(401, "credentials needed (test server)")
            return
        super()._tracked(method)


def _auth_server(root: Path) -> FolderServer:
    server = FolderServer(root)
    server._server.RequestHandlerClass = functools.partial(_AuthHandler, directory=str(root))
    return server


def _check_plate(url: str, secret: str) -> None:
    plate = read_plate(url)
    assert secret not in repr(plate) and secret not in plate.source
    (field,) = plate.fields(wells=["B3"], fields=[1])
    assert secret not in repr(field)
    image = read_ome_zarr(field.source)
    assert secret not in image.source and image.source.endswith("B/3/1")
    np.testing.assert_array_equal(np.asarray(image.data), field_pixels("B/3", 1))
    over = plate_overview(plate, field=0)
    y, x = over.metadata["plate"]["origins"]["A2"]
    assert int(np.asarray(over.data)[0, y, x]) == field_pixels("A/2", 0)[0, 0, 0]


def test_fields_of_a_plate_behind_basic_auth_open_with_its_credentials(tmp_path: Path) -> None:
    write_plate(tmp_path / "screen.ome.zarr", "0.4")
    with _auth_server(tmp_path) as server:
        url = server.url.replace("http://", f"http://{USER}:{PASSWORD}@") + "/screen.ome.zarr"
        _check_plate(url, PASSWORD)
        assert not [r for r in server.requests if r.startswith("DENIED")]


def test_fields_of_a_plate_behind_a_token_keep_the_token(tmp_path: Path) -> None:
    write_plate(tmp_path / "screen.ome.zarr", "0.5")
    with FolderServer(tmp_path, require_query="token=t0ken-s3cret") as server:
        _check_plate(server.url_for("screen.ome.zarr") + "?token=t0ken-s3cret", "t0ken-s3cret")
