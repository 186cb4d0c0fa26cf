"""A widget for any registered operation, built from its signature.

:class:`OpWidget` shows, for the chosen operation: one layer picker per data
input (filtered by kind), the axes of the first input (editable for layers
that do not record them) and spinboxes to pick a time point / channel /
plane, one widget per setting (``magicgui.widgets.create_widget`` with the
setting's own annotation: bounds, choices, tooltips from the docstring), a
"new result" box, Run / Cancel buttons and a status line. Run hands
everything to :meth:`Workspace.run_op <napari_fbias._qt.workspace.Workspace.run_op>`,
which computes off the GUI thread and records the step; the callbacks here
only collect values and show state. :meth:`OpWidget.load_settings` fills the
form from a recorded step (the Session panel's *Load settings into the
widget*, through ``Workspace.events.settings_requested``).
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import napari
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    Label,
    LineEdit,
    PushButton,
    Select,
    SpinBox,
    create_widget,
)
from qtpy.QtCore import Qt

from napari_fbias._qt.auto_number import AutoNumber
from napari_fbias._qt.fit_width import MessageLine, narrow_choices, wrap_label
from napari_fbias._qt.layer_axes import (
    LayerAxesError,
    axes_editable,
    fit_axes,
    layer_axes,
    layer_kind,
    layer_shape,
    step_info,
    unwrap,
)
from napari_fbias._qt.layer_kinds import input_layer_types
from napari_fbias._qt.workspace import WorkspaceError, get_workspace
from napari_fbias.ops.chosen import describe_chosen
from napari_fbias.ops.registry import OpSpec, ParamSpec, get_op, list_ops
from napari_fbias.session.model import RecordedStep

__all__ = [
    "OpWidget",
    "OperationWidget",
    "ParamError",
    "layer_choices",
    "param_value",
    "param_widget",
    "set_param_value",
]

AXIS_LABELS = {"t": "time point", "c": "channel", "z": "plane"}
_INT_LIMIT = 2**31 - 1
_FLOAT_LIMIT = 1e9
_CATEGORY_ORDER = ("preprocess", "segment", "track", "measure")


class ParamError(ValueError):
    """A setting typed in a text field that does not parse."""


def layer_choices(viewer: Any, kind: str, widget: Any = None) -> list[tuple[str, Any]]:
    """Layers of ``viewer`` that can feed a ``kind`` input, as ``(name, layer)`` choices."""
    types = input_layer_types(kind)
    return [(layer.name, layer) for layer in viewer.layers if layer_kind(layer) in types]


def _label(name: str) -> str:
    return name.replace("_", " ")


def _is_auto_number(p: ParamSpec) -> bool:
    """Tell whether a setting is an optional number (None: the operation chooses)."""
    return p.optional and p.choices is None and p.type in (int, float)


def _is_text_param(p: ParamSpec) -> bool:
    """Tell whether a setting is a text field: tuples, and optional text ("" = automatic)."""
    return p.type is tuple or (
        p.optional and p.choices is None and p.type is not bool and not _is_auto_number(p)
    )


def param_widget(spec: OpSpec, p: ParamSpec) -> Any:
    """Return the magicgui widget for setting ``p`` of ``spec``, set to its default.

    Numbers, booleans, choices and text go through ``create_widget`` with the
    setting's annotation (``Annotated`` bounds, ``Literal`` choices); numbers
    without bounds get wide ones. Optional numbers get an *auto* box beside
    their spin box (:class:`~.auto_number.AutoNumber`: None while checked).
    Tuples without choices and optional text are text fields (comma-separated
    values; empty = automatic), read by :func:`param_value`.
    """
    tooltip = p.help or None
    if _is_auto_number(p):
        low, high = _bounds(p)
        return AutoNumber(
            p.type,
            p.default,
            min=low,
            max=high,
            step=p.widget_options.get("step", 0.1 if p.type is float else None),
            name=p.name,
            label=_label(p.name),
            tooltip=tooltip,
        )
    if _is_text_param(p):
        w = LineEdit(value=_format(p.default), name=p.name, label=_label(p.name), tooltip=tooltip)
        hint = "empty = automatic" if p.optional else "comma-separated values"
        w.native.setPlaceholderText(hint)
        return w
    hints = typing.get_type_hints(spec.func, include_extras=True)
    options: dict[str, Any] = {"tooltip": tooltip} if tooltip else {}
    if p.choices is None and p.type in (int, float):
        options["min"], options["max"] = _bounds(p)
        if "step" in p.widget_options:
            options["step"] = p.widget_options["step"]
        elif p.type is float:
            options["step"] = 0.1
    kwargs: dict[str, Any] = {"name": p.name, "label": _label(p.name), "options": options}
    if not p.required:
        kwargs["value"] = p.default
    return create_widget(annotation=hints.get(p.name, p.type), **kwargs)


def _bounds(p: ParamSpec) -> tuple[float, float]:
    """Return the spin box bounds of a number setting: its own, else wide ones."""
    big = _INT_LIMIT if p.type is int else _FLOAT_LIMIT
    low = p.minimum if p.minimum is not None else -big
    high = p.maximum if p.maximum is not None else big
    return low, high


def _format(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (tuple, list)):
        return ", ".join(str(v) for v in value)
    return str(value)


def _parse_scalar(kind: type | None, text: str, name: str) -> Any:
    if kind in (int, float):
        try:
            number = float(text)
        except ValueError:
            raise ParamError(f"{_label(name)} must be a number, not {text!r}") from None
        if kind is int:
            if not number.is_integer():
                raise ParamError(f"{_label(name)} must be a whole number, not {text!r}")
            return int(number)
        return number
    if kind is bool:
        return text.lower() in ("1", "true", "yes", "on")
    return text


def param_value(p: ParamSpec, widget: Any) -> Any:
    """Read setting ``p`` from its widget (text fields parsed; ``ParamError`` if they do not)."""
    value = widget.value
    if isinstance(widget, Select):
        return tuple(value)
    if not isinstance(widget, LineEdit) or not _is_text_param(p):
        return value
    text = str(value).strip()
    if p.type is tuple:
        if not text:
            return None if p.optional else ()
        return tuple(
            _parse_scalar(p.item_type, part.strip(), p.name)
            for part in text.split(",")
            if part.strip()
        )
    if not text:
        return None
    return _parse_scalar(p.type, text, p.name)


def set_param_value(p: ParamSpec, widget: Any, value: Any) -> None:
    """Show a recorded value of setting ``p`` in its widget (what :func:`param_value` reads back).

    Raises
    ------
    ValueError
        When the widget cannot show it (out of its bounds, not one of its choices).
    """
    if isinstance(widget, Select):
        widget.value = list(value or ())
    elif isinstance(widget, LineEdit) and _is_text_param(p):
        widget.value = _format(value)
    else:
        widget.value = value


class OpWidget(Container):
    """Run one of a few operations on layers, recorded in the session.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer (its workspace runs and records the operation).
    ops : sequence of str
        Registry names offered in the method box (the first is the default);
        one name hides the box.
    select_axes : sequence of str
        Axes along which one index can be picked (``"t"``, ``"c"``, ``"z"``).
    method_label : str
        Label of the method box.
    show_names : bool
        Show registry names (``segment.threshold``) in the method box instead of titles.
    overrides : mapping, optional
        Setting name -> function ``(spec, param) -> widget`` replacing the
        generated widget.

    Notes
    -----
    The form sits in a vertical scroll area, and its messages, labels and
    choices wrap or elide (:mod:`.fit_width`): on a small screen the panel
    scrolls instead of pushing the napari window off the screen.
    """

    #: The widget's name as the analyst sees it (its menu entry).
    title = "Operation"
    #: True for a widget offering every operation: it loads a recorded step's
    #: settings only when no widget made for that operation is open.
    generic = False

    def __init__(
        self,
        viewer: Any,
        ops: Sequence[str],
        *,
        select_axes: Sequence[str] = ("t", "c", "z"),
        method_label: str = "method",
        show_names: bool = False,
        overrides: Mapping[str, Callable[[OpSpec, ParamSpec], Any]] | None = None,
    ) -> None:
        super().__init__(labels=False, scrollable=True)
        if not ops:
            raise ValueError("OpWidget needs at least one operation")
        self.viewer = unwrap(viewer)
        self.workspace = get_workspace(viewer)
        self._overrides = dict(overrides or {})
        self._select_axes = tuple(select_axes)
        self._worker: Any = None
        self._last_output: str | None = None
        self._present: set[str] = set()
        self.spec: OpSpec = get_op(ops[0])
        self.method = ComboBox(
            name="method",
            label=method_label,
            choices=[(o if show_names else get_op(o).title, o) for o in ops],
            value=ops[0],
        )
        self.method.visible = len(ops) > 1
        self.summary = Label(value="")
        wrap_label(self.summary.native)
        self.inputs = Container(name="inputs", labels=True)
        self.axes = LineEdit(
            name="axes",
            label="axes",
            tooltip="One letter per dimension of the first input (t, c, z, y, x); "
            "correct them when the layer does not know them.",
        )
        self.axes_problem = Label(name="axes_problem", label="", value="")
        wrap_label(self.axes_problem.native)
        self.axes_problem.visible = False
        self.selectors = {
            a: SpinBox(
                name=a,
                label=f"{AXIS_LABELS[a]} (-1 = all)",
                min=-1,
                max=0,
                value=-1,
                tooltip=f"Use one {AXIS_LABELS[a]} only; -1 uses every {AXIS_LABELS[a]}.",
            )
            for a in self._select_axes
        }
        self.where = Container(
            name="where",
            labels=True,
            widgets=[self.axes, self.axes_problem, *self.selectors.values()],
        )
        self.settings = Container(name="settings", labels=True)
        self.new_result = CheckBox(
            name="new_result",
            text="new result (keep the previous one)",
            value=False,
            tooltip="Unchecked, re-running replaces the last result of this widget.",
        )
        self.run_button = PushButton(name="run", text="Run")
        self.cancel_button = PushButton(name="cancel", text="Cancel", enabled=False)
        buttons = Container(
            layout="horizontal", labels=False, widgets=[self.run_button, self.cancel_button]
        )
        self.status = MessageLine(name="status")
        narrow_choices(self.method)
        self.extend(
            [
                self.method,
                self.summary,
                self.inputs,
                self.where,
                self.settings,
                self.new_result,
                buttons,
                self.status,
            ]
        )
        self.method.changed.connect(self._on_method_changed)
        self.axes.changed.connect(self._on_axes_edited)
        self.form.layout().setAlignment(Qt.AlignmentFlag.AlignTop)  # spare height below
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        layers = self.viewer.layers.events
        for event in (layers.inserted, layers.removed, layers.reordered):
            event.connect(self._on_layers_changed)
        self.workspace.events.settings_requested.connect(self._on_settings_requested)
        self.build(self.spec)

    @property
    def native(self) -> Any:
        """The panel napari docks: the scroll area around the form."""
        return self.root_native_widget

    @property
    def form(self) -> Any:
        """The ``QWidget`` that holds the form (inside the scroll area)."""
        return self.root_native_widget.widget()

    # --- building -------------------------------------------------------------------------
    def build(self, spec: OpSpec) -> None:
        """Show the inputs and settings of ``spec``."""
        self.spec = spec
        self.summary.value = spec.summary
        self.inputs.clear()
        for inp in spec.inputs:
            picker = ComboBox(
                name=inp.name,
                label=_label(inp.name),
                choices=partial(self.offered_layers, inp.kind),
                nullable=not inp.required,
                tooltip=f"{inp.kind} layer" + ("" if inp.required else " (optional)"),
            )
            picker.changed.connect(self._on_input_changed)
            self.inputs.append(picker)
        self.settings.clear()
        for p in spec.params:
            make = self._overrides.get(p.name, param_widget)
            self.settings.append(make(spec, p))
        self.inputs.reset_choices()
        narrow_choices(self.inputs)
        narrow_choices(self.settings)
        self._on_input_changed()
        self.fit_width()

    def fit_width(self) -> None:
        """Make the scroll area as wide as the form needs (it has no horizontal scroll bar)."""
        bar = self.native.verticalScrollBar().sizeHint().width()
        self.native.setMinimumWidth(self.form.layout().totalMinimumSize().width() + bar)

    def offered_layers(self, kind: str, widget: Any = None) -> list[tuple[str, Any]]:
        """Layers offered for a ``kind`` input (the first is preselected when the form is built).

        Every layer of a fitting type (:func:`layer_choices`); subclasses
        narrow or reorder them.
        """
        return layer_choices(self.viewer, kind)

    def _on_method_changed(self, op: str) -> None:
        self._last_output = None
        self.build(get_op(op))

    def clear_status(self) -> None:
        """Remove a message that no longer applies (not while a run is in flight)."""
        if self._worker is None:
            self.status.value = ""

    def _on_layers_changed(self, event: Any = None) -> None:
        before = self.primary_layer()
        self.inputs.reset_choices()
        if self.primary_layer() is not before:  # keep axes the analyst is typing
            self._on_input_changed()

    def primary_layer(self) -> Any:
        """Return the layer picked for the first array input (its axes and planes are shown)."""
        for inp in self.spec.inputs:
            if inp.kind in ("image", "labels"):
                return self.inputs[inp.name].value
        return None

    def _on_input_changed(self, *args: Any) -> None:
        self.clear_status()
        self._show_axes_problem("")
        layer = self.primary_layer()
        self.where.visible = layer is not None
        if layer is None:
            self._present = set()
            return
        try:
            axes = layer_axes(layer)
        except LayerAxesError:
            axes = ""
        self.axes.value = axes
        self.axes.enabled = axes_editable(layer)
        self._update_selectors(axes, layer)

    def _on_axes_edited(self, text: str) -> None:
        layer = self.primary_layer()
        if layer is None or not self.axes.enabled:
            return
        self.clear_status()
        if self.check_typed_axes() is None:
            self._update_selectors(self.axes.value.strip().lower(), layer)

    def check_typed_axes(self) -> str | None:
        """Check the axes typed for the first input; show what is wrong under the field.

        Returns
        -------
        str or None
            The problem (also shown under the axes field), or None when the
            axes fit the layer or cannot be edited.
        """
        layer = self.primary_layer()
        problem = None
        if layer is not None and self.axes.enabled:
            try:
                fit_axes(layer, self.axes.value)
            except LayerAxesError as exc:
                problem = str(exc)
        self._show_axes_problem(problem or "")
        return problem

    def _show_axes_problem(self, text: str) -> None:
        self.axes_problem.value = text
        self.axes_problem.visible = bool(text)

    @property
    def present_axes(self) -> frozenset[str]:
        """The axes (among t, c, z) of the first input along which one index can be picked."""
        return frozenset(self._present)

    def _update_selectors(self, axes: str, layer: Any) -> None:
        shape = layer_shape(layer)
        self._present = {a for a in self.selectors if a in axes and len(shape) == len(axes)}
        for a, box in self.selectors.items():
            present = a in self._present
            box.visible = present
            if present:
                box.max = int(shape[axes.index(a)]) - 1
            if box.value > box.max:
                box.value = -1

    # --- loading recorded settings ----------------------------------------------------------
    def load_settings(self, step: RecordedStep) -> bool:
        """Fill the form from a recorded step: method, settings, input layers, planes.

        Input layers and planes are picked when the layers the step read are
        open. Running then replaces that step (unless "new result" is
        ticked) when it belongs to the active approach.

        Returns
        -------
        bool
            False (nothing changed) when this widget does not offer the step's operation.
        """
        if step.op not in self.method.choices:
            return False
        if self.method.value != step.op:
            self.method.value = step.op  # rebuilds the form
        problems = []
        for p in self.spec.params:
            if p.name in step.params:
                try:
                    set_param_value(p, self.settings[p.name], step.params[p.name])
                except (ValueError, TypeError) as exc:
                    problems.append(f"{_label(p.name)}: {exc}")
        layers = self.viewer.layers
        for name, ref in step.inputs.items():
            layer = layers[ref.layer] if ref.layer and ref.layer in layers else None
            if name in self.inputs and layer is not None and layer in self.inputs[name].choices:
                self.inputs[name].value = layer
        first = next((i.name for i in self.spec.inputs if i.kind in ("image", "labels")), None)
        sel = dict(step.inputs[first].select) if first in step.inputs else {}
        for axis, box in self.selectors.items():
            if axis in self._present and sel.get(axis, -1) <= box.max:
                box.value = sel.get(axis, -1)
        self.new_result.value = False
        self._last_output = step.output_layer
        loaded = f"Settings of step {step.id} loaded: change them and press Run"
        self.status.value = loaded + (f" (not loaded: {'; '.join(problems)})" if problems else "")
        return True

    def _on_settings_requested(self, request: Any) -> None:
        if self.generic and not request.any_widget:
            return
        try:
            if self.load_settings(request.step):
                request.loaded_into.append(self.title)
        except RuntimeError:  # the widget was closed: stop listening
            self.workspace.events.settings_requested.disconnect(self._on_settings_requested)

    # --- reading the form -----------------------------------------------------------------
    def param_values(self) -> dict[str, Any]:
        """Return the settings as typed (``ParamError`` for a text field that does not parse)."""
        return {p.name: param_value(p, self.settings[p.name]) for p in self.spec.params}

    def input_layers(self) -> dict[str, Any]:
        """Return data parameter -> the layer picked (None when none)."""
        return {inp.name: self.inputs[inp.name].value for inp in self.spec.inputs}

    def selection(self, layers: Mapping[str, Any]) -> dict[str, dict[str, int]]:
        """Return the index picked along ``t``/``c``/``z`` for each array input with that axis."""
        chosen = {a: int(box.value) for a, box in self.selectors.items() if a in self._present}
        chosen = {a: i for a, i in chosen.items() if i >= 0}
        out: dict[str, dict[str, int]] = {}
        if not chosen:
            return out
        primary = self.primary_layer()
        for name, layer in layers.items():
            if layer is None or layer_kind(layer) not in ("image", "labels"):
                continue
            axes = self.axes.value if layer is primary else layer_axes(layer)
            sel = {a: i for a, i in chosen.items() if a in axes}
            if sel:
                out[name] = sel
        return out

    def _target_name(self) -> str | None:
        """Return the layer to replace: this widget's last result, while in the active approach."""
        if self.new_result.value or self._last_output is None:
            return None
        rec = self.workspace.recorder
        layers = self.viewer.layers
        if rec is None or self._last_output not in layers:
            return None
        info = step_info(layers[self._last_output])
        if (
            info is None
            or info.get("approach") != rec.session.active
            or info.get("op") != self.spec.name
        ):
            return None
        return self._last_output

    # --- running --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """True while this widget's run is in flight."""
        return self._worker is not None

    def run(self) -> Any:
        """Start the operation with the form's values; return the worker (None if not started)."""
        from napari.utils.notifications import show_error

        if self._worker is not None:
            return None
        problem = self.refusal()
        if problem:
            self.status.value = f"Not run: {problem}"
            return None
        layers = self.input_layers()
        primary = self.primary_layer()
        try:
            params = self.param_values()
            axes = self.axes.value.strip() if primary is not None else None
            worker = self.workspace.run_op(
                self.spec.name,
                layers,
                params,
                axes=axes or None,
                select=self.selection(layers),
                output_name=self._target_name(),
                new_result=bool(self.new_result.value),
                connect={
                    "returned": self._on_returned,
                    "errored": self._on_errored,
                    "finished": self._on_finished,
                },
            )
        except WorkspaceError as exc:  # already shown by the workspace
            self.status.value = f"Not run: {exc}"
            return None
        except ValueError as exc:
            show_error(f"{self.spec.title}: {exc}")
            self.status.value = f"Not run: {exc}"
            return None
        self._worker = worker
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.status.value = f"Running {self.spec.title}..."
        return worker

    def refusal(self) -> str | None:
        """Say why the form cannot run as it is (shown in the widget, not as a notification).

        Returns
        -------
        str or None
            The reason (axes typed that do not fit the layer...), or None.
            Subclasses add their own reasons.
        """
        return self.check_typed_axes()

    def cancel(self) -> None:
        """Cancel the run in flight (its result is discarded; nothing is recorded)."""
        if self._worker is None:
            return
        self.workspace.cancel(self._worker)
        self.status.value = f"{self.spec.title}: cancelled"

    def _on_returned(self, value: Any) -> None:
        job = getattr(self._worker, "fbias_job", None)
        if job is None or job.step_id is None:
            return
        self._last_output = job.output_layer
        self.status.value = f"{self.spec.title}: done -> {job.output_layer} (step {job.step_id})"
        self.show_chosen(getattr(job.value, "chosen", None) or {})
        self.show_result(job)

    def show_chosen(self, chosen: Mapping[str, Any]) -> None:
        """Show what a run chose for the settings left on *auto* (in their boxes and the status)."""
        for w in self.settings:
            value = chosen.get(w.name)
            if isinstance(w, AutoNumber) and w.value is None and isinstance(value, (int, float)):
                w.show_chosen(value)
        if chosen:
            self.status.value += f"; auto: chose {describe_chosen(chosen)}"

    def _on_errored(self, exc: BaseException) -> None:
        job = getattr(self._worker, "fbias_job", None)
        if job is not None and job.error:
            self.status.value = job.error

    def _on_finished(self) -> None:
        job = getattr(self._worker, "fbias_job", None)
        if job is not None and job.error and not job.cancelled:
            self.status.value = job.error
        self._worker = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False

    def show_result(self, job: Any) -> None:
        """Show a recorded run ``job`` (``job.output_layer``, ``job.value``); for subclasses."""


def operation_names() -> list[str]:
    """Every registered operation, by category (preprocess, segment, track, measure, others)."""

    def key(spec: OpSpec) -> tuple[int, str]:
        cat = spec.category
        rank = _CATEGORY_ORDER.index(cat) if cat in _CATEGORY_ORDER else len(_CATEGORY_ORDER)
        return rank, spec.name

    return [s.name for s in sorted(list_ops(), key=key)]


class OperationWidget(OpWidget):
    """Any registered operation (preprocessing, segmentation, tracking, measurement)."""

    title = "Any operation"
    generic = True

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, operation_names(), method_label="operation", show_names=True)
