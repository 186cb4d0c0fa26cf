"""napari-fbias itself in the bundle, so that a bundle installs as received.

The lock of a bundle pins every dependency from the package index, but the
napari-fbias that made the bundle may exist nowhere else (a source checkout,
a version not published yet). So the bundle carries the wheel of the exact
napari-fbias that is running, as ``wheels/napari_fbias-<version>-py3-none-any.whl``,
and ``requirements.lock.txt`` names it with its SHA-256 (a line
``file:wheels/...whl#sha256=...``, which pip checks before installing).

Where the wheel comes from (:func:`package_source`), in this order:

1. The running package lives in a source tree (``<root>/src/napari_fbias``
   next to ``<root>/pyproject.toml``): the wheel is built from that tree with
   hatchling's API (offline, no build isolation, reproducible: the same
   sources give the same bytes) and cached per version and source hash
   (:func:`source_hash`) in ``$FBIAS_WHEEL_CACHE`` (default
   ``~/.cache/napari-fbias/wheels``), so an export does not rebuild it.
2. Otherwise, the wheel it was installed from, if it can be found (the file
   pip recorded in ``direct_url.json``, the wheel cache, pip's wheel cache)
   and holds exactly the installed files (same ``RECORD`` hashes).
3. Otherwise nothing is bundled: a copy installed from a package index is
   pinned ``napari-fbias==<version>`` like any other package, and for any
   other copy the README says why the bundle holds no napari-fbias and how
   to install it.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import Distribution, PackageNotFoundError, distribution
from pathlib import Path
from urllib.parse import unquote, urlsplit

from packaging.utils import canonicalize_name

DIST = "napari-fbias"
PACKAGE = "napari_fbias"
#: The folder of the bundle holding the wheel.
WHEELS_DIR = "wheels"
#: Environment variable naming the wheel cache (also used by scripts/build_omero_wheels.sh).
CACHE_ENV = "FBIAS_WHEEL_CACHE"
#: Files of a source tree besides the package that change what a wheel holds.
_TREE_FILES = ("pyproject.toml", "README.md")
_LICENSE = re.compile(r"^(LICEN[CS]E|COPYING|NOTICE|AUTHORS)", re.IGNORECASE)
#: A build folder left by a killed export is removed after this many seconds.
_STALE_BUILD_S = 24 * 3600
#: Wheels of this many source versions are kept in the cache (more, if used in the last day).
KEEP_BUILDS = 5


class WheelError(Exception):
    """The wheel of napari-fbias could not be built or is not what it should be."""


def direct_url_info(dist: Distribution) -> dict | None:
    """Return what pip recorded about where a distribution came from (``direct_url.json``)."""
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
    info = direct_url_info(dist)
    if info is None:
        return False
    return "dir_info" in info or "vcs_info" in info


@dataclass(frozen=True)
class BundledWheel:
    """The wheel of the running napari-fbias, to copy into a bundle.

    Attributes
    ----------
    path : Path
        Where the wheel is now (the cache, or where it was found).
    version : str
        Its version (that of the running napari-fbias).
    sha256 : str
        SHA-256 of the file (hex).
    origin : str
        How it was obtained, one sentence (for the README).
    """

    path: Path
    version: str
    sha256: str
    origin: str

    @property
    def bundle_path(self) -> str:
        """Return its path in the bundle (``wheels/<file name>``)."""
        return f"{WHEELS_DIR}/{self.path.name}"

    @property
    def requirement(self) -> str:
        """Return its line in ``requirements.lock.txt`` (relative to the bundle, with the hash)."""
        return f"file:{self.bundle_path}#sha256={self.sha256}"


@dataclass(frozen=True)
class PackageSource:
    """How a bundle's user gets the napari-fbias that made it.

    Attributes
    ----------
    version : str
        The running napari-fbias version.
    wheel : BundledWheel or None
        The wheel to ship in the bundle.
    from_index : bool
        No wheel, but it was installed from a package index: it is pinned
        ``napari-fbias==<version>`` in the lock.
    why : str
        Without wheel nor index: why (for the README).
    """

    version: str
    wheel: BundledWheel | None = None
    from_index: bool = False
    why: str = ""

    @property
    def wheel_name(self) -> str:
        """Return the file name of the wheel of this version."""
        return wheel_file_name(self.version)


def wheel_file_name(version: str) -> str:
    """Return the file name of the pure-Python wheel of a napari-fbias version."""
    from packaging.version import InvalidVersion, Version

    try:
        version = str(Version(version))
    except InvalidVersion:
        pass
    return f"{PACKAGE}-{version.replace('-', '_')}-py3-none-any.whl"


def sha256_file(path: Path) -> str:
    """Return the SHA-256 (hex) of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cache_root() -> Path:
    """Return the wheel cache: ``$FBIAS_WHEEL_CACHE``, or ``~/.cache/napari-fbias/wheels``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "napari-fbias" / "wheels"


# --- a source tree ---------------------------------------------------------------------
def source_tree() -> Path | None:
    """Return the source tree the running napari-fbias is imported from, or None.

    That is the folder holding ``pyproject.toml`` (of napari-fbias) and
    ``src/napari_fbias``, the package being run (an editable install, or
    ``src`` on the path).
    """
    import napari_fbias

    package = Path(napari_fbias.__file__).resolve().parent
    root = package.parent.parent
    if package.parent.name != "src" or not (root / "pyproject.toml").is_file():
        return None
    text = (root / "pyproject.toml").read_text(encoding="utf-8", errors="replace")
    if not re.search(r'(?m)^name\s*=\s*["\']napari[-_.]fbias["\']\s*$', text):
        return None
    return root


def _tree_files(root: Path) -> Iterator[tuple[str, Path]]:
    for name in _TREE_FILES:
        if (root / name).is_file():
            yield name, root / name
    for p in sorted(root.iterdir()):
        if p.is_file() and _LICENSE.match(p.name):
            yield p.name, p
    package = root / "src" / PACKAGE
    for folder, dirs, files in os.walk(package, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__" and not d.startswith("."))
        for f in sorted(files):
            if f.endswith((".pyc", ".pyo")) or f.startswith("."):
                continue
            path = Path(folder) / f
            yield path.relative_to(root).as_posix(), path


def source_hash(root: Path) -> str:
    """Return the SHA-256 (hex) of what a wheel built from a source tree holds.

    Covers the package folder (symbolic links followed, ``__pycache__`` and
    hidden files left out), ``pyproject.toml``, ``README.md`` and license
    files: names and contents.
    """
    h = hashlib.sha256()
    for rel, path in _tree_files(Path(root)):
        data = path.read_bytes()
        h.update(f"{rel}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def _metadata(wheel: Path) -> tuple[str, str]:
    """Return ``(name, version)`` of a wheel file from its METADATA."""
    with zipfile.ZipFile(wheel) as zf:
        meta = next(
            (n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")),
            None,
        )
        if meta is None:
            raise WheelError(f"{wheel.name} has no METADATA")
        text = zf.read(meta).decode("utf-8", errors="replace")
    fields = dict(re.findall(r"(?m)^(Name|Version): *(.+?)\s*$", text))
    return fields.get("Name", ""), fields.get("Version", "")


def is_wheel_of(wheel: Path, version: str) -> bool:
    """Tell whether a file is a readable wheel of napari-fbias ``version``."""
    try:
        name, ver = _metadata(wheel)
    except (OSError, zipfile.BadZipFile, WheelError):
        return False
    return canonicalize_name(name) == DIST and ver == version


def _hatchling_build(root: Path, out: Path) -> Path:
    try:
        from hatchling.builders.wheel import WheelBuilder
    except ImportError:
        raise WheelError(
            "hatchling is not installed here (pip install hatchling), so it cannot be built"
        ) from None
    built = list(WheelBuilder(str(root)).build(directory=str(out), versions=["standard"]))
    if len(built) != 1:
        raise WheelError(f"hatchling built {len(built)} wheels instead of one")
    return Path(built[0])


def _prune(cache: Path) -> None:
    """Remove build folders of killed exports, and old wheels beyond :data:`KEEP_BUILDS`."""
    now = time.time()
    old = []
    for p in [*cache.glob(f".{PACKAGE}-*.tmp-*"), *cache.glob(f"{PACKAGE}-*-*")]:
        with contextlib.suppress(OSError):  # removed meanwhile by another export
            if p.is_dir():
                old.append((p.stat().st_mtime, p))
    builds = sorted((t, p) for t, p in old if not p.name.startswith("."))
    stale = [p for t, p in old if p.name.startswith(".") and now - t > _STALE_BUILD_S]
    stale += [p for t, p in builds[:-KEEP_BUILDS] if now - t > _STALE_BUILD_S]
    for p in stale:
        shutil.rmtree(p, ignore_errors=True)


def built_wheel(root: Path, version: str, cache: Path | None = None) -> BundledWheel:
    """Return the wheel of a source tree, built once per version and source hash.

    The wheel is built in a temporary folder of the cache and renamed into
    ``<cache>/napari_fbias-<version>-<hash>/`` when complete, so exports
    running at the same time never see half a wheel.

    Raises
    ------
    WheelError
        hatchling is missing, the build failed, or it built another version.
    """
    cache = cache or cache_root()
    key = source_hash(root)[:16]
    folder = cache / f"{PACKAGE}-{version}-{key}"
    origin = f"built from the napari-fbias source tree, source hash {key}"
    found = _cached(folder, version)
    if found is not None:
        with contextlib.suppress(OSError):
            os.utime(folder)  # recently used: kept by _prune
        return BundledWheel(found, version, sha256_file(found), origin)
    cache.mkdir(parents=True, exist_ok=True)
    _prune(cache)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=cache))
    try:
        built = _hatchling_build(root, tmp)
        if not is_wheel_of(built, version):
            raise WheelError(f"the build gave {built.name}, not a wheel of napari-fbias {version}")
        tmp.chmod(0o755)
        try:
            os.rename(tmp, folder)
        except OSError:  # another export finished the same wheel first
            if _cached(folder, version) is None:
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(tmp, folder)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    found = _cached(folder, version)
    if found is None:
        raise WheelError(f"the wheel built in {folder} is gone")
    return BundledWheel(found, version, sha256_file(found), origin)


def _cached(folder: Path, version: str) -> Path | None:
    """Return the wheel of ``version`` in a cache folder, or None."""
    wheels = sorted(folder.glob(f"{PACKAGE}-*.whl")) if folder.is_dir() else []
    return wheels[0] if len(wheels) == 1 and is_wheel_of(wheels[0], version) else None


# --- an installed wheel ------------------------------------------------------------------
def _record_rows(text: str) -> set[tuple[str, str]]:
    """``(path, hash)`` of a RECORD's package files (not dist-info, scripts or unhashed)."""
    rows = set()
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[1]:
            continue
        path = row[0].replace("\\", "/")
        head = path.split("/", 1)[0]
        if path.startswith("..") or head.endswith((".dist-info", ".data")):
            continue
        rows.add((path, row[1]))
    return rows


def matches_installed(wheel: Path, dist: Distribution) -> bool:
    """Tell whether a wheel holds exactly the package files of an installed distribution."""
    installed = _record_rows(dist.read_text("RECORD") or "")
    if not installed:
        return False
    try:
        with zipfile.ZipFile(wheel) as zf:
            record = next(
                (n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/RECORD")),
                None,
            )
            if record is None:
                return False
            text = zf.read(record).decode("utf-8", errors="replace")
    except (OSError, zipfile.BadZipFile):
        return False
    return _record_rows(text) == installed


def _file_url_path(url: str) -> Path | None:
    parts = urlsplit(url)
    if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
        return None
    path = unquote(parts.path)
    if re.match(r"^/[A-Za-z]:", path):  # file:///C:/...
        path = path[1:]
    return Path(path)


def pip_cache() -> Path:
    """Return pip's cache folder (``$PIP_CACHE_DIR`` or the platform's default)."""
    env = os.environ.get("PIP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home())) / "pip" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "pip"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"


def wheel_candidates(dist: Distribution, folders: Iterable[Path] = ()) -> list[Path]:
    """Files that may be the wheel a distribution was installed from, most likely first.

    The file pip recorded in ``direct_url.json``, then wheels of that version
    in ``folders`` (default: the wheel cache and pip's wheel cache).
    """
    out: list[Path] = []
    info = direct_url_info(dist) or {}
    if "archive_info" in info:
        path = _file_url_path(str(info.get("url", "")))
        if path is not None and path.name.endswith(".whl"):
            out.append(path)
    folders = list(folders) or [cache_root(), pip_cache() / "wheels"]
    pattern = f"{PACKAGE}-{dist.version}-*.whl"
    for folder in folders:
        if Path(folder).is_dir():
            out += sorted(Path(folder).rglob(pattern))
    return [p for p in dict.fromkeys(out) if p.is_file()]


def installed_wheel(dist: Distribution, folders: Iterable[Path] = ()) -> BundledWheel | None:
    """Return the wheel an installed napari-fbias came from, if one is found (see above)."""
    for path in wheel_candidates(dist, folders):
        if is_wheel_of(path, dist.version) and matches_installed(path, dist):
            return BundledWheel(
                path,
                dist.version,
                sha256_file(path),
                "copied from the wheel this napari-fbias was installed from",
            )
    return None


def package_source(cache: Path | None = None) -> PackageSource:
    """Return how the running napari-fbias goes with a bundle (see the module's text).

    Never raises: a wheel that cannot be built or found becomes ``why``.
    """
    from napari_fbias import __version__

    try:
        dist: Distribution | None = distribution(DIST)
    except PackageNotFoundError:
        dist = None
    root = source_tree()
    if root is not None:
        try:
            return PackageSource(__version__, wheel=built_wheel(root, __version__, cache))
        except Exception as exc:  # a build problem must not stop the export
            reason = " ".join(str(exc).split()) or type(exc).__name__
            return PackageSource(
                __version__,
                why=f"it runs from a source tree here, but its wheel could not be built ({reason})",
            )
    if dist is not None and dist.version == __version__:
        try:
            found = installed_wheel(dist)
        except OSError:
            found = None
        if found is not None:
            return PackageSource(__version__, wheel=found)
        if not is_local(dist):
            return PackageSource(__version__, from_index=True)
        return PackageSource(
            __version__,
            why=(
                "it was installed here from a local folder or a version-control checkout, "
                "and the wheel it was installed from was not found"
            ),
        )
    return PackageSource(
        __version__, why="it is not installed here as a package and not run from a source tree"
    )
