"""Property: any interleaving of analysts, any order of reading their journals: one session.

Three real recorders write real journals into one session folder; hypothesis
chooses who does what and when each one reads the others. Then the events of
every journal are merged again in random orders and random batches.
"""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.shared_session import digest
from napari_fbias.session import ImageRef, SessionRecorder, load_session, open_session
from napari_fbias.session.journal_tail import JournalTail
from napari_fbias.session.merge import SessionMerger

ACTIONS = st.sampled_from(
    [
        "approach",
        "step",
        "rerun",
        "remove",
        "notes",
        "question",
        "issue",
        "drop_issue",
        "solution",
        "sync",
        "sync",
    ]
)


def _act(rec: SessionRecorder, action: str, i: int) -> None:
    s = rec.session
    mine = [st_.id for a in s.approaches for st_ in a.steps if rec.owns_step(st_.id)]
    if action == "approach":
        rec.add_approach(f"try {i}", f"analyst {rec.client[:4]}")
    elif action == "step":
        rec.record_step("preprocess.gaussian", {"sigma": 1 + i / 100}, {"image": "img"}, f"L{i}")
    elif action == "rerun" and mine:
        params = {"sigma": 0.5 + i / 100}
        rec.record_step("preprocess.gaussian", params, {"image": "img"}, "x", replaces=mine[-1])
    elif action == "remove" and s.step_index:
        rec.remove_step(sorted(s.step_index)[i % len(s.step_index)])
    elif action == "notes":
        rec.set_notes(f"notes {i} by {rec.client[:4]}")
    elif action == "question":
        rec.set_field("question", f"question {i}")
    elif action == "issue":
        rec.add_issue(f"issue {i}")
    elif action == "drop_issue" and s.issues:
        rec.remove_issue(i % len(s.issues))
    elif action == "solution":
        rec.set_solution(f"solution {i}", approach=s.active)
    elif action == "sync":
        rec.sync()


def _all_events(folder: Path) -> list[dict]:
    events = []
    for path in sorted((folder / "journals").glob("*.jsonl")):
        events.extend(JournalTail(str(path), path.stem).feed(path.read_bytes()))
    return events


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    plan=st.lists(st.tuples(st.integers(0, 2), ACTIONS), min_size=1, max_size=40),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_interleaving_and_reading_order_gives_the_same_session(plan, seed):
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "s"
        first = SessionRecorder.start("prop", user_name="Ann", folder=folder, fsync=False)
        first.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(8, 8)))
        recs = [first] + [open_session(folder, analysts=[n], fsync=False) for n in ("B", "C")]
        for i, (who, action) in enumerate(plan):
            _act(recs[who], action, i)
        for r in recs:
            r.sync()
        expected = digest(load_session(folder))
        assert all(digest(r.session) == expected for r in recs), "every analyst sees the same"

        events = _all_events(folder)
        rng = random.Random(seed)
        for _ in range(3):
            rng.shuffle(events)
            m = SessionMerger()
            cut = sorted(rng.sample(range(len(events) + 1), k=min(4, len(events) + 1)))
            for a, b in zip([0, *cut], [*cut, len(events)], strict=False):
                m.add(events[a:b])
            m.add(events[: len(events) // 2])  # events read twice are applied once
            assert json.loads(json.dumps(digest(m.session))) == expected
        for r in recs:
            r.close()
