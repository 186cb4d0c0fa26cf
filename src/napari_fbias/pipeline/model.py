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
callable. :meth:`Pipeline.load` reads a file with a bounded safe YAML loader
and validates everything (see :mod:`napari_fbias.pipeline.validate`) before
anything runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from napari_fbias.pipeline.errors import Problem
    from napari_fbias.pipeline.runner import Results

#: The pipeline file schema this version reads and writes.
SCHEMA_VERSION = 1
#: Key holding the schema version at the top of a pipeline file.
SCHEMA_KEY = "fbias_pipeline"


class FrozenMap(Mapping[str, Any]):
    """A small immutable, hashable mapping (keeps insertion order)."""

    __slots__ = ("_d",)

    def __init__(self, data: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()) -> None:
        self._d = dict(data)

    def __getitem__(self, key: str) -> Any:
        return self._d[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __hash__(self) -> int:
        return hash(tuple(self._d.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._d) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"FrozenMap({self._d!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (self._d,))


def freeze(value: Any) -> Any:
    """Return an immutable copy of plain data (lists -> tuples, dicts -> FrozenMap)."""
    if isinstance(value, Mapping):
        return FrozenMap({str(k): freeze(v) for k, v in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(v) for v in value)
    return value


def thaw(value: Any) -> Any:
    """Inverse of :func:`freeze`: plain, YAML/JSON-safe data (tuples -> lists)."""
    if isinstance(value, Mapping):
        return {str(k): thaw(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(v) for v in value]
    return value


@dataclass(frozen=True)
class InputDecl:
    """A named input of the pipeline and the part of it that is used.

    Parameters
    ----------
    kind : str
        ``"image"`` or ``"labels"``.
    channel, t, z : int or None
        Index to select along the ``c``, ``t`` or ``z`` axis before the steps
        run (that axis is then dropped). None keeps the whole axis.
    axes : str or None
        Axes to assume for plain arrays (e.g. a TIFF without metadata), such
        as ``"tyx"``. For images that carry axes it must match them.
    """

    kind: str = "image"
    channel: int | None = None
    t: int | None = None
    z: int | None = None
    axes: str | None = None

    def selection(self) -> dict[str, int]:
        """Axis name -> index of the selected planes (``c``, ``t``, ``z``)."""
        sel = {"t": self.t, "c": self.channel, "z": self.z}
        return {a: i for a, i in sel.items() if i is not None}

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, without unset fields."""
        d: dict[str, Any] = {"kind": self.kind}
        for key in ("channel", "t", "z", "axes"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


@dataclass(frozen=True)
class Step:
    """One operation applied to named data.

    Parameters
    ----------
    id : str
        Unique name of the step (its result is referred to by this id).
    op : str
        Registry name of the operation (``"segment.threshold"``).
    inputs : mapping of str to str
        The op's data parameter -> a pipeline input name or an earlier step id.
    params : mapping of str to object
        The op's settings (plain values). Unset settings use the op's defaults.
    """

    id: str
    op: str
    inputs: Mapping[str, str] = field(default_factory=FrozenMap)
    params: Mapping[str, Any] = field(default_factory=FrozenMap)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inputs", freeze(self.inputs))
        object.__setattr__(self, "params", freeze(self.params))

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as written in the pipeline file."""
        return {
            "id": self.id,
            "op": self.op,
            "inputs": thaw(self.inputs),
            "params": thaw(self.params),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Step:
        """Inverse of :meth:`to_dict` (no validation)."""
        return cls(
            id=d["id"], op=d["op"], inputs=d.get("inputs") or {}, params=d.get("params") or {}
        )


@dataclass(frozen=True)
class OutputDecl:
    """A named result of the pipeline: the value of step (or input) ``source``."""

    source: str

    def to_dict(self) -> dict[str, Any]:
        """Plain dict, as written in the pipeline file (``{from: ...}``)."""
        return {"from": self.source}


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
    """

    name: str
    inputs: Mapping[str, InputDecl]
    steps: tuple[Step, ...]
    outputs: Mapping[str, OutputDecl]
    description: str = ""
    provenance: Mapping[str, Any] = field(default_factory=FrozenMap)

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

        return check_document(d, source=source, semantic=validate)

    @classmethod
    def load(cls, path: str | Path, *, validate: bool = True) -> Pipeline:
        """Read and validate a pipeline file (bounded safe YAML; see :meth:`from_dict`)."""
        from napari_fbias.pipeline.yaml_safe import load_file

        return cls.from_dict(load_file(path), source=str(path), validate=validate)

    @classmethod
    def loads(cls, text: str, *, source: str = "", validate: bool = True) -> Pipeline:
        """Parse and validate pipeline YAML text."""
        from napari_fbias.pipeline.yaml_safe import loads

        return cls.from_dict(loads(text, source), source=source, validate=validate)

    def dumps(self) -> str:
        """Return the pipeline as YAML text."""
        from napari_fbias.pipeline.yaml_safe import dumps

        return dumps(self.to_dict())

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

    # --- identity ----------------------------------------------------------------
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

    # --- validation ----------------------------------------------------------------
    def problems(self) -> list[Problem]:
        """Everything wrong with this pipeline (empty when it can run)."""
        from napari_fbias.pipeline.errors import PipelineError
        from napari_fbias.pipeline.validate import check_document

        try:
            check_document(self.to_dict(), semantic=True)
        except PipelineError as exc:
            return exc.problems
        return []

    def validated(self) -> Pipeline:
        """Return the validated pipeline (settings coerced); raise PipelineError if not valid."""
        return Pipeline.from_dict(self.to_dict(), validate=True)

    # --- helpers -------------------------------------------------------------------
    def step(self, step_id: str) -> Step:
        """Return the step called ``step_id`` (KeyError if none)."""
        for s in self.steps:
            if s.id == step_id:
                return s
        raise KeyError(step_id)

    def with_provenance(self, **kwargs: Any) -> Pipeline:
        """Return a copy carrying fresh provenance (see ``make_provenance``)."""
        from dataclasses import replace

        from napari_fbias.pipeline.provenance import make_provenance

        return replace(self, provenance=make_provenance(**kwargs))

    def run(
        self,
        image: Any = None,
        /,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        **more_inputs: Any,
    ) -> Results:
        """Run the pipeline in this process and return its results.

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
