"""Opt-in tests against a REAL OMERO server (marker ``omero_server``).

Skipped unless these environment variables are set::

    OMERO_HOST       server host (or wss://HOST/omero-ws)
    OMERO_USER       a test account (NOT a personal one: the tests write and delete)
    OMERO_PASSWORD   its password
    OMERO_PORT       optional, default 4064
    OMERO_TEST_IMAGE optional id of an existing (e.g. pyramidal) image to read

Run: ``pytest tests/integration/test_omero_server.py -m omero_server -v``.
The send-back test creates its own dataset and image, writes ROIs, a table and
a file to them, and deletes them at the end. See docs/omero.md.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytestmark = [
    pytest.mark.omero_server,
    pytest.mark.skipif(
        not all(os.environ.get(k) for k in ("OMERO_HOST", "OMERO_USER", "OMERO_PASSWORD")),
        reason="set OMERO_HOST, OMERO_USER, OMERO_PASSWORD (+ OMERO_PORT, OMERO_TEST_IMAGE) "
        "to run the real-server tests",
    ),
]
omero = pytest.importorskip(
    "omero", reason="needs omero-py: run scripts/build_omero_wheels.sh first"
)


@pytest.fixture(scope="module")
def conn():
    from napari_fbias.io.omero import OmeroConnection

    port = os.environ.get("OMERO_PORT")
    c = OmeroConnection.login(
        os.environ["OMERO_HOST"],
        os.environ["OMERO_USER"],
        os.environ["OMERO_PASSWORD"],
        port=int(port) if port else None,
    )
    yield c
    c.close()


@pytest.fixture(scope="module")
def scratch(conn):
    """A new dataset holding a small 2-channel, 3-plane uint16 image; deleted afterwards."""
    from omero.model import DatasetI
    from omero.rtypes import rstring

    gw = conn.gateway
    ds = DatasetI()
    ds.setName(rstring("napari-fbias integration test (safe to delete)"))
    ds = gw.getUpdateService().saveAndReturnObject(ds, gw.SERVICE_OPTS)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 60000, (1, 2, 3, 40, 50), dtype=np.uint16)  # t, c, z, y, x

    def planes():
        for z in range(3):
            for c in range(2):
                yield data[0, c, z]

    image = gw.createImageFromNumpySeq(
        planes(), "fbias-test", sizeZ=3, sizeC=2, sizeT=1, dataset=ds
    )
    yield {"dataset": ds.getId().getValue(), "image": image.getId(), "data": data}
    gw.deleteObjects(
        "Dataset", [ds.getId().getValue()], deleteAnns=True, deleteChildren=True, wait=True
    )


def test_connect_groups_keepalive(conn):
    assert conn.is_connected and conn.user == os.environ["OMERO_USER"]
    assert conn.groups()
    assert conn.keepalive()
    assert os.environ["OMERO_PASSWORD"] not in repr(conn)


def test_browse_top_and_one_level(conn, scratch):
    from napari_fbias.io.omero import list_children, list_roots

    roots = list_roots(conn)
    assert roots[-1].kind == "OrphanedImages"
    ds = next(n for n in roots if n.kind == "Dataset" and n.id == scratch["dataset"])
    (img,) = list_children(conn, ds)
    assert img.is_image and img.id == scratch["image"]


def test_open_and_read_back_exact_pixels(conn, scratch):
    from napari_fbias.io.omero import open_omero_image

    img = open_omero_image(f"omero://{conn.host}/Image:{scratch['image']}")
    assert img.axes == ("c", "z", "y", "x") and img.dtype == np.uint16
    np.testing.assert_array_equal(img.data.compute(), scratch["data"][0])


def test_existing_image_every_level(conn):
    from napari_fbias.io.omero import open_omero_image

    image_id = os.environ.get("OMERO_TEST_IMAGE")
    if not image_id:
        pytest.skip("set OMERO_TEST_IMAGE to read an existing (pyramidal) image")
    img = open_omero_image(f"omero://{conn.host}/Image:{image_id}")
    lead = (0,) * (img.ndim - 2)
    for level in img.levels:  # a corner block of every level decodes, in native order
        h, w = (min(256, n) for n in level.shape[-2:])
        block = np.asarray(level[lead + (slice(0, h), slice(0, w))].compute())
        assert block.dtype == img.dtype and block.dtype.isnative and block.shape == (h, w)
    # full resolution agrees with omero-py's own decoding (PixelsWrapper.getTile)
    h, w = (min(256, n) for n in img.shape[-2:])
    ref = conn.gateway.getObject("Image", int(image_id)).getPrimaryPixels()
    np.testing.assert_array_equal(
        img.data[lead + (slice(0, h), slice(0, w))].compute(), ref.getTile(0, 0, 0, (0, 0, w, h))
    )


def test_send_back_replace_and_clean_up(conn, scratch, tmp_path):
    import pandas as pd

    from napari_fbias.io.omero import send_back

    labels = np.zeros((3, 40, 50), np.uint16)
    labels[0, 5:10, 5:12] = 1
    labels[1:3, 20:30, 30:45] = 2
    table = pd.DataFrame({"label": [1, 2], "area": [35.0, 300.0]})
    report = tmp_path / "report.html"
    report.write_text("<p>integration</p>")
    kwargs = dict(
        labels=labels,
        labels_axes="zyx",
        table=table,
        files=[report],
        dataset_id=scratch["dataset"],
    )
    first = send_back(conn, scratch["image"], **kwargs)
    assert sorted(first.roi_ids) == [1, 2]
    second = send_back(conn, scratch["image"], **kwargs)
    assert second.replaced["rois"] == 2 and second.replaced["annotations"] >= 2
    rois = conn.gateway.getRoiService().findByImage(scratch["image"], None).rois
    assert sorted(r.getId().getValue() for r in rois) == sorted(second.roi_ids.values())
    image = conn.gateway.getObject("Image", scratch["image"])
    names = sorted(a.getFileName() for a in image.listAnnotations(ns="napari-fbias"))
    assert names in (["measurements.h5", "report.html"], ["measurements.csv", "report.html"])
