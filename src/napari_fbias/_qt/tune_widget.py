"""The Tune widget: search a segmentation step's settings from a few annotated objects.

The analyst paints 5-20 objects in a Labels layer (or marks their centres in
a Points layer), picks the image and the operation (a labels step of the
active approach, or any segmentation operation), and presses *Tune*: the
search (:func:`napari_fbias.pipeline.tune.tune_step`) runs in a worker with a
progress bar and *Cancel*, and the best settings tried show in a small
scoreboard. *Apply* runs the winner as an ordinary recorded step
(:meth:`Workspace.run_op`, the path every widget takes); the search itself
goes to the session record as the approach's ``tuning`` result (the timeline
keeps it), not to the pipeline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.layer_axes import (
    layer_array,
    layer_extra,
    layer_kind,
    layer_ndim,
    shown_extra,
)
from napari_fbias._qt.workers import start_worker
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.ops.registry import get_op, list_ops
from napari_fbias.pipeline.tune import Annotations, TuneResult, tune_step
from napari_fbias.pipeline.values import Value, default_axes

__all__ = ["MAX_WIDTH", "TuneWidget", "annotations_of", "image_value", "run_tuning", "tunable_ops"]

#: Widest the dock may be (pixels), like the other docks.
MAX_WIDTH = 440
BOARD_COLUMNS = ("#", "AP@0.5", "F1", "IoU", "Settings")


def tunable_ops() -> list[str]:
    """Operations tuning can drive alone: one image in, labels out, settings to search."""
    from napari_fbias.pipeline.tune_space import tunable

    out = []
    for spec in list_ops():
        needs = [i for i in spec.inputs if i.required]
        if (
            spec.output == "labels"
            and spec.inputs
            and spec.inputs[0].kind == "image"
            and len(needs) <= 1
            and any(tunable(p) for p in spec.params)
        ):
            out.append(spec.name)
    return out


def image_value(layer: Any, extra: Mapping[str, int] | None = None) -> Value:
    """Return an Image layer's pixels (2D or 3D) with their pixel size.

    For a layer with extra axes (``angle``...), the index ``extra`` (the
    sliders') of them.
    """
    arr = np.asarray(layer_array(layer, extra))
    axes = default_axes(arr.ndim)
    if axes is None or getattr(layer, "rgb", False):
        raise ValueError(
            f"layer {layer.name!r} has {arr.ndim} dimensions: tuning needs one 2D or 3D "
            "grey-level image (split channels and time points into layers first)"
        )
    scale = tuple(float(s) for s in layer.scale)[len(layer_extra(layer)) :]
    return Value(arr, "image", axes, scale, None)


def annotations_of(
    layer: Any, image_layer: Any, extra: Mapping[str, int] | None = None
) -> Annotations:
    """Return the annotations of a Labels or Points layer, in the image layer's pixels.

    Over an image with extra axes (``angle``...), only those of the index
    ``extra`` (the sliders'): a labels layer drawn over the extra axes is cut
    to that index, and points are kept where they lie on it.
    """
    n = layer_ndim(image_layer)  # its extra axes (angle...) left out
    picks = [int(v) for v in (extra or {}).values()]
    if layer_kind(layer) == "labels":
        data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        lead = np.ndim(data) - n
        if lead > 0 and lead == len(picks):
            data = data[tuple(picks)]
        return Annotations(labels=np.asarray(data))
    pts = np.asarray(layer.data, float)
    if pts.size == 0:
        return Annotations(points=np.zeros((0, n)))
    world = pts * np.asarray(layer.scale) + np.asarray(layer.translate)
    data = (world - np.asarray(image_layer.translate)) / np.asarray(image_layer.scale)
    lead = data.shape[1] - n
    if lead > 0 and lead == len(picks):  # points placed on another angle are not this one's
        on = np.all(np.round(data[:, :lead]) == np.asarray(picks, float), axis=1)
        data = data[on]
    return Annotations(points=data[:, -n:])


def run_tuning(
    op: str,
    params: dict[str, Any],
    image: Value,
    annotations: Annotations,
    *,
    report: Callable[[Any], None],
    **options: Any,
) -> TuneResult:
    """Run :func:`tune_step` in a worker, reporting ``(done, total, text)`` as it goes."""
    return tune_step(op, params, image, annotations, progress=_reporter(report), **options)


def _reporter(report: Callable[[Any], None]) -> Callable[[int, int, str], None]:
    return lambda done, total, text: report((done, total, text))


class TuneWidget(QWidget):
    """Tune a segmentation step from a few annotated objects (a napari dock widget).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer; runs are recorded by its workspace.
    """

    title = "Tune"

    def __init__(self, napari_viewer: Any) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.workspace = get_workspace(napari_viewer)
        self.result: TuneResult | None = None
        self.worker: Any = None
        self._cancel = threading.Event()
        self.image_choice = QComboBox()
        self.annotation_choice = QComboBox()
        self.annotation_choice.setToolTip(
            "A Labels layer with 5-20 painted objects, or a Points layer at object centres"
        )
        self.op_choice = QComboBox()
        self.op_choice.setToolTip("A labels step of the active approach, or an operation")
        for combo in (self.image_choice, self.annotation_choice, self.op_choice):
            combo.setSizeAdjustPolicy(
                QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
            )
            combo.setMinimumContentsLength(10)
        self.region_choice = QComboBox()
        self.region_choice.addItem("around the annotated objects", "objects")
        self.region_choice.addItem("their whole bounding box", "box")
        self.region_choice.setToolTip(
            "Where every object was annotated: predictions elsewhere are not counted"
        )
        self.trials = QSpinBox()
        self.trials.setRange(2, 1000)
        self.trials.setValue(60)
        self.seconds = QSpinBox()
        self.seconds.setRange(5, 3600)
        self.seconds.setValue(50)
        self.seconds.setSuffix(" s")
        self.tune_button = QPushButton("Tune")
        self.cancel_button = QPushButton("Cancel")
        self.apply_button = QPushButton("Apply best")
        self.apply_button.setToolTip("Run the best settings as a recorded step")
        self.cancel_button.setEnabled(False)
        self.apply_button.setEnabled(False)
        self.tune_button.clicked.connect(self.tune)
        self.cancel_button.clicked.connect(self.cancel)
        self.apply_button.clicked.connect(self.apply)
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.status = QLabel("Paint 5-20 objects in a Labels layer, then Tune.")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.board = QTableWidget(0, len(BOARD_COLUMNS))
        self.board.setHorizontalHeaderLabels(list(BOARD_COLUMNS))
        self.board.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.board.verticalHeader().setVisible(False)
        header = self.board.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(BOARD_COLUMNS.index("Settings"), QHeaderView.ResizeMode.Stretch)
        self.board.setMaximumHeight(170)

        form = QFormLayout()
        form.addRow("Image", self.image_choice)
        form.addRow("Annotated", self.annotation_choice)
        form.addRow("Step", self.op_choice)
        form.addRow("Scored", self.region_choice)
        limits = QHBoxLayout()
        limits.addWidget(self.trials)
        limits.addWidget(QLabel("trials, at most"))
        limits.addWidget(self.seconds)
        form.addRow("Search", limits)
        buttons = QHBoxLayout()
        for b in (self.tune_button, self.cancel_button, self.apply_button):
            buttons.addWidget(b)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        layout.addWidget(self.board)
        layout.addStretch(1)
        self.setMaximumWidth(MAX_WIDTH)
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self.refresh)
        self.workspace.events.step_recorded.connect(self.refresh)
        self.refresh()

    # --- choices -------------------------------------------------------------------------
    def refresh(self, *_: Any) -> None:
        """Fill the layer and step choices again, keeping what was picked."""
        pickers = ((self.image_choice, ("image",)), (self.annotation_choice, ("labels", "points")))
        for combo, types in pickers:
            current = combo.currentText()
            combo.blockSignals(True)
            combo.clear()
            for layer in self.viewer.layers:
                if layer_kind(layer) in types:
                    combo.addItem(layer.name)
            if current:
                combo.setCurrentText(current)
            combo.blockSignals(False)
        self._fill_ops()

    def _fill_ops(self) -> None:
        current = self.op_choice.currentText()
        self.op_choice.clear()
        ops = set(tunable_ops())
        rec = self.workspace.recorder
        active = rec.active if rec is not None else None
        for st in active.steps if active is not None else ():
            if st.op in ops:
                self.op_choice.addItem(f"step {st.id} ({st.op})", ("step", st.id))
        for name in sorted(ops):
            self.op_choice.addItem(name, ("op", name))
        if current:
            self.op_choice.setCurrentText(current)
        elif self.op_choice.findText("segment.nuclei") >= 0:
            self.op_choice.setCurrentText("segment.nuclei")

    def set_choice(self, image: str, annotations: str, step: str) -> None:
        """Pick layers and a step (the text shown) as the user would."""
        self.image_choice.setCurrentText(image)
        self.annotation_choice.setCurrentText(annotations)
        self.op_choice.setCurrentText(step)

    def _picked(self) -> tuple[str, dict[str, Any], Any | None]:
        """Return (op, starting settings, recorded step or None) of the picked step."""
        kind, name = self.op_choice.currentData() or ("op", "")
        if kind == "step":
            rec = self.workspace.recorder
            step = next(s for s in rec.active.steps if s.id == name)  # type: ignore[union-attr]
            return step.op, dict(step.params), step
        if not name:
            raise ValueError("pick the step or operation to tune")
        return name, {}, None

    # --- tuning --------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        """Whether a search is running."""
        return self.worker is not None

    def tune(self) -> Any:
        """Start the search in a worker; return the worker (None when it cannot start)."""
        if self.running:
            return None
        try:
            image_layer = self.viewer.layers[self.image_choice.currentText()]
            ann_layer = self.viewer.layers[self.annotation_choice.currentText()]
        except KeyError:
            self.status.setText("Pick an image and a Labels or Points layer of annotations.")
            return None
        try:
            op, params, _ = self._picked()
            shown = shown_extra(image_layer, self.viewer.dims)
            value = image_value(image_layer, shown)
            annotations = annotations_of(ann_layer, image_layer, shown)
        except ValueError as exc:
            self.status.setText(str(exc))
            return None
        self._cancel = threading.Event()
        self.result = None
        self.apply_button.setEnabled(False)
        self.tune_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress.setRange(0, self.trials.value())
        self.progress.setValue(0)
        self.status.setText(f"Tuning {op} on {annotations.count} annotated {annotations.kind}…")
        self.worker = start_worker(
            run_tuning,
            op,
            params,
            value,
            annotations,
            n_trials=self.trials.value(),
            timeout=float(self.seconds.value()),
            region=self.region_choice.currentData(),
            cancel=self._cancel,
            desc=None,
            report=self._on_progress,
            returned=self._on_tuned,
            errored=self._on_error,
            finished=self._on_finished,
        )
        return self.worker

    def cancel(self) -> None:
        """Stop the search; the best settings so far are kept."""
        self._cancel.set()
        self.status.setText("Stopping after the current trial…")

    def _on_progress(self, value: tuple[int, int, str]) -> None:
        done, total, text = value
        self.progress.setRange(0, total)
        self.progress.setValue(done)
        self.progress.setFormat(f"%v / %m · {text}")

    def _on_error(self, exc: BaseException) -> None:
        self.status.setText(f"Tuning failed: {exc}")

    def _on_finished(self) -> None:
        self.worker = None
        self.tune_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _on_tuned(self, result: TuneResult) -> None:
        self.result = result
        self.show_board(result)
        start, best = result.start.final, result.best.final
        words = {"done": "", "timeout": " (time limit)", "cancelled": " (cancelled)"}
        self.status.setText(
            f"{len(result.trials)} trials in {result.seconds:.0f} s{words[result.stopped]}: "
            f"AP@0.5 {start.average_precision:.2f} → {best.average_precision:.2f} "  # type: ignore[union-attr]
            f"on the annotated objects. Apply runs the best settings as a step."
        )
        self.apply_button.setEnabled(True)
        self._record(result)

    def show_board(self, result: TuneResult) -> None:
        """Show the scoreboard of ``result``."""
        names = {d.name for d in result.space}
        start = result.start.params
        self.board.setRowCount(len(result.board))
        for i, t in enumerate(result.board):
            s = t.final
            changed = [f"{k}={_short(v)}" for k, v in t.params.items()
                       if k in names and v != start.get(k)]  # fmt: skip
            settings = ", ".join(changed) or "as before"
            cells = [
                str(t.number),
                f"{s.average_precision:.2f}" if s else "–",
                f"{s.f1:.2f}" if s else "–",
                f"{s.mean_iou:.2f}" if s and s.mean_iou is not None else "–",
                settings if not t.error else t.error,
            ]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.board.setItem(i, j, item)

    def board_text(self, row: int, column: str) -> str:
        """Text of a scoreboard cell (for tests and screen readers)."""
        item = self.board.item(row, BOARD_COLUMNS.index(column))
        return item.text() if item is not None else ""

    def _record(self, result: TuneResult) -> None:
        """Note the search in the session (the approach's ``tuning`` result), not the pipeline."""
        rec = self.workspace.ensure_session()
        start, best = result.start.final, result.best.final
        tuning = {
            "op": result.op,
            "annotated": f"{result.n_annotated} {result.annotations}",
            "trials": len(result.trials),
            "seconds": round(result.seconds, 1),
            "ap50_before": round(start.average_precision, 3) if start else None,
            "ap50_after": round(best.average_precision, 3) if best else None,
        }
        rec.set_result({**rec.active.result, "tuning": tuning})  # type: ignore[union-attr]

    def apply(self) -> Any:
        """Run the best settings as an ordinary recorded step; return the workspace's worker."""
        if self.result is None:
            return None
        op, _, step = self._picked()
        spec = get_op(op)
        image_layer = self.viewer.layers[self.image_choice.currentText()]
        inputs = {spec.inputs[0].name: image_layer}
        if step is not None:
            return self.workspace.run_op(
                op, inputs, self.result.params, replaces=step.id, output_name=step.output_layer
            )
        return self.workspace.run_op(op, inputs, self.result.params)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
