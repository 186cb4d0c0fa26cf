"""Which steps read which: dependents, ancestors, and steps left without purpose.

Steps are linked across the whole session (an approach may read a layer that
another approach produced), so these work on every current step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from napari_fbias.session.model import RecordedStep, Session


def steps_by_id(session: Session) -> dict[str, RecordedStep]:
    """Every current step of the session, by id."""
    return {sid: st for sid, (_, st) in session.step_index.items()}


def readers(session: Session) -> Mapping[str, frozenset[str]]:
    """Step id -> ids of the steps that read its output directly."""
    return session.readers


def dependents(session: Session, step_id: str) -> set[str]:
    """Ids of all steps that read ``step_id``'s output, directly or not."""
    by = readers(session)
    seen: set[str] = set()
    todo = list(by.get(step_id, ()))
    while todo:
        sid = todo.pop()
        if sid not in seen:
            seen.add(sid)
            todo.extend(by.get(sid, ()))
    return seen


def ancestors(session: Session, step_ids: Iterable[str]) -> set[str]:
    """Ids of all steps whose outputs ``step_ids`` read, directly or not (not themselves)."""
    steps = steps_by_id(session)
    seen: set[str] = set()
    todo = [r for sid in step_ids if sid in steps for r in steps[sid].reads_steps()]
    while todo:
        sid = todo.pop()
        if sid not in seen and sid in steps:
            seen.add(sid)
            todo.extend(steps[sid].reads_steps())
    return seen


def with_orphans(session: Session, removed: set[str]) -> set[str]:
    """Add to ``removed`` the steps kept only to feed removed ones.

    A step whose layer was deleted (``output_layer`` None) stays while later
    steps read it; once all of them are gone it serves nothing and goes too.
    """
    steps = steps_by_id(session)
    by = readers(session)
    out = set(removed)
    empty: frozenset[str] = frozenset()
    changed = True
    while changed:
        changed = False
        for sid in ancestors(session, out) - out:
            if steps[sid].output_layer is None and by.get(sid, empty) <= out:
                out.add(sid)
                changed = True
    return out
