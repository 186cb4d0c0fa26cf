"""The Open widget: local and HTTP OME-Zarr into layers, recent entries without credentials."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from widget_helpers import click, errors, notifications

from napari_fbias._qt.open_widget import (
    MAX_RECENT,
    OpenWidget,
    load_recent,
    omero_widget_class,
    recent_file,
    remember,
)
from napari_fbias.io import samples

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


@pytest.fixture
def widget(make_napari_viewer: Any) -> OpenWidget:
    viewer = make_napari_viewer()
    w = OpenWidget(viewer)
    viewer.window.add_dock_widget(w, name="Open")
    return w


def wait_open(qtbot: Any, widget: OpenWidget) -> None:
    qtbot.waitUntil(lambda: not widget.running, timeout=30000)


def test_open_local_ome_zarr_and_remember_it(
    qtbot: Any, widget: OpenWidget, tmp_path: Path
) -> None:
    path = str(samples.nuclei_multiscale_path())
    widget.source.value = path
    click(widget.open_button)
    wait_open(qtbot, widget)
    viewer = widget.viewer
    image = viewer.layers[0]
    assert image.multiscale and len(image.data) == 3
    assert Path(image.metadata["fbias"]["source"]) == Path(path).resolve()
    assert tuple(image.scale) == (0.65, 0.65)
    assert [type(layer).__name__ for layer in viewer.layers] == ["Image", "Labels"]
    assert widget.status.value.startswith(f"Opened {path}")
    assert recent_file() == tmp_path / "config" / "recent.json"
    assert load_recent() == [path]
    assert list(widget.recent.choices) == [None, path]


def test_open_over_http_stores_no_credentials(
    qtbot: Any, widget: OpenWidget, tmp_path: Path, http_folder: Any
) -> None:
    shutil.copytree(samples.nuclei_multiscale_path(), tmp_path / "served.ome.zarr")
    url = http_folder.url_for("served.ome.zarr")
    secret_url = url.replace("http://", "http://ann:hunter2@")
    widget.source.value = secret_url
    click(widget.open_button)
    wait_open(qtbot, widget)
    viewer = widget.viewer
    assert len(viewer.layers) == 2
    local = samples.load_nuclei_multiscale()
    np.testing.assert_array_equal(np.asarray(viewer.layers[0].data[2]), np.asarray(local.levels[2]))
    text = recent_file().read_text(encoding="utf-8")
    assert "hunter2" not in text and "ann@" not in text
    assert json.loads(text)["recent"] == [url]
    assert "hunter2" not in widget.status.value
    # picking a recent entry fills the field
    widget.recent.value = url
    assert widget.source.value == url


def test_open_error_is_notified_and_not_remembered(
    qtbot: Any, widget: OpenWidget, tmp_path: Path
) -> None:
    widget.source.value = str(tmp_path / "nowhere.ome.zarr")
    with notifications() as seen:
        click(widget.open_button)
        wait_open(qtbot, widget)
        qtbot.waitUntil(lambda: bool(errors(seen)))
    (message,) = errors(seen)
    assert message.startswith(f"Could not open {tmp_path / 'nowhere.ome.zarr'}")
    assert len(widget.viewer.layers) == 0
    assert load_recent() == []
    assert widget.open_button.enabled
    widget.source.value = "  "
    with notifications() as seen:
        assert widget.open() is None
    assert errors(seen) == ["Open: type a path or URL first"]


def test_recent_list_is_bounded_and_survives_a_broken_file(tmp_path: Path) -> None:
    for i in range(MAX_RECENT + 3):
        remember(f"/data/image{i}.ome.zarr")
    remember("/data/image5.ome.zarr")
    items = load_recent()
    assert len(items) == MAX_RECENT and items[0] == "/data/image5.ome.zarr"
    assert items.count("/data/image5.ome.zarr") == 1
    recent_file().write_text("{not json", encoding="utf-8")
    assert load_recent() == []
    assert remember("s3://bucket/a.zarr") == ["s3://bucket/a.zarr"]


def test_omero_place(widget: OpenWidget) -> None:
    cls = omero_widget_class()
    assert widget.omero_button.enabled == (cls is not None)
    if cls is None:
        assert widget.open_omero() is None
        return
    browser = widget.open_omero()
    assert isinstance(browser, cls)
    assert browser.viewer is widget.viewer
