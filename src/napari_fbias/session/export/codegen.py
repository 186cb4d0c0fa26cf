"""Turn a pipeline into safe, readable Python: one explicit call per step.

Shared by the script (:mod:`.script`) and the notebook (:mod:`.notebook`).
Nothing from the pipeline or the session is pasted into code as is:

* every value is written with :func:`python_literal` (``repr`` of plain
  values only, checked to read back equal with :func:`ast.literal_eval`);
* operation names are looked up in the registry and the function is imported
  from the module that defines it, by its (checked) identifier;
* variable names are made from step ids with :func:`identifier` (letters,
  digits and ``_`` only, never a keyword, builtin or a name the code uses);
* free text (titles, notes, summaries) only goes into comments, one line at
  a time, with line breaks and control characters removed
  (:func:`comment_lines`).
"""

from __future__ import annotations

import ast
import builtins
import importlib
import keyword
import math
import re
import textwrap
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from napari_fbias.session.export.errors import ExportError

#: Names the generated code uses itself (never given to a variable).
RESERVED_NAMES: frozenset[str] = frozenset(
    {
        "run",
        "run_pipeline",
        "results",
        "source",
        "more_inputs",
        "sys",
        "StepRunner",
        "script_main",
        "write_outputs",
        "stem_of",
        "show",
        "operation",
        "folder",
        "INPUT",
        "OUTDIR",
        "PIPELINE_NAME",
        "PIPELINE_SHA256",
        "annotations",
    }
)
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def python_literal(value: Any, what: str = "value") -> str:
    """Return Python source for a plain value (None, bool, int, float, str, tuples of them).

    Lists are written as tuples (settings are immutable). The text is
    checked to read back equal with :func:`ast.literal_eval`.

    Raises
    ------
    ExportError
        For values that are not plain data, or not finite numbers.
    """
    text = _literal(value, what)
    back = ast.literal_eval(text)
    if back != _as_tuples(value) or type(back) is not type(_as_tuples(value)):
        raise ExportError(f"{what}: {value!r} cannot be written as Python code faithfully")
    return text


def _as_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(v) for v in value)
    return value


def _literal(value: Any, what: str) -> str:
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ExportError(f"{what}: {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, (list, tuple)):
        items = [_literal(v, what) for v in value]
        if len(items) == 1:
            return f"({items[0]},)"
        return "(" + ", ".join(items) + ")"
    raise ExportError(f"{what}: a {type(value).__name__} cannot be written into a script")


def clean_text(text: Any) -> str:
    """Return ``text`` on one line: line breaks, tabs and control characters become spaces."""
    out = []
    for ch in str(text):
        cat = unicodedata.category(ch)
        out.append(" " if cat in ("Cc", "Cf", "Zl", "Zp") or ch in "\u2028\u2029\x85" else ch)
    return " ".join("".join(out).split())


def comment_lines(text: Any, *, prefix: str = "# ", width: int = 96) -> list[str]:
    """Return free text as comment lines (each starting with ``prefix``; safe to paste)."""
    lines: list[str] = []
    for para in str(text).splitlines() or [""]:
        para = clean_text(para)
        if not para:
            continue
        wrapped = textwrap.wrap(para, width=width - len(prefix)) or [""]
        lines += [(prefix + w).rstrip() for w in wrapped]
    return lines


def identifier(name: str, taken: Iterable[str] = (), suffix: str = "") -> str:
    """Make a safe, unused Python variable name from ``name``.

    Parameters
    ----------
    name : str
        A step id or input name (anything).
    taken : iterable of str
        Names already in use.
    suffix : str
        Added (``name_suffix``) when the plain name is reserved or taken.
    """
    base = re.sub(r"[^0-9a-zA-Z_]+", "_", clean_text(name)).strip("_").lower() or "value"
    if base[0].isdigit():
        base = f"v_{base}"
    used = set(taken)

    def free(n: str) -> bool:
        return (
            n not in used
            and not keyword.iskeyword(n)
            and not keyword.issoftkeyword(n)
            and n not in RESERVED_NAMES
            and not hasattr(builtins, n)
        )

    if free(base):
        return base
    if suffix:
        base = f"{base}_{suffix}"
        if free(base):
            return base
    n = 2
    while not free(f"{base}_{n}"):
        n += 1
    return f"{base}_{n}"


#: Modules of napari-fbias itself: their operations are reached through the public API.
_OWN_PACKAGE = "napari_fbias."


@dataclass(frozen=True)
class OpImport:
    """An op function for the code: ``alias = operation("segment.nuclei")``.

    Operations of napari-fbias are looked up by their registry name through
    :func:`napari_fbias.api.operation` (delivered code imports no internal
    module); an operation of another package is imported from its module
    (``from module import name [as alias]``).
    """

    module: str
    name: str
    alias: str
    op: str = ""

    @property
    def own(self) -> bool:
        """True for an operation of napari-fbias (looked up through the public API)."""
        return self.module.startswith(_OWN_PACKAGE)

    def line(self) -> str:
        """Return the statement that gives the code the function."""
        if self.own:
            return f"{self.alias} = operation({python_literal(self.op, 'operation name')})"
        tail = "" if self.alias == self.name else f" as {self.alias}"
        return f"from {self.module} import {self.name}{tail}"

    @staticmethod
    def lines(imports: Sequence[OpImport]) -> list[str]:
        """Return the statements for ``imports``: other packages' imports, then lookups."""
        foreign = sorted(i.line() for i in imports if not i.own)
        return foreign + sorted(i.line() for i in imports if i.own)


@dataclass(frozen=True)
class StepCode:
    """One step as code: comment lines, the call, and what it makes."""

    step_id: str
    op: str
    title: str
    summary: str
    variable: str
    kind: str
    comments: tuple[str, ...]
    call: str
    settings: tuple[tuple[str, Any], ...]
    inputs: tuple[tuple[str, str], ...]
    background: str | None = None


@dataclass(frozen=True)
class InputCode:
    """One pipeline input as code."""

    name: str
    variable: str
    kind: str
    comment: str
    call_args: str


@dataclass
class PipelineCode:
    """A whole pipeline as code pieces (see :func:`pipeline_code`)."""

    name: str
    sha256: str
    imports: list[OpImport] = field(default_factory=list)
    inputs: list[InputCode] = field(default_factory=list)
    steps: list[StepCode] = field(default_factory=list)
    outputs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def first_input(self) -> InputCode:
        """The input that the positional INPUT argument feeds."""
        return self.inputs[0]

    def results_call(self, indent: str = "") -> str:
        """``run.results({...})`` over the outputs, one per line."""
        lines = ["run.results("]
        lines.append(indent + "    {")
        for name, var in self.outputs:
            lines.append(f"{indent}        {python_literal(name, 'output name')}: {var},")
        lines.append(indent + "    }")
        lines.append(indent + ")")
        return "\n".join(lines)


def _import_of(spec: Any) -> tuple[str, str]:
    func = spec.func
    module, name = getattr(func, "__module__", ""), getattr(func, "__name__", "")
    if not (isinstance(module, str) and _MODULE.match(module) and str(name).isidentifier()):
        raise ExportError(f"operation {spec.name!r} has no importable function")
    try:
        found = getattr(importlib.import_module(module), name, None)
    except ImportError:
        found = None
    if found is not func:
        raise ExportError(
            f"operation {spec.name!r} cannot be written into a script: its function is not "
            f"importable as {module}.{name}"
        )
    return module, name


def _input_comment(name: str, decl: Any) -> str:
    sel = {"channel": decl.channel, "time point": decl.t, "plane": decl.z}
    parts = [f"{k} {v}" for k, v in sel.items() if v is not None]
    what = f"{decl.kind}, " + (", ".join(parts) + " only" if parts else "the whole image")
    return f"Input {name!r} ({what})."


def pipeline_code(pipeline: Any) -> PipelineCode:
    """Plan the code of a validated pipeline: imports, inputs, one call per step, outputs.

    Raises
    ------
    ExportError
        For an unknown operation, an op function that cannot be imported, or
        a setting that cannot be written as a plain Python value.
    """
    from napari_fbias.ops.registry import UnknownOpError, get_op
    from napari_fbias.pipeline.validate import topological_order

    code = PipelineCode(name=str(pipeline.name), sha256=pipeline.sha256())
    taken: set[str] = set()
    by_func: dict[tuple[str, str], str] = {}
    specs = {}
    for step in pipeline.steps:
        try:
            spec = get_op(step.op)
        except UnknownOpError as exc:
            raise ExportError(f"step {step.id!r}: {exc}") from None
        specs[step.id] = spec
        module, name = _import_of(spec)
        if (module, name) not in by_func:
            alias = name
            if alias in taken or alias in RESERVED_NAMES or keyword.iskeyword(alias):
                alias = identifier(f"{module.rsplit('.', 1)[-1]}_{name}", taken)
            taken.add(alias)
            by_func[(module, name)] = alias
            code.imports.append(OpImport(module, name, alias, spec.name))
    var_of: dict[str, str] = {}
    kind_of: dict[str, str] = {}
    for name, decl in pipeline.inputs.items():
        var = identifier(name, taken, "input")
        taken.add(var)
        var_of[name] = var
        kind_of[name] = decl.kind
        args = [python_literal(name, "input name"), f"kind={python_literal(decl.kind)}"]
        for key in ("channel", "t", "z", "axes"):
            value = getattr(decl, key)
            if value is not None:
                args.append(f"{key}={python_literal(value, f'input {name!r} {key}')}")
        comment = _input_comment(name, decl)
        code.inputs.append(InputCode(name, var, decl.kind, comment, ", ".join(args)))
    image_source: dict[str, str | None] = {
        n: (n if d.kind == "image" else None) for n, d in pipeline.inputs.items()
    }
    order = topological_order(pipeline)
    for i, step in enumerate(order, start=1):
        spec = specs[step.id]
        var = identifier(step.id, taken, spec.output)
        taken.add(var)
        args = []
        fed: list[tuple[str, str]] = []
        last = max((k for k, d in enumerate(spec.inputs) if d.name in step.inputs), default=-1)
        for decl in spec.inputs[: last + 1]:
            ref = step.inputs.get(decl.name)
            args.append(var_of[ref] if ref is not None else "None")
            if ref is not None:
                fed.append((decl.name, ref))
        settings = {**spec.defaults(), **dict(step.params)}
        ordered = [(p.name, settings[p.name]) for p in spec.params if p.name in settings]
        kw = [f"{k}={python_literal(v, f'step {step.id!r} setting {k!r}')}" for k, v in ordered]
        for k, _ in ordered:
            if not k.isidentifier() or keyword.iskeyword(k):
                raise ExportError(f"step {step.id!r}: setting name {k!r} is not a Python name")
        alias = by_func[_import_of(spec)]
        parts = [python_literal(step.id, "step id"), alias, *args, *kw]
        call = "run.step(\n    " + ",\n    ".join(parts) + ",\n)"
        comments = [
            *comment_lines(f"Step {i} of {len(order)}, {step.id!r}: {spec.title} ({spec.name})."),
            *comment_lines(spec.summary),
        ]
        background = None
        for _, ref in fed:
            background = image_source.get(ref)
            if background is not None:
                break
        image_source[step.id] = step.id if spec.output == "image" else background
        var_of[step.id] = var
        kind_of[step.id] = spec.output
        code.steps.append(
            StepCode(
                step_id=step.id,
                op=spec.name,
                title=spec.title,
                summary=spec.summary,
                variable=var,
                kind=spec.output,
                comments=tuple(comments),
                call=call,
                settings=tuple(ordered),
                inputs=tuple(fed),
                background=var_of.get(background) if background else None,
            )
        )
    for name, out in pipeline.outputs.items():
        code.outputs.append((name, var_of[out.source]))
    return code


def indent(text: str, prefix: str = "    ") -> str:
    """Indent every non-empty line of ``text``."""
    return textwrap.indent(text, prefix)
