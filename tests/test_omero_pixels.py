"""Lazy OMERO pixel reading (FAKE gateway): laziness, every pixel type, pyramids, concurrency."""

from __future__ import annotations

import pickle

import dask
import numpy as np
import pytest

from fakes.fake_blitz import standard_server
from napari_fbias.io.omero import pixels as omero_pixels
from napari_fbias.io.omero.connection import OmeroConnection, connections
from napari_fbias.io.omero.errors import (
    OmeroConnectionError,
    OmeroNotLoggedInError,
    OmeroObjectNotFoundError,
    OmeroPixelsError,
    OmeroUriError,
)
from napari_fbias.io.omero.pixels import decode_pixels, numpy_dtype, open_omero_image

PASSWORD = "secret-pw"


@pytest.fixture
def server():
    return standard_server()


@pytest.fixture
def conn(server):
    c = OmeroConnection.login(server.host, "alice", PASSWORD, backend=server.backend())
    yield c
    c.close()


@pytest.fixture(autouse=True)
def _clean_registry():
    yield
    for c in set(connections().values()):
        c.close()


def _uri(server, name_or_id) -> str:
    oid = server.named[name_or_id] if isinstance(name_or_id, str) else name_or_id
    return f"omero://{server.host}/Image:{oid}"


def _reads(server) -> int:
    return server.calls["getPlane"] + server.calls["getTile"]


def test_open_reads_no_pixels_and_one_task_reads_one_plane(server, conn):
    img = open_omero_image(_uri(server, "b"))
    assert _reads(server) == 0
    assert img.axes == ("c", "z", "y", "x") and img.shape == (2, 3, 12, 10)
    assert img.data.chunks == ((1, 1), (1, 1, 1), (12,), (10,))
    plane = img.data[1, 2].compute(scheduler="sync")
    assert _reads(server) == 1 and server.calls["getPlane"] == 1
    np.testing.assert_array_equal(plane, server.images[server.named["b"]].data[0, 1, 2])
    np.testing.assert_array_equal(
        img.data.compute(scheduler="sync"), server.images[server.named["b"]].data[0]
    )
    assert _reads(server) == 1 + 6


EXTREMES = {
    "u1": [0, 1, 127, 128, 255],
    "i1": [-128, -1, 0, 1, 127],
    "u2": [0, 1, 255, 256, 65535],
    "i2": [-32768, -1, 0, 256, 32767],
    "u4": [0, 1, 65536, 2**31, 2**32 - 1],
    "i4": [-(2**31), -1, 0, 65536, 2**31 - 1],
    "f4": [-3.4e38, -1.5, 0.0, 1e-30, np.inf],
    "f8": [-1.7e308, -0.1, 0.0, 5e-324, np.nan],
}


@pytest.mark.parametrize("code", list(EXTREMES))
def test_every_pixel_type_round_trips_in_native_order(server, conn, code):
    rng = np.random.default_rng(1)
    dtype = np.dtype(code)
    data = np.zeros((1, 1, 2, 5, 7), dtype=dtype)
    data.flat[:5] = EXTREMES[code]
    if dtype.kind == "f":
        data.flat[5:] = rng.normal(0, 1000, data.size - 5)
    else:
        info = np.iinfo(dtype)
        data.flat[5:] = rng.integers(info.min, info.max, data.size - 5, endpoint=True)
    iid = server.add_image(
        f"t-{code}", data, group=server.named["lab"], owner=server.named["alice"]
    )
    img = open_omero_image(_uri(server, iid))
    assert img.dtype == dtype and img.dtype.byteorder in "=|"
    out = img.data.compute(scheduler="sync")
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, data[0, 0])  # NaN compares equal here


@pytest.mark.parametrize("reversed_levels", [False, True])
@pytest.mark.parametrize("code", ["u2", "f4", "u1", "i4"])
def test_pyramid_levels_decode_for_every_type(server, conn, monkeypatch, code, reversed_levels):
    monkeypatch.setattr(omero_pixels, "TARGET_CHUNK", 256)
    rng = np.random.default_rng(2)
    data = (rng.random((1, 2, 1, 600, 520)) * 60000).astype(code)
    iid = server.add_image(
        "pyr",
        data,
        group=server.named["lab"],
        owner=server.named["alice"],
        pyramid_levels=3,
        tile=(128, 128),
        reversed_levels=reversed_levels,
        pixel_size=(0.25, 0.25, None),
    )
    img = open_omero_image(_uri(server, iid))
    assert _reads(server) == 0
    assert [lvl.shape for lvl in img.levels] == [(2, 600, 520), (2, 300, 260), (2, 150, 130)]
    assert img.scales == ((1.0, 0.25, 0.25), (1.0, 0.5, 0.5), (1.0, 1.0, 1.0))
    assert img.data.chunks[-2:] == ((256, 256, 88), (256, 256, 8))
    for i, level in enumerate(img.levels):
        out = level.compute(scheduler="threads")
        assert out.dtype == np.dtype(code) and out.dtype.isnative
        np.testing.assert_array_equal(out, data[0, :, 0, :: 2**i, :: 2**i])
    assert server.calls["getPlane"] == 0  # pyramids are read tile by tile


def test_planes_larger_than_the_server_limit_are_read_as_tiles(server, conn):
    server.max_plane_size = (64, 64)
    data = np.arange(100 * 90, dtype=np.uint16).reshape(1, 1, 1, 90, 100)
    iid = server.add_image("big", data, group=server.named["lab"], owner=server.named["alice"])
    img = open_omero_image(_uri(server, iid))
    # the server's tile (a full-width strip) exceeds its own plane limit: blocks stay within it
    assert img.data.chunks == ((64, 26), (64, 36))
    np.testing.assert_array_equal(img.data.compute(scheduler="sync"), data[0, 0, 0])
    assert server.calls["getPlane"] == 0 and server.calls["getTile"] == 4


def test_channels_scales_units_source_metadata(server, conn):
    img = open_omero_image(_uri(server, "b"))
    assert [c.name for c in img.channels] == ["DAPI", "GFP"]
    assert [c.color for c in img.channels] == ["0000FF", "00FF00"]
    assert [c.window for c in img.channels] == [(0.0, 1000.0), (10.0, 3000.0)]
    assert [c.visible for c in img.channels] == [True, False]
    assert img.scale == pytest.approx((1.0, 1.0, 0.2, 0.2))  # nm converted to micrometres
    assert img.units == (None, "micrometer", "micrometer", "micrometer")
    assert img.name == "b"
    assert img.source == _uri(server, "b")
    meta = img.metadata["omero"]
    assert meta["image_id"] == server.named["b"] and meta["group_id"] == server.named["lab"]
    assert meta["pixels_type"] == "uint16"
    assert meta["sizes"] == {"t": 1, "c": 2, "z": 3, "y": 12, "x": 10}

    tl = open_omero_image(_uri(server, "c"))  # float time-lapse, no physical size
    assert tl.axes == ("t", "y", "x") and tl.dtype == np.float32
    assert tl.scale == (1.0, 1.0, 1.0) and tl.units == (None, None, None)
    assert tl.data.chunks[0] == (1, 1, 1, 1)
    assert len(tl.channels) == 1


def test_no_rendering_settings_means_visible_grey_channels(server, conn):
    data = np.zeros((1, 2, 1, 4, 4), np.uint8)
    iid = server.add_image(
        "raw", data, group=server.named["lab"], owner=server.named["alice"], rendering=False
    )
    img = open_omero_image(_uri(server, iid))
    assert [(c.color, c.window, c.visible) for c in img.channels] == [(None, None, True)] * 2


def test_concurrent_reads_use_a_pool_of_stores(server, conn):
    server.read_delay = 0.02
    data = np.random.default_rng(3).integers(0, 200, (1, 1, 12, 16, 16), dtype=np.uint8)
    iid = server.add_image("stack", data, group=server.named["lab"], owner=server.named["alice"])
    img = open_omero_image(_uri(server, iid), max_stores=3)
    with dask.config.set(num_workers=6):
        out = img.data.compute(scheduler="threads")
    np.testing.assert_array_equal(out, data[0, 0])
    assert 1 < server.max_parallel_reads <= 3  # parallel, never more than the pool
    assert server.calls["createRawPixelsStore"] <= 3

    server.max_parallel_reads = 0
    one = open_omero_image(_uri(server, iid), max_stores=1)
    with dask.config.set(num_workers=6):
        one.data.compute(scheduler="threads")
    assert server.max_parallel_reads == 1


def test_dask_graph_pickles_by_reference_and_runs_on_a_local_cluster(server, conn):
    from distributed import Client, LocalCluster

    img = open_omero_image(_uri(server, "b"))
    blob = pickle.dumps(img.data)
    assert b"secret-pw" not in blob and conn.session_key.encode() not in blob
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again.compute(scheduler="sync"), img.data.compute())
    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        out = client.compute(img.data.sum()).result()
    assert int(out) == int(server.images[server.named["b"]].data.sum())
    # the unpickled tasks shared the image's pool instead of opening a store each
    assert server.calls["createRawPixelsStore"] <= omero_pixels.DEFAULT_MAX_STORES


def test_lost_connection_mid_read_is_clear_and_the_same_array_works_after_reconnect(server, conn):
    img = open_omero_image(_uri(server, "b"))
    img.data[0, 0].compute(scheduler="sync")
    server.restart()
    with pytest.raises(OmeroConnectionError, match=r"while reading omero://.*Image:\d+ z=1"):
        img.data[0, 1].compute(scheduler="sync")
    conn.reconnect(password=PASSWORD)
    np.testing.assert_array_equal(
        img.data[0, 1].compute(scheduler="sync"), server.images[server.named["b"]].data[0, 0, 1]
    )


def test_other_group_image_read_with_all_groups(server, conn):
    with pytest.raises(OmeroObjectNotFoundError, match="try group -1"):
        open_omero_image(_uri(server, "far"))
    conn.set_group(-1)
    img = open_omero_image(_uri(server, "far"))
    np.testing.assert_array_equal(
        img.data.compute(scheduler="sync"), server.images[server.named["far"]].data[0, 0, 0]
    )


def test_uri_forms_and_errors(server, conn):
    web = f"https://{server.host}/webclient/img_detail/{server.named['a']}/"
    assert open_omero_image(web).shape == (16, 20)
    with pytest.raises(OmeroUriError, match="is a Dataset, not one image"):
        open_omero_image(f"omero://{server.host}/Dataset:{server.named['D1']}")
    with pytest.raises(OmeroNotLoggedInError, match="log in to elsewhere.org first"):
        open_omero_image("omero://elsewhere.org/Image:1")
    with pytest.raises(OmeroObjectNotFoundError, match="Image:424242 does not exist"):
        open_omero_image(f"omero://{server.host}/Image:424242")
    other = standard_server("other.org")
    c2 = OmeroConnection.login("other.org", "alice", PASSWORD, backend=other.backend())
    img = open_omero_image(_uri(other, "a"), connection=c2)
    assert img.source == _uri(other, "a")


def test_decoding_checks():
    raw = np.array([[1, 258]], dtype=">u2").tobytes()
    out = decode_pixels(raw, "uint16", (1, 2))
    assert out.tolist() == [[1, 258]] and out.dtype == np.dtype("=u2")
    with pytest.raises(OmeroPixelsError, match="sent 4 bytes for a 1x3 uint16 block"):
        decode_pixels(raw, "uint16", (1, 3))
    with pytest.raises(OmeroPixelsError, match="unsupported OMERO pixel type 'bit'"):
        numpy_dtype("bit")


def test_pixel_stores_are_closed_with_the_connection(server, conn):
    img = open_omero_image(_uri(server, "b"), max_stores=2)
    with dask.config.set(num_workers=4):
        img.data.compute(scheduler="threads")
    created = server.calls["createRawPixelsStore"]
    assert 1 <= created <= 2
    assert server.calls["store.close"] == 0  # kept for the next reads
    conn.close()
    assert server.calls["store.close"] == created
