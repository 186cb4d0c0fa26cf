"""Sharing a session with other analysts: the space, the session link, joining, the sync state.

:class:`ShareBox` is a small part of the Session panel: where sessions live
(this computer, a shared folder or an object store URL), the link of the
running session (to paste into another analyst's napari), a field to join a
session by its link, and one line saying where the record stands
(``local``, ``online``, ``offline: 3 events waiting``). It only collects input
and shows state; the panel calls the recorder.
"""

from __future__ import annotations

import os
from typing import Any

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import (
    QApplication,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
)

from napari_fbias.session.space import SPACE_ENV

#: What the status line says for each state of the record.
STATUS_TEXT = {
    "local": "Recorded on this computer",
    "online": "Shared: every change is in the space",
}


def status_text(status: str) -> str:
    """Return the words shown for a recorder's ``sync_status``."""
    if status in STATUS_TEXT:
        return STATUS_TEXT[status]
    if status.startswith("offline"):
        return "Offline — recording here, sent when the space is back: " + status[8:].strip()
    return "Shared: " + status


class ShareBox(QGroupBox):
    """Space, link, join and sync state of the running session."""

    #: the user asked to join the session at this link
    join_requested = Signal(str)
    #: the user changed the space (to list and start sessions in)
    space_changed = Signal(str)

    def __init__(self) -> None:
        super().__init__("Share with other analysts")
        self.space = QLineEdit(os.environ.get(SPACE_ENV, ""))
        self.space.setPlaceholderText("this computer — or a shared folder, s3://bucket/prefix")
        self.space.setToolTip(
            "Where sessions live. Other analysts who use the same space see and join the "
            "sessions started here. Credentials come from your environment or fsspec/boto "
            "configuration, never from this field."
        )
        self.space.editingFinished.connect(lambda: self.space_changed.emit(self.space_text))
        self.link = QLineEdit()
        self.link.setReadOnly(True)
        self.link.setPlaceholderText("start or join a session to get its link")
        self.copy_button = QPushButton("Copy")
        self.copy_button.setToolTip("Copy the session link, to send to the other analysts")
        self.copy_button.clicked.connect(self._copy)
        self.join = QLineEdit()
        self.join.setPlaceholderText("paste a session link from another analyst")
        self.join.returnPressed.connect(self._join)
        self.join_button = QPushButton("Join")
        self.join_button.clicked.connect(self._join)
        self.state = QLabel("No session")
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.state.setWordWrap(True)
        link_row = QHBoxLayout()
        link_row.addWidget(self.link, 1)
        link_row.addWidget(self.copy_button)
        join_row = QHBoxLayout()
        join_row.addWidget(self.join, 1)
        join_row.addWidget(self.join_button)
        form = QFormLayout(self)
        form.addRow("Space", self.space)
        form.addRow("Link", link_row)
        form.addRow("Join", join_row)
        form.addRow(self.state)

    @property
    def space_text(self) -> str | None:
        """The chosen space, or None for this computer's sessions folder."""
        return self.space.text().strip() or None

    def show_recorder(self, recorder: Any) -> None:
        """Show the link and the state of ``recorder`` (None: no session)."""
        if recorder is None:
            self.link.clear()
            self.state.setText("No session")
            return
        if self.link.text() != recorder.link:
            self.link.setText(recorder.link)
            self.link.setCursorPosition(0)
        status = recorder.sync_status
        self.state.setText(status_text(status))
        self.state.setToolTip(f"{status}\nThis napari records as client {recorder.client}")

    def _copy(self) -> None:
        if self.link.text():
            QApplication.clipboard().setText(self.link.text())

    def _join(self) -> None:
        text = self.join.text().strip()
        if text:
            self.join_requested.emit(text)
