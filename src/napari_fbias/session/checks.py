"""Check a step before it is computed and recorded: known op, fitting settings and inputs.

The recorder refuses a step that could not become a valid pipeline step, so
that an approach can always be exported: nothing is recorded then. Settings
are checked by :func:`napari_fbias.pipeline.settings.bind_settings`, the rules
a pipeline file and an exported script follow too, plus the recorder's own:
secret-looking names are refused, and every setting is recorded, defaults
filled in. :func:`prepare_step` is what a step goes through before it is
computed, in napari (``_qt/workspace.py``) and headless (``demo.py``) alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from napari_fbias.ops.registry import OpSpec, UnknownOpError, get_op
from napari_fbias.pipeline.parts import Step
from napari_fbias.pipeline.settings import bind_settings
from napari_fbias.pipeline.values import Value
from napari_fbias.session.errors import InvalidStepError

__all__ = ["PreparedStep", "check_inputs", "check_params", "find_op", "prepare_step"]


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
    clean, problems = bind_settings(spec, params, defaults=True, refuse_secret_names=True)
    if problems:
        listed = "; ".join(p.message for p in problems)
        raise InvalidStepError(f"cannot record {spec.name}: {listed}")
    return clean


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


class PreparedStep(NamedTuple):
    """A step ready to compute with :func:`napari_fbias.pipeline.apply.compute_step`.

    Attributes
    ----------
    spec : OpSpec
        The operation.
    step : Step
        The step (id: the operation's short name), with the complete settings.
    args : list of Value or None
        Its data inputs, in the order of ``spec.inputs`` (None: an optional one left out).
    params : dict
        The settings to record: every setting of the operation, defaults filled in.
    """

    spec: OpSpec
    step: Step
    args: list[Value | None]
    params: dict[str, Any]


def prepare_step(
    op: str, values: Mapping[str, Value | None], params: Mapping[str, Any]
) -> PreparedStep:
    """Check a step as the recorder will, and make it ready to compute.

    Parameters
    ----------
    op : str
        Registry name of the operation (``"segment.nuclei"``).
    values : mapping of str to Value or None
        The operation's data parameter -> the data it reads (None or absent:
        an optional input left out).
    params : mapping
        Settings; missing ones take the operation's defaults.

    Returns
    -------
    PreparedStep
        ``(spec, step, args, params)``: the first three are what
        :func:`~napari_fbias.pipeline.apply.compute_step` takes, ``params`` the
        settings to record.

    Raises
    ------
    InvalidStepError
        An unknown operation, an unknown, missing or unfitting input, or a
        setting :func:`check_params` refuses; nothing is computed then.
    """
    spec = find_op(op)
    given = {name: v for name, v in values.items() if v is not None}
    check_inputs(spec, {name: v.kind for name, v in given.items()})
    clean = check_params(spec, params)
    step = Step(id=op.rsplit(".", 1)[-1], op=op, params=clean)
    return PreparedStep(spec, step, [given.get(i.name) for i in spec.inputs], clean)
