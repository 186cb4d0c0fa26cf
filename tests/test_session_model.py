"""The record as immutable values: plain-dict round trips, schema checks, event rules."""

from __future__ import annotations

import json

import pytest

from napari_fbias.io.image import from_array
from napari_fbias.session import (
    Approach,
    ImageRef,
    Person,
    RecordedStep,
    Session,
    SessionFormatError,
    Solution,
    StepInput,
    TimelineEvent,
)
from napari_fbias.session.events import apply_event, order_steps


def full_session() -> Session:
    g = RecordedStep(
        "gaussian",
        "preprocess.gaussian",
        {"image": StepInput(image="cells", select={"c": 1}, layer="cells [1]")},
        {"sigma": 1.5},
        "smoothed",
        "2025-01-01T10:00:00+00:00",
    )
    t = RecordedStep(
        "threshold",
        "segment.threshold",
        {"image": StepInput(step="gaussian", layer="smoothed")},
        {"method": "otsu", "value": 0.0, "min_size": 0},
        None,
        "2025-01-01T10:01:00+00:00",
        stale=True,
    )
    return Session(
        id="0b7c3d2e-0000-4000-8000-000000000000",
        title="t",
        user=Person("Ann", "Lab"),
        question="q",
        analysts=("Bob", "Eve"),
        created="2025-01-01T09:00:00+00:00",
        updated="2025-01-01T10:01:00+00:00",
        images=(
            ImageRef(
                "cells",
                "/d/c.zarr",
                "sha256:ab",
                "czyx",
                (2, 3, 4, 5),
                "image",
                {"cells [1]": {"c": 1}},
            ),
        ),
        approaches=(Approach("A", "classical", "Bob", (g, t), "n", {"objects": 3}, "x"),),
        active="A",
        solution=Solution("A", "use A"),
        issues=("i",),
        next_steps=("n",),
        timeline=(TimelineEvent("2025-01-01T09:00:00+00:00", "session_started", {"a": 1}),),
    )


def test_round_trip_through_json():
    s = full_session()
    d = json.loads(json.dumps(s.to_dict()))
    assert Session.from_dict(d) == s
    assert d["approaches"][0]["steps"][1]["inputs"] == {
        "image": {"step": "gaussian", "layer": "smoothed"}
    }


def test_image_ref_strips_credentials_and_describes_images():
    ref = ImageRef("x", source="https://u:p@h.org/a.zarr?token=t")
    assert ref.source == "https://h.org/a.zarr"
    img = from_array([[1, 2], [3, 4]], "yx", name="tiny", source="/d/tiny.tif", is_label=True)
    ref = ImageRef.from_image(img)
    assert (ref.name, ref.source, ref.axes, ref.shape, ref.kind) == (
        "tiny",
        "/d/tiny.tif",
        "yx",
        (2, 2),
        "labels",
    )


def test_step_input_reads_one_thing():
    with pytest.raises(ValueError, match="either an image or a step"):
        StepInput(image="a", step="b")
    with pytest.raises(SessionFormatError, match="exactly one"):
        StepInput.from_dict({"layer": "x"})
    with pytest.raises(SessionFormatError, match="cannot select along axis 'y'"):
        StepInput.from_dict({"image": "a", "select": {"y": 1}})
    with pytest.raises(SessionFormatError, match="integer >= 0"):
        StepInput.from_dict({"image": "a", "select": {"c": -1}})


def test_schema_versions():
    d = full_session().to_dict()
    with pytest.raises(SessionFormatError, match=r"newer napari-fbias \(session schema 2\)"):
        Session.from_dict({**d, "fbias_session": 2})
    with pytest.raises(SessionFormatError, match="not valid"):
        Session.from_dict({**d, "fbias_session": "one"})


def test_order_steps_puts_readers_after_what_they_read():
    s = full_session().approaches[0].steps
    assert [x.id for x in order_steps(tuple(reversed(s)))] == ["gaussian", "threshold"]
    assert order_steps(s) == s


def ev(seq, name, **payload):
    return {
        "v": 1,
        "seq": seq,
        "time": f"2025-01-01T10:00:{seq:02d}+00:00",
        "event": name,
        **payload,
    }


def test_events_build_a_session_and_its_timeline():
    s = apply_event(None, ev(1, "session_started", session={"id": "abc", "title": "T"}))
    s = apply_event(s, ev(2, "approach_added", approach={"key": "A", "title": "a"}))
    s = apply_event(s, ev(3, "item_added", field="issues", text="x"))
    assert s.created == "2025-01-01T10:00:01+00:00" and s.updated.endswith(":03+00:00")
    assert s.active == "A" and s.issues == ("x",)
    assert [t.kind for t in s.timeline] == ["session_started", "approach_added", "item_added"]
    assert s.timeline[2].detail == {"field": "issues", "text": "x"}


@pytest.mark.parametrize(
    ("event", "match"),
    [
        (ev(2, "session_started", session={"id": "x"}), "exactly one 'session_started'"),
        (ev(2, "approach_added", approach={"key": "A"}), "added twice"),
        (ev(2, "note_set", approach="Q", text="x"), "no approach 'Q'"),
        (ev(2, "item_added", field="secrets", text="x"), "unknown list"),
        (ev(2, "item_removed", field="issues", index=4), "no item 4"),
        (ev(2, "field_set", field="id", value="x"), "unknown session field"),
        (
            ev(2, "step_replaced", approach="A", step={"id": "nope", "op": "x"}),
            "never recorded|not in",
        ),
        (ev(2, "step_recorded", approach="A"), "malformed"),
    ],
)
def test_events_that_do_not_fit_are_refused(event, match):
    s = apply_event(None, ev(1, "session_started", session={"id": "abc"}))
    s = apply_event(s, ev(1, "approach_added", approach={"key": "A"}))
    with pytest.raises(SessionFormatError, match=match):
        apply_event(s, event)
    with pytest.raises(SessionFormatError, match="exactly one 'session_started'"):
        apply_event(None, ev(1, "note_set", approach="A", text="x"))
