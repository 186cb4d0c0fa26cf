"""The steps of a pipeline as a list, and the settings of the selected step as widgets.

:class:`PipelineStepsView` shows one row per step (id, operation title, data
inputs); selecting a row shows that step's settings as the magicgui widgets
the operation widgets use (:func:`napari_fbias._qt.op_widget.param_widget`,
built from the op's :class:`~napari_fbias.ops.registry.ParamSpec`: bounds and
choices enforced; text fields read when editing ends). The view holds no pipeline state of its
own: an edit is announced with :attr:`PipelineStepsView.param_edited` and the
owner decides (it builds a new pipeline, validates it and calls
:meth:`PipelineStepsView.set_pipeline`, or :meth:`PipelineStepsView.revert`).

A ``QWidget`` because the list of steps is a tree view, which magicgui lacks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any

from magicgui.widgets import ComboBox, Container, FloatSpinBox, Label, LineEdit, SpinBox
from qtpy.QtCore import Qt, Signal
from qtpy.QtGui import QBrush, QColor
from qtpy.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.auto_number import AutoNumber
from napari_fbias._qt.op_widget import ParamError, param_value, param_widget
from napari_fbias.ops.registry import OpSpec, ParamSpec, UnknownOpError, get_op
from napari_fbias.pipeline.errors import Problem
from napari_fbias.pipeline.model import Pipeline, Step

__all__ = ["PipelineStepsView", "show_value"]

_PROBLEM_COLOR = QColor(200, 40, 40)


# --- settings <-> widgets (the widgets themselves are op_widget's) ------------------------


def _decimals(*values: Any) -> int:
    """Decimal places a float spin box needs to show ``values`` exactly (2 to 12)."""
    places = 2
    for v in values:
        if isinstance(v, float) and math.isfinite(v):
            text = repr(v)
            if "e" in text or "E" in text:
                places = max(places, 12)
            elif "." in text:
                places = max(places, len(text.split(".", 1)[1]))
    return min(places, 12)


def _setting(step: Any, name: str) -> Any:
    """Return what ``step`` runs with for setting ``name``: its own value, else the default.

    The default is what a run gives a step that leaves the setting out
    (``OpSpec.defaults``: the number a setting had before it became automatic).
    """
    if name in step.params:
        return step.params[name]
    return get_op(step.op).defaults().get(name)


def show_value(spec: ParamSpec, widget: Any, value: Any) -> None:
    """Put a step's ``value`` into a setting's widget without announcing a change.

    Text fields show lists comma separated (empty for None); spin boxes get
    enough decimals to show the value exactly; a value the widget cannot hold
    (out of its range: the pipeline's problem list says so) is shown clamped.
    """
    with widget.changed.blocked():
        if isinstance(widget, AutoNumber):
            if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
                widget.value = value if value is None else min(max(value, widget.min), widget.max)
        elif isinstance(widget, LineEdit):
            if value is None:
                widget.value = ""
            elif isinstance(value, (tuple, list)):
                widget.value = ", ".join(str(v) for v in value)
            else:
                widget.value = str(value)
        elif isinstance(widget, ComboBox):
            if value in widget.choices:
                widget.value = value
        elif isinstance(widget, (SpinBox, FloatSpinBox)):
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if isinstance(widget, FloatSpinBox):
                    widget.native.setDecimals(max(widget.native.decimals(), _decimals(value)))
                widget.value = min(max(value, widget.min), widget.max)
        elif isinstance(value, bool):
            widget.value = value


# --- the view -----------------------------------------------------------------------------


def _op_title(op: str) -> str:
    try:
        return get_op(op).title
    except UnknownOpError:
        return f"{op} (unknown operation)"


def _inputs_text(step: Step) -> str:
    return ", ".join(f"{k} \u2190 {v}" for k, v in step.inputs.items())


class PipelineStepsView(QWidget):
    """A pipeline's steps (id, operation, inputs) and the selected step's settings.

    Signals
    -------
    param_edited(step_id, name, value)
        The user changed a setting of a step (value already read from its widget).
    param_refused(step_id, name, message)
        Text typed for a setting could not be read (the widget shows the old value again).
    step_selected(step_id)
        Another step was selected ("" when none).
    """

    param_edited = Signal(str, str, object)
    param_refused = Signal(str, str, str)
    step_selected = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._pipeline: Pipeline | None = None
        self._problems: list[Problem] = []
        self._form_step: str | None = None
        self._form_op: str | None = None
        self._specs: dict[str, ParamSpec] = {}
        self.tree = QTreeWidget()
        self.tree.setColumnCount(3)
        self.tree.setHeaderLabels(["Step", "Operation", "Inputs"])
        self.tree.setRootIsDecorated(False)
        self.tree.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.tree.itemSelectionChanged.connect(self._on_selection)
        self.outputs_label = QLabel("")
        self.outputs_label.setWordWrap(True)
        self.step_title = QLabel("Select a step to see its settings.")
        self.step_title.setWordWrap(True)
        self.form = Container(labels=True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        layout.addWidget(self.outputs_label)
        layout.addWidget(self.step_title)
        layout.addWidget(self.form.native)

    # --- public ------------------------------------------------------------------------
    @property
    def pipeline(self) -> Pipeline | None:
        """The pipeline shown (None when none)."""
        return self._pipeline

    @property
    def current_step(self) -> str | None:
        """Id of the selected step, or None."""
        items = self.tree.selectedItems()
        return str(items[0].data(0, Qt.ItemDataRole.UserRole)) if items else None

    def set_pipeline(self, pipeline: Pipeline | None, problems: Sequence[Problem] = ()) -> None:
        """Show ``pipeline`` (steps with problems are marked); keep the selected step if any."""
        keep = self.current_step
        self._pipeline = pipeline
        self._problems = list(problems)
        old = self.tree.blockSignals(True)
        try:
            self.tree.clear()
            for step in pipeline.steps if pipeline is not None else ():
                item = QTreeWidgetItem([step.id, _op_title(step.op), _inputs_text(step)])
                item.setData(0, Qt.ItemDataRole.UserRole, step.id)
                mine = [p for p in self._problems if p.step_id == step.id]
                if mine:
                    for col in range(3):
                        item.setForeground(col, QBrush(_PROBLEM_COLOR))
                    item.setToolTip(0, "\n".join(str(p) for p in mine))
                else:
                    item.setToolTip(0, f"{step.id}: {step.op}")
                self.tree.addTopLevelItem(item)
                if step.id == keep:
                    item.setSelected(True)
        finally:
            self.tree.blockSignals(old)
        for col in range(3):
            self.tree.resizeColumnToContents(col)
        if pipeline is not None and pipeline.outputs:
            outs = ", ".join(f"{k} (from {o.source})" for k, o in pipeline.outputs.items())
            self.outputs_label.setText(f"Outputs: {outs}")
        else:
            self.outputs_label.setText("")
        if self.current_step is None and pipeline is not None and pipeline.steps:
            self.select_step(pipeline.steps[0].id)
        else:
            self._show_form(self.current_step)

    def select_step(self, step_id: str) -> None:
        """Select the step ``step_id`` and show its settings (KeyError if there is none)."""
        for i in range(self.tree.topLevelItemCount()):
            item = self.tree.topLevelItem(i)
            if item.data(0, Qt.ItemDataRole.UserRole) == step_id:
                self.tree.setCurrentItem(item)
                item.setSelected(True)
                self._show_form(step_id)
                return
        raise KeyError(step_id)

    def param_widget(self, name: str) -> Any:
        """Return the widget of setting ``name`` of the selected step (KeyError if none)."""
        if name not in self._specs:
            raise KeyError(name)
        return self.form[name]  # type: ignore[return-value]

    def revert(self, step_id: str, name: str) -> None:
        """Show the pipeline's value of a setting again (after a refused edit)."""
        if self._pipeline is None or step_id != self._form_step or name not in self._specs:
            return
        spec = self._specs[name]
        step = self._pipeline.step(step_id)
        show_value(spec, self.form[name], _setting(step, name))  # type: ignore[arg-type]

    # --- internals ----------------------------------------------------------------------
    def _on_selection(self) -> None:
        sid = self.current_step
        self._show_form(sid)
        self.step_selected.emit(sid or "")

    def _show_form(self, step_id: str | None) -> None:
        step = None
        if step_id is not None and self._pipeline is not None:
            try:
                step = self._pipeline.step(step_id)
            except KeyError:
                step = None
        if step is None:
            self._clear_form()
            self.step_title.setText("Select a step to see its settings.")
            return
        try:
            spec: OpSpec | None = get_op(step.op)
        except UnknownOpError as exc:
            spec = None
            message = str(exc)
        if spec is None:
            self._clear_form()
            self._form_step, self._form_op = step.id, step.op
            raw = ", ".join(f"{k}={v!r}" for k, v in step.params.items()) or "none"
            self.step_title.setText(
                f"Step {step.id!r}: {message}. Its settings ({raw}) cannot be edited here."
            )
            return
        self.step_title.setText(f"Step {step.id!r}: {spec.title} \u2014 {spec.summary}")
        if self._form_step == step.id and self._form_op == step.op and self._specs:
            for name, pspec in self._specs.items():
                show_value(pspec, self.form[name], _setting(step, name))  # type: ignore[arg-type]
            return
        self._clear_form()
        self._form_step, self._form_op = step.id, step.op
        for pspec in spec.params:
            w = param_widget(spec, pspec)
            show_value(pspec, w, _setting(step, pspec.name))
            self._specs[pspec.name] = pspec
            announce = partial(self._announce, step.id, pspec, w)
            if isinstance(w, (SpinBox, FloatSpinBox)):  # typed numbers count once complete
                w.native.setKeyboardTracking(False)
            if isinstance(w, LineEdit):  # text: when editing ends, not per keystroke
                w.native.editingFinished.connect(announce)
            else:
                w.changed.connect(announce)
            self.form.append(w)
        if not spec.params:
            self.form.append(Label(value="This step has no settings."))

    def _announce(self, step_id: str, spec: ParamSpec, widget: Any, *_: Any) -> None:
        """Read an edited setting from its widget and announce it (or why it is unreadable)."""
        try:
            value = param_value(spec, widget)
        except ParamError as exc:
            self.revert(step_id, spec.name)
            self.param_refused.emit(step_id, spec.name, str(exc))
            return
        self.param_edited.emit(step_id, spec.name, value)

    def _clear_form(self) -> None:
        self._specs = {}
        self._form_step = self._form_op = None
        self.form.clear()
