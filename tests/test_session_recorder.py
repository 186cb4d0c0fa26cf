"""The live recorder: steps, replacements, removals, approaches, signals, refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_fbias.io.image import from_array
from napari_fbias.ops.registry import get_op
from napari_fbias.session import (
    ImageRef,
    InvalidStepError,
    SessionRecorder,
    StepInput,
    load_session,
    open_session,
)


@pytest.fixture
def rec(tmp_path):
    r = SessionRecorder.start(
        "Nuclei counting",
        user_name="Ann Biologist",
        user_lab="Cell lab",
        question="How many nuclei per field?",
        analysts=["Bob"],
        folder=tmp_path / "s",
    )
    r.add_image(
        ImageRef(name="cells", source="/data/cells.ome.zarr", axes="czyx", shape=(2, 4, 32, 32)),
        layers={"cells [0]": {"c": 0}, "cells [1]": {"c": 1}},
    )
    r.add_approach("classical", "Bob")
    yield r
    r.close()


def journal_events(rec):
    return [json.loads(line) for line in rec.journal_path.read_text().splitlines()]


def steps(rec, key=None):
    a = rec.session.approach(key) if key else rec.active
    return [(s.id, s.op) for s in a.steps]


def test_start_writes_header_and_folder(tmp_path):
    r = SessionRecorder.start(
        "My Question: 3D?", user_name="Ann", analysts=["Bob", "Bob", " "], root=tmp_path
    )
    try:
        (folder,) = tmp_path.iterdir()
        assert folder == r.folder
        assert folder.name.endswith(r.session.id[:8])
        assert "-my-question-3d-" in folder.name
        (first,) = journal_events(r)
        assert first["event"] == "session_started" and first["seq"] == 1
        assert r.session.analysts == ("Bob",)
        assert r.session.user.name == "Ann"
    finally:
        r.close()


def test_session_folder_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "env-root"))
    r = SessionRecorder.start("x")
    r.close()
    assert r.folder.parent == tmp_path / "env-root"


def test_start_refuses_existing_session_folder(rec):
    with pytest.raises(Exception, match="already holds a session"):
        SessionRecorder.start("again", folder=rec.folder)


def test_record_step_fills_defaults_and_links_layers(rec):
    sid = rec.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "cells [0]"}, "smoothed")
    tid = rec.record_step("segment.threshold", {"method": "li"}, {"image": "smoothed"}, "nuclei")
    a = rec.active
    assert [s.id for s in a.steps] == [sid, tid] == ["gaussian", "threshold"]
    g, t = a.steps
    assert g.params == {"sigma": 2.0} and isinstance(g.params["sigma"], float)
    assert g.inputs["image"] == StepInput(image="cells", select={"c": 0}, layer="cells [0]")
    assert t.inputs["image"] == StepInput(step="gaussian", layer="smoothed")
    assert t.params == {**get_op("segment.threshold").defaults(), "method": "li"}
    assert rec.layer_source("nuclei") == StepInput(step="threshold", layer="nuclei")
    assert rec.layer_source("unknown") is None


def test_rerun_replaces_and_keeps_tried_version(rec):
    rec.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    again = rec.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "cells [0]"}, "smoothed")
    assert again == "gaussian"
    g, t = rec.active.steps
    assert g.params["sigma"] == 1.0 and not g.stale
    assert t.stale, "the threshold was computed from the old smoothing"
    replaced = [e for e in rec.session.timeline if e.kind == "step_replaced"]
    assert replaced[0].detail["tried"]["params"] == {"sigma": 2.0}
    assert replaced[0].detail["stale"] == ["threshold"]
    # re-running the stale step clears it
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    assert not any(s.stale for s in rec.active.steps)
    assert steps(rec) == [("gaussian", "preprocess.gaussian"), ("threshold", "segment.threshold")]


def test_explicit_replaces_may_change_op_and_reorders(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    rec.record_step("preprocess.median", {}, {"image": "cells [0]"}, "median")
    # the smoothing is redone as a gaussian of the median: it must now come after it
    rec.record_step("preprocess.gaussian", {}, {"image": "median"}, "smoothed", replaces="gaussian")
    assert [s.id for s in rec.active.steps] == ["median", "gaussian", "threshold"]
    rec.record_step("preprocess.median", {}, {"image": "smoothed"}, "median of smoothed")
    with pytest.raises(InvalidStepError, match="its own result"):
        rec.record_step(
            "preprocess.gaussian", {}, {"image": "median of smoothed"}, "x", replaces="gaussian"
        )
    with pytest.raises(InvalidStepError, match="no step 'nope'"):
        rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "x", replaces="nope")


def test_in_place_update_is_a_new_step_not_a_replacement(rec):
    rec.record_step("segment.threshold", {}, {"image": "cells [0]"}, "labels")
    rec.record_step("segment.fill_holes", {}, {"labels": "labels"}, "labels")
    rec.record_step("segment.fill_holes", {}, {"labels": "labels"}, "labels")
    a = rec.active
    assert [s.id for s in a.steps] == ["threshold", "fill_holes", "fill_holes_2"]
    assert [s.output_layer for s in a.steps] == [None, None, "labels"]
    assert a.steps[2].inputs["labels"].step == "fill_holes"


@pytest.mark.parametrize(
    ("op", "params", "inputs", "match"),
    [
        ("segment.nonexistent", {}, {"image": "cells [0]"}, "unknown operation"),
        ("preprocess.gaussian", {"sigma": -1.0}, {"image": "cells [0]"}, "below the minimum"),
        ("preprocess.gaussian", {"sigma": "big"}, {"image": "cells [0]"}, "'sigma'"),
        ("preprocess.gaussian", {"sigmaa": 1.0}, {"image": "cells [0]"}, "unknown setting"),
        ("preprocess.gaussian", {"spacing": [1.0, 1.0]}, {"image": "cells [0]"}, "automatically"),
        ("preprocess.gaussian", {"api_token": "x"}, {"image": "cells [0]"}, "secret"),
        ("segment.threshold", {"method": "magic"}, {"image": "cells [0]"}, "not one of"),
        ("preprocess.gaussian", {}, {"image": "no such layer"}, "no layer, image or step"),
        ("preprocess.gaussian", {}, {}, "'image' is missing"),
        ("preprocess.gaussian", {}, {"img": "cells [0]"}, "unknown input 'img'"),
        ("segment.fill_holes", {}, {"labels": "cells [0]"}, "needs labels data, got image"),
    ],
)
def test_bad_steps_are_refused_and_nothing_is_recorded(rec, op, params, inputs, match):
    before = rec.journal_path.read_bytes()
    session = rec.session
    with pytest.raises(InvalidStepError, match=match):
        rec.record_step(op, params, inputs, "out")
    assert isinstance(InvalidStepError("x"), ValueError)
    assert rec.journal_path.read_bytes() == before
    assert rec.session is session


def test_select_is_checked_against_image_axes(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells"}, "t0", select={"image": {"z": 3}})
    assert rec.active.steps[0].inputs["image"].select == {"z": 3}
    with pytest.raises(InvalidStepError, match="no 't' axis"):
        rec.record_step(
            "preprocess.gaussian", {}, {"image": "cells"}, "o", select={"image": {"t": 0}}
        )
    with pytest.raises(InvalidStepError, match="past the end"):
        rec.record_step(
            "preprocess.gaussian", {}, {"image": "cells"}, "o", select={"image": {"c": 5}}
        )


def test_layer_removed_keeps_a_step_others_read_until_they_go(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    assert rec.layer_removed("smoothed") == []
    g, t = rec.active.steps
    assert g.output_layer is None, "kept: the nuclei still come from it"
    assert rec.layer_source("smoothed") is None
    # removing the final layer takes the now purposeless smoothing with it
    assert sorted(rec.layer_removed("nuclei")) == ["gaussian", "threshold"]
    assert rec.active.steps == ()
    assert rec.layer_removed("not ours") == []


def test_layer_removed_of_a_leaf_removes_only_it(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    assert rec.layer_removed("nuclei") == ["threshold"]
    assert steps(rec) == [("gaussian", "preprocess.gaussian")]
    removed = [e for e in rec.session.timeline if e.kind == "layer_removed"][-1]
    assert removed.detail["removed"][0]["op"] == "segment.threshold"  # kept in the timeline


def test_remove_step_cascades_to_dependents(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    rec.record_step("segment.fill_holes", {}, {"labels": "nuclei"}, "filled")
    rec.record_step("preprocess.median", {}, {"image": "cells [1]"}, "median")
    assert rec.remove_step("threshold") == ["threshold", "fill_holes"]
    assert steps(rec) == [("gaussian", "preprocess.gaussian"), ("median", "preprocess.median")]
    with pytest.raises(KeyError, match="no step 'threshold'"):
        rec.remove_step("threshold")
    # ids are never reused, so the timeline stays unambiguous
    assert rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "n2") == "threshold_2"


def test_image_layer_removed_keeps_image(rec):
    rec.layer_removed("cells [1]")
    assert rec.session.image("cells").layers == {"cells [0]": {"c": 0}}
    with pytest.raises(InvalidStepError):
        rec.record_step("preprocess.gaussian", {}, {"image": "cells [1]"}, "x")
    # the image itself can still be read by name
    rec.record_step("preprocess.gaussian", {}, {"image": "cells"}, "x", select={"image": {"c": 1}})


def test_rename_layer_follows(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.rename_layer("smoothed", "blurred")
    rec.rename_layer("cells [0]", "dapi")
    assert rec.active.steps[0].output_layer == "blurred"
    rec.record_step("segment.threshold", {}, {"image": "blurred"}, "nuclei")
    rec.record_step("preprocess.median", {}, {"image": "dapi"}, "m")
    assert rec.active.steps[1].inputs["image"].step == "gaussian"
    assert rec.active.steps[2].inputs["image"].select == {"c": 0}


def test_approaches_switch_and_cross_reference(rec):
    rec.record_step("segment.threshold", {}, {"image": "cells [0]"}, "nuclei")
    key = rec.add_approach("cellpose", "Eve")
    assert key == "B" and rec.session.active == "B"
    assert rec.session.analysts == ("Bob", "Eve")
    rec.record_step("segment.expand_labels", {"distance": 3}, {"labels": "nuclei"}, "cells")
    assert steps(rec, "B") == [("expand_labels", "segment.expand_labels")]
    assert steps(rec, "A") == [("threshold", "segment.threshold")]
    rec.switch_approach("A")
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "g")
    assert len(rec.session.approach("A").steps) == 2
    with pytest.raises(KeyError, match="no approach 'Z'"):
        rec.switch_approach("Z")
    with pytest.raises(ValueError, match="exists already"):
        rec.add_approach("again", key="A")


def test_first_step_without_approach_creates_one(tmp_path):
    r = SessionRecorder.start("x", folder=tmp_path / "s")
    r.add_image(from_array(np.zeros((8, 8)), "yx", name="img", source="/a/img.tif"))
    r.record_step("preprocess.gaussian", {}, {"image": "img"}, "g")
    assert r.session.active == "A" and [s.id for s in r.active.steps] == ["gaussian"]
    r.close()


def test_add_image_same_source_merges_layers_and_new_names_for_clashes(rec):
    name = rec.add_image(ImageRef(name="cells", source="/data/cells.ome.zarr"), layers={"c": {}})
    assert name == "cells"
    assert set(rec.session.image("cells").layers) == {"cells [0]", "cells [1]", "c"}
    other = rec.add_image(ImageRef(name="cells", source="/data/other.ome.zarr", axes="yx"))
    assert other == "cells_2"
    n_events = len(journal_events(rec))
    rec.add_image(ImageRef(name="cells", source="/data/other.ome.zarr", axes="yx"))
    assert len(journal_events(rec)) == n_events, "nothing new: nothing written"
    with pytest.raises(ValueError, match="no 'z' axis"):
        rec.add_image(ImageRef(name="flat", source="/f.tif", axes="yx"), layers={"f": {"z": 0}})


def test_notes_result_solution_issues_next_steps(rec):
    rec.set_notes("otsu under-segments dim nuclei")
    rec.set_result({"objects": np.int64(112)})
    rec.set_field("title", "Renamed", approach="A")
    rec.set_field("question", "Count nuclei")
    rec.add_issue("needs higher resolution")
    rec.add_issue("uneven illumination")
    rec.remove_issue(0)
    rec.add_next_step("send 10 more images")
    rec.set_solution("Use approach A with a background subtraction", approach="A")
    s = rec.session
    a = s.approach("A")
    assert (a.notes, dict(a.result), a.title) == (
        "otsu under-segments dim nuclei",
        {"objects": 112},
        "Renamed",
    )
    assert s.question == "Count nuclei"
    assert s.issues == ("uneven illumination",) and s.next_steps == ("send 10 more images",)
    assert s.solution.approach == "A"
    with pytest.raises(IndexError):
        rec.remove_issue(3)
    with pytest.raises(ValueError, match="settable fields"):
        rec.set_field("id", "x")
    with pytest.raises(KeyError):
        rec.set_solution("x", approach="Q")


def test_changed_signal_fires_after_the_line_is_on_disk(rec):
    seen = []

    def on_change(event):
        last = json.loads(rec.journal_path.read_text().splitlines()[-1])
        seen.append(
            (event["event"], last["seq"] == event["seq"], rec.session.updated == event["time"])
        )

    rec.changed.connect(on_change)
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.set_notes("n")
    assert seen == [("step_recorded", True, True), ("note_set", True, True)]


def test_live_session_equals_replayed_journal(rec):
    rec.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "cells [0]"}, "smoothed")
    rec.record_step("segment.threshold", {}, {"image": "smoothed"}, "nuclei")
    rec.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "cells [0]"}, "smoothed")
    rec.layer_removed("smoothed")
    rec.add_approach("b")
    rec.record_step("preprocess.median", {"radius": 2}, {"image": "cells [1]"}, "m")
    rec.set_result({"objects": 3, "mean_area": 12.5})
    assert load_session(rec.folder) == rec.session
    assert [e.kind for e in rec.session.timeline] == [e["event"] for e in journal_events(rec)]


def test_reopen_continues_with_new_analysts(rec):
    rec.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "smoothed")
    rec.remove_step("gaussian")
    before = rec.session
    rec.close()
    r2 = open_session(rec.folder, analysts=["Carol"])
    try:
        s = r2.session
        assert s.analysts == ("Bob", "Carol")
        assert s.image("cells").source == "/data/cells.ome.zarr"
        assert s.timeline[: len(before.timeline)] == before.timeline
        assert s.timeline[-1].kind == "session_reopened"
        assert (
            r2.record_step("preprocess.gaussian", {}, {"image": "cells [0]"}, "g") == "gaussian_2"
        )
        seqs = [e["seq"] for e in journal_events(r2)]
        assert seqs == list(range(1, len(seqs) + 1))
    finally:
        r2.close()


def test_two_recorders_share_a_session_without_a_lock(rec):
    other = open_session(rec.folder, analysts=["Eve"])  # no lock: a second napari joins
    key = other.add_approach("cellpose", "Eve")
    other.set_notes("Eve's try", approach=key)
    assert other.journal_path != rec.journal_path, "one writer per file"
    assert rec.sync() > 0
    assert rec.session.approach(key).notes == "Eve's try"
    assert rec.session.approach(key).client == other.client
    assert rec.session.active != key, "each napari keeps its own active approach"
    other.close()
    rec.close()
    open_session(rec.folder).close()
