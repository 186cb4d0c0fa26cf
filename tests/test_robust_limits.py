"""Metadata that claim absurd sizes are refused at open; one such input fails alone.

A 20 KB OME-Zarr (or TIFF) may claim 10^12 x 10^12 pixels. The readers check
what the metadata claim against the limits of :mod:`napari_fbias.io.limits`
before making any dask array, so opening takes no memory to speak of, and
``fbias run`` reports such an input as failed while the others run. Every
child process here has its address space capped (``helpers.capped``): when a
bound is broken it dies with a MemoryError instead of exhausting the machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

import pipeline_testops as testops
from helpers.capped import fbias_capped, run_capped, traced_peak
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.ome_zarr_write import write_image
from napari_fbias.pipeline import Pipeline

PIPELINE = {
    "fbias_pipeline": 1,
    "name": "threshold",
    "inputs": {"image": {"kind": "image"}},
    "steps": [{"id": "nuclei", "op": "segment.threshold", "inputs": {"image": "image"}}],
    "outputs": {"nuclei": {"from": "nuclei"}},
}


def claimed_store(
    path: Path,
    shape: tuple[int, ...],
    chunks: tuple[int, ...],
    version: str = "0.4",
    *,
    n_levels: int = 1,
) -> Path:
    """Write only the metadata of a uint8 ``yx`` OME-Zarr: it claims ``shape``, holds no chunk."""
    axes = [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}]
    datasets = [
        {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0]}]}
    ] * n_levels
    ms = {"axes": axes, "datasets": datasets, "name": path.name}
    (path / "0").mkdir(parents=True)
    if version == "0.4":
        ms["version"] = "0.4"
        (path / ".zgroup").write_text(json.dumps({"zarr_format": 2}))
        (path / ".zattrs").write_text(json.dumps({"multiscales": [ms]}))
        array = {
            "zarr_format": 2,
            "shape": list(shape),
            "chunks": list(chunks),
            "dtype": "|u1",
            "compressor": None,
            "fill_value": 0,
            "order": "C",
            "filters": None,
            "dimension_separator": "/",
        }
        (path / "0" / ".zarray").write_text(json.dumps(array))
    else:
        group = {"zarr_format": 3, "node_type": "group", "attributes": {"ome": {"version": "0.5"}}}
        group["attributes"]["ome"]["multiscales"] = [ms]
        (path / "zarr.json").write_text(json.dumps(group))
        array = {
            "zarr_format": 3,
            "node_type": "array",
            "shape": list(shape),
            "data_type": "uint8",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
            "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
            "fill_value": 0,
            "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
            "attributes": {},
            "dimension_names": ["y", "x"],
        }
        (path / "0" / "zarr.json").write_text(json.dumps(array))
    return path


def size_of(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


OPEN = """\
import json
from napari_fbias.io.ome_zarr_read import read_ome_zarr
try:
    img = read_ome_zarr(sys.argv[1])
    print("BLOCKS", json.dumps(list(img.data.numblocks)))
    print("CORNER", int(img.data[:8, :8].compute().sum()))
except Exception as exc:
    print("ERROR", type(exc).__name__, exc)
"""


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("side", [10**12, 10**10])
def test_absurd_claimed_size_is_refused_at_open(tmp_path: Path, version: str, side: int) -> None:
    path = claimed_store(tmp_path / "huge.ome.zarr", (side, side), (256, 256), version)
    assert size_of(path) < 20_000
    proc = run_capped(OPEN, str(path), trace=True, timeout=120)
    assert "ERROR TooLargeError" in proc.stdout, proc.stdout + proc.stderr
    assert f"{path / '0'} claims {side} x {side} pixels of uint8" in proc.stdout
    assert "MAX_LEVEL_BYTES" in proc.stdout
    assert traced_peak(proc) < 50e6


def test_large_claim_within_the_limits_opens_lazily(tmp_path: Path) -> None:
    """10^7 x 10^7 pixels (91 TiB): opening and reading a corner stay small and bounded."""
    from napari_fbias.io.limits import MAX_DASK_BLOCKS

    path = claimed_store(tmp_path / "big.ome.zarr", (10**7, 10**7), (256, 256))
    proc = run_capped(OPEN, str(path), trace=True, timeout=120)
    assert "CORNER 0" in proc.stdout, proc.stdout + proc.stderr
    blocks = json.loads(proc.stdout.split("BLOCKS", 1)[1].splitlines()[0].strip())
    assert blocks[0] * blocks[1] <= MAX_DASK_BLOCKS
    assert traced_peak(proc) < 300e6


def test_absurd_chunk_claim_is_refused(tmp_path: Path) -> None:
    from napari_fbias.io.errors import TooLargeError

    path = claimed_store(tmp_path / "c.ome.zarr", (100, 100), (10**6, 10**6))
    with pytest.raises(TooLargeError, match=r"stores chunks of 1000000 x 1000000 pixels.*decoded"):
        read_ome_zarr(path)


def test_too_many_levels_or_label_images_are_refused(tmp_path: Path) -> None:
    from napari_fbias.io.errors import TooLargeError
    from napari_fbias.io.limits import MAX_LABEL_IMAGES, MAX_LEVELS

    path = claimed_store(tmp_path / "l.ome.zarr", (64, 64), (32, 32), n_levels=MAX_LEVELS + 1)
    with pytest.raises(TooLargeError, match=rf"lists {MAX_LEVELS + 1} resolution levels"):
        read_ome_zarr(path)
    img = write_image(tmp_path / "img.ome.zarr", np.zeros((8, 8), np.uint8), "yx")
    labels = Path(img) / "labels"
    labels.mkdir()
    names = [f"l{i}" for i in range(MAX_LABEL_IMAGES + 1)]
    (labels / ".zattrs").write_text(json.dumps({"labels": names}))
    with pytest.raises(TooLargeError, match=rf"lists {MAX_LABEL_IMAGES + 1} label images"):
        read_ome_zarr(img)


def test_tiff_claiming_absurd_size_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "huge.tif"
    tifffile.imwrite(path, np.zeros((64, 64), np.uint8), rowsperstrip=64)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        for tag in ("ImageWidth", "ImageLength", "RowsPerStrip"):
            tif.pages[0].tags[tag].overwrite(3_000_000_000)
    code = OPEN.replace("read_ome_zarr", "read_tiff").replace(".ome_zarr_read", ".tiff")
    proc = run_capped(code, str(path), timeout=120)
    assert "ERROR TooLargeError" in proc.stdout, proc.stdout + proc.stderr
    assert "claims 3000000000 x 3000000000 pixels" in proc.stdout


def test_absurd_inputs_fail_alone_in_fbias_run(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    claimed_store(data / "a.ome.zarr", (10**12, 10**12), (256, 256))
    claimed_store(data / "b.ome.zarr", (10**10, 10**10), (1, 1), "0.5")
    write_image(data / "c.ome.zarr", testops.make_blobs((64, 64), seed=1), "yx")
    pipeline = tmp_path / "t.fbias.yaml"
    pipeline.write_text(yaml.safe_dump(PIPELINE))
    out = tmp_path / "out"
    proc = fbias_capped("run", str(pipeline), str(data), "-o", str(out), timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 done, 0 skipped (already finished), 2 failed" in proc.stdout
    for stem in ("a", "b"):
        line = next(ln for ln in proc.stderr.splitlines() if ln.startswith(f"fbias: {stem}:"))
        assert "claims" in line and "MAX_LEVEL_BYTES" in line, line
        assert not (out / stem).exists()
    assert json.loads((out / "c" / "run.json").read_text())["batch"]["stem"] == "c"


def test_running_out_of_memory_fails_the_input_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever exhausts memory (here: opening ``a``), the other inputs still run."""
    from napari_fbias.pipeline import values
    from napari_fbias.pipeline.batch import run_batch

    for name in ("a", "b"):
        tifffile.imwrite(tmp_path / f"{name}.tif", testops.make_blobs((48, 48), seed=2))
    real_open = values.open_source

    def open_source(source: str, *args: object, **kwargs: object) -> object:
        if source.endswith("a.tif"):
            raise MemoryError
        return real_open(source, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(values, "open_source", open_source)
    inputs = [str(tmp_path / "a.tif"), str(tmp_path / "b.tif")]
    report = run_batch(Pipeline.from_dict(PIPELINE), inputs, tmp_path / "out")
    assert [i.status for i in report.items] == ["failed", "done"]
    assert report.items[0].message.startswith(f"ran out of memory with {tmp_path / 'a.tif'}")
    assert "--memory" in report.items[0].message
