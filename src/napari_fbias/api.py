"""The stable public API: what delivered scripts and notebooks, and users' own code, import.

Every ``run_pipeline.py`` and ``pipeline.ipynb`` that napari-fbias exports
imports this module and nothing else of napari-fbias, so a bundle delivered
today keeps running with later versions. The names in ``__all__`` keep their
meaning and signatures: later versions may add names and keyword arguments
with defaults, never remove or rename them (``API_VERSION`` counts breaking
changes and has never changed). Everything else in the package is internal
and may move.

Open an image and run a pipeline file on it::

    from napari_fbias.api import load_pipeline, open_image, write_outputs

    pipeline = load_pipeline("pipeline.fbias.yaml")
    results = pipeline.run(open_image("image.ome.zarr"))
    write_outputs(results, "results", "image")

Or one recorded step at a time, as the delivered script does::

    from napari_fbias.api import StepRunner, operation

    nuclei = operation("segment.nuclei")
    run = StepRunner("nuclei", "3f2a...")
    image = run.open_input("image.ome.zarr", "image", kind="image")
    labels = run.step("nuclei", nuclei, image, smoothing_sigma=1.5)
    results = run.results({"nuclei": labels})

Operations are named by their registry names, the names pipeline files use
(``fbias ops`` lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_fbias.io.open import open_image
from napari_fbias.pipeline.inputs import stem_of
from napari_fbias.pipeline.model import Pipeline
from napari_fbias.session.export.figures import show
from napari_fbias.session.export.runtime import StepRunner, script_main, write_outputs

__all__ = [
    "API_VERSION",
    "Pipeline",
    "StepRunner",
    "load_pipeline",
    "open_image",
    "operation",
    "run_pipeline",
    "script_main",
    "show",
    "stem_of",
    "write_outputs",
]

#: Breaking changes of this module so far (delivered code may check it).
API_VERSION = 1


def operation(name: str) -> Callable[..., Any]:
    """Return the function of the operation registered as ``name`` (``"segment.nuclei"``).

    Raises
    ------
    UnknownOpError
        (a ``KeyError``) when no operation has that name; the message lists
        the close matches.
    """
    from napari_fbias.ops.registry import get_op

    return get_op(name).func


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and validate a pipeline file (``*.fbias.yaml``); nothing in it is executed.

    Raises
    ------
    PipelineError
        When the file is not a valid pipeline (the message says where and why).
    """
    return Pipeline.load(path)


def run_pipeline(
    pipeline: Pipeline | str | Path,
    image: Any,
    outdir: str | Path | None = None,
    **more_inputs: Any,
) -> Any:
    """Run ``pipeline`` (a :class:`Pipeline` or a file) on ``image``; write results to ``outdir``.

    ``image`` is a path or URL (opened with :func:`open_image`), an opened
    image or a numpy array; ``more_inputs`` give the pipeline's other inputs
    by name. With ``outdir`` the results are written to
    ``outdir/<image name>/`` as ``fbias run`` writes them. Returns the
    results (output name -> array or table, with ``.record``).
    """
    if not isinstance(pipeline, Pipeline):
        pipeline = load_pipeline(pipeline)
    results = pipeline.run(image, **more_inputs)
    if outdir is not None:
        source = str(image) if isinstance(image, str | Path) else ""
        stem = stem_of(source) if source else pipeline.name
        write_outputs(results, outdir, stem, source=source)
    return results
