"""The "Image layer" tab of the panel: a layer (and its axes) for each pipeline input, and Run.

:class:`LayerTab` offers, for each input of the pipeline, the viewer's layers
that can feed its kind (:func:`napari_fbias._qt.op_widget.layer_choices`),
an axes field (empty: the layer's own axes, shown as the placeholder) and,
under it, what is wrong with axes typed there. The lists follow the viewer's
layers.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from magicgui.widgets import ComboBox, Container, Label, LineEdit
from qtpy.QtWidgets import QPushButton, QVBoxLayout, QWidget

from napari_fbias._qt.fit_width import narrow_choices, wrap_label
from napari_fbias._qt.layer_axes import LayerAxesError, fit_axes, layer_axes
from napari_fbias._qt.op_widget import layer_choices
from napari_fbias.pipeline.model import Pipeline

__all__ = ["LayerTab"]


class LayerTab(QWidget):
    """Layer pickers and axes fields for a pipeline's inputs, and the Run button.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Whose layers are offered.
    """

    def __init__(self, viewer: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = viewer
        self._names: list[str] = []
        self.inputs_form = Container(labels=True)
        self.run_button = QPushButton("Run")
        self.run_button.setToolTip("Run the pipeline on the chosen layer(s).")
        layout = QVBoxLayout(self)
        layout.addWidget(self.inputs_form.native)
        layout.addWidget(self.run_button)
        layout.addStretch(1)
        layers = viewer.layers.events
        for event in (layers.inserted, layers.removed, layers.reordered):
            event.connect(self._on_layers_changed)

    def set_pipeline(self, pipeline: Pipeline | None) -> None:
        """Offer a layer picker and an axes field for each input of ``pipeline``."""
        self.inputs_form.clear()
        self._names = list(pipeline.inputs) if pipeline is not None else []
        if pipeline is None:
            return
        for name, decl in pipeline.inputs.items():
            picker = ComboBox(
                name=f"layer_{name}",
                label=f"{name} ({decl.kind})",
                choices=partial(layer_choices, self.viewer, decl.kind),
                tooltip=f"The {decl.kind} layer for input {name!r} of the pipeline.",
            )
            axes = LineEdit(
                name=f"axes_{name}",
                label="axes",
                tooltip="Axes of the layer, one letter per dimension (t, c, z, y, x). Empty: "
                "as recorded by the reader, else guessed.",
            )
            problem = Label(name=f"problem_{name}", label="", value="")
            wrap_label(problem.native)
            problem.visible = False
            picker.changed.connect(self._on_layer_picked)
            axes.changed.connect(self._on_layer_picked)
            self.inputs_form.extend([picker, axes, problem])
        self.inputs_form.reset_choices()
        narrow_choices(self.inputs_form)
        self._on_layer_picked()

    def chosen_layers(self) -> dict[str, Any]:
        """Input name -> the layer chosen for it (None when none)."""
        return {n: self.inputs_form[f"layer_{n}"].value for n in self._names}

    def typed_axes(self) -> dict[str, str]:
        """Input name -> the axes typed for it (inputs with an empty field left out)."""
        typed = {n: str(self.inputs_form[f"axes_{n}"].value).strip() for n in self._names}
        return {n: a for n, a in typed.items() if a}

    def axes_problem(self, name: str, layer: Any = None) -> str | None:
        """Check the axes typed for input ``name``; show what is wrong under the field.

        Returns
        -------
        str or None
            The problem, or None when the field is empty or the axes fit the layer.
        """
        layer = self.inputs_form[f"layer_{name}"].value if layer is None else layer
        typed = str(self.inputs_form[f"axes_{name}"].value).strip()
        problem = None
        if typed and layer is not None:
            try:
                fit_axes(layer, typed)
            except LayerAxesError as exc:
                problem = str(exc)
        label = self.inputs_form[f"problem_{name}"]
        label.value = problem or ""
        label.visible = bool(problem)
        return problem

    def _on_layers_changed(self, event: Any = None) -> None:
        try:
            self.inputs_form.reset_choices()
            self._on_layer_picked()
        except RuntimeError:  # the panel's widgets are gone
            return

    def _on_layer_picked(self, *args: Any) -> None:
        for name in self._names:
            layer = self.inputs_form[f"layer_{name}"].value
            try:
                shown = layer_axes(layer) if layer is not None else ""
            except LayerAxesError:
                shown = ""
            self.inputs_form[f"axes_{name}"].native.setPlaceholderText(shown)
            self.axes_problem(name, layer)
