"""Pipelines: the file format, its validator, the runner and batch processing.

>>> from napari_fbias.pipeline import Pipeline
>>> p = Pipeline.load("nuclei.fbias.yaml")      # doctest: +SKIP
>>> results = p.run("image.ome.zarr")            # doctest: +SKIP
>>> results["nuclei"]                            # doctest: +SKIP

Nothing here imports Qt or napari; the operations themselves are imported
on first use of the registry.
"""

from napari_fbias.pipeline.errors import (
    BatchError,
    ChunkingError,
    InputError,
    PipelineError,
    PipelineRunError,
    Problem,
    StepError,
)
from napari_fbias.pipeline.model import InputDecl, OutputDecl, Pipeline, Step
from napari_fbias.pipeline.values import Value

__all__ = [
    "BatchError",
    "ChunkingError",
    "InputDecl",
    "InputError",
    "OutputDecl",
    "Pipeline",
    "PipelineError",
    "PipelineRunError",
    "Problem",
    "Results",
    "Step",
    "StepError",
    "Value",
    "run_batch",
]


def __getattr__(name: str) -> object:
    if name == "Results":
        from napari_fbias.pipeline.runner import Results

        return Results
    if name == "run_batch":
        from napari_fbias.pipeline.batch import run_batch

        return run_batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
