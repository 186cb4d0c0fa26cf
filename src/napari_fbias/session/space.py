"""Where sessions live: a local folder (the default), a shared folder or an object store.

A *session space* holds one folder per session::

    <space>/<YYYY-MM-DD>-<slug>-<id8>/
        journals/<client>.jsonl    one journal per recording napari (one writer per file)
        journal.jsonl              the single journal of sessions recorded before sharing
        session.yaml               a readable snapshot (optional)

The default space is the local sessions folder (``$FBIAS_SESSION_DIR`` or
``~/.napari-fbias/sessions``): journals are written there directly. Any
other space (``--space``, ``$FBIAS_SPACE``, the Session panel) is a path or an
fsspec URL (``s3://bucket/prefix``...); a client then writes its journal to a
local *outbox* first (durable at once, whatever the network does) and a
:class:`~napari_fbias.session.replicate.Replicator` copies it to the space.
Credentials come from the environment or fsspec/boto configuration; a space
URL holding credentials is refused so that none is ever written down.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from napari_fbias.session.errors import SessionError

SPACE_ENV = "FBIAS_SPACE"
SESSION_DIR_ENV = "FBIAS_SESSION_DIR"
OUTBOX_ENV = "FBIAS_OUTBOX"
JOURNALS_DIR = "journals"
LEGACY_JOURNAL = "journal.jsonl"
SNAPSHOT_NAME = "session.yaml"


def sessions_root(root: str | os.PathLike[str] | None = None) -> Path:
    """Return the local folder of sessions (argument, ``$FBIAS_SESSION_DIR`` or the default)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(SESSION_DIR_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".napari-fbias" / "sessions"


class SpaceUnreachableError(SessionError):
    """The session space cannot be read or written right now (network, permissions...)."""


def _is_url(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


@dataclass(frozen=True)
class Space:
    """A session space: a local folder or an fsspec URL.

    Parameters
    ----------
    location : str
        A folder path, ``file://`` URL or fsspec URL.
    direct : bool
        Whether clients write their journals in place (the default local
        space) instead of through an outbox.
    """

    location: str
    direct: bool = False
    #: Folder of this machine's outboxes (default ``$FBIAS_OUTBOX`` or ``~/.napari-fbias/outbox``).
    outbox_root: str | None = None

    @classmethod
    def resolve(cls, location: str | os.PathLike[str] | Space | None = None) -> Space:
        """Return the space named by an argument, ``$FBIAS_SPACE`` or the default local one."""
        if isinstance(location, Space):
            return location
        if location is None or str(location) == "":
            env = os.environ.get(SPACE_ENV)
            if env:
                return cls.resolve(env)
            return cls(str(sessions_root()), direct=True)
        text = str(location)
        if text.startswith("file://"):
            text = urlsplit(text).path
        if _is_url(text):
            if "@" in text or "?" in text or "#" in text:  # userinfo, tokens, signatures
                raise SessionError(
                    "a session space URL must not hold credentials (no '@', '?' or '#'); give "
                    "them through the environment or your fsspec/boto configuration"
                )
            return cls(text.rstrip("/"))
        return cls(str(Path(text).expanduser().absolute()))

    @property
    def is_local(self) -> bool:
        """True for a folder on this machine (or a mounted network drive)."""
        return not _is_url(self.location)

    def __str__(self) -> str:
        return self.location

    # --- file system -----------------------------------------------------------------
    def _fs(self) -> Any:
        if self.is_local:
            return None
        import fsspec

        from napari_fbias.io.remote import require_filesystem

        try:
            require_filesystem(self.location)  # s3:// without s3fs names the extra
            fs, root = fsspec.core.url_to_fs(self.location)
        except (ImportError, ValueError) as exc:
            raise SessionError(f"cannot use the session space {self.location}: {exc}") from None
        return fs

    def _root(self) -> str:
        if self.is_local:
            return self.location
        parts = urlsplit(self.location)
        return f"{parts.netloc}{parts.path}".rstrip("/")

    def path(self, *names: str) -> str:
        """Return the path (local) or fs path (URL) of a file in the space."""
        for n in names:
            if not n or n in (".", "..") or "/" in n or "\\" in n or "\0" in n:
                raise SessionError(f"not a valid name in a session space: {n!r}")
        return posixpath.join(self._root(), *names)

    def url(self, *names: str) -> str:
        """Return the full location (path or URL) of a session or file: a *session link*."""
        if self.is_local:
            return self.path(*names)
        return "/".join([self.location, *names])

    def list_names(self) -> list[str]:
        """Return the session folder names in the space (sorted)."""
        try:
            if self.is_local:
                base = Path(self.location)
                if not base.is_dir():
                    return []
                return sorted(p.name for p in base.iterdir() if _has_session(p))
            fs = self._fs()
            root = self._root()
            if not fs.exists(root):
                return []
            fs.invalidate_cache(root)
            out = []
            for entry in fs.ls(root, detail=True):
                if entry.get("type") == "directory":
                    out.append(posixpath.basename(entry["name"].rstrip("/")))
            return sorted(out)
        except OSError as exc:
            raise SpaceUnreachableError(f"cannot list the space {self.location}: {exc}") from None

    def journals(self, name: str) -> dict[str, tuple[str, int]]:
        """Return ``client -> (path, size)`` of every journal of a session (``""``: legacy)."""
        out: dict[str, tuple[str, int]] = {}
        try:
            if self.is_local:
                if not Path(self.location).is_dir():
                    raise SpaceUnreachableError(f"the session space {self.location} is not there")
                folder = Path(self.path(name))
                legacy = folder / LEGACY_JOURNAL
                if legacy.is_file() or legacy.is_symlink():
                    out[""] = (str(legacy), legacy.lstat().st_size)
                jdir = folder / JOURNALS_DIR
                if jdir.is_dir():
                    for p in jdir.iterdir():
                        if p.suffix == ".jsonl" and _client_ok(p.stem):
                            out[p.stem] = (str(p), p.lstat().st_size)
                return out
            fs = self._fs()
            folder = self.path(name)
            for sub in (folder, self.path(name, JOURNALS_DIR)):
                fs.invalidate_cache(sub)
            for entry in _ls(fs, folder):
                if posixpath.basename(entry["name"]) == LEGACY_JOURNAL:
                    out[""] = (entry["name"], int(entry.get("size") or 0))
            for entry in _ls(fs, self.path(name, JOURNALS_DIR)):
                base = posixpath.basename(entry["name"])
                if base.endswith(".jsonl") and _client_ok(base[:-6]):
                    out[base[:-6]] = (entry["name"], int(entry.get("size") or 0))
            return out
        except OSError as exc:
            raise SpaceUnreachableError(f"cannot read the space {self.location}: {exc}") from None

    def read(self, path: str, start: int = 0) -> bytes:
        """Return the bytes of a file from ``start`` on (never through a symbolic link)."""
        try:
            if self.is_local:
                from napari_fbias.session.journal import open_no_follow

                fd = open_no_follow(Path(path), os.O_RDONLY)
                try:
                    os.lseek(fd, start, os.SEEK_SET)
                    chunks = []
                    while chunk := os.read(fd, 1 << 20):
                        chunks.append(chunk)
                    return b"".join(chunks)
                finally:
                    os.close(fd)
            return bytes(self._fs().cat_file(path, start=start))
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise SpaceUnreachableError(f"cannot read {path}: {exc}") from None

    def push(self, path: str, data: bytes, known_size: int) -> None:
        """Make the file at ``path`` equal ``data``, of which ``known_size`` bytes are there."""
        try:
            if self.is_local:
                p = Path(path)
                if not Path(self.location).is_dir():
                    raise SpaceUnreachableError(f"the session space {self.location} is not there")
                p.parent.mkdir(parents=True, exist_ok=True)
                from napari_fbias.session.journal import open_no_follow

                fd = open_no_follow(p, os.O_WRONLY | os.O_CREAT, 0o644)
                try:
                    size = os.fstat(fd).st_size
                    if size > len(data):
                        raise SpaceUnreachableError(f"{path} is longer than this client's journal")
                    os.lseek(fd, size, os.SEEK_SET)
                    view = memoryview(data)[size:]
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                return
            fs = self._fs()
            fs.pipe_file(path, bytes(data))
        except SpaceUnreachableError:
            raise
        except Exception as exc:
            raise SpaceUnreachableError(f"cannot write {path}: {exc}") from None

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file atomically (local) or as one object (URL)."""
        if self.is_local:
            from napari_fbias.io.atomic import atomic_write_text

            atomic_write_text(Path(path), text)
            return
        try:
            self._fs().pipe_file(path, text.encode("utf-8"))
        except Exception as exc:
            raise SpaceUnreachableError(f"cannot write {path}: {exc}") from None

    def outbox(self, name: str, client: str) -> Path:
        """Return the local journal file of ``client`` for session ``name`` in this space."""
        if self.direct:
            return Path(self.path(name, JOURNALS_DIR, f"{client}.jsonl"))
        root = (
            self.outbox_root
            or os.environ.get(OUTBOX_ENV)
            or str(Path.home() / ".napari-fbias" / "outbox")
        )
        key = hashlib.sha256(self.location.encode()).hexdigest()[:16]
        return Path(root).expanduser() / key / name / f"{client}.jsonl"


def split_link(link: str | os.PathLike[str]) -> tuple[Space, str]:
    """Return ``(space, session name)`` of a session link (the session folder's path or URL)."""
    text = str(link).rstrip("/")
    if text.startswith("file://"):
        text = urlsplit(text).path
    if _is_url(text):
        parent, _, name = text.rpartition("/")
        if "/" not in parent.split("://", 1)[1] and not name:
            raise SessionError(f"{link} names no session")
        return Space.resolve(parent), name
    p = Path(text).expanduser().absolute()
    if p.is_file():
        p = p.parent
    if p.name == JOURNALS_DIR:
        p = p.parent
    return Space(str(p.parent), direct=True), p.name


def _ls(fs: Any, path: str) -> list[dict[str, Any]]:
    try:
        return list(fs.ls(path, detail=True))
    except FileNotFoundError:
        return []


def _has_session(p: Path) -> bool:
    return p.is_dir() and (
        (p / JOURNALS_DIR).is_dir() or (p / LEGACY_JOURNAL).exists() or (p / SNAPSHOT_NAME).exists()
    )


def _client_ok(name: str) -> bool:
    return 0 < len(name) <= 64 and all(c.isalnum() or c in "-_" for c in name)
