"""Broken data gives our errors, naming the file, chunk or URL, and breaks nothing else.

Covered here: corrupt / truncated / empty chunks, a dtype in the metadata
that does not fit the stored bytes, multiscales that do not shrink, broken
labels metadata, a server that fails or dies in the middle of reading, and a
napari viewer (with a session being recorded) that keeps its layers and its
record when opening such data fails. Other broken metadata (JSON, axes,
missing levels, a listed label image that is missing) is covered by
``test_io_ome_zarr_read.py``.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from helpers.http_server import FolderServer
from napari_fbias.io.errors import (
    CorruptDataError,
    FbiasIOError,
    MetadataError,
    UnreachableSourceError,
)
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import write_image, write_labels
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.batch import run_batch

DATA = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 1000
PIPELINE = {
    "fbias_pipeline": 1,
    "name": "threshold",
    "inputs": {"image": {"kind": "image"}},
    "steps": [{"id": "nuclei", "op": "segment.threshold", "inputs": {"image": "image"}}],
    "outputs": {"nuclei": {"from": "nuclei"}},
}


@pytest.fixture(params=["0.4", "0.5"])
def version(request: pytest.FixtureRequest) -> str:
    return request.param


def store(path: Path, version: str = "0.4", n_levels: int = 1) -> Path:
    write_image(path, DATA, "yx", chunks=(32, 32), n_levels=n_levels, ngff_version=version)
    return path


def chunk_file(path: Path, version: str, level: str = "0", y: int = 1, x: int = 1) -> Path:
    f = path / level / ("c" if version == "0.5" else "") / str(y) / str(x)
    assert f.is_file(), f
    return f


def array_meta(path: Path, version: str, level: str = "0") -> Path:
    return path / level / (".zarray" if version == "0.4" else "zarr.json")


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


# --- corrupt chunks ----------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_corrupt_chunk_names_the_chunk_and_other_chunks_still_read(
    tmp_path: Path, version: str, damage: str
) -> None:
    path = store(tmp_path / "img.ome.zarr", version)
    bad = chunk_file(path, version)
    raw = bad.read_bytes()
    bad.write_bytes(
        {"truncated": raw[: len(raw) // 2], "garbage": b"\x00junk" * 9, "empty": b""}[damage]
    )
    before = tree(path)
    image = read_ome_zarr(path)  # metadata are fine: opening is lazy and works
    with pytest.raises(CorruptDataError) as info:
        image.data.compute()
    message = str(info.value)
    assert str(bad) in message, message  # the exact chunk file, absolute
    assert "corrupt or truncated" in message
    np.testing.assert_array_equal(image.data[:32, :64].compute(), DATA[:32, :64])
    assert tree(path) == before  # reading never writes


def test_wrong_dtype_in_metadata(tmp_path: Path, version: str) -> None:
    path = store(tmp_path / "img.ome.zarr", version)
    meta = array_meta(path, version)
    doc = json.loads(meta.read_text())
    key = "dtype" if version == "0.4" else "data_type"
    # a dtype of another size: the stored bytes do not fit
    doc[key] = "<f8" if version == "0.4" else "float64"
    meta.write_text(json.dumps(doc))
    image = read_ome_zarr(path)
    assert image.dtype == np.float64
    with pytest.raises(CorruptDataError, match="does not match the stored bytes") as info:
        image.data.compute()
    assert str(chunk_file(path, version, y=0, x=0)) in str(info.value)
    # a dtype that does not exist: refused at open, naming the metadata file
    doc[key] = "<x9" if version == "0.4" else "bogus"
    meta.write_text(json.dumps(doc))
    with pytest.raises(MetadataError) as info:
        read_ome_zarr(path)
    assert str(meta) in str(info.value)


def test_multiscale_levels_that_grow_are_refused(tmp_path: Path, version: str) -> None:
    path = store(tmp_path / "img.ome.zarr", version, n_levels=2)
    attrs_file = path / (".zattrs" if version == "0.4" else "zarr.json")
    doc = json.loads(attrs_file.read_text())
    ms = (doc if version == "0.4" else doc["attributes"]["ome"])["multiscales"][0]
    ms["datasets"].reverse()  # smallest first
    attrs_file.write_text(json.dumps(doc))
    with pytest.raises(MetadataError, match=r"level 1 .*is larger than level 0") as info:
        read_ome_zarr(path)
    assert str(attrs_file) in str(info.value)


# --- labels metadata ---------------------------------------------------------------------------


def test_labels_group_without_metadata_is_ignored(tmp_path: Path) -> None:
    path = store(tmp_path / "img.ome.zarr")
    write_labels(path, (DATA > 500).astype(np.uint8), "cells")
    # the labels group without its attributes: no list of label images
    for name in (".zattrs", "zarr.json"):
        (path / "labels" / name).unlink(missing_ok=True)
    image = read_ome_zarr(path)
    assert dict(image.labels) == {}
    np.testing.assert_array_equal(image.data.compute(), DATA)


def test_label_image_without_image_label_metadata_is_still_a_label(tmp_path: Path) -> None:
    path = store(tmp_path / "img.ome.zarr")
    write_labels(path, (DATA > 500).astype(np.uint8), "cells")
    (path / "labels" / ".zattrs").write_text(json.dumps({"labels": ["cells"]}))
    attrs = path / "labels" / "cells" / ".zattrs"
    doc = json.loads(attrs.read_text())
    doc.pop("image-label", None)
    attrs.write_text(json.dumps(doc))
    cells = read_ome_zarr(path).labels["cells"]
    assert cells.is_label
    assert int(cells.data.max().compute()) == 1


def test_labels_list_that_is_not_a_list_names_the_file(tmp_path: Path) -> None:
    path = store(tmp_path / "img.ome.zarr")
    write_labels(path, (DATA > 500).astype(np.uint8), "cells")
    (path / "labels" / ".zattrs").write_text(json.dumps({"labels": "cells"}))
    with pytest.raises(MetadataError, match="must be a list of label names") as info:
        read_ome_zarr(path)
    assert str(path / "labels" / ".zattrs") in str(info.value)
    assert read_ome_zarr(path, labels=False).shape == DATA.shape


# --- a server that fails in the middle of a read -----------------------------------------------


def test_server_errors_after_opening_name_the_url(tmp_path: Path) -> None:
    store(tmp_path / "img.ome.zarr")
    with FolderServer(tmp_path) as server:
        url = server.url_for("img.ome.zarr")
        image = read_ome_zarr(url, timeout=5)
        n_meta = len(server.requests)
        assert n_meta > 0 and not server.chunk_requests()
        server.fail_after(1, status=500)  # one chunk, then every request fails
        t0 = time.perf_counter()
        with pytest.raises(UnreachableSourceError) as info:
            image.data.compute()
        assert time.perf_counter() - t0 < 30
    message = str(info.value)
    assert f"{url}/0/" in message and "500" in message, message


def test_server_that_dies_mid_read_names_the_url(tmp_path: Path) -> None:
    store(tmp_path / "img.ome.zarr")
    server = FolderServer(tmp_path).start()
    url = server.url_for("img.ome.zarr")
    image = read_ome_zarr(url, timeout=2)
    np.testing.assert_array_equal(image.data[:32, :32].compute(), DATA[:32, :32])
    server.stop()
    t0 = time.perf_counter()
    with pytest.raises(UnreachableSourceError) as info:
        image.data[32:, 32:].compute()
    assert time.perf_counter() - t0 < 30
    assert f"{url}/0/1/1" in str(info.value)


def test_batch_input_failing_mid_read_fails_alone(tmp_path: Path) -> None:
    """A batch of a local image and one on a failing server: one done, one failed, named."""
    served = tmp_path / "served"
    served.mkdir()
    store(served / "remote.ome.zarr")
    local = tmp_path / "local"
    local.mkdir()
    tifffile.imwrite(local / "local.tif", DATA)
    out = tmp_path / "out"
    with FolderServer(served) as server:
        url = server.url_for("remote.ome.zarr")
        server.fail_after(4, status=503)  # enough to open it, not to read its pixels
        report = run_batch(Pipeline.from_dict(PIPELINE), [str(local / "local.tif"), url], out)
    status = {i.stem: (i.status, i.message) for i in report.items}
    assert status["local"][0] == "done"
    assert status["remote"][0] == "failed"
    assert url in status["remote"][1] and "503" in status["remote"][1], status["remote"][1]
    assert sorted(p.name for p in out.iterdir()) == ["local"]  # nothing half-written


# --- the viewer and the session survive --------------------------------------------------------


@pytest.fixture
def broken_stores(tmp_path: Path) -> dict[str, Path]:
    """Stores that napari-fbias accepts as OME-Zarr but cannot show, and why."""
    out = {}
    corrupt = store(tmp_path / "corrupt.ome.zarr", n_levels=2)
    for level in ("0", "1"):
        for f in (corrupt / level).rglob("*"):
            if f.is_file() and not f.name.startswith("."):
                f.write_bytes(b"junk")
    out["corrupt chunks"] = corrupt
    missing = store(tmp_path / "missing-level.ome.zarr", n_levels=2)
    shutil.rmtree(missing / "1")
    out["missing level"] = missing
    grows = store(tmp_path / "grows.ome.zarr", n_levels=2)
    doc = json.loads((grows / ".zattrs").read_text())
    doc["multiscales"][0]["datasets"].reverse()
    (grows / ".zattrs").write_text(json.dumps(doc))
    out["levels grow"] = grows
    return out


@pytest.mark.qt
def test_viewer_and_recorded_session_survive_failed_opens(
    make_napari_viewer: Any, tmp_path: Path, broken_stores: dict[str, Path]
) -> None:
    from napari_fbias.session import SessionRecorder, load_session

    good = store(tmp_path / "good.ome.zarr")
    viewer = make_napari_viewer()
    viewer.open(str(good), plugin="napari-fbias")
    layer = viewer.layers["good"]
    rec = SessionRecorder.start("robustness", folder=tmp_path / "session")
    name = rec.add_image(read_ome_zarr(good))
    rec.add_approach("a", "Ann")
    rec.record_step("preprocess.gaussian", {"sigma": 1.0}, {"image": name}, "smooth")
    journal_before = rec.journal_path.read_bytes()

    for why, path in broken_stores.items():
        with pytest.raises(FbiasIOError) as info:
            viewer.open(str(path), plugin="napari-fbias")
        assert str(path) in str(info.value), (why, str(info.value))
        assert [lay.name for lay in viewer.layers] == ["good"], why
        assert viewer.layers["good"] is layer
    viewer.screenshot(canvas_only=True, flash=False)  # the canvas still draws
    np.testing.assert_array_equal(np.asarray(layer.data.compute()), DATA)
    assert rec.journal_path.read_bytes() == journal_before  # nothing recorded for failures
    rec.record_step("segment.threshold", {}, {"image": "smooth"}, "mask")  # the session goes on
    rec.close()
    steps = load_session(tmp_path / "session").approach("A").steps
    assert [s.op for s in steps] == ["preprocess.gaussian", "segment.threshold"]


@pytest.mark.qt
def test_open_widget_reports_unreadable_pixels_and_adds_no_layer(
    make_napari_viewer: Any,
    qtbot: Any,
    tmp_path: Path,
    broken_stores: dict[str, Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from napari.utils.notifications import notification_manager

    from napari_fbias._qt.open_widget import OpenWidget

    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))
    viewer = make_napari_viewer()
    viewer.add_image(DATA, name="kept")
    widget = OpenWidget(viewer)
    seen: list[Any] = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        widget.source.value = str(broken_stores["corrupt chunks"])
        widget.open()
        qtbot.waitUntil(lambda: not widget.running, timeout=30000)
        qtbot.waitUntil(lambda: bool(seen), timeout=10000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    messages = [str(n.message) for n in seen]
    assert any("Could not open" in m and "cannot decode chunk" in m for m in messages), messages
    assert [lay.name for lay in viewer.layers] == ["kept"]
    assert widget.status.value.startswith("Could not open")
    assert widget.open_button.enabled
