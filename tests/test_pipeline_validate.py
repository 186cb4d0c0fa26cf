"""Validation reports every problem at once, each with its step and field."""

from __future__ import annotations

import copy
import sys
import textwrap

import pytest

import pipeline_testops  # noqa: F401  (registers the testing.* ops)
from napari_fbias.pipeline import Pipeline, PipelineError
from napari_fbias.pipeline.validate import check_name, coerce_param

BASE = {
    "fbias_pipeline": 1,
    "name": "test",
    "inputs": {"image": {"kind": "image"}},
    "steps": [
        {
            "id": "scaled",
            "op": "testing.scale",
            "inputs": {"image": "image"},
            "params": {"factor": 2},
        },
        {
            "id": "nuclei",
            "op": "segment.threshold",
            "inputs": {"image": "scaled"},
            "params": {"method": "otsu"},
        },
    ],
    "outputs": {"nuclei": {"from": "nuclei"}},
}


def problems_of(doc) -> list[tuple[str | None, str, str]]:
    with pytest.raises(PipelineError) as exc:
        Pipeline.from_dict(doc)
    return [(p.step_id, p.field, p.message) for p in exc.value.problems]


def with_params(params, op="testing.scale"):
    doc = copy.deepcopy(BASE)
    doc["steps"][0]["op"] = op
    doc["steps"][0]["params"] = params
    return doc


def test_base_document_is_valid():
    p = Pipeline.from_dict(BASE)
    assert p.step("scaled").params["factor"] == 2.0


def test_every_problem_is_reported_at_once():
    doc = copy.deepcopy(BASE)
    doc["steps"][0]["params"] = {"factr": 2, "offset": 1.5, "clip": 1}
    doc["steps"][1]["op"] = "segment.treshold"
    doc["steps"].append({"id": "scaled", "op": "preprocess.gaussian", "inputs": {"image": "image"}})
    doc["outputs"]["../escape"] = {"from": "nuclei"}
    found = problems_of(doc)
    text = "\n".join(f"{s} {f} {m}" for s, f, m in found)
    assert ("scaled", "params.factr") in [(s, f) for s, f, _ in found]
    assert "did you mean 'factor'" in text
    assert "missing required setting 'factor'" in text
    assert ("scaled", "params.offset") in [(s, f) for s, f, _ in found]
    assert ("scaled", "params.clip") in [(s, f) for s, f, _ in found]
    assert "unknown operation 'segment.treshold'" in text and "segment.threshold" in text
    assert "duplicate step id" in text
    assert "outputs.../escape" in text and "path separator" in text
    assert len(found) >= 7
    # str() lists each problem with its step id
    with pytest.raises(PipelineError) as exc:
        Pipeline.from_dict(doc)
    assert "step 'nuclei', op: unknown operation" in str(exc.value)


@pytest.mark.parametrize(
    ("params", "field", "expected"),
    [
        ({"factor": True}, "params.factor", "must be a number, got true/false"),
        ({"factor": "2"}, "params.factor", "must be a number, got text '2'"),
        ({"factor": float("nan")}, "params.factor", "finite"),
        ({"factor": 11}, "params.factor", "above the maximum 10.0"),
        ({"factor": -1}, "params.factor", "below the minimum 0.0"),
        ({"factor": 1, "offset": 2.5}, "params.offset", "whole number"),
        ({"factor": 1, "offset": False}, "params.offset", "whole number"),
        ({"factor": 1, "offset": 6}, "params.offset", "above the maximum 5"),
        ({"factor": 1, "mode": "multipy"}, "params.mode", "did you mean 'multiply'"),
        ({"factor": 1, "clip": "yes"}, "params.clip", "true or false"),
        ({"factor": 1, "window": [0, 1, 2]}, "params.window", "must have 2 values"),
        ({"factor": 1, "window": [-1, 1]}, "params.window", "item 0: -1.0 is below"),
        ({"factor": 1, "window": 3}, "params.window", "must be a list"),
        ({"factor": 1, "label": 5}, "params.label", "must be text"),
        ({"factor": None}, "params.factor", "null is not allowed"),
        ({"factor": 1, "axes": "yx"}, "params.axes", "filled in by the runner"),
    ],
)
def test_wrong_setting_values(params, field, expected):
    found = problems_of(with_params(params))
    matching = [m for s, f, m in found if s == "scaled" and f == field]
    assert matching, found
    assert expected in matching[0]


def test_allowed_coercions():
    p = Pipeline.from_dict(
        with_params({"factor": 3, "offset": 2.0, "window": [0, 2], "label": None})
    )
    params = p.step("scaled").params
    assert params["factor"] == 3.0 and isinstance(params["factor"], float)
    assert params["offset"] == 2 and isinstance(params["offset"], int)
    assert params["window"] == (0.0, 2.0)
    assert params["label"] is None


def test_context_param_spacing_set_by_hand():
    doc = copy.deepcopy(BASE)
    doc["steps"][0] = {
        "id": "scaled",
        "op": "preprocess.gaussian",
        "inputs": {"image": "image"},
        "params": {"spacing": [1, 1]},
    }
    assert ("scaled", "params.spacing") in [(s, f) for s, f, _ in problems_of(doc)]


def test_data_inputs_missing_unknown_and_wrong_kind():
    doc = copy.deepcopy(BASE)
    doc["steps"][1]["inputs"] = {"img": "scaled"}
    doc["steps"].append(
        {"id": "cells", "op": "segment.expand_labels", "inputs": {"labels": "image"}}
    )
    doc["steps"].append(
        {
            "id": "split",
            "op": "segment.watershed_split",
            "inputs": {"labels": "nuclei", "image": "nowhere"},
        }
    )
    doc["outputs"] = {"cells": {"from": "cells"}, "split": {"from": "split"}}
    found = problems_of(doc)
    text = "\n".join(f"{s}|{f}|{m}" for s, f, m in found)
    assert "nuclei|inputs.img|segment.threshold has no data input 'img'" in text
    assert "nuclei|inputs.image|missing data input 'image'" in text
    assert (
        "cells|inputs.labels|segment.expand_labels expects labels for 'labels' but 'image' "
        "gives image" in text
    )
    assert "split|inputs.image|'nowhere' is neither a pipeline input nor a step id" in text


def test_cycles_are_reported_with_the_loop():
    doc = copy.deepcopy(BASE)
    doc["steps"][0]["op"] = "preprocess.gaussian"
    doc["steps"][0]["params"] = {}
    doc["steps"][0]["inputs"] = {"image": "smooth2"}
    doc["steps"].insert(
        1, {"id": "smooth2", "op": "preprocess.gaussian", "inputs": {"image": "scaled"}}
    )
    found = problems_of(doc)
    loops = [m for _, _, m in found if "loop" in m]
    assert loops and "scaled -> smooth2 -> scaled" in loops[0]


def test_unused_steps_and_inputs_and_unknown_outputs():
    doc = copy.deepcopy(BASE)
    doc["inputs"]["extra"] = {"kind": "labels"}
    doc["steps"].append({"id": "dead", "op": "preprocess.gaussian", "inputs": {"image": "image"}})
    doc["outputs"]["ghost"] = {"from": "nucleii"}
    found = problems_of(doc)
    text = "\n".join(f"{s}|{f}|{m}" for s, f, m in found)
    assert "dead||its result is used by no later step and no output" in text
    assert "None|inputs.extra|is not used by any step" in text
    assert "None|outputs.ghost.from|'nucleii' is not a step id; did you mean 'nuclei'" in text


@pytest.mark.parametrize(
    "name",
    ["a/b", "a\\b", "..", "../x", "/abs", "C:stuff", ".hidden", "", "sp ace", "x" * 65, "result"],
)
def test_unsafe_output_names(name):
    doc = copy.deepcopy(BASE)
    doc["outputs"] = {name: {"from": "nuclei"}}
    found = problems_of(doc)
    assert any(f == f"outputs.{name}" for _, f, _ in found), found


def test_output_names_differing_by_case_collide():
    doc = copy.deepcopy(BASE)
    doc["outputs"] = {"Nuclei": {"from": "nuclei"}, "nuclei": {"from": "nuclei"}}
    assert any("only by upper/lower case" in m for _, _, m in problems_of(doc))


def test_check_name_accepts_plain_names():
    for name in ("nuclei", "cells_2", "a.b-c", "N1"):
        assert check_name(name, "output name") is None


def test_future_schema_is_refused_with_upgrade_message():
    doc = copy.deepcopy(BASE)
    doc["fbias_pipeline"] = 2
    doc["steps"] = "whatever a newer version writes"
    found = problems_of(doc)
    assert len(found) == 1
    assert found[0][2] == (
        "written by a newer napari-fbias (schema 2); this one reads schema 1; "
        "upgrade napari-fbias to run it"
    )


def test_structure_problems():
    found = problems_of(
        {
            "name": 3,
            "inputs": {"image": {"kind": "movie", "channel": -1}},
            "steps": [{"id": "a", "op": "segment.threshold", "inputs": {}, "parms": {}}],
            "outputs": {},
            "extra_key": 1,
        }
    )
    text = "\n".join(f"{s}|{f}|{m}" for s, f, m in found)
    assert "fbias_pipeline|not a napari-fbias pipeline" in text
    assert "None|name|the pipeline needs a name" in text
    assert "inputs.image.kind|'movie' is not an input kind" in text
    assert "inputs.image.channel|must be an index" in text
    assert "a|parms|unknown key; did you mean 'params'" in text
    assert "None|outputs|the pipeline needs at least one output" in text
    assert "None|extra_key|unknown key" in text


def test_input_axes_must_fit_selection():
    doc = copy.deepcopy(BASE)
    doc["inputs"]["image"] = {"kind": "image", "axes": "tyx", "channel": 0}
    assert any(f == "inputs.image.channel" for _, f, _ in problems_of(doc))
    doc["inputs"]["image"] = {"kind": "image", "axes": "xy"}
    assert any("t, c, z, y, x order" in m for _, _, m in problems_of(doc))


def test_coerce_param_directly():
    from napari_fbias.ops.registry import get_op

    spec = get_op("testing.scale").param("offset")
    assert coerce_param(spec, 3) == (3, None)
    assert coerce_param(spec, True)[1] is not None


def test_problems_method_and_validated():
    bad = Pipeline(
        name="x",
        inputs={"image": "image"},
        steps=[{"id": "s", "op": "nope.op", "inputs": {"image": "image"}}],
        outputs={"s": "s"},
    )
    assert [p.field for p in bad.problems()] == ["op"]
    with pytest.raises(PipelineError):
        bad.validated()


def test_third_party_ops_come_from_entry_points(tmp_path, monkeypatch):
    """The registry loads modules named in the napari_fbias.ops entry point group."""
    from napari_fbias.ops import registry

    pkg = tmp_path / "fbias_extra_ops.py"
    pkg.write_text(
        textwrap.dedent('''
        from napari_fbias.ops.registry import register_op
        from napari_fbias.ops.types import Image

        @register_op("extra.invert", category="extra")
        def invert(image: Image) -> Image:
            """Invert an image (third-party op)."""
            return -image
    ''')
    )
    dist = tmp_path / "fbias_extra_ops-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fbias-extra-ops\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[napari_fbias.ops]\nextra = fbias_extra_ops\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(registry, "_loaded", False)
    monkeypatch.delitem(sys.modules, "fbias_extra_ops", raising=False)
    doc = copy.deepcopy(BASE)
    doc["steps"][0] = {"id": "scaled", "op": "extra.invert", "inputs": {"image": "image"}}
    try:
        p = Pipeline.from_dict(doc)
        assert p.step("scaled").op == "extra.invert"
        assert "fbias_extra_ops" in sys.modules
    finally:
        registry._REGISTRY.pop("extra.invert", None)
