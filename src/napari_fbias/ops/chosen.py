"""What an operation chose on its own: the values behind its "auto" settings.

An operation whose setting is left automatic (None) calls
:func:`report_chosen` with the value it chose (``smoothing_sigma``,
``min_size``...) and what it was derived from (``object_diameter``). The
single-step path (:func:`napari_fbias.pipeline.apply.apply_step`) collects the
reports of one step with :func:`collect_chosen` and hands them on with the
step's result, so the run record, the session record, the report and the
widgets can say what was chosen. Outside a collection a report is ignored: an
operation called directly behaves the same.

A spatial operation looped over ``t``/``c`` reports once per block: a value
that is the same in every block is kept as one number, else as the list of the
blocks' values (:meth:`Chosen.summary`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

__all__ = ["Chosen", "collect_chosen", "describe_chosen", "report_chosen"]


class Chosen:
    """The values reported during one step, by name, in the order first reported."""

    def __init__(self) -> None:
        self._values: dict[str, list[Any]] = {}

    def add(self, name: str, value: Any) -> None:
        """Add one reported value."""
        self._values.setdefault(name, []).append(value)

    def __bool__(self) -> bool:
        return bool(self._values)

    def summary(self) -> dict[str, Any]:
        """Name -> the value (one number when every report agrees, else the list)."""
        out: dict[str, Any] = {}
        for name, values in self._values.items():
            out[name] = values[0] if all(v == values[0] for v in values) else list(values)
        return out


_CURRENT: ContextVar[Chosen | None] = ContextVar("napari_fbias_chosen", default=None)


def report_chosen(name: str, value: float | int) -> None:
    """Report a value an operation chose itself (ignored outside :func:`collect_chosen`).

    Parameters
    ----------
    name : str
        The setting it stands for (``"min_size"``) or what it was derived
        from (``"object_diameter"``).
    value : int or float
        The value, in the setting's own units (pixels along the finest axis).
    """
    box = _CURRENT.get()
    if box is not None:
        box.add(name, int(value) if isinstance(value, (int, bool)) else float(value))


@contextmanager
def collect_chosen() -> Iterator[Chosen]:
    """Collect the values reported inside the ``with`` block (nested blocks collect their own)."""
    box = Chosen()
    token = _CURRENT.set(box)
    try:
        yield box
    finally:
        _CURRENT.reset(token)


def _number(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_number(v) for v in value) + "]"
    if isinstance(value, float) and math.isfinite(value) and not value.is_integer():
        return f"{value:.3g}"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def describe_chosen(chosen: Mapping[str, Any] | None) -> str:
    """Say what was chosen in one line: ``smoothing sigma 2.1, min size 40 (object diameter 14)``.

    Values that describe the image (names starting with ``object_``) go in
    brackets after the settings. Empty when nothing was chosen.
    """
    if not chosen:
        return ""
    settings = [
        f"{k.replace('_', ' ')} {_number(v)}"
        for k, v in chosen.items()
        if not k.startswith("object_")
    ]
    facts = [
        f"{k.replace('_', ' ')} {_number(v)}" for k, v in chosen.items() if k.startswith("object_")
    ]
    text = ", ".join(settings)
    if facts:
        text = f"{text} ({', '.join(facts)})" if text else ", ".join(facts)
    return text
