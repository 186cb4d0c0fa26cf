"""``segment.nuclei`` chunk-wise on anisotropic volumes: per-axis halo, blocks within the budget.

Crowded synthetic volumes (``make_cells_3d``, z spacing twice y/x) in small
blocks, compared with the in-memory run of the same pipeline.
"""

from __future__ import annotations

import math
from functools import partial

import dask
import dask.array as da
import numpy as np
import pytest

from helpers.labels import same_up_to_renumbering
from napari_fbias.io.image import from_array
from napari_fbias.io.synth import make_cells_3d
from napari_fbias.ops import chunk_stitch
from napari_fbias.ops.chunks import block_pixels_budget
from napari_fbias.ops.metrics import average_precision
from napari_fbias.ops.segment import nuclei_from_threshold
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline

SCALE = (0.5, 0.25, 0.25)
PIPELINE = {
    "fbias_pipeline": 1,
    "name": "nuclei-3d",
    "inputs": {"image": {"kind": "image"}},
    "steps": [{"id": "s", "op": "segment.nuclei", "inputs": {"image": "image"}}],
    "outputs": {"out": {"from": "s"}},
}


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def volume():
    return make_cells_3d((24, 128, 128), n_cells=14, seed=5)[0][0]


def test_halo_per_axis_overlaps_each_axis_by_its_own_depth():
    x = da.zeros((1, 40, 60, 70), chunks=(1, 20, 30, 35))
    cores, ext = chunk_stitch.with_halo([x], 1, (3, 7, 9))
    assert cores[0].chunks == x.chunks
    assert ext[0].chunks[1:] == ((23, 23), (37, 37), (44, 44))
    # an int is every spatial axis (the strategies written before per-axis halos)
    _, ext_int = chunk_stitch.with_halo([x], 1, 5)
    assert ext_int[0].chunks[1:] == ((25, 25), (35, 35), (40, 40))
    sl = chunk_stitch.core_slice(cores[0].chunks, 3, (0, 1, 1, 1), (3, 7, 9))
    assert (sl.start, sl.stop) == (9, 44)
    assert chunk_stitch.axis_depth((3, 7, 9), 0, 4) == 0  # the loop axis gets none


def test_clump_extent_and_halo_follow_the_sampling():
    mask = np.zeros((20, 60, 60), np.float32)
    mask[4:9, 10:22, 30:50] = 1.0  # one clump, bounding box 5 x 12 x 20
    mask[14:16, 40:44, 5:8] = 1.0
    x = da.from_array(mask, chunks=(7, 16, 16))
    extent = chunk_stitch._clump_extent(x, 0, np.array(0.5), 0.0, SCALE)
    np.testing.assert_array_equal(extent, [5, 12, 20])
    grown = chunk_stitch._clump_extent(x, 0, np.array(0.5), 3.0, SCALE)
    # grown by 3 finest-axis pixels (0.75 um): 1 plane along z (0.5 um apart), 3 along y/x
    np.testing.assert_array_equal(grown, [5 + 2 * 1, 12 + 2 * 3, 20 + 2 * 3])
    frames = {(): {"split_touching": True, "min_distance": 4}}
    halo = chunk_stitch.nuclei_halo(grown, frames, SCALE)
    assert halo == (7 + 2 + 1, 18 + 4 + 1, 26 + 4 + 1)  # min_distance 4 px: 2 planes in z


@pytest.mark.parametrize("params", [{}, {"smoothing_sigma": None, "min_distance": None}])
def test_anisotropic_volume_chunk_wise_equals_in_memory(volume, params):
    img = from_array(volume, "zyx", scale=SCALE)
    pipeline = {**PIPELINE, "steps": [{**PIPELINE["steps"][0], "params": params}]}
    p = Pipeline.from_dict(pipeline)
    expected = p.run(img)["out"]
    res = run_pipeline(p, img, chunked=True, chunks=(8, 32, 32), checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    got = np.asarray(res["out"])
    assert average_precision(expected, got)[0.5] == 1.0
    assert same_up_to_renumbering(expected, got)


def test_extended_blocks_respect_the_block_budget(volume):
    budget = 60_000
    seen = []

    def recording(block, *args, **kwargs):
        seen.append(block.shape)
        return nuclei_from_threshold(block, *args, **kwargs)

    data = da.from_array(volume, chunks=(12, 32, 32))
    params = {
        "smoothing_sigma": 1.0,
        "threshold_method": "otsu",
        "threshold_value": 0.0,
        "min_size": 30,
        "fill_holes": True,
        "split_touching": True,
        "min_distance": 4,
        "refine_edges": True,
        "edge_level": 0.4,
        "spacing": SCALE,
    }
    with block_pixels_budget(budget):
        got = chunk_stitch.nuclei_chunks(
            None, data, 0, params, after_threshold=partial(recording)
        ).compute()
    assert len(seen) > 1 and max(math.prod(s) for s in seen) <= budget
    in_memory = {k: v for k, v in params.items() if k != "spacing"}
    expected = Pipeline.from_dict(
        {**PIPELINE, "steps": [{**PIPELINE["steps"][0], "params": in_memory}]}
    ).run(from_array(volume, "zyx", scale=SCALE))["out"]
    assert average_precision(expected, got)[0.5] >= 0.95


def test_a_memory_budget_runs_the_volume_within_it(volume):
    img = from_array(volume, "zyx", scale=SCALE)
    p = Pipeline.from_dict(PIPELINE)
    expected = p.run(img)["out"]
    res = run_pipeline(p, img, memory_limit=8 * 2**20, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    assert average_precision(expected, np.asarray(res["out"]))[0.5] >= 0.95
