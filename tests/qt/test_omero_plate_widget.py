"""An OMERO Plate in the Plate widget (real viewer, FAKE OMERO server): same picker as OME-Zarr."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from widget_helpers import wait_widget

from fakes.fake_blitz import standard_server
from napari_fbias._qt.layer_axes import image_ref
from napari_fbias._qt.omero_widget import OmeroWidget
from napari_fbias._qt.plate_widget import PlateWidget
from napari_fbias.io.omero.connection import OmeroConnection, connections

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

HOST = "omero.example.org"


@pytest.fixture
def server() -> Any:
    fake = standard_server(HOST)
    yield fake
    for conn in set(connections().values()):
        conn.close()


def test_an_omero_plate_opens_in_the_plate_widget(
    make_napari_viewer: Any, qtbot: Any, server: Any
) -> None:
    OmeroConnection.login(HOST, "alice", "secret-pw", backend=server.backend())
    viewer = make_napari_viewer()
    widget = PlateWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Plate")
    uri = f"omero://{HOST}/Plate:{server.named['PL1']}"
    widget.source.value = uri
    widget.read()
    wait_widget(qtbot, widget)
    assert widget.plate is not None, widget.status.value
    assert list(widget.well.choices) == ["A1", "A2", "B1", "B2"]
    assert "2 x 2, 4 wells, 8 fields" in widget.status.value

    widget.show_overview()
    wait_widget(qtbot, widget)
    over, wells = list(viewer.layers)
    assert over.metadata["plate"]["source"] == uri and wells.features["well"].tolist() == [
        "A1",
        "A2",
        "B1",
        "B2",
    ]

    widget.well.value = "B1"
    widget.field.value = 1
    widget.open_field()
    wait_widget(qtbot, widget)
    layer = viewer.layers[-1]
    iid = next(i for i, img in server.images.items() if img.name == "PL1 B1 f1")
    assert layer.metadata["source"] == f"omero://{HOST}/Image:{iid}", widget.status.value
    assert layer.name == "PL1 B1_f1"
    np.testing.assert_array_equal(np.asarray(layer.data), server.images[iid].data[0, 0, 0])
    ref, _ = image_ref(layer, "image")  # what a session records: the OMERO image
    assert ref.source == f"omero://{HOST}/Image:{iid}"


def test_open_plate_from_the_omero_browser(
    make_napari_viewer: Any, qtbot: Any, server: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer()
    browser = OmeroWidget(
        viewer, backend=server.backend(), sessions_dir=tmp_path / "cli", keepalive_ms=0
    )
    viewer.window.add_dock_widget(browser, name="OMERO")
    panel = browser.login_panel
    panel.set_mode("password")
    panel.server.setText(HOST)
    panel.user.setText("alice")
    panel.password.setText("secret-pw")
    panel.login_button.click()
    qtbot.waitUntil(lambda: not browser.busy, timeout=20000)
    assert browser.browse_box.open_plate() is None  # nothing selected yet
    item = browser.tree.find("Plate", "PL2")
    assert item is not None
    browser.tree.tree.setCurrentItem(item)
    plate_widget = browser.browse_box.open_plate()
    assert isinstance(plate_widget, PlateWidget)
    wait_widget(qtbot, plate_widget)
    assert plate_widget.plate is not None, plate_widget.status.value
    assert plate_widget.plate.origin == "omero" and plate_widget.plate.name == "PL2"
    qtbot.waitUntil(lambda: not browser.busy, timeout=20000)
