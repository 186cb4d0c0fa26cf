"""The crash-safe journal: one JSON event per line, appended, flushed and fsync'd.

Every change to a session is appended to ``journal.jsonl`` before the
recorder shows it, and written to the disk (``os.fsync``) before
:meth:`Journal.append` returns: a crash, a kill or a power cut loses at most
the event being written. Reading the journal back (:func:`read_events`)
tolerates a half-written last line (a warning, the earlier lines are kept);
anything else that is broken is an error naming the line. Reopening a damaged
journal for writing moves the broken tail to a ``journal.jsonl.damaged-*``
file first, so nothing is ever thrown away.
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
        new = not self.path.exists()
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise JournalError(f"cannot open the session journal {self.path}: {exc}") from None
        try:
            self._lock()
            self._seq = _repair_tail(self.path, self._fd)
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

    def append(self, line: bytes) -> None:
        """Append one encoded event (see :func:`encode_event`) and make it durable."""
        if self._fd < 0:
            raise JournalError(f"the journal {self.path} is closed")
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
            if self.fsync:
                os.fsync(self._fd)
        except OSError as exc:
            raise JournalError(f"could not write the session journal {self.path}: {exc}") from None
        self._seq += 1

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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"cannot read the session journal {path}: {exc}") from None
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


def _repair_tail(path: Path, fd: int) -> int:
    """Move a damaged tail aside before appending; return the last sequence number."""
    data = path.read_bytes()
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
    return len(events)


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
