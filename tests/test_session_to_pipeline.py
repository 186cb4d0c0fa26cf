"""An approach becomes a valid pipeline that reproduces what was done in the session."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fbias.io.image import from_array
from napari_fbias.ops.registry import get_op, list_ops
from napari_fbias.pipeline.model import Pipeline
from napari_fbias.session import (
    SessionError,
    SessionRecorder,
    approach_to_pipeline,
    approach_to_pipeline_dict,
)


def two_channel_image() -> np.ndarray:
    yy, xx = np.mgrid[:40, :40]
    img = np.zeros((2, 40, 40), dtype=np.float32)
    for cy, cx in [(10, 10), (12, 28), (30, 18)]:
        img[0] += 100.0 * ((yy - cy) ** 2 + (xx - cx) ** 2 < 20)
    img[1] += 80.0 * ((yy - 20) ** 2 + (xx - 20) ** 2 < 150)
    return img + np.random.default_rng(0).normal(0, 2, img.shape).astype(np.float32)


@pytest.fixture
def rec(tmp_path):
    r = SessionRecorder.start("Nuclei & cells", user_name="Ann", question="Count", folder=tmp_path)
    image = from_array(two_channel_image(), "cyx", name="cells", source="/d/cells.ome.zarr")
    r.add_image(image, layers={"cells [0]": {"c": 0}, "cells [1]": {"c": 1}})
    r.add_approach("classical", "Bob")
    yield r
    r.close()


def test_approach_becomes_a_runnable_pipeline_with_the_same_result(rec):
    rec.record_step("preprocess.gaussian", {"sigma": 3}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    rec.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")  # clear the stale
    rec.set_notes("otsu is fine here")
    pipe = approach_to_pipeline(rec.session, "A")
    assert isinstance(pipe, Pipeline) and pipe.problems() == []
    assert dict(pipe.inputs["image"].to_dict()) == {"kind": "image", "channel": 0}
    assert [(s.id, s.op, dict(s.inputs)) for s in pipe.steps] == [
        ("gaussian", "preprocess.gaussian", {"image": "image"}),
        ("threshold", "segment.threshold", {"image": "gaussian"}),
    ]
    assert pipe.steps[0].params["sigma"] == 1.0, "the replaced version, not the one tried first"
    assert {k: v.source for k, v in pipe.outputs.items()} == {"nuclei": "threshold"}
    assert pipe.provenance["author"] == "Bob"
    assert pipe.provenance["source"]["session"] == rec.session.id
    assert "otsu is fine here" in pipe.description
    # it reproduces the session's result, bit for bit
    ops = {s.op: get_op(s.op).func for s in pipe.steps}
    img = two_channel_image()
    expected = ops["segment.threshold"](ops["preprocess.gaussian"](img[0], sigma=1.0))
    got = pipe.run(from_array(img, "cyx"))
    np.testing.assert_array_equal(got["nuclei"], expected)
    assert got["nuclei"].max() == 3
    # and survives its own file format
    assert Pipeline.loads(pipe.dumps()).sha256() == pipe.sha256()


def test_reads_of_different_channels_become_select_steps(rec):
    rec.record_step("segment.threshold", {}, {"image": "cells [0]"}, "nuclei")
    rec.record_step("segment.threshold", {"method": "li"}, {"image": "cells [1]"}, "cells")
    pipe = approach_to_pipeline(rec.session, "A")
    assert dict(pipe.inputs["image"].to_dict()) == {"kind": "image"}
    assert [(s.id, s.op, dict(s.inputs), dict(s.params)) for s in pipe.steps[:2]] == [
        ("image_c0", "preprocess.select", {"image": "image"}, {"axis": "c", "index": 0}),
        ("threshold", "segment.threshold", {"image": "image_c0"}, dict(pipe.steps[1].params)),
    ]
    assert pipe.steps[2].id == "image_c1"
    assert {k: v.source for k, v in pipe.outputs.items()} == {
        "nuclei": "threshold",
        "cells": "threshold_2",
    }
    img = two_channel_image()
    got = pipe.run(from_array(img, "cyx"))
    thr = get_op("segment.threshold").func
    np.testing.assert_array_equal(got["nuclei"], thr(img[0]))
    np.testing.assert_array_equal(got["cells"], thr(img[1], method="li"))


def test_reads_of_a_step_output_at_one_index_become_select_steps(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells"}, "all smoothed")
    rec.record_step(
        "segment.threshold", {}, {"image": "all smoothed"}, "nuclei", select={"image": {"c": 0}}
    )
    doc = approach_to_pipeline_dict(rec.session, "A")
    assert [s["id"] for s in doc["steps"]] == ["gaussian", "gaussian_c0", "threshold"]
    assert doc["steps"][2]["inputs"] == {"image": "gaussian_c0"}
    assert doc["inputs"] == {"image": {"kind": "image"}}
    approach_to_pipeline(rec.session, "A")  # valid


def test_cross_approach_reads_pull_in_the_steps_they_need(rec):
    rec.record_step("segment.threshold", {}, {"image": "cells [0]"}, "nuclei")
    rec.add_approach("cells from nuclei", "Eve")
    rec.record_step("segment.expand_labels", {"distance": 2}, {"labels": "nuclei"}, "cells/v1")
    pipe = approach_to_pipeline(rec.session, "B")
    assert [s.id for s in pipe.steps] == ["threshold", "expand_labels"]
    assert list(pipe.outputs) == ["cells_v1"], "layer name made a safe output name"
    assert pipe.provenance["author"] == "Eve"
    a = approach_to_pipeline(rec.session, "A")
    assert [s.id for s in a.steps] == ["threshold"]


def test_steps_whose_layer_was_deleted_stay_and_name_falls_back(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "result")
    rec.layer_removed("smoothed")
    pipe = approach_to_pipeline(rec.session, "A")
    assert [s.id for s in pipe.steps] == ["gaussian", "threshold"]
    assert list(pipe.outputs) == ["result_threshold"], "'result' is reserved for files"


def test_measured_labels_are_outputs_too(rec):
    if "measure.regionprops" not in {o.name for o in list_ops()}:
        pytest.skip("measure.regionprops is not written yet")
    rec.record_step("segment.threshold", {}, {"image": "cells [0]"}, "nuclei")
    rec.record_step("measure.regionprops", {}, {"labels": "nuclei"}, "nuclei measurements")
    pipe = approach_to_pipeline(rec.session, "A")
    assert {k: v.source for k, v in pipe.outputs.items()} == {
        "nuclei": "threshold",
        "nuclei_measurements": "regionprops",
    }


def test_empty_approach_is_a_clear_error(rec):
    with pytest.raises(SessionError, match="approach A has no steps"):
        approach_to_pipeline(rec.session, "A")
    with pytest.raises(KeyError, match="no approach 'C'"):
        approach_to_pipeline(rec.session, "C")
