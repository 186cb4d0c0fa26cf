"""One place binds and checks a step's settings: files, the recorder, scripts and widgets."""

from __future__ import annotations

import numpy as np
import pytest

import pipeline_testops  # noqa: F401  (registers the testing ops)
from napari_fbias.ops.registry import get_op
from napari_fbias.pipeline import Pipeline, PipelineError
from napari_fbias.pipeline.settings import bind_settings
from napari_fbias.session.checks import check_params
from napari_fbias.session.errors import InvalidStepError
from napari_fbias.session.export.runtime import StepRunner

SCALE = get_op("testing.scale")


def test_values_are_converted_and_kept_in_the_order_given():
    clean, problems = bind_settings(SCALE, {"offset": 2.0, "factor": 3})
    assert problems == []
    assert list(clean) == ["offset", "factor"]
    assert clean["factor"] == 3.0 and isinstance(clean["factor"], float)
    assert clean["offset"] == 2 and isinstance(clean["offset"], int)


def test_with_defaults_every_setting_in_the_ops_order():
    clean, problems = bind_settings(SCALE, {"mode": "divide", "factor": 1}, defaults=True)
    assert problems == []
    assert list(clean) == list(SCALE.param_names)
    assert clean["mode"] == "divide" and clean["window"] == (0.0, 1.0) and clean["label"] is None


def test_every_problem_at_once_each_naming_its_setting():
    _, problems = bind_settings(SCALE, {"factr": 2, "offset": 1.5, "axes": "yx"})
    by_name = {p.name: p for p in problems}
    assert set(by_name) == {"factr", "offset", "axes", "factor"}
    assert "did you mean 'factor'" in by_name["factr"].message
    assert by_name["offset"].why.startswith("must be a whole number")
    assert by_name["offset"].message.startswith("'offset' must be a whole number")
    assert "filled in by the runner" in by_name["axes"].why
    assert by_name["factor"].message == "missing required setting 'factor'"


def test_numpy_scalars_count_as_the_python_values_they_hold():
    clean, problems = bind_settings(
        SCALE, {"factor": np.float32(2.5), "offset": np.int64(3), "clip": np.bool_(True)}
    )
    assert problems == []
    assert clean == {"factor": 2.5, "offset": 3, "clip": True}
    assert type(clean["offset"]) is int and type(clean["clip"]) is bool


def test_secret_names_are_refused_only_when_asked():
    spec = get_op("preprocess.gaussian")
    _, problems = bind_settings(spec, {"api_token": "x"})
    assert [p.why for p in problems] == [p.why for p in problems if "unknown setting" in p.why]
    _, problems = bind_settings(spec, {"api_token": "x"}, refuse_secret_names=True)
    assert "looks like a secret" in problems[0].message


def test_the_recorder_the_file_and_the_script_follow_the_same_rules():
    settings = {"factor": 11, "offset": 1}
    with pytest.raises(InvalidStepError, match="11.0 is above the maximum 10.0"):
        check_params(SCALE, settings)
    doc = {
        "fbias_pipeline": 1,
        "name": "p",
        "inputs": {"image": {"kind": "image"}},
        "steps": [{"id": "s", "op": "testing.scale", "inputs": {"image": "image"}}],
        "outputs": {"out": {"from": "s"}},
    }
    doc["steps"][0]["params"] = settings
    with pytest.raises(PipelineError, match="11.0 is above the maximum 10.0"):
        Pipeline.from_dict(doc)
    run = StepRunner("p")
    image = run.open_input(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="'factor' 11.0 is above the maximum 10.0"):
        run.step("s", SCALE.func, image, **settings)
    with pytest.raises(ValueError, match="unknown setting 'factr'; did you mean 'factor'"):
        run.step("s", SCALE.func, image, factr=1)
