"""Running pipelines in this process: results, axes handling, records, bad input."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

import pipeline_testops as testops
from napari_fbias.io.image import from_array
from napari_fbias.pipeline import InputError, Pipeline, StepError, Value
from napari_fbias.pipeline.runner import run_pipeline

CLASSICAL = testops.classical_pipeline_yaml(sigma=1.5)


def one_step(op, params=None, inputs=None, **input_decl):
    return Pipeline(
        name="one",
        inputs={"image": {"kind": "image", **input_decl}},
        steps=[
            {"id": "s", "op": op, "inputs": inputs or {"image": "image"}, "params": params or {}}
        ],
        outputs={"out": "s"},
    )


def direct_classical(img):
    smooth = ndi.gaussian_filter(img, 1.5, output=np.float32, mode="nearest")
    labels, _ = ndi.label(smooth > threshold_otsu(smooth))
    return labels


def test_classical_pipeline_equals_direct_scikit_image_calls():
    img = testops.make_blobs((96, 80), seed=1)
    results = Pipeline.loads(CLASSICAL).run(img)
    expected = direct_classical(img)
    assert results["nuclei"].dtype == np.int32
    np.testing.assert_array_equal(results["nuclei"], expected)
    props = results["props"]
    assert isinstance(props, pd.DataFrame)
    assert list(props["label"]) == list(range(1, expected.max() + 1))
    assert list(props["area"]) == list(np.bincount(expected.ravel())[1:])
    assert set(results) == {"nuclei", "props"}
    assert results.value("nuclei").axes == "yx"


def test_spatial_ops_loop_over_time_and_tables_get_a_t_column():
    movie = np.stack([testops.make_blobs((64, 64), seed=s) for s in range(3)])
    results = Pipeline.loads(CLASSICAL).run((movie, "tyx"))
    labels = results["nuclei"]
    assert labels.shape == movie.shape
    for t in range(3):
        np.testing.assert_array_equal(labels[t], direct_classical(movie[t]))
    assert results.value("nuclei").axes == "tyx"
    props = results["props"]
    assert list(props.columns[:2]) == ["t", "label"]
    assert sorted(props["t"].unique()) == [0, 1, 2]


def test_spatial_table_op_per_channel_adds_c_column():
    testops.CONTEXT_CALLS.clear()
    img = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    image = from_array(img, "tcyx", scale=(1.0, 1.0, 0.5, 0.25))
    results = one_step("testing.block_context").run(image)
    table = results["out"]
    assert list(table.columns) == ["t", "c", "total", "ndim"]
    assert list(zip(table["t"], table["c"], strict=True)) == [
        (t, c) for t in range(2) for c in range(3)
    ]
    np.testing.assert_allclose(table["total"], img.sum(axis=(2, 3)).ravel())
    assert set(table["ndim"]) == {2}
    assert testops.CONTEXT_CALLS[0] == ("block", (0.5, 0.25), (4, 5))
    assert results.value("out").axes == "tcyx"


def test_non_spatial_ops_get_whole_array_with_axes_and_spacing():
    testops.CONTEXT_CALLS.clear()
    img = np.zeros((3, 2, 8, 9), dtype=np.uint8)
    image = from_array(img, "czyx", scale=(1.0, 2.0, 0.5, 0.5))
    one_step("testing.context").run(image)
    assert testops.CONTEXT_CALLS == [("czyx", (1.0, 2.0, 0.5, 0.5), (3, 2, 8, 9))]


def test_input_selection_channel_t_z_and_axes_out():
    img = np.arange(2 * 3 * 4 * 6 * 7, dtype=np.uint16).reshape(2, 3, 4, 6, 7)
    image = from_array(img, "tczyx", scale=(5.0, 1.0, 2.0, 0.5, 0.5))
    testops.CONTEXT_CALLS.clear()
    res = one_step("testing.context", channel=1, t=1).run(image)
    assert testops.CONTEXT_CALLS == [("zyx", (2.0, 0.5, 0.5), (4, 6, 7))]
    assert res.inputs["image"].axes == "zyx"
    np.testing.assert_array_equal(res.inputs["image"].data, img[1, 1])
    assert res.record["inputs"]["image"]["selection"] == {"t": 1, "c": 1}
    proj = one_step("preprocess.max_projection", {"axis": "z"}, channel=2).run(image)
    assert proj.value("out").axes == "tyx"
    assert proj.value("out").spacing == (5.0, 0.5, 0.5)
    np.testing.assert_array_equal(proj["out"], img[:, 2].max(axis=1))


def test_selection_errors():
    image = from_array(np.zeros((2, 8, 8)), "cyx")
    with pytest.raises(InputError, match="channel=5 selected but the image has 2 channels"):
        one_step("testing.context", channel=5).run(image)
    with pytest.raises(InputError, match="t=1 selected but the image has no 't' axis"):
        one_step("testing.context", t=1).run(image)
    # index 0 along a missing axis is the single plane there is
    one_step("testing.context", t=0).run(image)


def test_run_record_has_hash_checksum_versions_timings_and_progress():
    img = testops.make_blobs((48, 40), seed=2)
    p = Pipeline.loads(CLASSICAL)
    calls = []
    results = p.run(img, progress=lambda i, n, sid: calls.append((i, n, sid)))
    assert calls == [(0, 3, "smooth"), (1, 3, "nuclei"), (2, 3, "props"), (3, 3, "")]
    rec = results.record
    assert rec["pipeline"] == {"name": "classical", "sha256": p.sha256()}
    assert rec["inputs"]["image"]["sha256"] == hashlib.sha256(img.tobytes()).hexdigest()
    assert rec["inputs"]["image"]["shape"] == [48, 40]
    assert rec["versions"]["scikit-image"]
    assert [s["id"] for s in rec["steps"]] == ["smooth", "nuclei", "props"]
    assert all(s["seconds"] >= 0 for s in rec["steps"])
    assert rec["steps"][1]["params"] == {"method": "otsu", "value": 0.0, "min_size": 0}
    assert rec["outputs"]["nuclei"]["dtype"] == "int32"
    assert rec["mode"] == "in-memory"


def test_same_input_gives_bit_identical_results():
    img = testops.make_blobs((64, 64), seed=3)
    p = Pipeline.loads(CLASSICAL)
    a, b = p.run(img), p.run(img.copy())
    np.testing.assert_array_equal(a["nuclei"], b["nuclei"])
    pd.testing.assert_frame_equal(a["props"], b["props"])


def test_opens_paths_and_multiscale_images(tmp_path):
    from napari_fbias.io.ome_zarr_write import write_image

    img = testops.make_blobs((40, 44), seed=4)
    store = write_image(tmp_path / "img.ome.zarr", img, "yx", scale=(0.5, 0.5))
    by_path = Pipeline.loads(CLASSICAL).run(store)
    np.testing.assert_array_equal(by_path["nuclei"], direct_classical(img))
    assert by_path.record["inputs"]["image"]["source"] == store
    assert by_path.value("nuclei").spacing == (0.5, 0.5)
    assert "area_physical" in by_path["props"].columns


def test_image_with_no_objects_gives_empty_results():
    results = Pipeline.loads(CLASSICAL).run(np.full((32, 32), 7, dtype=np.uint16))
    assert results["nuclei"].max() == 0
    assert len(results["props"]) == 0
    assert "label" in results["props"].columns


def test_nan_image_is_a_clear_step_error():
    img = np.full((16, 16), np.nan, dtype=np.float32)
    with pytest.raises(StepError) as exc:
        Pipeline.loads(CLASSICAL).run(img)
    assert exc.value.step_id == "smooth"
    assert str(exc.value).startswith("step 'smooth' (preprocess.gaussian):")
    assert "NaN" in str(exc.value)


def test_bad_inputs_are_clear_errors():
    p = Pipeline.loads(CLASSICAL)
    with pytest.raises(InputError, match="the image is empty"):
        p.run(np.zeros((0, 10)))
    with pytest.raises(InputError, match="a 4D array needs its axes"):
        p.run(np.zeros((2, 2, 10, 10)))
    with pytest.raises(InputError, match="missing data for input"):
        p.run()
    with pytest.raises(InputError, match="has no input 'labels'"):
        p.run(np.zeros((8, 8)), labels=np.zeros((8, 8)))
    with pytest.raises(InputError, match="expected an image"):
        p.run({"not": "an image"})
    with pytest.raises(InputError, match="axes 'tyx' do not fit"):
        p.run((np.zeros((8, 8)), "tyx"))
    labels_in = one_step("segment.expand_labels", inputs={"labels": "image"})
    labels_in = Pipeline(
        name="l",
        inputs={"image": {"kind": "labels"}},
        steps=labels_in.steps,
        outputs=labels_in.outputs,
    )
    with pytest.raises(InputError, match="labels must be whole numbers"):
        labels_in.run(np.zeros((8, 8), dtype=np.float32))


def test_buggy_ops_are_reported_with_their_step():
    with pytest.raises(StepError, match=r"step 's' \(testing.wrong_kind\): returned float32"):
        one_step("testing.wrong_kind").run(np.zeros((4, 4)))
    with pytest.raises(StepError, match="ZeroDivisionError: division by zero inside the op"):
        one_step("testing.crash").run(np.zeros((4, 4)))


def test_value_passthrough_and_results_mapping():
    v = Value(np.ones((5, 6), dtype=np.uint8), "image", "yx", (2.0, 3.0))
    res = one_step("testing.scale", {"factor": 2}).run(v)
    np.testing.assert_array_equal(res["out"], np.full((5, 6), 2.0))
    assert res.value("out").spacing == (2.0, 3.0)
    assert dict(res).keys() == {"out"}


def test_run_pipeline_validates_first():
    from napari_fbias.pipeline import PipelineError

    bad = one_step("testing.scale", {"factor": "two"})
    with pytest.raises(PipelineError, match="must be a number"):
        run_pipeline(bad, np.zeros((4, 4)))
