"""A step is checked and made ready the same way in napari and headless (``prepare_step``)."""

from __future__ import annotations

import numpy as np
import pytest

from napari_fbias.pipeline.apply import compute_step
from napari_fbias.pipeline.values import Value
from napari_fbias.session.checks import prepare_step
from napari_fbias.session.errors import InvalidStepError

IMAGE = Value(np.arange(36, dtype=np.uint8).reshape(6, 6), "image", "yx", (1.0, 1.0))


def test_a_prepared_step_computes_and_records_its_complete_settings():
    spec, step, args, params = prepare_step("segment.threshold", {"image": IMAGE}, {"min_size": 2})
    assert spec.name == "segment.threshold" and step.id == "threshold"
    assert params == {"method": "otsu", "value": 0.0, "min_size": 2}
    assert dict(step.params) == params
    assert args == [IMAGE]
    assert compute_step(spec, step, args).kind == "labels"


def test_an_optional_input_left_out_is_none():
    labels = Value(np.ones((6, 6), dtype=np.int32), "labels", "yx")
    _, _, args, _ = prepare_step("segment.watershed_split", {"labels": labels, "image": None}, {})
    assert args == [labels, None]


@pytest.mark.parametrize(
    ("op", "values", "params", "match"),
    [
        ("segment.nonexistent", {"image": IMAGE}, {}, "unknown operation"),
        ("segment.threshold", {}, {}, "input 'image' is missing"),
        ("segment.threshold", {"img": IMAGE}, {}, "unknown input 'img'"),
        ("segment.fill_holes", {"labels": IMAGE}, {}, "needs labels data, got image"),
        ("segment.threshold", {"image": IMAGE}, {"method": "magic"}, "not one of"),
        ("segment.threshold", {"image": IMAGE}, {"api_token": "x"}, "secret"),
        ("segment.threshold", {"image": IMAGE}, {"axes": "yx"}, "automatically"),
    ],
)
def test_what_the_recorder_would_refuse_is_refused_before_computing(op, values, params, match):
    with pytest.raises(InvalidStepError, match=match):
        prepare_step(op, values, params)
