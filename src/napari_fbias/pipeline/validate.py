"""Check a pipeline document completely before anything runs.

:func:`check_document` looks at everything (structure, schema version,
operations, data inputs and their kinds, settings with their types and
ranges, duplicate ids, cycles, unused steps, output names) and raises one
:class:`PipelineError` listing *all* problems, each with its step id.

Settings are checked by :func:`napari_fbias.pipeline.settings.bind_settings`,
the rules every caller shares (types, ranges, choices, unknown, missing and
context settings). This module builds no :class:`~.model.Pipeline`: it
returns the checked parts, which ``Pipeline.from_dict`` assembles.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from napari_fbias.pipeline.errors import PipelineError, Problem
from napari_fbias.pipeline.parts import (
    SCHEMA_KEY,
    SCHEMA_VERSION,
    InputDecl,
    OutputDecl,
    PipelineLike,
    Step,
)
from napari_fbias.pipeline.settings import bind_settings, coerce_param, suggest, type_name

__all__ = ["check_document", "check_name", "coerce_param", "topological_order"]

TOP_KEYS = (SCHEMA_KEY, "name", "description", "inputs", "steps", "outputs", "provenance")
STEP_KEYS = ("id", "op", "inputs", "params")
INPUT_KEYS = ("kind", "channel", "t", "z", "axes")
INPUT_KINDS = ("image", "labels")
#: Names that would collide with keyword arguments of ``Pipeline.run`` or with files we write.
RESERVED_INPUT_NAMES = frozenset({"progress"})
RESERVED_OUTPUT_NAMES = frozenset({"result", "run"})

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_document(d: Any, *, source: str = "", semantic: bool = True) -> dict[str, Any]:
    """Validate a pipeline document and return its checked parts.

    Parameters
    ----------
    d : object
        Parsed YAML (normally a mapping).
    source : str
        File name for messages.
    semantic : bool
        Also check the steps against the operation registry.

    Returns
    -------
    dict
        The keyword arguments of :class:`~napari_fbias.pipeline.model.Pipeline`
        (``name``, ``inputs``, ``steps``, ``outputs``, ``description``,
        ``provenance``), settings converted to the declared types.

    Raises
    ------
    PipelineError
        With every problem found.
    """
    checker = _Checker(source)
    parts = checker.check(d, semantic=semantic)
    if checker.problems or parts is None:
        raise PipelineError(checker.problems or [Problem(None, "", "invalid")], source=source)
    return parts


def check_name(name: Any, what: str) -> str | None:
    """Return why ``name`` is not a safe step/input/output name, or None if it is."""
    if not isinstance(name, str) or not name:
        return f"{what} must be a non-empty text"
    if "/" in name or "\\" in name:
        return f"{what} {name!r} contains a path separator; use a plain name"
    if ".." in name:
        return f"{what} {name!r} contains '..'; use a plain name"
    if name.startswith((".", "~")) or (len(name) > 1 and name[1] == ":"):
        return f"{what} {name!r} looks like a path; use a plain name"
    if not _NAME_RE.match(name):
        return (
            f"{what} {name!r} is not allowed: use up to 64 letters, digits, '_', '-' or '.', "
            "starting with a letter or digit"
        )
    return None


class _Checker:
    """Collects problems while walking a document."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, step_id: str | None, field: str, message: str) -> None:
        self.problems.append(Problem(step_id, field, message))

    # --- top level -------------------------------------------------------------------
    def check(self, d: Any, *, semantic: bool) -> dict[str, Any] | None:
        if not isinstance(d, Mapping):
            self.add(
                None,
                "file",
                "does not hold a napari-fbias pipeline (expected key: value "
                f"lines, got {type_name(d)})",
            )
            return None
        if not self._check_version(d):
            return None
        for key in d:
            if key not in TOP_KEYS:
                self.add(
                    None,
                    str(key),
                    f"unknown key{suggest(str(key), TOP_KEYS)} (known: {', '.join(TOP_KEYS)})",
                )
        name = d.get("name")
        if not isinstance(name, str) or not name.strip():
            self.add(None, "name", "the pipeline needs a name (text)")
            name = ""
        description = d.get("description", "") or ""
        if not isinstance(description, str):
            self.add(None, "description", "must be text")
            description = ""
        provenance = d.get("provenance") or {}
        if not isinstance(provenance, Mapping):
            self.add(None, "provenance", "must be a mapping")
            provenance = {}
        inputs = self._check_inputs(d.get("inputs"))
        steps = self._check_steps(d.get("steps"), inputs)
        outputs = self._check_outputs(d.get("outputs"), inputs, steps)
        if semantic:
            steps = self._check_semantics(inputs, steps, outputs)
            self._check_graph(inputs, steps, outputs)
        if self.problems:
            return None
        return {
            "name": name,
            "inputs": inputs,
            "steps": tuple(steps),
            "outputs": outputs,
            "description": description,
            "provenance": provenance,
        }

    def _check_version(self, d: Mapping[str, Any]) -> bool:
        if SCHEMA_KEY not in d:
            self.add(
                None,
                SCHEMA_KEY,
                f"not a napari-fbias pipeline: the file must start with "
                f"'{SCHEMA_KEY}: {SCHEMA_VERSION}'",
            )
            return True
        version = d[SCHEMA_KEY]
        if isinstance(version, bool) or not isinstance(version, int):
            self.add(None, SCHEMA_KEY, f"schema version must be a whole number, got {version!r}")
            return True
        if version > SCHEMA_VERSION:
            self.add(
                None,
                SCHEMA_KEY,
                f"written by a newer napari-fbias (schema {version}); this "
                f"one reads schema {SCHEMA_VERSION}; upgrade napari-fbias to run it",
            )
            return False
        if version < 1:
            self.add(None, SCHEMA_KEY, f"unknown schema version {version}")
            return False
        return True

    def _check_inputs(self, raw: Any) -> dict[str, InputDecl]:
        out: dict[str, InputDecl] = {}
        if raw is None or (isinstance(raw, Mapping) and not raw):
            self.add(
                None, "inputs", "the pipeline declares no inputs (e.g. 'image: {kind: image}')"
            )
            return out
        if not isinstance(raw, Mapping):
            self.add(None, "inputs", "must map input names to {kind: image} declarations")
            return out
        for name, decl in raw.items():
            where = f"inputs.{name}"
            why = check_name(name, "input name")
            if why is None and name in RESERVED_INPUT_NAMES:
                why = f"input name {name!r} is reserved; choose another"
            if why:
                self.add(None, where, why)
                continue
            if isinstance(decl, str):
                decl = {"kind": decl}
            if decl is None:
                decl = {}
            if not isinstance(decl, Mapping):
                self.add(None, where, "must be a mapping such as {kind: image, channel: 0}")
                continue
            ok = True
            for key in decl:
                if key not in INPUT_KEYS:
                    self.add(
                        None,
                        f"{where}.{key}",
                        f"unknown key{suggest(str(key), INPUT_KEYS)}"
                        f" (known: {', '.join(INPUT_KEYS)})",
                    )
                    ok = False
            kind = decl.get("kind", "image")
            if kind not in INPUT_KINDS:
                self.add(
                    None,
                    f"{where}.kind",
                    f"{kind!r} is not an input kind; use {' or '.join(INPUT_KINDS)}",
                )
                ok = False
            for key in ("channel", "t", "z"):
                value = decl.get(key)
                if value is not None and (
                    isinstance(value, bool) or not isinstance(value, int) or value < 0
                ):
                    self.add(None, f"{where}.{key}", f"must be an index (0, 1, ...), got {value!r}")
                    ok = False
            axes = decl.get("axes")
            if axes is not None:
                ok = self._check_input_axes(where, axes, decl) and ok
            if ok:
                out[str(name)] = InputDecl(
                    kind=kind,
                    channel=decl.get("channel"),
                    t=decl.get("t"),
                    z=decl.get("z"),
                    axes=axes,
                )
        return out

    def _check_input_axes(self, where: str, axes: Any, decl: Mapping[str, Any]) -> bool:
        from napari_fbias.io.errors import UnsupportedAxesError
        from napari_fbias.io.image import validate_axes

        if not isinstance(axes, str):
            self.add(None, f"{where}.axes", f"must be text such as 'tyx', got {axes!r}")
            return False
        try:
            validate_axes(tuple(axes))
        except UnsupportedAxesError as exc:
            self.add(None, f"{where}.axes", str(exc))
            return False
        ok = True
        for key, axis in (("channel", "c"), ("t", "t"), ("z", "z")):
            if decl.get(key) is not None and axis not in axes:
                self.add(
                    None,
                    f"{where}.{key}",
                    f"selects along {axis!r} but axes {axes!r} have no such axis",
                )
                ok = False
        return ok

    def _check_steps(self, raw: Any, inputs: Mapping[str, InputDecl]) -> list[Step]:
        steps: list[Step] = []
        if not isinstance(raw, list) or not raw:
            self.add(
                None,
                "steps",
                "the pipeline needs a list of steps "
                "(- id: ..., op: ..., inputs: {...}, params: {...})",
            )
            return steps
        seen: set[str] = set()
        for i, item in enumerate(raw):
            label = f"steps[{i}]"
            if not isinstance(item, Mapping):
                self.add(None, label, "each step must be a mapping with id, op, inputs, params")
                continue
            sid = item.get("id")
            why = check_name(sid, "step id")
            if why:
                self.add(None, f"{label}.id", why)
                continue
            ok = True
            if sid in seen:
                self.add(sid, "id", "duplicate step id; every step needs its own id")
                ok = False
            elif sid in inputs:
                self.add(sid, "id", "a step id must differ from the input names")
                ok = False
            seen.add(sid)
            for key in item:
                if key not in STEP_KEYS:
                    self.add(
                        sid,
                        str(key),
                        f"unknown key{suggest(str(key), STEP_KEYS)} "
                        f"(known: {', '.join(STEP_KEYS)})",
                    )
                    ok = False
            op = item.get("op")
            if not isinstance(op, str) or not op:
                self.add(sid, "op", "needs an operation name such as 'segment.threshold'")
                ok = False
            step_inputs = item.get("inputs") or {}
            if not isinstance(step_inputs, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in step_inputs.items()
            ):
                self.add(
                    sid,
                    "inputs",
                    "must map the op's data parameters to input names or "
                    "step ids, e.g. {image: smooth}",
                )
                ok = False
            params = item.get("params") or {}
            if not isinstance(params, Mapping):
                self.add(sid, "params", "must be a mapping of setting names to values")
                ok = False
            if ok:
                steps.append(Step(id=sid, op=op, inputs=step_inputs, params=params))
        return steps

    def _check_outputs(
        self, raw: Any, inputs: Mapping[str, InputDecl], steps: list[Step]
    ) -> dict[str, OutputDecl]:
        out: dict[str, OutputDecl] = {}
        if not isinstance(raw, Mapping) or not raw:
            self.add(
                None,
                "outputs",
                "the pipeline needs at least one output, e.g. 'nuclei: {from: <step id>}'",
            )
            return out
        known = {s.id for s in steps}
        lower: dict[str, str] = {}
        for name, decl in raw.items():
            where = f"outputs.{name}"
            why = check_name(name, "output name")
            if why is None and str(name).lower() in RESERVED_OUTPUT_NAMES:
                why = f"output name {name!r} is reserved for files we write; choose another"
            if why:
                self.add(None, where, why)
                continue
            if name.lower() in lower:
                self.add(
                    None,
                    where,
                    f"differs from output {lower[name.lower()]!r} only by "
                    "upper/lower case (the files would collide)",
                )
                continue
            lower[name.lower()] = name
            ref = decl.get("from") if isinstance(decl, Mapping) else decl
            if isinstance(decl, Mapping) and set(decl) - {"from"}:
                extra = ", ".join(sorted(str(k) for k in set(decl) - {"from"}))
                self.add(None, where, f"unknown key(s) {extra}; an output is {{from: <step id>}}")
                continue
            if not isinstance(ref, str):
                self.add(None, where, "must be {from: <step id>}")
                continue
            if ref not in known and ref not in inputs:
                self.add(
                    None, f"{where}.from", f"{ref!r} is not a step id{suggest(ref, sorted(known))}"
                )
                continue
            out[name] = OutputDecl(ref)
        return out

    # --- against the registry ----------------------------------------------------------
    def _check_semantics(
        self,
        inputs: Mapping[str, InputDecl],
        steps: list[Step],
        outputs: Mapping[str, OutputDecl],
    ) -> list[Step]:
        from napari_fbias.ops.registry import UnknownOpError, get_op

        kinds: dict[str, str | None] = {name: decl.kind for name, decl in inputs.items()}
        specs: dict[str, Any] = {}
        for step in steps:
            try:
                specs[step.id] = get_op(step.op)
                kinds[step.id] = specs[step.id].output
            except UnknownOpError as exc:
                self.add(step.id, "op", str(exc))
                kinds[step.id] = None
        checked: list[Step] = []
        for step in steps:
            spec = specs.get(step.id)
            if spec is None:
                checked.append(step)
                continue
            by_name = {i.name: i for i in spec.inputs}
            for pname, ref in step.inputs.items():
                if pname not in by_name:
                    names = ", ".join(by_name) or "none"
                    self.add(
                        step.id,
                        f"inputs.{pname}",
                        f"{step.op} has no data input {pname!r}"
                        f"{suggest(pname, by_name)} (its data inputs: {names})",
                    )
                    continue
                if ref not in kinds:
                    self.add(
                        step.id,
                        f"inputs.{pname}",
                        f"{ref!r} is neither a pipeline input nor a step id{suggest(ref, kinds)}",
                    )
                    continue
                got = kinds[ref]
                want = by_name[pname].kind
                if got is not None and got != want:
                    self.add(
                        step.id,
                        f"inputs.{pname}",
                        f"{step.op} expects {want} for {pname!r} but {ref!r} gives {got}",
                    )
            for ispec in spec.inputs:
                if ispec.required and ispec.name not in step.inputs:
                    self.add(
                        step.id,
                        f"inputs.{ispec.name}",
                        f"missing data input {ispec.name!r} ({ispec.kind}) of {step.op}",
                    )
            params, problems = bind_settings(spec, step.params)
            for problem in problems:
                self.add(step.id, f"params.{problem.name}", problem.why)
            checked.append(Step(id=step.id, op=step.op, inputs=step.inputs, params=params))
        return checked

    def _check_graph(
        self,
        inputs: Mapping[str, InputDecl],
        steps: list[Step],
        outputs: Mapping[str, OutputDecl],
    ) -> None:
        by_id = {s.id: s for s in steps}
        for cycle in _find_cycles(by_id):
            self.add(
                cycle[0],
                "inputs",
                "steps depend on each other in a loop: " + " -> ".join(cycle + [cycle[0]]),
            )
        needed: set[str] = set()
        stack = [o.source for o in outputs.values()]
        while stack:
            ref = stack.pop()
            if ref in needed:
                continue
            needed.add(ref)
            if ref in by_id:
                stack.extend(by_id[ref].inputs.values())
        if outputs:
            for step in steps:
                if step.id not in needed:
                    self.add(
                        step.id,
                        "",
                        "its result is used by no later step and no output; "
                        "remove the step or add an output {from: " + step.id + "}",
                    )
            for name in inputs:
                used = name in needed or any(name in s.inputs.values() for s in steps)
                if not used:
                    self.add(None, f"inputs.{name}", "is not used by any step")


def _find_cycles(by_id: Mapping[str, Step]) -> list[list[str]]:
    """Return each dependency loop once (as the list of step ids along it).

    Iterative depth-first search: a file may chain thousands of steps, deeper
    than Python's recursion limit.
    """
    state: dict[str, int] = {}
    cycles: list[list[str]] = []
    for root in by_id:
        if root in state:
            continue
        path: list[str] = [root]
        todo = [iter(by_id[root].inputs.values())]
        state[root] = 1
        while todo:
            ref = next(todo[-1], None)
            if ref is None:
                state[path.pop()] = 2
                todo.pop()
            elif ref not in by_id:
                continue
            elif state.get(ref) == 1:
                cycles.append(path[path.index(ref) :])
            elif ref not in state:
                state[ref] = 1
                path.append(ref)
                todo.append(iter(by_id[ref].inputs.values()))
    return cycles


def topological_order(pipeline: PipelineLike) -> list[Step]:
    """Order the steps so that each comes after the steps it reads (file order kept)."""
    by_id = {s.id: s for s in pipeline.steps}
    done: set[str] = set()
    order: list[Step] = []
    remaining = list(pipeline.steps)
    while remaining:
        progressed = False
        for step in list(remaining):
            if all(ref in done or ref not in by_id for ref in step.inputs.values()):
                order.append(step)
                done.add(step.id)
                remaining.remove(step)
                progressed = True
        if not progressed:
            ids = ", ".join(s.id for s in remaining)
            raise PipelineError([Problem(remaining[0].id, "inputs", f"steps {ids} form a loop")])
    return order
