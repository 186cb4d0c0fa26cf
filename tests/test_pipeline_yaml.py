"""Safe loading of pipeline files: plain data only, bounded, every refusal explained."""

from __future__ import annotations

import pytest

from napari_fbias.pipeline import Pipeline, PipelineError, yaml_safe

VALID = """\
fbias_pipeline: 1
name: nuclei
inputs:
  image: {kind: image}
steps:
  - id: nuclei
    op: segment.threshold
    inputs: {image: image}
    params: {method: otsu}
outputs:
  nuclei: {from: nuclei}
provenance: {created: 2024-05-01T10:00:00Z, author: Ada}
"""


def _problem_text(exc: pytest.ExceptionInfo[PipelineError]) -> str:
    return " | ".join(str(p) for p in exc.value.problems)


def test_valid_file_loads_and_dates_stay_text(tmp_path):
    path = tmp_path / "p.fbias.yaml"
    path.write_text(VALID)
    p = Pipeline.load(path)
    assert p.steps[0].op == "segment.threshold"
    assert p.provenance["created"] == "2024-05-01T10:00:00Z"


def test_python_object_tag_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    text = VALID.replace(
        "name: nuclei", f"name: !!python/object/apply:os.system ['touch {marker}']"
    )
    path = tmp_path / "evil.fbias.yaml"
    path.write_text(text)
    with pytest.raises(PipelineError) as exc:
        Pipeline.load(path)
    msg = _problem_text(exc)
    assert "!!python/object/apply:os.system" in msg
    assert "not allowed" in msg and "line 2" in msg
    assert str(path) in str(exc.value)
    assert not marker.exists()


def test_python_name_tag_is_refused():
    with pytest.raises(PipelineError, match="python/name"):
        yaml_safe.loads("x: !!python/name:os.system\n")


def test_malformed_yaml_names_the_line(tmp_path):
    path = tmp_path / "bad.fbias.yaml"
    path.write_text("fbias_pipeline: 1\nname: [unclosed\nsteps: []\n")
    with pytest.raises(PipelineError) as exc:
        Pipeline.load(path)
    msg = _problem_text(exc)
    assert "not valid YAML" in msg and "line" in msg


def test_file_too_large_is_refused_before_parsing(tmp_path, monkeypatch):
    monkeypatch.setattr(yaml_safe, "MAX_BYTES", 200)
    path = tmp_path / "big.fbias.yaml"
    path.write_text("# " + "x" * 300 + "\n" + VALID)
    with pytest.raises(PipelineError, match="larger than"):
        Pipeline.load(path)


def test_billion_laughs_is_refused():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(PipelineError, match="aliases"):
        yaml_safe.loads("\n".join(lines) + "\n")


def test_few_aliases_that_expand_hugely_are_refused(monkeypatch):
    monkeypatch.setattr(yaml_safe, "MAX_NODES", 1000)
    text = (
        "a: &a ["
        + ", ".join(["x"] * 100)
        + "]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    )
    with pytest.raises(PipelineError, match="expands to more than 1000"):
        yaml_safe.loads(text)


def test_a_few_anchors_are_fine():
    data = yaml_safe.loads("common: &c {sigma: 2}\nother: *c\n")
    assert data["other"] == {"sigma": 2}


def test_deep_nesting_is_refused():
    text = "a: " + "[" * 40 + "]" * 40 + "\n"
    with pytest.raises(PipelineError, match="nested deeper"):
        yaml_safe.loads(text)


def test_duplicate_keys_are_refused_with_line():
    with pytest.raises(PipelineError) as exc:
        yaml_safe.loads("params:\n  sigma: 1\n  sigma: 2\n")
    assert "'sigma' appears twice" in str(exc.value) and "line 3" in str(exc.value)


def test_missing_file_and_folder_and_binary(tmp_path):
    with pytest.raises(PipelineError, match="file not found"):
        Pipeline.load(tmp_path / "nope.fbias.yaml")
    with pytest.raises(PipelineError, match="is a folder"):
        Pipeline.load(tmp_path)
    binary = tmp_path / "img.fbias.yaml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00")
    with pytest.raises(PipelineError, match="not UTF-8"):
        Pipeline.load(binary)


def test_top_level_not_a_mapping():
    with pytest.raises(PipelineError, match="does not hold a napari-fbias pipeline"):
        Pipeline.loads("- just\n- a list\n")


def test_numbers_in_exponent_form_are_numbers_and_text_stays_text() -> None:
    from napari_fbias.pipeline.yaml_safe import dumps, loads

    got = loads("a: 1e-3\nb: 2E5\nc: -1.5e+2\nd: e5\ne: 10\n")
    assert got == {"a": 0.001, "b": 200000.0, "c": -150.0, "d": "e5", "e": 10}
    assert isinstance(got["a"], float)
    assert loads(dumps({"text": "1e5", "x": 1e-3})) == {"text": "1e5", "x": 0.001}
