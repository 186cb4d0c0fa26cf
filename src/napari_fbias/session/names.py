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

import copy
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
#: ``fn(kind, name, creates) -> new name``; ``creates`` is True where the event makes the name.
Rename = Callable[[str, str, bool], str]


def map_names(event: Mapping[str, Any], fn: Rename) -> dict[str, Any]:
    """Return a copy of ``event`` with every approach key, step id and image name renamed.

    Parameters
    ----------
    event : mapping
        A journal event (envelope and payload).
    fn : callable
        Called as ``fn(kind, name, creates)`` for each name; returns the name
        to write instead.
    """
    e = dict(event)  # copied where names change: the nested parts that hold them
    if e.get("event") not in NAME_EVENTS:
        return e
    for key in ("approach", "image", "step", "tried"):
        if isinstance(e.get(key), dict):
            e[key] = copy.deepcopy(e[key])
    if isinstance(e.get("removed"), list):
        e["removed"] = copy.deepcopy(e["removed"])
    name = e.get("event")
    if name == "approach_added" and isinstance(e.get("approach"), dict):
        e["approach"]["key"] = fn("approach", str(e["approach"]["key"]), True)
    elif name in APPROACH_REF_EVENTS and isinstance(e.get("approach"), str):
        e["approach"] = fn("approach", e["approach"], False)
    if name == "image_added" and isinstance(e.get("image"), dict):
        e["image"]["name"] = fn("image", str(e["image"]["name"]), True)
    if isinstance(e.get("step"), dict):
        _step(e["step"], fn, creates=name == "step_recorded")
    if isinstance(e.get("tried"), dict):
        _step(e["tried"], fn, creates=False)
    for key in ("removed",):
        for d in e.get(key) or ():
            if isinstance(d, dict):
                _step(d, fn, creates=False)
    for key in ("stale", "hidden"):
        if isinstance(e.get(key), list):
            e[key] = [fn("step", str(x), False) for x in e[key]]
    return e


def _step(d: dict[str, Any], fn: Rename, *, creates: bool) -> None:
    if "id" in d:
        d["id"] = fn("step", str(d["id"]), creates)
    inputs = d.get("inputs")
    if isinstance(inputs, dict):
        for ref in inputs.values():
            if not isinstance(ref, dict):
                continue
            if isinstance(ref.get("step"), str):
                ref["step"] = fn("step", ref["step"], False)
            if isinstance(ref.get("image"), str):
                ref["image"] = fn("image", ref["image"], False)


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
