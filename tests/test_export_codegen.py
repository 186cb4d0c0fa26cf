"""Code generation for exported scripts and notebooks: safe literals, names, comments."""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_fbias.ops.registry import _REGISTRY, register_op
from napari_fbias.ops.types import Image
from napari_fbias.pipeline import Pipeline
from napari_fbias.session.export import ExportError
from napari_fbias.session.export.codegen import (
    comment_lines,
    identifier,
    pipeline_code,
    python_literal,
)
from napari_fbias.session.export.notebook import notebook_text
from napari_fbias.session.export.script import script_text

PAYLOAD = (
    'x"""\n\'\'\'\r\nimport os; os.system("touch /tmp/pwned")  # \u2028__import__("os")\x00\x0c'
)


def _pipeline(name: str = "nuclei", step_id: str = "nuclei", **extra: object) -> Pipeline:
    doc = {
        "fbias_pipeline": 1,
        "name": name,
        "description": extra.pop("description", ""),
        "inputs": {"image": {"kind": "image", "channel": 0}},
        "steps": [
            {
                "id": "smooth",
                "op": "preprocess.gaussian",
                "inputs": {"image": "image"},
                "params": {"sigma": 2},
            },
            {
                "id": step_id,
                "op": "segment.threshold",
                "inputs": {"image": "smooth"},
                "params": {"method": "otsu"},
            },
            {
                "id": "measure",
                "op": "measure.regionprops",
                "inputs": {"labels": step_id, "image": "image"},
                "params": {"properties": ["area", "centroid"]},
            },
        ],
        "outputs": {"nuclei": {"from": step_id}, "table": {"from": "measure"}},
    }
    return Pipeline.from_dict(doc)


@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -3, 2.5, 1e-300, "otsu", "quote ' \" \\ \n end", ("a", "b"), (1,), ()],
)
def test_python_literal_reads_back_equal(value: object) -> None:
    text = python_literal(value)
    back = ast.literal_eval(text)
    assert back == value and type(back) is type(value)


def test_python_literal_turns_lists_into_tuples() -> None:
    assert ast.literal_eval(python_literal(["area", "bbox"])) == ("area", "bbox")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), {"a": 1}, object(), b"x"])
def test_python_literal_refuses_what_is_not_plain_data(bad: object) -> None:
    with pytest.raises(ExportError):
        python_literal(bad, "setting")


def test_identifier_is_safe_and_free() -> None:
    assert identifier("nuclei") == "nuclei"
    assert identifier("A: nuclei/v1") == "a_nuclei_v1"
    assert identifier("2nd step") == "v_2nd_step"
    assert identifier("class") == "class_2"
    assert identifier("run", suffix="labels") == "run_labels"
    assert identifier("print", suffix="labels") == "print_labels"
    assert identifier("nuclei", {"nuclei"}, "labels") == "nuclei_labels"
    assert identifier("nuclei", {"nuclei", "nuclei_labels"}, "labels") == "nuclei_labels_2"
    assert identifier(PAYLOAD).isidentifier()


def test_comment_lines_never_break_out_of_a_comment() -> None:
    lines = comment_lines(PAYLOAD)
    assert lines and all(line.startswith("# ") for line in lines)
    source = "\n".join(lines) + "\n"
    tokens = list(tokenize.generate_tokens(io.StringIO(source).readline))
    kinds = {tokenize.tok_name[t.type] for t in tokens}
    assert kinds <= {"COMMENT", "NL", "NEWLINE", "ENDMARKER"}


def _code_tokens_outside_strings(source: str) -> str:
    """Everything the tokenizer sees that is not a comment or a string literal."""
    out = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.COMMENT, tokenize.STRING):
            out.append(tok.string)
    return " ".join(out)


def test_script_names_every_setting_and_imports_the_public_ops() -> None:
    text = script_text(_pipeline())
    compile(text, "run_pipeline.py", "exec")
    assert "from napari_fbias.api import StepRunner, operation, script_main" in text
    assert "gaussian = operation('preprocess.gaussian')" in text
    assert "threshold = operation('segment.threshold')" in text
    assert "regionprops = operation('measure.regionprops')" in text
    # every setting with its value, the int 2 converted to the float the op declares
    assert "sigma=2.0," in text
    assert "method='otsu'," in text and "min_size=0," in text
    assert "properties=('area', 'centroid')," in text
    assert "channel=0" in text
    assert "'nuclei': " in text and "'table': " in text


def test_script_variable_does_not_shadow_the_op_function() -> None:
    # step id "threshold" is also the name of the imported function
    text = script_text(_pipeline(step_id="threshold"))
    assert "threshold_labels = run.step(" in text
    assert "    threshold,\n" in text  # the function itself is passed


@settings(max_examples=30, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60
    )
)
def test_untrusted_text_stays_inert_in_script_and_notebook(text: str) -> None:
    pipe = _pipeline(name="p" + text, description=text)
    script = script_text(pipe, about=[text, PAYLOAD])
    tree = ast.parse(script)
    calls = {
        n.func.id if isinstance(n.func, ast.Name) else n.func.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
    }
    assert calls <= {
        "StepRunner",
        "operation",
        "open_input",
        "step",
        "results",
        "exit",
        "script_main",
    }
    assert "system" not in _code_tokens_outside_strings(script)
    nb = json.loads(notebook_text(pipe, default_inputs={"image": text}, title=text, about=[text]))
    for cell in nb["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "code":
            compile(source, "cell", "exec")
            assert "system" not in _code_tokens_outside_strings(source)
        else:  # markdown: no raw HTML outside code spans
            assert "<" not in re.sub(r"`[^`]*`", "", source)


def test_script_refuses_an_op_that_cannot_be_imported() -> None:
    def make() -> object:
        @register_op("test.hidden_local", category="test")
        def hidden(image: Image, *, k: int = 1) -> Image:
            """Return the image (a local function nobody can import)."""
            return image

        return hidden

    make()
    try:
        pipe = Pipeline.from_dict(
            {
                "fbias_pipeline": 1,
                "name": "x",
                "inputs": {"image": {"kind": "image"}},
                "steps": [{"id": "h", "op": "test.hidden_local", "inputs": {"image": "image"}}],
                "outputs": {"h": {"from": "h"}},
            }
        )
        with pytest.raises(ExportError, match="not importable"):
            pipeline_code(pipe)
    finally:
        _REGISTRY.pop("test.hidden_local", None)


def test_notebook_is_valid_nbformat_without_outputs() -> None:
    nbformat = pytest.importorskip("nbformat")
    text = notebook_text(_pipeline(), default_inputs={"image": "/data/img.ome.zarr"})
    nb = nbformat.reads(text, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert code[0].metadata["tags"] == ["parameters"]
    assert "INPUT = '/data/img.ome.zarr'" in code[0].source
    # one cell per step call, each followed by a figure cell
    calls = [c.source for c in code if "= run.step(" in c.source]
    assert len(calls) == 3
    shows = [c.source for c in code if c.source.startswith("show(")]
    assert "show(nuclei, smooth)" in shows
