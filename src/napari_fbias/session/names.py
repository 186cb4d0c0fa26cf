"""Where an event names an approach, a step or an image: the one map of those fields.

Several analysts record into one session at the same time, each in their own
journal, so two of them can create the same name (two approaches ``"A"``, two
steps ``"threshold"``) before either has seen the other. Each recorder
therefore writes names *as their creator wrote them*, and says who the creator
is when it is another analyst's client (the event's ``ext`` field:
``{"approach": {"A": "<client>"}, ...}``). The merge
(:mod:`~napari_fbias.session.merge`) turns these qualified names into the
session's names and back. :func:`map_names` is the one place that knows which
fields of which event hold names: both directions use it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: The kinds of name an event can hold.
KINDS = ("approach", "step", "image")
#: Events whose ``approach`` field names an existing approach.
APPROACH_REF_EVENTS = frozenset(
    {
        "field_set",
        "approach_switched",
        "note_set",
        "result_set",
        "step_recorded",
        "step_replaced",
        "solution_set",
    }
)

#: Events that hold any name (the others pass through :func:`map_names` untouched).
NAME_EVENTS = APPROACH_REF_EVENTS | {
    "approach_added",
    "image_added",
    "step_removed",
    "layer_removed",
}
#: Events that create a name (``fn`` is called with ``creates=True`` for it).
CREATING_EVENTS = frozenset({"approach_added", "image_added", "step_recorded"})
#: Fields holding steps (and through their inputs, images), in any event of NAME_EVENTS.
_STEP_FIELDS = frozenset({"step", "tried", "removed", "stale", "hidden"})
_NONE: frozenset[str] = frozenset()
_APPROACH = frozenset({"approach"})
_ALL = frozenset(KINDS)
#: ``fn(kind, name, creates) -> new name``; ``creates`` is True where the event makes the name.
Rename = Callable[[str, str, bool], str]


def kinds_named(event: Mapping[str, Any]) -> frozenset[str]:
    """Return the kinds of name :func:`map_names` may pass to ``fn`` for ``event`` (or more).

    Empty for an event that holds no name. A merge that never renamed a name
    of these kinds can skip :func:`map_names` for an event that creates none.
    """
    name = event.get("event")
    if name not in NAME_EVENTS:
        return _NONE
    if not _STEP_FIELDS.isdisjoint(event):
        return _ALL
    if name == "image_added":
        return frozenset({"image"})
    return _APPROACH


def map_names(event: Mapping[str, Any], fn: Rename) -> dict[str, Any]:
    """Return a copy of ``event`` with every approach key, step id and image name renamed.

    Only the nested parts that hold names are copied (the input is never
    changed; the copy shares the rest, e.g. a step's ``params``, with it).

    Parameters
    ----------
    event : mapping
        A journal event (envelope and payload).
    fn : callable
        Called as ``fn(kind, name, creates)`` for each name, in the order the
        fields are listed here; returns the name to write instead.
    """
    e = dict(event)
    name = e.get("event")
    if name not in NAME_EVENTS:
        return e
    if name == "approach_added" and isinstance(e.get("approach"), dict):
        a = e["approach"] = dict(e["approach"])
        a["key"] = fn("approach", str(a["key"]), True)
    elif name in APPROACH_REF_EVENTS and isinstance(e.get("approach"), str):
        e["approach"] = fn("approach", e["approach"], False)
    if name == "image_added" and isinstance(e.get("image"), dict):
        i = e["image"] = dict(e["image"])
        i["name"] = fn("image", str(i["name"]), True)
    if isinstance(e.get("step"), dict):
        e["step"] = _step(e["step"], fn, creates=name == "step_recorded")
    if isinstance(e.get("tried"), dict):
        e["tried"] = _step(e["tried"], fn, creates=False)
    if isinstance(e.get("removed"), list):
        e["removed"] = [
            _step(d, fn, creates=False) if isinstance(d, dict) else d for d in e["removed"]
        ]
    for key in ("stale", "hidden"):
        if isinstance(e.get(key), list):
            e[key] = [fn("step", str(x), False) for x in e[key]]
    return e


def _step(d: Mapping[str, Any], fn: Rename, *, creates: bool) -> dict[str, Any]:
    """Return a copy of a step dict with its id and the names its inputs read renamed."""
    d = dict(d)
    if "id" in d:
        d["id"] = fn("step", str(d["id"]), creates)
    inputs = d.get("inputs")
    if isinstance(inputs, dict):
        d["inputs"] = {k: _input(ref, fn) for k, ref in inputs.items()}
    return d


def _input(ref: Any, fn: Rename) -> Any:
    if not isinstance(ref, dict):
        return ref
    ref = dict(ref)
    if isinstance(ref.get("step"), str):
        ref["step"] = fn("step", ref["step"], False)
    if isinstance(ref.get("image"), str):
        ref["image"] = fn("image", ref["image"], False)
    return ref


def next_approach_key(taken: set[str]) -> str:
    """Return the first free approach key: ``A`` ... ``Z``, ``AA``, ``AB`` ..."""
    n = 0
    while True:
        key, i = "", n
        while True:
            key = chr(ord("A") + i % 26) + key
            i = i // 26 - 1
            if i < 0:
                break
        if key not in taken:
            return key
        n += 1
