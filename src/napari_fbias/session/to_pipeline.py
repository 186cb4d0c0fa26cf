"""Turn an approach of a session into a pipeline that re-runs it.

:func:`approach_to_pipeline` takes the steps of one approach (plus any step
of another approach they read), in dependency order, and builds a valid
:class:`~napari_fbias.pipeline.model.Pipeline`:

* **inputs** are the images the steps read, named ``image``, ``image_2``...
  (``labels``... for label images) in order of first use. When every read of
  an image took the same index along ``t``/``c``/``z`` (e.g. channel 0), that
  index becomes the input's selection (``{kind: image, channel: 0}``); when
  different reads took different indices (nuclei from channel 0, cells from
  channel 1), the input is the whole image and each read becomes explicit
  ``preprocess.select`` steps (``image_c0``, ``image_c1``);
* **steps** keep their recorded ids, ops and complete settings;
* **outputs** are the end results: every step no other step reads, named
  after the layer it produced, plus the labels a final measurement measured;
* **provenance** says which session and approach, and who.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from napari_fbias.ops.registry import get_op
from napari_fbias.session import graph
from napari_fbias.session.errors import SessionError
from napari_fbias.session.events import order_steps
from napari_fbias.session.model import RecordedStep, Session, StepInput
from napari_fbias.session.store import slugify

if TYPE_CHECKING:
    from napari_fbias.pipeline.model import Pipeline

#: Pipeline input keys for an index along each axis.
SELECT_KEYS = {"c": "channel", "t": "t", "z": "z"}
SELECT_OP = "preprocess.select"
_RESERVED_OUTPUTS = {"result", "run"}


def approach_to_pipeline(
    session: Session, approach_key: str, *, name: str | None = None
) -> Pipeline:
    """Build the (validated) pipeline that re-runs approach ``approach_key``.

    Parameters
    ----------
    session : Session
        The session record.
    approach_key : str
        ``"A"``, ``"B"``...
    name : str, optional
        Pipeline name; by default from the session and approach titles.

    Raises
    ------
    SessionError
        When the approach has no steps, or a read cannot be expressed.
    PipelineError
        Should the result not validate (a bug worth reporting).
    """
    from napari_fbias.pipeline.model import Pipeline

    doc = approach_to_pipeline_dict(session, approach_key, name=name)
    return Pipeline.from_dict(doc, source=f"session {session.id[:8]} approach {approach_key}")


def approach_to_pipeline_dict(
    session: Session, approach_key: str, *, name: str | None = None
) -> dict[str, Any]:
    """Return the pipeline document of an approach as plain data (no validation)."""
    from napari_fbias.pipeline.model import SCHEMA_KEY, SCHEMA_VERSION
    from napari_fbias.pipeline.provenance import make_provenance

    approach = session.approach(approach_key)
    if not approach.steps:
        raise SessionError(f"approach {approach_key} has no steps yet: nothing to export")
    own = {s.id for s in approach.steps}
    wanted = own | graph.ancestors(session, own)
    steps = order_steps(tuple(s for _, s in session.all_steps() if s.id in wanted))
    builder = _Builder(session, steps)
    out_steps: list[dict[str, Any]] = []
    for st in steps:
        refs = {k: builder.ref(st.id, v) for k, v in st.inputs.items()}
        out_steps += builder.take_select_steps()  # right before the step reading them
        out_steps.append({"id": st.id, "op": st.op, "inputs": refs, "params": dict(st.params)})
    title = approach.title or f"approach {approach.key}"
    return {
        SCHEMA_KEY: SCHEMA_VERSION,
        "name": name or slugify(f"{session.title or 'session'}-{title}", max_len=64),
        "description": _description(session, approach.key),
        "inputs": builder.inputs,
        "steps": out_steps,
        "outputs": _outputs(steps),
        "provenance": make_provenance(
            author=approach.analyst or None,
            source={
                "session": session.id,
                "session_title": session.title,
                "approach": approach.key,
                "approach_title": approach.title,
            },
        ),
    }


class _Builder:
    """Names pipeline inputs and selection steps for the reads of the steps."""

    def __init__(self, session: Session, steps: tuple[RecordedStep, ...]) -> None:
        self.session = session
        self.taken = {st.id for st in steps}
        self.inputs: dict[str, dict[str, Any]] = {}
        self._pending: list[dict[str, Any]] = []
        self._input_of: dict[str, str] = {}
        self._made: dict[tuple[str, tuple[tuple[str, int], ...]], str] = {}
        #: image name -> the distinct selections it is read with, in order of first use
        self._selections: dict[str, list[tuple[tuple[str, int], ...]]] = {}
        for st in steps:
            for i in st.inputs.values():
                if i.image is not None:
                    sels = self._selections.setdefault(i.image, [])
                    if tuple(i.select.items()) not in sels:
                        sels.append(tuple(i.select.items()))

    def take_select_steps(self) -> list[dict[str, Any]]:
        """Return the selection steps made since the last call."""
        out, self._pending = self._pending, []
        return out

    def ref(self, step_id: str, i: StepInput) -> str:
        """Return the pipeline input name or step id that a recorded read becomes."""
        if i.step is not None:
            found = self.session.find_step(i.step)
            kind = get_op(found[1].op).output if found else "image"
            return self._selected(i.step, tuple(i.select.items()), kind)
        image = self.session.image(i.image)  # type: ignore[arg-type]
        if image is None:
            raise SessionError(f"step {step_id!r} reads image {i.image!r}, which is not recorded")
        sels = self._selections[image.name]
        name = self._input_of.get(image.name)
        if name is None:
            name = self._free(image.kind)
            self._input_of[image.name] = name
            decl: dict[str, Any] = {"kind": image.kind}
            if len(sels) == 1:
                decl.update({SELECT_KEYS[a]: n for a, n in sels[0]})
            self.inputs[name] = decl
        if len(sels) == 1:
            return name
        return self._selected(name, tuple(i.select.items()), image.kind)

    def _selected(self, source: str, sel: tuple[tuple[str, int], ...], kind: str) -> str:
        """Id of the chain of ``preprocess.select`` steps taking ``sel`` of ``source``."""
        current = source
        for n in range(1, len(sel) + 1):
            part = sel[:n]
            if (source, part) in self._made:
                current = self._made[(source, part)]
                continue
            if get_op(SELECT_OP).inputs[0].kind != kind:
                raise SessionError(
                    f"{source!r} ({kind}) is read at different indices; only images can be "
                    "selected by a pipeline step"
                )
            axis, index = part[-1]
            sid = self._free(f"{source}_{axis}{index}")
            self._pending.append(
                {
                    "id": sid,
                    "op": SELECT_OP,
                    "inputs": {"image": current},
                    "params": {"axis": axis, "index": index},
                }
            )
            self._made[(source, part)] = sid
            current = sid
        return current

    def _free(self, base: str) -> str:
        out, n = base, 2
        while out in self.taken:
            out, n = f"{base}_{n}", n + 1
        self.taken.add(out)
        return out


def _outputs(steps: tuple[RecordedStep, ...]) -> dict[str, dict[str, str]]:
    read = {r for st in steps for r in st.reads_steps()}
    by_id = {st.id: st for st in steps}
    chosen: list[RecordedStep] = []
    for st in steps:
        if st.id in read:
            continue
        if get_op(st.op).output == "table":  # keep the labels it measured too
            chosen += [by_id[r] for r in sorted(st.reads_steps()) if r in by_id]
        chosen.append(st)
    out: dict[str, dict[str, str]] = {}
    lower: set[str] = set()
    for sid in dict.fromkeys(st.id for st in chosen):
        st = by_id[sid]
        base = _output_name(st.output_layer or "") or st.id
        if base.lower() in _RESERVED_OUTPUTS:
            base = f"{base}_{st.id}"
        name, n = base, 2
        while name.lower() in lower:
            name, n = f"{base}_{n}", n + 1
        lower.add(name.lower())
        out[name] = {"from": st.id}
    return out


def _output_name(layer: str) -> str:
    """Return a layer name made safe as a pipeline output (file) name."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", layer).replace("..", "_")
    return name.strip("_.-")[:64]


def _description(session: Session, key: str) -> str:
    a = session.approach(key)
    lines = [
        f"Approach {a.key}"
        + (f" ({a.title})" if a.title else "")
        + (f" by {a.analyst}" if a.analyst else "")
        + f", open-desk session {session.title or session.id[:8]!r} of {session.created[:10]}."
    ]
    if session.question:
        lines.append(f"Question: {session.question}")
    if a.notes:
        lines.append(f"Notes: {a.notes}")
    if a.result:
        lines.append("Result: " + ", ".join(f"{k}={v}" for k, v in a.result.items()))
    return "\n".join(lines)
