"""One session from several journals: a deterministic merge ordered by a logical clock.

Every recording client appends only to its own journal. An event is
identified by ``(client, seq)`` and ordered by ``(clock, client, seq)``, where
``clock`` is a Lamport clock: a client stamps each event one past the largest
clock it has seen in any journal, so an event always sorts after everything
its writer had seen when it wrote it. Machines' wall clocks play no part. The
session is :func:`~napari_fbias.session.events.apply_event` applied to the
events in that order, each once; any machine that has read the same journals
computes the same session, whatever order it read them in.

Rules where analysts worked at the same time (``docs/session.md``):

* **Names.** Events name approaches, steps and images as their creator wrote
  them (see :mod:`~napari_fbias.session.names`). When two clients create the
  same name concurrently, the one earlier in the merged order keeps it and the
  other gets the next free one (approach ``B``, step ``threshold_2``...).
* **Shared fields** (title, question, user, approach title/analyst, notes,
  solution): the later edit in the merged order wins; when its writer had not
  seen the value it overwrote (``prev`` differs), the timeline gets a
  ``conflict`` entry holding both texts, so nothing typed is lost.
* **An event that no longer fits** (a step replaced after another analyst
  removed it, an issue removed twice) is not applied; the timeline gets a
  ``conflict`` entry saying why.
"""

from __future__ import annotations

import bisect
import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from napari_fbias.session.errors import SessionFormatError
from napari_fbias.session.events import reduce_event
from napari_fbias.session.model import Session, TimelineEvent
from napari_fbias.session.model import evolve as replace
from napari_fbias.session.names import (
    CREATING_EVENTS,
    Rename,
    kinds_named,
    map_names,
    next_approach_key,
)

Key = tuple[int, str, int]
Origin = tuple[str, str]
#: Keep a restart point every this many events (a late event replays from the one before it).
CHECKPOINT_EVERY = 128


def event_key(event: Mapping[str, Any]) -> Key:
    """Return the merge order of an event: ``(clock, client, seq)``."""
    return (int(event["clock"]), str(event.get("client", "")), int(event["seq"]))


@dataclass
class MergeState:
    """The merged session plus the name tables the merge needs.

    A state that anything keeps (the merger's current state, a restart point,
    a preview) is never changed: a new event makes a new state that shares the
    tables it does not change, so restart points are just kept states. (While
    merging a run of events, the states in between, which nothing keeps,
    hand their tables on to be changed in place; see :func:`apply_merged`.)
    The timeline is kept apart as a linked log (``(entry, earlier)``) and
    joined to the session only when :attr:`session` is read.
    """

    #: The session without the timeline entries of merged events.
    core: Session | None = None
    #: The timeline entries of merged events, newest first: ``(entry, earlier log)``.
    log: tuple[TimelineEvent, Any] | None = None
    #: (kind, creator client, creator's name) -> the session's name.
    alias: dict[tuple[str, str, str], str] = field(default_factory=dict)
    #: (kind, the session's name) -> (creator client, creator's name).
    origin: dict[tuple[str, str], Origin] = field(default_factory=dict)
    #: Every step id ever used (ids are never reused).
    used_steps: set[str] = field(default_factory=set)
    #: client -> origin of the approach it records into.
    active: dict[str, Origin] = field(default_factory=dict)
    #: Problems with events that could not be applied before the session existed.
    problems: list[str] = field(default_factory=list)
    #: Clients that created names (when it is only the writing client, nothing needs mapping).
    creators: frozenset[str] = frozenset()
    #: Kinds of name (see :data:`~napari_fbias.session.names.KINDS`) of which the merge gave
    #: some name another one; names of the other kinds are the session's names as written.
    renamed: frozenset[str] = frozenset()

    @property
    def session(self) -> Session | None:
        """The merged session, timeline included (made once per state).

        The timeline of the last state whose session was read is reused, so
        reading the session after each recorded event costs one tuple copy,
        not a walk over the whole log.
        """
        cached = self.__dict__.get("_session")
        if cached is None and self.core is not None:
            base_node, base = self.__dict__.get("_base") or (None, self.core.timeline)
            entries = []
            node = self.log
            while node is not None and node is not base_node:
                entries.append(node[0])
                node = node[1]
            if node is not base_node:  # the base is not an ancestor: build it all
                base = self.core.timeline
            entries.reverse()
            timeline = tuple(base) + tuple(entries)
            cached = replace(self.core, timeline=timeline)
            self.__dict__["_session"] = cached
            self.__dict__["_base"] = (self.log, timeline)
        return cached

    def logged(self, entry: TimelineEvent) -> None:
        """Add a timeline entry (only on a state being made)."""
        self.log = (entry, self.log)
        self.__dict__.pop("_session", None)

    def active_key(self, client: str) -> str | None:
        """Return the session's key of the approach ``client`` records into (None if none)."""
        found = self.active.get(client)
        if found is None or self.core is None:
            return None
        key = self.alias.get(("approach", *found), found[1] if found[0] == "" else None)
        return key if key in {a.key for a in self.core.approaches} else None

    def shared(self) -> MergeState:
        """Return a state sharing this one's tables (copy a table before changing it)."""
        new = object.__new__(MergeState)
        state = self.__dict__.copy()
        state.pop("_session", None)  # the base of the timeline ("_base") is kept
        new.__dict__ = state
        return new

    def copy(self) -> MergeState:
        """Return a copy whose tables can change without touching this one."""
        return MergeState(
            self.core,
            self.log,
            dict(self.alias),
            dict(self.origin),
            set(self.used_steps),
            dict(self.active),
            list(self.problems),
            self.creators,
            self.renamed,
        )


class SessionMerger:
    """Merge events from any number of journals into one session, incrementally."""

    def __init__(self) -> None:
        self._events: dict[Key, dict[str, Any]] = {}
        self._keys: list[Key] = []
        self._state = MergeState()
        self._checkpoints: list[tuple[int, MergeState]] = [(0, MergeState())]
        #: The largest logical clock seen.
        self.clock = 0

    @property
    def state(self) -> MergeState:
        """The merged state (do not change it)."""
        return self._state

    @property
    def session(self) -> Session | None:
        """The merged session (None before its first event)."""
        return self._state.session

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, events: Iterable[Mapping[str, Any]]) -> int:
        """Merge events read from journals; return how many were new."""
        new = []
        for e in events:
            k = event_key(e)
            if k not in self._events:
                self._events[k] = e  # type: ignore[assignment]  # parsed events: never changed
                new.append(k)
        if not new:
            return 0
        new.sort()
        self.clock = max(self.clock, new[-1][0])
        if not self._keys or new[0] > self._keys[-1]:
            start = len(self._keys)
            self._keys.extend(new)
            state = self._state
        else:
            start = bisect.bisect_left(self._keys, new[0])
            self._keys = sorted(set(self._keys) | set(new))
            self._checkpoints = [c for c in self._checkpoints if c[0] <= start]
            start, state = self._checkpoints[-1]  # states are never changed in place
        owned: set[str] = set()  # tables only the state being made holds (see apply_merged)
        for i in range(start, len(self._keys)):
            state = apply_merged(state, self._events[self._keys[i]], owned=owned)
            if (i + 1) % CHECKPOINT_EVERY == 0:
                if self._checkpoints[-1][0] < i + 1:
                    self._checkpoints.append((i + 1, state))
                owned = set()  # a kept state: the next one copies what it changes
        self._state = state
        return len(new)

    def preview(self, event: Mapping[str, Any]) -> MergeState:
        """Return the state after a new local event, raising if it does not apply."""
        if self._keys and event_key(event) <= self._keys[-1]:
            raise ValueError("a local event must come after every event seen")
        return apply_merged(self._state, event, strict=True)

    def commit(self, event: Mapping[str, Any], state: MergeState) -> None:
        """Keep a local event and the state :meth:`preview` computed for it.

        The event is kept as it is (not copied): nothing may change it afterwards.
        """
        k = event_key(event)
        self._events[k] = event  # type: ignore[assignment]
        self._keys.append(k)
        self.clock = max(self.clock, k[0])
        self._state = state
        if len(self._keys) % CHECKPOINT_EVERY == 0:
            self._checkpoints.append((len(self._keys), state))


def merge_events(events: Iterable[Mapping[str, Any]]) -> Session:
    """Return the session made by any set of journal events (each applied once, in order).

    Raises
    ------
    SessionFormatError
        When no event starts the session.
    """
    m = SessionMerger()
    m.add(events)
    if m.session is None:
        why = "; ".join(m.state.problems[:3])
        raise SessionFormatError(
            "the session journals hold no 'session_started' event" + (f" ({why})" if why else "")
        )
    return m.session


def outgoing(state: MergeState, event: Mapping[str, Any], client: str) -> Mapping[str, Any]:
    """Write a local event's names as their creators wrote them (inverse of the merge).

    Returns ``event`` itself when no name in it needs another spelling.
    """
    if state.creators <= {client}:  # every name is this client's own, as it wrote it
        return event
    ext: dict[str, dict[str, str]] = {}

    def fn(kind: str, name: str, creates: bool) -> str:
        found = state.origin.get((kind, name))
        if found is None or (creates and kind != "image"):
            return name
        creator, cname = found
        if creator != client:
            ext.setdefault(kind, {})[cname] = creator
        return cname

    out = map_names(event, fn)
    if ext:
        out["ext"] = ext
    return out


def apply_merged(
    state: MergeState,
    event: Mapping[str, Any],
    *,
    strict: bool = False,
    owned: set[str] | None = None,
) -> MergeState:
    """Return the state after one event (a conflict entry instead where it does not fit).

    ``state`` is never changed: the new state shares its tables until it must
    change one (copy on write), so an event that creates nothing copies nothing.
    ``owned`` names tables that only ``state`` holds and that nobody will read
    through ``state`` again (a loop over events passes the same set on, and a
    new one after keeping a state as a restart point): those are changed in
    place and not copied. The tables change only once the event applied.
    """
    st = state.shared()
    s = st.core
    client = str(event.get("client", ""))
    name = event.get("event")
    created: dict[tuple[str, str, str], str] = {}  # names this event creates: kept at the end
    if name in CREATING_EVENTS or (st.renamed and not st.renamed.isdisjoint(kinds_named(event))):
        e = map_names(event, _renamer(st, event, client, created))
    else:  # no name in it was ever renamed, and it creates none: mapping changes nothing
        e = event  # type: ignore[assignment]  # only read from here on
    overwritten = None
    try:
        if s is not None:
            if name == "item_removed":
                e = _check_removal(s, e)
            if "prev" in e:
                overwritten = _overwritten(s, e)
        new, entry = reduce_event(s, e)
    except SessionFormatError as exc:
        if strict:
            raise
        return _conflict(state, event, str(exc))
    if created or name in _TABLE_EVENTS:
        new = _keep_tables(st, e, new, client, created, set() if owned is None else owned)
    st.core = new
    st.logged(entry)
    if overwritten is not None:
        st.logged(_entry(event, "conflict", overwritten))
    return st


#: Events that change the merge's tables (besides creating names).
_TABLE_EVENTS = frozenset(
    {"step_recorded", "session_restored", "approach_added", "approach_switched"}
)


def _renamer(
    st: MergeState, event: Mapping[str, Any], client: str, created: dict[tuple[str, str, str], str]
) -> Rename:
    """Return the ``fn`` of :func:`map_names` turning an event's names into the session's.

    A name the event creates gets its session name (:func:`_claim`) in ``created``.
    """
    ext = event.get("ext") or {}

    def fn(kind: str, name: str, creates: bool) -> str:
        key = (kind, ext.get(kind, {}).get(name, client), name)
        known = created.get(key)
        if known is None:
            known = st.alias.get(key)
        if not creates or key[1] != client or known is not None:
            return known if known is not None else name
        created[key] = merged = _claim(st, kind, name, event)
        return merged

    return fn


def _keep_tables(
    st: MergeState,
    e: Mapping[str, Any],
    new: Session,
    client: str,
    created: dict[tuple[str, str, str], str],
    owned: set[str],
) -> Session:
    """Record an applied event in the tables of ``st`` (copying those not in ``owned``)."""

    def own(table: str) -> Any:
        if table not in owned:
            setattr(st, table, copy.copy(getattr(st, table)))
            owned.add(table)
        return getattr(st, table)

    for (kind, _, cname), merged in created.items():
        own("alias")[(kind, client, cname)] = merged
        own("origin")[(kind, merged)] = (client, cname)
        if client not in st.creators:
            st.creators = st.creators | {client}
        if merged != cname and kind not in st.renamed:
            st.renamed = st.renamed | {kind}
    name = e.get("event")
    if name == "step_recorded":
        own("used_steps").add(e["step"]["id"])
    elif name == "session_restored":
        own("used_steps").update(st_.id for _, st_ in new.all_steps())
    if name in ("approach_added", "approach_switched"):
        key = e["approach"]["key"] if name == "approach_added" else e["approach"]
        own("active")[client] = st.origin.get(("approach", key), ("", key))
        if name == "approach_added" and client:
            new = replace(
                new,
                approaches=tuple(
                    replace(a, client=client) if a.key == key else a for a in new.approaches
                ),
            )
    return new


def _claim(st: MergeState, kind: str, name: str, event: Mapping[str, Any]) -> str:
    """Return the session's name for a name a client creates (the next free one if taken)."""
    s = st.core
    if s is None:
        return name
    if kind == "approach":
        taken = {a.key for a in s.approaches}
        if name not in taken:
            return name
        return next_approach_key(taken)
    if kind == "step":
        taken = st.used_steps  # every id ever recorded (restored ones included)
    else:
        img = s.image(name)
        if img is None or img.source == (event.get("image") or {}).get("source"):
            return name
        taken = {i.name for i in s.images}
    if name not in taken:
        return name
    n = 2
    while f"{name}_{n}" in taken:
        n += 1
    return f"{name}_{n}"


def _check_removal(s: Session, e: dict[str, Any]) -> dict[str, Any]:
    """Point an ``item_removed`` at the item its writer saw (by text), or refuse it."""
    if e.get("event") != "item_removed" or "text" not in e:
        return e
    items = list(getattr(s, str(e.get("field")), ()) or ())
    index, text = e.get("index"), e["text"]
    if isinstance(index, int) and 0 <= index < len(items) and items[index] == text:
        return e
    if text in items:
        return {**e, "index": items.index(text)}
    raise SessionFormatError(f"{e.get('field')} item {text!r} was already removed")


def _overwritten(s: Session, e: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the conflict detail when an edit overwrites a value its writer never saw."""
    if "prev" not in e:
        return None
    try:
        return _compare(s, e)
    except (KeyError, TypeError, AttributeError):
        return None  # not applicable: the event itself will be refused (a conflict)


def _compare(s: Session, e: Mapping[str, Any]) -> dict[str, Any] | None:
    name = e.get("event")
    if name == "field_set":
        field_name = str(e["field"])
        if e.get("approach") is not None:
            current = getattr(s.approach(e["approach"]), field_name, "")
        elif field_name.startswith("user."):
            current = getattr(s.user, field_name[5:], "")
        else:
            current = getattr(s, field_name, "")
        new = e.get("value")
    elif name == "note_set":
        field_name, current, new = "notes", s.approach(e["approach"]).notes, e.get("text")
    elif name == "solution_set":
        field_name = "solution"
        current = s.solution.text if s.solution else ""
        new = e.get("text")
    else:
        return None
    if current == e["prev"] or current == new:
        return None
    out = {"field": field_name, "kept": new, "overwritten": current}
    if e.get("approach") is not None:
        out["approach"] = e["approach"]
    return out


def _conflict(state: MergeState, event: Mapping[str, Any], problem: str) -> MergeState:
    st = state.shared()
    if st.core is None:
        st.problems = [*st.problems, problem]
        return st
    st.logged(_entry(event, "conflict", {"event": event.get("event"), "problem": problem}))
    return st


def _entry(event: Mapping[str, Any], kind: str, detail: dict[str, Any]) -> TimelineEvent:
    d = dict(detail)
    if event.get("client"):
        d["client"] = event["client"]
    return TimelineEvent(time=str(event.get("time", "")), kind=kind, detail=d)
