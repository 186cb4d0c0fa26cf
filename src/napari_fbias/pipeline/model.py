"""The pipeline as an immutable value: inputs, steps, outputs, provenance.

A pipeline file (``*.fbias.yaml``) looks like::

    fbias_pipeline: 1
    name: nuclei-classical
    inputs:
      image: {kind: image, channel: 0}
    steps:
      - id: smooth
        op: preprocess.gaussian
        inputs: {image: image}
        params: {sigma: 1.5}
      - id: nuclei
        op: segment.threshold
        inputs: {image: smooth}
        params: {method: otsu}
    outputs:
      nuclei: {from: nuclei}

``op`` names an entry of the operation registry, never an importable
callable. :class:`Pipeline` is data: its parts (:class:`InputDecl`,
:class:`Step`, :class:`OutputDecl`) live in :mod:`.parts` and are
re-exported here. A few methods are thin conveniences over the modules that
do the work, none of which imports this one: :meth:`Pipeline.load` /
:meth:`Pipeline.from_dict` read with the bounded safe YAML loader
(:mod:`.yaml_safe`) and validate everything (:mod:`.validate`) before
anything runs; :meth:`Pipeline.run` is :func:`.runner.run_pipeline`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_fbias.pipeline import yaml_safe
from napari_fbias.pipeline.errors import PipelineError, Problem
from napari_fbias.pipeline.parts import (
    SCHEMA_KEY,
    SCHEMA_VERSION,
    FrozenMap,
    InputDecl,
    OutputDecl,
    Step,
    freeze,
    thaw,
)

if TYPE_CHECKING:
    from napari_fbias.pipeline.runner import Results

__all__ = [
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "FrozenMap",
    "InputDecl",
    "OutputDecl",
    "Pipeline",
    "Step",
    "freeze",
    "thaw",
]


def _as_input(value: Any) -> InputDecl:
    if isinstance(value, InputDecl):
        return value
    if isinstance(value, str):
        return InputDecl(kind=value)
    return InputDecl(**dict(value))


def _as_output(value: Any) -> OutputDecl:
    if isinstance(value, OutputDecl):
        return value
    if isinstance(value, str):
        return OutputDecl(value)
    return OutputDecl(dict(value)["from"])


def _as_step(value: Any) -> Step:
    return value if isinstance(value, Step) else Step.from_dict(value)


@dataclass(frozen=True)
class Pipeline:
    """An analysis pipeline: named inputs, steps and outputs (immutable).

    Parameters
    ----------
    name : str
        Short name (``"nuclei-classical"``).
    inputs : mapping of str to InputDecl
        Named inputs; a plain dict (``{"image": {"kind": "image"}}``) is accepted.
    steps : sequence of Step
        The steps; plain dicts are accepted.
    outputs : mapping of str to OutputDecl
        Named results; ``{"nuclei": "nuclei"}`` or ``{"nuclei": {"from": "nuclei"}}``
        are accepted.
    description : str
        Free text for the reader of the file.
    provenance : mapping
        Who made it, when, with which package versions (see
        :func:`napari_fbias.pipeline.provenance.make_provenance`). Not part of
        :meth:`sha256`.

    Notes
    -----
    Building a Pipeline does not validate it: call :meth:`problems` or
    :meth:`validated`, or build it with :meth:`from_dict` / :meth:`load`.
    A pipeline built by those is marked as validated (:meth:`validated`
    returns it as it is, so a run does not check it again); a copy made with
    :func:`dataclasses.replace` is not.
    """

    name: str
    inputs: Mapping[str, InputDecl]
    steps: tuple[Step, ...]
    outputs: Mapping[str, OutputDecl]
    description: str = ""
    provenance: Mapping[str, Any] = field(default_factory=FrozenMap)
    _checked: bool = field(default=False, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "inputs", FrozenMap({str(k): _as_input(v) for k, v in self.inputs.items()})
        )
        object.__setattr__(self, "steps", tuple(_as_step(s) for s in self.steps))
        object.__setattr__(
            self, "outputs", FrozenMap({str(k): _as_output(v) for k, v in self.outputs.items()})
        )
        object.__setattr__(self, "provenance", freeze(self.provenance or {}))

    # --- plain data -------------------------------------------------------------
    def to_dict(self, *, provenance: bool = True) -> dict[str, Any]:
        """Plain, YAML/JSON-safe dict in file order (schema version first)."""
        d: dict[str, Any] = {SCHEMA_KEY: SCHEMA_VERSION, "name": self.name}
        if self.description:
            d["description"] = self.description
        d["inputs"] = {k: v.to_dict() for k, v in self.inputs.items()}
        d["steps"] = [s.to_dict() for s in self.steps]
        d["outputs"] = {k: v.to_dict() for k, v in self.outputs.items()}
        if provenance and self.provenance:
            d["provenance"] = thaw(self.provenance)
        return d

    def canonical_json(self) -> str:
        """Canonical JSON of the content (no provenance): what :meth:`sha256` hashes."""
        return json.dumps(
            self.to_dict(provenance=False),
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        )

    def sha256(self) -> str:
        """SHA-256 (hex) of the canonical content, excluding provenance."""
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    def step(self, step_id: str) -> Step:
        """Return the step called ``step_id`` (KeyError if none)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def dumps(self) -> str:
        """Return the pipeline as YAML text."""
        return yaml_safe.dumps(self.to_dict())

    # --- conveniences: reading and checking (napari_fbias.pipeline.validate) --------
    @classmethod
    def from_dict(cls, d: Any, *, source: str = "", validate: bool = True) -> Pipeline:
        """Build a pipeline from plain data (e.g. parsed YAML).

        Parameters
        ----------
        d : mapping
            The document.
        source : str
            File name used in error messages.
        validate : bool
            Check the steps against the operation registry too (ops exist,
            parameters and data kinds fit). Structure is always checked.

        Returns
        -------
        Pipeline
            With settings converted to the types the ops declare (``2`` ->
            ``2.0`` for a float setting).

        Raises
        ------
        PipelineError
            Listing every problem found.
        """
        from napari_fbias.pipeline.validate import check_document

        pipeline = cls(**check_document(d, source=source, semantic=validate))
        object.__setattr__(pipeline, "_checked", validate)
        return pipeline

    @classmethod
    def load(cls, path: str | Path, *, validate: bool = True) -> Pipeline:
        """Read and validate a pipeline file (bounded safe YAML; see :meth:`from_dict`)."""
        return cls.from_dict(yaml_safe.load_file(path), source=str(path), validate=validate)

    @classmethod
    def loads(cls, text: str, *, source: str = "", validate: bool = True) -> Pipeline:
        """Parse and validate pipeline YAML text."""
        return cls.from_dict(yaml_safe.loads(text, source), source=source, validate=validate)

    def problems(self) -> list[Problem]:
        """Everything wrong with this pipeline (empty when it can run)."""
        if self._checked:
            return []
        from napari_fbias.pipeline.validate import check_document

        try:
            check_document(self.to_dict(), semantic=True)
        except PipelineError as exc:
            return exc.problems
        return []

    def validated(self) -> Pipeline:
        """Return the validated pipeline (settings coerced); raise PipelineError if not valid.

        A pipeline that :meth:`from_dict` or :meth:`load` validated is returned as it is.
        """
        if self._checked:
            return self
        return Pipeline.from_dict(self.to_dict(), validate=True)

    # --- conveniences: writing ---------------------------------------------------------
    def dump(self, path: str | Path, *, overwrite: bool = False) -> Path:
        """Write the pipeline file atomically (temporary sibling, then rename).

        Raises
        ------
        OutputExistsError
            When ``path`` exists and ``overwrite`` is False.
        """
        from napari_fbias.io.atomic import atomic_write_text
        from napari_fbias.io.errors import OutputExistsError

        p = Path(path)
        if p.exists() and not overwrite:
            raise OutputExistsError(f"{p} already exists; refusing to overwrite it")
        atomic_write_text(p, self.dumps())
        return p

    def with_provenance(self, **kwargs: Any) -> Pipeline:
        """Return a copy carrying fresh provenance (see ``make_provenance``)."""
        from napari_fbias.pipeline.provenance import make_provenance

        copy = replace(self, provenance=make_provenance(**kwargs))
        object.__setattr__(copy, "_checked", self._checked)  # provenance is not checked
        return copy

    # --- convenience: running (napari_fbias.pipeline.runner) ---------------------------
    def run(
        self,
        image: Any = None,
        /,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        **more_inputs: Any,
    ) -> Results:
        """Run the pipeline in this process and return its results.

        The same as :func:`napari_fbias.pipeline.runner.run_pipeline` with its defaults.

        Parameters
        ----------
        image : MultiscaleImage, array, (array, axes), Value, str or Path
            Data for the first declared input. A plain array is taken as
            ``yx`` (2D) or ``zyx`` (3D) unless the input declares ``axes``;
            a string or path is opened with ``open_image``.
        progress : callable, optional
            Called as ``progress(step_index, n_steps, step_id)`` before each
            step and ``progress(n_steps, n_steps, "")`` at the end.
        **more_inputs
            Data for the other declared inputs, by name.

        Returns
        -------
        Results
            Output name -> numpy array / DataFrame, plus ``.record``.
        """
        from napari_fbias.pipeline.runner import run_pipeline

        return run_pipeline(self, image, progress=progress, **more_inputs)
