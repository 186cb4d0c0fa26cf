"""The merge's shortcuts give what the plain rules give.

The merge skips name mapping for events whose names were never renamed,
changes the tables of states nobody keeps in place, and registers the names
an event creates only once it applied. Each test compares with the plain way:
every event mapped, every table copied, a merge from scratch.
"""

from __future__ import annotations

import json
import random

import pytest

from helpers.shared_session import digest
from napari_fbias.session import ImageRef, SessionRecorder, open_session
from napari_fbias.session import merge as merge_module
from napari_fbias.session.journal_tail import JournalTail
from napari_fbias.session.merge import (
    CHECKPOINT_EVERY,
    MergeState,
    SessionMerger,
    apply_merged,
    event_key,
)
from napari_fbias.session.names import KINDS, map_names


def _tables(state: MergeState) -> dict:
    return {
        "session": digest(state.session) if state.session is not None else None,
        "alias": sorted(state.alias.items()),
        "origin": sorted(state.origin.items()),
        "used_steps": sorted(state.used_steps),
        "active": sorted(state.active.items()),
        "creators": sorted(state.creators),
        "renamed": sorted(state.renamed),
        "problems": list(state.problems),
    }


def _plain(events) -> MergeState:
    """Merge the plain way: every event mapped, every table copied before it changes."""
    state = MergeState()
    for e in sorted(events, key=event_key):
        state = apply_merged(state, e)
    return state


@pytest.fixture(scope="module")
def busy_session(tmp_path_factory):
    """Three analysts who record concurrently (clashing step names), about 450 events."""
    folder = tmp_path_factory.mktemp("busy") / "s"
    first = SessionRecorder.start("busy", user_name="Ann", folder=folder, fsync=False)
    first.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(8, 8)))
    recs = [first] + [open_session(folder, analysts=[n], fsync=False) for n in ("B", "C")]
    for r in recs:
        r.add_approach("mine", r.client[:4])  # all three call it "A" before syncing
    for i in range(150):
        for r in recs:
            if i % 7 == 0:
                r.record_step("preprocess.gaussian", {"sigma": 1 + i / 100}, {"image": "img"}, "g")
            elif i % 5 == 0:
                r.add_issue(f"issue {i}")
            elif i % 11 == 0 and r.session.issues:
                r.remove_issue(0)
            else:
                r.set_notes(f"notes {i} by {r.client[:4]}")
            if i % 40 == 0:
                r.sync()
    for r in recs:
        r.close()
    events = []
    for path in sorted((folder / "journals").glob("*.jsonl")):
        events += JournalTail(str(path), path.stem).feed(path.read_bytes())
    assert len(events) > 3 * CHECKPOINT_EVERY
    return events


def test_the_merge_equals_the_plain_rules(busy_session, monkeypatch):
    fast = SessionMerger()
    fast.add(busy_session)
    assert fast.state.renamed == {"approach", "step"}, "the clashes were renamed"
    monkeypatch.setattr(merge_module, "kinds_named", lambda event: frozenset(KINDS))
    assert _tables(fast.state) == _tables(_plain(busy_session))


def test_late_events_replay_from_restart_points_that_were_never_changed(busy_session):
    expected = _tables(_plain(busy_session))
    rng = random.Random(7)
    for _ in range(3):
        events = list(busy_session)
        rng.shuffle(events)
        m = SessionMerger()
        for cut in (len(events) // 3, 2 * len(events) // 3, len(events)):
            m.add(events[:cut])  # the earlier ones again (ignored) and the new ones
            merged = sorted(m._events.values(), key=event_key)
            for i, st in m._checkpoints:  # each restart point: the merge of the first i events
                assert _tables(st) == _tables(_plain(merged[:i]))
        assert _tables(m.state) == expected


def _event(client, seq, clock, name, **payload):
    return {"v": 1, "seq": seq, "time": f"t{clock}", "event": name, "client": client,
            "clock": clock, **payload}  # fmt: skip


def test_a_refused_event_leaves_no_name_behind():
    step = {"id": "s", "op": "preprocess.gaussian", "inputs": {}, "params": {}}
    events = [
        _event("a", 1, 1, "session_started", session={"id": "x"}),
        _event("a", 2, 2, "approach_added", approach={"key": "A"}),
        _event("b", 1, 3, "step_recorded", approach="Z", step=step),  # no approach Z: refused
        _event("c", 1, 4, "step_recorded", approach="A", step=step),
    ]
    m = SessionMerger()
    m.add(events)
    s = m.session
    assert [t.kind for t in s.timeline][-2:] == ["conflict", "step_recorded"]
    assert ("step", "b", "s") not in m.state.alias
    assert [st.id for st in s.approach("A").steps] == ["s"], "c's step keeps its name"
    assert m.state.origin[("step", "s")] == ("c", "s")


def test_map_names_copies_what_it_renames_and_never_changes_its_input():
    event = {
        "event": "step_replaced",
        "approach": "A",
        "step": {"id": "g", "inputs": {"image": {"step": "t", "layer": "x"}}, "params": {"k": [1]}},
        "tried": {"id": "g", "inputs": {"image": {"image": "img"}}},
        "stale": ["u"],
    }
    before = json.dumps(event, sort_keys=True)
    out = map_names(event, lambda kind, name, creates: f"{kind}:{name}")
    assert json.dumps(event, sort_keys=True) == before
    assert out["approach"] == "approach:A"
    assert out["step"]["id"] == "step:g"
    assert out["step"]["inputs"]["image"] == {"step": "step:t", "layer": "x"}
    assert out["tried"]["inputs"]["image"] == {"image": "image:img"}
    assert out["stale"] == ["step:u"]
