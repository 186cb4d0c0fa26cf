"""Snapshots, loading, listing previous sessions, continuing from a snapshot alone."""

from __future__ import annotations

import os

import pytest
import yaml

from napari_fbias.session import (
    ImageRef,
    JournalRecoveryWarning,
    SessionError,
    SessionFormatError,
    SessionRecorder,
    list_sessions,
    load_session,
    load_snapshot,
    open_session,
)
from napari_fbias.session.store import SNAPSHOT_NAME


def make(root, title, steps=1):
    r = SessionRecorder.start(title, user_name="Ann", user_lab="Lab", analysts=["Bob"], root=root)
    r.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(16, 16)))
    for i in range(steps):
        r.record_step("preprocess.gaussian", {"sigma": 1 + i}, {"image": "img"}, f"g{i}")
    return r


def test_snapshot_is_readable_yaml_and_loads_back(tmp_path):
    r = make(tmp_path, "Snap")
    r.set_notes("a: note\nwith: yaml-looking text")
    path = r.save()
    r.close()
    assert path == r.folder / SNAPSHOT_NAME
    assert [p.name for p in r.folder.iterdir() if p.name.startswith(".")] == [], "no temp left"
    data = yaml.safe_load(path.read_text())
    assert data["fbias_session"] == 1
    assert data["approaches"][0]["steps"][0]["op"] == "preprocess.gaussian"
    assert isinstance(data["created"], str), "times stay text"
    snap = load_snapshot(path)
    assert snap == load_session(r.folder)
    assert snap.timeline[-1].kind == "snapshot_saved"


def test_saving_again_replaces_the_snapshot_atomically(tmp_path):
    r = make(tmp_path, "Again")
    first = r.save().read_text()
    r.set_notes("more")
    second = r.save().read_text()
    r.close()
    assert first != second and "more" in second
    assert sorted(p.name for p in r.folder.iterdir()) == ["journals", "session.yaml"]


def test_load_prefers_the_journal(tmp_path):
    r = make(tmp_path, "Truth")
    r.save()
    r.set_notes("only in the journal")
    r.close()
    assert load_session(r.folder).approach("A").notes == "only in the journal"
    assert load_session(r.folder / SNAPSHOT_NAME).approach("A").notes == ""


def test_open_from_a_snapshot_alone_starts_a_journal(tmp_path):
    r = make(tmp_path, "Mailed snapshot", steps=2)
    snap = r.save()
    r.close()
    folder = tmp_path / "copy"
    folder.mkdir()
    (folder / SNAPSHOT_NAME).write_bytes(snap.read_bytes())
    r2 = open_session(folder, analysts=["Bob", "Dan"])  # Bob goes on with his approach
    r2.record_step("preprocess.gaussian", {}, {"image": "img"}, "g9")
    r2.close()
    s = load_session(folder)
    assert [st.id for st in s.approach("A").steps] == ["gaussian", "gaussian_2", "gaussian_3"]
    assert s.analysts == ("Bob", "Dan")
    kinds = [t.kind for t in s.timeline]
    assert kinds.count("session_started") == 1 and "session_restored" in kinds


def test_snapshot_errors_are_clear(tmp_path):
    bad = tmp_path / "session.yaml"
    bad.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(SessionFormatError, match="not valid YAML"):
        load_snapshot(bad)
    bad.write_text("fbias_session: 7\nid: x\n")
    with pytest.raises(SessionFormatError, match="newer napari-fbias"):
        load_snapshot(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(SessionFormatError, match="mapping"):
        load_snapshot(bad)
    bad.write_text("fbias_session: 1\ntitle: no id\n")
    with pytest.raises(SessionFormatError, match="missing field 'id'"):
        load_snapshot(bad)
    with pytest.raises(SessionError, match="no session in"):
        load_session(tmp_path / "nowhere")


def test_list_sessions_newest_first_with_problems_noted(tmp_path):
    old = make(tmp_path, "Old one")
    old.close()
    new = make(tmp_path, "New one", steps=2)
    new.add_approach("cellpose", "Eve")
    new.close()
    crashed = make(tmp_path, "Crashed")
    crashed.close()
    with crashed.journal_path.open("ab") as fh:
        fh.write(b'{"v":1,"seq"')
    broken = tmp_path / "2020-01-01-broken-00000000"
    broken.mkdir()
    (broken / "journal.jsonl").write_text("not json\nnot json either\n")
    (tmp_path / "unrelated").mkdir()
    infos = list_sessions(tmp_path)
    titles = [i.title for i in infos]
    assert titles[:3] == ["Crashed", "New one", "Old one"]
    assert "unrelated" not in titles
    by = {i.title: i for i in infos}
    assert by["New one"].approaches == ("A", "B") and by["New one"].analysts == ("Bob", "Eve")
    assert by["New one"].user == "Ann" and by["New one"].problem is None
    assert "cut off" in by["Crashed"].problem
    assert "line 1: not a JSON event" in by[broken.name].problem
    assert list_sessions(tmp_path / "missing") == []


def test_list_sessions_uses_the_environment_root(tmp_path, monkeypatch):
    monkeypatch.setenv("FBIAS_SESSION_DIR", os.fspath(tmp_path))
    r = make(None, "From env")
    r.close()
    assert [i.title for i in list_sessions()] == ["From env"]


def test_crashed_session_reopens_from_the_list(tmp_path):
    r = make(tmp_path, "Crash")
    r.close()
    with r.journal_path.open("ab") as fh:
        fh.write(b'{"v":1')
    (info,) = list_sessions(tmp_path)
    with pytest.warns(JournalRecoveryWarning):
        r2 = open_session(info.path)
    assert [st.id for st in r2.session.approach("A").steps] == ["gaussian"]
    r2.close()


def test_a_snapshot_too_large_to_load_back_is_not_written(tmp_path, monkeypatch):
    import napari_fbias.session.store as store

    r = make(tmp_path, "Big")
    monkeypatch.setattr(store, "MAX_SNAPSHOT_BYTES", 2000)
    r.set_notes("x" * 5000)
    with pytest.raises(SessionFormatError, match="too large for a readable snapshot"):
        r.save()
    r.close()
    assert not (r.folder / SNAPSHOT_NAME).exists()
    s = load_session(r.folder)
    assert s.approach("A").notes == "x" * 5000
    assert s.timeline[-1].kind != "snapshot_saved", "a refused snapshot is not recorded as saved"
