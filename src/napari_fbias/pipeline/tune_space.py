"""What tuning searches: the settings of one operation, as ranges derived from the object size.

:func:`search_space` turns an operation's settings (:class:`~napari_fbias.ops.registry.OpSpec`)
into search dimensions:

* ``bool`` and ``Literal`` choices: every choice;
* numbers whose name says they are a size (``*sigma*``, ``min_size``,
  ``min_distance``, ``block_size``, ``distance``, ``diameter``, ``radius``):
  a range derived from the typical object diameter ``d`` (pixels), clipped
  to the bounds the operation declares (``Annotated[..., {"min":, "max":}]``);
* a manual threshold (``threshold_value``, ``value``): the image's intensity
  range (1st to 99.5th percentile);
* other numbers with both bounds declared: those bounds;
* everything else (free text, tuples, unbounded numbers, seeds, models,
  ``max_*`` limits that default to "no limit") is left as it is.

A setting whose value is None (``auto``: estimated from the image) is
searched like the others; the starting point (the current settings, ``auto``
included) is always scored first, so tuning never reports worse than it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from napari_fbias.ops.registry import OpSpec, ParamSpec

__all__ = ["SKIPPED", "USED_ONLY_WITH", "Dim", "search_space", "tunable", "without_inert"]

#: Settings never searched: they choose a model or a device, or fix randomness.
SKIPPED = frozenset(
    {"seed", "gpu", "use_gpu", "device", "batch_size", "model", "model_type", "channel",
     "channels", "pretrained_model", "axes", "spacing"}
)  # fmt: skip


#: Settings that only matter when another setting has one value: a manual threshold's
#: value is not used by an automatic method (otsu, li...).
USED_ONLY_WITH = {
    "threshold_value": ("threshold_method", "manual"),
    "value": ("method", "manual"),
}


def without_inert(start: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``params`` with each setting the others leave unused put back as in ``start``.

    So a trial that moved only an unused setting is the same trial as the
    start, and the winner does not carry a meaningless change.
    """
    out = dict(params)
    for name, (other, value) in USED_ONLY_WITH.items():
        if name in out and out.get(other, value) != value and name in start:
            out[name] = start[name]
    return out


@dataclass(frozen=True)
class Dim:
    """One searched setting.

    Attributes
    ----------
    name : str
        The setting.
    kind : {"float", "int", "choice"}
        How it is sampled.
    low, high : float
        Range of a number (inclusive).
    log : bool
        Sample a number on a log scale.
    step : int
        Step of an integer (2 for odd sizes such as ``block_size``).
    choices : tuple
        Values of a choice.
    guess : object
        A good first value from the object size (or the current value).
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    step: int = 1
    choices: tuple[Any, ...] = ()
    guess: Any = None

    def clip(self, value: Any) -> Any:
        """Return ``value`` as a point of this dimension (None when it is not one)."""
        if self.kind == "choice":
            return value if value in self.choices else None
        if value is None or isinstance(value, bool) or not isinstance(value, int | float):
            return None
        v = min(max(float(value), self.low), self.high)
        if self.kind == "int":
            v = self.low + self.step * round((v - self.low) / self.step)
            return int(min(v, self.high))
        return v

    def describe(self) -> str:
        """One line: ``min_size: 1..314 (log)``, ``method: otsu | li``."""
        if self.kind == "choice":
            return f"{self.name}: " + " | ".join(str(c) for c in self.choices)
        fmt = "{:g}"
        rng = f"{fmt.format(self.low)}..{fmt.format(self.high)}"
        return f"{self.name}: {rng}" + (" (log)" if self.log else "")


def _ball(d: float, ndim: int) -> float:
    """Pixels of a ball of diameter ``d``."""
    r = d / 2
    return math.pi * r * r if ndim == 2 else 4.0 / 3.0 * math.pi * r**3


def _size_rule(name: str, d: float, ndim: int) -> tuple[float, float, float, bool] | None:
    """Return (low, high, guess, log) for a size setting of objects of diameter ``d``."""
    if "sigma" in name:
        return 0.0, max(2.0, d / 3), max(0.5, d / 12), False
    if name in ("min_size", "min_area", "min_volume"):
        return 1.0, max(4.0, _ball(0.7 * d, ndim)), max(1.0, 0.1 * _ball(d, ndim)), True
    if name == "min_distance":
        return 1.0, max(2.0, 0.8 * d), max(1.0, d / 4), False
    if name == "block_size":
        return 3.0, max(5.0, 5 * d), max(3.0, 2.5 * d), True
    if "diameter" in name:
        return max(1.0, d / 2), max(2.0, 2 * d), d, True
    if "radius" in name:
        return max(0.5, d / 6), max(1.0, d), d / 2, False
    if name == "distance":
        return 0.0, max(1.0, d / 2), d / 4, False
    return None


def tunable(p: ParamSpec) -> bool:
    """Whether tuning may search setting ``p`` at all."""
    if p.name in SKIPPED or p.required:
        return False
    if p.name.startswith("max_") and p.default is None:  # None is "no limit"
        return False
    return p.choices is not None or p.type in (bool, int, float)


def search_space(
    spec: OpSpec,
    params: Mapping[str, Any],
    *,
    diameter: float,
    ndim: int,
    intensity: tuple[float, float] | None = None,
    only: Iterable[str] | None = None,
) -> list[Dim]:
    """Return the dimensions tuning searches for operation ``spec``.

    Parameters
    ----------
    spec : OpSpec
        The operation.
    params : mapping
        Its current settings (missing ones: the defaults); they give the guesses of
        settings without a size rule.
    diameter : float
        Typical object diameter in pixels (from the annotations or the image).
    ndim : int
        2 or 3 (areas or volumes).
    intensity : tuple of float, optional
        Range of a manual threshold (1st and 99.5th percentile of the image).
    only : iterable of str, optional
        Search only these settings (an unknown or untunable name is an error).

    Returns
    -------
    list of Dim
        Possibly empty (nothing to tune).
    """
    current = {**spec.defaults(), **dict(params)}
    names = None if only is None else list(only)
    if names is not None:
        known = {p.name for p in spec.params}
        bad = [n for n in names if n not in known]
        if bad:
            raise ValueError(
                f"{spec.name} has no setting {', '.join(repr(b) for b in bad)} "
                f"(its settings: {', '.join(sorted(known))})"
            )
    dims: list[Dim] = []
    for p in spec.params:
        if names is not None and p.name not in names:
            continue
        dim = _dim(p, current.get(p.name), diameter, ndim, intensity)
        if dim is None:
            if names is not None:
                raise ValueError(f"{spec.name}: setting {p.name!r} cannot be tuned")
            continue
        dims.append(dim)
    return dims


def _dim(
    p: ParamSpec,
    value: Any,
    d: float,
    ndim: int,
    intensity: tuple[float, float] | None,
) -> Dim | None:
    if not tunable(p):
        return None
    if p.choices is not None or p.type is bool:
        choices = tuple(p.choices) if p.choices is not None else (False, True)
        return Dim(p.name, "choice", choices=choices, guess=value if value in choices else None)
    rule = _size_rule(p.name, d, ndim)
    log = False
    if rule is not None:
        low, high, guess, log = rule
    elif p.name in ("threshold_value", "value") and intensity is not None:
        low, high = intensity
        guess = value if isinstance(value, int | float) and low <= value <= high else None
    elif p.minimum is not None and p.maximum is not None:
        low, high = float(p.minimum), float(p.maximum)
        guess = value
    else:
        return None
    if p.minimum is not None:
        low, high = max(low, float(p.minimum)), max(high, float(p.minimum))
    if p.maximum is not None:
        low, high = min(low, float(p.maximum)), min(high, float(p.maximum))
    if p.type is int:
        step = int(p.widget_options.get("step", 1) or 1)
        low = math.ceil(low)
        high = max(low, math.floor(high))
        if step > 1:
            high = low + step * ((high - low) // step)
        if log and low < 1:
            log = False
        if high <= low:
            return None
        dim = Dim(p.name, "int", low=low, high=high, log=log and step == 1, step=step)
    else:
        if high <= low:
            return None
        dim = Dim(p.name, "float", low=low, high=high, log=log and low > 0)
    return Dim(**{**dim.__dict__, "guess": dim.clip(guess)})
