"""The crash-safe journal: one JSON event per line, appended, flushed and fsync'd.

Every change to a session is appended to ``journal.jsonl`` before the
recorder shows it, and written to the disk (``os.fsync``) before
:meth:`Journal.append` returns: a crash, a kill or a power cut loses at most
the event being written. Reading the journal back (:func:`read_events`)
tolerates a half-written last line (a warning, the earlier lines are kept);
anything else that is broken is an error naming the line. Reopening a damaged
journal for writing moves the broken tail to a ``journal.jsonl.damaged-*``
file first, so nothing is ever thrown away.

A write that fails (disk full, I/O error, quota) is cut back off the file
before :meth:`Journal.append` raises, so the journal never holds a partial
line followed by later events: what ``append`` acknowledged stays readable,
and what it refused left no trace. If even the cut fails, the journal refuses
every later append until the cut succeeds. Journals are never opened through a
symbolic link (``O_NOFOLLOW``): a link is refused with a clear error instead
of writing to (or truncating) whatever it points at.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_fbias.io.atomic import atomic_write_bytes
from napari_fbias.session.errors import (
    JournalError,
    JournalRecoveryWarning,
    SessionFormatError,
    SessionLockedError,
)
from napari_fbias.session.events import apply_event
from napari_fbias.session.model import SCHEMA_VERSION, Session, check_schema, utc_now

try:  # POSIX: one writer per session at a time
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

JOURNAL_NAME = "journal.jsonl"


def encode_event(event: Mapping[str, Any]) -> bytes:
    """Return the journal line (UTF-8, newline-terminated) of one event.

    Raises
    ------
    ValueError
        When a value is not JSON-safe (NaN, infinity, arrays, objects).
    """
    try:
        text = json.dumps(
            event, ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_plain
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"cannot record {event.get('event')!r}: {exc}") from None
    return (text + "\n").encode("utf-8")


def _plain(value: Any) -> Any:
    """Turn numpy scalars into Python ones (json's ``default`` hook)."""
    item = getattr(value, "item", None)
    if item is not None and getattr(value, "ndim", None) == 0:
        return item()
    raise TypeError(f"{type(value).__name__} values cannot be recorded")


class Journal:
    """Append-only writer of a session journal.

    Parameters
    ----------
    path : str or Path
        The ``journal.jsonl`` file; created (with its folder) if missing.
    fsync : bool
        Call ``os.fsync`` after every event (the default; turn off only for
        throw-away sessions, e.g. benchmarks of the recorder itself).

    Raises
    ------
    SessionLockedError
        When another process (or another recorder) writes this journal.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not os.path.lexists(self.path)
        self._fd = open_no_follow(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        #: Length of the file up to the end of the last complete event.
        self._size = 0
        #: True while a failed write may have left a partial line the file could not be cut to.
        self._dirty = False
        try:
            self._lock()
            self._seq, self._size = _repair_tail(self.path, self._fd)
        except BaseException:
            os.close(self._fd)
            raise
        if new:
            _fsync_dir(self.path.parent)

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SessionLockedError(
                f"the session in {self.path.parent} is already being recorded elsewhere "
                "(another napari window or process); close it there first"
            ) from None

    @property
    def next_seq(self) -> int:
        """Sequence number the next event gets."""
        return self._seq + 1

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._fd < 0

    @property
    def size(self) -> int:
        """Bytes of the journal that hold complete, acknowledged events."""
        return self._size

    def append(self, line: bytes) -> None:
        """Append one encoded event (see :func:`encode_event`) and make it durable.

        Raises
        ------
        JournalError
            When the event could not be written and made durable. The file is
            then cut back to the previous event, so nothing of this event
            remains and later events stay readable.
        """
        if self._fd < 0:
            raise JournalError(f"the journal {self.path} is closed")
        if self._dirty:
            self._cut_back(None)
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            self._dirty = True
            self._cut_back(exc)
            raise JournalError(
                f"could not write the session journal {self.path}: {exc}; this change was not "
                "recorded (everything recorded before it is safe)"
            ) from None
        self._size += len(line)
        self._seq += 1

    def _cut_back(self, cause: OSError | None) -> None:
        """Cut the file to its last complete event (after a failed write)."""
        try:
            os.ftruncate(self._fd, self._size)
            os.fsync(self._fd)
        except OSError as exc:
            why = f" after {cause}" if cause is not None else ""
            raise JournalError(
                f"the session journal {self.path} could not be repaired{why} ({exc}); nothing "
                "more can be recorded until the disk is writable again (everything recorded "
                "before is safe)"
            ) from None
        self._dirty = False

    def close(self) -> None:
        """Close the file (and release the lock); appending afterwards is an error."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_event(
    name: str, seq: int, payload: Mapping[str, Any], time: str | None = None
) -> dict[str, Any]:
    """Return a complete event dict (envelope + payload)."""
    return {"v": SCHEMA_VERSION, "seq": seq, "time": time or utc_now(), "event": name, **payload}


def _parse(raw: bytes, path: Path, lineno: int) -> dict[str, Any]:
    try:
        event = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SessionFormatError(f"{path}, line {lineno}: not a JSON event ({exc})") from None
    if not isinstance(event, dict) or "event" not in event:
        raise SessionFormatError(f"{path}, line {lineno}: not a session event")
    check_schema(event.get("v"), f"{path}, line {lineno}")
    if event.get("seq") != lineno:
        raise SessionFormatError(
            f"{path}, line {lineno}: event number {event.get('seq')!r}, expected {lineno} "
            "(lines missing or reordered)"
        )
    return event


def _scan(data: bytes, path: Path) -> tuple[list[dict[str, Any]], int, str | None]:
    """Parse journal bytes: (events, length of the valid prefix, problem with the tail)."""
    events: list[dict[str, Any]] = []
    pos = 0
    lines = data.split(b"\n")
    complete, tail = lines[:-1], lines[-1]
    for i, raw in enumerate(complete, start=1):
        try:
            events.append(_parse(raw, path, i))
        except SessionFormatError as exc:
            rest = b"".join(complete[i:]).strip(b"\x00 \t\r")
            if rest or tail.strip(b"\x00 \t\r"):
                raise JournalError(f"the session journal is damaged: {exc}") from None
            return events, pos, f"its last line is unreadable ({exc})"
        pos += len(raw) + 1
    if tail.strip(b"\x00 \t\r"):
        return events, pos, f"its last line ({len(tail)} bytes) was cut off, probably by a crash"
    return events, pos, None


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Read every complete event of a journal.

    A half-written last line is ignored with a :class:`JournalRecoveryWarning`.

    Raises
    ------
    JournalError
        When the file cannot be read or a line before the last is broken.
    """
    path = Path(path)
    data = read_no_follow(path)
    events, _, problem = _scan(data, path)
    if problem:
        warnings.warn(
            f"session journal {path}: {problem}; it was ignored, the {len(events)} events "
            "before it are kept",
            JournalRecoveryWarning,
            stacklevel=2,
        )
    return events


def replay(events: list[dict[str, Any]]) -> Session:
    """Rebuild a session from its events (see :func:`read_events`)."""
    if not events:
        raise SessionFormatError("the session journal is empty (no 'session_started' event)")
    session: Session | None = None
    for event in events:
        session = apply_event(session, event)
    return session  # type: ignore[return-value]


def open_no_follow(path: Path, flags: int, mode: int = 0o600) -> int:
    """Open a session file without following a symbolic link; JournalError if it is one."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0), mode)
    except OSError as exc:
        if os.path.islink(path):
            raise JournalError(
                f"{path} is a symbolic link; session files are never opened through links "
                "(replace it by the file itself)"
            ) from None
        raise JournalError(f"cannot open the session journal {path}: {exc}") from None


def read_no_follow(path: Path) -> bytes:
    """Read a whole session file without following a symbolic link (JournalError otherwise)."""
    fd = open_no_follow(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise JournalError(f"cannot read the session journal {path}: {exc}") from None
    finally:
        os.close(fd)


def _repair_tail(path: Path, fd: int) -> tuple[int, int]:
    """Move a damaged tail aside before appending; return (last sequence number, good length)."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    data = b"".join(chunks)
    events, valid, problem = _scan(data, path)
    if valid < len(data):
        aside = path.with_name(f"{path.name}.damaged-{utc_now().replace(':', '')}")
        atomic_write_bytes(aside, data[valid:], overwrite=False)
        os.ftruncate(fd, valid)
        os.fsync(fd)
    if problem:
        warnings.warn(
            f"session journal {path}: {problem}; moved to {aside.name}, recording continues "
            f"after event {len(events)}",
            JournalRecoveryWarning,
            stacklevel=3,
        )
    return len(events), valid


def _fsync_dir(folder: Path) -> None:
    """Make a new directory entry durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
