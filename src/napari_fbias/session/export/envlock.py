"""The environment lock of a bundle (``requirements.lock.txt``).

Exact versions (``name==version``) of napari-fbias and every distribution it
depends on, directly or not, as installed here (read from
:mod:`importlib.metadata`; nothing is downloaded). Distributions installed
from a local folder or in editable mode cannot be installed by pip from an
index: they are left out, with a comment saying so. A local version label
(``2.3.0+cpu``) is dropped for the same reason, also with a comment.

napari-fbias itself, when the bundle carries its wheel (:mod:`.wheel`), is
the line ``file:wheels/napari_fbias-<version>-py3-none-any.whl#sha256=<hex>``:
pip installs it from the bundle (paths are relative to the folder pip runs
in: the bundle's) and checks its SHA-256 first, without turning on pip's
hash-checking mode for the other lines.
"""

from __future__ import annotations

import platform
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, distribution

from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

from napari_fbias.session.export.wheel import BundledWheel, is_local

ROOT_DISTRIBUTION = "napari-fbias"


@dataclass(frozen=True)
class LockEntry:
    """One installed distribution of the closure.

    Attributes
    ----------
    name : str
        Canonical name.
    version : str
        Installed version.
    pinned : str or None
        The ``name==version`` line, or None when pip cannot install it from an index.
    note : str
        Why it is left out or changed.
    """

    name: str
    version: str
    pinned: str | None
    note: str = ""


def _entry(dist: Distribution) -> LockEntry:
    name = canonicalize_name(dist.metadata["Name"])
    ver = dist.version
    if is_local(dist):
        return LockEntry(
            name,
            ver,
            None,
            f"{name} {ver} is installed from a local folder here, so it is not pinned; "
            "install that version from where it came from",
        )
    try:
        parsed = Version(ver)
    except InvalidVersion:
        return LockEntry(name, ver, None, f"{name} has the version {ver!r}, which pip cannot pin")
    if parsed.local is not None:
        public = parsed.public
        return LockEntry(
            name,
            ver,
            f"{name}=={public}",
            f"{name}: installed {ver}; the local label '+{parsed.local}' is dropped",
        )
    return LockEntry(name, ver, f"{name}=={ver}")


def _requirements(dist: Distribution, extras: Iterable[str]) -> list[Requirement]:
    out = []
    extras = set(extras) or {""}
    for text in dist.requires or ():
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if req.marker is not None and not any(_evaluate(req.marker, extra) for extra in extras):
            continue
        out.append(req)
    return out


def _evaluate(marker: Marker, extra: str) -> bool:
    try:
        return bool(marker.evaluate({"extra": extra}))
    except Exception:  # an unknown marker variable: leave the requirement out
        return False


def dependency_closure(
    root: str = ROOT_DISTRIBUTION, extras: Iterable[str] = ()
) -> list[LockEntry]:
    """Every installed distribution ``root`` needs, directly or not (``root`` first).

    Parameters
    ----------
    root : str
        The distribution to start from.
    extras : iterable of str
        Extras of ``root`` to include (e.g. ``("s3",)``).

    Raises
    ------
    PackageNotFoundError
        When ``root`` is not installed.
    """
    start = distribution(root)
    todo: list[tuple[Distribution, set[str]]] = [(start, set(extras))]
    seen: dict[str, set[str]] = {}
    order: list[Distribution] = []
    while todo:
        dist, wanted = todo.pop(0)
        name = canonicalize_name(dist.metadata["Name"])
        if name in seen and wanted <= seen[name]:
            continue
        if name not in seen:
            order.append(dist)
        seen.setdefault(name, set()).update(wanted)
        for req in _requirements(dist, wanted):
            try:
                dep = distribution(req.name)
            except PackageNotFoundError:
                continue
            todo.append((dep, set(req.extras)))
    first, rest = order[0], order[1:]
    rest.sort(key=lambda d: canonicalize_name(d.metadata["Name"]))
    return [_entry(d) for d in [first, *rest]]


def made_with() -> str:
    """Return the Python and platform a lock is made on: ``Python 3.11.7 on linux (x86_64)``."""
    return f"Python {platform.python_version()} on {sys.platform} ({platform.machine()})"


def extra_requirements(extra: str, root: str = ROOT_DISTRIBUTION) -> list[str]:
    """Return the requirements an extra of an installed distribution adds.

    ``extra_requirements("qt")`` -> ``["PyQt6>=6.5"]``; empty when the
    distribution or the extra is not known here.
    """
    try:
        requires = distribution(root).requires or ()
    except PackageNotFoundError:
        return []
    out = []
    for text in requires:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            continue
        if (
            req.marker is not None
            and _evaluate(req.marker, extra)
            and not _evaluate(req.marker, "")
        ):
            req.marker = None
            out.append(str(req))
    return out


def lock_text(
    root: str = ROOT_DISTRIBUTION, extras: Iterable[str] = (), wheel: BundledWheel | None = None
) -> str:
    """Return the text of ``requirements.lock.txt`` for this environment.

    Every line that is not a comment is a requirement ``name==version``
    (``pip install -r requirements.lock.txt`` reads it), except ``root``'s
    when its wheel is in the bundle: ``file:<path in the bundle>#sha256=<hex>``.

    Parameters
    ----------
    root : str
        The distribution to start from.
    extras : iterable of str
        Extras of ``root`` to include.
    wheel : BundledWheel, optional
        The wheel of ``root`` shipped in the bundle.
    """
    entries = dependency_closure(root, extras)
    if wheel is not None:
        entries[0] = LockEntry(
            entries[0].name,
            wheel.version,
            wheel.requirement,
            f"{root} {wheel.version} is the wheel in this bundle, {wheel.bundle_path} "
            f"({wheel.origin}); pip checks the SHA-256 written on its line.",
        )
    where = " (in the bundle's folder)" if wheel is not None else ""
    lines = [
        f"# Exact versions of {root} and everything it depends on, as installed when",
        f"# this bundle was made. Install them{where} with:",
        "#     pip install -r requirements.lock.txt",
        f"# {made_with()}.",
    ]
    notes = [e.note for e in entries if e.note]
    if notes:
        lines.append("#")
        lines += [f"# {_one_line(n)}" for n in notes]
    lines.append("")
    first, rest = entries[0], sorted(entries[1:], key=lambda e: e.name)
    lines += [e.pinned for e in [first, *rest] if e.pinned]
    return "\n".join(lines) + "\n"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()
