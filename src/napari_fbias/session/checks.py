"""Check a step before it is recorded: known op, fitting settings and inputs.

The recorder refuses a step that could not become a valid pipeline step, so
that an approach can always be exported: nothing is recorded then.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from napari_fbias.ops.registry import CONTEXT_PARAMS, OpSpec, UnknownOpError, get_op
from napari_fbias.pipeline.validate import coerce_param
from napari_fbias.session.errors import InvalidStepError
from napari_fbias.session.secrets import is_secret_name


def find_op(op: str) -> OpSpec:
    """Return the registered operation ``op`` or raise :class:`InvalidStepError`."""
    try:
        return get_op(op)
    except UnknownOpError as exc:
        raise InvalidStepError(f"cannot record step: {exc}") from None


def check_params(spec: OpSpec, params: Mapping[str, Any]) -> dict[str, Any]:
    """Return the complete settings of a step (defaults filled in, plain Python values).

    Raises
    ------
    InvalidStepError
        Listing every setting that is unknown, secret-looking, missing, of the
        wrong type or out of range.
    """
    problems: list[str] = []
    out: dict[str, Any] = {}
    known = {p.name: p for p in spec.params}
    for name, value in params.items():
        if is_secret_name(name):
            problems.append(f"{name!r} looks like a secret; secrets are never recorded")
        elif name in CONTEXT_PARAMS:
            problems.append(f"{name!r} is filled from the image automatically; do not set it")
        elif name not in known:
            problems.append(f"unknown setting {name!r} (known: {', '.join(known) or 'none'})")
        else:
            converted, why = coerce_param(known[name], _plain(value))
            if why is None:
                out[name] = converted
            else:
                problems.append(f"{name!r} {why}")
    for p in spec.params:
        if p.name not in out and p.name not in params:
            if p.required:
                problems.append(f"missing required setting {p.name!r}")
            else:
                out[p.name] = p.default
    if problems:
        raise InvalidStepError(f"cannot record {spec.name}: " + "; ".join(problems))
    return {p.name: out[p.name] for p in spec.params}


def check_inputs(spec: OpSpec, kinds: Mapping[str, str]) -> None:
    """Check the data inputs of a step (``param -> kind of the data it reads``)."""
    problems: list[str] = []
    declared = {i.name: i for i in spec.inputs}
    for name in kinds:
        if name not in declared:
            problems.append(f"unknown input {name!r} (inputs: {', '.join(declared) or 'none'})")
    for i in spec.inputs:
        if i.name not in kinds:
            if i.required:
                problems.append(f"input {i.name!r} is missing")
        elif kinds[i.name] != i.kind:
            problems.append(f"input {i.name!r} needs {i.kind} data, got {kinds[i.name]}")
    if problems:
        raise InvalidStepError(f"cannot record {spec.name}: " + "; ".join(problems))


def _plain(value: Any) -> Any:
    """Return a numpy scalar as the Python value (widgets may hand those over)."""
    item = getattr(value, "item", None)
    return item() if item is not None and getattr(value, "ndim", None) == 0 else value
