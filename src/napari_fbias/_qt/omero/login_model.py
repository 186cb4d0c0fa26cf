"""Logging in to OMERO, without Qt: what the analyst asked for and the work of the login.

:class:`LoginRequest` is what the login form collects (never a password or a
session key); :func:`connect` opens the connection in a worker thread. The
secret is a parameter of the call only: it is never kept in an attribute, a
request, a log line or a file. Only the connection object (in
:mod:`napari_fbias.io.omero.connection`) keeps the session key, in memory,
for reconnecting. :func:`login`, :func:`adopt`, :func:`switch_group` and
:func:`reconnect` are the browser's work in worker threads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from napari_fbias.io.omero.browse import Node, list_roots
from napari_fbias.io.omero.clisessions import CliSession, find_cli_sessions, sessions_dir
from napari_fbias.io.omero.connection import OmeroBackend, OmeroConnection
from napari_fbias.io.omero.errors import OmeroAuthenticationError

__all__ = [
    "MODES",
    "LoginRequest",
    "adopt",
    "connect",
    "list_cli_sessions",
    "login",
    "reconnect",
    "switch_group",
]

#: Ways to log in: (key, label shown in the form).
MODES: tuple[tuple[str, str], ...] = (
    ("password", "user name and password"),
    ("session_key", "an existing session key"),
    ("cli", "my `omero login` session"),
)


@dataclass(frozen=True)
class LoginRequest:
    """What the analyst asked for (never a password or a session key).

    Parameters
    ----------
    mode : str
        ``"password"``, ``"session_key"`` or ``"cli"`` (see :data:`MODES`).
    address : str
        Host name, ``HOST:PORT`` or websocket URL (``wss://HOST/omero-ws``).
    port : int or None
        Router port (None for websocket URLs or ``HOST:PORT``).
    user : str
        OMERO user name (password mode; CLI mode: the session's user).
    """

    mode: str
    address: str
    port: int | None = None
    user: str = ""


def list_cli_sessions(directory: str | Path | None = None) -> list[CliSession]:
    """List the sessions ``omero login`` stored, one per server and user, last used first.

    Parameters
    ----------
    directory : path, optional
        The CLI's sessions folder (default: ``$OMERO_SESSIONDIR``, ...,
        ``~/omero/sessions``). Only read, never written.

    Returns
    -------
    list of CliSession
        Their keys are not checked against the server (one may have expired).
    """
    root = Path(directory) if directory is not None else sessions_dir()
    if not root.is_dir():
        return []
    found: list[CliSession] = list(find_cli_sessions(directory=root))  # last host, newest first
    for host_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for user_dir in sorted(p for p in host_dir.iterdir() if p.is_dir()):
            found.extend(find_cli_sessions(unquote(host_dir.name), user_dir.name, directory=root))
    out: dict[tuple[str, int, str], CliSession] = {}
    for s in found:
        out.setdefault((s.host, s.port, s.user), s)
    return list(out.values())


def connect(
    request: LoginRequest,
    secret: str | None,
    *,
    backend: OmeroBackend | None = None,
    sessions_dir: str | Path | None = None,
) -> OmeroConnection:
    """Open a connection as ``request`` says (runs in a worker thread).

    Parameters
    ----------
    request : LoginRequest
        Server, mode and user.
    secret : str or None
        The password (password mode) or the session key (session-key mode);
        ignored for the CLI session.
    backend : OmeroBackend, optional
        omero-py (default) or a test fake.
    sessions_dir : path, optional
        The OMERO CLI's sessions folder (CLI mode).

    Returns
    -------
    OmeroConnection
        Logged in and registered for its host.

    Raises
    ------
    OmeroAuthenticationError
        Missing or refused credentials.
    OmeroConnectionError
        Server unreachable.
    """
    try:
        if request.mode == "password":
            return OmeroConnection.login(
                request.address, request.user, secret or "", port=request.port, backend=backend
            )
        if request.mode == "session_key":
            if not secret:
                raise OmeroAuthenticationError(
                    f"joining a session on {request.address} needs its session key"
                )
            return OmeroConnection.join(request.address, secret, port=request.port, backend=backend)
        if request.mode == "cli":
            return OmeroConnection.from_cli_session(
                request.address or None,
                request.user or None,
                sessions_dir=sessions_dir,
                backend=backend,
            )
    finally:
        secret = None
    raise ValueError(
        f"unknown login mode {request.mode!r}; expected one of {[m for m, _ in MODES]}"
    )


# --- the browser's work in worker threads ----------------------------------------------------
Logged = tuple[OmeroConnection, list[tuple[int, str]], list[Node]]


def login(
    request: LoginRequest, secret: str | None, backend: OmeroBackend | None, sessions_dir: Any
) -> Logged:
    """Log in as ``request`` says; return the connection, the user's groups and the top nodes."""
    conn = connect(request, secret, backend=backend, sessions_dir=sessions_dir)
    secret = None
    try:
        return conn, conn.groups(), list_roots(conn)
    except Exception:
        conn.close()
        raise


def adopt(conn: OmeroConnection) -> Logged:
    """Use a connection opened elsewhere (another browser); return it, its groups and top nodes."""
    return conn, conn.groups(), list_roots(conn)


def switch_group(conn: OmeroConnection, group: int) -> list[Node]:
    """Browse another group (``-1``: all my groups); return its top nodes."""
    conn.set_group(group)
    return list_roots(conn)


def reconnect(conn: OmeroConnection, password: str | None) -> None:
    """Open a new session in place of a lost one (with the password, when one was typed)."""
    try:
        conn.reconnect(password=password)
    finally:
        password = None
