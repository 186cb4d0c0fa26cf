"""The OMERO browser in a real napari viewer, against the FAKE OMERO server.

No OMERO server can run on the test machines: every test here talks to the
FAKE server and BlitzGateway of ``tests/fakes/fake_blitz.py`` (same method
names as omero-py; saving needs real omero-py model objects). The widget,
the viewer, the workers, the session recorder and the files are real.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from qtpy.QtCore import QPoint, Qt

from fakes.fake_blitz import HAVE_OMERO, standard_server, write_cli_session
from napari_fbias._qt.omero import browser as omero_widget_module
from napari_fbias._qt.omero.tree import LOADING_TEXT
from napari_fbias._qt.omero_widget import NO_TABLE, OmeroWidget
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io.omero.browse import get_thumbnail
from napari_fbias.io.omero.connection import OmeroConnection, connections

pytestmark = pytest.mark.qt

HOST = "omero.example.org"
PASSWORD = "secret-pw"


# --- fixtures and helpers ------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private HOME, session store and config folder: every file the test writes is here."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.delenv("OMERO_SESSIONDIR", raising=False)
    monkeypatch.delenv("OMERO_USERDIR", raising=False)
    return home


@pytest.fixture
def server() -> Any:
    """The FAKE server (standard content plus one pyramidal image in D1)."""
    fake = standard_server(HOST)
    n = fake.named
    data = np.arange(64 * 64, dtype=np.uint16).reshape(1, 1, 1, 64, 64)
    n["pyr"] = fake.add_image(
        "pyr",
        data,
        group=n["lab"],
        owner=n["alice"],
        dataset=n["D1"],
        pyramid_levels=3,
        tile=(32, 32),
        windows=[(0.0, 4095.0)],
    )
    yield fake
    for conn in set(connections().values()):
        conn.close()


@pytest.fixture
def viewer(make_napari_viewer: Any) -> Any:
    return make_napari_viewer()


@pytest.fixture
def browser(viewer: Any, qtbot: Any, server: Any, home: Path) -> Any:
    w = OmeroWidget(viewer, backend=server.backend(), sessions_dir=home / "cli", keepalive_ms=0)
    viewer.window.add_dock_widget(w, name="OMERO")
    yield w
    settle(qtbot, w)


def settle(qtbot: Any, w: OmeroWidget, timeout: int = 20000) -> None:
    """Wait until the browser's workers are done."""
    qtbot.waitUntil(lambda: not w.busy, timeout=timeout)


def log_in(qtbot: Any, w: OmeroWidget, password: str = PASSWORD) -> None:
    panel = w.login_panel
    panel.set_mode("password")
    panel.server.setText(HOST)
    panel.user.setText("alice")
    panel.password.setText(password)
    panel.login_button.click()
    assert panel.password.text() == ""  # cleared as soon as the login starts
    settle(qtbot, w)


def item(w: OmeroWidget, kind: str, name: str) -> Any:
    found = w.tree.find(kind, name)
    assert found is not None, f"no {kind} {name!r} in the tree"
    return found


def expand(qtbot: Any, w: OmeroWidget, kind: str, name: str) -> Any:
    it = item(w, kind, name)
    it.setExpanded(True)
    qtbot.waitUntil(lambda: w.tree.is_loaded(it) and not w.busy, timeout=20000)
    return it


def child_names(it: Any) -> list[str]:
    return [it.child(i).text(0) for i in range(it.childCount())]


def run_op(qtbot: Any, viewer: Any, op: str, inputs: dict[str, str], params: dict) -> Any:
    worker = get_workspace(viewer).run_op(
        op, {k: viewer.layers[v] for k, v in inputs.items()}, params
    )
    qtbot.waitUntil(lambda: worker.fbias_job.done, timeout=60000)
    assert worker.fbias_job.error is None, worker.fbias_job.error
    return worker.fbias_job


def files_containing(root: Path, secret: str) -> list[Path]:
    needle = secret.encode()
    return [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def double_click(qtbot: Any, w: OmeroWidget, it: Any) -> None:
    tree = w.tree.tree
    tree.scrollToItem(it)
    rect = tree.visualItemRect(it)
    pos = QPoint(rect.left() + 30, rect.center().y())
    qtbot.mouseClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)
    qtbot.mouseDClick(tree.viewport(), Qt.MouseButton.LeftButton, pos=pos)


# --- logging in ----------------------------------------------------------------------------------
def test_password_login_clears_the_field_and_no_secret_reaches_a_file(
    browser: OmeroWidget, qtbot: Any, server: Any, viewer: Any, tmp_path: Path, caplog: Any
) -> None:
    caplog.set_level(logging.DEBUG)
    w = browser
    assert not w.tree.isEnabled() and w.connection is None

    # a wrong password: refused, said clearly, field cleared, not connected
    log_in(qtbot, w, password="wrong-pw-987")
    assert w.connection is None
    assert "refused the user name or password" in w.login_panel.state.text()
    assert server.calls["createSession"] == 1

    log_in(qtbot, w)
    conn = w.connection
    assert conn is not None and conn.is_connected and conn.user == "alice"
    assert w.login_panel.state.text().startswith(f"Connected to {HOST} as alice")
    groups = [w.login_panel.group.itemText(i) for i in range(w.login_panel.group.count())]
    assert groups[:2] == [f"lab ({server.named['lab']})", f"other ({server.named['other']})"]
    assert w.tree.isEnabled() and w.login_panel.logout_button.isEnabled()
    key = conn.session_key
    assert key in server.sessions

    # a whole session's worth of files: session journal + snapshot, recent list, layers
    ws = get_workspace(viewer)
    rec = ws.start_session(title="omero desk", user="bob")
    w.open_uri(f"omero://{HOST}/Image:{server.named['a']}")
    settle(qtbot, w)
    run_op(qtbot, viewer, "segment.threshold", {"image": "a"}, {})
    rec.save()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name == "recent.json" for p in written)
    assert any(p.suffix == ".jsonl" or "journal" in p.name for p in written)
    for secret in (PASSWORD, "wrong-pw-987", key):
        assert files_containing(tmp_path, secret) == []
        assert secret not in caplog.text
        for obj in (w, w.login_panel):
            assert all(secret not in repr(v) for v in vars(obj).values())
    # the session names the image by its URI, never by a credential
    assert [i.source for i in rec.session.images] == [f"omero://{HOST}/Image:{server.named['a']}"]


def test_session_key_login_and_group_switch(browser: OmeroWidget, qtbot: Any, server: Any) -> None:
    other = OmeroConnection.login(HOST, "alice", PASSWORD, backend=server.backend(), register=False)
    w = browser
    panel = w.login_panel
    panel.set_mode("session_key")
    panel.server.setText(HOST)
    panel.session_key.setText(other.session_key)
    panel.login_button.click()
    assert panel.session_key.text() == ""
    settle(qtbot, w)
    assert w.connection is not None and w.connection.session_key == other.session_key
    top = [w.tree.tree.topLevelItem(i).text(0) for i in range(w.tree.tree.topLevelItemCount())]
    assert top == ["P1", "P2", "S1", "orphan-ds", "PL2", "Orphaned images"]

    # switch to the other group: its own top level
    panel.group.setCurrentIndex(panel.group.findData(server.named["other"]))
    settle(qtbot, w)
    top = [w.tree.tree.topLevelItem(i).text(0) for i in range(w.tree.tree.topLevelItemCount())]
    assert top == ["OtherP", "Orphaned images"]
    assert w.connection.group_id == server.named["other"]
    assert "group other" in panel.state.text()
    # all my groups: both
    panel.group.setCurrentIndex(panel.group.findData(-1))
    settle(qtbot, w)
    top = [w.tree.tree.topLevelItem(i).text(0) for i in range(w.tree.tree.topLevelItemCount())]
    assert "P1" in top and "OtherP" in top

    # log out: a session we joined stays open for its owner
    w.logout()
    assert w.connection is None and connections() == {}
    assert other.session_key in server.sessions
    other.close()


def test_cli_session_is_listed_and_reused(
    browser: OmeroWidget, qtbot: Any, server: Any, home: Path, viewer: Any
) -> None:
    live = OmeroConnection.login(HOST, "alice", PASSWORD, backend=server.backend(), register=False)
    write_cli_session(home / "cli", HOST, "alice", live.session_key)
    w = browser
    w.login_panel.set_mode("cli")
    choices = [
        w.login_panel.cli_sessions.itemText(i) for i in range(w.login_panel.cli_sessions.count())
    ]
    assert choices == [f"alice@{HOST}:4064"]
    assert all(live.session_key not in c for c in choices)
    w.login_panel.login_button.click()
    settle(qtbot, w)
    assert w.connection is not None and w.connection.session_key == live.session_key
    assert w.tree.find("Project", "P1") is not None
    # a second browser (e.g. from the Open widget) picks up the open connection
    second = OmeroWidget(viewer, backend=server.backend(), keepalive_ms=0)
    settle(qtbot, second)
    assert second.connection is w.connection
    assert second.tree.find("Project", "P1") is not None and second.tree.isEnabled()
    assert second.login_panel.state.text().startswith(f"Connected to {HOST} as alice")
    second.deleteLater()
    live.close()


# --- browsing ------------------------------------------------------------------------------------
def test_browse_fetches_children_only_on_expand_with_thumbnails_and_plates(
    browser: OmeroWidget, qtbot: Any, server: Any
) -> None:
    w = browser
    log_in(qtbot, w)
    p1 = item(w, "Project", "P1")
    assert child_names(p1) == [LOADING_TEXT]  # a placeholder: nothing fetched yet
    assert server.calls["getObject:Project"] == 0 and server.calls["getThumbnail"] == 0

    expand(qtbot, w, "Project", "P1")
    assert server.calls["getObject:Project"] == 1
    assert child_names(p1) == ["D1"]
    assert server.calls["getObject:Dataset"] == 0  # D1 is not expanded
    d1 = expand(qtbot, w, "Dataset", "D1")
    assert child_names(d1) == ["a", "b", "pyr"]
    qtbot.waitUntil(lambda: server.calls["getThumbnail"] == 3 and not w.busy, timeout=20000)
    # the icon shows the server's thumbnail
    a_item = item(w, "Image", "a")
    shown = a_item.icon(0).pixmap(48, 48).toImage()
    thumb = get_thumbnail(w.connection, server.named["a"], size=48)  # one more call
    assert (shown.width(), shown.height()) == (thumb.shape[1], thumb.shape[0])
    color = shown.pixelColor(3, 5)
    assert (color.red(), color.green(), color.blue()) == tuple(int(v) for v in thumb[5, 3, :3])
    # collapsing and expanding again does not fetch again
    d1.setExpanded(False)
    d1.setExpanded(True)
    settle(qtbot, w)
    assert server.calls["getObject:Dataset"] == 1 and server.calls["getThumbnail"] == 3 + 1

    # Screen > Plate > Well > fields
    expand(qtbot, w, "Screen", "S1")
    pl1 = expand(qtbot, w, "Plate", "PL1")
    assert child_names(pl1) == ["A1", "A2", "B1", "B2"]
    b2 = expand(qtbot, w, "Well", "B2")
    assert child_names(b2) == ["B2 field 1: PL1 B2 f0", "B2 field 2: PL1 B2 f1"]
    qtbot.waitUntil(lambda: server.calls["getThumbnail"] == 6 and not w.busy, timeout=20000)
    assert not b2.child(0).icon(0).isNull()
    assert server.calls["getObject:Well"] == 1  # only B2 was listed

    # the filter keeps matches and their ancestors
    w.tree.filter.setText("b2 field 2")
    assert not b2.isHidden() and not pl1.isHidden() and not item(w, "Screen", "S1").isHidden()
    assert b2.child(0).isHidden() and not b2.child(1).isHidden()
    assert item(w, "Well", "A1").isHidden() and p1.isHidden()
    w.tree.filter.setText("")
    assert not p1.isHidden()


# --- opening -------------------------------------------------------------------------------------
def test_double_click_opens_lazy_layers_with_names_colours_scale(
    browser: OmeroWidget, qtbot: Any, server: Any, viewer: Any
) -> None:
    w = browser
    log_in(qtbot, w)
    rec = get_workspace(viewer).start_session(title="plates")
    expand(qtbot, w, "Project", "P1")
    expand(qtbot, w, "Dataset", "D1")
    planes_before = server.calls["getPlane"]
    double_click(qtbot, w, item(w, "Image", "b"))
    settle(qtbot, w)
    assert [layer.name for layer in viewer.layers] == ["DAPI", "GFP"]
    dapi, gfp = viewer.layers["DAPI"], viewer.layers["GFP"]
    assert dapi.colormap.name == "blue" and gfp.colormap.name == "green"
    assert tuple(dapi.scale) == pytest.approx((1.0, 0.2, 0.2))  # z, y, x in micrometres
    assert tuple(dapi.contrast_limits) == (0.0, 1000.0) and tuple(gfp.contrast_limits) == (
        10.0,
        3000.0,
    )
    assert dapi.visible and not gfp.visible
    uri = f"omero://{HOST}/Image:{server.named['b']}"
    assert dapi.metadata["source"] == uri
    # lazy: only the displayed plane of each layer was fetched, not the 6 planes of the image
    fetched = server.calls["getPlane"] - planes_before
    assert fetched <= 2
    data = np.asarray(gfp.data)
    expected = server.images[server.named["b"]].data[0, 1]
    np.testing.assert_array_equal(data, expected)
    assert server.calls["getPlane"] - planes_before == fetched + 3
    # recorded in the running session by its URI, one channel per layer
    (img,) = rec.session.images
    assert img.source == uri and dict(img.layers) == {"DAPI": {"c": 0}, "GFP": {"c": 1}}

    # a pyramid opens as a multiscale layer, through the Open button
    w.tree.tree.clearSelection()
    item(w, "Image", "pyr").setSelected(True)
    w.open_button.click()
    settle(qtbot, w)
    pyr = viewer.layers["pyr"]
    assert pyr.multiscale
    assert [tuple(level.shape) for level in pyr.data] == [(64, 64), (32, 32), (16, 16)]
    assert server.calls["getTile"] < 4 + 1 + 1  # not every tile of every level


def test_open_by_uri_and_by_web_link(
    browser: OmeroWidget, qtbot: Any, server: Any, viewer: Any
) -> None:
    w = browser
    log_in(qtbot, w)
    n = server.named
    w.uri.setText(f"omero://{HOST}/Image:{n['a']}")
    w.uri_button.click()
    settle(qtbot, w)
    assert viewer.layers["a"].data.shape == (16, 20)
    assert tuple(viewer.layers["a"].scale) == pytest.approx((0.5, 0.5))

    # OMERO.web links: this server's host name, and a web front end's own host name
    w.open_uri(f"https://{HOST}/webclient/?show=image-{n['lonely']}")
    settle(qtbot, w)
    w.open_uri(f"https://web.example.org/omero/webclient/img_detail/{n['c']}/")
    settle(qtbot, w)
    assert [layer.name for layer in viewer.layers] == ["a", "lonely", "c"]
    assert viewer.layers["c"].metadata["source"] == f"omero://{HOST}/Image:{n['c']}"
    np.testing.assert_array_equal(
        np.asarray(viewer.layers["lonely"].data), server.images[n["lonely"]].data[0, 0, 0]
    )

    # a dataset, an unknown server, a credential in the URI: clear messages, nothing opened
    assert w.open_uri(f"omero://{HOST}/Dataset:{n['D1']}") is None
    assert "not an image; expand it in the tree" in w.status.text()
    assert w.open_uri("omero://other.example.org/Image:1") is None
    assert "log in to other.example.org first" in w.status.text()
    assert w.open_uri(f"omero://alice:{PASSWORD}@{HOST}/Image:1") is None
    assert "refusing an OMERO URI with credentials" in w.status.text()
    assert PASSWORD not in w.status.text()
    assert len(viewer.layers) == 3


# --- lost connections ----------------------------------------------------------------------------
def test_lost_connection_then_reconnect_keeps_layers_and_recorded_steps(
    browser: OmeroWidget, qtbot: Any, server: Any, viewer: Any
) -> None:
    w = browser
    log_in(qtbot, w)
    rec = get_workspace(viewer).start_session(title="restart")
    w.open_uri(f"omero://{HOST}/Image:{server.named['a']}")
    settle(qtbot, w)
    run_op(qtbot, viewer, "segment.threshold", {"image": "a"}, {})
    layers_before = list(viewer.layers)
    steps_before = [s.to_dict() for _, s in rec.session.all_steps()]
    assert len(steps_before) == 1

    # a network blip: the session survives, Reconnect needs no password
    server.drop_connections()
    w.check_connection()
    settle(qtbot, w)
    panel = w.login_panel
    assert "lost" in panel.state.text() and "Press Reconnect" in panel.state.text()
    assert not panel.reconnect_button.isHidden() and not w.tree.isEnabled()
    panel.reconnect_button.click()
    settle(qtbot, w)
    assert w.connection.is_connected and panel.reconnect_button.isHidden()
    assert "Reconnected" in w.status.text()

    # a server restart: the session is gone, noticed by the next action
    server.restart()
    p1 = item(w, "Project", "P1")
    p1.setExpanded(True)
    settle(qtbot, w)
    assert "lost the connection to OMERO server" in panel.state.text()
    assert not w.tree.is_loaded(p1) and not p1.isExpanded()  # can be expanded again later
    assert not panel.reconnect_button.isHidden()
    panel.reconnect_button.click()  # no password typed: asks for it
    settle(qtbot, w)
    assert "Type the password of alice and press Reconnect" in panel.state.text()
    assert panel.mode_key == "password" and not w.connection.is_connected
    panel.password.setText(PASSWORD)
    panel.reconnect_button.click()
    assert panel.password.text() == ""
    settle(qtbot, w)
    assert w.connection.is_connected
    assert list(viewer.layers) == layers_before  # the same layer objects
    assert [s.to_dict() for _, s in rec.session.all_steps()] == steps_before
    # the lazy image reads again through the new session; browsing works again
    np.testing.assert_array_equal(
        np.asarray(viewer.layers["a"].data), server.images[server.named["a"]].data[0, 0, 0]
    )
    expand(qtbot, w, "Project", "P1")
    assert child_names(p1) == ["D1"]


# --- sending back --------------------------------------------------------------------------------
@pytest.mark.skipif(not HAVE_OMERO, reason="needs omero-py: run scripts/build_omero_wheels.sh")
def test_send_back_rois_table_and_export_files_then_resend_replaces(
    browser: OmeroWidget, qtbot: Any, server: Any, viewer: Any, tmp_path: Path
) -> None:
    pytest.importorskip("omero_rois", reason="needs omero-rois: run scripts/build_omero_wheels.sh")
    import omero.model
    from omero.rtypes import unwrap

    w = browser
    log_in(qtbot, w)
    iid = server.named["a"]
    get_workspace(viewer).start_session(title="send back")
    w.open_uri(f"omero://{HOST}/Image:{iid}")
    settle(qtbot, w)
    run_op(qtbot, viewer, "segment.threshold", {"image": "a"}, {})
    run_op(qtbot, viewer, "measure.regionprops", {"labels": "A: threshold", "image": "a"}, {})
    labels = np.asarray(viewer.layers["A: threshold"].data)
    ids = [int(v) for v in np.unique(labels) if v]
    assert ids

    # the widget finds the labels, the image they came from and their table
    assert w.labels_choice.currentText() == "A: threshold"
    assert w.target_choice.currentText() == f"omero://{HOST}/Image:{iid}"
    assert w.table_choice.currentText() == "A: measurements"
    # the session's export: its report and pipeline become attachments
    w.attach_session_export()
    settle(qtbot, w, timeout=60000)
    attached = [Path(w.attachments.item(i).text()) for i in range(w.attachments.count())]
    assert [p.name for p in attached] == ["report.html", "pipeline.fbias.yaml"]
    assert all(p.is_file() for p in attached)

    def ours() -> tuple[dict[int, Any], list[dict]]:
        rois = {rid: r for rid, r in server.rois.items() if unwrap(r.getImage().getId()) == iid}
        anns = [
            server.annotations[a] for kind, oid, a in server.links if (kind, oid) == ("Image", iid)
        ]
        return rois, anns

    w.send_button.click()
    settle(qtbot, w)
    rois, anns = ours()
    assert len(rois) == len(ids)
    for roi in rois.values():
        assert isinstance(roi, omero.model.RoiI)
        label = int(unwrap(roi.getName()).rsplit(" ", 1)[1])
        (mask,) = roi.copyShapes()
        assert isinstance(mask, omero.model.MaskI)
        w_, h_ = int(unwrap(mask.getWidth())), int(unwrap(mask.getHeight()))
        bits = np.unpackbits(np.frombuffer(mask.getBytes(), np.uint8))[: w_ * h_]
        assert int(bits.sum()) == int((labels == label).sum())
    assert sorted(a["name"] for a in anns) == [
        "A_measurements.h5",
        "pipeline.fbias.yaml",
        "report.html",
    ]
    table = next(t for t in server.tables.values() if t["name"] == "A_measurements.h5")
    assert table["types"]["Roi"] == "RoiColumn"
    assert sorted(table["columns"]["Roi"]) == sorted(rois)  # each row links to its label's ROI
    assert table["columns"]["Image"] == [iid] * len(ids)
    assert f"Sent {len(ids)} ROIs" in w.status.text()
    report = next(a for a in anns if a["name"] == "report.html")
    assert report["ns"] == "napari-fbias" and b"<html" in report["content"]
    assert PASSWORD.encode() not in report["content"]

    # sending again replaces our previous upload instead of adding a copy
    first_ids = set(rois)
    w.send_button.click()
    settle(qtbot, w)
    rois, anns = ours()
    assert len(rois) == len(ids) and not (set(rois) & first_ids)
    assert sorted(a["name"] for a in anns) == [
        "A_measurements.h5",
        "pipeline.fbias.yaml",
        "report.html",
    ]
    assert "replacing" in w.status.text()

    # only the labels, no table: the table annotation stays as it was
    w.table_choice.setCurrentText(NO_TABLE)
    w.attachments.clear()
    w.send_button.click()
    settle(qtbot, w)
    rois, anns = ours()
    assert len(rois) == len(ids) and len(anns) == 3


def test_send_back_needs_a_target_and_something_to_send(
    browser: OmeroWidget, qtbot: Any, viewer: Any, tmp_path: Path
) -> None:
    w = browser
    log_in(qtbot, w)
    viewer.add_labels(np.zeros((4, 4), np.uint8), name="drawn")
    assert w.labels_choice.currentText() == "drawn"
    assert w.target_choice.count() == 0  # no OMERO image open, and the layer has no origin
    assert w.send() is None
    assert "choose the OMERO image" in w.status.text()

    # files of an export folder: its report and pipelines only
    export = tmp_path / "bundle"
    export.mkdir()
    with pytest.raises(FileNotFoundError, match="holds no report"):
        w.add_export_folder(export)
    for name in ("report.html", "pipeline_B.fbias.yaml", "notes.txt"):
        (export / name).write_text("x", encoding="utf-8")
    w.add_export_folder(export)
    w.add_export_folder(export)  # no duplicates
    assert [w.attachments.item(i).text() for i in range(w.attachments.count())] == [
        str(export / "report.html"),
        str(export / "pipeline_B.fbias.yaml"),
    ]
    # without a session there is nothing to export
    assert w.attach_session_export() is None
    assert "start a session" in w.status.text()


# --- without omero-py ----------------------------------------------------------------------------
def test_missing_omero_shows_how_to_install(
    viewer: Any, monkeypatch: pytest.MonkeyPatch, home: Path
) -> None:
    monkeypatch.setattr(omero_widget_module, "omero_available", lambda: False)
    w = OmeroWidget(viewer)
    assert not w.available
    text = w.install_help.text()
    assert 'pip install "napari-fbias[omero]"' in text
    assert "scripts/build_omero_wheels.sh" in text
    assert not hasattr(w, "login_panel")


def test_open_widget_and_manifest_offer_the_browser(viewer: Any, home: Path) -> None:
    from npe2 import PluginManager

    from napari_fbias._qt.open_widget import OpenWidget

    opener = OpenWidget(viewer)
    assert opener.omero_button.enabled
    docked = opener.open_omero()
    assert isinstance(docked, OmeroWidget) and docked.available
    manifest = PluginManager.instance().get_manifest("napari-fbias")
    widgets = {w.display_name: w.command for w in manifest.contributions.widgets}
    assert widgets["OMERO browser"] == "napari-fbias.widget.omero"
    commands = {c.id: c.python_name for c in manifest.contributions.commands}
    assert commands["napari-fbias.widget.omero"] == "napari_fbias._qt.omero_widget:OmeroWidget"
    # docked from the Plugins menu: napari builds it, and it shares the viewer's workspace
    _dock, plugin_widget = viewer.window.add_plugin_dock_widget("napari-fbias", "OMERO browser")
    assert isinstance(plugin_widget, OmeroWidget)
    assert plugin_widget.viewer is viewer
    assert plugin_widget.workspace is get_workspace(viewer)
