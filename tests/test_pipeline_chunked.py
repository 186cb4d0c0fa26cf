"""Chunk-wise (dask) execution gives exactly the in-memory result.

Images are tiny but cut into tiny chunks, so that objects cross many chunk
borders (and corners); the labels must be identical, pixel for pixel, to the
in-memory run (same numbering: raster order of each object's first pixel).
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

import pipeline_testops as testops
from napari_fbias.io.image import from_array
from napari_fbias.pipeline import ChunkingError, Pipeline
from napari_fbias.pipeline.runner import run_pipeline


def chain(*steps, kind="image"):
    """Pipeline of steps (op, params) applied one after the other."""
    prev = "image"
    out = []
    for i, (op, params) in enumerate(steps):
        key = "labels" if op in ("segment.remove_small_objects",) else "image"
        out.append({"id": f"s{i}", "op": op, "inputs": {key: prev}, "params": params})
        prev = f"s{i}"
    return Pipeline(
        name="chain", inputs={"image": {"kind": kind}}, steps=out, outputs={"out": prev}
    )


def compare(pipeline, data, chunks, **kwargs):
    expected = pipeline.run(data)["out"]
    res = run_pipeline(pipeline, data, chunked=True, chunks=chunks, **kwargs)
    got = res["out"]
    assert isinstance(got, da.Array)
    got = got.compute()
    assert got.dtype == expected.dtype
    np.testing.assert_array_equal(got, expected)
    assert res.record["mode"] == "chunked"
    return expected


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_smooth_threshold_min_size_over_time(dtype):
    movie = np.stack([testops.make_blobs((70, 66), n=15, seed=s, dtype=dtype) for s in (1, 2)])
    p = chain(
        ("preprocess.gaussian", {"sigma": 1.0}),
        ("segment.threshold", {"method": "otsu", "min_size": 20}),
    )
    expected = compare(p, (movie, "tyx"), chunks=16)
    assert expected.max() > 5  # objects found, many crossing chunk borders


def test_yen_and_manual_thresholds():
    img = testops.make_blobs((50, 45), seed=5)
    compare(chain(("segment.threshold", {"method": "yen"})), img, chunks=(13, 11))
    compare(chain(("segment.threshold", {"method": "manual", "value": 300})), img, chunks=9)


@pytest.mark.parametrize("diagonal", [False, True])
def test_connected_components_2d_and_3d_with_corners(diagonal):
    rng = np.random.default_rng(7)
    mask2 = (rng.random((40, 37)) > 0.55).astype(np.uint8)
    mask3 = (rng.random((9, 14, 15)) > 0.6).astype(np.uint8)
    p = chain(("segment.connected_components", {"diagonal": diagonal, "min_size": 2}))
    compare(p, mask2, chunks=5)
    compare(p, mask3, chunks=4)


def test_remove_small_objects_counts_sizes_over_the_whole_image():
    img = testops.make_blobs((60, 60), n=20, seed=9)
    p = chain(
        ("segment.threshold", {"method": "otsu"}),
        ("segment.remove_small_objects", {"min_size": 40, "max_size": 400}),
    )
    compare(p, img, chunks=12)


def test_flat_frame_and_multichannel():
    img = np.stack([np.full((30, 30), 5, np.uint16), testops.make_blobs((30, 30), seed=3)])
    p = chain(("segment.threshold", {"method": "otsu"}))
    expected = compare(p, (img, "cyx"), chunks=7)
    assert expected[0].max() == 0 and expected[1].max() > 0


def test_lazy_input_stays_lazy_until_written(tmp_path):
    from napari_fbias.io.ome_zarr_write import write_image
    from napari_fbias.io.open import open_image

    img = testops.make_blobs((64, 64), seed=11)
    store = write_image(tmp_path / "in.ome.zarr", img, "yx", chunks=(16, 16))
    p = chain(("preprocess.gaussian", {"sigma": 2.0}), ("segment.threshold", {}))
    image = open_image(store)
    res = run_pipeline(p, image, memory_limit=1000, chunks=16)  # 8 kB > 1000 B: chunk-wise
    assert res.record["mode"] == "chunked"
    assert res["out"].chunks == ((16,) * 4, (16,) * 4)
    np.testing.assert_array_equal(res["out"].compute(), p.run(img)["out"])


def test_an_input_held_in_memory_leaves_blocks_a_quarter_of_the_budget(monkeypatch):
    """An input that fits the budget is held; its step's blocks are not cut to the minimum."""
    import napari_fbias.pipeline.chunked as chunked
    from napari_fbias.pipeline.memory import MIN_BLOCK_PIXELS

    img = testops.make_blobs((2048, 2048), n=200, seed=2)  # 8 MiB, held in memory
    limit = 8 * 2**20 + 4096  # the input leaves 4 kB of the budget
    seen = []
    real = chunked.block_pixels

    def spy(spec, args, budget):
        seen.append((budget, real(spec, args, budget)))
        return seen[-1][1]

    monkeypatch.setattr(chunked, "block_pixels", spy)
    p = chain(("segment.threshold", {"method": "otsu"}))
    res = run_pipeline(p, img, memory_limit=limit)
    assert res.record["steps"][0]["mode"] == "chunked"
    ((budget, pixels),) = seen
    assert budget == limit // chunked.LEFT_FLOOR
    assert pixels > 4 * MIN_BLOCK_PIXELS
    assert res["out"].npartitions < 256  # before: 1024 blocks of 64 x 64
    np.testing.assert_array_equal(np.asarray(res["out"]), p.run(img)["out"])


def test_small_inputs_run_in_memory_even_in_chunked_mode():
    img = testops.make_blobs((32, 32), seed=1)
    p = chain(("segment.threshold", {"method": "li"}))
    res = run_pipeline(p, img, chunked=True, memory_limit=10**9)
    assert isinstance(res["out"], np.ndarray)


def test_steps_that_cannot_run_chunk_wise_say_so():
    img = testops.make_blobs((32, 32), seed=1)
    with pytest.raises(
        ChunkingError, match=r"step 's0' \(segment.local_threshold\) cannot run chunk-wise"
    ):
        run_pipeline(chain(("segment.local_threshold", {})), img, chunked=True, chunks=8)


def test_nan_in_big_image_is_a_step_error():
    from napari_fbias.pipeline import StepError

    img = testops.make_blobs((20, 20), seed=1, dtype="float32")
    img[3, 4] = np.nan
    with pytest.raises(StepError, match="NaN"):
        run_pipeline(chain(("segment.threshold", {})), img, chunked=True, chunks=8)


def test_map_overlap_with_spacing_context():
    img = from_array(
        testops.make_blobs((6, 30, 30), seed=2, dtype="float32"), "zyx", scale=(3.0, 1.0, 1.0)
    )
    p = chain(("preprocess.gaussian", {"sigma": 1.5}))
    compare(p, img, chunks=8)


def test_chunk_wise_steps_record_what_auto_chose_as_in_memory():
    """A strategy resolves auto settings once; the run record says what, as in memory."""
    from napari_fbias.io.synth import make_nuclei_2d

    img, _ = make_nuclei_2d((256, 256), 40, 3)
    pipe = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "auto",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {
                    "id": "nuclei",
                    "op": "segment.nuclei",
                    "inputs": {"image": "image"},
                    # null: automatic (a setting left out keeps its pre-auto number)
                    "params": {"smoothing_sigma": None, "min_size": None, "min_distance": None},
                }
            ],
            "outputs": {"nuclei": {"from": "nuclei"}},
        }
    )
    chunked = run_pipeline(pipe, img, chunked=True, chunks=64, checksum=False)
    memory = run_pipeline(pipe, img, chunked=False, checksum=False)
    (c_step,) = chunked.record["steps"]
    (m_step,) = memory.record["steps"]
    assert c_step["mode"] == "chunked"
    assert c_step["chosen"] == m_step["chosen"]
    assert "min_size" in c_step["chosen"]
