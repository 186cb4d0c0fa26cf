"""The Session panel: who came with which question, the approaches tried, what was decided.

The panel is a view of the running session and a set of thin callbacks:
every change a user makes goes to the :class:`~napari_fbias.session.SessionRecorder`
of the viewer's :class:`~napari_fbias._qt.workspace.Workspace` (which journals
it to disk before anything shows), and the panel redraws itself from the
recorder's ``changed`` events. It never keeps session state of its own.

* **Session** tab: start a session (title, user, lab, question, analysts
  present: names only) or reopen a previous one from the session store
  (newest first; reopening reads it, re-opens its images from their sources
  and recomputes its result layers, all in a worker thread, and shows what
  was tried).
* **Approaches** tab: add an approach (title, analyst), make one active (it
  receives the recorded steps), edit its title, analyst and notes (saved when
  editing ends, not per keystroke), see its recorded steps and load a step's
  settings back into its widget (:mod:`.step_settings`).
* **Compare** tab: one row per approach with its analyst, number of steps,
  object counts of its label layers (counted off the GUI thread, recorded as
  the approach's result) and a one-line summary; a checkbox shows or hides
  the approach's layers.
* **Conclusion** tab: the solution proposed (which approach, in words), the
  issues raised and the next steps.
* **Export** tab: the delivery bundle, as ``fbias export`` writes it
  (:mod:`.session_export`), and its report.
* **Save** writes the readable snapshot (``session.yaml``).

A ``QWidget`` rather than a magicgui ``Container``: it needs tables, lists
and text that reports the end of editing, which magicgui does not offer.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

from qtpy.QtCore import QObject, Qt, QTimer, Signal
from qtpy.QtGui import QFont
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.approach_compare import (
    CompareTable,
    TruthScoreboard,
    approach_label_data,
    approach_layers,
    compare_rows,
    count_all,
    set_approach_visible,
)
from napari_fbias._qt.fit_width import scrolled
from napari_fbias._qt.session_export import ExportBox
from napari_fbias._qt.session_forms import (
    NotesEdit,
    SessionForm,
    SessionTable,
    StepsTable,
    TextListEditor,
    split_names,
    tried_counts,
)
from napari_fbias._qt.session_share import ShareBox
from napari_fbias._qt.step_settings import load_step_settings
from napari_fbias._qt.workers import start_worker
from napari_fbias.session.errors import SessionError
from napari_fbias.session.model import Approach, Session
from napari_fbias.session.search import SessionQuery, conclusion, find_sessions
from napari_fbias.session.store import SessionInfo, list_sessions

__all__ = ["SessionWidget", "approach_text"]

#: Journal events after which the object counts are counted again.
RECOUNT_EVENTS = frozenset(
    {
        "session_started",
        "session_restored",
        "session_reopened",
        "approach_added",
        "step_recorded",
        "step_replaced",
        "step_removed",
        "layer_removed",
        "layer_renamed",
        "synced",
    }
)
NO_APPROACH = "(none)"


def approach_text(a: Approach) -> str:
    """Return ``"A — classical (Marie)"``: the key, title and analyst of an approach."""
    text = f"{a.key} — {a.title}" if a.title else a.key
    return f"{text} ({a.analyst})" if a.analyst else text


def session_header(s: Session) -> str:
    """Return one or two lines describing the running session (plain text)."""
    who = s.user.name + (f" ({s.user.lab})" if s.user.lab else "")
    parts = [s.title or "Untitled session"]
    if who:
        parts.append(f"for {who}")
    line1 = " — ".join(parts)
    line2 = []
    if s.question:
        line2.append(f"Q: {s.question}")
    if s.analysts:
        line2.append("analysts: " + ", ".join(s.analysts))
    return line1 + ("\n" + " · ".join(line2) if line2 else "")


def conflict_text(t: Any) -> str:
    """Return one line describing a ``conflict`` timeline entry."""
    d = t.detail
    if "field" in d:
        return (
            f"{t.time[:19]} {d['field']}: kept {d.get('kept')!r}, replaced {d.get('overwritten')!r}"
        )
    return f"{t.time[:19]} {d.get('event')} not applied: {d.get('problem')}"


class _Bridge(QObject):
    """Carries recorder events (maybe from a worker thread) to the GUI thread.

    A child of the panel: once the panel is deleted, emitting raises
    ``RuntimeError`` and the panel stops listening.
    """

    event = Signal(object)
    session = Signal(object)


class SessionWidget(QWidget):
    """The Session panel (a napari dock widget).

    Emits ``settings_loaded(names)`` after a recorded step's settings went
    into the widgets named ``names`` ("Segment"...).

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer whose workspace records the session.
    workspace : Workspace, optional
        The workspace to use (default: the viewer's, ``get_workspace``).
    root : str or Path, optional
        Folder of session folders to list for reopening (default:
        ``$FBIAS_SESSION_DIR`` or ``~/.napari-fbias/sessions``).
    embedded : bool
        Leave the pages (:attr:`page_widgets`: Session, Approaches, Compare,
        Conclusion, Export) to a container: the panel then shows only the
        session header, the approach being recorded, its status and *Save
        session* (the Open desk dock holds the pages next to its other tabs
        and follows ``page_requested``).
    """

    #: The names of the widgets ("Segment"...) that received a recorded step's settings.
    settings_loaded = Signal(list)
    #: A page ("Approaches"...) the analyst should see next.
    page_requested = Signal(str)

    def __init__(
        self,
        napari_viewer: Any,
        *,
        workspace: Any = None,
        root: str | os.PathLike[str] | None = None,
        embedded: bool = False,
    ) -> None:
        super().__init__()
        if workspace is None:
            from napari_fbias._qt.workspace import get_workspace

            workspace = get_workspace(napari_viewer)
        self.viewer = napari_viewer
        self.workspace = workspace
        self.root = root
        self.recorder: Any = None
        #: approach key -> {labels layer name -> object count}, from the last count
        self.counts: dict[str, dict[str, int]] = {}
        self._count_generation = 0
        self._list_generation = 0  # the newest session listing wins (they may finish in any order)
        self._workers: set[Any] = set()
        self._notes_key: str | None = None
        self._refreshing = False
        self._refresh_again = False
        self._alive = [True]  # False once Qt deleted the panel (late worker results are dropped)
        self.destroyed.connect(lambda *_args, alive=self._alive: alive.__setitem__(0, False))
        self._bridge = _Bridge(self)
        self._bridge.event.connect(self._on_event)
        self._bridge.session.connect(self._bind)
        self._recount_timer = QTimer(self)
        self._recount_timer.setSingleShot(True)
        self._recount_timer.setInterval(150)
        self._recount_timer.timeout.connect(self.update_counts)
        self._build(embedded)
        self.workspace.events.session_changed.connect(self._on_session_changed)
        self.viewer.layers.events.inserted.connect(self._layers_changed)
        self.viewer.layers.events.removed.connect(self._layers_changed)
        self._bind(self.workspace.recorder)
        self.refresh()
        self.refresh_sessions()

    # --- building ----------------------------------------------------------------------
    def _build(self, embedded: bool) -> None:
        self.header = QLabel("No session yet: start one, or reopen a previous one.")
        self.header.setTextFormat(Qt.TextFormat.PlainText)
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.active_choice = QComboBox()
        self.active_choice.setToolTip(
            "The approach that receives the steps run in Segment, Track, Measure..."
        )
        self.active_choice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.active_choice.setMinimumContentsLength(12)
        self.active_choice.activated.connect(self._on_active_choice)
        active_row = QHBoxLayout()
        active_row.addWidget(QLabel("Recording into"))
        active_row.addWidget(self.active_choice, 1)
        self.export_box = ExportBox()
        self.export_box.about_to_export.connect(self._commit_pending)
        #: page title -> page, in the order of the panel's tabs
        self.page_widgets: dict[str, QWidget] = {
            "Session": self._build_session_tab(),
            "Approaches": self._build_approaches_tab(),
            "Compare": self._build_compare_tab(),
            "Conclusion": self._build_conclusion_tab(),
            "Export": self.export_box,
        }
        #: the panel's own tabs (None when ``embedded``)
        self.tabs: QTabWidget | None = None
        self._scroll: dict[str, QScrollArea] = {}
        if not embedded:
            self.tabs = QTabWidget()
            for title, page in self.page_widgets.items():
                self._scroll[title] = scrolled(page)
                self.tabs.addTab(self._scroll[title], title)
        self.save_button = QPushButton("Save session")
        self.save_button.setToolTip("Write the readable snapshot (session.yaml) now")
        self.save_button.clicked.connect(self.save)
        self.status = QLabel("")
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        self.status.setWordWrap(True)
        bottom = QHBoxLayout()
        bottom.addWidget(self.status, 1)
        bottom.addWidget(self.save_button)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addLayout(active_row)
        if self.tabs is not None:
            layout.addWidget(self.tabs, 1)
        else:
            layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(bottom)

    def show_page(self, title: str) -> None:
        """Bring the page ``title`` ("Approaches", "Export"...) to the front."""
        if self.tabs is not None:
            self.tabs.setCurrentWidget(self._scroll[title])
        self.page_requested.emit(title)

    def _build_session_tab(self) -> QWidget:
        self.share = ShareBox()
        self.share.join_requested.connect(self.reopen)
        self.share.space_changed.connect(lambda _s: self.refresh_sessions())
        self._sync_timer = QTimer(self)
        self._sync_timer.setInterval(1000)
        self._sync_timer.timeout.connect(lambda: self.share.show_recorder(self.recorder))
        self._sync_timer.start()
        self.form = SessionForm()
        self.form.user.editingFinished.connect(self._show_previous)
        self.previous = QLabel("")
        self.previous.setTextFormat(Qt.TextFormat.PlainText)
        self.previous.setWordWrap(True)
        self.follow_up = QComboBox()
        self.follow_up.addItem("(not a follow-up)", None)
        self.follow_up.setToolTip("The earlier session of this user that this one follows up")
        self._infos: list[SessionInfo] = []
        self.start_button = QPushButton("Start session")
        self.start_button.clicked.connect(self.start_session)
        new = QGroupBox("New session")
        box = QVBoxLayout(new)
        box.addWidget(self.form)
        box.addWidget(self.previous)
        follow = QFormLayout()
        follow.addRow("Follow-up of", self.follow_up)
        box.addLayout(follow)
        box.addWidget(self.start_button)

        self.session_table = SessionTable()
        self.session_table.doubleClicked.connect(lambda _index: self.reopen_selected())
        self.reopen_button = QPushButton("Reopen selected")
        self.reopen_button.setToolTip(
            "Continue the selected session: its images are opened again from their sources "
            "(the analysts above are added to it)"
        )
        self.reopen_button.clicked.connect(self.reopen_selected)
        self.refresh_button = QPushButton("Refresh list")
        self.refresh_button.clicked.connect(self.refresh_sessions)
        old = QGroupBox("Previous sessions (newest first)")
        box2 = QVBoxLayout(old)
        box2.addWidget(self.session_table, 1)
        row = QHBoxLayout()
        row.addWidget(self.refresh_button)
        row.addStretch(1)
        row.addWidget(self.reopen_button)
        box2.addLayout(row)

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.share)
        layout.addWidget(new)
        layout.addWidget(old, 1)
        return page

    def _build_approaches_tab(self) -> QWidget:
        self.approach_list = QListWidget()
        self.approach_list.setMaximumHeight(110)
        self.approach_list.currentRowChanged.connect(self._on_approach_row)
        self.new_title = QLineEdit()
        self.new_title.setPlaceholderText("e.g. classical, cellpose")
        self.new_analyst = QComboBox()
        self.new_analyst.setEditable(True)
        self.new_analyst.setMinimumContentsLength(8)
        self.add_approach_button = QPushButton("Add approach")
        self.add_approach_button.clicked.connect(self.add_approach)
        add_row = QHBoxLayout()
        add_row.addWidget(self.new_title, 2)
        add_row.addWidget(self.new_analyst, 1)
        add_row.addWidget(self.add_approach_button)

        self.active_box = QGroupBox("Active approach: none")
        self.active_title = QLineEdit()
        self.active_title.editingFinished.connect(lambda: self._set_approach_field("title"))
        self.active_analyst = QLineEdit()
        self.active_analyst.editingFinished.connect(lambda: self._set_approach_field("analyst"))
        self.notes = NotesEdit()
        self.notes.setPlaceholderText("What was tried, what worked (saved when you leave the box)")
        self.notes.setMaximumHeight(90)
        self.notes.editingFinished.connect(self._commit_notes)
        self.steps_table = StepsTable()
        self.steps_table.doubleClicked.connect(lambda _index: self.load_step_settings())
        self.load_settings_button = QPushButton("Load settings into the widget")
        self.load_settings_button.setToolTip(
            "Fill the widget of the selected step's operation (Segment, Track, Measure or Any "
            "operation; opened when needed) with its method, settings and layers; change "
            "them and press Run"
        )
        self.load_settings_button.clicked.connect(self.load_step_settings)
        form = QFormLayout(self.active_box)
        form.addRow("Title", self.active_title)
        form.addRow("Analyst", self.active_analyst)
        form.addRow("Notes", self.notes)
        form.addRow(QLabel("Recorded steps"))
        form.addRow(self.steps_table)
        form.addRow(self.load_settings_button)

        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.approach_list)
        layout.addLayout(add_row)
        layout.addWidget(self.active_box, 1)
        return page

    def _build_compare_tab(self) -> QWidget:
        self.compare_table = CompareTable()
        self.compare_table.visibility_toggled.connect(self.set_approach_visible)
        self.count_button = QPushButton("Count objects again")
        self.count_button.clicked.connect(self.update_counts)
        self.compare_status = QLabel("")
        self.compare_status.setTextFormat(Qt.TextFormat.PlainText)
        self.compare_status.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(self.compare_status, 1)
        row.addWidget(self.count_button)
        self.show_choice = QComboBox()
        self.show_choice.setToolTip(
            "Recompute an approach's recorded steps on this computer and show its layers "
            "(bit for bit the analyst's result; the images must be readable here)"
        )
        self.show_choice.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon
        )
        self.show_choice.setMinimumContentsLength(8)
        self.show_button = QPushButton("Show here")
        self.show_button.clicked.connect(self.show_here)
        show_row = QHBoxLayout()
        show_row.addWidget(self.show_choice, 1)
        show_row.addWidget(self.show_button)
        show_label = QLabel("Another analyst's approach, recomputed on this computer:")
        show_label.setWordWrap(True)
        page = QWidget()
        layout = QVBoxLayout(page)
        layout.addWidget(self.compare_table, 1)
        self.truth_board = TruthScoreboard(self.viewer)
        layout.addWidget(self.truth_board)
        layout.addWidget(show_label)
        layout.addLayout(show_row)
        layout.addLayout(row)
        return page

    def _build_conclusion_tab(self) -> QWidget:
        self.solution_approach = QComboBox()
        self.solution_approach.activated.connect(lambda _i: self._commit_solution())
        self.solution_text = NotesEdit()
        self.solution_text.setPlaceholderText("The solution proposed to the user")
        self.solution_text.setMaximumHeight(70)
        self.solution_text.editingFinished.connect(lambda _t: self._commit_solution())
        self.issues = TextListEditor("e.g. images at higher resolution needed")
        self.issues.add_requested.connect(lambda t: self._call("add_issue", t))
        self.issues.remove_requested.connect(lambda i: self._call("remove_issue", i))
        self.next_steps = TextListEditor("e.g. send ten more images")
        self.next_steps.add_requested.connect(lambda t: self._call("add_next_step", t))
        self.next_steps.remove_requested.connect(lambda i: self._call("remove_next_step", i))
        page = QWidget()
        form = QFormLayout(page)
        form.addRow("Solution: approach", self.solution_approach)
        form.addRow("Solution", self.solution_text)
        form.addRow("Issues raised", self.issues)
        form.addRow("Next steps", self.next_steps)
        return page

    # --- binding to the recorder -------------------------------------------------------
    def _on_session_changed(self, recorder: Any) -> None:
        try:
            self._bridge.session.emit(recorder)
        except RuntimeError:  # the panel was closed: stop listening
            self.workspace.events.session_changed.disconnect(self._on_session_changed)

    def _on_recorder_event(self, event: dict) -> None:
        try:
            self._bridge.event.emit(event)
        except RuntimeError:  # the panel was closed: stop listening
            self._unbind()

    def _unbind(self) -> None:
        if self.recorder is not None:
            self.recorder.changed.disconnect(self._on_recorder_event)
        self.recorder = None

    def _bind(self, recorder: Any) -> None:
        if recorder is self.recorder:
            return
        self._unbind()
        self.recorder = recorder
        self.counts = {}
        self._notes_key = None
        if recorder is not None:
            recorder.changed.connect(self._on_recorder_event)
        self.export_box.set_recorder(recorder)
        self.refresh()
        self.schedule_count()

    @property
    def alive(self) -> bool:
        """False once Qt has deleted the panel (it then ignores late events)."""
        return self._alive[0]

    def _on_event(self, event: Mapping[str, Any]) -> None:
        if not self.alive:
            return
        self.refresh()
        if event.get("event") in RECOUNT_EVENTS:
            self.schedule_count()

    def _layers_changed(self, _event: Any = None) -> None:
        if not self.alive:
            self.viewer.layers.events.inserted.disconnect(self._layers_changed)
            self.viewer.layers.events.removed.disconnect(self._layers_changed)
            return
        if self.recorder is not None:
            self.schedule_count()

    # --- showing the session -------------------------------------------------------------
    @property
    def session(self) -> Session | None:
        """The session as recorded (None before one is started)."""
        return self.recorder.session if self.recorder is not None else None

    def refresh(self) -> None:
        """Redraw every view from the recorded session.

        A change recorded while redrawing (pending notes of an approach that
        is no longer active) redraws once more afterwards, not from inside.
        """
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        try:
            self._refresh_again = True
            while self._refresh_again:
                self._refresh_again = False
                self._refresh_once()
        finally:
            self._refreshing = False

    def _refresh_once(self) -> None:
        s = self.session
        self.export_box.show_session(s)
        running = s is not None
        for w in (
            self.save_button,
            self.active_box,
            self.active_choice,
            self.compare_table,
            self.count_button,
            self.page_widgets["Conclusion"],
        ):
            w.setEnabled(running)
        if s is None:
            self.header.setText("No session yet: start one, or reopen a previous one.")
            self.header.setToolTip("")
            self.approach_list.blockSignals(True)
            self.approach_list.clear()
            self.approach_list.blockSignals(False)
            self.steps_table.set_approach(None, {})
            self.compare_table.set_rows([], {})
            self.active_choice.clear()
            self.active_choice.addItem("(start or join a session first)", None)
            return
        conflicts = [t for t in s.timeline if t.kind == "conflict"]
        warn = (
            f"\n⚠ {len(conflicts)} change(s) made at the same time on two machines: the later "
            "one was kept, the other is in the timeline (hover for details)"
            if conflicts
            else ""
        )
        self.header.setText(session_header(s) + warn)
        self.header.setToolTip(
            f"Session link: {self.recorder.link}\n" + "\n".join(conflict_text(t) for t in conflicts)
        )
        self.share.show_recorder(self.recorder)
        self._show_choices(s)
        self._show_approaches(s)
        self._show_compare(s)
        self._show_conclusion(s)

    def _show_approaches(self, s: Session) -> None:
        lst = self.approach_list
        keys = [a.key for a in s.approaches]
        lst.blockSignals(True)
        try:
            shown = [lst.item(i).data(Qt.ItemDataRole.UserRole) for i in range(lst.count())]
            if shown != keys:  # rebuild only when approaches were added (not on a switch)
                lst.clear()
                for key in keys:
                    item = QListWidgetItem()
                    item.setData(Qt.ItemDataRole.UserRole, key)
                    lst.addItem(item)
            for i, a in enumerate(s.approaches):
                item = lst.item(i)
                elsewhere = bool(a.client) and a.client != self.recorder.client
                text = approach_text(a) + (" · other napari" if elsewhere else "")
                item.setText(("● " if a.key == s.active else "    ") + text)
                font = QFont(item.font())
                font.setBold(a.key == s.active)
                item.setFont(font)
            lst.setCurrentRow(keys.index(s.active) if s.active in keys else -1)
        finally:
            lst.blockSignals(False)
        self._show_active_choice(s)
        current = self.new_analyst.currentText()
        self.new_analyst.clear()
        self.new_analyst.addItems(list(s.analysts))
        self.new_analyst.setCurrentText(current)
        active = s.approach(s.active) if s.active is not None else None
        if self._notes_key is not None and self._notes_key != s.active:
            self.notes.finish_editing()  # keep what was typed for the approach it was typed for
        self.active_box.setTitle(
            f"Active approach: {approach_text(active)}" if active else "Active approach: none"
        )
        self.active_box.setEnabled(active is not None)
        if active is None:
            self._notes_key = None
            self.notes.set_committed_text("")
            self.steps_table.set_approach(None, {})
            return
        if not self.active_title.hasFocus():
            self.active_title.setText(active.title)
        if not self.active_analyst.hasFocus():
            self.active_analyst.setText(active.analyst)
        if self._notes_key != active.key or not self.notes.document().isModified():
            self.notes.set_committed_text(active.notes)
        self._notes_key = active.key
        self.steps_table.set_approach(active, tried_counts(s))

    def _show_choices(self, s: Session) -> None:
        combo = self.show_choice
        current = combo.currentData()
        combo.blockSignals(True)
        try:
            combo.clear()
            for a in s.approaches:
                if a.steps:
                    combo.addItem(approach_text(a), a.key)
            combo.setCurrentIndex(max(combo.findData(current), 0))
        finally:
            combo.blockSignals(False)
        self.show_button.setEnabled(combo.count() > 0)

    def show_here(self) -> Any:
        """Recompute the chosen approach here and show its layers; return the worker."""
        key = self.show_choice.currentData()
        if key is None or self.recorder is None:
            return None
        self.compare_status.setText(f"Recomputing approach {key} here…")
        token = self._track()
        try:
            return self.workspace.show_approach_here(
                key,
                connect={
                    "returned": lambda _v: self._shown(key),
                    "errored": self._show_failed,
                    "finished": partial(self._worker_done, token),
                },
            )
        except Exception:
            self._worker_done(token)
            raise

    def _shown(self, key: str) -> None:
        if self.alive:
            self.compare_status.setText(f"Approach {key} recomputed here: its layers are shown.")
            self.schedule_count()

    def _show_failed(self, exc: BaseException) -> None:
        if self.alive:
            self.compare_status.setText(f"Cannot show it here: {exc}")

    def _show_compare(self, s: Session) -> None:
        layers = list(self.viewer.layers)
        shown = {}
        for a in s.approaches:
            own = approach_layers(layers, s, a.key)
            shown[a.key] = any(ly.visible for ly in own) if own else True
        self.compare_table.set_rows(compare_rows(s, self.counts), shown)

    def _show_conclusion(self, s: Session) -> None:
        combo = self.solution_approach
        combo.blockSignals(True)
        try:
            combo.clear()
            combo.addItem(NO_APPROACH, None)
            for a in s.approaches:
                combo.addItem(approach_text(a), a.key)
            chosen = s.solution.approach if s.solution else None
            combo.setCurrentIndex(max(combo.findData(chosen), 0))
        finally:
            combo.blockSignals(False)
        if not self.solution_text.document().isModified():
            self.solution_text.set_committed_text(s.solution.text if s.solution else "")
        self.issues.set_items(s.issues)
        self.next_steps.set_items(s.next_steps)

    # --- actions ---------------------------------------------------------------------------
    def _report(self, message: str, *, error: bool = False) -> None:
        self.status.setText(message)
        if error:
            from napari.utils.notifications import show_error

            show_error(message)

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call a recorder method; errors become a message (nothing is recorded then)."""
        if self.recorder is None:
            self._report("Start or reopen a session first.", error=True)
            return None
        try:
            return getattr(self.recorder, method)(*args, **kwargs)
        except (SessionError, ValueError, KeyError, IndexError, OSError) as exc:
            text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            self._report(f"Could not record that: {text}", error=True)
            return None

    def start_session(self) -> Any:
        """Start a new session from the form (the workspace records into it from now on)."""
        values = self.form.values()
        try:
            rec = self.workspace.start_session(**values, space=self.share.space_text)
        except (SessionError, ValueError, OSError) as exc:
            self._report(f"Could not start the session: {exc}", error=True)
            return None
        self._bind(rec)
        earlier = self.follow_up.currentData()
        if isinstance(earlier, SessionInfo) and earlier.session is not None:
            self._call("set_follow_up", earlier.session, str(earlier.path))
        self._report(f"Session started. Link for the other analysts: {rec.link}")
        self.show_page("Approaches")
        self.refresh_sessions()
        return rec

    def refresh_sessions(self) -> Any:
        """List the previous sessions again (read in a worker thread); return the worker."""
        self.refresh_button.setEnabled(False)
        self._list_generation += 1
        space = self.share.space_text
        args, where = ((self.root,), {}) if space is None else ((), {"space": space})
        return self._start(
            list_sessions,
            *args,
            returned=partial(self._show_sessions, self._list_generation),
            errored=self._list_failed,
            finished=self._list_done,
            **where,
        )

    def _start(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        """Run ``func`` in a worker (:func:`start_worker`, no progress bar); busy until it ends."""
        done = partial(self._worker_done, self._track())
        return start_worker(func, *args, desc=None, connect={"finished": done}, **kwargs)

    def _track(self) -> object:
        """Count one more piece of work in flight (:attr:`busy`) until ``_worker_done(token)``."""
        token = object()
        self._workers.add(token)
        return token

    def _worker_done(self, worker: Any) -> None:
        self._workers.discard(worker)

    def _list_done(self) -> None:
        if self.alive:
            self.refresh_button.setEnabled(True)

    def _list_failed(self, exc: BaseException) -> None:
        if self.alive:
            self._report(f"Cannot list the sessions: {exc}", error=True)

    @property
    def busy(self) -> bool:
        """True while the panel lists, reopens, counts (or is about to count) or exports."""
        return bool(self._workers) or self._recount_timer.isActive() or self.export_box.busy

    def _show_sessions(self, generation: int, infos: list[SessionInfo]) -> None:
        if not self.alive or generation != self._list_generation:
            return  # a newer listing (another space, or a refresh) is on its way
        self._infos = infos
        self.session_table.set_infos(infos)
        self._show_previous()

    def _show_previous(self) -> None:
        """Show the user's previous sessions with their conclusions; offer them as follow-ups."""
        user = self.form.user.text().strip()
        running = self.session.id if self.session is not None else None
        found = find_sessions(self._infos, SessionQuery(user=user)) if user else []
        found = [i for i in found if i.id != running]
        self.follow_up.clear()
        self.follow_up.addItem("(not a follow-up)", None)
        for info in found:
            self.follow_up.addItem(f"{info.created[:10]} {info.title or '(untitled)'}", info)
        if not user:
            self.previous.setText("")
        elif not found:
            self.previous.setText(f"No previous session with {user} in this space.")
        else:
            lines = [f"{len(found)} previous session(s) with {user}:"]
            lines += [f"• {i.created[:10]} {i.title}: {conclusion(i)}" for i in found[:3]]
            self.previous.setText("\n".join(lines))

    def reopen_selected(self) -> Any:
        """Reopen the session selected in the list; return its recorder (None on failure)."""
        info = self.session_table.selected()
        if info is None:
            self._report("Select a session in the list first.", error=True)
            return None
        return self.reopen(info.path)

    def reopen(self, path: str | os.PathLike[str]) -> Any:
        """Reopen the session at ``path`` in a worker; return the worker (None if not started).

        The session is read, its images re-opened and its results recomputed
        off the GUI thread (:meth:`Workspace.open_session`); the panel shows
        it as soon as it is read, and says at the end what came back.
        """
        if self.recorder is not None and str(path) in (
            self.recorder.link,
            str(self.recorder.folder),
        ):
            self._report("That session is the one running.")
            return None
        name = Path(str(path)).name
        self._report(f"Reopening {name}…")
        analysts = split_names(self.form.analysts.text())
        worker = self.workspace.open_session(path, analysts=analysts, progress=self._reopening)
        self._workers.add(worker)  # busy until _reopened has said what came back
        worker.fbias_job.when_done.append(partial(self._reopened, worker, name))
        return worker

    def _reopening(self, text: str) -> None:
        if self.alive:
            self.status.setText(f"Reopening: {text}")

    def _reopened(self, worker: Any, name: str, job: Any) -> None:
        self._worker_done(worker)
        if not self.alive or job.cancelled:
            return
        if job.recorder is None:
            self._report(f"Could not open {name}: {job.error}", error=True)
            return
        job.show_caught()
        self._report(job.describe(name), error=bool(job.error))
        self.show_page("Approaches")

    def add_approach(self) -> str | None:
        """Add an approach (title and analyst from the fields); it becomes the active one."""
        if self.recorder is None:
            self.start_session()
            if self.recorder is None:
                return None
        self.notes.finish_editing()
        title = self.new_title.text().strip()
        analyst = self.new_analyst.currentText().strip()
        key = self._call("add_approach", title, analyst)
        if key is not None:
            self.new_title.clear()
            self._report(f"Approach {key} is active: new steps are recorded into it.")
        return key

    def switch_to(self, key: str) -> None:
        """Make approach ``key`` the active one (pending notes are saved first)."""
        self.notes.finish_editing()
        if self.session is not None and key != self.session.active:
            self._call("switch_approach", key)
            if self.session.active == key:
                self._report(f"Approach {key} is active: new steps are recorded into it.")

    def _show_active_choice(self, s: Session) -> None:
        box = self.active_choice
        box.blockSignals(True)
        try:
            box.clear()
            if not s.approaches:
                box.addItem("(none yet: add one in Approaches)", None)
            elif s.active is None:
                box.addItem("(none: choose one)", None)
            for a in s.approaches:
                box.addItem(approach_text(a), a.key)
            box.setCurrentIndex(max(box.findData(s.active), 0))
        finally:
            box.blockSignals(False)

    def _on_active_choice(self, index: int) -> None:
        key = self.active_choice.itemData(index)
        if key is None:
            self.show_page("Approaches")
        elif self.session is not None and key != self.session.active:
            self.switch_to(key)

    def _on_approach_row(self, row: int) -> None:
        item = self.approach_list.item(row)
        if item is not None:
            self.switch_to(item.data(Qt.ItemDataRole.UserRole))

    def _commit_notes(self, text: str | None = None) -> None:
        key = self._notes_key
        if key is None or self.session is None:
            return
        text = self.notes.toPlainText() if text is None else text
        if text != self.session.approach(key).notes:
            self._call("set_notes", text, approach=key)
        # show what was recorded (URLs lose their credentials)
        if key == self.session.active:
            self.notes.set_committed_text(self.session.approach(key).notes)

    def _set_approach_field(self, field: str) -> None:
        s = self.session
        if s is None or s.active is None:
            return
        edit = self.active_title if field == "title" else self.active_analyst
        value = edit.text().strip()
        if value != getattr(s.approach(s.active), field):
            if field == "analyst" and value:
                self._call("add_analysts", value)
            self._call("set_field", field, value, approach=s.active)

    def _commit_pending(self) -> None:
        """Record the notes and solution still being typed (before exporting)."""
        self.notes.finish_editing()
        self.solution_text.finish_editing()

    def load_step_settings(self) -> list[str]:
        """Load the selected recorded step's settings into its widget; return the widgets' names."""
        step = self.steps_table.selected_step()
        s = self.session
        if step is None or s is None:
            self._report("Select a recorded step first.")
            return []
        try:
            loaded = load_step_settings(self.viewer, self.workspace, step, s.active or "")
        except KeyError as exc:  # an operation not installed here
            self._report(
                f"Cannot load its settings: {exc.args[0] if exc.args else exc}", error=True
            )
            return []
        self._report(
            f"Settings of step {step.id} loaded into {', '.join(loaded)}: "
            "change them and press Run."
        )
        self.settings_loaded.emit(list(loaded))
        return loaded

    def _commit_solution(self) -> None:
        s = self.session
        if s is None:
            return
        key = self.solution_approach.currentData()
        text = self.solution_text.toPlainText().strip()
        current = (s.solution.approach, s.solution.text) if s.solution else (None, "")
        if (key, text) != current:
            self._call("set_solution", text, approach=key)
        s = self.session
        self.solution_text.set_committed_text(s.solution.text if s.solution else "")

    def save(self) -> Path | None:
        """Write the snapshot ``session.yaml`` (pending notes first); return its path."""
        self.notes.finish_editing()
        self.solution_text.finish_editing()
        path = self._call("save")
        if path is not None:
            self._report(f"Saved {path}")
        return path

    # --- comparing --------------------------------------------------------------------------
    def schedule_count(self) -> None:
        """Count the objects again soon (several changes in a row give one count)."""
        self._recount_timer.start()

    def update_counts(self) -> Any:
        """Count the objects of every approach's label layers in a worker; return the worker."""
        s = self.session
        if s is None:
            return None
        self._count_generation += 1
        generation = self._count_generation
        data = approach_label_data(self.viewer.layers, s)
        self.compare_status.setText("Counting objects…")
        return self._start(
            count_all, data, returned=partial(self._counted, generation), errored=self._count_failed
        )

    def _count_failed(self, exc: BaseException) -> None:
        if self.alive:
            self.compare_status.setText(f"Cannot count the objects: {exc}")

    def _counted(self, generation: int, counts: dict[str, dict[str, int]]) -> None:
        if not self.alive or generation != self._count_generation or self.session is None:
            return  # a newer count is on its way, or the session changed
        self.counts = counts
        s = self.session
        for a in s.approaches:
            found = counts.get(a.key)
            if found and dict(a.result.get("objects") or {}) != found:
                self._call("set_result", {**a.result, "objects": dict(found)}, approach=a.key)
        total = sum(len(v) for v in counts.values())
        self.compare_status.setText(f"Objects counted in {total} label layer(s).")
        self._show_compare(self.session)

    def set_approach_visible(self, key: str, visible: bool) -> None:
        """Show or hide all the layers of approach ``key``."""
        if self.session is not None:
            set_approach_visible(self.viewer.layers, self.session, key, visible)
