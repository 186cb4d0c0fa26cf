"""The OMERO browser in napari: log in, browse, open images, send results back.

* **Log in** (:mod:`.omero_login`): server (host, port or websocket URL) and
  a user name and password, an existing session key, or the session
  ``omero login`` stored; then pick a group. The password field is emptied
  as soon as the login starts; the secret lives only in the connection
  object (:class:`~napari_fbias.io.omero.connection.OmeroConnection`).
* **Browse** (:mod:`.omero_tree`): Projects > Datasets > Images and Screens >
  Plates > Wells > fields; children are fetched when a node is expanded, in
  a worker thread, then the images' thumbnails.
* **Open** by double-click, the Open button, or a pasted ``omero://`` URI or
  OMERO.web link: the image is opened lazily
  (:func:`~napari_fbias.io.omero.pixels.open_omero_image`, metadata only) and
  shown with :func:`~napari_fbias._layers.image_to_layer_data` (multiscale
  for pyramids). When a session is running the image is recorded in it by
  its URI (never credentials).
* **Send back** a labels layer as ROIs, a measurement table as an
  OMERO.table (CSV when the server has no tables service) and files (the
  exported report and pipeline) to the image the layer came from
  (:func:`~napari_fbias.io.omero.sendback.send_back`; sending again
  replaces the previous upload).
* **Lost connection** (server restart, expired session): a clear message and
  a Reconnect button; layers, their lazy data and the recorded session stay.

Without omero-py the widget only shows how to install it.
"""

from __future__ import annotations

import importlib.util
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import napari
import numpy as np
from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_fbias._layers import image_to_layer_data
from napari_fbias._qt.layer_axes import (
    image_ref,
    layer_array,
    layer_axes,
    reader_info,
    step_info,
    unwrap,
)
from napari_fbias._qt.omero_login import LoginPanel, connect
from napari_fbias._qt.omero_tree import THUMBNAIL_SIZE, OmeroTree
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io.image import MultiscaleImage
from napari_fbias.io.omero.availability import INSTALL_MESSAGE, omero_available
from napari_fbias.io.omero.browse import Node, get_thumbnail, list_children, list_roots
from napari_fbias.io.omero.connection import (
    OmeroBackend,
    OmeroConnection,
    connections,
    get_connection,
)
from napari_fbias.io.omero.errors import (
    OmeroAuthenticationError,
    OmeroConnectionError,
    OmeroError,
    OmeroNotLoggedInError,
    OmeroObjectNotFoundError,
    OmeroUriError,
)
from napari_fbias.io.omero.pixels import open_omero_image
from napari_fbias.io.omero.sendback import SendBackResult, send_back
from napari_fbias.io.omero.uri import OmeroRef, is_omero_uri, parse_omero_uri, parse_omero_uris
from napari_fbias.session.secrets import scrub_text

__all__ = [
    "NO_TABLE",
    "OmeroWidget",
    "export_attachments",
    "export_session",
    "omero_source_of",
    "open_images",
    "table_file_name",
]

#: Choice of the table list meaning "send no table".
NO_TABLE = "(no table)"
#: Milliseconds between checks that the session is still alive.
KEEPALIVE_MS = 60_000
#: The session export (report, pipeline); "Attach the session export" is offered when present.
EXPORT_MODULE = "napari_fbias.session.export.bundle"
_INSTALL_HELP = (
    f"{INSTALL_MESSAGE}\n\nIn short:\n"
    '    pip install "napari-fbias[omero]"\n'
    "and, on Python 3.11 or newer, first:\n"
    "    scripts/build_omero_wheels.sh"
)


# --- work done in worker threads (plain functions: no widgets) -------------------------------
def open_images(
    pairs: Sequence[tuple[OmeroConnection, OmeroRef]],
) -> list[tuple[MultiscaleImage, list[tuple[Any, dict[str, Any], str]]]]:
    """Open OMERO images lazily (metadata only) and make their napari layer data.

    Parameters
    ----------
    pairs : sequence of (OmeroConnection, OmeroRef)
        Each image with the connection to read it through.

    Returns
    -------
    list of (MultiscaleImage, list of layer data tuples)
    """
    out = []
    for conn, ref in pairs:
        image = open_omero_image(ref, connection=conn)
        out.append((image, image_to_layer_data(image)))
    return out


def _login(
    request: Any, secret: str | None, backend: OmeroBackend | None, sessions_dir: Any
) -> tuple[OmeroConnection, list[tuple[int, str]], list[Node]]:
    conn = connect(request, secret, backend=backend, sessions_dir=sessions_dir)
    secret = None
    try:
        return conn, conn.groups(), list_roots(conn)
    except Exception:
        conn.close()
        raise


def _adopt(conn: OmeroConnection) -> tuple[OmeroConnection, list[tuple[int, str]], list[Node]]:
    return conn, conn.groups(), list_roots(conn)


def _switch_group(conn: OmeroConnection, group: int) -> list[Node]:
    conn.set_group(group)
    return list_roots(conn)


def _children(conn: OmeroConnection, node: Node) -> tuple[Node, list[Node]]:
    return node, list_children(conn, node)


def _thumbnails(conn: OmeroConnection, image_ids: Sequence[int]) -> Iterator[tuple[int, Any]]:
    for iid in image_ids:
        try:
            yield iid, get_thumbnail(conn, iid, size=THUMBNAIL_SIZE)
        except OmeroObjectNotFoundError:
            continue


def _reconnect(conn: OmeroConnection, password: str | None) -> None:
    try:
        conn.reconnect(password=password)
    finally:
        password = None


def _send(conn: OmeroConnection, image_id: int, options: dict[str, Any]) -> SendBackResult:
    labels = options.pop("labels", None)
    array = None if labels is None else np.asarray(labels)  # computes a lazy labels layer here
    return send_back(conn, image_id, labels=array, **options)


# --- helpers of the send-back part ----------------------------------------------------------
def table_file_name(name: str) -> str:
    """Return a file name for a table result (``"A: measurements"`` -> ``"A_measurements"``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "measurements"


def export_session(session: Any, dest: str | Path) -> list[Path]:
    """Export a session's delivery bundle to ``dest`` and return its report and pipelines.

    Parameters
    ----------
    session : str
        The running session's link (read from its journals, so that the images
        the analysts opened count as opened; credentials are scrubbed).
    dest : path
        Bundle folder to (re)write.
    """
    from napari_fbias.session.export import export_bundle

    result = export_bundle(session, dest, overwrite=True)
    return export_attachments(result.folder)


def export_attachments(folder: str | Path) -> list[Path]:
    """Return the report and pipeline files of an exported delivery folder.

    Parameters
    ----------
    folder : path
        A folder written by the session export (``report.html``,
        ``*.fbias.yaml``...).

    Raises
    ------
    FileNotFoundError
        When the folder holds neither a report nor a pipeline file.
    """
    root = Path(folder)
    found = sorted(root.glob("report*.html")) + sorted(root.glob("*.fbias.yaml"))
    if not found:
        raise FileNotFoundError(
            f"{root} holds no report (report.html) and no pipeline (*.fbias.yaml); choose the "
            "folder the session export wrote"
        )
    return found


def _omero_uri(source: Any) -> str | None:
    """Return the canonical ``omero://HOST/Image:ID`` of a source (None if not one image)."""
    if not isinstance(source, str) or not is_omero_uri(source):
        return None
    try:
        ref = parse_omero_uri(source)
    except OmeroUriError:
        return None
    return ref.uri if ref.kind == "Image" else None


def omero_source_of(layer: Any, recorder: Any = None) -> str | None:
    """Return the OMERO image a layer shows or was computed from, or None.

    A layer opened from OMERO names it in its metadata; a layer made by a
    recorded step is traced back through the session's steps to the image
    its first image input read.

    Parameters
    ----------
    layer : napari layer
        Typically a labels layer.
    recorder : SessionRecorder, optional
        The running session (needed for step results).
    """
    info = reader_info(layer)
    if info is not None:
        for source in (layer.metadata.get("parent_source"), info.get("source")):
            uri = _omero_uri(source)
            if uri is not None:
                return uri
    step = step_info(layer)
    if step is None or recorder is None:
        return None
    session = recorder.session
    pending, seen = [str(step["step_id"])], set()
    while pending:
        sid = pending.pop(0)
        seen.add(sid)
        found = session.find_step(sid)
        if found is None:
            continue
        inputs = sorted(found[1].inputs.items(), key=lambda kv: kv[0] != "image")
        for _, inp in inputs:
            if inp.image is not None:
                img = session.image(inp.image)
                uri = _omero_uri(img.source) if img is not None else None
                if uri is not None:
                    return uri
            elif inp.step is not None and inp.step not in seen:
                pending.append(inp.step)
    return None


# --- the widget -------------------------------------------------------------------------------
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
        self._workers: list[Any] = []
        self._alive = [True]
        self.destroyed.connect(lambda *_a, alive=self._alive: alive.__setitem__(0, False))
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
        napari_viewer.layers.events.inserted.connect(self._on_layers_changed)
        napari_viewer.layers.events.removed.connect(self._on_layers_changed)
        self.workspace.events.step_recorded.connect(self._on_layers_changed)
        self.workspace.events.session_changed.connect(self._on_layers_changed)
        self.refresh_send_choices()
        existing = next(iter(c for c in connections().values() if c.is_connected), None)
        if existing is not None:
            self._start(_adopt, existing, done=self._on_logged_in, action="reading the server")

    # --- building ----------------------------------------------------------------------
    def _build(self, layout: QVBoxLayout) -> None:
        self.login_panel = LoginPanel(sessions_dir=self._sessions_dir)
        self.login_panel.login_clicked.connect(self.login)
        self.login_panel.logout_clicked.connect(self.logout)
        self.login_panel.reconnect_clicked.connect(self.reconnect)
        self.login_panel.group_chosen.connect(self.set_group)
        connection = QGroupBox("Connection")
        QVBoxLayout(connection).addWidget(self.login_panel)

        self.tree = OmeroTree()
        self.tree.expand_requested.connect(self.expand)
        self.tree.open_requested.connect(self.open_nodes)
        self.open_button = QPushButton("Open")
        self.open_button.setToolTip("Open the selected images as layers (or double-click one)")
        self.open_button.clicked.connect(self.open_selected)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        self.uri = QLineEdit()
        self.uri.setPlaceholderText("omero://HOST/Image:ID or an OMERO.web link")
        self.uri.returnPressed.connect(self.open_uri)
        self.uri_button = QPushButton("Open link")
        self.uri_button.clicked.connect(self.open_uri)
        browse = QGroupBox("Browse and open")
        bl = QVBoxLayout(browse)
        bl.addWidget(self.tree, 1)
        row = QHBoxLayout()
        row.addWidget(self.open_button)
        row.addWidget(self.refresh_button)
        bl.addLayout(row)
        row = QHBoxLayout()
        row.addWidget(self.uri, 1)
        row.addWidget(self.uri_button)
        bl.addLayout(row)

        self.labels_choice = QComboBox()
        self.labels_choice.currentIndexChanged.connect(self._on_labels_chosen)
        self.target_choice = QComboBox()
        self.target_choice.setToolTip("The OMERO image the results belong to")
        self.table_choice = QComboBox()
        self.attachments = QListWidget()
        self.attachments.setMaximumHeight(80)
        self.add_files_button = QPushButton("Add files...")
        self.add_files_button.clicked.connect(self._on_add_files)
        self.add_export_button = QPushButton("Attach the session export")
        self.add_export_button.setToolTip(
            "Export the running session (report.html and the pipeline) and attach them"
        )
        self.add_export_button.clicked.connect(self.attach_session_export)
        self.add_export_button.setVisible(_has_module(EXPORT_MODULE))
        self._export_dir: tempfile.TemporaryDirectory[str] | None = None
        self.remove_file_button = QPushButton("Remove")
        self.remove_file_button.clicked.connect(self._on_remove_file)
        self.send_button = QPushButton("Send to OMERO")
        self.send_button.setToolTip(
            "Labels as ROIs, the table as an OMERO.table, files as attachments; sending again "
            "replaces the previous upload"
        )
        self.send_button.clicked.connect(self.send)
        sendback = QGroupBox("Send results to OMERO")
        form = QFormLayout(sendback)
        form.addRow("labels", self.labels_choice)
        form.addRow("table", self.table_choice)
        form.addRow("to image", self.target_choice)
        form.addRow("files", self.attachments)
        row = QHBoxLayout()
        row.addWidget(self.add_files_button)
        row.addWidget(self.add_export_button)
        row.addWidget(self.remove_file_button)
        form.addRow(row)
        form.addRow(self.send_button)

        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextFormat(Qt.TextFormat.PlainText)
        layout.addWidget(connection)
        layout.addWidget(browse, 1)
        layout.addWidget(sendback)
        layout.addWidget(self.status)
        self._enable_browsing(False)

    def _enable_browsing(self, on: bool) -> None:
        for w in (self.tree, self.open_button, self.refresh_button, self.send_button):
            w.setEnabled(on)

    # --- state -------------------------------------------------------------------------
    @property
    def connection(self) -> OmeroConnection | None:
        """The connection this browser uses (None before logging in)."""
        return self._conn

    @property
    def busy(self) -> bool:
        """True while a worker (login, listing, thumbnails, opening, sending) runs."""
        return bool(self._workers)

    @property
    def alive(self) -> bool:
        """False once Qt deleted the widget (late results are then dropped)."""
        return self._alive[0]

    def _start(
        self,
        func: Callable[..., Any],
        *args: Any,
        done: Callable[[Any], None],
        action: str,
        yielded: Callable[[Any], None] | None = None,
        progress: bool = False,
        failed: Callable[[BaseException], None] | None = None,
    ) -> Any:
        from napari.qt.threading import create_worker

        kwargs: dict[str, Any] = {"_start_thread": False, "_ignore_errors": True}
        if progress:
            kwargs["_progress"] = {"total": 0, "desc": f"OMERO: {action}"}
        worker = create_worker(func, *args, **kwargs)
        worker.returned.connect(self._guard(done))
        worker.errored.connect(self._guard(partial(self._on_error, action, failed)))
        if yielded is not None:
            worker.yielded.connect(self._guard(yielded))
        worker.finished.connect(partial(self._forget, worker))
        self._workers.append(worker)
        worker.start()
        return worker

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        def call(*args: Any) -> None:
            if self.alive:
                fn(*args)

        return call

    def _forget(self, worker: Any) -> None:
        if worker in self._workers:
            self._workers.remove(worker)

    def _say(self, message: str) -> None:
        if self.alive:
            self.status.setText(message)

    def _on_error(
        self,
        action: str,
        failed: Callable[[BaseException], None] | None,
        exc: BaseException,
    ) -> None:
        from napari.utils.notifications import show_error

        text = (
            scrub_text(str(exc))
            if isinstance(exc, (OmeroError, ValueError))
            else (f"{type(exc).__name__}: {scrub_text(str(exc))}")
        )
        if failed is not None:
            failed(exc)
        if isinstance(exc, OmeroConnectionError) and self._conn is not None:
            self._show_lost(text)
        self._say(f"{action[:1].upper()}{action[1:]} failed: {text}")
        show_error(f"OMERO: {action} failed: {text}")

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
        worker = self._start(
            _login,
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
        return self._start(
            _switch_group,
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
        if conn is None or any(getattr(w, "fbias_check", False) for w in self._workers):
            return None
        worker = self._start(
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
        worker = self._start(
            _reconnect,
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

    # --- browsing --------------------------------------------------------------------------
    def refresh(self) -> Any:
        """List the top of the tree again."""
        if self._conn is None:
            return None
        return self._start(
            list_roots, self._conn, done=self.tree.set_roots, action="listing the server"
        )

    def expand(self, node: Node) -> Any:
        """Fetch the children of ``node`` (in a worker), then the thumbnails of its images."""
        if self._conn is None:
            return None
        return self._start(
            _children,
            self._conn,
            node,
            done=self._on_children,
            action=f"listing {node.name}",
            failed=lambda _exc: self.tree.mark_failed(node),
        )

    def _on_children(self, result: tuple[Node, list[Node]]) -> None:
        parent, nodes = result
        self.tree.add_children(parent, nodes)
        ids = list(dict.fromkeys(n.id for n in nodes if n.is_image))
        if ids and self._conn is not None:
            self._start(
                _thumbnails,
                self._conn,
                ids,
                done=lambda _r: None,
                yielded=self._on_thumbnail,
                action=f"fetching the thumbnails of {parent.name}",
            )

    def _on_thumbnail(self, item: tuple[int, Any]) -> None:
        self.tree.set_thumbnail(*item)

    # --- opening ---------------------------------------------------------------------------
    def open_selected(self) -> Any:
        """Open the images selected in the tree."""
        nodes = self.tree.selected_images()
        if not nodes:
            self._say("Select one or more images first")
            return None
        return self.open_nodes(nodes)

    def open_nodes(self, nodes: Sequence[Node]) -> Any:
        """Open image nodes as layers (lazily, in a worker)."""
        if self._conn is None:
            return None
        conn = self._conn
        pairs = [(conn, OmeroRef(conn.host, conn.port, "Image", n.id)) for n in nodes if n.is_image]
        return self._open(pairs)

    def open_uri(self, text: str | None = None) -> Any:
        """Open ``omero://HOST/Image:ID`` or an OMERO.web link (default: the link field)."""
        from napari.utils.notifications import show_error

        text = (self.uri.text() if text is None or isinstance(text, bool) else text).strip()
        try:
            refs = parse_omero_uris(text)
            not_images = [r for r in refs if r.kind != "Image"]
            if not_images:
                r = not_images[0]
                raise OmeroUriError(
                    f"{text} names {r.kind}:{r.id}, not an image; expand it in the tree and open "
                    "its images"
                )
            pairs = [
                (self._connection_for(r, web=not text.lower().startswith("omero:")), r)
                for r in refs
            ]
        except OmeroError as exc:
            self._say(str(exc))
            show_error(f"OMERO: {exc}")
            return None
        return self._open(pairs)

    def _connection_for(self, ref: OmeroRef, *, web: bool) -> OmeroConnection:
        """Return the connection for a reference's host; web links may use this browser's."""
        try:
            return get_connection(ref.host)
        except OmeroNotLoggedInError:
            if web and self._conn is not None:
                return self._conn  # an OMERO.web host name: the server we are logged in to
            raise

    def _open(self, pairs: list[tuple[OmeroConnection, OmeroRef]]) -> Any:
        if not pairs:
            return None
        what = ", ".join(f"Image:{r.id}" for _, r in pairs)
        self._say(f"Opening {what}...")
        return self._start(
            open_images, pairs, done=self._on_opened, action=f"opening {what}", progress=True
        )

    def _on_opened(self, results: list[tuple[MultiscaleImage, list]]) -> None:
        from napari_fbias._qt.open_widget import remember

        names = []
        for image, layer_data in results:
            added = []
            for data, kwargs, layer_type in layer_data:
                out = getattr(self.viewer, f"add_{layer_type}")(data, **kwargs)
                added += out if isinstance(out, list) else [out]
            self._record_image(added)
            remember(image.source)
            names.append(f"{image.name} ({image.source})")
        self._say("Opened " + "; ".join(names))
        self.refresh_send_choices()

    def _record_image(self, layers: list[Any]) -> None:
        """Record the image of ``layers`` (by URI) in the running session, if one runs."""
        from napari.utils.notifications import show_warning

        rec = self.workspace.recorder
        images = [layer for layer in layers if type(layer).__name__ == "Image"]
        if rec is None or not images:
            return
        shown: dict[str, dict[str, int]] = {}
        try:
            for layer in images:
                ref, sel = image_ref(layer, "image")
                shown[layer.name] = sel
            rec.add_image(ref, layers=shown)
        except ValueError as exc:  # e.g. two channels of the same name: say it, keep the layers
            show_warning(f"the session could not record {images[0].name!r}: {exc}")

    # --- sending back ----------------------------------------------------------------------
    def _on_layers_changed(self, *_args: Any) -> None:
        if not self.alive:
            self._disconnect_model()
            return
        self.refresh_send_choices()

    def _disconnect_model(self) -> None:
        for emitter in (self.viewer.layers.events.inserted, self.viewer.layers.events.removed):
            try:
                emitter.disconnect(self._on_layers_changed)
            except (TypeError, ValueError, RuntimeError):
                pass
        for signal in (self.workspace.events.step_recorded, self.workspace.events.session_changed):
            try:
                signal.disconnect(self._on_layers_changed)
            except (TypeError, ValueError, RuntimeError):
                pass

    def omero_images(self) -> list[str]:
        """OMERO image URIs shown in the viewer or recorded in the session."""
        found: dict[str, None] = {}
        for layer in self.viewer.layers:
            info = reader_info(layer)
            uri = _omero_uri(info.get("source")) if info is not None else None
            if uri is not None:
                found[uri] = None
        rec = self.workspace.recorder
        if rec is not None:
            for img in rec.session.images:
                uri = _omero_uri(img.source)
                if uri is not None:
                    found[uri] = None
        return list(found)

    def refresh_send_choices(self) -> None:
        """Refill the labels, table and image lists (keeping what was chosen)."""
        labels = [layer.name for layer in self.viewer.layers if type(layer).__name__ == "Labels"]
        _refill(self.labels_choice, labels)
        _refill(self.table_choice, [NO_TABLE, *self.workspace.tables])
        _refill(self.target_choice, self.omero_images())
        self._on_labels_chosen()

    def _on_labels_chosen(self, *_args: Any) -> None:
        name = self.labels_choice.currentText()
        if not name or name not in self.viewer.layers:
            return
        layer = self.viewer.layers[name]
        uri = omero_source_of(layer, self.workspace.recorder)
        if uri is not None:
            if self.target_choice.findText(uri) < 0:
                self.target_choice.addItem(uri)
            self.target_choice.setCurrentText(uri)
        table = self._table_of(name)
        if table is not None:
            self.table_choice.setCurrentText(table)

    def _table_of(self, labels_layer: str) -> str | None:
        """Return the table a recorded step measured from ``labels_layer`` (None if none)."""
        rec = self.workspace.recorder
        if rec is None:
            return None
        for _approach, step in rec.session.all_steps():
            if step.output_layer in self.workspace.tables and any(
                inp.layer == labels_layer for inp in step.inputs.values()
            ):
                return step.output_layer
        return None

    def add_attachments(self, paths: Sequence[str | Path]) -> None:
        """Add files to send as attachments (the session report, the pipeline...)."""
        present = {self.attachments.item(i).text() for i in range(self.attachments.count())}
        for p in paths:
            text = str(Path(p))
            if text not in present:
                self.attachments.addItem(text)
                present.add(text)

    def add_export_folder(self, folder: str | Path) -> list[Path]:
        """Add the report and pipeline files of an exported delivery folder."""
        files = export_attachments(folder)
        self.add_attachments(files)
        return files

    def attach_session_export(self) -> Any:
        """Export the running session (in a worker) and add its report and pipelines."""
        from napari.utils.notifications import show_error

        rec = self.workspace.recorder
        if rec is None:
            message = "start a session (Session panel) before attaching its export"
            self._say(message)
            show_error(f"OMERO: {message}")
            return None
        if self._export_dir is None:  # removed with the widget, or at exit
            self._export_dir = tempfile.TemporaryDirectory(prefix="fbias-omero-export-")
        dest = Path(self._export_dir.name) / "bundle"
        self._say("Exporting the session's report and pipeline...")
        rec.flush(5)  # what this napari recorded is in the space before the export reads it
        return self._start(
            export_session,
            rec.link,
            dest,
            done=self._on_exported,
            action="exporting the session",
            progress=True,
        )

    def _on_exported(self, files: list[Path]) -> None:
        self.add_attachments(files)
        self._say("Attached " + ", ".join(p.name for p in files))

    def _on_add_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Files to attach in OMERO")
        self.add_attachments(paths)

    def _on_remove_file(self) -> None:
        for item in self.attachments.selectedItems():
            self.attachments.takeItem(self.attachments.row(item))

    def send(self) -> Any:
        """Send the chosen labels, table and files to the chosen OMERO image (in a worker).

        Returns
        -------
        worker or None
            None when something is missing (said in the status and a notification).
        """
        from napari.utils.notifications import show_error, show_info

        try:
            conn, ref, kwargs = self._send_request()
        except (OmeroError, ValueError) as exc:
            self._say(str(exc))
            show_error(f"OMERO: {exc}")
            return None
        what = [w for w in ("labels", "table") if kwargs.get(w) is not None]
        if kwargs["files"]:
            what.append(f"{len(kwargs['files'])} file(s)")
        message = f"Sending {', '.join(what)} to {ref.uri}..."
        self._say(message)
        show_info(f"OMERO: {message}")
        return self._start(
            _send,
            conn,
            ref.id,
            kwargs,
            done=partial(self._on_sent, ref),
            action=f"sending results to {ref.uri}",
            progress=True,
        )

    def _send_request(self) -> tuple[OmeroConnection, OmeroRef, dict[str, Any]]:
        target = self.target_choice.currentText()
        if not target:
            raise ValueError("choose the OMERO image the results belong to")
        ref = parse_omero_uri(target)
        conn = self._connection_for(ref, web=False)
        if not conn.is_connected:
            raise OmeroConnectionError(
                f"the connection to {conn.host} was lost; press Reconnect first"
            )
        kwargs: dict[str, Any] = {"labels": None, "table": None, "files": []}
        name = self.labels_choice.currentText()
        if name and name in self.viewer.layers:
            layer = self.viewer.layers[name]
            kwargs["labels"] = layer_array(layer)
            kwargs["labels_axes"] = layer_axes(layer)
            kwargs["label_set"] = layer.name
        table = self.table_choice.currentText()
        if table and table != NO_TABLE and table in self.workspace.tables:
            kwargs["table"] = self.workspace.tables[table].copy()
            kwargs["table_name"] = table_file_name(table)
        kwargs["files"] = [self.attachments.item(i).text() for i in range(self.attachments.count())]
        if kwargs["labels"] is None and kwargs["table"] is None and not kwargs["files"]:
            raise ValueError("nothing to send: choose a labels layer, a table or files")
        return conn, ref, kwargs

    def _on_sent(self, ref: OmeroRef, result: SendBackResult) -> None:
        from napari.utils.notifications import show_info

        parts = []
        if result.roi_ids:
            parts.append(f"{len(result.roi_ids)} ROIs")
        if result.table_annotation_id is not None:
            kind = "OMERO.table" if result.table_format == "omero.tables" else "CSV file"
            parts.append(f"the table as {kind}")
        if result.file_annotation_ids:
            parts.append(", ".join(result.file_annotation_ids))
        replaced = sum(result.replaced.values())
        message = f"Sent {'; '.join(parts) or 'nothing'} to {ref.uri}"
        if replaced:
            message += f" (replacing {replaced} earlier upload(s))"
        self._say(message)
        show_info(f"OMERO: {message}")


def _has_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ImportError:
        return False


def _refill(combo: QComboBox, items: Sequence[str]) -> None:
    """Replace a combo box's items, keeping the current one when it is still there."""
    current = combo.currentText()
    if [combo.itemText(i) for i in range(combo.count())] == list(items):
        return
    combo.blockSignals(True)
    try:
        combo.clear()
        combo.addItems(list(items))
        if current in items:
            combo.setCurrentText(current)
    finally:
        combo.blockSignals(False)
