"""The Jupyter notebook of a delivery bundle (``pipeline.ipynb``).

The same calls as the script (:mod:`.script`), one step per cell, with a
figure after each step (:func:`~.figures.show`) and the results written the
way ``fbias run`` writes them. The notebook is plain nbformat 4 JSON, saved
without outputs; text from the session goes into Markdown cells escaped, and
into code only as ``repr()`` literals or comments (see :mod:`.codegen`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from napari_fbias.session.export.codegen import OpImport, pipeline_code, python_literal
from napari_fbias.session.export.readme import code, md


def _source(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    return lines


def markdown_cell(text: str) -> dict[str, Any]:
    """Return a Markdown cell (nbformat 4)."""
    return {"cell_type": "markdown", "metadata": {}, "source": _source(text)}


def code_cell(text: str, *, tags: Sequence[str] = ()) -> dict[str, Any]:
    """Return a code cell without outputs (nbformat 4)."""
    meta: dict[str, Any] = {"tags": list(tags)} if tags else {}
    return {
        "cell_type": "code",
        "execution_count": None,
        "metadata": meta,
        "outputs": [],
        "source": _source(text),
    }


def notebook_json(cells: Sequence[Mapping[str, Any]]) -> str:
    """Serialise cells as an nbformat 4.5 notebook (with cell ids) for a Python 3 kernel."""
    out = []
    for i, c in enumerate(cells, start=1):
        out.append({"id": f"cell-{i:03d}", **c})
    doc = {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(doc, indent=1, ensure_ascii=False) + "\n"


def _value(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return "none" if value is None else str(value)


def notebook_text(
    pipeline: Any,
    *,
    default_inputs: Mapping[str, str] | None = None,
    title: str = "",
    about: Sequence[str] = (),
) -> str:
    """Return the notebook that runs ``pipeline`` step by step with figures.

    Parameters
    ----------
    pipeline : Pipeline
        A validated pipeline.
    default_inputs : mapping of str to str, optional
        Input name -> the image to use by default (the session's image).
    title : str
        Heading (free text; escaped).
    about : sequence of str
        Lines of free text for the introduction (escaped).

    Returns
    -------
    str
        The ``.ipynb`` JSON text.
    """
    pc = pipeline_code(pipeline)
    defaults = dict(default_inputs or {})
    cells: list[dict[str, Any]] = []
    intro = [f"# {md(title or pipeline.name)}", ""]
    intro += [md(line) for line in about if str(line).strip()]
    intro += [
        "",
        "This notebook reruns the analysis pipeline step by step and shows a figure after "
        "each step. Set `INPUT` below to your image (an OME-Zarr folder or URL, or a TIFF "
        "file), then run all cells. It gives the same results, bit for bit, as "
        "`fbias run` with the pipeline file.",
    ]
    cells.append(markdown_cell("\n".join(intro)))
    params = ["# The image to analyse and the folder for the results"]
    input_vars = {}
    for n, inp in enumerate(pc.inputs):
        var = "INPUT" if n == 0 else f"INPUT_{inp.variable.upper()}"
        input_vars[inp.name] = var
        default = defaults.get(inp.name) or "path/to/your/image.ome.zarr"
        params.append(f"{var} = {python_literal(default, 'input path')}")
    params.append("OUTDIR = 'results'")
    cells.append(code_cell("\n".join(params), tags=["parameters"]))
    imports = [
        "from napari_fbias.api import StepRunner, operation, show, stem_of, write_outputs",
        "",
        "# The operations, by the names the pipeline file uses (`fbias ops` lists them)",
        *OpImport.lines(pc.imports),
        "",
        f"PIPELINE_NAME = {python_literal(pc.name, 'pipeline name')}",
        f"PIPELINE_SHA256 = {python_literal(pc.sha256)}",
    ]
    cells.append(code_cell("\n".join(imports)))
    cells.append(markdown_cell("## The image\n\nOpened lazily, then the part the pipeline uses."))
    opening = ["run = StepRunner(PIPELINE_NAME, PIPELINE_SHA256)"]
    for inp in pc.inputs:
        opening.append(f"# {inp.comment}")
        opening.append(f"{inp.variable} = run.open_input({input_vars[inp.name]}, {inp.call_args})")
    opening.append(f"show({pc.inputs[0].variable})")
    cells.append(code_cell("\n".join(opening)))
    for i, step in enumerate(pc.steps, start=1):
        text = [f"## Step {i}: {md(step.title)} ({code(step.op)})", ""]
        if step.summary:
            text += [md(step.summary), ""]
        if step.settings:
            text.append("Settings:")
            text += [f"- {code(k)} = {md(_value(v))}" for k, v in step.settings]
        cells.append(markdown_cell("\n".join(text)))
        cells.append(code_cell("\n".join([*step.comments, f"{step.variable} = {step.call}"])))
        shown = f"show({step.variable}" + (f", {step.background})" if step.background else ")")
        cells.append(code_cell(shown))
    cells.append(
        markdown_cell(
            "## Results\n\nWritten to `OUTDIR/<image name>/` exactly as `fbias run` writes them "
            "(labels in `result.ome.zarr`, tables as CSV, `run.json`)."
        )
    )
    first_var = input_vars[pc.inputs[0].name]
    final = [
        "results = " + pc.results_call(),
        f"folder = write_outputs(results, OUTDIR, stem_of(str({first_var})), "
        f"source=str({first_var}))",
        "print('results written to', folder)",
        "results",
    ]
    cells.append(code_cell("\n".join(final)))
    return notebook_json(cells)
