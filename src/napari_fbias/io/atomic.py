"""Atomic outputs: build next to the destination, then rename into place.

A reader never sees a half-written file or store: everything is written to a
temporary sibling (same directory, hence same file system) and renamed over
the destination only once complete. If anything fails, the temporary sibling
is removed and the destination is left as it was.

Used by the OME-Zarr writer and by the pipeline runner::

    with atomic_dir("out.ome.zarr") as tmp:
        write_everything_into(tmp)
    atomic_write_text("report.md", text)
    with atomic_file("table.csv", text=True) as fh:
        df.to_csv(fh)  # streamed: the text is never held whole
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from napari_fbias.io.errors import OutputExistsError

__all__ = ["atomic_dir", "atomic_file", "atomic_write_bytes", "atomic_write_text"]


def _tmp_prefix(dest: Path) -> str:
    return f".{dest.name}.tmp-"


def _make_tmp_dir(parent: Path, prefix: str) -> Path:
    """Create a new, uniquely named directory in ``parent`` with the usual permissions.

    Unlike :func:`tempfile.mkdtemp` (always ``0700``), the directory gets
    ``0777`` less the umask, like any folder the user makes: results are
    meant to be shared, and the directory keeps these permissions once
    renamed into place.
    """
    for _ in range(100):
        path = parent / f"{prefix}{uuid.uuid4().hex[:12]}"
        try:
            path.mkdir(mode=0o777)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"cannot create a temporary folder in {parent}")  # pragma: no cover


@contextlib.contextmanager
def atomic_dir(dest: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it to ``dest`` on success.

    Parameters
    ----------
    dest : path-like
        Final location of the directory. Its parent must exist.
    overwrite : bool
        Replace an existing ``dest``. The old one is moved aside and deleted
        only after the new one is in place.

    Yields
    ------
    pathlib.Path
        The (existing, empty) temporary directory to fill. It has the
        permissions of any new folder (``0777`` less the umask), and keeps
        them as ``dest``.

    Raises
    ------
    OutputExistsError
        If ``dest`` exists (before or after building) and ``overwrite`` is False.
    FileNotFoundError
        If the parent directory of ``dest`` does not exist.
    """
    dest = Path(dest)
    if dest.exists() and not overwrite:
        raise OutputExistsError(f"{dest} already exists; choose another name or allow overwriting")
    parent = dest.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"cannot write {dest}: folder {parent} does not exist")
    tmp = _make_tmp_dir(parent, _tmp_prefix(dest))
    try:
        yield tmp
        _move_into_place(tmp, dest, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _move_into_place(tmp: Path, dest: Path, *, overwrite: bool) -> None:
    if not dest.exists() and not dest.is_symlink():
        try:
            os.rename(tmp, dest)
            return
        except OSError:
            if not dest.exists():
                raise
            # someone created dest meanwhile: fall through to the checks below
    if not overwrite:
        raise OutputExistsError(f"{dest} appeared while it was being written; nothing replaced")
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    old.rmdir()
    os.rename(dest, old)
    try:
        os.rename(tmp, dest)
    except BaseException:
        os.rename(old, dest)
        raise
    if old.is_dir() and not old.is_symlink():
        shutil.rmtree(old, ignore_errors=True)
    else:
        old.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike[str], *, overwrite: bool = True, text: bool = False
) -> Iterator[IO[Any]]:
    """Open a temporary sibling of ``path`` for writing; put it in place when the block ends.

    For outputs written piece by piece (a large CSV table streamed by pandas):
    nothing of the content is held in memory. The file is fsync'd, gets the
    permissions of the file it replaces (or the umask's), and is renamed over
    ``path``; if the block raises, the sibling is removed and ``path`` is left
    as it was.

    Parameters
    ----------
    path : path-like
        Destination file. Its parent directory must exist.
    overwrite : bool
        Replace an existing file (default). When False, an existing file
        raises :class:`OutputExistsError`, also one that appears meanwhile.
    text : bool
        Yield a UTF-8 text handle (no newline translation) instead of a binary one.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise OutputExistsError(f"{path} already exists; choose another name or allow overwriting")
    fd, tmp_name = tempfile.mkstemp(prefix=_tmp_prefix(path), dir=path.parent)
    try:
        if text:
            fh: IO[Any] = os.fdopen(fd, "w", encoding="utf-8", newline="")
        else:
            fh = os.fdopen(fd, "wb")
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            # keep the permissions of the file being replaced
            shutil.copymode(path, tmp_name)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp_name, 0o666 & ~umask)
        if overwrite:
            os.replace(tmp_name, path)
        else:
            # link() fails if path appeared meanwhile: never clobbers
            try:
                os.link(tmp_name, path)
            except FileExistsError as exc:
                raise OutputExistsError(f"{path} appeared while it was being written") from exc
            os.unlink(tmp_name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def atomic_write_bytes(
    path: str | os.PathLike[str], data: bytes, *, overwrite: bool = True
) -> Path:
    """Write ``data`` to ``path`` atomically (temporary sibling, fsync, rename).

    Parameters
    ----------
    path : path-like
        Destination file. Its parent directory must exist.
    data : bytes
        Full new content.
    overwrite : bool
        Replace an existing file (default). When False, an existing file
        raises :class:`OutputExistsError`.

    Returns
    -------
    pathlib.Path
        The destination path.
    """
    with atomic_file(path, overwrite=overwrite) as fh:
        fh.write(data)
    return Path(path)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8", overwrite: bool = True
) -> Path:
    """Write ``text`` to ``path`` atomically; see :func:`atomic_write_bytes`."""
    return atomic_write_bytes(path, text.encode(encoding), overwrite=overwrite)
