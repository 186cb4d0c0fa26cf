"""Find the sessions that ``omero login`` (the OMERO CLI) keeps, read-only.

The CLI stores one small properties file per session::

    SESSIONS_DIR/._LASTHOST_                 last host used
    SESSIONS_DIR/._LASTPORT_                 its port
    SESSIONS_DIR/HOST/._LASTUSER_            last user on that host
    SESSIONS_DIR/HOST/USER/._LASTSESS_       last session key of that user
    SESSIONS_DIR/HOST/USER/SESSIONKEY        omero.host=..., omero.port=..., omero.sess=...

where ``HOST`` is URL-quoted and ``SESSIONS_DIR`` is ``$OMERO_SESSIONDIR``,
else ``$OMERO_USERDIR/sessions``, else ``~/omero/sessions`` — the layout of
``omero.util.sessions.SessionsStore``. We read it with this module instead of
``SessionsStore`` itself because that class creates directories (and changes
their mode) when constructed or asked for the current session: we never write
anything there, and this works without omero-py installed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from napari_fbias.io.omero.errors import OmeroNotLoggedInError
from napari_fbias.io.omero.uri import DEFAULT_PORT


@dataclass(frozen=True)
class CliSession:
    """One session found in the CLI's store. ``repr()`` never shows the key."""

    host: str
    port: int
    user: str
    key: str
    group: str | None = None

    def __repr__(self) -> str:
        return f"CliSession(host={self.host!r}, port={self.port}, user={self.user!r}, key=***)"


def sessions_dir() -> Path:
    """Return the folder where ``omero login`` keeps its sessions (may not exist)."""
    explicit = os.environ.get("OMERO_SESSIONDIR")
    if explicit:
        return Path(explicit)
    userdir = os.environ.get("OMERO_USERDIR")
    if userdir:
        return Path(userdir) / "sessions"
    if userdir == "":  # omero-py's opt-in for the platform data directory
        try:
            from platformdirs import user_data_dir
        except ImportError:  # same place on Linux
            return Path.home() / ".local" / "share" / "OMERO.py" / "sessions"
        return Path(user_data_dir("OMERO.py", "OME")) / "sessions"
    return Path.home() / "omero" / "sessions"


def find_cli_sessions(
    host: str | None = None, user: str | None = None, *, directory: str | Path | None = None
) -> list[CliSession]:
    """List the CLI sessions for a host (and user), the last-used one first.

    Parameters
    ----------
    host : str, optional
        Server host as given to ``omero login``; default: the last host used.
    user : str, optional
        OMERO user name; default: the last user on that host, else every user.
    directory : path, optional
        Sessions folder; default :func:`sessions_dir`.

    Returns
    -------
    list of CliSession
        Possibly empty. Keys may have expired on the server meanwhile.
    """
    root = Path(directory) if directory is not None else sessions_dir()
    if not root.is_dir():
        return []
    if host is None:
        host = _read(root / "._LASTHOST_")
        if not host:
            return []
    host_dir = root / quote(host, safe="")
    if not host_dir.is_dir():
        return []
    if user is None:
        last_user = _read(host_dir / "._LASTUSER_")
        users = (
            [last_user] if last_user else sorted(p.name for p in host_dir.iterdir() if p.is_dir())
        )
    else:
        users = [user]
    default_port = _read(root / "._LASTPORT_") or str(DEFAULT_PORT)
    found: list[CliSession] = []
    for name in users:
        user_dir = host_dir / name
        if not user_dir.is_dir():
            continue
        last = _read(user_dir / "._LASTSESS_")
        files = [p for p in user_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
        files.sort(key=lambda p: (p.name != last, -p.stat().st_mtime))
        for f in files:
            props = _props(f)
            key = props.get("omero.sess") or f.name
            port_text = props.get("omero.port") or default_port
            try:
                port = int(port_text)
            except ValueError:
                port = DEFAULT_PORT
            found.append(
                CliSession(
                    host=props.get("omero.host") or host,
                    port=port,
                    user=props.get("omero.user") or name,
                    key=key,
                    group=props.get("omero.group") or None,
                )
            )
    return found


def find_cli_session(
    host: str | None = None, user: str | None = None, *, directory: str | Path | None = None
) -> CliSession:
    """Return the last-used CLI session for a host (and user).

    Raises
    ------
    OmeroNotLoggedInError
        When the store holds no session for it, saying how to create one.
    """
    found = find_cli_sessions(host, user, directory=directory)
    if not found:
        root = Path(directory) if directory is not None else sessions_dir()
        who = f"{user}@{host}" if user and host else (host or "any host")
        raise OmeroNotLoggedInError(
            f"no `omero login` session for {who} in {root}; run "
            f"`omero login {user + '@' if user else ''}{host or 'HOST'}` first, or log in with a "
            "password"
        )
    return found[0]


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except OSError:
        return ""


def _props(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for line in _read(path).splitlines():
        if not line.strip():
            continue
        key, _, value = line.partition("=")
        props[key.strip()] = value.strip()
    return props
