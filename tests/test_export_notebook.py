"""The bundle's notebook is built with nbformat: valid, deterministic, parameters tagged."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from napari_fbias import api
from napari_fbias.session.export.notebook import (
    code_cell,
    markdown_cell,
    notebook_json,
    notebook_text,
)

PIPELINE = Path(__file__).resolve().parent / "data" / "bundle_fa98415" / "pipeline.fbias.yaml"


def test_the_notebook_is_valid_and_the_same_every_time() -> None:
    pipeline = api.load_pipeline(PIPELINE)
    text = notebook_text(pipeline, default_inputs={"image": "/data/a.ome.tif"}, title="T <b>")
    assert text == notebook_text(
        pipeline, default_inputs={"image": "/data/a.ome.tif"}, title="T <b>"
    )
    assert text.endswith("}\n")
    nb = nbformat.reads(text, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5)
    assert nb.metadata.kernelspec.name == "python3"
    assert [c.id for c in nb.cells] == [f"cell-{i:03d}" for i in range(1, len(nb.cells) + 1)]
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code[0].metadata == {"tags": ["parameters"]}
    assert "INPUT = '/data/a.ome.tif'" in code[0].source
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert all(c.metadata == {} for c in code[1:])
    # sources are stored as lists of lines, as Jupyter writes them
    raw = json.loads(text)
    assert raw["cells"][0]["source"][0].startswith("# T &lt;b&gt;")


def test_a_broken_cell_is_refused() -> None:
    good = [markdown_cell("# x"), code_cell("x = 1", tags=["parameters"])]
    assert json.loads(notebook_json(good))["cells"][1]["metadata"] == {"tags": ["parameters"]}
    bad = {**code_cell("x = 1"), "outputs": "not a list"}
    with pytest.raises(nbformat.ValidationError):
        notebook_json([*good, bad])
