"""The OMERO browser in napari: log in, browse, open images, send results back.

* **Log in** (:mod:`.login`, :mod:`.login_model`): server (host, port or
  websocket URL) and a user name and password, an existing session key, or
  the session ``omero login`` stored; then pick a group. The password field
  is emptied as soon as the login starts; the secret lives only in the
  connection object (:class:`~napari_fbias.io.omero.connection.OmeroConnection`).
* **Browse and open** (:mod:`.browse_box`, :mod:`.tree`, :mod:`.browse_model`):
  Projects > Datasets > Images and Screens > Plates > Wells > fields;
  children are fetched when a node is expanded, in a worker thread, then the
  images' thumbnails. Images open by double-click, the Open button, or a
  pasted ``omero://`` URI or OMERO.web link, lazily, and are recorded in the
  running session by their URI (never credentials).
* **Send back** (:mod:`.send_box`, :mod:`.sendback_model`) a labels layer as
  ROIs, a measurement table as an OMERO.table and files to the image the
  layer came from.
* **Lost connection** (server restart, expired session): a clear message and
  a Reconnect button; layers, their lazy data and the recorded session stay.

Every worker starts through :class:`.jobs.OmeroJobs`. Without omero-py the
widget only shows how to install it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import napari
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import QGroupBox, QLabel, QVBoxLayout, QWidget

from napari_fbias._qt.fit_width import scrolled
from napari_fbias._qt.layer_axes import unwrap
from napari_fbias._qt.omero.browse_box import BrowseBox
from napari_fbias._qt.omero.jobs import OmeroJobs
from napari_fbias._qt.omero.login import LoginPanel
from napari_fbias._qt.omero.login_model import adopt, login, reconnect, switch_group
from napari_fbias._qt.omero.send_box import SendBox
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io.omero.availability import INSTALL_MESSAGE, omero_available
from napari_fbias.io.omero.browse import Node
from napari_fbias.io.omero.connection import OmeroBackend, OmeroConnection, connections
from napari_fbias.io.omero.errors import OmeroAuthenticationError
from napari_fbias.session.secrets import scrub_text

__all__ = ["KEEPALIVE_MS", "OmeroWidget"]

#: Milliseconds between checks that the session is still alive.
KEEPALIVE_MS = 60_000
#: Least height of the server tree (pixels): the parts scroll rather than squeeze it.
TREE_MIN_HEIGHT = 160
_INSTALL_HELP = (
    f"{INSTALL_MESSAGE}\n\nIn short:\n"
    '    pip install "napari-fbias[omero]"\n'
    "and, on Python 3.11 or newer, first:\n"
    "    scripts/build_omero_wheels.sh"
)


class OmeroWidget(QWidget):
    """Browse an OMERO server, open its images as layers and send results back.

    Parameters
    ----------
    napari_viewer : napari.viewer.Viewer
        The viewer to open images in.
    backend : OmeroBackend, optional
        How to reach the server: omero-py (default) or a test fake.
    sessions_dir : path, optional
        Folder of the ``omero login`` sessions (default: the CLI's).
    keepalive_ms : int
        How often to check that the session is alive (0: never).
    """

    def __init__(
        self,
        napari_viewer: napari.viewer.Viewer,
        *,
        backend: OmeroBackend | None = None,
        sessions_dir: str | Path | None = None,
        keepalive_ms: int = KEEPALIVE_MS,
    ) -> None:
        super().__init__()
        # napari hands plugin widgets a PublicOnlyProxy: use the viewer itself, so that this
        # widget shares the workspace (session recorder) of the other widgets
        napari_viewer = unwrap(napari_viewer)
        self.viewer = napari_viewer
        self._backend = backend
        self._sessions_dir = sessions_dir
        self._conn: OmeroConnection | None = None
        self.jobs = OmeroJobs(self._say, self._on_lost)
        self.destroyed.connect(self.jobs.close)
        self.available = backend is not None or omero_available()
        layout = QVBoxLayout(self)
        if not self.available:
            self.install_help = QLabel(_INSTALL_HELP)
            self.install_help.setWordWrap(True)
            self.install_help.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            layout.addWidget(QLabel("<b>OMERO support is not installed</b>"))
            layout.addWidget(self.install_help)
            layout.addStretch(1)
            return
        self.workspace = get_workspace(napari_viewer)
        self._build(layout)
        self._timer = QTimer(self)
        self._timer.setInterval(max(int(keepalive_ms), 1))
        self._timer.timeout.connect(self.check_connection)
        self._keepalive = int(keepalive_ms) > 0
        self.refresh_send_choices()
        existing = next(iter(c for c in connections().values() if c.is_connected), None)
        if existing is not None:
            self.jobs.start(adopt, existing, done=self._on_logged_in, action="reading the server")

    # --- building ----------------------------------------------------------------------
    def _build(self, layout: QVBoxLayout) -> None:
        self.login_panel = LoginPanel(sessions_dir=self._sessions_dir)
        self.login_panel.login_clicked.connect(self.login)
        self.login_panel.logout_clicked.connect(self.logout)
        self.login_panel.reconnect_clicked.connect(self.reconnect)
        self.login_panel.group_chosen.connect(self.set_group)
        connection = QGroupBox("Connection")
        QVBoxLayout(connection).addWidget(self.login_panel)
        self.browse_box = BrowseBox(self.viewer, self.workspace, self.jobs, self._connection)
        self.send_box = SendBox(self.viewer, self.workspace, self.jobs, self._connection)
        self.browse_box.opened.connect(self.refresh_send_choices)
        # the parts tests and other widgets reach through the browser
        self.tree = self.browse_box.tree
        self.open_button = self.browse_box.open_button
        self.refresh_button = self.browse_box.refresh_button
        self.uri = self.browse_box.uri
        self.uri_button = self.browse_box.uri_button
        self.labels_choice = self.send_box.labels_choice
        self.target_choice = self.send_box.target_choice
        self.table_choice = self.send_box.table_choice
        self.attachments = self.send_box.attachments
        self.send_button = self.send_box.send_button

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        # the parts scroll, so the browser fits a laptop screen (1366x768) beside other docks;
        # the last message stays in sight below them
        parts = QWidget()
        inner = QVBoxLayout(parts)
        inner.setContentsMargins(0, 0, 0, 0)
        inner.addWidget(connection)
        inner.addWidget(self.browse_box, 1)
        inner.addWidget(self.send_box)
        self.browse_box.tree.setMinimumHeight(TREE_MIN_HEIGHT)
        layout.addWidget(scrolled(parts), 1)
        layout.addWidget(self.status)
        self._enable_browsing(False)

    def _enable_browsing(self, on: bool) -> None:
        self.browse_box.enable(on)
        self.send_button.setEnabled(on)

    # --- state -------------------------------------------------------------------------
    @property
    def connection(self) -> OmeroConnection | None:
        """The connection this browser uses (None before logging in)."""
        return self._conn

    def _connection(self) -> OmeroConnection | None:
        return self._conn

    @property
    def busy(self) -> bool:
        """True while a worker (login, listing, thumbnails, opening, sending) runs."""
        return self.jobs.busy

    @property
    def alive(self) -> bool:
        """False once Qt deleted the widget (late results are then dropped)."""
        return self.jobs.alive

    def _say(self, message: str) -> None:
        if self.alive:
            self.status.setText(message)

    def _on_lost(self, reason: str) -> None:
        if self._conn is not None:
            self._show_lost(reason)

    def _show_lost(self, reason: str) -> None:
        host = self._conn.host if self._conn is not None else "the server"
        self.login_panel.show_lost(
            f"Connection to {host} lost ({reason}). Press Reconnect: your layers and the "
            "recorded session are kept."
        )
        self._enable_browsing(False)
        self._timer.stop()

    # --- login ------------------------------------------------------------------------
    def login(self) -> Any:
        """Log in with what the form says; the password field is emptied at once.

        Returns
        -------
        worker or None
            The login worker (None when the form is incomplete).
        """
        from napari.utils.notifications import show_error

        if self._conn is not None:
            self._say(f"Already connected to {self._conn.host}; log out first")
            return None
        try:
            request = self.login_panel.request()
        except ValueError as exc:
            self.login_panel.clear_secrets()
            self._say(str(exc))
            show_error(f"OMERO: {exc}")
            return None
        secret = self.login_panel.take_secret()
        self.login_panel.show_busy(f"Connecting to {request.address}...")
        worker = self.jobs.start(
            login,
            request,
            secret,
            self._backend,
            self._sessions_dir,
            done=self._on_logged_in,
            action=f"logging in to {request.address}",
            progress=True,
            failed=lambda exc: self.login_panel.show_disconnected(
                f"Not connected: {scrub_text(str(exc))}"
            ),
        )
        secret = None
        return worker

    def _on_logged_in(self, result: tuple[OmeroConnection, list, list[Node]]) -> None:
        conn, groups, roots = result
        self._conn = conn
        self.login_panel.set_groups(groups, conn.group_id)
        self.login_panel.show_connected(conn)
        self.login_panel.user.setText(conn.user or "")
        self.login_panel.server.setText(conn.address)
        self.tree.set_roots(roots)
        self._enable_browsing(True)
        if self._keepalive:
            self._timer.start()
        self._say(f"Connected to {conn.host} as {conn.user}")
        self.refresh_send_choices()

    def logout(self) -> None:
        """Close the connection (layers opened from it can no longer load new planes)."""
        conn, self._conn = self._conn, None
        self._timer.stop()
        if conn is not None:
            conn.close()
        self.tree.clear()
        self._enable_browsing(False)
        host = conn.host if conn is not None else ""
        self.login_panel.show_disconnected(
            f"Logged out of {host}; layers opened from it cannot load new planes" if host else ""
        )
        self._say("Logged out")

    def set_group(self, group: int) -> Any:
        """Browse another group (``-1``: all my groups) and list its top level again."""
        if self._conn is None:
            return None
        return self.jobs.start(
            switch_group,
            self._conn,
            int(group),
            done=self._on_group_switched,
            action=f"switching to group {group}",
        )

    def _on_group_switched(self, roots: list[Node]) -> None:
        self.tree.set_roots(roots)
        if self._conn is not None:
            self.login_panel.show_connected(self._conn)

    # --- lost connections ------------------------------------------------------------------
    def check_connection(self) -> Any:
        """Ask the server whether the session is alive (in a worker); show a lost one."""
        conn = self._conn
        if conn is None or any(getattr(w, "fbias_check", False) for w in self.jobs.workers):
            return None
        worker = self.jobs.start(
            conn.keepalive, done=self._on_checked, action="checking the connection"
        )
        worker.fbias_check = True
        return worker

    def _on_checked(self, alive: bool) -> None:
        if not alive and self._conn is not None:
            self._show_lost(
                "the server does not answer: it may have restarted or the session expired"
            )

    def reconnect(self) -> Any:
        """Open a new session in place of the lost one (password field used if filled)."""
        conn = self._conn
        if conn is None:
            return None
        password = self.login_panel.take_password()
        self.login_panel.show_busy(f"Reconnecting to {conn.host}...")
        worker = self.jobs.start(
            reconnect,
            conn,
            password,
            done=self._on_reconnected,
            action=f"reconnecting to {conn.host}",
            failed=self._on_reconnect_failed,
        )
        password = None
        return worker

    def _on_reconnected(self, _result: Any) -> None:
        conn = self._conn
        if conn is None:
            return
        self.login_panel.show_connected(conn)
        self._enable_browsing(True)
        if self._keepalive:
            self._timer.start()
        self._say(f"Reconnected to {conn.host}; layers and the recorded session are unchanged")

    def _on_reconnect_failed(self, exc: BaseException) -> None:
        conn = self._conn
        if conn is None:
            return
        if isinstance(exc, OmeroAuthenticationError):
            self.login_panel.set_mode("password")
            self.login_panel.user.setText(conn.user or "")
            self.login_panel.show_lost(
                f"The session on {conn.host} is gone. Type the password of {conn.user} and "
                "press Reconnect: your layers and the recorded session are kept."
            )
            self.login_panel.password.setFocus()
        else:
            self._show_lost(scrub_text(str(exc)))

    # --- the parts' actions, as the browser's ------------------------------------------------
    def refresh(self) -> Any:
        """List the top of the tree again."""
        return self.browse_box.refresh()

    def expand(self, node: Node) -> Any:
        """Fetch the children of ``node`` (in a worker), then the thumbnails of its images."""
        return self.browse_box.expand(node)

    def open_selected(self) -> Any:
        """Open the images selected in the tree."""
        return self.browse_box.open_selected()

    def open_nodes(self, nodes: Sequence[Node]) -> Any:
        """Open image nodes as layers (lazily, in a worker)."""
        return self.browse_box.open_nodes(nodes)

    def open_uri(self, text: str | None = None) -> Any:
        """Open ``omero://HOST/Image:ID`` or an OMERO.web link (default: the link field)."""
        return self.browse_box.open_uri(text)

    def omero_images(self) -> list[str]:
        """OMERO image URIs shown in the viewer or recorded in the session."""
        return self.send_box.omero_images()

    def refresh_send_choices(self) -> None:
        """Refill the labels, table and image lists (keeping what was chosen)."""
        self.send_box.refresh_choices()

    def add_attachments(self, paths: Sequence[str | Path]) -> None:
        """Add files to send as attachments (the session report, the pipeline...)."""
        self.send_box.add_attachments(paths)

    def add_export_folder(self, folder: str | Path) -> list[Path]:
        """Add the report and pipeline files of an exported delivery folder."""
        return self.send_box.add_export_folder(folder)

    def attach_session_export(self) -> Any:
        """Export the running session (in a worker) and add its report and pipelines."""
        return self.send_box.attach_session_export()

    def send(self) -> Any:
        """Send the chosen labels, table and files to the chosen OMERO image (in a worker)."""
        return self.send_box.send()
