"""A number setting that may be left automatic: an *auto* box beside a bounded spin box.

Operations declare such settings as ``float | None`` or ``int | None`` (None:
the operation chooses, e.g. trackpy's ``minmass`` from the image's noise).
magicgui maps ``Optional[float]`` to a plain spin box, which cannot say
"automatic"; this widget can, and keeps the setting's bounds and step, so a
typo cannot reach the operation. Its ``value`` is None while *auto* is
checked, else the number. After a run, :meth:`AutoNumber.show_chosen` shows
what the operation chose while *auto* stays checked: in the greyed spin box
(where unchecking *auto* starts from it) and in the box's text.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import CheckBox, Container, FloatSpinBox, SpinBox

__all__ = ["AutoNumber"]


class AutoNumber(Container):
    """``value``: None (automatic) or a number within ``min``/``max``.

    Parameters
    ----------
    kind : type
        ``int`` or ``float``.
    value : number or None
        The starting value (None: automatic).
    min, max, step : number
        Bounds and step of the spin box.
    name, label, tooltip : str
        As for any magicgui widget.
    """

    def __init__(
        self,
        kind: type,
        value: float | None = None,
        *,
        min: float,
        max: float,
        step: float | None = None,
        name: str = "",
        label: str = "",
        tooltip: str | None = None,
    ) -> None:
        spin_class = SpinBox if kind is int else FloatSpinBox
        options: dict[str, Any] = {"min": min, "max": max}
        if step is not None:
            options["step"] = step
        self.number = spin_class(name="number", **options, tooltip=tooltip)
        self.auto = CheckBox(name="auto", text="auto", value=value is None, tooltip=tooltip)
        super().__init__(
            layout="horizontal",
            labels=False,
            widgets=[self.auto, self.number],
            name=name,
            label=label,
            tooltip=tooltip,
        )
        self.margins = (0, 0, 0, 0)
        self.kind = kind
        #: What the last run chose while *auto* was checked (None before a run).
        self.chosen: float | None = None
        if value is not None:
            self.number.value = value
        self.number.enabled = value is not None
        self.auto.changed.connect(self._on_auto)

    def _on_auto(self, auto: bool) -> None:
        self.number.enabled = not auto
        if not auto:
            self.auto.text = "auto"

    def show_chosen(self, value: float) -> None:
        """Show ``value``, what the operation chose automatically, without leaving *auto*."""
        if not self.auto.value:
            return
        self.chosen = value
        self.number.value = min(max(value, self.number.min), self.number.max)
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        self.auto.text = f"auto ({shown})"
        self.auto.tooltip = f"the last run chose {shown}"

    @property
    def min(self) -> float:
        """Smallest number the setting takes."""
        return self.number.min

    @property
    def max(self) -> float:
        """Largest number the setting takes."""
        return self.number.max

    @property
    def value(self) -> float | None:
        """None while *auto* is checked, else the number (``int`` for whole-number settings)."""
        if self.auto.value:
            return None
        return self.kind(self.number.value)

    @value.setter
    def value(self, value: float | None) -> None:
        if value is None:
            self.auto.value = True
            return
        number = float(value)
        if not self.number.min <= number <= self.number.max:
            raise ValueError(
                f"{self.label or self.name}: {value} is outside {self.number.min} to "
                f"{self.number.max}"
            )
        self.number.value = value
        self.auto.value = False
