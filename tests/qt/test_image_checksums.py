"""Images opened in napari get their pixel checksum recorded (issue 11, item 8).

The checksum is computed in a worker thread when the image enters the
session (its first recorded step), exactly as the headless demo records it;
it reaches the journal, the delivery bundle's ``checksums.sha256`` and the
check that recomputing an approach elsewhere reads the same pixels.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from widget_helpers import journal, wait_job

from napari_fbias._qt.open_widget import OpenWidget
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.pipeline.provenance import array_sha256
from napari_fbias.session import checksums
from napari_fbias.session.export import export_bundle
from napari_fbias.session.recompute import CannotRecomputeError, recompute_approach

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


def write_cells(path: Path, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    data = (rng.random((2, 64, 64)) * 100).astype(np.uint16)
    data[:, 16:40, 16:40] += 1000
    tifffile.imwrite(
        path, data, ome=True, metadata={"axes": "CYX", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5}
    )
    return data


def test_an_image_opened_in_napari_gets_its_pixel_checksum(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src = tmp_path / "cells.ome.tif"
    pixels = write_cells(src)
    viewer = make_napari_viewer()
    opener = OpenWidget(viewer)
    opener.source.value = str(src)
    opener.open()
    qtbot.waitUntil(lambda: not opener.running, timeout=30000)
    channel = viewer.layers[1]  # one channel of the image, split into layers
    on_gui_thread: list[bool] = []
    real = checksums.image_checksum

    def spy(source: str, **kwargs: Any) -> str:
        on_gui_thread.append(threading.current_thread() is threading.main_thread())
        return real(source, **kwargs)

    monkeypatch.setattr(checksums, "image_checksum", spy)
    ws = get_workspace(viewer)
    job = wait_job(qtbot, ws.run_op("segment.threshold", {"image": channel}, {}))
    assert job.error is None, job.error
    qtbot.waitUntil(lambda: not ws.busy, timeout=30000)

    rec = ws.recorder
    (img,) = rec.session.images
    expected = "sha256:" + array_sha256(pixels)  # the whole image, as recompute checks it
    assert img.checksum == expected
    assert on_gui_thread == [False]
    assert journal(rec, "image_added")[-1]["image"]["checksum"] == expected  # on disk
    # a second step on the image computes nothing again
    wait_job(qtbot, ws.run_op("segment.threshold", {"image": viewer.layers[0]}, {}))
    qtbot.waitUntil(lambda: not ws.busy, timeout=30000)
    assert on_gui_thread == [False]

    # the bundle lists it instead of "not recorded"
    result = export_bundle(rec.link, tmp_path / "bundle", figures=False)
    listed = (result.folder / "checksums.sha256").read_text()
    assert f"pixels {expected}" in listed and "not recorded" not in listed
    # and recomputing elsewhere refuses other pixels
    write_cells(src, seed=1)
    with pytest.raises(CannotRecomputeError, match="other pixels here"):
        recompute_approach(rec.session, "A")
