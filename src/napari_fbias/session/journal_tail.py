"""Read one analyst's journal as it grows, keeping every good event and stopping at damage.

A session folder holds one journal per recording client (see
:mod:`~napari_fbias.session.space`). Other clients' journals are read while
they are still being written, so a last line without its newline is simply
not complete yet. A line that is broken, too long, of an unknown schema or
event type, numbered out of order, claiming another client or going back in
logical time is *damage*: the events before it are kept, the rest of that
journal is ignored, and :attr:`JournalTail.problem` says which analyst, which
line and why. Nothing in a journal is ever executed; events are plain data.
"""

from __future__ import annotations

import json
from typing import Any

from napari_fbias.session.errors import SessionFormatError
from napari_fbias.session.events import HANDLERS
from napari_fbias.session.model import check_schema

#: The longest journal line read (a whole restored snapshot fits; a runaway line does not).
MAX_LINE_BYTES = 16_000_000
#: Client name of the single journal (``journal.jsonl``) written before sessions were shared.
LEGACY_CLIENT = ""


class JournalTail:
    """Incremental, tolerant reader of one client's journal.

    Parameters
    ----------
    where : str
        The journal's path or URL (for messages).
    client : str
        The client the journal belongs to (its file name); ``""`` for a
        single-writer ``journal.jsonl``.
    """

    def __init__(self, where: str, client: str) -> None:
        self.where = where
        self.client = client
        #: Bytes consumed so far (read the journal on from here).
        self.offset = 0
        self.lineno = 0
        self.clock = 0
        self.problem: str | None = None
        #: Analysts named by the journal's first event (for messages).
        self.analysts: tuple[str, ...] = ()
        self._buf = b""

    @property
    def pending(self) -> int:
        """Bytes of an incomplete last line held back."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Consume ``data`` (the journal's bytes from :attr:`offset` on); return new events."""
        self.offset += len(data)
        if self.problem is not None:
            return []
        lines = (self._buf + data).split(b"\n")
        self._buf = lines.pop()
        out: list[dict[str, Any]] = []
        for raw in lines:
            try:
                out.append(self._check(raw, self.lineno + 1))
            except SessionFormatError as exc:
                self._damage(self.lineno + 1, str(exc))
                break
            self.lineno += 1
        if self.problem is None and len(self._buf) > MAX_LINE_BYTES:
            self._damage(self.lineno + 1, f"a line longer than {MAX_LINE_BYTES} bytes")
        if self.problem is not None:
            self._buf = b""
        return out

    def cut_off(self) -> str | None:
        """Return a note when the journal ends in a half-written line (a crash), else None."""
        if self.problem is None and self._buf.strip(b"\x00 \t\r"):
            return (
                f"{self._who()}: its last line ({len(self._buf)} bytes) was cut off, probably "
                f"by a crash; the {self.lineno} events before it are kept"
            )
        return None

    def _who(self) -> str:
        names = ", ".join(self.analysts) or "an analyst"
        label = f"client {self.client}" if self.client else "single-writer journal"
        return f"journal of {names} ({label}, {self.where})"

    def _damage(self, lineno: int, why: str) -> None:
        self.problem = (
            f"{self._who()}, line {lineno}: {why}; the {self.lineno} events before it are "
            "kept, the rest of this journal is ignored"
        )

    def _check(self, raw: bytes, lineno: int) -> dict[str, Any]:
        if len(raw) > MAX_LINE_BYTES:
            raise SessionFormatError(f"a line longer than {MAX_LINE_BYTES} bytes")
        try:
            event = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise SessionFormatError(f"not a JSON event ({exc})") from None
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise SessionFormatError("not a session event")
        check_schema(event.get("v"), "event")
        if event["event"] not in HANDLERS:
            raise SessionFormatError(f"unknown event type {event['event']!r}")
        if event.get("seq") != lineno:
            raise SessionFormatError(
                f"event number {event.get('seq')!r}, expected {lineno} (lines missing or reordered)"
            )
        client = event.get("client", LEGACY_CLIENT)
        if client != self.client:
            raise SessionFormatError(
                f"event claims client {client!r} in the journal of client {self.client!r}"
            )
        clock = event.get("clock", lineno) if client == LEGACY_CLIENT else event.get("clock")
        if isinstance(clock, bool) or not isinstance(clock, int) or clock <= self.clock:
            raise SessionFormatError(
                f"logical clock {clock!r} does not go forward (previous {self.clock})"
            )
        ext = event.get("ext", {})
        if not isinstance(ext, dict) or not all(
            isinstance(v, dict) and all(isinstance(c, str) for c in v.values())
            for v in ext.values()
        ):
            raise SessionFormatError("malformed 'ext' (names of other analysts' objects)")
        self.clock = clock
        event["clock"] = clock
        if lineno == 1:
            header = event.get("session") if isinstance(event.get("session"), dict) else event
            names = header.get("analysts") or ()
            self.analysts = tuple(str(a) for a in names if isinstance(a, str))[:5]
        return event
