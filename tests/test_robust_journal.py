"""A failed journal write loses nothing acknowledged; links are never followed.

The full-disk case runs on a real 2 MB tmpfs when this process may mount one
(root, as in CI), and always in a child process whose file-size limit
(``RLIMIT_FSIZE``) makes the kernel refuse the write part-way through a line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from napari_fbias.session import (
    ImageRef,
    JournalError,
    JournalRecoveryWarning,
    SessionRecorder,
    load_session,
    open_session,
)
from napari_fbias.session.journal import Journal, encode_event, make_event, read_events


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MB tmpfs (skipped where this process may not mount one)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)],
        capture_output=True,
        text=True,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip()}); the rlimit test covers it")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_full_disk_write_is_cut_back_and_later_work_is_kept(small_disk):
    rec = SessionRecorder.start("full", user_name="Ann", folder=small_disk / "s")
    rec.add_image(ImageRef(name="img", source="/d/img.tif", axes="yx", shape=(16, 16)))
    rec.set_notes("before the disk filled up")
    filler = _fill(small_disk)
    with pytest.raises(JournalError, match="was not recorded"):
        rec.set_notes("x" * 300_000)  # cannot fit: part of it may have reached the file
    assert rec.session.approach("A").notes == "before the disk filled up", "not acknowledged"
    filler.unlink()
    rec.set_notes("after space came back")  # acknowledged: must survive
    rec.add_issue("one more event")
    rec.close()
    with warnings.catch_warnings():
        warnings.simplefilter("error", JournalRecoveryWarning)  # the journal is whole
        s = load_session(small_disk / "s")
    assert s.approach("A").notes == "after space came back"
    assert s.issues == ("one more event",)
    again = open_session(small_disk / "s")
    again.add_next_step("reopened fine")
    again.close()
    assert load_session(small_disk / "s").next_steps == ("reopened fine",)


CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from napari_fbias.session.journal import Journal, encode_event, make_event
    from napari_fbias.session.errors import JournalError

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of being killed
    path, limit = sys.argv[1], int(sys.argv[2])
    j = Journal(path)
    j.append(encode_event(make_event("note_set", j.next_seq, {"approach": "A", "text": "a"})))
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    try:
        j.append(encode_event(make_event("note_set", j.next_seq,
                                         {"approach": "A", "text": "b" * 10000})))
    except JournalError as exc:
        print("refused:", exc, flush=True)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    j.append(encode_event(make_event("note_set", j.next_seq, {"approach": "A", "text": "c"})))
    print("acknowledged", j.next_seq - 1, flush=True)
    """
)


def test_a_write_refused_half_way_leaves_no_partial_line(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    path = tmp_path / "j.jsonl"
    r = subprocess.run(
        [sys.executable, str(script), str(path), "4096"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "refused:" in r.stdout and "acknowledged 2" in r.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("error", JournalRecoveryWarning)
        events = read_events(path)
    assert [e["text"] for e in events] == ["a", "c"]
    assert [e["seq"] for e in events] == [1, 2]


def test_a_journal_that_cannot_be_cut_back_refuses_further_events(tmp_path, monkeypatch):
    j = Journal(tmp_path / "j.jsonl")
    j.append(encode_event(make_event("note_set", j.next_seq, {"text": "ok"})))

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", broken)
    monkeypatch.setattr(os, "ftruncate", broken)
    with pytest.raises(JournalError, match="could not be repaired"):
        j.append(encode_event(make_event("note_set", j.next_seq, {"text": "lost"})))
    monkeypatch.undo()
    monkeypatch.setattr(os, "ftruncate", broken)
    with pytest.raises(JournalError, match="nothing more can be recorded"):
        j.append(encode_event(make_event("note_set", j.next_seq, {"text": "refused"})))
    monkeypatch.undo()
    j.append(encode_event(make_event("note_set", j.next_seq, {"text": "back"})))
    j.close()
    assert [e["text"] for e in read_events(tmp_path / "j.jsonl")] == ["ok", "back"]


def test_a_symlinked_journal_is_refused_and_its_target_untouched(tmp_path):
    rec = SessionRecorder.start("links", user_name="Ann", folder=tmp_path / "s")
    rec.set_notes("real")
    rec.close()
    target = tmp_path / "precious.txt"
    target.write_text("do not touch\n" * 100)
    journal = rec.journal_path
    journal.unlink()
    journal.symlink_to(target)
    with pytest.raises(JournalError, match="symbolic link"):
        read_events(journal)
    with pytest.raises(JournalError, match="symbolic link"):
        Journal(journal)
    assert target.read_text() == "do not touch\n" * 100
    assert not list(journal.parent.glob("*.damaged-*"))
