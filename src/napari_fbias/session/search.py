"""Find past sessions in a space: by user, lab, analyst, date or any text (the facility's memory).

Used by ``fbias sessions`` and by the Session panel, which shows a user's
previous sessions with their conclusions when a new one starts.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from napari_fbias.session.store import SessionInfo


@dataclass(frozen=True)
class SessionQuery:
    """What to look for; every field given must match (case-insensitive substrings)."""

    user: str = ""
    lab: str = ""
    analyst: str = ""
    since: str = ""
    text: str = ""

    def matches(self, info: SessionInfo) -> bool:
        """Return True when a listed session fits every criterion."""
        s = info.session
        if s is None:
            return not (self.user or self.lab or self.analyst or self.since or self.text)
        if self.user and not _has(self.user, s.user.name):
            return False
        if self.lab and not _has(self.lab, s.user.lab):
            return False
        if self.analyst and not any(
            _has(self.analyst, n) for n in (*s.analysts, *(a.analyst for a in s.approaches))
        ):
            return False
        if self.since and s.created[: len(self.since)] < self.since:
            return False
        if self.text and not any(_has(self.text, t) for t in _texts(info)):
            return False
        return True


def _has(needle: str, hay: str) -> bool:
    return needle.casefold() in (hay or "").casefold()


def _texts(info: SessionInfo) -> Iterable[str]:
    s = info.session
    assert s is not None
    yield from (s.title, s.question, s.user.name, s.user.lab)
    yield from s.issues
    yield from s.next_steps
    if s.solution is not None:
        yield s.solution.text
    for a in s.approaches:
        yield from (a.title, a.notes, a.analyst)
        yield from (st.op for st in a.steps)


def find_sessions(infos: Iterable[SessionInfo], query: SessionQuery) -> list[SessionInfo]:
    """Return the sessions that match, in the order given."""
    return [i for i in infos if query.matches(i)]


def session_summary(info: SessionInfo) -> dict[str, Any]:
    """Return a JSON-safe summary: who, what, each approach with analyst and client, conclusion."""
    s = info.session
    out: dict[str, Any] = {"link": str(info.path), "title": info.title, "problem": info.problem}
    if s is None:
        return out
    out.update(
        id=s.id,
        created=s.created,
        updated=s.updated,
        user={"name": s.user.name, "lab": s.user.lab},
        question=s.question,
        analysts=list(s.analysts),
        approaches=[
            {
                "key": a.key,
                "title": a.title,
                "analyst": a.analyst,
                "client": a.client,
                "steps": len(a.steps),
                "result": dict(a.result),
            }
            for a in s.approaches
        ],
        solution=s.solution.to_dict() if s.solution else None,
        issues=list(s.issues),
        next_steps=list(s.next_steps),
        follows=dict(s.follows) if s.follows else None,
    )
    return out


def conclusion(info: SessionInfo) -> str:
    """Return one line saying what a past session concluded (for lists)."""
    s = info.session
    if s is None:
        return info.problem or ""
    parts = []
    if s.solution is not None and (s.solution.text or s.solution.approach):
        who = f"approach {s.solution.approach}: " if s.solution.approach else ""
        parts.append(f"solution: {who}{s.solution.text}".strip())
    if s.next_steps:
        parts.append("next: " + "; ".join(s.next_steps))
    return " — ".join(parts) or "no conclusion recorded"
