"""The pipeline file the panel shows: loaded, checked, edited, saved as a new file (no Qt).

:class:`PipelineDocument` holds what the panel shows of a pipeline file: the
pipeline (with the edits made here), every problem that stops it from
running, and the edits (first and last value of each setting). An edit makes
a *new* immutable :class:`~napari_fbias.pipeline.Pipeline`, checked against
the operation's setting and validated again (:func:`with_param`); saving
writes it with provenance naming the original file and the edits, never over
the file it was loaded from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from napari_fbias.ops.registry import UnknownOpError, get_op
from napari_fbias.pipeline.errors import PipelineError, Problem
from napari_fbias.pipeline.model import Pipeline, thaw

__all__ = [
    "PIPELINE_SUFFIX",
    "PipelineDocument",
    "PipelineEditError",
    "problem_lines",
    "read_for_display",
    "with_param",
]

PIPELINE_SUFFIX = ".fbias.yaml"


class PipelineEditError(ValueError):
    """An edit of a setting that the pipeline validator refuses, or a save that is refused."""


def with_param(pipeline: Pipeline, step_id: str, name: str, value: Any) -> Pipeline:
    """Return a new pipeline with setting ``name`` of step ``step_id`` set to ``value``.

    The value is checked against the operation's setting (type, range,
    choices) and the new pipeline validated as a whole.

    Raises
    ------
    PipelineEditError
        Naming the step, the setting and why the value is refused.
    """
    from napari_fbias.pipeline.settings import bind_settings

    try:
        step = pipeline.step(step_id)
    except KeyError:
        raise PipelineEditError(f"the pipeline has no step {step_id!r}") from None
    try:
        op = get_op(step.op)
    except UnknownOpError as exc:
        raise PipelineEditError(f"step {step_id!r}: {exc}") from None
    # the one check of a step's settings (the validator's and the recorder's)
    bound, problems = bind_settings(op, {**step.params, name: value})
    mine = [p for p in problems if p.name == name]
    if mine:
        raise PipelineEditError(f"step {step_id!r}, setting {name!r}: {mine[0].why}")
    converted = bound[name]
    steps = tuple(
        replace(s, params={**s.params, name: converted}) if s.id == step_id else s
        for s in pipeline.steps
    )
    edited = replace(pipeline, steps=steps)
    mine = [p for p in edited.problems() if p.step_id == step_id and p.field == f"params.{name}"]
    if mine:
        raise PipelineEditError("; ".join(str(p) for p in mine))
    return edited


def read_for_display(path: Path) -> Pipeline | None:
    """Read a pipeline file that has problems, as far as it can be shown (None if it cannot).

    The file is parsed with the same bounded safe loader; nothing is run.
    """
    from napari_fbias.pipeline.yaml_safe import load_file

    try:
        return Pipeline.load(path, validate=False)
    except PipelineError:
        pass
    try:
        d = load_file(path)
        return Pipeline(
            name=str(d.get("name", "")),
            inputs=d.get("inputs") or {},
            steps=[s for s in d.get("steps") or () if isinstance(s, Mapping)],
            outputs=d.get("outputs") or {},
            description=str(d.get("description") or ""),
        )
    except (PipelineError, AttributeError, KeyError, TypeError, ValueError):
        return None


def problem_lines(problems: Sequence[Problem]) -> str:
    """Say what stops a pipeline from running, one problem a line."""
    n = len(problems)
    head = f"This pipeline cannot run: {n} problem{'s' if n != 1 else ''} to fix"
    return head + ":\n" + "\n".join(f"\u2022 {p}" for p in problems)


@dataclass
class PipelineDocument:
    """A pipeline file as the panel shows it.

    Attributes
    ----------
    path : Path or None
        The file it was loaded from.
    pipeline : Pipeline or None
        The pipeline with the edits made here (None: nothing loaded, or the
        file cannot be read as a pipeline at all).
    problems : list of Problem
        What stops it from running (empty when it can run).
    loaded_sha : str or None
        Checksum of the pipeline as loaded.
    edits : dict
        ``(step id, setting) -> (value as loaded, value now)``.
    """

    path: Path | None = None
    pipeline: Pipeline | None = None
    problems: list[Problem] = field(default_factory=list)
    loaded_sha: str | None = None
    edits: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> PipelineDocument:
        """Read and validate a pipeline file; a file with problems is read as far as it can be."""
        path = Path(path)
        problems: list[Problem] = []
        try:
            pipeline: Pipeline | None = Pipeline.load(path)
        except PipelineError as exc:
            problems = list(exc.problems)
            pipeline = read_for_display(path)
        sha = pipeline.sha256() if pipeline is not None else None
        return cls(path=path, pipeline=pipeline, problems=problems, loaded_sha=sha)

    @property
    def can_run(self) -> bool:
        """True when a pipeline without problems is loaded."""
        return self.pipeline is not None and not self.problems

    @property
    def edited(self) -> bool:
        """True when settings were changed here since the file was loaded."""
        return self.pipeline is not None and self.pipeline.sha256() != self.loaded_sha

    def summary(self) -> str:
        """One line naming the pipeline (and whether it was edited here)."""
        p = self.pipeline
        if p is None:
            return "No pipeline loaded."
        edited = " (edited)" if self.edited else ""
        text = f"Pipeline {p.name!r}{edited}: {len(p.steps)} steps"
        if p.description:
            text += f" \u2014 {p.description}"
        return text

    def set_param(self, step_id: str, name: str, value: Any) -> Any:
        """Set a setting of a step (a new pipeline, validated again); return the value taken.

        Raises
        ------
        PipelineEditError
            When the value is refused (nothing changes then).
        """
        if self.pipeline is None:
            raise PipelineEditError("no pipeline is loaded")
        old = self.pipeline
        new = with_param(old, step_id, name, value)
        problems = new.problems()
        if not problems:
            new = new.validated()
        taken = new.step(step_id).params.get(name)
        first = self.edits.get((step_id, name), (old.step(step_id).params.get(name), None))[0]
        self.edits[(step_id, name)] = (first, taken)
        self.pipeline, self.problems = new, problems
        return taken

    def to_save(self) -> Pipeline:
        """Return the pipeline as it would be saved (edited: naming the original and the edits)."""
        if self.pipeline is None:
            raise PipelineEditError("no pipeline is loaded")
        if not self.edited:
            return self.pipeline
        from napari_fbias.pipeline.provenance import make_provenance

        author = self.pipeline.provenance.get("author")
        edits = [
            {"step": sid, "setting": name, "from": thaw(a), "to": thaw(b)}
            for (sid, name), (a, b) in self.edits.items()
            if a != b
        ]
        source = {
            "edited_from": {
                "file": self.path.name if self.path is not None else "",
                "sha256": self.loaded_sha,
            },
            "edits": edits,
        }
        return replace(self.pipeline, provenance=make_provenance(author=author, source=source))

    def save_path(self, path: str | Path) -> Path:
        """Return where ``path`` saves the pipeline (a name without ``.yaml`` gets ``.fbias.yaml``).

        Raises
        ------
        PipelineEditError
            When nothing can be saved: no pipeline, problems left, or ``path``
            is the file the pipeline was loaded from (kept as delivered).
        """
        if self.pipeline is None:
            raise PipelineEditError("Load a pipeline first.")
        if self.problems:
            raise PipelineEditError("Not saved: fix the pipeline's problems first.")
        p = Path(path)
        if not p.name.lower().endswith((".yaml", ".yml")):
            p = p.with_name(p.name + PIPELINE_SUFFIX)
        if self.path is not None and p.resolve() == self.path.resolve():
            raise PipelineEditError(
                f"Not saved: {p.name} is the pipeline you loaded; it is kept as delivered. "
                "Choose another name."
            )
        return p
