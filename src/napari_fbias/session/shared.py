"""One client's view of a session: its own journal, everyone else's, merged.

:class:`SessionJournals` is what a :class:`~napari_fbias.session.recorder.SessionRecorder`
writes through: it appends this client's events to this client's journal
only (one writer per file, no lock anyone could leave behind), reads the
other clients' journals as they grow (:meth:`SessionJournals.poll`), and
keeps the merged session (:mod:`~napari_fbias.session.merge`).
:func:`read_session` reads a whole session once, without recording.
"""

from __future__ import annotations

import threading
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from napari_fbias.session.errors import JournalRecoveryWarning, SessionFormatError
from napari_fbias.session.journal import Journal
from napari_fbias.session.journal_tail import JournalTail
from napari_fbias.session.merge import MergeState, SessionMerger, merge_events
from napari_fbias.session.model import Session
from napari_fbias.session.replicate import Replicator
from napari_fbias.session.space import JOURNALS_DIR, Space, SpaceUnreachableError


def new_client_id() -> str:
    """Return a fresh id for one recording napari (12 hex digits)."""
    return uuid.uuid4().hex[:12]


def read_journals(
    space: Space, name: str, tails: dict[str, JournalTail], skip: str | None = None
) -> list[dict[str, Any]]:
    """Read what is new in every journal of a session; return the new events.

    ``tails`` keeps each journal's reading position between calls. A damaged
    journal warns once (:class:`JournalRecoveryWarning`, naming the analyst
    and the line) and is read no further.
    """
    out: list[dict[str, Any]] = []
    for client, (path, size) in sorted(space.journals(name).items()):
        if client == skip:
            continue
        tail = tails.get(client)
        if tail is None:
            tail = tails[client] = JournalTail(path, client)
        if size <= tail.offset or tail.problem is not None:
            continue
        out.extend(tail.feed(space.read(path, tail.offset)))
        if tail.problem is not None:
            warnings.warn(tail.problem, JournalRecoveryWarning, stacklevel=3)
    return out


def read_session(space: Space, name: str) -> Session | None:
    """Merge every journal of a session once (None when it has none)."""
    tails: dict[str, JournalTail] = {}
    events = read_journals(space, name, tails)
    if not tails:
        return None
    for tail in tails.values():
        note = tail.cut_off()
        if note:
            warnings.warn(note, JournalRecoveryWarning, stacklevel=2)
    if not events:
        why = "; ".join(t.problem for t in tails.values() if t.problem)
        raise SessionFormatError(
            f"the session journals in {space.url(name)} hold no readable event"
            + (f": {why}" if why else " (no 'session_started' event)")
        )
    return merge_events(events)


def send_leftovers(space: Space, name: str, outbox: Path, skip: str) -> int:
    """Send what earlier clients on this machine recorded but never sent (a crash, a kill).

    Returns the number of journals sent; one that cannot be sent now stays in
    the outbox for the next time.
    """
    sent = 0
    try:
        remote = space.journals(name)
    except SpaceUnreachableError:
        return 0
    for path in sorted(outbox.glob("*.jsonl")):
        client = path.stem
        if client == skip or path.is_symlink():
            continue
        data = path.read_bytes()
        data = data[: data.rfind(b"\n") + 1]  # complete events only
        have = remote.get(client, ("", 0))[1]
        if len(data) <= have:
            continue
        try:
            space.push(space.path(name, JOURNALS_DIR, path.name), data, have)
            sent += 1
        except SpaceUnreachableError:
            continue
    return sent


class SessionJournals:
    """Journal of this client (written) and those of the other clients (read), merged.

    Parameters
    ----------
    space : Space
        Where the session lives.
    name : str
        The session's folder name in the space.
    client : str, optional
        This client's id (default: a new one).
    fsync : bool
        fsync every event of this client's journal.
    """

    def __init__(
        self, space: Space, name: str, *, client: str | None = None, fsync: bool = True
    ) -> None:
        self.space = space
        self.name = name
        self.client = client or new_client_id()
        self.merger = SessionMerger()
        self.tails: dict[str, JournalTail] = {}
        self.read_error: str | None = None
        self._read_lock = threading.Lock()
        local = space.outbox(name, self.client)
        self.journal = Journal(local, fsync=fsync)
        self.replicator: Replicator | None = None
        if not space.direct:
            send_leftovers(space, name, local.parent, skip=self.client)
            self.replicator = Replicator(
                space,
                space.path(name, JOURNALS_DIR, f"{self.client}.jsonl"),
                local,
                lambda: (self.journal.size, self.journal.next_seq - 1),
            )

    @property
    def state(self) -> MergeState:
        """The merged state."""
        return self.merger.state

    @property
    def link(self) -> str:
        """The session link: the session folder's path or URL in the space."""
        return self.space.url(self.name)

    @property
    def local_folder(self) -> Path:
        """The local folder holding this client's journal (the session folder if direct)."""
        return self.journal.path.parent.parent if self.space.direct else self.journal.path.parent

    @property
    def status(self) -> str:
        """Where the session's record stands: ``local``, ``online``, ``offline: ...``."""
        if self.read_error is not None:
            return f"offline: cannot read the space ({self.read_error})"
        if self.replicator is None:
            return "local" if self.space.direct and self.space.is_local else "online"
        return self.replicator.status

    def poll(self, *, first: bool = False) -> int:
        """Read what the other clients recorded since the last call; return the new events.

        With ``first``, also warn about journals that end in a half-written
        line (a crashed client); later polls treat such a line as not yet
        complete.
        """
        return self.merger.add(self.read_new(first=first))

    def read_new(self, *, first: bool = False) -> list[dict[str, Any]]:
        """Read the other clients' new events without merging them (the slow, I/O part)."""
        with self._read_lock:
            try:
                events = read_journals(self.space, self.name, self.tails, skip=self.client)
            except SpaceUnreachableError as exc:
                self.read_error = str(exc).splitlines()[0][:200]
                return []
            self.read_error = None
            if first:
                for tail in self.tails.values():
                    note = tail.cut_off()
                    if note:
                        warnings.warn(note, JournalRecoveryWarning, stacklevel=4)
            return events

    def append(self, line: bytes, event: Mapping[str, Any], state: MergeState) -> None:
        """Write one local event (durably) and make it part of the merged session."""
        self.journal.append(line)
        self.merger.commit(event, state)
        if self.replicator is not None:
            self.replicator.kick()

    def flush(self, timeout: float = 30.0) -> bool:
        """Send everything to the space now (True when it has it all)."""
        return self.replicator.flush(timeout) if self.replicator is not None else True

    def close(self) -> None:
        """Stop writing (and send what is left, briefly)."""
        if self.replicator is not None:
            self.replicator.close()
        self.journal.close()
