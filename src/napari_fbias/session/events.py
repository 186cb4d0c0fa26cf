"""Session events: the journal's vocabulary, and how each one changes a :class:`Session`.

A session is the result of applying its events in order, starting from
``session_started``; the recorder and the journal replay use the same
:func:`apply_event`, so what was recorded live and what is rebuilt after a
crash cannot differ. Each event is a plain dict::

    {"v": 1, "seq": 7, "time": "2025-...Z", "event": "step_recorded",
     "approach": "A", "step": {...}}

Events carry their decisions explicitly (which steps a removal takes with it,
which ones became stale), so applying them needs no op registry and no
judgement. Every event also becomes one :class:`TimelineEvent`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from napari_fbias.session.errors import SessionFormatError
from napari_fbias.session.model import (
    Approach,
    ImageRef,
    Person,
    RecordedStep,
    Session,
    Solution,
    TimelineEvent,
)
from napari_fbias.session.model import evolve as replace  # the fast copy, see model.evolve

#: Fields settable with ``field_set``: on the session, or (with ``approach``) on an approach.
SESSION_FIELDS = ("title", "question", "user.name", "user.lab")
APPROACH_FIELDS = ("title", "analyst")
LIST_FIELDS = ("issues", "next_steps")
#: Events that begin a journal: a new session, or one continued from a snapshot alone.
FIRST_EVENTS = ("session_started", "session_restored")
#: Keys every event has; the rest is the event's payload (and its timeline detail).
#: ``client``/``clock`` order events of several journals (see merge.py); ``ext`` qualifies
#: names created by another client; ``prev`` is the value an edit replaced, as its writer saw it.
#: ``client`` stays in the timeline entry (who did it).
ENVELOPE = frozenset({"v", "seq", "time", "event", "clock", "ext", "prev"})

#: A handler returns the session it was given (nothing changed) or a new value it made.
Handler = Callable[[Session, Mapping[str, Any]], Session]


def _approach(s: Session, e: Mapping[str, Any]) -> Approach:
    try:
        return s.approach(e["approach"])
    except KeyError as exc:
        raise SessionFormatError(str(exc.args[0])) from None


def _with_approach(s: Session, new: Approach) -> Session:
    return replace(s, approaches=tuple(new if a.key == new.key else a for a in s.approaches))


def _started(s: Session, e: Mapping[str, Any]) -> Session:  # s is a placeholder here
    h = e["session"]
    return Session(
        id=str(h["id"]),
        title=str(h.get("title", "")),
        user=Person.from_dict(h.get("user") or {}),
        question=str(h.get("question", "")),
        analysts=tuple(h.get("analysts") or ()),
        created=str(e["time"]),
    )


def _restored(s: Session, e: Mapping[str, Any]) -> Session:  # s is a placeholder here
    return Session.from_dict(e["session"])


def _analysts(s: Session, e: Mapping[str, Any]) -> Session:
    new = [a for a in e.get("analysts", ()) if a not in s.analysts]
    return replace(s, analysts=s.analysts + tuple(new))


def _field_set(s: Session, e: Mapping[str, Any]) -> Session:
    field, value = e["field"], str(e["value"])
    if e.get("approach") is not None:
        if field not in APPROACH_FIELDS:
            raise SessionFormatError(f"unknown approach field {field!r}")
        return _with_approach(s, replace(_approach(s, e), **{field: value}))
    if field == "user.name":
        return replace(s, user=replace(s.user, name=value))
    if field == "user.lab":
        return replace(s, user=replace(s.user, lab=value))
    if field not in SESSION_FIELDS:
        raise SessionFormatError(f"unknown session field {field!r}")
    return replace(s, **{field: value})


def _image_added(s: Session, e: Mapping[str, Any]) -> Session:
    ref = ImageRef.from_dict(e["image"])
    if s.image(ref.name) is None:
        return replace(s, images=(*s.images, ref))
    return replace(s, images=tuple(ref if i.name == ref.name else i for i in s.images))


def _layer_renamed(s: Session, e: Mapping[str, Any]) -> Session:
    old, new = e["old"], e["new"]
    images = tuple(
        replace(i, layers={(new if k == old else k): v for k, v in i.layers.items()})
        for i in s.images
    )
    approaches = tuple(
        replace(
            a,
            steps=tuple(
                replace(st, output_layer=new) if st.output_layer == old else st for st in a.steps
            ),
        )
        for a in s.approaches
    )
    return replace(s, images=images, approaches=approaches)


def _approach_added(s: Session, e: Mapping[str, Any]) -> Session:
    a = Approach.from_dict({**e["approach"], "created": e["time"]})
    if any(x.key == a.key for x in s.approaches):
        raise SessionFormatError(f"approach {a.key!r} added twice")
    return replace(s, approaches=(*s.approaches, a), active=a.key)


def _approach_switched(s: Session, e: Mapping[str, Any]) -> Session:
    return replace(s, active=_approach(s, e).key)


def _note_set(s: Session, e: Mapping[str, Any]) -> Session:
    return _with_approach(s, replace(_approach(s, e), notes=str(e["text"])))


def _result_set(s: Session, e: Mapping[str, Any]) -> Session:
    return _with_approach(s, replace(_approach(s, e), result=dict(e["result"])))


def _step_recorded(s: Session, e: Mapping[str, Any]) -> Session:
    a = _approach(s, e)
    step = RecordedStep.from_dict(e["step"])
    if any(step.id in x.step_ids for x in s.approaches):  # cached per approach value
        raise SessionFormatError(f"step {step.id!r} recorded twice")
    return _with_approach(s, a.with_step(step))


def _step_replaced(s: Session, e: Mapping[str, Any]) -> Session:
    a = _approach(s, e)
    step = RecordedStep.from_dict(e["step"])
    if a.step(step.id) is None:
        raise SessionFormatError(f"step {step.id!r} replaced but not in approach {a.key!r}")
    touched = set(e.get("stale", ())) | {step.id}
    out = s
    for ap in s.approaches:
        if not any(st.id in touched for st in ap.steps):
            continue
        steps = tuple(
            step if st.id == step.id else (replace(st, stale=True) if st.id in touched else st)
            for st in ap.steps
        )
        out = _with_approach(out, replace(ap, steps=order_steps(steps)))
    return out


def _step_removed(s: Session, e: Mapping[str, Any]) -> Session:
    gone = {d["id"] for d in e.get("removed", ())}
    return replace(
        s,
        approaches=tuple(
            replace(a, steps=tuple(st for st in a.steps if st.id not in gone)) for a in s.approaches
        ),
    )


def _layer_removed(s: Session, e: Mapping[str, Any]) -> Session:
    layer = e["layer"]
    hidden = set(e.get("hidden", ()))
    images = tuple(
        replace(i, layers={k: v for k, v in i.layers.items() if k != layer}) for i in s.images
    )
    s = _step_removed(replace(s, images=images), e)
    return replace(
        s,
        approaches=tuple(
            replace(
                a,
                steps=tuple(
                    replace(st, output_layer=None) if st.id in hidden else st for st in a.steps
                ),
            )
            for a in s.approaches
        ),
    )


def _solution_set(s: Session, e: Mapping[str, Any]) -> Session:
    key = e.get("approach")
    if key is not None:
        _approach(s, e)
    return replace(s, solution=Solution(approach=key, text=str(e.get("text", ""))))


def _item_added(s: Session, e: Mapping[str, Any]) -> Session:
    field = _list_field(e)
    items = tuple(getattr(s, field)) + (str(e["text"]),)  # 3x faster than (*items, text)
    return replace(s, **{field: items})


def _item_removed(s: Session, e: Mapping[str, Any]) -> Session:
    field = _list_field(e)
    items = list(getattr(s, field))
    index = e["index"]
    if not 0 <= index < len(items):
        raise SessionFormatError(f"no item {index} in {field}")
    del items[index]
    return replace(s, **{field: tuple(items)})


def _list_field(e: Mapping[str, Any]) -> str:
    if e["field"] not in LIST_FIELDS:
        raise SessionFormatError(f"unknown list {e['field']!r} (expected one of {LIST_FIELDS})")
    return str(e["field"])


def _follow_up(s: Session, e: Mapping[str, Any]) -> Session:
    from napari_fbias.session.model import _follows

    return replace(s, follows=_follows(e["session"]))


def _nothing(s: Session, e: Mapping[str, Any]) -> Session:
    return s


HANDLERS: dict[str, Handler] = {
    "session_started": _started,
    "session_restored": _restored,
    "session_reopened": _analysts,
    "analysts_added": _analysts,
    "field_set": _field_set,
    "image_added": _image_added,
    "layer_renamed": _layer_renamed,
    "approach_added": _approach_added,
    "approach_switched": _approach_switched,
    "note_set": _note_set,
    "result_set": _result_set,
    "step_recorded": _step_recorded,
    "step_replaced": _step_replaced,
    "step_removed": _step_removed,
    "layer_removed": _layer_removed,
    "solution_set": _solution_set,
    "item_added": _item_added,
    "item_removed": _item_removed,
    "snapshot_saved": _nothing,
    "follow_up_set": _follow_up,
}


def apply_event(session: Session | None, event: Mapping[str, Any]) -> Session:
    """Return the session after ``event`` (the input is not changed).

    The timeline gets the event's entry (see :func:`reduce_event`).

    Raises
    ------
    SessionFormatError
        As :func:`reduce_event`.
    """
    new, entry = reduce_event(session, event)
    return replace(new, timeline=tuple(new.timeline) + (entry,))


def reduce_event(
    session: Session | None, event: Mapping[str, Any]
) -> tuple[Session, TimelineEvent]:
    """Return the session after ``event`` *without* its timeline entry, and that entry.

    The merge of several journals keeps the timeline apart (appending to a
    tuple per event would make merging quadratic) and puts it back once.

    Raises
    ------
    SessionFormatError
        For an unknown event, a first event that is not ``session_started`` /
        ``session_restored`` (or a second one), or an event that does not fit the session (e.g. a
        step replaced that was never recorded).
    """
    name = event.get("event")
    handler = HANDLERS.get(name)  # type: ignore[arg-type]
    if handler is None:
        raise SessionFormatError(f"{_where(event)}: unknown event type")
    if (session is None) != (name in FIRST_EVENTS):
        raise SessionFormatError(
            f"{_where(event)}: a journal starts with exactly one 'session_started' (or "
            "'session_restored')"
        )
    try:
        new = handler(session, event)  # type: ignore[arg-type]
    except SessionFormatError as exc:
        raise SessionFormatError(f"{_where(event)}: {exc}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise SessionFormatError(
            f"{_where(event)}: malformed ({type(exc).__name__}: {exc})"
        ) from None
    detail = {k: v for k, v in event.items() if k not in ENVELOPE}
    if name == "session_restored":  # the timeline needs to know where from, not all of it again
        detail.pop("session", None)
    time = str(event.get("time", ""))
    if new is session:  # nothing changed (e.g. snapshot_saved): a new value for the new time
        new = replace(new, updated=time)
    else:  # a value the handler just made, held by nobody else yet: no second copy
        new.__dict__["updated"] = time
    return new, TimelineEvent(time=time, kind=str(name), detail=detail)


def _where(event: Mapping[str, Any]) -> str:
    return f"event #{event.get('seq', '?')} ({event.get('event')!r})"


def order_steps(steps: tuple[RecordedStep, ...]) -> tuple[RecordedStep, ...]:
    """Order steps so that each comes after the steps it reads (stable otherwise)."""
    ids = {st.id for st in steps}
    placed: set[str] = set()
    for st in steps:  # usually already in order: check that in one pass
        if not (st.reads_steps() & ids) <= placed:
            break
        placed.add(st.id)
    else:
        return steps
    placed = set()
    out: list[RecordedStep] = []
    pending = list(steps)
    while pending:
        for i, st in enumerate(pending):
            if (st.reads_steps() & ids) <= placed:
                out.append(pending.pop(i))
                placed.add(st.id)
                break
        else:  # a cycle: keep the rest as recorded (the recorder refuses cycles)
            out.extend(pending)
            break
    return tuple(out)
