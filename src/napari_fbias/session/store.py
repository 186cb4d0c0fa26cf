"""Where sessions live on disk: folders, readable snapshots, loading and listing.

Each session has a folder ``<root>/<date>-<slug>-<id8>/`` holding
``journal.jsonl`` (the truth, see :mod:`~napari_fbias.session.journal`) and,
once saved, ``session.yaml`` (a readable snapshot, written atomically). The
root is ``~/.napari-fbias/sessions`` unless the ``FBIAS_SESSION_DIR``
environment variable or an argument says otherwise.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import yaml

from napari_fbias.io.atomic import atomic_write_text
from napari_fbias.session.errors import JournalRecoveryWarning, SessionError, SessionFormatError
from napari_fbias.session.journal import JOURNAL_NAME
from napari_fbias.session.model import Session
from napari_fbias.session.space import SESSION_DIR_ENV, sessions_root  # noqa: F401 (re-exported)

SNAPSHOT_NAME = "session.yaml"
#: Snapshots larger than this are refused (they are text written by us).
MAX_SNAPSHOT_BYTES = 64_000_000


def slugify(text: str, max_len: int = 40) -> str:
    """Lower-case ASCII words joined by ``-`` (``"Nuclei in 3D!"`` -> ``"nuclei-in-3d"``)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "session"


def session_folder_name(session: Session) -> str:
    """Return ``<YYYY-MM-DD>-<slug of title>-<first 8 characters of the id>``."""
    return f"{session.created[:10]}-{slugify(session.title)}-{session.id[:8]}"


def snapshot_text(session: Session) -> str:
    """Return the readable YAML snapshot of a session."""
    return yaml.safe_dump(
        session.to_dict(),
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def save_snapshot(session: Session, folder: str | os.PathLike[str]) -> Path:
    """Write ``<folder>/session.yaml`` atomically (temporary sibling, fsync, rename).

    Raises
    ------
    SessionFormatError
        When the snapshot would be larger than :data:`MAX_SNAPSHOT_BYTES`
        (it could not be loaded back); nothing is written, the journals
        still hold the whole session.
    """
    text = snapshot_text(session)
    size = len(text.encode("utf-8"))
    if size > MAX_SNAPSHOT_BYTES:
        raise SessionFormatError(
            f"the session is too large for a readable snapshot ({size / 1e6:.0f} MB, the limit "
            f"is {MAX_SNAPSHOT_BYTES / 1e6:.0f} MB); nothing was written and nothing is lost: "
            "the journals hold the whole session"
        )
    return atomic_write_text(Path(folder) / SNAPSHOT_NAME, text)


def load_snapshot(path: str | os.PathLike[str]) -> Session:
    """Read a ``session.yaml`` snapshot (safe YAML only).

    Raises
    ------
    SessionFormatError
        When the file is not valid YAML, too large, or not a session record.
    """
    path = Path(path)
    if path.is_symlink():
        raise SessionFormatError(
            f"{path} is a symbolic link; session files are never read through links"
        )
    try:
        if path.stat().st_size > MAX_SNAPSHOT_BYTES:
            raise SessionFormatError(f"{path}: larger than {MAX_SNAPSHOT_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SessionFormatError(f"cannot read the session snapshot {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SessionFormatError(f"{path}: not valid YAML ({exc})") from None
    try:
        return Session.from_dict(data)
    except SessionFormatError as exc:
        raise SessionFormatError(f"{path}: {exc}") from None


def load_session(path: str | os.PathLike[str]) -> Session:
    """Load a session, read-only: merge every analyst's journal, or read its snapshot.

    Parameters
    ----------
    path : str or Path
        A session link: the session folder (local path or URL in a space),
        a journal in it, or a ``session.yaml`` (naming the snapshot file loads
        the snapshot alone).

    Raises
    ------
    SessionError
        When there is no session there, or its journals cannot be read.
    """
    from napari_fbias.session.shared import read_session
    from napari_fbias.session.space import split_link

    text = str(path)
    if "://" not in text:
        p = Path(text).expanduser()
        if not p.exists() and not p.is_symlink():
            raise SessionError(f"no session in {p}: it does not exist")
        if p.suffix in (".yaml", ".yml") and not p.is_dir():
            return load_snapshot(p)
    space, name = split_link(path)
    session = read_session(space, name)
    if session is not None:
        return session
    snapshot = Path(space.path(name, SNAPSHOT_NAME)) if space.is_local else None
    if snapshot is not None and (snapshot.is_file() or snapshot.is_symlink()):
        return load_snapshot(snapshot)
    raise SessionError(f"no session in {space.url(name)} (no {JOURNAL_NAME} or {SNAPSHOT_NAME})")


@dataclass(frozen=True)
class SessionInfo:
    """One previous session, as listed for the user to pick from."""

    path: Path
    id: str
    title: str
    user: str
    lab: str
    created: str
    updated: str
    analysts: tuple[str, ...]
    approaches: tuple[str, ...]
    problem: str | None = None
    question: str = ""
    #: The whole record (None when it could not be read).
    session: Session | None = None


def list_sessions(
    root: str | os.PathLike[str] | None = None, *, space: object = None
) -> list[SessionInfo]:
    """List the sessions of a space, most recently updated first.

    Parameters
    ----------
    root : str or Path, optional
        A local folder of sessions (see :func:`sessions_root`).
    space : str or Space, optional
        A session space (path or URL); default ``$FBIAS_SPACE`` or ``root``.

    A session that cannot be read is listed with its ``problem`` (and no
    details) instead of stopping the listing; a recovered crash is listed
    normally, with the recovery noted in ``problem``. ``path`` is the session
    link (a local path, or the URL in a remote space).
    """
    from napari_fbias.session.space import Space

    if space is None and root is not None:
        where = Space(str(sessions_root(root)), direct=True)
    else:
        where = Space.resolve(space)  # type: ignore[arg-type]
    out: list[SessionInfo] = []
    for name in where.list_names():
        link = where.url(name)
        folder = Path(link) if where.is_local else link
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", JournalRecoveryWarning)
            try:
                s = load_session(link)
            except SessionError as exc:
                out.append(SessionInfo(folder, "", name, "", "", "", "", (), (), str(exc)))  # type: ignore[arg-type]
                continue
        notes = [str(w.message) for w in caught if issubclass(w.category, JournalRecoveryWarning)]
        out.append(
            SessionInfo(
                path=folder,  # type: ignore[arg-type]
                id=s.id,
                title=s.title,
                user=s.user.name,
                lab=s.user.lab,
                created=s.created,
                updated=s.updated,
                analysts=s.analysts,
                approaches=tuple(a.key for a in s.approaches),
                problem="; ".join(notes) or None,
                question=s.question,
                session=s,
            )
        )
    out.sort(key=lambda i: i.updated, reverse=True)
    return out
