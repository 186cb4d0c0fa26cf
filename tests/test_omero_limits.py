"""OMERO images are held to the limits of io/limits.py, like OME-Zarr and TIFF (FAKE gateway).

The server says how large an image is; a hostile or broken server may claim
anything. These tests make the fake server claim sizes without holding the
pixels (a broadcast view of one pixel), and pixel sizes that are not sizes.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from fakes.fake_blitz import standard_server
from napari_fbias.io import limits
from napari_fbias.io.errors import TooLargeError
from napari_fbias.io.omero.connection import OmeroConnection, connections
from napari_fbias.io.omero.pixels import open_omero_image


@pytest.fixture
def server():
    return standard_server()


@pytest.fixture
def conn(server):
    c = OmeroConnection.login(server.host, "alice", "secret-pw", backend=server.backend())
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    for c in set(connections().values()):
        c.close()


def _add(server, data: np.ndarray, **kw) -> str:
    iid = server.add_image(
        "claim",
        data,
        group=server.named["lab"],
        owner=server.named["alice"],
        windows=[(0.0, 1.0)] * data.shape[1],
        **kw,
    )
    return f"omero://{server.host}/Image:{iid}"


def test_a_level_claiming_more_than_the_limit_is_refused_before_any_read(server, conn):
    side = 20_000_000  # 2e7 x 2e7 uint16 = 800 TB, more than MAX_LEVEL_BYTES
    claim = np.broadcast_to(np.zeros((1, 1, 1, 1, 1), np.uint16), (1, 1, 1, side, side))
    uri = _add(server, claim)
    with pytest.raises(TooLargeError, match=r"Image:\d+ claims 20000000 x 20000000 pixels"):
        open_omero_image(uri)
    assert server.calls["getPlane"] + server.calls["getTile"] == 0


def test_too_many_resolution_levels_are_refused(server, conn):
    uri = _add(server, np.zeros((1, 1, 1, 64, 64), np.uint8), pyramid_levels=40)
    with pytest.raises(TooLargeError, match="lists 40 resolution levels"):
        open_omero_image(uri)


def test_blocks_grow_to_stay_under_the_block_limit_and_read_the_same(
    server, conn, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(limits, "MAX_DASK_BLOCKS", 2)
    data = np.random.default_rng(4).integers(0, 60000, (2, 3, 4, 12, 10), dtype=np.uint16)
    img = open_omero_image(_add(server, data))
    assert img.data.npartitions <= 2
    np.testing.assert_array_equal(img.data.compute(scheduler="sync"), data)

    server.max_plane_size = (64, 64)  # tiled reads; one block now holds several tiles
    monkeypatch.setattr(limits, "MAX_DASK_BLOCKS", 1)
    tiled = np.arange(90 * 100, dtype=np.uint16).reshape(1, 1, 1, 90, 100)
    img = open_omero_image(_add(server, tiled))
    assert img.data.chunks == ((90,), (100,))
    before = server.calls["getTile"]
    np.testing.assert_array_equal(img.data.compute(scheduler="sync"), tiled[0, 0, 0])
    assert server.calls["getTile"] - before == 4  # each read stays within the server's limit


@pytest.mark.parametrize("bad", [math.inf, -math.inf, math.nan, 0.0, -0.5])
def test_a_pixel_size_that_is_not_a_size_is_ignored_with_a_note(
    server, conn, bad: float, caplog: pytest.LogCaptureFixture
):
    uri = _add(server, np.zeros((1, 1, 3, 8, 8), np.uint8), pixel_size=(bad, 0.5, 2.0))
    with caplog.at_level(logging.WARNING, logger="napari_fbias.io.omero.pixels"):
        img = open_omero_image(uri)
    assert img.axes == ("z", "y", "x")
    assert img.scale == pytest.approx((2.0, 0.5, 1.0))
    assert img.units == ("micrometer", "micrometer", None)
    assert img.metadata["ignored_pixel_sizes"] == {"x": str(bad)}
    assert f"{uri}: ignoring pixel size(s) x={bad}" in caplog.text


def test_good_pixel_sizes_leave_no_note(server, conn):
    img = open_omero_image(_add(server, np.zeros((1, 1, 1, 8, 8), np.uint8), pixel_size=(0.3,) * 3))
    assert img.scale == pytest.approx((0.3, 0.3))
    assert "ignored_pixel_sizes" not in img.metadata
