"""The login part of the OMERO browser: server, credentials, group, connection state.

:class:`LoginPanel` is a view: it collects what the analyst typed and shows
the state of the connection, but it never holds a connection nor a secret.
The browser (:mod:`.browser`) reads a :class:`~.login_model.LoginRequest`
and the secret, and does the login off the GUI thread
(:func:`~.login_model.connect`).

Secrets: the password and session-key fields are read with
:meth:`LoginPanel.take_secret`, which empties the field at once; they are
never kept in an attribute, a request, a log line or a file. Only the
connection object (Qt-free, in :mod:`napari_fbias.io.omero.connection`)
keeps the session key, in memory, for reconnecting.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qtpy.QtCore import Signal
from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._qt.omero.login_model import MODES, LoginRequest, list_cli_sessions
from napari_fbias.io.omero.clisessions import CliSession
from napari_fbias.io.omero.connection import ALL_GROUPS, OmeroConnection
from napari_fbias.io.omero.uri import DEFAULT_PORT

__all__ = ["LoginPanel"]

_OK_STYLE = "color: #3a3;"
_LOST_STYLE = "color: #d33; font-weight: bold;"


class LoginPanel(QWidget):
    """Server and credentials form, group choice and connection state (a view only).

    Signals
    -------
    login_clicked, logout_clicked, reconnect_clicked
        The buttons.
    group_chosen : int
        The analyst picked a group (id; ``-1`` = all my groups).
    """

    login_clicked = Signal()
    logout_clicked = Signal()
    reconnect_clicked = Signal()
    group_chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None, sessions_dir: str | Path | None = None):
        super().__init__(parent)
        self._sessions_dir = sessions_dir
        self._filling_groups = False

        self.server = QLineEdit()
        self.server.setPlaceholderText("omero.example.org or wss://omero.example.org/omero-ws")
        self.port = QSpinBox()
        self.port.setRange(1, 65535)
        self.port.setValue(DEFAULT_PORT)
        self.port.setToolTip("Router port (ignored for a websocket URL or HOST:PORT)")
        self.mode = QComboBox()
        for key, label in MODES:
            self.mode.addItem(label, key)

        # one page of fields per mode
        self.user = QLineEdit()
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("never stored")
        self.session_key = QLineEdit()
        self.session_key.setEchoMode(QLineEdit.EchoMode.Password)
        self.session_key.setPlaceholderText("from OMERO.web or `omero sessions key`")
        self.cli_sessions = QComboBox()
        self.cli_refresh = QPushButton("Find")
        self.cli_refresh.setToolTip("Look for sessions stored by `omero login`")
        self.pages = QStackedWidget()
        pw_page = QWidget()
        pw_form = QFormLayout(pw_page)
        pw_form.setContentsMargins(0, 0, 0, 0)
        pw_form.addRow("user", self.user)
        pw_form.addRow("password", self.password)
        key_page = QWidget()
        key_form = QFormLayout(key_page)
        key_form.setContentsMargins(0, 0, 0, 0)
        key_form.addRow("session key", self.session_key)
        cli_page = QWidget()
        cli_row = QHBoxLayout(cli_page)
        cli_row.setContentsMargins(0, 0, 0, 0)
        cli_row.addWidget(self.cli_sessions, 1)
        cli_row.addWidget(self.cli_refresh)
        for page in (pw_page, key_page, cli_page):
            self.pages.addWidget(page)

        self.login_button = QPushButton("Log in")
        self.logout_button = QPushButton("Log out")
        self.reconnect_button = QPushButton("Reconnect")
        self.reconnect_button.setToolTip(
            "Open a new session in place of the lost one; layers and the recorded session stay"
        )
        self.group = QComboBox()
        self.group.setToolTip("Group to browse; objects are written in their own group")
        self.state = QLabel("Not connected")
        self.state.setWordWrap(True)

        form = QFormLayout()
        server_row = QHBoxLayout()
        server_row.addWidget(self.server, 1)
        server_row.addWidget(QLabel("port"))
        server_row.addWidget(self.port)
        form.addRow("server", server_row)
        form.addRow("log in with", self.mode)
        form.addRow(self.pages)
        buttons = QHBoxLayout()
        buttons.addWidget(self.login_button)
        buttons.addWidget(self.reconnect_button)
        buttons.addWidget(self.logout_button)
        form.addRow(buttons)
        form.addRow("group", self.group)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(form)
        layout.addWidget(self.state)

        self.mode.currentIndexChanged.connect(self._on_mode)
        self.cli_refresh.clicked.connect(self.find_cli_sessions)
        self.login_button.clicked.connect(self.login_clicked)
        self.logout_button.clicked.connect(self.logout_clicked)
        self.reconnect_button.clicked.connect(self.reconnect_clicked)
        self.password.returnPressed.connect(self.login_clicked)
        self.session_key.returnPressed.connect(self.login_clicked)
        self.group.currentIndexChanged.connect(self._on_group)
        self.show_disconnected()

    # --- reading the form ----------------------------------------------------------------
    @property
    def mode_key(self) -> str:
        """The chosen login mode (``"password"``, ``"session_key"``, ``"cli"``)."""
        return str(self.mode.currentData())

    def set_mode(self, key: str) -> None:
        """Choose a login mode by its key."""
        index = self.mode.findData(key)
        if index < 0:
            raise ValueError(f"unknown login mode {key!r}")
        self.mode.setCurrentIndex(index)

    def request(self) -> LoginRequest:
        """Return what to log in to (no secret).

        Raises
        ------
        ValueError
            When the server (or, for a password, the user name) is missing.
        """
        mode = self.mode_key
        if mode == "cli":
            chosen = self.cli_sessions.currentData()
            if not chosen:
                raise ValueError(
                    "no `omero login` session found; run `omero login` first, or log in with a "
                    "password"
                )
            host, port, user = chosen
            return LoginRequest(mode="cli", address=host, port=port, user=user)
        address = self.server.text().strip()
        if not address:
            raise ValueError("type the OMERO server (host name or wss:// URL) first")
        port = None
        if "://" not in address and not address.rpartition(":")[2].isdigit():
            port = int(self.port.value())
        user = self.user.text().strip()
        if mode == "password" and not user:
            raise ValueError("type your OMERO user name")
        return LoginRequest(mode=mode, address=address, port=port, user=user)

    def take_secret(self) -> str | None:
        """Return the password or session key typed for the current mode and clear both fields."""
        mode = self.mode_key
        value = None
        if mode == "password":
            value = self.password.text() or None
        elif mode == "session_key":
            value = self.session_key.text() or None
        self.clear_secrets()
        return value

    def take_password(self) -> str | None:
        """Return the password field's text (None if empty) and clear the secret fields."""
        value = self.password.text() or None
        self.clear_secrets()
        return value

    def clear_secrets(self) -> None:
        """Empty the password and session-key fields."""
        self.password.clear()
        self.session_key.clear()

    def find_cli_sessions(self) -> list[CliSession]:
        """Fill the list of ``omero login`` sessions (no key is shown); return them."""
        found = list_cli_sessions(self._sessions_dir)
        self.cli_sessions.clear()
        for s in found:
            self.cli_sessions.addItem(f"{s.user}@{s.host}:{s.port}", (s.host, s.port, s.user))
        if not found:
            self.cli_sessions.addItem("(none found: run `omero login`)", None)
        return found

    # --- showing the state ---------------------------------------------------------------
    def show_connected(self, conn: OmeroConnection) -> None:
        """Show a live connection (host, user, group)."""
        self.state.setStyleSheet(_OK_STYLE)
        group = self.group.currentText() or str(conn.group_id)
        self.state.setText(f"Connected to {conn.host} as {conn.user} (group {group})")
        self._enable(connected=True, lost=False)

    def show_disconnected(self, message: str = "Not connected") -> None:
        """Show that there is no connection."""
        self.state.setStyleSheet("")
        self.state.setText(message)
        self._filling_groups = True
        self.group.clear()
        self._filling_groups = False
        self._enable(connected=False, lost=False)

    def show_lost(self, message: str) -> None:
        """Show a lost connection, with the Reconnect button."""
        self.state.setStyleSheet(_LOST_STYLE)
        self.state.setText(message)
        self._enable(connected=True, lost=True)

    def show_busy(self, message: str) -> None:
        """Show that a login or reconnect is in progress."""
        self.state.setStyleSheet("")
        self.state.setText(message)
        self.login_button.setEnabled(False)
        self.reconnect_button.setEnabled(False)

    def _enable(self, *, connected: bool, lost: bool) -> None:
        self.login_button.setEnabled(not connected)
        self.logout_button.setEnabled(connected)
        self.reconnect_button.setVisible(lost)
        self.reconnect_button.setEnabled(lost)
        self.group.setEnabled(connected and not lost and self.group.count() > 0)
        for w in (self.server, self.port, self.user, self.mode):
            w.setEnabled(not connected)

    def set_groups(self, groups: Sequence[tuple[int, str]], current: int | None) -> None:
        """List the user's groups (plus "all my groups") and select ``current``."""
        self._filling_groups = True
        try:
            self.group.clear()
            for gid, name in groups:
                self.group.addItem(f"{name} ({gid})", int(gid))
            self.group.addItem("all my groups", ALL_GROUPS)
            index = self.group.findData(current) if current is not None else 0
            self.group.setCurrentIndex(max(index, 0))
        finally:
            self._filling_groups = False
        self.group.setEnabled(True)

    def _on_mode(self, index: int) -> None:
        self.pages.setCurrentIndex(index)
        if self.mode_key == "cli":
            self.find_cli_sessions()

    def _on_group(self, index: int) -> None:
        if self._filling_groups or index < 0:
            return
        gid: Any = self.group.itemData(index)
        if gid is not None:
            self.group_chosen.emit(int(gid))
