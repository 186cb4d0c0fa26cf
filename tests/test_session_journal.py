"""The crash-safe journal: durable lines, recovery after a crash, a real SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from napari_fbias.session import (
    ImageRef,
    JournalRecoveryWarning,
    SessionFormatError,
    SessionRecorder,
    load_session,
    open_session,
)


def small_session(folder):
    r = SessionRecorder.start("crash", user_name="Ann", analysts=["Bob"], folder=folder)
    r.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(16, 16)))
    r.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "g")
    r.set_notes("before the crash")
    r.close()
    return r.journal_path


def test_each_event_is_one_complete_json_line(tmp_path):
    path = small_session(tmp_path / "s")
    data = path.read_bytes()
    assert data.endswith(b"\n")
    lines = data.decode().splitlines()
    events = [json.loads(line) for line in lines]
    assert [e["seq"] for e in events] == list(range(1, len(lines) + 1))
    assert [e["event"] for e in events] == [
        "session_started",
        "image_added",
        "approach_added",
        "step_recorded",
        "note_set",
    ]
    assert all(e["v"] == 1 and e["time"] for e in events)


def test_truncated_last_line_is_ignored_with_a_warning(tmp_path):
    path = small_session(tmp_path / "s")
    good = path.read_bytes()
    path.write_bytes(good + b'{"v":1,"seq":6,"time":"2025-01-01T00:00:00+00:00","event":"note_se')
    with pytest.warns(JournalRecoveryWarning, match="cut off"):
        s = load_session(path.parent)
    assert s.approach("A").notes == "before the crash"
    assert path.read_bytes().startswith(good), "reading never changes the journal"


def test_reopening_after_a_crash_keeps_the_cut_line_aside_and_continues(tmp_path):
    path = small_session(tmp_path / "s")
    good = path.read_bytes()
    tail = b'{"v":1,"seq":6,"ti'
    path.write_bytes(good + tail)
    with pytest.warns(JournalRecoveryWarning, match="cut off"):
        r = open_session(path.parent, analysts=["Ann"])
    r.set_notes("after the crash")
    r.close()
    assert r.journal_path != path, "a new client journal: the crashed one is never rewritten"
    assert path.read_bytes() == good + tail
    with pytest.warns(JournalRecoveryWarning, match="cut off"):
        assert load_session(path.parent).approach("A").notes == "after the crash"


def test_zero_filled_tail_after_power_loss(tmp_path):
    path = small_session(tmp_path / "s")
    path.write_bytes(path.read_bytes() + b"\x00" * 64)
    assert load_session(path.parent).approach("A").notes == "before the crash"
    r = open_session(path.parent)
    r.set_notes("later")
    r.close()
    assert load_session(path.parent).approach("A").notes == "later"


def _damage_warning(path, match):
    with pytest.warns(JournalRecoveryWarning, match=match) as caught:
        s = load_session(path.parent)
    return s, str(caught[0].message)


def test_a_broken_line_keeps_the_good_events_and_names_the_analyst_and_line(tmp_path):
    path = small_session(tmp_path / "s")
    lines = path.read_bytes().split(b"\n")
    lines[2] = b"garbage"
    path.write_bytes(b"\n".join(lines))
    s, msg = _damage_warning(path, r"line 3: not a JSON event")
    assert "journal of Bob" in msg and path.stem in msg
    assert s.images and not s.approaches, "the two events before the damage are kept"


def test_missing_lines_are_detected(tmp_path):
    path = small_session(tmp_path / "s")
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:]))
    _damage_warning(path, "line 3: event number 4, expected 3")


def test_newer_schema_and_unknown_events_stop_that_journal(tmp_path):
    path = small_session(tmp_path / "s")
    lines = path.read_text().splitlines(keepends=True)
    lines.append(json.dumps({"v": 2, "seq": 6, "time": "t", "event": "future"}) + "\n")
    path.write_text("".join(lines))
    s, _ = _damage_warning(path, "newer napari-fbias")
    assert s.approach("A").notes == "before the crash"
    lines[-1] = json.dumps({"v": 1, "seq": 6, "time": "t", "event": "exec_code"}) + "\n"
    path.write_text("".join(lines))
    _damage_warning(path, "unknown event type 'exec_code'")


def test_empty_journal_is_a_clear_error(tmp_path):
    (tmp_path / "journal.jsonl").write_bytes(b"")
    with pytest.raises(SessionFormatError, match="empty"):
        load_session(tmp_path)


CHILD = textwrap.dedent(
    """
    import sys
    from napari_fbias.session import ImageRef, SessionRecorder

    rec = SessionRecorder.start("killed", user_name="Ann", folder=sys.argv[1])
    rec.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(16, 16)))
    print("ready", flush=True)
    i = 0
    while True:
        sid = rec.record_step("preprocess.gaussian", {"sigma": 0.5 + i}, {"image": "img"},
                              f"layer {i}")
        print("step", sid, flush=True)
        rec.set_notes(f"note {i}")
        print("note", i, flush=True)
        i += 1
    """
)


def test_sigkill_loses_nothing_acknowledged(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    folder = tmp_path / "session"
    proc = subprocess.Popen(
        [sys.executable, str(script), str(folder)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while len(acked) < 41 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                pytest.fail(f"the recording process died: {proc.stderr.read()}")
            acked.append(line.strip())
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    acked += [line.strip() for line in rest.splitlines()]  # printed before it died
    step_ids = [a.split()[1] for a in acked if a.startswith("step ")]
    notes = [int(a.split()[1]) for a in acked if a.startswith("note ")]
    assert len(step_ids) >= 20
    import warnings

    with warnings.catch_warnings():  # it may have died half-way through a line
        warnings.simplefilter("ignore", JournalRecoveryWarning)
        rec = open_session(folder, analysts=["Bob"])  # the kernel released the lock
    try:
        s = rec.session
        recorded = [st.id for st in s.approach("A").steps]
        assert recorded[: len(step_ids)] == step_ids
        assert len(recorded) <= len(step_ids) + 1
        noted = int(s.approach("A").notes.split()[1])
        assert noted in (notes[-1], notes[-1] + 1)
        assert s.approach("A").steps[0].params == {"sigma": 0.5}
        rec.set_notes("recovered")  # and the journal goes on
    finally:
        rec.close()
    assert load_session(folder).approach("A").notes == "recovered"
