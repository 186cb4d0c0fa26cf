"""Inputs that used to slip through: partial copies, token URLs, bad pixel sizes; shared results.

* ``fbias run --strict`` fails an OME-Zarr that lacks a chunk (a partial
  copy), naming the chunk; without it the chunk reads as zeros (Zarr spec).
* A pre-signed / token URL keeps its query string at the end of every request
  (``.../image.ome.zarr/zarr.json?token=...``).
* NaN, negative, zero or infinite TIFF pixel sizes are ignored at read time,
  with a warning, instead of failing the run later.
* Result folders get the permissions of any new folder (umask), not ``0700``.
"""

from __future__ import annotations

import logging
import math
import os
import stat
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import pipeline_testops as testops
from helpers.capped import fbias_capped
from helpers.http_server import FolderServer
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.io.tiff import read_tiff
from napari_fbias.pipeline.batch import run_batch

PIPELINE = {
    "fbias_pipeline": 1,
    "name": "threshold",
    "inputs": {"image": {"kind": "image"}},
    "steps": [{"id": "nuclei", "op": "segment.threshold", "inputs": {"image": "image"}}],
    "outputs": {"nuclei": {"from": "nuclei"}},
}
DATA = testops.make_blobs((64, 64), seed=4)


@pytest.fixture
def pipeline_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.fbias.yaml"
    path.write_text(yaml.safe_dump(PIPELINE))
    return path


# --- partial copies ------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.4", "0.5"])
def test_fbias_run_strict_fails_a_partial_copy_naming_the_chunk(
    tmp_path: Path, pipeline_file: Path, version: str
) -> None:
    store = Path(
        write_image(tmp_path / "img.ome.zarr", DATA, "yx", chunks=(32, 32), ngff_version=version)
    )
    chunk = store / "0" / ("c/1/1" if version == "0.5" else "1/1")
    chunk.unlink()
    args = ("run", str(pipeline_file), str(store))
    proc = fbias_capped(*args, "-o", str(tmp_path / "strict"), "--strict")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    chunk_key = "0/c/1/1" if version == "0.5" else "0/1/1"
    assert f"fbias: img: failed: chunk '{chunk_key}' of {store} is missing" in proc.stderr
    assert "0 done, 0 skipped (already finished), 1 failed" in proc.stdout
    assert not (tmp_path / "strict" / "img").exists()
    proc = fbias_capped(*args, "-o", str(tmp_path / "lenient"))  # the Zarr spec: zeros
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "lenient" / "img" / "run.json").is_file()


# --- token URLs ----------------------------------------------------------------------------

QUERY = "X-Amz-Signature=ab%2Bcd%2F%3D&token=s3cr3t&v=1"


def test_token_url_keeps_its_query_after_every_key(tmp_path: Path, pipeline_file: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    write_image(served / "a.ome.zarr", DATA, "yx", chunks=(32, 32), ngff_version="0.5")
    with FolderServer(served, require_query=QUERY) as server:
        url = server.url_for("a.ome.zarr") + "?" + QUERY
        img = read_ome_zarr(url)
        np.testing.assert_array_equal(img.data.compute(), DATA)
        asked = [r.partition("?") for r in server.requests]  # path, "?", query
        assert asked and all(p.startswith("/a.ome.zarr/") and q == QUERY for p, _, q in asked)
        assert "s3cr3t" not in img.source and "ab%2Bcd" not in img.source
        report = run_batch(pipeline_file, url, tmp_path / "out")
    assert report.ok, [i.message for i in report.items]
    assert report.items[0].stem == "a"
    assert "s3cr3t" not in (tmp_path / "out" / "a" / "run.json").read_text()


# --- TIFF pixel sizes ----------------------------------------------------------------------

BAD = [math.nan, -1.0, 0.0, math.inf]


@pytest.mark.parametrize("bad", BAD, ids=["nan", "negative", "zero", "inf"])
def test_bad_ome_tiff_pixel_size_is_ignored_clearly(
    tmp_path: Path, pipeline_file: Path, bad: float, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "img.ome.tif"
    meta = {"axes": "YX", "PhysicalSizeX": bad, "PhysicalSizeY": 0.5}
    tifffile.imwrite(path, DATA, ome=True, metadata=meta)
    with caplog.at_level(logging.WARNING, logger="napari_fbias.io.tiff"):
        img = read_tiff(path)
    assert img.scale == (0.5, 1.0)
    assert img.units == ("micrometer", None)
    assert img.metadata["ignored_pixel_sizes"] == {"x": str(bad)}
    assert f"{path}: ignoring pixel size(s) x={bad}" in caplog.text
    report = run_batch(pipeline_file, path, tmp_path / "out")
    assert report.ok, [i.message for i in report.items]
    result = read_ome_zarr(tmp_path / "out" / "img" / "result.ome.zarr")
    assert result.scale == (0.5, 1.0)


@pytest.mark.parametrize("bad", BAD, ids=["nan", "negative", "zero", "inf"])
def test_bad_imagej_spacing_is_ignored(tmp_path: Path, pipeline_file: Path, bad: float) -> None:
    path = tmp_path / "stack.tif"
    stack = np.stack([DATA, DATA])
    meta = {"axes": "ZYX", "spacing": bad, "unit": "um"}
    tifffile.imwrite(path, stack, imagej=True, resolution=(2.0, 2.0), metadata=meta)
    img = read_tiff(path)
    assert img.axes == ("z", "y", "x")
    assert img.scale == (1.0, 0.5, 0.5)
    assert img.metadata["ignored_pixel_sizes"] == {"z": str(bad)}
    report = run_batch(pipeline_file, path, tmp_path / "out")
    assert report.ok, [i.message for i in report.items]


# --- shared result folders -----------------------------------------------------------------


@pytest.mark.parametrize("umask", [0o022, 0o027], ids=["umask022", "umask027"])
def test_result_folders_follow_the_umask(tmp_path: Path, pipeline_file: Path, umask: int) -> None:
    tifffile.imwrite(tmp_path / "img.tif", DATA)
    out = tmp_path / "out"
    proc = fbias_capped(
        "run", str(pipeline_file), str(tmp_path / "img.tif"), "-o", str(out), umask=umask
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    folders = [out / "img", out / "img" / "result.ome.zarr"]
    folders += [p for p in (out / "img").rglob("*") if p.is_dir()]
    modes = {str(p.relative_to(out)): oct(stat.S_IMODE(os.stat(p).st_mode)) for p in folders}
    assert set(modes.values()) == {oct(0o777 & ~umask)}, modes
    assert stat.S_IMODE(os.stat(out / "img" / "run.json").st_mode) == 0o666 & ~umask
