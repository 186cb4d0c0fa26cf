"""Small Qt pieces of the session panel: text that commits when editing ends, lists, tables.

These are plain Qt widgets because magicgui has no equivalent: a
multi-line text that reports *editing finished* (not every keystroke), an
editable list of short texts, and read-only tables. They hold no session
state: the panel fills them from the recorder's :class:`Session` and turns
their signals into recorder calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLineEdit,
    QListWidget,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_fbias.ops.registry import UnknownOpError, get_op
from napari_fbias.session.model import Approach, RecordedStep, Session
from napari_fbias.session.store import SessionInfo

__all__ = [
    "NotesEdit",
    "SessionForm",
    "SessionTable",
    "StepsTable",
    "TextListEditor",
    "key_params",
    "split_names",
    "tried_counts",
]


def split_names(text: str) -> list[str]:
    """Return the names in a comma- or semicolon-separated list, stripped, without repeats."""
    out: list[str] = []
    for part in text.replace(";", ",").split(","):
        name = part.strip()
        if name and name not in out:
            out.append(name)
    return out


class NotesEdit(QPlainTextEdit):
    """Multi-line text that emits :attr:`editingFinished` when the user is done.

    Done means: the widget loses focus, or Ctrl+Return is pressed, after the
    text was changed. Typing alone emits nothing, so the recorder journals one
    event per edit, not one per keystroke.
    """

    editingFinished = Signal(str)

    def set_committed_text(self, text: str) -> None:
        """Show ``text`` as the current, saved text (does not emit)."""
        if self.toPlainText() != text:
            self.setPlainText(text)
        self.document().setModified(False)

    def finish_editing(self) -> None:
        """Emit :attr:`editingFinished` if the text changed since it was last committed."""
        if self.document().isModified():
            self.document().setModified(False)
            self.editingFinished.emit(self.toPlainText())

    def focusOutEvent(self, event: Any) -> None:
        """Commit the text when the focus leaves."""
        self.finish_editing()
        super().focusOutEvent(event)

    def keyPressEvent(self, event: Any) -> None:
        """Commit on Ctrl+Return; other keys edit as usual."""
        if (
            event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter)
            and event.modifiers() & Qt.KeyboardModifier.ControlModifier
        ):
            self.finish_editing()
            return
        super().keyPressEvent(event)


class TextListEditor(QWidget):
    """A list of short texts (issues, next steps) with a field to add and a button to remove.

    Signals
    -------
    add_requested(str)
        The user typed a text and pressed Return or *Add*.
    remove_requested(int)
        The user asked to remove the selected row.
    """

    add_requested = Signal(str)
    remove_requested = Signal(int)

    def __init__(self, placeholder: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.list = QListWidget()
        self.list.setWordWrap(True)
        self.list.setMaximumHeight(90)
        self.field = QLineEdit()
        self.field.setPlaceholderText(placeholder)
        self.add_button = QPushButton("Add")
        self.remove_button = QPushButton("Remove")
        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.field, 1)
        row.addWidget(self.add_button)
        row.addWidget(self.remove_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.list)
        layout.addLayout(row)
        self.field.returnPressed.connect(self._add)
        self.add_button.clicked.connect(self._add)
        self.remove_button.clicked.connect(self._remove)

    def set_items(self, items: Sequence[str]) -> None:
        """Show ``items`` (the recorded list)."""
        if self.items() != list(items):
            self.list.clear()
            self.list.addItems(list(items))

    def items(self) -> list[str]:
        """Return the texts shown."""
        return [self.list.item(i).text() for i in range(self.list.count())]

    def _add(self) -> None:
        text = self.field.text().strip()
        if text:
            self.field.clear()
            self.add_requested.emit(text)

    def _remove(self) -> None:
        row = self.list.currentRow()
        if row >= 0:
            self.remove_requested.emit(row)


class SessionForm(QWidget):
    """Who came with which question, and who is here: the fields that start a session."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLineEdit()
        self.title.setPlaceholderText("e.g. Nuclei per field")
        self.user = QLineEdit()
        self.user.setPlaceholderText("who brought the question (name only)")
        self.lab = QLineEdit()
        self.question = QLineEdit()
        self.question.setPlaceholderText("e.g. How many nuclei per field?")
        self.analysts = QLineEdit()
        self.analysts.setPlaceholderText("names, separated by commas")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Title", self.title)
        form.addRow("User", self.user)
        form.addRow("Lab", self.lab)
        form.addRow("Question", self.question)
        form.addRow("Analysts", self.analysts)

    def values(self) -> dict[str, Any]:
        """Keyword arguments for ``Workspace.start_session``."""
        return {
            "title": self.title.text().strip(),
            "user": self.user.text().strip(),
            "lab": self.lab.text().strip(),
            "question": self.question.text().strip(),
            "analysts": tuple(split_names(self.analysts.text())),
        }


def _setup_table(t: QTableWidget, columns: Sequence[str]) -> None:
    """Make ``t`` a read-only table with one selectable row at a time and ``columns``."""
    t.setColumnCount(len(columns))
    t.setHorizontalHeaderLabels(list(columns))
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    t.verticalHeader().setVisible(False)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    t.horizontalHeader().setStretchLastSection(True)
    t.setWordWrap(False)


def _fill_row(table: QTableWidget, row: int, values: Sequence[str]) -> None:
    for j, text in enumerate(values):
        item = QTableWidgetItem(text)
        item.setToolTip(text)
        table.setItem(row, j, item)


class SessionTable(QTableWidget):
    """Previous sessions to reopen, newest first: date, title, user, question."""

    COLUMNS = ("Date", "Title", "User", "Question", "Approaches")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _setup_table(self, self.COLUMNS)
        self.infos: list[SessionInfo] = []

    def set_infos(self, infos: Sequence[SessionInfo]) -> None:
        """Show ``infos`` in the given order (``list_sessions`` gives newest first)."""
        self.infos = list(infos)
        self.setRowCount(len(self.infos))
        for i, info in enumerate(self.infos):
            when = (info.updated or info.created)[:16].replace("T", " ")
            user = info.user + (f" ({info.lab})" if info.lab else "")
            title = info.title or info.path.name
            if info.problem:
                title = f"⚠ {title}"
            _fill_row(self, i, (when, title, user, info.question, " ".join(info.approaches)))
            if info.problem:
                self.item(i, 1).setToolTip(info.problem)

    def selected(self) -> SessionInfo | None:
        """Return the session of the selected row, or None."""
        row = self.currentRow()
        return self.infos[row] if 0 <= row < len(self.infos) else None


def key_params(step: RecordedStep, limit: int = 4) -> str:
    """Return the settings of a step that differ from the op's defaults, as ``a=1, b=x``.

    The defaults are those a new step starts from (a setting on auto is None:
    a step that left it on auto shows nothing for it, one that fixed a number
    shows the number). ``"defaults"`` when none differ; at most ``limit``
    settings, then ``…``.
    """
    try:
        defaults = {p.name: p.default for p in get_op(step.op).params if not p.required}
    except UnknownOpError:
        defaults = {}
    changed = [(k, v) for k, v in step.params.items() if k not in defaults or defaults[k] != v]
    if not changed:
        return "defaults"
    text = ", ".join(f"{k}={'auto' if v is None else v}" for k, v in changed[:limit])
    return text + (", …" if len(changed) > limit else "")


def tried_counts(session: Session) -> dict[str, int]:
    """Return step id -> number of earlier versions tried (re-runs that replaced it)."""
    out: dict[str, int] = {}
    for ev in session.timeline:
        if ev.kind == "step_replaced":
            sid = (ev.detail.get("step") or {}).get("id")
            if sid:
                out[sid] = out.get(sid, 0) + 1
    return out


class StepsTable(QTableWidget):
    """The recorded steps of one approach: step, operation, key settings, layer."""

    COLUMNS = ("Step", "Operation", "Settings", "Layer")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        _setup_table(self, self.COLUMNS)
        self.steps: tuple[RecordedStep, ...] = ()

    def set_approach(self, approach: Approach | None, tried: Mapping[str, int]) -> None:
        """Show the steps of ``approach`` (none when None); the selected step stays selected."""
        steps = approach.steps if approach is not None else ()
        chosen = self.selected_step()
        self.steps = tuple(steps)
        self.setRowCount(len(steps))
        for i, st in enumerate(steps):
            name = st.id + (" (stale)" if st.stale else "")
            n = tried.get(st.id, 0)
            if n:
                name += f" · {n} tried"
            layer = st.output_layer or "(layer deleted)"
            _fill_row(self, i, (name, st.op, key_params(st), layer))
            if st.stale:
                self.item(i, 0).setToolTip(
                    "a step it reads was re-run after it: run it again to update its layer"
                )
        self.clearSelection()
        ids = [st.id for st in steps]
        if chosen is not None and chosen.id in ids:
            self.selectRow(ids.index(chosen.id))

    def selected_step(self) -> RecordedStep | None:
        """Return the step of the selected row, or None."""
        rows = self.selectionModel().selectedRows()
        row = rows[0].row() if rows else -1
        return self.steps[row] if 0 <= row < len(self.steps) else None

    def row_texts(self) -> list[tuple[str, ...]]:
        """Return the text of every row (for tests and screen readers)."""
        return [
            tuple(self.item(i, j).text() for j in range(self.columnCount()))
            for i in range(self.rowCount())
        ]
