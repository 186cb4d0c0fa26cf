"""Scratch folders left by processes killed outright are removed; nobody else's are.

The killed processes are real child processes, killed with SIGKILL.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_fbias.io.scratch import SCRATCH_ENV, ScratchArray
from napari_fbias.io.stale_scratch import OWNER_FILE, remove_stale_scratch

pytestmark = pytest.mark.skipif(os.name == "nt", reason="SIGKILL and /proc are POSIX")

CREATE = """\
import sys
from napari_fbias.io.scratch import ScratchArray
a = ScratchArray((4, 4), "uint16", (2, 2), sys.argv[1])
a[0:2, 0:2] = [[1, 2], [3, 4]]
print(a.path, flush=True)
if sys.argv[2] == "wait":
    sys.stdin.read()  # until killed
"""


def _child(root: Path, label: str, wait: bool) -> subprocess.Popen[str]:
    env = {**os.environ, SCRATCH_ENV: str(root)}
    args = [sys.executable, "-c", CREATE, label, "wait" if wait else "exit"]
    return subprocess.Popen(args, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _killed_child_folder(root: Path) -> Path:
    """Return the scratch folder of a child that created it and was then killed with -9."""
    proc = _child(root, "killed", wait=True)
    try:
        folder = Path(proc.stdout.readline().strip())  # type: ignore[union-attr]
        assert folder.parent == root, folder
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()  # type: ignore[union-attr]
        proc.stdin.close()  # type: ignore[union-attr]
    assert folder.is_dir() and (folder / "zarr.json").is_file()  # left behind
    owner = json.loads((folder / OWNER_FILE).read_text())
    assert owner["pid"] == proc.pid and owner["host"] == socket.gethostname()
    return folder


def _owned_folder(root: Path, name: str, owner: dict) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "c").mkdir()
    (folder / "c" / "0").write_bytes(b"\0" * 1000)
    (folder / OWNER_FILE).write_text(json.dumps(owner))
    return folder


def test_only_folders_of_dead_processes_of_this_host_are_removed(tmp_path, monkeypatch, caplog):
    root = tmp_path / "scratch"
    monkeypatch.setenv(SCRATCH_ENV, str(root))
    live = ScratchArray((4, 4), np.uint8, (2, 2), "live")  # this process's, in use
    killed = _killed_child_folder(root)
    dead_owner = json.loads((killed / OWNER_FILE).read_text())
    other_host = _owned_folder(
        root, "fbias-scratch-other-host", {**dead_owner, "host": "node-17.cluster"}
    )
    unowned = root / "fbias-scratch-being-created"  # no owner file (yet, or an older version)
    unowned.mkdir()
    (unowned / "zarr.json").write_text("{}")
    elsewhere = _owned_folder(tmp_path, "elsewhere", dead_owner)  # stale, but reached by a link
    (root / "fbias-scratch-link").symlink_to(elsewhere, target_is_directory=True)
    (root / "fbias-scratch-file").write_text(json.dumps(dead_owner))
    not_ours = _owned_folder(root, "results", dead_owner)

    with caplog.at_level(logging.INFO, logger="napari_fbias.io.stale_scratch"):
        removed = remove_stale_scratch(root)

    assert removed == [killed]
    assert not killed.exists()
    assert "removed 1 scratch folder(s)" in caplog.text and "MB freed" in caplog.text
    for kept in (Path(live.path), other_host, unowned, elsewhere / "c" / "0", not_ours):
        assert kept.exists(), kept
    assert (root / "fbias-scratch-link").is_symlink()
    assert (root / "fbias-scratch-file").is_file()
    np.testing.assert_array_equal(live[:], np.zeros((4, 4), np.uint8))
    assert remove_stale_scratch(root) == []


def test_the_next_process_to_make_a_scratch_array_there_removes_them(tmp_path):
    root = tmp_path / "scratch"
    killed = _killed_child_folder(root)
    proc = _child(root, "next", wait=False)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert Path(out.strip()).parent == root
    assert not killed.exists()
    assert list(root.iterdir()) == []  # the next process's own folder went at its exit


def test_a_process_id_reused_by_another_process_is_stale(tmp_path, monkeypatch):
    root = tmp_path / "scratch"
    monkeypatch.setenv(SCRATCH_ENV, str(root))
    mine = ScratchArray((4, 4), np.uint8, (2, 2), "mine")
    before_reuse = ScratchArray((4, 4), np.uint8, (2, 2), "reused")
    marker = Path(before_reuse.path) / OWNER_FILE
    owner = json.loads(marker.read_text())
    assert set(owner) == {"host", "pid_namespace", "pid", "clock", "started"}
    assert owner["pid"] == os.getpid() and owner["started"] is not None
    # this host, a live process id, but that process started at another time
    marker.write_text(json.dumps({**owner, "started": owner["started"] - 1000}))

    assert remove_stale_scratch(root) == [Path(before_reuse.path)]
    assert Path(mine.path).is_dir()


def test_a_folder_that_cannot_be_removed_is_named_and_the_others_go(tmp_path, monkeypatch, caplog):
    # as root here, a real permission error cannot be made: shutil.rmtree is made to refuse
    # one folder (what another user's files in it, or a read-only mount, do)
    import shutil

    from napari_fbias.io import stale_scratch

    root = tmp_path / "scratch"
    first = _killed_child_folder(root)
    second = root / "fbias-scratch-killed-too"  # the same dead owner
    shutil.copytree(first, second)
    real = shutil.rmtree

    def refuse(path, *a, **k):
        if Path(path) == first:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, *a, **k)

    monkeypatch.setattr(stale_scratch.shutil, "rmtree", refuse)
    with caplog.at_level(logging.WARNING, logger="napari_fbias.io.stale_scratch"):
        assert remove_stale_scratch(root) == [second]
    assert first.is_dir() and not second.exists()
    assert f"could not remove the stale scratch folder {first}" in caplog.text
    assert "Permission denied" in caplog.text
