"""``cellpose.segment`` chunk-wise: blocks with a halo, stitched, against the in-memory op.

The real cellpose with the small model trained here (``helpers.cellpose_model``);
small images in small chunks, so that block faces cut objects. Cellpose is
not exact near faces: the chunk-wise labels are held to AP@0.5 >= 0.99 against
the in-memory ones on the test image (the measured numbers on larger images
are in ``ops/cellpose_chunks.py``), and to the in-memory labels exactly when
a frame is one chunk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import dask
import dask.array as da
import numpy as np
import pytest

from helpers.cellpose_model import build_test_model, nuclei_image
from helpers.labels import same_up_to_renumbering
from napari_fbias.ops import cellpose_op as cpo
from napari_fbias.ops.auto_scale import image_diameter
from napari_fbias.ops.cellpose_chunks import cellpose_chunks, resolve_cellpose_globals
from napari_fbias.ops.chunks import NotChunkable
from napari_fbias.ops.metrics import average_precision
from napari_fbias.ops.registry import get_op
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline

pytest.importorskip("cellpose.models")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    with dask.config.set(scheduler="synchronous"):
        yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _fresh_flow_cache() -> Iterator[None]:
    cpo.clear_cache()
    yield
    cpo.clear_cache()


@pytest.fixture(scope="session")
def model_path() -> Path:
    cache = os.environ.get("FBIAS_TEST_CACHE") or Path.home() / ".cache/napari-fbias/test-models"
    return build_test_model(cache)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return nuclei_image((128, 128), 12, seed=11)[0]


def one_step(params: dict, axes: str = "yx") -> Pipeline:
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "cp",
            "inputs": {"image": {"kind": "image", "axes": axes}},
            "steps": [
                {
                    "id": "s",
                    "op": "cellpose.segment",
                    "inputs": {"image": "image"},
                    "params": params,
                }
            ],
            "outputs": {"out": {"from": "s"}},
        }
    )


def in_memory(p: Pipeline, img: np.ndarray) -> np.ndarray:
    return np.asarray(run_pipeline(p, img, chunked=False, checksum=False)["out"])


def chunk_wise(p: Pipeline, img: np.ndarray, chunks: int) -> tuple[np.ndarray, dict]:
    cpo.clear_cache()
    res = run_pipeline(p, img, chunked=True, chunks=chunks, checksum=False)
    return np.asarray(res["out"]), res.record


def test_registered_with_its_strategy() -> None:
    assert get_op("cellpose.segment").chunked is cellpose_chunks


def test_chunk_wise_matches_in_memory_across_seams(model_path: Path, image: np.ndarray) -> None:
    p = one_step({"model": str(model_path)})
    ref = in_memory(p, image)
    assert ref.max() >= 8
    got, record = chunk_wise(p, image, 64)
    assert record["steps"][0]["mode"] == "chunked"
    assert got.dtype == np.int32 and got.shape == ref.shape
    # seams at 64 cut objects: at least one in-memory object lies across a face
    cut = {int(i) for i in np.unique(ref[63:65, :])} | {int(i) for i in np.unique(ref[:, 63:65])}
    assert len(cut - {0}) >= 2
    assert average_precision(ref, got)[0.5] >= 0.99
    # the objects are numbered 1..N (unique ids, none skipped)
    assert np.array_equal(np.unique(got[got > 0]), np.arange(1, got.max() + 1))


def test_the_network_runs_once_per_block(
    model_path: Path, image: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cores' keys are kept on scratch disk for the labels, not computed again."""
    import napari_fbias.pipeline.chunked as chunked_mod

    calls = []
    real = chunked_mod.call_op

    def counting(spec, step, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(step.op)
        return real(spec, step, *args, **kwargs)

    monkeypatch.setattr(chunked_mod, "call_op", counting)
    p = one_step({"model": str(model_path)})
    got, _ = chunk_wise(p, image, 64)
    blocks = (-(-image.shape[0] // 64)) * (-(-image.shape[1] // 64))
    assert calls == ["cellpose.segment"] * blocks
    assert average_precision(in_memory(p, image), got)[0.5] >= 0.99


def test_one_chunk_is_the_in_memory_result(model_path: Path, image: np.ndarray) -> None:
    """The global normalisation and settings give the in-memory network input exactly."""
    p = one_step({"model": str(model_path)})
    got, _ = chunk_wise(p, image, 128)
    assert same_up_to_renumbering(got, in_memory(p, image))


def test_ids_are_deterministic(model_path: Path, image: np.ndarray) -> None:
    p = one_step({"model": str(model_path)})
    a, _ = chunk_wise(p, image, 48)
    b, _ = chunk_wise(p, image, 48)
    assert a.max() > 0 and np.array_equal(a, b)


def test_auto_diameter_once_per_frame_and_time_loop(model_path: Path) -> None:
    """A movie of two frames, diameter automatic: resolved per frame on the whole frame.

    The automatic diameters (11.2 and 20.0 px) are not the model's own (13.2):
    there the test model is less stable, and one object per frame is
    segmented differently near a face (measured AP@0.5 0.909 and 0.875; the
    in-memory op against itself on the image shifted by one pixel is at the
    same level, see ``ops/cellpose_chunks.py``). The bound below is that
    measurement, not the >= 0.99 of the model's own diameter.
    """
    frames = [nuclei_image((128, 128), 12, seed=s)[0] for s in (11, 12)]
    movie = np.stack(frames)
    p = one_step({"model": str(model_path), "diameter": None}, axes="tyx")
    got, record = chunk_wise(p, movie, 64)
    assert record["steps"][0]["mode"] == "chunked"
    ref_movie = in_memory(p, movie)
    for t in range(len(frames)):
        ref = ref_movie[t]
        assert average_precision(ref, got[t])[0.5] >= 0.85
        assert got[t].max() == len(np.unique(got[t])) - 1  # ids restart at 1 per frame
    x = da.from_array(movie.astype(np.float32), chunks=(1, 64, 64))
    params = {**get_op("cellpose.segment").defaults(), "diameter": None, "axes": "yx"}
    per_frame = resolve_cellpose_globals(x, 1, params, "2d")
    for t, frame in enumerate(frames):
        d = round(image_diameter(frame.astype(np.float32)), 1)
        assert per_frame[(t,)]["diameter"] == d  # the in-memory rule, on the whole frame
        lo, hi = np.percentile(frame.astype(np.float32), [1, 99])
        np.testing.assert_allclose(per_frame[(t,)]["bounds"], [lo, hi], rtol=1e-6)


def test_z_stack_plane_by_plane(model_path: Path, image: np.ndarray) -> None:
    """Planes mode: z stays whole in a block, each plane normalised on its own as in memory."""
    stack = np.stack([image, np.roll(image, 17, axis=1) // 2])
    p = one_step({"model": str(model_path)}, axes="zyx")
    ref = in_memory(p, stack)
    got, _ = chunk_wise(p, stack, 64)
    assert ref.max() >= 16
    assert average_precision(ref, got)[0.5] >= 0.99
    planes = [set(np.unique(got[z])) - {0} for z in range(2)]
    assert not planes[0] & planes[1]  # ids unique across the stack, as in memory


def test_two_channels_are_not_chunkable() -> None:
    params = {**get_op("cellpose.segment").defaults(), "nuclear_channel": 1, "axes": "yx"}
    x = da.zeros((2, 64, 64), chunks=(1, 32, 32), dtype=np.uint16)
    with pytest.raises(NotChunkable, match="channel"):
        cellpose_chunks(lambda *a, **k: None, x, 1, params)


def test_bench_quick_runs_and_prints_rows(model_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "bench_cellpose_tiles.py"), "--quick"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
        env={**os.environ, "FBIAS_TEST_CACHE": str(model_path.parent)},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "| bench | case | ours | reference | ours / reference | goal | met |" in out
    rows = [line for line in out.splitlines() if line.startswith("| cellpose_tiles |")]
    assert len(rows) == 3
    ap = float(next(r for r in rows if "AP@0.5" in r).split("|")[3])
    assert 0.5 <= ap <= 1.0  # a smoke run on another image: the accuracy is measured above
