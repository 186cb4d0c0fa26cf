"""Chunk-wise runs of the object-level recipes, global statistics and merged measurements.

Small images in small chunks, so that seams cut objects everywhere; every
chunk-wise result is compared with the in-memory one.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
from scipy import ndimage as ndi

from helpers.cluster import local_client
from helpers.labels import same_up_to_renumbering
from napari_fbias.io.synth import make_nuclei_2d
from napari_fbias.ops import chunk_stats
from napari_fbias.ops.metrics import average_precision
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def one_step(op, params, key="image"):
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "x",
            "inputs": {"image": {"kind": "labels" if key == "labels" else "image"}},
            "steps": [{"id": "s", "op": op, "inputs": {key: "image"}, "params": params}],
            "outputs": {"out": {"from": "s"}},
        }
    )


@pytest.fixture(scope="module")
def nuclei_image():
    img, _ = make_nuclei_2d((300, 280), 70, 5)
    return img


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
@pytest.mark.parametrize("method", ["otsu", "yen", "li", "triangle"])
def test_thresholds_by_reduction_equal_skimage(nuclei_image, method, dtype):
    from skimage import filters

    arr = nuclei_image
    if dtype == "float32":
        arr = ndi.gaussian_filter(arr, 1.5, output=np.float32)
    ref = float(getattr(filters, f"threshold_{method}")(arr))
    got = float(chunk_stats.frame_thresholds(da.from_array(arr, chunks=37), 0, method))
    if method == "li" and dtype == "float32":  # iterated on the pixels: to a tolerance
        assert abs(got - ref) <= 1e-5 * float(arr.max() - arr.min())
    else:
        assert got == ref
    assert np.array_equal(arr > got, arr > ref)


@pytest.mark.parametrize("method", ["otsu", "yen", "li", "triangle"])
def test_threshold_step_every_method_chunk_wise(nuclei_image, method):
    p = one_step("segment.threshold", {"method": method, "min_size": 5})
    expected = p.run(nuclei_image)["out"]
    got = run_pipeline(p, nuclei_image, chunked=True, chunks=32, checksum=False)["out"]
    np.testing.assert_array_equal(np.asarray(got), expected)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_percentiles_and_median_below_are_exact(nuclei_image, dtype, monkeypatch):
    monkeypatch.setattr(chunk_stats, "COLLECT_LIMIT", 500)  # forces narrowing passes
    arr = nuclei_image.astype(dtype)
    if dtype == "float32":
        arr = ndi.gaussian_filter(arr, 1.0)
    x = da.from_array(arr, chunks=41)
    q = [0.5, 1, 50, 99.8]
    got = chunk_stats.frame_percentiles(x, 0, q)[()]
    np.testing.assert_allclose(got, np.percentile(arr, q), rtol=1e-12)
    t = float(np.mean(arr))
    med = chunk_stats.frame_medians_below(x, 0, np.array(t))
    assert float(med) == float(np.median(arr[arr <= t]))


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"threshold_method": "li"},
        {"threshold_method": "triangle", "refine_edges": False},
        {"smoothing_sigma": 1.5, "min_size": 30, "min_distance": 5},
    ],
)
def test_nuclei_chunk_wise_equals_in_memory(nuclei_image, params):
    p = one_step("segment.nuclei", params)
    expected = p.run(nuclei_image)["out"]
    res = run_pipeline(p, nuclei_image, chunked=True, chunks=80, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    got = np.asarray(res["out"])
    assert average_precision(expected, got)[0.5] >= 0.99
    assert same_up_to_renumbering(expected, got)  # exact on this image


def test_nuclei_ids_do_not_depend_on_the_chunks(nuclei_image):
    p = one_step("segment.nuclei", {})
    a = run_pipeline(p, nuclei_image, chunked=True, chunks=80, checksum=False)["out"]
    b = run_pipeline(p, nuclei_image, chunked=True, chunks=120, checksum=False)["out"]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_nuclei_3d_and_time_loop():
    img, _ = make_nuclei_2d((160, 150), 25, 2)
    movie = np.stack([img, np.roll(img, 20, axis=1)])
    p = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "x",
            "inputs": {"image": {"kind": "image", "axes": "tyx"}},
            "steps": [{"id": "s", "op": "segment.nuclei", "inputs": {"image": "image"}}],
            "outputs": {"out": {"from": "s"}},
        }
    )
    expected = p.run(movie)["out"]
    got = np.asarray(run_pipeline(p, movie, chunked=True, chunks=64, checksum=False)["out"])
    for t in range(2):
        assert same_up_to_renumbering(expected[t], got[t])


def test_watershed_split_chunk_wise_is_exact(nuclei_image):
    from napari_fbias.ops.segment import threshold

    mask = threshold(ndi.gaussian_filter(nuclei_image, 1.5), method="otsu")
    p = one_step("segment.watershed_split", {"min_distance": 4}, key="labels")
    expected = p.run(mask)["out"]
    got = np.asarray(run_pipeline(p, mask, chunked=True, chunks=48, checksum=False)["out"])
    assert same_up_to_renumbering(expected, got)
    auto = one_step("segment.watershed_split", {}, key="labels")  # min_distance resolved once
    expected = auto.run(mask)["out"]
    got = np.asarray(run_pipeline(auto, mask, chunked=True, chunks=48, checksum=False)["out"])
    assert same_up_to_renumbering(expected, got)


def test_watershed_split_with_an_image_chunk_wise(nuclei_image):
    from napari_fbias.ops.segment import threshold

    mask = threshold(ndi.gaussian_filter(nuclei_image, 1.5), method="otsu")
    p = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "x",
            "inputs": {"image": {"kind": "image"}, "mask": {"kind": "labels"}},
            "steps": [
                {
                    "id": "s",
                    "op": "segment.watershed_split",
                    "inputs": {"labels": "mask", "image": "image"},
                    "params": {"min_distance": 4},
                }
            ],
            "outputs": {"out": {"from": "s"}},
        }
    )
    expected = p.run(nuclei_image, mask=mask)["out"]
    res = run_pipeline(p, nuclei_image, mask=mask, chunked=True, chunks=48, checksum=False)
    assert same_up_to_renumbering(expected, np.asarray(res["out"]))


def test_label_stats_merge_exactly(nuclei_image):
    from skimage.measure import regionprops_table

    from napari_fbias.ops.measure_chunks import label_stats
    from napari_fbias.ops.segment import threshold

    labels = threshold(nuclei_image, method="otsu")
    stats = label_stats(
        da.from_array(labels, chunks=33), 0, da.from_array(nuclei_image, chunks=33)
    )[()]
    ref = regionprops_table(
        labels,
        nuclei_image,
        properties=(
            "label",
            "area",
            "bbox",
            "centroid",
            "intensity_mean",
            "intensity_min",
            "intensity_max",
        ),
    )
    np.testing.assert_array_equal(stats["id"], ref["label"])
    np.testing.assert_array_equal(stats["area"], ref["area"])
    for k in range(2):
        np.testing.assert_array_equal(stats[f"lo{k}"], ref[f"bbox-{k}"])
        np.testing.assert_array_equal(stats[f"hi{k}"], ref[f"bbox-{k + 2}"])
        np.testing.assert_allclose(stats[f"centroid{k}"], ref[f"centroid-{k}"], rtol=1e-12)
    np.testing.assert_allclose(stats["intensity_mean"], ref["intensity_mean"], rtol=1e-12)
    np.testing.assert_array_equal(stats["intensity_min"], ref["intensity_min"])
    np.testing.assert_array_equal(stats["intensity_max"], ref["intensity_max"])


def test_nuclei_on_a_local_cluster_of_two_processes(nuclei_image):
    p = one_step("segment.nuclei", {})
    expected = p.run(nuclei_image)["out"]
    with local_client():
        got = run_pipeline(p, nuclei_image, chunked=True, chunks=100, checksum=False)["out"]
        got = np.asarray(got.compute())
    assert same_up_to_renumbering(expected, got)


def test_fold_blocks_holds_one_batch_of_results_not_every_block():
    """Large per-block results (histograms) are folded as they come, not kept for every block."""
    alive = [0]
    most = [0]

    class Result:
        def __init__(self, frame):
            self.frame = frame
            alive[0] += 1

        def __del__(self):
            alive[0] -= 1

    def block_result(block, frame):
        return Result(frame)

    x = da.zeros((2, 64, 64), dtype=np.uint16, chunks=(1, 8, 8))  # 128 blocks
    seen = 0
    for frame, r in chunk_stats.fold_blocks(x, 1, block_result):
        assert r.frame == frame
        seen += 1
        most[0] = max(most[0], alive[0])
        del r
    assert seen == 128
    batch = max(2, chunk_stats.BATCH_PER_TASK * 1)  # the synchronous scheduler: one task
    assert most[0] <= 2 * batch


def test_automatic_settings_of_a_large_frame_come_from_tiles_spread_over_it(monkeypatch):
    # a "slide" whose middle is empty: nuclei only in its four corners
    from napari_fbias.ops import chunk_stitch
    from napari_fbias.ops.auto_scale import resolve_auto

    # nuclei twice the size the recipe's defaults are made for: only measuring finds that
    tile, truth = make_nuclei_2d((360, 360), 40, 4, radius_range=(16.0, 22.0))
    background = int(np.median(tile[truth == 0]))
    slide = np.full((2400, 2400), background, dtype=tile.dtype)
    for y, x in ((120, 120), (120, 1920), (1920, 120), (1920, 1920)):
        slide[y : y + 360, x : x + 360] = tile
    # sampled: 4 x 4 tiles of 240^2, one in the middle of each 600^2 cell
    monkeypatch.setattr(chunk_stitch, "AUTO_FULL_PIXELS", 960 * 960)
    auto = {"smoothing_sigma": None, "min_size": None, "min_distance": None}
    _, alone = resolve_auto("segment.nuclei", tile, auto)
    per_frame = chunk_stitch.resolve_nuclei_auto(da.from_array(slide, chunks=300), 0, auto, None)
    d = per_frame[()]["d"]
    assert abs(d - alone["object_diameter"]) <= 0.15 * alone["object_diameter"], (d, alone)
    view = chunk_stitch.frame_view(da.from_array(slide, chunks=300), (), 0)
    assert view.shape == (960 + 3 * chunk_stitch.AUTO_GAP,) * 2  # 4 x 4 tiles and their gaps
    # the central crop of that size holds no nucleus at all
    assert (slide[720:1680, 720:1680] == background).all()
