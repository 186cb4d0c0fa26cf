"""``measure.regionprops`` chunk-wise gives the in-memory table.

Small images cut into small chunks, so that seams cross objects everywhere
(many objects span several blocks). Integer columns must be identical;
float columns are identical too except intensity sums/means of float
images (the same numbers added in another order: within 1e-12 relative),
as ``ops/measure_chunks.py`` documents.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest

from helpers.cluster import local_client
from napari_fbias.io.image import from_array
from napari_fbias.io.synth import make_cells_3d, make_nuclei_2d
from napari_fbias.ops import measure_chunks
from napari_fbias.ops.measure import PROPERTIES, regionprops
from napari_fbias.ops.measure_chunks import regionprops_chunks
from napari_fbias.pipeline import Pipeline, StepError
from napari_fbias.pipeline.runner import run_pipeline

ALL = list(PROPERTIES)


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


@pytest.fixture(scope="module")
def nuclei():
    img, lab = make_nuclei_2d((150, 140), 15, 5)
    return img, lab


def measure(properties=None, image=True, axes=None):
    decl = {"kind": "labels"} if axes is None else {"kind": "labels", "axes": axes[0]}
    inputs = {"labels": decl}
    step_in = {"labels": "labels"}
    if image:
        inputs["image"] = {"kind": "image"} if axes is None else {"kind": "image", "axes": axes[1]}
        step_in["image"] = "image"
    params = {} if properties is None else {"properties": properties}
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "m",
            "inputs": inputs,
            "steps": [
                {"id": "m", "op": "measure.regionprops", "inputs": step_in, "params": params}
            ],
            "outputs": {"table": {"from": "m"}},
        }
    )


def same_table(got: pd.DataFrame, expected: pd.DataFrame, exact: bool = True) -> None:
    assert isinstance(got, pd.DataFrame)
    assert list(got.columns) == list(expected.columns)
    assert list(got.dtypes) == list(expected.dtypes)
    assert got.attrs == expected.attrs
    assert len(got) == len(expected)
    for c in expected.columns:
        a, b = expected[c].to_numpy(), got[c].to_numpy()
        if exact or a.dtype.kind in "iu" or "intensity" not in c:
            np.testing.assert_array_equal(b, a, err_msg=c)
        else:
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=0, err_msg=c)


def run_both(pipeline, labels, image=None, chunks=16, **kwargs):
    inputs = {"labels": labels} if image is None else {"labels": labels, "image": image}
    expected = pipeline.run(**inputs)["table"]
    res = run_pipeline(pipeline, chunked=True, chunks=chunks, checksum=False, **inputs, **kwargs)
    assert res.record["steps"][0]["mode"] == "chunked"
    assert res.record["mode"] == "chunked"
    return res["table"], expected


def blocks_spanned(df: pd.DataFrame, chunk: int, axes: str = "yx") -> np.ndarray:
    n = np.ones(len(df), dtype=int)
    for a in axes:
        n *= (df[f"bbox_max_{a}"].to_numpy() - 1) // chunk - df[f"bbox_min_{a}"] // chunk + 1
    return n


def test_2d_all_properties_with_spacing_equal_in_memory(nuclei, monkeypatch):
    img, lab = nuclei
    crops = []
    real = measure_chunks._crop_shapes
    monkeypatch.setattr(measure_chunks, "_crop_shapes", lambda *a: crops.append(a[1]) or real(*a))
    monkeypatch.setattr(measure_chunks, "CROP_BATCH", 3)  # several batches of cut objects
    labels = from_array(lab, "yx", scale=(0.5, 0.25))
    image = from_array(img, "yx", scale=(0.5, 0.25))
    got, expected = run_both(measure(ALL), labels, image, chunks=16)
    same_table(got, expected)  # a uint16 image: every column identical
    assert "area_physical" in got and got.attrs["spacing"] == [0.5, 0.25]
    assert len(expected) == lab.max() and blocks_spanned(expected, 16).max() >= 4
    # cut objects measured on their bounding boxes, whole ones inside their block
    crops.clear()
    got, expected = run_both(measure(ALL), labels, image, chunks=48)
    same_table(got, expected)
    spans = blocks_spanned(expected, 48)
    assert set(expected["label"][spans > 1]) <= set(crops)
    assert 0 < len(crops) < len(expected) and len(set(crops)) == len(crops)


def test_direct_call_odd_ids_split_objects_and_float_image():
    rng = np.random.default_rng(3)
    lab = np.zeros((61, 57), np.uint32)
    lab[2:20, 12:29] = 70_000  # a large id
    lab[22:27, 2:9] = 5
    lab[40:50, 40:50] = 5  # the same id in two far apart pieces (one object for skimage)
    lab[33:39, 10:25] = 12
    lab[45, 20] = 3  # a single pixel
    lab[0:61, 55] = 9  # a thin line across every block row
    img = rng.gamma(2.0, 50.0, lab.shape).astype(np.float32)
    params = {"properties": tuple(ALL), "axes": "yx", "spacing": (2.0, 3.0)}
    expected = regionprops(lab, img, **params)
    for chunks in (7, 30, (13, 60), 61):  # 30: each piece of 5 lies inside a block
        got = regionprops_chunks(
            None, (da.from_array(lab, chunks=chunks), da.from_array(img, chunks=chunks)), 0, params
        )
        same_table(got, expected, exact=False)
    assert expected["label"].tolist() == [3, 5, 9, 12, 70_000]  # ids kept, not renumbered


def test_partials_folded_as_they_come_give_the_same_table(nuclei, monkeypatch):
    # the blocks' partial statistics are combined every few rows (not all kept, then
    # merged once): same table, every column, and the partials held stay few
    img, lab = nuclei
    held = []
    real = measure_chunks._combine

    def combine(parts, nd):
        held.append(sum(p["id"].size for p in parts))
        return real(parts, nd)

    monkeypatch.setattr(measure_chunks, "_combine", combine)
    monkeypatch.setattr(measure_chunks, "FOLD_ROWS", 4)
    labels, image = from_array(lab, "yx"), from_array(img, "yx")
    got, expected = run_both(measure(ALL), labels, image, chunks=16)
    same_table(got, expected)
    n = len(expected)
    assert len(held) > 5 and max(held) <= 2 * n + 8, (held, n)
    params = {"properties": tuple(ALL), "axes": "yx"}
    f = img.astype(np.float32) / 7  # float sums added in another order: within 1e-12
    got = regionprops_chunks(
        None, (da.from_array(lab, chunks=9), da.from_array(f, chunks=9)), 0, params
    )
    same_table(got, regionprops(lab, f, **params), exact=False)


def test_time_axis_and_image_with_channels(nuclei):
    img, lab = nuclei
    movie = np.stack([lab, np.roll(lab, 23, axis=1)])
    movie[1][movie[1] == 4] = 0  # an object gone at t = 1
    two = np.stack([img, img[:, ::-1] // 2]).astype(np.float32) / 7  # c, y, x
    image = np.stack([two, np.roll(two, 23, axis=2)])  # t, c, y, x
    got, expected = run_both(
        measure(("area", "centroid", "bbox", "solidity"), axes=("tyx", "tcyx")),
        movie,
        image,
        chunks=(20, 17),
    )
    same_table(got, expected, exact=False)
    assert expected["t"].tolist() == sorted(expected["t"]) and set(expected["t"]) == {0, 1}
    assert "max_intensity_1" in got


def test_channels_without_time(nuclei):
    img, lab = nuclei
    image = np.stack([img, img // 3 + 1])
    got, expected = run_both(measure(axes=("yx", "cyx")), lab, image, chunks=24)
    same_table(got, expected)
    assert "sum_intensity_1" in got


def test_3d_cells_with_two_channels():
    image, lab = make_cells_3d((14, 64, 64), 6, seed=2)
    assert image.ndim == 4 and lab.ndim == 3
    got, expected = run_both(measure(ALL, axes=("zyx", "czyx")), lab, image, chunks=(5, 20, 20))
    same_table(got, expected, exact=False)
    assert "centroid_z" in got and "eccentricity" not in got  # 2D-only left out, as in memory
    assert blocks_spanned(expected, 20, "yx").max() >= 4


def test_labels_only_with_default_properties(nuclei):
    _, lab = nuclei
    got, expected = run_both(measure(image=False), lab, chunks=(9, 31))
    same_table(got, expected)


def test_empty_labels_give_the_empty_table():
    lab = np.zeros((40, 30), np.int32)
    img = np.ones((2, 40, 30), np.uint8)
    got, expected = run_both(measure(axes=("yx", "cyx")), lab, img, chunks=8)
    assert len(expected) == 0
    same_table(got, expected)
    movie = np.zeros((3, 20, 20), np.uint16)
    movie[1, 3:9, 12:19] = 2  # only the middle frame holds an object
    got, expected = run_both(measure(image=False, axes=("tyx", "")), movie, chunks=7)
    same_table(got, expected)
    assert got["t"].tolist() == [1]


def test_bad_labels_are_step_errors():
    p = measure(image=False)
    with pytest.raises(StepError, match="negative object ids"):
        labels = np.full((20, 20), -1, np.int16)
        run_pipeline(p, labels=labels, chunked=True, chunks=8, checksum=False)
    floats = da.from_array(np.ones((20, 20), np.float32), chunks=8)
    with pytest.raises(ValueError, match="integer object ids"):
        regionprops_chunks(None, floats, 0, {"properties": ("area",), "axes": "yx"})
    with pytest.raises(ValueError, match="labels have a channel axis"):
        labels = da.zeros((2, 20, 20), np.int32, chunks=(1, 8, 8))
        regionprops_chunks(None, labels, 1, {"properties": ("area",), "axes": "cyx"})


def test_on_a_local_cluster_of_two_processes(nuclei):
    img, lab = nuclei
    p = measure(ALL)
    expected = p.run(labels=lab, image=img)["table"]
    with local_client():
        res = run_pipeline(p, labels=lab, image=img, chunked=True, chunks=32, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    same_table(res["table"], expected)


def test_flat_objects_have_nan_solidity_and_one_short_warning(capfd):
    lab = np.zeros((6, 40, 40), np.int32)
    lab[2, 3:12, 3:30] = 1  # one plane, across a block border
    lab[4, 20, 5:35] = 2  # a line
    lab[1:5, 22:30, 22:34] = 3  # a solid box, across borders
    lab[0:3, 34:38, 2:6] = 4  # a small solid box inside one block
    with pytest.warns(RuntimeWarning, match="solidity is undefined for flat objects") as seen:
        got, expected = run_both(
            measure(["area", "solidity"], image=False), lab, chunks=(3, 16, 16)
        )
    same_table(got, expected)
    solidity = expected.set_index("label")["solidity"]
    assert np.isnan(solidity[1]) and np.isnan(solidity[2])
    assert solidity[3] == 1.0 and solidity[4] == 1.0
    texts = [str(w.message) for w in seen]
    assert not any("convex hull" in t or "QH6" in t for t in texts)
    assert "QH6" not in capfd.readouterr().err
