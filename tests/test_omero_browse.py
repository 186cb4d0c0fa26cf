"""Browsing the OMERO tree (FAKE gateway): lazy nodes, plates, orphans, thumbnails, batches."""

from __future__ import annotations

import numpy as np
import pytest

from fakes.fake_blitz import standard_server
from napari_fbias.io.omero.browse import (
    ORPHANED_IMAGES,
    Node,
    expand_omero_inputs,
    get_thumbnail,
    list_children,
    list_roots,
)
from napari_fbias.io.omero.connection import OmeroConnection
from napari_fbias.io.omero.errors import OmeroObjectNotFoundError, OmeroUriError
from napari_fbias.io.omero.uri import parse_omero_uri


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


def _by_name(nodes: list[Node]) -> dict[str, Node]:
    return {n.name: n for n in nodes}


def test_roots_are_projects_screens_orphans(server, conn):
    roots = list_roots(conn)
    assert [(n.kind, n.name) for n in roots] == [
        ("Project", "P1"),
        ("Project", "P2"),
        ("Screen", "S1"),
        ("Dataset", "orphan-ds"),
        ("Plate", "PL2"),
        (ORPHANED_IMAGES, "Orphaned images"),
    ]
    p1, p2 = roots[0], roots[1]
    assert (p1.child_count, p1.has_children) == (1, True)
    assert (p2.child_count, p2.has_children) == (0, False)
    assert p1.owner == "alice"
    assert p1.uri == f"omero://{server.host}/Project:{server.named['P1']}"
    assert roots[-1].uri is None
    # counts came in one call per kind, not one per container
    assert server.calls["getCollectionCount"] == 4


def test_lazy_children_only_when_asked(server, conn):
    roots = list_roots(conn)
    assert server.calls["getObject:Project"] == 0
    p1 = roots[0]
    (d1,) = list_children(conn, p1)
    assert (d1.kind, d1.name, d1.parent) == ("Dataset", "D1", ("Project", p1.id))
    images = list_children(conn, d1)
    assert [(i.kind, i.name, i.has_children) for i in images] == [
        ("Image", "a", False),
        ("Image", "b", False),
    ]
    assert images[0].is_image
    assert list_children(conn, images[0]) == []
    orphans = list_children(conn, roots[-1])
    assert [i.name for i in orphans] == ["lonely"]


def test_screen_plate_wells_fields(server, conn):
    screen = _by_name(list_roots(conn))["S1"]
    (plate,) = list_children(conn, screen)
    assert plate.kind == "Plate" and plate.child_count == 4
    wells = list_children(conn, plate)
    assert [w.name for w in wells] == ["A1", "A2", "B1", "B2"]
    assert wells[2].extra == {"row": 1, "column": 0}
    assert all(w.child_count == 2 for w in wells)
    fields = list_children(conn, wells[3])
    assert [f.name for f in fields] == ["B2 field 1: PL1 B2 f0", "B2 field 2: PL1 B2 f1"]
    assert all(f.kind == "Image" for f in fields)
    assert fields[1].extra == {"well": "B2", "field": 1}
    # the field node opens the well sample's image
    pix = server.images[fields[1].id].data
    assert pix[0, 0, 0, 0, 0] == 10 * 1 + 1 + 1


def test_other_group_only_with_all_groups(server, conn):
    with pytest.raises(OmeroObjectNotFoundError, match="try group -1"):
        list_children(conn, Node("Project", server.named["OtherP"], "", True))
    conn.set_group(-1)
    (d,) = list_children(conn, Node("Project", server.named["OtherP"], "", True))
    assert d.name == "OtherD"


def test_thumbnail_is_an_rgb_array(server, conn):
    thumb = get_thumbnail(conn, server.named["a"], size=10)
    assert thumb.dtype == np.uint8 and thumb.ndim == 3 and thumb.shape[2] == 3
    assert max(thumb.shape[:2]) == 10  # longest side, aspect kept (image is 16x20)
    assert thumb.shape[:2] == (8, 10)
    # brightest pixel of the plane is white in the thumbnail of the same plane
    full = get_thumbnail(conn, server.named["a"], size=20)
    plane = server.images[server.named["a"]].data[0, 0, 0]
    y, x = np.unravel_index(np.argmax(plane), plane.shape)
    assert full[y, x].tolist() == [255, 255, 255]


def test_expand_dataset_project_plate_screen_well(server, conn):
    host = server.host
    n = server.named

    def ids(uris):
        return [parse_omero_uri(u).id for u in uris]

    assert ids(expand_omero_inputs(parse_omero_uri(f"omero://{host}/Dataset:{n['D1']}"), conn)) == [
        n["a"],
        n["b"],
    ]
    assert ids(expand_omero_inputs(f"omero://{host}/Project:{n['P1']}", conn)) == [n["a"], n["b"]]
    assert expand_omero_inputs(f"omero://{host}/Project:{n['P2']}", conn) == []
    plate_images = ids(expand_omero_inputs(f"omero://{host}/Plate:{n['PL1']}", conn))
    expected = [
        i
        for w in sorted(server.wells.values(), key=lambda w: (w.row, w.column))
        if w.plate == n["PL1"]
        for i in w.images
    ]
    assert plate_images == expected and len(expected) == 8
    assert ids(expand_omero_inputs(f"omero://{host}/Screen:{n['S1']}", conn)) == expected
    well = next(w for w in server.wells.values() if w.plate == n["PL1"])
    assert ids(expand_omero_inputs(f"omero://{host}/Well:{well.id}", conn)) == well.images
    web = f"https://{host}/webclient/?show=dataset-{n['D1']}"
    uris = expand_omero_inputs(web, conn)
    assert uris[0] == f"omero://{host}/Image:{n['a']}"
    assert expand_omero_inputs(f"omero://{host}/Image:{n['c']}", conn) == [
        f"omero://{host}/Image:{n['c']}"
    ]


def test_expand_errors(server, conn):
    with pytest.raises(OmeroObjectNotFoundError, match="Dataset:999999"):
        expand_omero_inputs(f"omero://{server.host}/Dataset:999999", conn)
    with pytest.raises(OmeroObjectNotFoundError, match="Image:999999"):
        expand_omero_inputs(f"omero://{server.host}/Image:999999", conn)
    with pytest.raises(OmeroUriError):
        expand_omero_inputs("/not/omero", conn)
