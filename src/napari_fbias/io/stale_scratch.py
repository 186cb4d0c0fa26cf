"""Scratch folders left by killed processes: owner files, and their removal.

A process killed outright (SIGKILL, the OOM killer) cannot remove its scratch
folders (:mod:`napari_fbias.io.scratch`). Each folder therefore holds an owner
file (:data:`OWNER_FILE`: host, PID namespace, process id and the process's
start time), and the first scratch array a process creates under a root
removes that root's ``fbias-scratch-*`` folders left by processes of this
host that no longer run (:func:`remove_stale_scratch`). A process id that
runs again with another start time is a reused id: its folder is stale too.
Folders of other hosts (a shared ``FBIAS_SCRATCH``), of running processes and
without a readable owner file (older versions, or one being created) are
left alone.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
from pathlib import Path

__all__ = ["OWNER_FILE", "PREFIX", "clean_once", "remove_stale_scratch", "write_owner"]

#: The file in each scratch folder naming the process that owns it.
OWNER_FILE = ".fbias-owner.json"
#: The name every scratch folder starts with.
PREFIX = "fbias-scratch-"

_log = logging.getLogger(__name__)
_cleaned_roots: set[str] = set()  # roots this process has cleaned (once each)
_cleaning = threading.Lock()


def _pid_namespace() -> str | None:
    """Return this process's PID namespace (Linux; containers on one host differ), or None."""
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _process_start(pid: int) -> tuple[str, float] | None:
    """Return (clock, start time) of process ``pid``, or None when it is unknown.

    On Linux the start time is field 22 of ``/proc/PID/stat``: clock ticks
    since boot, exact and untouched by changes of the wall clock; elsewhere
    psutil's ``create_time`` (seconds since the epoch), when installed.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # field 2, the command name, may hold spaces and ')': count from the last ')'
        return "proc-ticks", float(stat.rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        pass
    try:
        import psutil

        return "psutil", float(psutil.Process(pid).create_time())
    except Exception:  # not installed, no such process, access denied
        return None


def write_owner(folder: Path) -> None:
    """Write the owner file of a new scratch folder (in full, then renamed into place)."""
    start = _process_start(os.getpid())
    owner = {
        "host": socket.gethostname(),
        "pid_namespace": _pid_namespace(),
        "pid": os.getpid(),
        "clock": start[0] if start else None,
        "started": start[1] if start else None,
    }
    tmp = folder / f"{OWNER_FILE}.tmp"
    tmp.write_text(json.dumps(owner), encoding="utf-8")
    os.replace(tmp, folder / OWNER_FILE)


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would end it there
        try:
            import psutil

            return bool(psutil.pid_exists(pid))
        except ImportError:
            return True  # cannot tell: keep its folder
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _is_stale(folder: Path) -> bool:
    """Tell whether ``folder`` was made on this host by a process that no longer runs."""
    try:
        marker = folder / OWNER_FILE
        if marker.is_symlink() or marker.stat().st_size > 4096:
            return False
        owner = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # no owner file (yet), or not readable: not ours to judge
        return False
    if not isinstance(owner, dict) or owner.get("host") != socket.gethostname():
        return False
    if owner.get("pid_namespace") != _pid_namespace():  # another container of this host
        return False
    pid = owner.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if not _process_alive(pid):
        return True
    recorded, now = owner.get("started"), _process_start(pid)
    if not isinstance(recorded, (int, float)) or now is None or now[0] != owner.get("clock"):
        return False  # running, and no start time to compare: keep it
    return abs(now[1] - recorded) >= 1.0  # another start (over a tick, or a second): a reused id


def _tree_size(folder: Path) -> int:
    total = 0
    for parent, _dirs, names in os.walk(folder):  # does not follow links
        for name in names:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except OSError:
                pass
    return total


def remove_stale_scratch(root: Path) -> list[Path]:
    """Remove the scratch folders under ``root`` left by processes of this host that died.

    Only ``fbias-scratch-*`` folders directly under ``root`` whose owner file
    names this host and a process that no longer runs (or a reused process
    id) are removed; links are never followed. A folder that cannot be
    removed is logged and skipped.

    Returns
    -------
    list of Path
        The folders removed.
    """
    root = Path(root)
    try:
        candidates = sorted(p for p in root.iterdir() if p.name.startswith(PREFIX))
    except OSError:
        return []
    removed: list[Path] = []
    freed = 0
    for folder in candidates:
        if folder.is_symlink() or not folder.is_dir() or not _is_stale(folder):
            continue
        size = _tree_size(folder)
        try:
            shutil.rmtree(folder)
        except FileNotFoundError:  # removed meanwhile (another process cleaning too)
            continue
        except OSError as exc:
            _log.warning("could not remove the stale scratch folder %s: %s", folder, exc)
            continue
        removed.append(folder)
        freed += size
    if removed:
        _log.info(
            "removed %d scratch folder(s) left by processes that died under %s (%.1f MB freed)",
            len(removed),
            root,
            freed / 1e6,
        )
    return removed


def clean_once(root: Path) -> None:
    """Run :func:`remove_stale_scratch` on ``root`` the first time this process uses it."""
    with _cleaning:
        key = str(root.absolute())
        if key in _cleaned_roots:
            return
        _cleaned_roots.add(key)
        try:
            remove_stale_scratch(root)
        except Exception as exc:  # cleaning must never stop a run
            _log.warning("could not look for stale scratch folders under %s: %s", root, exc)
