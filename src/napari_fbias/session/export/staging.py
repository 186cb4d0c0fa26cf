"""Temporary folders of exports in progress, and those left behind by killed ones.

A bundle is built in a temporary sibling of its destination
(``.<name>.tmp-XXXX``, :func:`napari_fbias.io.atomic.atomic_dir`) and renamed
into place. A process killed meanwhile cannot remove it; the next export to
the same parent folder does, safely:

* only a folder that is **ours**: a real folder (not a link) named
  ``.<name>.tmp-<suffix>`` holding the owner file :data:`OWNER_FILE` this
  module writes first (:func:`claim`), which names the program, host and
  process;
* only when it is **abandoned**: its process is gone (same host), or it is
  older than :data:`ABANDONED_AFTER_S` (another host, or a process id that
  was reused).

The owner file is removed (:func:`release`) before the folder is renamed
into place, and is never part of a bundle. The zip being written beside it
uses the same suffix (:func:`zip_tmp_path`), so it goes with it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
from pathlib import Path

#: The owner file inside a bundle's temporary folder.
OWNER_FILE = ".napari-fbias-export-owner.json"
#: A temporary folder older than this (seconds) is abandoned whoever made it.
ABANDONED_AFTER_S = 24 * 3600
_MAGIC = "napari-fbias export in progress"


def claim(tmp: Path) -> None:
    """Write the owner file into the temporary folder ``tmp`` of an export."""
    owner = {"what": _MAGIC, "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
    (tmp / OWNER_FILE).write_text(json.dumps(owner), encoding="utf-8")


def release(tmp: Path) -> None:
    """Remove the owner file (just before ``tmp`` becomes the bundle)."""
    (tmp / OWNER_FILE).unlink(missing_ok=True)


def zip_tmp_path(tmp: Path, zip_path: Path) -> Path:
    """Return the temporary name of the zip written while ``tmp`` is being built."""
    suffix = tmp.name.rsplit(".tmp-", 1)[-1]
    return zip_path.with_name(f".{zip_path.name}.tmp-{suffix}")


def _alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would interrupt it there: trust the age only
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def _owner(folder: Path) -> dict[str, object] | None:
    """Return the owner record of a temporary export folder, or None when it is not ours."""
    marker = folder / OWNER_FILE
    try:
        if marker.is_symlink() or not marker.is_file() or marker.stat().st_size > 4096:
            return None
        owner = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) and owner.get("what") == _MAGIC else None


def is_abandoned(folder: Path, *, now: float | None = None) -> bool:
    """Tell whether ``folder`` is the temporary folder of an export that will never finish."""
    if folder.is_symlink() or not folder.is_dir() or ".tmp-" not in folder.name:
        return False
    owner = _owner(folder)
    if owner is None:
        return False
    now = time.time() if now is None else now
    started = owner.get("time")
    if isinstance(started, (int, float)) and now - started > ABANDONED_AFTER_S:
        return True
    pid = owner.get("pid")
    same_host = owner.get("host") == socket.gethostname()
    return same_host and isinstance(pid, int) and pid > 0 and not _alive(pid)


def remove_abandoned(parent: Path) -> list[str]:
    """Remove abandoned export folders (and their zips) in ``parent``; return their names."""
    removed = []
    try:
        candidates = [p for p in parent.iterdir() if p.name.startswith(".") and ".tmp-" in p.name]
    except OSError:
        return []
    for folder in candidates:
        if not is_abandoned(folder):
            continue
        suffix = folder.name.rsplit(".tmp-", 1)[-1]
        shutil.rmtree(folder, ignore_errors=True)
        for z in parent.glob(f".*.zip.tmp-{suffix}"):
            if z.is_file() and not z.is_symlink():
                z.unlink(missing_ok=True)
        removed.append(folder.name)
    return removed
