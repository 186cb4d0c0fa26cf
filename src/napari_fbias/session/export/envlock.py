"""The environment lock of a bundle (``requirements.lock.txt``).

Exact versions (``name==version``) of napari-fbias and every distribution it
depends on, directly or not, as installed here (read from
:mod:`importlib.metadata`; nothing is downloaded). Distributions installed
from a local folder or in editable mode cannot be installed by pip from an
index: they are left out, with a comment saying so. A local version label
(``2.3.0+cpu``) is dropped for the same reason, also with a comment.
"""

from __future__ import annotations

import json
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


def _direct_url(dist: Distribution) -> dict | None:
    text = dist.read_text("direct_url.json")
    if not text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def is_local(dist: Distribution) -> bool:
    """Tell whether a distribution was installed from a local folder or a VCS checkout.

    Such a version may exist nowhere else, so it is not pinned. (A wheel or
    sdist installed from a local *file* has an ordinary release version and
    is pinned.)
    """
    info = _direct_url(dist)
    if info is None:
        return False
    return "dir_info" in info or "vcs_info" in info


def _entry(dist: Distribution) -> LockEntry:
    name = canonicalize_name(dist.metadata["Name"])
    ver = dist.version
    if is_local(dist):
        return LockEntry(
            name,
            ver,
            None,
            f"{name} {ver} is installed from a local folder here, so it is not pinned; "
            f"install it with: pip install {name}=={ver}",
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


def lock_text(root: str = ROOT_DISTRIBUTION, extras: Iterable[str] = ()) -> str:
    """Return the text of ``requirements.lock.txt`` for this environment.

    Every line that is not a comment is a requirement ``name==version``
    (``pip install -r requirements.lock.txt`` reads it).
    """
    entries = dependency_closure(root, extras)
    lines = [
        f"# Exact versions of {root} and everything it depends on, as installed when",
        "# this bundle was made. Install them with:",
        "#     pip install -r requirements.lock.txt",
        f"# Python {platform.python_version()} on {sys.platform} ({platform.machine()}).",
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
