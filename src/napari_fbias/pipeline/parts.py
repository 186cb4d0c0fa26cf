"""The parts of a pipeline as immutable values: its inputs, steps and outputs.

Pure data: nothing here validates, reads files or runs anything.
:class:`~napari_fbias.pipeline.model.Pipeline` is built of these parts; the
validator (:mod:`.validate`), the single-step path (:mod:`.apply`) and the
runner (:mod:`.runner`) read them without importing the model, so that the
model's conveniences (``Pipeline.load``, ``Pipeline.run``) can call them
without an import circle. :class:`PipelineLike` is what they read of a
whole pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

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


class PipelineLike(Protocol):
    """What the validator and the runner read of a pipeline (a ``Pipeline`` has all of it)."""

    @property
    def name(self) -> str:
        """Short name of the pipeline."""

    @property
    def inputs(self) -> Mapping[str, InputDecl]:
        """Named inputs."""

    @property
    def steps(self) -> tuple[Step, ...]:
        """The steps, in file order."""

    @property
    def outputs(self) -> Mapping[str, OutputDecl]:
        """Named results."""

    def sha256(self) -> str:
        """SHA-256 of the canonical content (provenance excluded)."""

    def validated(self) -> PipelineLike:
        """Return the validated pipeline (settings coerced)."""
