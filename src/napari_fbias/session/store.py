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
from napari_fbias.session.journal import JOURNAL_NAME, read_events, replay
from napari_fbias.session.model import Session

SESSION_DIR_ENV = "FBIAS_SESSION_DIR"
SNAPSHOT_NAME = "session.yaml"
#: Snapshots larger than this are refused (they are text written by us).
MAX_SNAPSHOT_BYTES = 64_000_000


def sessions_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the folder holding session folders (argument, ``$FBIAS_SESSION_DIR`` or default)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(SESSION_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".napari-fbias" / "sessions"


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
    """Write ``<folder>/session.yaml`` atomically (temporary sibling, fsync, rename)."""
    return atomic_write_text(Path(folder) / SNAPSHOT_NAME, snapshot_text(session))


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


def locate(path: str | os.PathLike[str]) -> tuple[Path, Path | None, Path | None]:
    """Return ``(folder, journal or None, snapshot or None)`` for a session folder or file.

    Raises
    ------
    SessionError
        When ``path`` holds neither a journal nor a snapshot.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise SessionError(f"no session in {p}: it does not exist")
    folder = p if p.is_dir() else p.parent
    journal = p if p.is_file() and p.suffix == ".jsonl" else folder / JOURNAL_NAME
    snapshot = p if p.is_file() and p.suffix in (".yaml", ".yml") else folder / SNAPSHOT_NAME
    found_j = journal if journal.is_file() else None
    found_s = snapshot if snapshot.is_file() else None
    if p.is_file() and p.suffix in (".yaml", ".yml"):
        found_j = None  # a snapshot named explicitly
    if found_j is None and found_s is None:
        raise SessionError(f"no session in {p} (no {JOURNAL_NAME} or {SNAPSHOT_NAME})")
    return folder, found_j, found_s


def load_session(path: str | os.PathLike[str]) -> Session:
    """Load a session, read-only: replay its journal, or read the snapshot if there is none.

    Parameters
    ----------
    path : str or Path
        The session folder, its ``journal.jsonl`` or a ``session.yaml``
        (naming the snapshot file loads the snapshot alone).
    """
    _, journal, snapshot = locate(path)
    if journal is not None:
        return replay(read_events(journal))
    return load_snapshot(snapshot)  # type: ignore[arg-type]


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


def list_sessions(root: str | os.PathLike[str] | None = None) -> list[SessionInfo]:
    """List the sessions under ``root`` (see :func:`sessions_root`), most recently updated first.

    A session that cannot be read is listed with its ``problem`` (and no
    details) instead of stopping the listing; a recovered crash is listed
    normally, with the recovery noted in ``problem``.
    """
    base = sessions_root(root)
    if not base.is_dir():
        return []
    out: list[SessionInfo] = []
    for folder in sorted(base.iterdir()):
        if not folder.is_dir() or not (
            (folder / JOURNAL_NAME).is_file() or (folder / SNAPSHOT_NAME).is_file()
        ):
            continue
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", JournalRecoveryWarning)
            try:
                s = load_session(folder)
            except SessionError as exc:
                out.append(SessionInfo(folder, "", folder.name, "", "", "", "", (), (), str(exc)))
                continue
        notes = [str(w.message) for w in caught if issubclass(w.category, JournalRecoveryWarning)]
        out.append(
            SessionInfo(
                path=folder,
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
            )
        )
    out.sort(key=lambda i: i.updated, reverse=True)
    return out
