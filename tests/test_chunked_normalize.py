"""``preprocess.normalize`` chunk-wise: whole-frame percentiles, then block by block.

The percentiles come from reduction passes over the chunks and must be
exactly ``np.percentile``'s, so the chunk-wise result is identical to the
in-memory one, pixel for pixel.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from helpers.cluster import local_client
from napari_fbias.io.image import from_array
from napari_fbias.ops import chunk_stats
from napari_fbias.ops.preprocess import normalize_chunks
from napari_fbias.pipeline import Pipeline, StepError
from napari_fbias.pipeline.runner import run_pipeline


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def normalize(params=None, axes=None, then=None):
    decl = {"kind": "image"} if axes is None else {"kind": "image", "axes": axes}
    steps = [
        {
            "id": "n",
            "op": "preprocess.normalize",
            "inputs": {"image": "image"},
            "params": params or {},
        }
    ]
    if then:
        steps.append({"id": "s", "op": then[0], "inputs": {"image": "n"}, "params": then[1]})
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "n",
            "inputs": {"image": decl},
            "steps": steps,
            "outputs": {"out": {"from": steps[-1]["id"]}},
        }
    )


def sparse(shape, seed, dtype):
    """Values bunched near zero: neighbouring order statistics far apart in ratio."""
    rng = np.random.default_rng(seed)
    arr = rng.random(shape) ** 8 * 1000
    arr[rng.random(shape) < 0.4] = 0
    return arr.astype(dtype)


def compare(pipeline, data, chunks):
    expected = pipeline.run(data)["out"]
    res = run_pipeline(pipeline, data, chunked=True, chunks=chunks, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    got = res["out"]
    assert isinstance(got, da.Array)
    got = got.compute()
    assert got.dtype == expected.dtype == np.float32
    np.testing.assert_array_equal(got, expected)
    return expected


@pytest.mark.parametrize("dtype", ["uint16", "float32", "float64", "int32"])
def test_2d_equals_in_memory(dtype):
    img = sparse((45, 52), 1, dtype)
    out = compare(normalize({"low": 3.3, "high": 97.1}), img, chunks=(7, 11))
    assert 0 < out.mean() < 1 and out.min() == 0 and out.max() == 1


def test_no_clip_and_default_percentiles():
    img = sparse((40, 40), 2, "float32")
    out = compare(normalize({"clip": False}), img, chunks=9)
    assert out.max() > 1  # values above the 99.8th percentile stay above 1
    compare(normalize(), img.astype(np.uint8), chunks=13)


def test_each_time_point_and_channel_has_its_percentiles():
    movie = np.stack(
        [
            np.stack([sparse((30, 33), 10 * t + c, "float32") * (c + 1) for c in range(3)])
            for t in (0, 1)
        ]
    )
    movie[1, 2] = 7.0  # a flat frame: all zeros, as in memory
    out = compare(normalize({"low": 0.5, "high": 99.0}, axes="tcyx"), movie, chunks=8)
    assert not out[1, 2].any() and out[0, 2].any()


def test_3d_with_spacing():
    img = from_array(sparse((6, 20, 22), 4, "uint16"), "zyx", scale=(2.0, 0.5, 0.5))
    compare(normalize({"low": 10, "high": 90}), img, chunks=(2, 7, 7))


def test_then_a_threshold_chunk_wise():
    img = sparse((50, 50), 5, "float32")
    compare_labels = normalize(then=("segment.threshold", {"method": "otsu"}))
    expected = compare_labels.run(img)["out"]
    got = run_pipeline(compare_labels, img, chunked=True, chunks=12, checksum=False)["out"]
    np.testing.assert_array_equal(np.asarray(got), expected)


@pytest.mark.parametrize("dtype", ["float32", "float16", "uint16"])
def test_percentiles_by_reduction_are_numpys(dtype, monkeypatch):
    monkeypatch.setattr(chunk_stats, "COLLECT_LIMIT", 150)  # forces narrowing passes
    q = (1.0, 33.3, 60.3, 70.7, 99.8)
    for seed in range(12):
        arr = sparse((23, 19), seed, dtype)
        got = chunk_stats.frame_percentiles(da.from_array(arr, chunks=6), 0, q)[()]
        assert got == np.percentile(arr, q).tolist()
    # the two values around the 33.45th percentile differ so much in size that numpy's
    # b - a, in the image's dtype, is rounded: the reduction must round it the same way
    arr = np.where(np.arange(400).reshape(20, 20) % 3 == 0, 0.001, 1000.3).astype(dtype)
    a, b = np.sort(arr, axis=None)[[133, 134]]
    assert arr.dtype.kind != "f" or float(b - a) != float(b) - float(a)
    got = chunk_stats.frame_percentiles(da.from_array(arr, chunks=7), 0, [33.45])[()]
    assert got == np.percentile(arr, [33.45]).tolist()


def test_bad_settings_and_nan_are_step_errors():
    img = sparse((20, 20), 3, "float32")
    with pytest.raises(StepError, match="need 0 <= low < high <= 100"):
        run_pipeline(normalize({"low": 50, "high": 40}), img, chunked=True, chunks=8)
    img[4, 5] = np.nan
    with pytest.raises(StepError, match="NaN"):
        run_pipeline(normalize(), img, chunked=True, chunks=8)
    with pytest.raises(ValueError, match="must hold numbers"):
        normalize_chunks(None, da.ones((8, 8), dtype=bool), 0, {"low": 1, "high": 99, "clip": True})


def test_on_a_local_cluster_of_two_workers():
    img = sparse((64, 60), 7, "float32")
    p = normalize({"low": 2, "high": 98})
    expected = p.run(img)["out"]
    with local_client(processes=False):
        res = run_pipeline(p, img, chunked=True, chunks=16, checksum=False)
        got = res["out"].compute()
    assert res.record["steps"][0]["mode"] == "chunked"
    np.testing.assert_array_equal(got, expected)
