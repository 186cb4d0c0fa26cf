"""The Jupyter notebook of a delivery bundle (``pipeline.ipynb``).

The same calls as the script (:mod:`.script`), one step per cell, with a
figure after each step (:func:`~.figures.show`) and the results written the
way ``fbias run`` writes them. The notebook is built and written with
nbformat (version 4.5, with cell ids), validated against its schema, and saved
without outputs; text from the session goes into Markdown cells escaped, and
into code only as ``repr()`` literals or comments (see :mod:`.codegen`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import nbformat
from nbformat import v4

from napari_fbias.session.export.codegen import OpImport, pipeline_code, python_literal
from napari_fbias.session.export.readme import code, md

#: The kernel the notebook names: the Python 3 kernel of the environment that opens it.
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}


def markdown_cell(text: str) -> nbformat.NotebookNode:
    """Return a Markdown cell (nbformat 4)."""
    return v4.new_markdown_cell(text)


def code_cell(text: str, *, tags: Sequence[str] = ()) -> nbformat.NotebookNode:
    """Return a code cell without outputs (nbformat 4); ``tags`` go in its metadata."""
    meta: dict[str, Any] = {"tags": list(tags)} if tags else {}
    return v4.new_code_cell(text, metadata=meta)


def notebook_json(cells: Sequence[Mapping[str, Any]]) -> str:
    """Serialise cells as a validated nbformat 4.5 notebook for a Python 3 kernel.

    Cells get the ids ``cell-001``, ``cell-002``... (not nbformat's random
    ones), so the same pipeline always gives the same file.

    Raises
    ------
    nbformat.ValidationError
        If the notebook does not follow the nbformat schema (a bug here).
    """
    numbered = []
    for i, c in enumerate(cells, start=1):
        cell = nbformat.from_dict(dict(c))
        cell["id"] = f"cell-{i:03d}"
        numbered.append(cell)
    nb = v4.new_notebook(
        cells=numbered,
        metadata={"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}},
    )
    nbformat.validate(nb)
    text = nbformat.writes(nb, version=nbformat.NO_CONVERT)
    return text if text.endswith("\n") else text + "\n"


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
    cells: list[nbformat.NotebookNode] = []
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
