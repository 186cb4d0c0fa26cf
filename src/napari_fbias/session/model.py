"""The session record as immutable values.

A :class:`Session` holds who came with which question, the images used
(:class:`ImageRef`), the approaches tried (:class:`Approach`, each a list of
:class:`RecordedStep`), the chosen solution, issues, next steps and a
:class:`TimelineEvent` per thing that happened. Every value converts to and
from a plain, JSON/YAML-safe dict (``to_dict`` / ``from_dict``); nothing here
does I/O. The mutable side is :class:`~napari_fbias.session.recorder.SessionRecorder`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import TYPE_CHECKING, Any

from napari_fbias.session.errors import SessionFormatError
from napari_fbias.session.secrets import sanitize_uri

if TYPE_CHECKING:
    from napari_fbias.io.image import MultiscaleImage

#: Version of the session record schema (journal lines and snapshot).
SCHEMA_VERSION = 1
#: Computed (cached) attributes, all derived from the steps of the approaches: a copy that
#: changes ``approaches`` or ``steps`` must not carry them over (other copies keep them).
_CACHED = ("step_index", "readers", "step_ids")
#: Axes along which a step may have read one index of an image (``select``).
SELECT_AXES = ("t", "c", "z")
_new = object.__new__
_set = object.__setattr__


def evolve(obj: Any, **changes: Any) -> Any:
    """Return a copy of a record value with ``changes`` (a fast ``dataclasses.replace``).

    For the session reducer's hot path (every journal event makes a new
    :class:`Session`): it copies the instance dictionary instead of calling
    ``__init__`` again, which ``dataclasses.replace`` does (measured: three
    times slower when merging thousands of events). It skips
    ``__post_init__``, so use it only for changes whose values are already
    valid (taken from valid records or parsed events). Computed caches
    (``cached_property`` values, all derived from the steps) are dropped when
    ``approaches`` or ``steps`` change, and kept otherwise.
    """
    new = _new(obj.__class__)
    state = obj.__dict__.copy()
    state.update(changes)
    if "approaches" in changes or "steps" in changes:
        for name in _CACHED:
            state.pop(name, None)
    _set(new, "__dict__", state)
    return new


def utc_now() -> str:
    """Return the current time as an ISO 8601 UTC string (microseconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _req(d: Mapping[str, Any], key: str, what: str) -> Any:
    try:
        return d[key]
    except (KeyError, TypeError):
        raise SessionFormatError(f"{what}: missing field {key!r}") from None


def check_select(d: Mapping[str, Any] | None, what: str) -> dict[str, int]:
    """Return a selection (``{"c": 0, ...}``) in t, c, z order; SessionFormatError if invalid."""
    out: dict[str, int] = {}
    for axis, index in (d or {}).items():
        if axis not in SELECT_AXES:
            raise SessionFormatError(f"{what}: cannot select along axis {axis!r} (use t, c or z)")
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise SessionFormatError(f"{what}: index along {axis!r} must be an integer >= 0")
        out[axis] = index
    return {a: out[a] for a in SELECT_AXES if a in out}


@dataclass(frozen=True)
class Person:
    """The user who brought the question: a name and a lab (no contact details)."""

    name: str = ""
    lab: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict."""
        return {"name": self.name, "lab": self.lab}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Person:
        """Inverse of :meth:`to_dict`."""
        return cls(name=str(d.get("name", "")), lab=str(d.get("lab", "")))


@dataclass(frozen=True)
class ImageRef:
    """An image used in the session, by reference (never pixels, never credentials).

    Parameters
    ----------
    name : str
        Unique name of the image within the session.
    source : str
        Path, URL or ``omero://host/Image:ID`` to re-open it; credentials are
        removed on construction.
    checksum : str or None
        ``sha256:<hex>`` of the pixels where known.
    axes : str
        Axis names, e.g. ``"tczyx"``.
    shape : tuple of int
        Full-resolution shape.
    kind : str
        ``"image"`` or ``"labels"``.
    layers : Mapping[str, Mapping[str, int]]
        napari layers showing this image, each with the index it shows along
        ``t``/``c``/``z`` (empty when the layer shows the whole image).
    """

    name: str
    source: str = ""
    checksum: str | None = None
    axes: str = ""
    shape: tuple[int, ...] = ()
    kind: str = "image"
    layers: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", sanitize_uri(self.source))
        object.__setattr__(self, "shape", tuple(int(n) for n in self.shape))

    @classmethod
    def from_image(
        cls, image: MultiscaleImage, *, name: str | None = None, checksum: str | None = None
    ) -> ImageRef:
        """Describe a :class:`~napari_fbias.io.image.MultiscaleImage` (no pixels are read)."""
        return cls(
            name=name or image.name,
            source=image.source,
            checksum=checksum,
            axes="".join(image.axes),
            shape=image.shape,
            kind="labels" if image.is_label else "image",
        )

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict."""
        return {
            "name": self.name,
            "source": self.source,
            "checksum": self.checksum,
            "axes": self.axes,
            "shape": list(self.shape),
            "kind": self.kind,
            "layers": {k: dict(v) for k, v in self.layers.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ImageRef:
        """Inverse of :meth:`to_dict`."""
        name = str(_req(d, "name", "image"))
        what = f"image {name!r}"
        return cls(
            name=name,
            source=str(d.get("source", "")),
            checksum=d.get("checksum"),
            axes=str(d.get("axes", "")),
            shape=tuple(d.get("shape") or ()),
            kind=str(d.get("kind", "image")),
            layers={str(k): check_select(v, what) for k, v in (d.get("layers") or {}).items()},
        )


@dataclass(frozen=True)
class StepInput:
    """What one data input of a step read: an image (maybe one index of it) or a step's output.

    Exactly one of ``image`` and ``step`` is set. ``select`` maps ``t``/``c``/``z``
    to the index read; ``layer`` is the napari layer the widget took it from.
    """

    image: str | None = None
    step: str | None = None
    select: Mapping[str, int] = field(default_factory=dict)
    layer: str = ""

    def __post_init__(self) -> None:
        if (self.image is None) == (self.step is None):
            raise ValueError("a step input reads either an image or a step, not both or neither")

    @property
    def ref(self) -> str:
        """The image name or step id read."""
        return self.image if self.image is not None else self.step  # type: ignore[return-value]

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict: ``{image: name}`` or ``{step: id}``, plus select/layer."""
        d: dict[str, Any] = {"image": self.image} if self.image is not None else {"step": self.step}
        if self.select:
            d["select"] = dict(self.select)
        if self.layer:
            d["layer"] = self.layer
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], what: str = "step input") -> StepInput:
        """Inverse of :meth:`to_dict`."""
        if not isinstance(d, Mapping) or ("image" in d) == ("step" in d):
            raise SessionFormatError(f"{what}: needs exactly one of 'image' or 'step'")
        return cls(
            image=d.get("image"),
            step=d.get("step"),
            select=check_select(d.get("select"), what),
            layer=str(d.get("layer", "")),
        )


@dataclass(frozen=True)
class RecordedStep:
    """One operation applied in an approach: a pipeline step plus how it was recorded.

    Parameters
    ----------
    id : str
        Unique in the session; kept when the step is re-run with new settings.
    op : str
        Name of a registered operation (:func:`napari_fbias.ops.get_op`).
    inputs : Mapping[str, StepInput]
        The op's data parameter -> what it read.
    params : Mapping[str, Any]
        The op's settings (JSON-safe values).
    output_layer : str or None
        napari layer it produced; None once that layer was deleted while
        later steps still depend on this one.
    time : str
        When this version was recorded (UTC ISO).
    stale : bool
        True when a step it depends on was re-run after it: its layer no
        longer matches what the pipeline would compute until it is re-run.
    chosen : Mapping[str, Any]
        What the operation chose for its automatic settings when it ran
        (``{"min_size": 40, "object_diameter": 14.2}``; numbers only), shown
        in the widget and the report. A rerun re-estimates them (the same
        image gives the same values).
    """

    id: str
    op: str
    inputs: Mapping[str, StepInput]
    params: Mapping[str, Any]
    output_layer: str | None = None
    time: str = ""
    stale: bool = False
    chosen: Mapping[str, Any] = field(default_factory=dict, compare=False)

    def reads_steps(self) -> set[str]:
        """Ids of the steps whose outputs this step reads."""
        return {i.step for i in self.inputs.values() if i.step is not None}

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict (``id, op, inputs, params`` first, like a pipeline step)."""
        d: dict[str, Any] = {
            "id": self.id,
            "op": self.op,
            "inputs": {k: v.to_dict() for k, v in self.inputs.items()},
            "params": dict(self.params),
            "output_layer": self.output_layer,
            "time": self.time,
        }
        if self.stale:
            d["stale"] = True
        if self.chosen:
            d["chosen"] = dict(self.chosen)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecordedStep:
        """Inverse of :meth:`to_dict`."""
        sid = str(_req(d, "id", "step"))
        what = f"step {sid!r}"
        return cls(
            id=sid,
            op=str(_req(d, "op", what)),
            inputs={
                str(k): StepInput.from_dict(v, f"{what} input {k!r}")
                for k, v in (d.get("inputs") or {}).items()
            },
            params=dict(d.get("params") or {}),
            output_layer=d.get("output_layer"),
            time=str(d.get("time", "")),
            stale=bool(d.get("stale", False)),
            chosen=chosen_numbers(d.get("chosen")),
        )


def chosen_numbers(value: Any) -> dict[str, Any]:
    """Keep the entries of a recorded ``chosen`` that are numbers (or lists of numbers)."""

    def number(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not isinstance(value, Mapping):
        return {}
    return {
        str(k): v if number(v) else list(v)
        for k, v in value.items()
        if number(v) or (isinstance(v, list) and v and all(number(x) for x in v))
    }


@dataclass(frozen=True)
class Approach:
    """One line of attack (``"A"`` classical, ``"B"`` cellpose...), by one analyst."""

    key: str
    title: str = ""
    analyst: str = ""
    steps: tuple[RecordedStep, ...] = ()
    notes: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)
    created: str = ""
    #: The recording client (napari) that started it, in a session several analysts share.
    client: str = ""

    def step(self, step_id: str) -> RecordedStep | None:
        """Return the step with this id, or None."""
        return next((s for s in self.steps if s.id == step_id), None)

    @cached_property
    def step_ids(self) -> frozenset[str]:
        """Ids of this approach's steps (computed once per approach value)."""
        return frozenset(s.id for s in self.steps)

    def with_step(self, step: RecordedStep) -> Approach:
        """Return a copy with ``step`` appended (its :attr:`step_ids` extended, not rescanned)."""
        new = evolve(self, steps=tuple(self.steps) + (step,))
        new.__dict__["step_ids"] = self.step_ids | {step.id}
        return new

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict."""
        return {
            "key": self.key,
            "title": self.title,
            "analyst": self.analyst,
            "created": self.created,
            "steps": [s.to_dict() for s in self.steps],
            "notes": self.notes,
            "result": dict(self.result),
            **({"client": self.client} if self.client else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Approach:
        """Inverse of :meth:`to_dict`."""
        return cls(
            key=str(_req(d, "key", "approach")),
            title=str(d.get("title", "")),
            analyst=str(d.get("analyst", "")),
            steps=tuple(RecordedStep.from_dict(s) for s in d.get("steps") or ()),
            notes=str(d.get("notes", "")),
            result=dict(d.get("result") or {}),
            created=str(d.get("created", "")),
            client=str(d.get("client", "")),
        )


@dataclass(frozen=True)
class Solution:
    """The solution proposed at the end: which approach, and in words."""

    approach: str | None = None
    text: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict."""
        return {"approach": self.approach, "text": self.text}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Solution:
        """Inverse of :meth:`to_dict`."""
        return cls(approach=d.get("approach"), text=str(d.get("text", "")))


@dataclass(frozen=True)
class TimelineEvent:
    """One thing that happened, when (``kind`` is the journal event name)."""

    time: str
    kind: str
    detail: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain dict."""
        return {"time": self.time, "kind": self.kind, **self.detail}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TimelineEvent:
        """Inverse of :meth:`to_dict`."""
        detail = {k: v for k, v in d.items() if k not in ("time", "kind")}
        return cls(
            time=str(_req(d, "time", "timeline event")), kind=str(d.get("kind", "")), detail=detail
        )


@dataclass(frozen=True)
class Session:
    """Everything recorded during one open desk."""

    id: str
    title: str = ""
    user: Person = field(default_factory=Person)
    question: str = ""
    analysts: tuple[str, ...] = ()
    created: str = ""
    updated: str = ""
    images: tuple[ImageRef, ...] = ()
    approaches: tuple[Approach, ...] = ()
    active: str | None = None
    solution: Solution | None = None
    issues: tuple[str, ...] = ()
    next_steps: tuple[str, ...] = ()
    timeline: tuple[TimelineEvent, ...] = ()
    #: The earlier session this one follows up: ``{"id", "title", "created", "link"}``.
    follows: Mapping[str, str] | None = None

    def approach(self, key: str) -> Approach:
        """Return the approach ``key`` (KeyError naming the known keys)."""
        for a in self.approaches:
            if a.key == key:
                return a
        known = ", ".join(a.key for a in self.approaches) or "none yet"
        raise KeyError(f"no approach {key!r} in this session (approaches: {known})")

    def image(self, name: str) -> ImageRef | None:
        """Return the image called ``name``, or None."""
        return next((i for i in self.images if i.name == name), None)

    def all_steps(self) -> Iterator[tuple[Approach, RecordedStep]]:
        """Yield ``(approach, step)`` for every current step, in order."""
        for a in self.approaches:
            for s in a.steps:
                yield a, s

    @cached_property
    def step_index(self) -> Mapping[str, tuple[Approach, RecordedStep]]:
        """Step id -> ``(approach, step)`` for every current step (computed once)."""
        return {s.id: (a, s) for a, s in self.all_steps()}

    @cached_property
    def readers(self) -> Mapping[str, frozenset[str]]:
        """Step id -> ids of the steps reading its output directly (computed once)."""
        out: dict[str, set[str]] = {sid: set() for sid in self.step_index}
        for _, s in self.all_steps():
            for ref in s.reads_steps():
                out.setdefault(ref, set()).add(s.id)
        return {k: frozenset(v) for k, v in out.items()}

    def find_step(self, step_id: str) -> tuple[Approach, RecordedStep] | None:
        """Return the approach and step with this id, or None."""
        return self.step_index.get(step_id)

    def to_dict(self) -> dict[str, Any]:
        """Return a plain, YAML/JSON-safe dict (the snapshot's content)."""
        return {
            "fbias_session": SCHEMA_VERSION,
            "id": self.id,
            "title": self.title,
            "user": self.user.to_dict(),
            "question": self.question,
            "analysts": list(self.analysts),
            "created": self.created,
            "updated": self.updated,
            "images": [i.to_dict() for i in self.images],
            "approaches": [a.to_dict() for a in self.approaches],
            "active": self.active,
            "solution": self.solution.to_dict() if self.solution else None,
            "issues": list(self.issues),
            "next_steps": list(self.next_steps),
            "timeline": [t.to_dict() for t in self.timeline],
            **({"follows": dict(self.follows)} if self.follows else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Session:
        """Inverse of :meth:`to_dict`; refuses records of a newer schema."""
        if not isinstance(d, Mapping):
            raise SessionFormatError("a session record must be a mapping of fields")
        check_schema(d.get("fbias_session", SCHEMA_VERSION), "session record")
        solution = d.get("solution")
        return cls(
            id=str(_req(d, "id", "session")),
            title=str(d.get("title", "")),
            user=Person.from_dict(d.get("user") or {}),
            question=str(d.get("question", "")),
            analysts=tuple(str(a) for a in d.get("analysts") or ()),
            created=str(d.get("created", "")),
            updated=str(d.get("updated", "")),
            images=tuple(ImageRef.from_dict(i) for i in d.get("images") or ()),
            approaches=tuple(Approach.from_dict(a) for a in d.get("approaches") or ()),
            active=d.get("active"),
            solution=Solution.from_dict(solution) if solution else None,
            issues=tuple(str(i) for i in d.get("issues") or ()),
            next_steps=tuple(str(i) for i in d.get("next_steps") or ()),
            timeline=tuple(TimelineEvent.from_dict(t) for t in d.get("timeline") or ()),
            follows=_follows(d.get("follows")),
        )


def _follows(d: Any) -> dict[str, str] | None:
    """Return the reference to an earlier session (plain strings only), or None."""
    if not isinstance(d, Mapping):
        return None
    return {k: str(d.get(k, "")) for k in ("id", "title", "created", "link")}


def check_schema(version: Any, what: str) -> None:
    """Refuse a record written with an unknown (newer) schema version."""
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise SessionFormatError(f"{what}: schema version {version!r} is not valid")
    if version > SCHEMA_VERSION:
        raise SessionFormatError(
            f"{what} was written by a newer napari-fbias (session schema {version}); "
            f"this one reads schema {SCHEMA_VERSION}; upgrade napari-fbias"
        )
