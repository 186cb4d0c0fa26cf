"""Bind and check the settings of one step: the one place every caller goes through.

:func:`bind_settings` is used by the pipeline validator (every step of a
file), the session recorder (a step before it is recorded), the step-by-step
runner of exported scripts and the napari widgets, so a setting is accepted
or refused, and converted, the same way everywhere. Its rules:

* a setting the operation does not have is refused (with the close names);
* ``axes`` and ``spacing`` (:data:`~napari_fbias.ops.registry.CONTEXT_PARAMS`)
  are filled in by the runner and refused when given;
* a value must fit the setting (:func:`coerce_param`): an ``int`` is accepted
  where a ``float`` is expected (and converted), a whole float (``3.0``) where
  an ``int`` is; ``true``/``false`` are never numbers; NaN and infinity are
  refused; ranges (``min``/``max``) are inclusive and apply to each item of a
  tuple; a numpy scalar counts as the Python value it holds;
* a required setting (no default) must be given.

Two rules differ on purpose between callers and are parameters: the recorder
refuses settings whose *name* looks secret (they would be recorded) and
records every setting, defaults filled in; a pipeline file keeps the settings
it names, in its order (its sha256 depends on them).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from napari_fbias.io.credentials import is_secret_name
from napari_fbias.ops.registry import CONTEXT_PARAMS, OpSpec

__all__ = ["SettingProblem", "bind_settings", "coerce_param", "suggest", "type_name"]


def suggest(word: str, options: Iterable[Any]) -> str:
    """Return ``"; did you mean 'a', 'b'?"`` for the options close to ``word`` (or ``""``)."""
    close = difflib.get_close_matches(word, [str(o) for o in options], n=3)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


class SettingProblem(NamedTuple):
    """A setting that does not fit.

    Attributes
    ----------
    name : str
        The setting.
    why : str
        Why, to show after the setting's name or place (``"must be a number, got text 'a'"``).
    message : str
        The same as a sentence of its own, naming the setting.
    """

    name: str
    why: str
    message: str


def bind_settings(
    spec: OpSpec,
    params: Mapping[str, Any],
    *,
    defaults: bool = False,
    refuse_secret_names: bool = False,
) -> tuple[dict[str, Any], list[SettingProblem]]:
    """Check the settings ``params`` of a step of operation ``spec`` and convert them.

    Parameters
    ----------
    spec : OpSpec
        The operation.
    params : mapping
        Setting name -> value, as given (a file, a widget, a script's call).
    defaults : bool
        Return every setting of the operation, in its order, the defaults
        filled in (what the recorder records). Otherwise only the settings
        given, in the order given (what a pipeline file holds).
    refuse_secret_names : bool
        Refuse settings whose name looks secret (``password``, ``token``...;
        :func:`~napari_fbias.io.credentials.is_secret_name`).

    Returns
    -------
    tuple
        ``(settings, problems)``: the converted settings that fit, and one
        :class:`SettingProblem` per setting that does not (none when all is well).
    """
    problems: list[SettingProblem] = []
    out: dict[str, Any] = {}
    names = spec.param_names
    for name, value in params.items():
        if refuse_secret_names and is_secret_name(name):
            why = "looks like a secret; secrets are never recorded"
            problems.append(SettingProblem(name, why, f"{name!r} {why}"))
        elif name in CONTEXT_PARAMS:
            why = "is filled in by the runner from the input image automatically; do not set it"
            problems.append(SettingProblem(name, why, f"{name!r} {why}"))
        elif name not in names:
            known = ", ".join(names) or "none"
            why = (
                f"unknown setting {name!r}{suggest(name, names)} (settings of {spec.name}: {known})"
            )
            problems.append(SettingProblem(name, why, why))
        else:
            converted, why = coerce_param(spec.param(name), value)
            if why is None:
                out[name] = converted
            else:
                problems.append(SettingProblem(name, why, f"{name!r} {why}"))
    for p in spec.params:
        if p.name in params:
            continue
        if p.required:
            why = f"missing required setting {p.name!r}"
            problems.append(SettingProblem(p.name, why, why))
        elif defaults:
            out[p.name] = p.default
    if defaults:
        out = {n: out[n] for n in names if n in out}
    return out, problems


def _plain(value: Any) -> Any:
    """Return a numpy scalar as the Python value (widgets and scripts may hand those over)."""
    item = getattr(value, "item", None)
    return item() if item is not None and getattr(value, "ndim", None) == 0 else value


def type_name(value: Any) -> str:
    """Name the type of a value for messages (``"whole number"``, ``"true/false"``...)."""
    if value is None:
        return "null"
    return {bool: "true/false", int: "whole number", float: "number", str: "text"}.get(
        type(value), type(value).__name__
    )


def coerce_param(spec: Any, value: Any) -> tuple[Any, str | None]:
    """Convert ``value`` to the type of setting ``spec`` (a ``ParamSpec``).

    Returns
    -------
    tuple
        ``(converted value, None)`` or ``(None, reason)`` when it does not fit.
    """
    value = _plain(value)
    if value is None:
        if spec.optional:
            return None, None
        return None, "must be set (null is not allowed here)"
    if spec.choices is not None:
        for choice in spec.choices:
            if type(choice) is type(value) and choice == value:
                return value, None
            if isinstance(choice, float) and type(value) is int and float(value) == choice:
                return choice, None
        allowed = ", ".join(str(c) for c in spec.choices)
        return None, f"{value!r} is not one of: {allowed}" + suggest(str(value), spec.choices)
    if spec.type is tuple:
        if not isinstance(value, (list, tuple)):
            return None, f"must be a list, got {type_name(value)} {value!r}"
        if spec.length is not None and len(value) != spec.length:
            return None, f"must have {spec.length} values, got {len(value)}"
        item_type = spec.item_type if spec.item_type in (int, float, bool, str) else None
        items = []
        for i, item in enumerate(value):
            if item_type is None:
                items.append(item)
                continue
            converted, why = _coerce_scalar(item_type, _plain(item))
            if why is None:
                why = _check_range(spec, converted)
            if why is not None:
                return None, f"item {i}: {why}"
            items.append(converted)
        return tuple(items), None
    converted, why = _coerce_scalar(spec.type, value)
    if why is None:
        why = _check_range(spec, converted)
    return (converted, None) if why is None else (None, why)


def _coerce_scalar(ptype: type, value: Any) -> tuple[Any, str | None]:
    got = f"got {type_name(value)} {value!r}"
    if ptype is bool:
        return (value, None) if isinstance(value, bool) else (None, f"must be true or false, {got}")
    if ptype is int:
        if isinstance(value, bool):
            return None, f"must be a whole number, {got}"
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            return int(value), None
        return None, f"must be a whole number, {got}"
    if ptype is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, f"must be a number, {got}"
        if not math.isfinite(value):
            return None, f"must be a finite number, {got}"
        return float(value), None
    if ptype is str:
        return (value, None) if isinstance(value, str) else (None, f"must be text, {got}")
    return None, f"has an unsupported type {ptype.__name__}"


def _check_range(spec: Any, value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if spec.minimum is not None and value < spec.minimum:
        return f"{value} is below the minimum {spec.minimum}"
    if spec.maximum is not None and value > spec.maximum:
        return f"{value} is above the maximum {spec.maximum}"
    return None
