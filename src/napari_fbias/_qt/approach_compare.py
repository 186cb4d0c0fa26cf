"""Compare the approaches of a session side by side.

One row per approach: who tried it, how many steps, how many objects its
label layers hold (counted from the layers themselves, off the GUI thread)
and a one-line summary. The layers of an approach are the layers its steps
produced (named after it, ``"A: nuclei"``); the table toggles their
visibility per approach.

The counting and the row building are plain functions (tested without a
viewer); :class:`CompareTable` only shows rows and reports checkbox toggles.

With a ground-truth (or annotation) Labels layer, :class:`TruthScoreboard`
scores every approach's label layers against it
(:func:`napari_fbias.ops.metrics.scoreboard`: AP@0.5, F1, mean IoU; for a
partial annotation only around the annotated objects) in a worker, and
records each approach's scores as its ``ground_truth`` result (the report
shows them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.layer_axes import layer_kind
from napari_fbias.ops.metrics import Scores, annotated_region, scoreboard
from napari_fbias.session.model import Approach, Session

__all__ = [
    "CompareRow",
    "CompareTable",
    "TruthScoreboard",
    "approach_label_data",
    "approach_layers",
    "compare_rows",
    "count_objects",
    "count_all",
    "score_all",
    "set_approach_visible",
    "summary_line",
    "truth_candidates",
]

#: Longest summary shown in the table (characters).
SUMMARY_CHARS = 90
COLUMNS = ("Approach", "Analyst", "Steps", "Objects", "Shown", "Summary")


def layer_approach(layer: Any) -> str | None:
    """Return the approach key recorded in a layer's metadata, or None."""
    meta = getattr(layer, "metadata", None) or {}
    info = meta.get("fbias") if isinstance(meta, Mapping) else None
    key = info.get("approach") if isinstance(info, Mapping) else None
    return str(key) if key else None


def approach_layers(layers: Iterable[Any], session: Session, key: str) -> list[Any]:
    """Return the napari layers that approach ``key`` produced, in layer-list order.

    A layer belongs to the approach when one of its steps produced it (its
    ``output_layer``), or when the layer's ``metadata["fbias"]["approach"]``
    names it.
    """
    names = {st.output_layer for st in session.approach(key).steps if st.output_layer}
    return [ly for ly in layers if ly.name in names or layer_approach(ly) == key]


def _is_labels(layer: Any) -> bool:
    return layer_kind(layer) == "labels"  # also through napari's plugin proxy


def approach_label_data(layers: Iterable[Any], session: Session) -> dict[str, dict[str, Any]]:
    """Return approach key -> {labels layer name -> its full-resolution data}.

    Collected on the GUI thread (cheap: no pixels are read), counted by
    :func:`count_all` in a worker.
    """
    layers = list(layers)
    out: dict[str, dict[str, Any]] = {}
    for a in session.approaches:
        found = {}
        for ly in approach_layers(layers, session, a.key):
            if _is_labels(ly):
                found[ly.name] = ly.data[0] if getattr(ly, "multiscale", False) else ly.data
        out[a.key] = found
    return out


def count_objects(data: Any) -> int:
    """Return the number of distinct objects (non-zero labels) in a label array."""
    arr = np.asarray(data)
    if arr.size == 0:
        return 0
    if arr.dtype.kind not in "iub":
        raise TypeError(f"cannot count objects in a {arr.dtype} array: labels are integers")
    flat = arr.ravel()
    lo, hi = int(flat.min()), int(flat.max())
    if lo >= 0 and hi < 1 << 24:
        return int(np.count_nonzero(np.bincount(flat)[1:]))
    values = np.unique(flat)
    return int(np.count_nonzero(values))


def count_all(data: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, int]]:
    """Count the objects of every labels layer: approach -> {layer -> count} (worker-safe)."""
    return {key: {name: count_objects(arr) for name, arr in d.items()} for key, d in data.items()}


def _short(op: str) -> str:
    return op.rsplit(".", 1)[-1]


def summary_line(approach: Approach, limit: int = SUMMARY_CHARS) -> str:
    """Return one line describing an approach: its op chain, then the first line of its notes."""
    chain = " → ".join(_short(st.op) for st in approach.steps) or "no steps yet"
    note = approach.notes.strip().splitlines()[0].strip() if approach.notes.strip() else ""
    text = f"{chain} — {note}" if note else chain
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass(frozen=True)
class CompareRow:
    """One approach in the comparison table."""

    key: str
    title: str
    analyst: str
    n_steps: int
    counts: Mapping[str, int] = field(default_factory=dict)
    summary: str = ""
    recorded: bool = False

    @property
    def label(self) -> str:
        """``"A — classical"`` (the key, then the title when there is one)."""
        return f"{self.key} — {self.title}" if self.title else self.key

    @property
    def objects_text(self) -> str:
        """Object counts as shown: ``"112"`` for one layer, ``"nuclei: 112, cells: 40"`` else."""
        if not self.counts:
            return "–"
        if len(self.counts) == 1:
            text = str(next(iter(self.counts.values())))
        else:
            text = ", ".join(f"{_unprefixed(n, self.key)}: {c}" for n, c in self.counts.items())
        return f"{text} (recorded)" if self.recorded else text


def _unprefixed(name: str, key: str) -> str:
    prefix = f"{key}: "
    return name[len(prefix) :] if name.startswith(prefix) else name


def compare_rows(
    session: Session, counts: Mapping[str, Mapping[str, int]] | None = None
) -> list[CompareRow]:
    """Return one :class:`CompareRow` per approach, in the session's order.

    ``counts`` are the counts made from the layers; an approach none of whose
    label layers is open (e.g. in a reopened session) shows the counts its
    result recorded, marked as such.
    """
    counts = counts or {}
    rows = []
    for a in session.approaches:
        live = dict(counts.get(a.key) or {})
        saved = a.result.get("objects")
        recorded = not live and isinstance(saved, Mapping) and bool(saved)
        rows.append(
            CompareRow(
                key=a.key,
                title=a.title,
                analyst=a.analyst,
                n_steps=len(a.steps),
                counts=dict(saved) if recorded else live,  # type: ignore[arg-type]
                summary=summary_line(a),
                recorded=recorded,
            )
        )
    return rows


def set_approach_visible(layers: Iterable[Any], session: Session, key: str, visible: bool) -> int:
    """Show or hide every layer of approach ``key``; return how many layers changed."""
    n = 0
    for ly in approach_layers(layers, session, key):
        if ly.visible != visible:
            ly.visible = visible
            n += 1
    return n


class CompareTable(QTableWidget):
    """The comparison table: one row per approach, a checkbox to show/hide its layers.

    Signals
    -------
    visibility_toggled(str, bool)
        The user (un)checked the *Shown* box of an approach.
    """

    visibility_toggled = Signal(str, bool)

    def __init__(self, parent: Any = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(list(COLUMNS))
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Summary"), QHeaderView.ResizeMode.Stretch)
        self._keys: list[str] = []
        self._filling = False
        self.itemChanged.connect(self._on_item_changed)

    @property
    def keys(self) -> list[str]:
        """Approach key of each row."""
        return list(self._keys)

    def set_rows(self, rows: list[CompareRow], shown: Mapping[str, bool]) -> None:
        """Show ``rows``; ``shown`` says which approaches have their layers visible."""
        self._filling = True
        try:
            self.setRowCount(len(rows))
            self._keys = [r.key for r in rows]
            for i, r in enumerate(rows):
                values = {
                    "Approach": r.label,
                    "Analyst": r.analyst,
                    "Steps": str(r.n_steps),
                    "Objects": r.objects_text,
                    "Summary": r.summary,
                }
                for column, text in values.items():
                    item = QTableWidgetItem(text)
                    item.setToolTip(text)
                    if column == "Steps":
                        item.setTextAlignment(
                            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
                        )
                    self.setItem(i, COLUMNS.index(column), item)
                box = QTableWidgetItem()
                box.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                box.setCheckState(
                    Qt.CheckState.Checked if shown.get(r.key, True) else Qt.CheckState.Unchecked
                )
                self.setItem(i, COLUMNS.index("Shown"), box)
        finally:
            self._filling = False

    def cell_text(self, row: int, column: str) -> str:
        """Text of a cell (by column title), for tests and screen readers."""
        item = self.item(row, COLUMNS.index(column))
        return item.text() if item is not None else ""

    def set_shown(self, key: str, shown: bool) -> None:
        """(Un)check the *Shown* box of approach ``key`` as the user would."""
        self.item(self._keys.index(key), COLUMNS.index("Shown")).setCheckState(
            Qt.CheckState.Checked if shown else Qt.CheckState.Unchecked
        )

    def _on_item_changed(self, item: QTableWidgetItem) -> None:
        if self._filling or item.column() != COLUMNS.index("Shown"):
            return
        self.visibility_toggled.emit(
            self._keys[item.row()], item.checkState() == Qt.CheckState.Checked
        )


# --- scores against a ground truth ------------------------------------------------------

#: Columns of the ground-truth scoreboard.
SCORE_COLUMNS = ("Approach", "Layer", "AP@0.5", "F1", "Mean IoU")
#: Words that make a Labels layer the likely ground truth.
TRUTH_WORDS = ("ground truth", "ground_truth", "truth", "annotat", "painted", "gt")


def truth_candidates(layers: Iterable[Any], session: Session | None) -> list[str]:
    """Labels layers that no approach produced, likeliest ground truth first."""
    made: set[str] = set()
    if session is not None:
        made = {st.output_layer for _, st in session.all_steps() if st.output_layer}
    names = [
        ly.name
        for ly in layers
        if _is_labels(ly) and ly.name not in made and layer_approach(ly) is None
    ]
    return sorted(names, key=lambda n: not any(w in n.lower() for w in TRUTH_WORDS))


def score_all(
    truth: Any, data: Mapping[str, Mapping[str, Any]], partial: bool = False
) -> dict[str, dict[str, Scores]]:
    """Score every approach's labels against ``truth``: approach -> {layer -> Scores}.

    Layers of another shape than the truth are left out. ``partial``: the
    truth annotates some objects only; predictions far from them do not count
    (:func:`napari_fbias.ops.metrics.annotated_region`). Worker-safe.
    """
    gt = np.asarray(truth)
    region = annotated_region(gt) if partial and gt.any() else None
    out: dict[str, dict[str, Scores]] = {}
    for key, layers in data.items():
        found = {}
        for name, arr in layers.items():
            pred = np.asarray(arr)
            if pred.shape == gt.shape and pred.dtype.kind in "iub":
                found[name] = scoreboard(gt, pred, region)
        out[key] = found
    return out


class TruthScoreboard(QWidget):
    """Ground truth: [none | layer], a Score button and AP@0.5 / F1 / mean IoU per approach.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Its layers are scored; its workspace's recorder gets the scores.
    """

    def __init__(self, viewer: Any, parent: Any = None) -> None:
        super().__init__(parent)
        from napari_fbias._qt.workspace import get_workspace

        self.viewer = viewer
        self.workspace = get_workspace(viewer)
        self.scores: dict[str, dict[str, Scores]] = {}
        self.worker: Any = None
        self.truth_choice = QComboBox()
        self.truth_choice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.truth_choice.setMinimumContentsLength(8)
        self.truth_choice.setToolTip("A Labels layer of ground-truth or annotated objects")
        self.partial = QCheckBox("partial")
        self.partial.setToolTip(
            "Only some objects are annotated: score only around them (unannotated objects "
            "found by an approach are not counted as false positives)"
        )
        self.score_button = QPushButton("Score")
        self.score_button.clicked.connect(self.score)
        self.table = QTableWidget(0, len(SCORE_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(SCORE_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.setMaximumHeight(150)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        row = QHBoxLayout()
        row.addWidget(QLabel("Ground truth"))
        row.addWidget(self.truth_choice, 1)
        row.addWidget(self.partial)
        row.addWidget(self.score_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(self.table)
        layout.addWidget(self.status)
        viewer.layers.events.inserted.connect(self.refresh)
        viewer.layers.events.removed.connect(self.refresh)
        self.refresh()

    def refresh(self, *_: Any) -> None:
        """List the candidate ground-truth layers again (keeping the one picked)."""
        current = self.truth_choice.currentText()
        rec = self.workspace.recorder
        names = truth_candidates(self.viewer.layers, rec.session if rec is not None else None)
        self.truth_choice.clear()
        self.truth_choice.addItem("none")
        self.truth_choice.addItems(names)
        if current and current in names:
            self.truth_choice.setCurrentText(current)
        elif names:
            self.truth_choice.setCurrentText(names[0])

    def score(self) -> Any:
        """Score every approach against the chosen layer in a worker; return the worker."""
        from napari_fbias._qt.workers import start_worker

        rec = self.workspace.recorder
        name = self.truth_choice.currentText()
        if rec is None or name in ("", "none") or name not in self.viewer.layers:
            self.status.setText("Pick a ground-truth Labels layer (and record some approaches).")
            return None
        layer = self.viewer.layers[name]
        truth = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
        data = approach_label_data(self.viewer.layers, rec.session)
        self.status.setText("Scoring…")
        self.worker = start_worker(
            score_all,
            truth,
            data,
            self.partial.isChecked(),
            desc=None,
            returned=partial(self._scored, name),
            errored=self._failed,
            finished=self._done,
        )
        return self.worker

    def _done(self) -> None:
        self.worker = None

    def _failed(self, exc: BaseException) -> None:
        self.status.setText(f"Cannot score: {exc}")

    def _scored(self, truth: str, scores: dict[str, dict[str, Scores]]) -> None:
        self.scores = scores
        rows = [(k, n, s) for k, found in scores.items() for n, s in found.items()]
        self.table.setRowCount(len(rows))
        for i, (key, name, s) in enumerate(rows):
            cells = (key, _unprefixed(name, key), f"{s.average_precision:.3f}", f"{s.f1:.3f}",
                     f"{s.mean_iou:.3f}" if s.mean_iou is not None else "–")  # fmt: skip
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.table.setItem(i, j, item)
        self.status.setText(f"Scored {len(rows)} label layer(s) against {truth}.")
        rec = self.workspace.recorder
        if rec is None:
            return
        for key, found in scores.items():
            if not found:
                continue
            layer, s = list(found.items())[-1]  # the approach's latest labels
            entry = {
                "truth": truth,
                "layer": layer,
                "partial": self.partial.isChecked(),
                "ap50": round(s.average_precision, 4),
                "f1": round(s.f1, 4),
                "mean_iou": None if s.mean_iou is None else round(s.mean_iou, 4),
            }
            result = rec.session.approach(key).result
            if result.get("ground_truth") != entry:
                try:
                    rec.set_result({**result, "ground_truth": entry}, approach=key)
                except (KeyError, ValueError) as exc:  # e.g. another analyst's approach
                    self.status.setText(f"Scores of {key} not recorded: {exc}")

    def cell_text(self, row: int, column: str) -> str:
        """Text of a scoreboard cell (by column title)."""
        item = self.table.item(row, SCORE_COLUMNS.index(column))
        return item.text() if item is not None else ""
