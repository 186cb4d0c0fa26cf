"""Sending results back to OMERO (FAKE gateway, REAL omero-py model objects)."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

pytest.importorskip(
    "omero_rois",
    reason="needs omero-py + omero-rois: run scripts/build_omero_wheels.sh (CI builds them)",
)
import omero.model
from omero.rtypes import rstring, unwrap

from fakes.fake_blitz import standard_server
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroSendBackError
from napari_fbias.io.omero.sendback import (
    NAMESPACE,
    send_back,
    send_file,
    send_labels_as_rois,
    send_table,
)


@pytest.fixture
def server():
    return standard_server()


@pytest.fixture
def conn(server):
    c = OmeroConnection.login(
        server.host, "alice", "secret-pw", backend=server.backend(), register=False
    )
    yield c
    c.close()


def _labels_zyx() -> np.ndarray:
    lab = np.zeros((3, 12, 10), np.uint16)
    lab[0, 2:5, 3:6] = 1
    lab[1:3, 6:9, 1:4] = 2
    lab[2, 0, 9] = 5  # one pixel in a corner: the edge case omero-rois misses
    lab[1, 10:12, 0:10] = 7  # touches three image borders
    lab[1, 4, 7] = 7  # and a second, separate piece on the same plane
    return lab


def _paint(server, image_id: int, shape: tuple[int, ...], axes: str) -> np.ndarray:
    """Rebuild a label image from the ROIs the FAKE server holds (decoding the mask bytes)."""
    out = np.zeros(shape, np.int64)
    for roi in server.rois.values():
        if unwrap(roi.getImage().getId()) != image_id:
            continue
        label = int(unwrap(roi.getName()).rsplit(" ", 1)[1])
        for mask in roi.copyShapes():
            assert isinstance(mask, omero.model.MaskI)
            x, y = int(unwrap(mask.getX())), int(unwrap(mask.getY()))
            w, h = int(unwrap(mask.getWidth())), int(unwrap(mask.getHeight()))
            bits = np.unpackbits(np.frombuffer(mask.getBytes(), np.uint8))[: w * h]
            where = {
                "t": unwrap(mask.getTheT()),
                "c": unwrap(mask.getTheC()),
                "z": unwrap(mask.getTheZ()),
            }
            lead = tuple(where[a] for a in axes[:-2])
            assert None not in lead
            region = out[lead + (slice(y, y + h), slice(x, x + w))]
            region[bits.reshape(h, w).astype(bool)] = label
    return out


def test_labels_become_real_rois_with_one_mask_per_plane(server, conn):
    iid = server.named["b"]
    lab = _labels_zyx()
    roi_ids, replaced = send_labels_as_rois(conn, iid, lab, "zyx", label_set="nuclei")
    assert replaced == 0 and sorted(roi_ids) == [1, 2, 5, 7]
    rois = [server.rois[roi_ids[k]] for k in (1, 2, 5, 7)]
    assert all(isinstance(r, omero.model.RoiI) for r in rois)
    assert [unwrap(r.getName()) for r in rois] == ["nuclei 1", "nuclei 2", "nuclei 5", "nuclei 7"]
    assert {unwrap(r.getDescription()) for r in rois} == {f"{NAMESPACE}:nuclei"}
    assert [[unwrap(s.getTheZ()) for s in r.copyShapes()] for r in rois] == [[0], [1, 2], [2], [1]]
    for r in rois:
        for s in r.copyShapes():
            assert s.getTheT() is None and s.getTheC() is None
            assert unwrap(s.getTextValue()) == unwrap(r.getName()).split()[1]
    np.testing.assert_array_equal(_paint(server, iid, lab.shape, "zyx"), lab)


def test_time_lapse_labels_set_the_time_index(server, conn):
    iid = server.named["c"]  # 4 time points of 8x8
    lab = np.zeros((4, 8, 8), np.int32)
    lab[1, 0:2, 0:2] = 3
    lab[3, 5:8, 5:8] = 3
    lab[3, 0, 0] = 4
    roi_ids, _ = send_labels_as_rois(conn, iid, lab, "tyx")
    shapes = server.rois[roi_ids[3]].copyShapes()
    assert [unwrap(s.getTheT()) for s in shapes] == [1, 3]
    assert all(s.getTheZ() is None for s in shapes)
    np.testing.assert_array_equal(_paint(server, iid, lab.shape, "tyx"), lab)


def test_resend_replaces_our_rois_only(server, conn):
    iid = server.named["b"]
    lab = _labels_zyx()
    foreign = omero.model.RoiI()
    foreign.setName(rstring("drawn by hand"))
    foreign.setImage(omero.model.ImageI(iid, False))
    foreign_id = unwrap(conn.gateway.getUpdateService().saveAndReturnObject(foreign).getId())
    first, _ = send_labels_as_rois(conn, iid, lab, "zyx", label_set="nuclei")
    cells = lab * (lab == 1)
    other_set, _ = send_labels_as_rois(conn, iid, cells, "zyx", label_set="cells")
    second, replaced = send_labels_as_rois(conn, iid, lab, "zyx", label_set="nuclei")
    assert replaced == 4
    assert not set(first.values()) & set(server.rois)  # the old upload is gone
    assert set(second.values()) <= set(server.rois)
    assert set(other_set.values()) <= set(server.rois)  # another label set is kept
    assert foreign_id in server.rois  # and so is what we did not create
    assert len(server.rois) == 1 + 4 + 1


def test_label_shape_and_type_are_checked(server, conn):
    iid = server.named["b"]  # 3 x 12 x 10
    with pytest.raises(OmeroSendBackError, match="12 pixels along x but Image:.* has 10"):
        send_labels_as_rois(conn, iid, np.zeros((3, 12, 12), np.uint8), "zyx")
    with pytest.raises(OmeroSendBackError, match="must be integers"):
        send_labels_as_rois(conn, iid, np.zeros((3, 12, 10), np.float32), "zyx")
    with pytest.raises(OmeroSendBackError, match="do not describe"):
        send_labels_as_rois(conn, iid, np.zeros((12, 10), np.uint8), "zyx")
    assert server.rois == {}


def test_table_as_omero_table_with_image_and_roi_columns(server, conn):
    iid = server.named["b"]
    roi_ids, _ = send_labels_as_rois(conn, iid, _labels_zyx(), "zyx")
    table = pd.DataFrame(
        {
            "label": [1, 2, 5, 7],
            "area": [9.0, 18.5, 1.0, 21.0],
            "kind": ["a", "bé", "", "long text"],
            "edge": [False, False, True, True],
        }
    )
    ann_id, fmt, replaced = send_table(conn, iid, table, name="nuclei", roi_ids=roi_ids)
    assert (fmt, replaced) == ("omero.tables", 0)
    ann = server.annotations[ann_id]
    assert ann["ns"] == NAMESPACE and ann["name"] == "nuclei.h5"
    stored = server.tables[ann["file_id"]]
    assert stored["types"] == {
        "Image": "ImageColumn",
        "Roi": "RoiColumn",
        "label": "LongColumn",
        "area": "DoubleColumn",
        "kind": "StringColumn",
        "edge": "BoolColumn",
    }
    assert stored["columns"]["Image"] == [iid] * 4
    assert stored["columns"]["Roi"] == [roi_ids[k] for k in (1, 2, 5, 7)]
    assert stored["columns"]["kind"] == ["a", "bé", "", "long text"]
    assert ("Image", iid, ann_id) in server.links
    ann2, _, replaced = send_table(conn, iid, table, name="nuclei", roi_ids=roi_ids)
    assert replaced == 1 and ann_id not in server.annotations
    assert ann["file_id"] not in server.tables and ("Image", iid, ann_id) not in server.links
    assert [a for a in server.annotations.values() if a["name"] == "nuclei.h5"] == [
        server.annotations[ann2]
    ]


def test_table_falls_back_to_csv_without_omero_tables(server, conn):
    server.tables_enabled = False
    iid = server.named["a"]
    table = pd.DataFrame({"label": [1, 2], "mean": [0.5, 1.25], "name": ["x,y", 'q"']})
    ann_id, fmt, _ = send_table(conn, iid, table)
    assert fmt == "csv"
    ann = server.annotations[ann_id]
    assert (ann["name"], ann["mimetype"], ann["ns"]) == ("measurements.csv", "text/csv", NAMESPACE)
    import io

    pd.testing.assert_frame_equal(pd.read_csv(io.BytesIO(ann["content"])), table)
    ann2, fmt, replaced = send_table(conn, iid, table)
    assert (fmt, replaced) == ("csv", 1) and list(server.annotations) == [ann2]


def test_files_attach_to_image_and_dataset_and_resend_replaces(server, conn, tmp_path):
    iid, did = server.named["a"], server.named["D1"]
    report = tmp_path / "report.html"
    report.write_text("<h1>session</h1>")
    pipeline = tmp_path / "nuclei.fbias.yaml"
    pipeline.write_text("schema: 1\nsteps: []\n")
    digest = hashlib.sha256(report.read_bytes()).hexdigest()
    # someone else's attachment with the same name, another namespace: must survive
    other = conn.gateway.createFileAnnfromLocalFile(str(report), ns="someone.else")
    server.links.append(("Image", iid, other.getId()))

    result = send_back(conn, iid, files=[report, pipeline], dataset_id=did)
    rid, pid = (
        result.file_annotation_ids["report.html"],
        result.file_annotation_ids["nuclei.fbias.yaml"],
    )
    assert server.annotations[rid]["content"] == b"<h1>session</h1>"
    assert {link for link in server.links if link[2] in (rid, pid)} == {
        ("Image", iid, rid),
        ("Dataset", did, rid),
        ("Image", iid, pid),
        ("Dataset", did, pid),
    }
    again = send_back(conn, iid, files=[report, pipeline], dataset_id=did)
    assert again.replaced == {"rois": 0, "annotations": 2}
    assert rid not in server.annotations and pid not in server.annotations
    assert other.getId() in server.annotations
    ours = [a for a in server.annotations.values() if a["ns"] == NAMESPACE]
    assert sorted(a["name"] for a in ours) == ["nuclei.fbias.yaml", "report.html"]
    assert hashlib.sha256(report.read_bytes()).hexdigest() == digest  # input untouched
    with pytest.raises(OmeroSendBackError, match="no such file"):
        send_file(conn, tmp_path / "missing.txt", [("Image", iid)])


def test_writes_go_to_the_image_group_while_browsing_all_groups(server, conn, tmp_path):
    conn.set_group(-1)
    far = server.named["far"]
    f = tmp_path / "notes.txt"
    f.write_text("x")
    lab = np.zeros((8, 8), np.uint8)
    lab[2:4, 2:4] = 1
    result = send_back(conn, far, labels=lab, labels_axes="yx", files=[f])
    assert (
        server.annotations[result.file_annotation_ids["notes.txt"]]["group"]
        == server.named["other"]
    )
    assert len(result.roi_ids) == 1
    assert conn.gateway.SERVICE_OPTS.getOmeroGroup() == "-1"  # the browsing setting is back


def test_everything_we_create_carries_our_namespace(server, conn, tmp_path):
    iid = server.named["b"]
    f = tmp_path / "pipeline.fbias.yaml"
    f.write_text("steps: []\n")
    table = pd.DataFrame({"label": [1, 2, 5, 7], "area": [1.0, 2.0, 3.0, 4.0]})
    res = send_back(
        conn, iid, labels=_labels_zyx(), labels_axes="zyx", table=table, files=[f], label_set="n"
    )
    assert res.table_format == "omero.tables" and res.table_annotation_id is not None
    assert all(a["ns"] == NAMESPACE for a in server.annotations.values())
    assert all(unwrap(r.getDescription()) == f"{NAMESPACE}:n" for r in server.rois.values())
