"""Several analysts, several processes, one session: real processes, real files, a real S3 API."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from helpers.shared_session import digest, finish, moto_s3, start_analyst
from napari_fbias.session import (
    ImageRef,
    JournalRecoveryWarning,
    SessionRecorder,
    load_session,
    open_session,
)
from napari_fbias.session.space import Space


@pytest.fixture(autouse=True)
def outbox(tmp_path, monkeypatch):
    monkeypatch.setenv("FBIAS_OUTBOX", str(tmp_path / "outbox"))


def _start(space, title="Open desk"):
    rec = SessionRecorder.start(title, user_name="Ann", question="How many?", space=space)
    rec.add_image(ImageRef(name="img", source="/data/img.tif", axes="yx", shape=(16, 16)))
    return rec


def _check_together(results, link, analysts, steps):
    merged = load_session(link)
    assert {a.analyst for a in merged.approaches} == set(analysts)
    clients = {r["client"] for r in results}
    assert {a.client for a in merged.approaches} == clients, "each approach credits its client"
    for a in merged.approaches:
        assert len(a.steps) == steps and a.notes == f"{a.analyst} is done"
    assert len(merged.issues) == steps * len(analysts)
    keys = [a.key for a in merged.approaches]
    assert len(set(keys)) == len(keys), "concurrently created approaches got distinct keys"
    ids = [st.id for a in merged.approaches for st in a.steps]
    assert len(set(ids)) == len(ids)
    for r in results:
        assert r["acks"] == steps
        assert r["session"] == digest(merged), "every analyst sees the same session"


@pytest.mark.parametrize("n", [2, 3])
def test_analysts_in_separate_processes_record_into_one_local_space(tmp_path, n):
    rec = _start(tmp_path / "space")
    rec.close()
    names = ["Marie", "Jon", "Ida"][:n]
    procs = [start_analyst(tmp_path, rec.link, name, 12, n) for name in names]
    results = [finish(p) for p in procs]
    _check_together(results, rec.link, names, 12)
    journals = sorted((Path(rec.link) / "journals").glob("*.jsonl"))
    assert len(journals) == n + 1, "one journal per client, no lock file"


def test_analysts_record_into_one_s3_space(tmp_path, monkeypatch):
    with moto_s3("desk") as env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        rec = _start("s3://desk/space")
        assert rec.flush(30), rec.sync_status
        rec.close()
        assert rec.link.startswith("s3://desk/space/")
        procs = [start_analyst(tmp_path, rec.link, n, 6, 2) for n in ("Marie", "Jon")]
        results = [finish(p) for p in procs]
        _check_together(results, rec.link, ["Marie", "Jon"], 6)
        (info,) = __import__("napari_fbias.session", fromlist=["x"]).list_sessions(
            space="s3://desk/space"
        )
        assert info.title == "Open desk" and info.path == rec.link


def test_sigkill_of_one_analyst_loses_nothing_it_showed_and_others_carry_on(tmp_path):
    rec = _start(tmp_path / "space")
    proc = start_analyst(tmp_path, rec.link, "Jon", 10_000, 2)
    acked = -1
    try:
        while acked < 15:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if line.startswith("ack "):
                acked = int(line.split()[1])
        os.kill(proc.pid, signal.SIGKILL)
        rest, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    acked = max([acked] + [int(x.split()[1]) for x in rest.splitlines() if x.startswith("ack ")])
    rec.add_approach("mine", "Marie")
    rec.set_notes("Marie carries on")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", JournalRecoveryWarning)  # it may have died mid-line
        # Jon's napari starts again on his machine: what it recorded but had not sent yet
        # leaves its outbox now
        open_session(rec.link, analysts=["Jon"]).close()
        exchange(rec)
        s = load_session(rec.link)
    jon = next(a for a in s.approaches if a.analyst == "Jon")
    assert len(jon.steps) >= acked + 1, "every acknowledged step of the killed analyst is there"
    assert s.approach(rec.session.active).notes == "Marie carries on"
    assert digest(rec.session) == digest(s)
    rec.close()


def test_a_just_started_session_can_be_joined_at_once(tmp_path):
    # the first line goes to the space before start() returns, not only when the
    # background sender gets to it (a join right after start once found no session)
    rec = SessionRecorder.start("Open desk", space=tmp_path / "space")
    assert not rec.space.direct and rec.sync_status == "online"
    other = open_session(rec.link, analysts=["Jon"])
    assert other.session.title == "Open desk"
    other.close()
    rec.close()


def test_a_damaged_or_hostile_journal_keeps_its_good_events_and_names_the_analyst(tmp_path):
    rec = _start(tmp_path / "space")
    other = open_session(rec.link, analysts=["Mallory"])
    key = other.add_approach("hostile", "Mallory")
    other.set_notes("../../etc/passwd")  # path names are plain text
    other.close()
    path = other.journal_path
    good = path.read_bytes()
    lines = good.splitlines(keepends=True)
    forged = json.loads(lines[-1])
    forged.update(seq=len(lines) + 1, clock=forged["clock"] + 1, client=rec.client)
    hostile = [
        json.dumps(forged).encode() + b"\n",  # an event claiming to be someone else's
        b'{"v": 1, "event": "note_set", "text": "' + b"x" * 100 + b'"}\n',
    ]
    path.write_bytes(good + b"".join(hostile))
    with pytest.warns(JournalRecoveryWarning) as caught:
        s = load_session(rec.link)
    (msg,) = [str(w.message) for w in caught]
    assert "journal of Mallory" in msg and f"line {len(lines) + 1}" in msg
    assert "claims client" in msg
    assert s.approach(key).notes == "../../etc/passwd"
    for bad in (b"{not json\n", b"x" * 17_000_000 + b"\n", b'{"v": 99, "seq": 1}\n'):
        path.write_bytes(good + bad)
        with pytest.warns(JournalRecoveryWarning, match="journal of Mallory"):
            assert load_session(rec.link).approach(key).notes == "../../etc/passwd"
    with pytest.warns(JournalRecoveryWarning, match="journal of Mallory"):
        rec.sync()  # the live view warns too, and keeps recording
    rec.add_issue("still recording")
    rec.close()


def test_an_unreachable_space_keeps_recording_locally_and_sends_when_back(tmp_path):
    space = tmp_path / "network-drive"
    rec = _start(space)
    assert rec.flush(10) and rec.sync_status == "online"
    away = tmp_path / "unmounted"
    space.rename(away)  # the network drive is gone
    rec.add_issue("typed while offline")
    rec.set_notes("also offline")  # a new approach and its notes
    assert rec.flush(1) is False
    assert rec.sync_status.startswith("offline: 3 events waiting"), rec.sync_status
    rec.sync()
    assert rec.sync_status.startswith("offline"), "reading says so too"
    assert rec.session.issues == ("typed while offline",), "the local record has everything"
    away.rename(space)  # back
    assert rec.flush(10), rec.sync_status
    rec.sync()
    assert rec.sync_status == "online"
    assert load_session(rec.link).issues == ("typed while offline",)
    rec.close()


def _pair(tmp_path):
    a = _start(tmp_path / "space")
    b = open_session(a.link, analysts=["Jon"])
    exchange(a, b)
    return a, b


def exchange(*recs):
    """Send what each recorded to the space, then let each read the others."""
    for r in recs:
        assert r.flush(10), r.sync_status
    for r in recs:
        r.sync()


def test_concurrent_edits_of_a_shared_field_keep_both_texts(tmp_path):
    a, b = _pair(tmp_path)
    a.set_field("question", "How many nuclei per field?")
    b.set_field("question", "Count nuclei, and their size")
    exchange(a, b)
    assert digest(a.session) == digest(b.session)
    (conflict,) = [t for t in a.session.timeline if t.kind == "conflict"]
    texts = {conflict.detail["kept"], conflict.detail["overwritten"]}
    assert texts == {"How many nuclei per field?", "Count nuclei, and their size"}
    assert a.session.question == conflict.detail["kept"]
    a.set_field("question", "final")  # an edit made after seeing the other is no conflict
    exchange(a, b)
    assert b.session.question == "final"
    assert sum(t.kind == "conflict" for t in b.session.timeline) == 1


def test_clock_skew_does_not_change_the_order(tmp_path, monkeypatch):
    a, b = _pair(tmp_path)
    a.set_notes("first, on a clock that is right")
    exchange(a, b)
    import napari_fbias.session.journal as journal_module

    monkeypatch.setattr(journal_module, "utc_now", lambda: "2026-01-01T00:00:00.000000+00:00")
    b.set_field("title", "second, on a clock ten months slow")
    exchange(b, a)
    a.set_field("title", "third, after seeing the second")
    monkeypatch.undo()
    exchange(a, b)
    assert a.session.title == b.session.title == "third, after seeing the second"
    assert not [t for t in a.session.timeline if t.kind == "conflict"]


def test_two_analysts_remove_and_replace_the_same_step(tmp_path):
    a, b = _pair(tmp_path)
    a.add_approach("classical", "Marie")
    sid = a.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "A: g")
    exchange(a, b)
    b.remove_step(sid, reason="Jon thinks it is useless")
    a.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "img"}, "A: g")  # replaces
    exchange(a, b)
    assert digest(a.session) == digest(b.session)
    # both were made at the same logical time; whichever the merged order puts first wins:
    # a removal then a replacement: the replacement no longer fits and is kept in the timeline
    # as a conflict; a replacement then a removal: the step is removed (and its new version
    # is in the timeline as tried). Either way the step is gone, on every machine.
    assert a.session.find_step(sid) is None
    kinds = [t.kind for t in a.session.timeline]
    assert "step_removed" in kinds
    if kinds.index("step_removed") < len(kinds) - 1:
        (conflict,) = [t for t in a.session.timeline if t.kind == "conflict"]
        assert conflict.detail["event"] == "step_replaced"
        assert "not in approach" in str(conflict.detail["problem"])


def test_concurrent_approaches_and_steps_get_distinct_names(tmp_path):
    a, b = _pair(tmp_path)
    ka = a.add_approach("classical", "Marie")
    kb = b.add_approach("cellpose", "Jon")
    assert ka == kb == "A", "neither has seen the other yet"
    a.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "A: g")
    b.record_step("preprocess.gaussian", {"sigma": 3}, {"image": "img"}, "A: g")
    exchange(a, b)
    assert digest(a.session) == digest(b.session)
    s = a.session
    assert sorted(x.key for x in s.approaches) == ["A", "B"]
    mine = {x.title: x for x in s.approaches}
    assert [st.params["sigma"] for st in mine["classical"].steps] == [1]
    assert [st.params["sigma"] for st in mine["cellpose"].steps] == [3]
    assert sorted(st.id for x in s.approaches for st in x.steps) == ["gaussian", "gaussian_2"]
    assert a.session.active == mine["classical"].key, "each goes on with its own approach"
    jon = b.session.active
    assert jon == mine["cellpose"].key
    b.set_notes("Jon's notes")  # written with Jon's own name for it, lands on his approach
    b.set_solution("take Jon's", approach=jon)
    b.set_notes("Marie's too", approach=a.session.active)  # another's approach, by its name
    exchange(a, b)
    assert a.session.approach(jon).notes == "Jon's notes"
    assert a.session.approach(a.session.active).notes == "Marie's too"
    assert a.session.solution.approach == jon


def test_export_on_any_machine_gives_the_same_bundle(tmp_path):
    from napari_fbias.session.export.bundle import export_bundle

    a, b = _pair(tmp_path)
    a.add_approach("classical", "Marie")
    a.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "A: g")
    b.add_approach("other", "Jon")
    b.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "img"}, "B: g")
    exchange(a, b)
    assert sorted(x.analyst for x in a.session.approaches) == ["Jon", "Marie"]
    a.close()
    b.close()
    assert load_session(a.link) == load_session(b.link)
    r1 = export_bundle(a.link, tmp_path / "bundle1", approaches=["A", "B"])
    r2 = export_bundle(b.link, tmp_path / "bundle2", approaches=["A", "B"])
    assert sorted(p.name for p in r1.folder.iterdir()) == sorted(
        p.name for p in r2.folder.iterdir()
    )
    text = (r1.folder / "report.html").read_text()
    assert "Marie" in text and "Jon" in text


def test_sessions_cli_lists_and_searches_a_space(tmp_path):
    a, b = _pair(tmp_path)
    a.add_approach("classical", "Marie")
    b.add_approach("cellpose", "Jon")
    a.close()
    b.close()
    other = SessionRecorder.start("Other user", user_name="Bea", space=tmp_path / "space")
    other.close()
    env = {**os.environ}
    cmd = [sys.executable, "-m", "napari_fbias.cli", "sessions", "--space", str(tmp_path / "space")]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    listed = json.loads(out.stdout)
    assert {x["title"] for x in listed} == {"Open desk", "Other user"}
    desk = next(x for x in listed if x["title"] == "Open desk")
    assert sorted((ap["analyst"], bool(ap["client"])) for ap in desk["approaches"]) == [
        ("Jon", True),
        ("Marie", True),
    ]
    assert desk["link"] == a.link
    found = subprocess.run(
        [*cmd, "--user", "ann", "--analyst", "Jon"], capture_output=True, text=True, timeout=120
    )
    assert (
        found.returncode == 0 and "Open desk" in found.stdout and "Other user" not in found.stdout
    )
    none = subprocess.run([*cmd, "--text", "zebrafish"], capture_output=True, text=True)
    assert none.returncode == 0 and "no session" in none.stdout.lower()


def test_space_urls_with_credentials_are_refused():
    from napari_fbias.session.errors import SessionError

    with pytest.raises(SessionError, match="must not hold credentials"):
        Space.resolve("s3://AKIA:se/cret@bucket/space")


def test_replication_latency_is_low_locally(tmp_path):
    a, b = _pair(tmp_path)
    t0 = time.monotonic()
    a.add_issue("ping")
    while not b.session.issues and time.monotonic() - t0 < 10:
        b.sync()
        time.sleep(0.01)
    assert b.session.issues == ("ping",)


def test_a_follow_up_is_linked_in_the_report(tmp_path):
    from napari_fbias.session.export.bundle import export_bundle

    first = _start(tmp_path / "space", "First visit")
    first.close()
    second = _start(tmp_path / "space", "Second visit")
    second.set_follow_up(load_session(first.link), first.link)
    second.add_approach("classical", "Marie")
    second.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "A: g")
    second.close()
    assert load_session(second.link).follows["id"] == load_session(first.link).id
    out = export_bundle(second.link, tmp_path / "bundle", figures=False)
    html = (out.folder / "report.html").read_text()
    assert "Follow-up of" in html and "First visit" in html and first.link in html


def test_a_layer_of_another_analysts_result_is_theirs(tmp_path):
    a, b = _pair(tmp_path)
    a.add_approach("classical", "Marie")
    sid = a.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "A: g")
    exchange(a, b)
    b.rename_layer("A: g", "my copy")  # Jon renames his local copy of Marie's result
    assert b.layer_removed("my copy") == [] and b.layer_removed("A: g") == []
    exchange(a, b)
    assert a.session.find_step(sid)[1].output_layer == "A: g", "Marie's record is unchanged"


def test_new_step_ids_never_take_one_already_in_the_session(tmp_path):
    """Ids come from the merge's table of every id ever used: others', removed and reopened ones."""
    a, b = _pair(tmp_path)
    a.add_approach("classical", "Marie")
    b.add_approach("cellpose", "Jon")
    a.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "img"}, "g1")
    a.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "img"}, "g2")
    a.remove_step("gaussian_2")
    exchange(a, b)
    # Jon has seen Marie's gaussian and her removed gaussian_2: his next one is gaussian_3
    assert (
        b.record_step("preprocess.gaussian", {"sigma": 3}, {"image": "img"}, "g3") == "gaussian_3"
    )
    exchange(a, b)
    b.close()
    again = open_session(a.link, analysts=["Jon"])
    try:
        new = again.record_step("preprocess.gaussian", {"sigma": 4}, {"image": "img"}, "g4")
        assert new == "gaussian_4"
        exchange(a, again)
        ids = [st.id for x in a.session.approaches for st in x.steps]
        assert sorted(ids) == ["gaussian", "gaussian_3", "gaussian_4"]
    finally:
        again.close()
        a.close()
