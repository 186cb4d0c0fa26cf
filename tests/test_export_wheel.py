"""napari-fbias itself in the bundle: its wheel, built once per source, installable as received.

The last test is the user's view: export a bundle, make a fresh virtual
environment where napari-fbias cannot be imported, install from the bundle
exactly as its README says (with pip forbidden to reach any index), and run
the bundle's script on the sample image: the labels must be those of the
session's pipeline.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from importlib.metadata import PathDistribution
from pathlib import Path

import pytest

from napari_fbias import __version__
from napari_fbias.io.open import open_image
from napari_fbias.io.samples import sample_path
from napari_fbias.pipeline import Pipeline
from napari_fbias.session import SessionRecorder
from napari_fbias.session.export import export_bundle
from napari_fbias.session.export import wheel as wheel_mod
from napari_fbias.session.export.readme import install_lines
from napari_fbias.session.export.verify import compare_folder
from napari_fbias.session.export.wheel import (
    PackageSource,
    built_wheel,
    installed_wheel,
    is_wheel_of,
    matches_installed,
    package_source,
    sha256_file,
    source_hash,
)

WHEEL = f"napari_fbias-{__version__}-py3-none-any.whl"


def tiny_project(root: Path, version: str = "9.9.0") -> Path:
    """A minimal napari-fbias source tree (hatchling, src layout)."""
    (root / "src" / "napari_fbias").mkdir(parents=True)
    (root / "pyproject.toml").write_text(
        "[build-system]\n"
        'requires = ["hatchling"]\n'
        'build-backend = "hatchling.build"\n\n'
        "[project]\n"
        'name = "napari-fbias"\n'
        f'version = "{version}"\n'
        'requires-python = ">=3.10"\n\n'
        "[tool.hatch.build.targets.wheel]\n"
        'packages = ["src/napari_fbias"]\n'
    )
    (root / "src" / "napari_fbias" / "__init__.py").write_text(f'__version__ = "{version}"\n')
    return root


@pytest.fixture
def counted_builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    calls: list[Path] = []
    real = wheel_mod._hatchling_build

    def build(root: Path, out: Path) -> Path:
        calls.append(root)
        return real(root, out)

    monkeypatch.setattr(wheel_mod, "_hatchling_build", build)
    return calls


def test_the_wheel_is_built_once_per_version_and_source(
    tmp_path: Path, counted_builds: list[Path]
) -> None:
    root = tiny_project(tmp_path / "proj")
    cache = tmp_path / "cache"
    first = built_wheel(root, "9.9.0", cache)
    assert first.path.name == "napari_fbias-9.9.0-py3-none-any.whl"
    assert is_wheel_of(first.path, "9.9.0") and first.sha256 == sha256_file(first.path)
    again = built_wheel(root, "9.9.0", cache)
    assert again == first and len(counted_builds) == 1  # from the cache
    # a compiled file is not a source change; an edit is
    (root / "src" / "napari_fbias" / "__pycache__").mkdir()
    (root / "src" / "napari_fbias" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    assert built_wheel(root, "9.9.0", cache) == first and len(counted_builds) == 1
    (root / "src" / "napari_fbias" / "more.py").write_text("X = 1\n")
    changed = built_wheel(root, "9.9.0", cache)
    assert len(counted_builds) == 2 and changed.path.parent != first.path.parent
    with zipfile.ZipFile(changed.path) as zf:
        assert "napari_fbias/more.py" in zf.namelist()
    assert first.path.is_file()  # the other source's wheel stays cached
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]


def test_the_same_source_gives_the_same_wheel(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "proj")
    a = built_wheel(root, "9.9.0", tmp_path / "c1")
    b = built_wheel(root, "9.9.0", tmp_path / "c2")
    assert a.sha256 == b.sha256  # reproducible: the lock's hash does not depend on when


def test_source_hash_follows_the_package(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "proj")
    before = source_hash(root)
    (root / "notes.txt").write_text("not in the wheel")
    assert source_hash(root) == before
    (root / "pyproject.toml").write_text((root / "pyproject.toml").read_text() + "\n# x\n")
    assert source_hash(root) != before


def test_this_checkout_gives_its_wheel(tmp_path: Path) -> None:
    source = package_source(cache=tmp_path / "cache")
    assert source.wheel is not None, source.why
    assert source.wheel.path.name == WHEEL and source.wheel.version == __version__
    with zipfile.ZipFile(source.wheel.path) as zf:
        names = set(zf.namelist())
        entry_points = zf.read(f"napari_fbias-{__version__}.dist-info/entry_points.txt").decode()
    assert {"napari_fbias/__init__.py", "napari_fbias/napari.yaml"} <= names
    assert any(n.startswith("napari_fbias/sample_data/") for n in names)
    assert "fbias = napari_fbias.cli:main" in entry_points
    assert source.wheel.requirement == f"file:wheels/{WHEEL}#sha256={source.wheel.sha256}"


def _install_target(wheel: Path, target: Path) -> PathDistribution:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--disable-pip-version-check",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    (info,) = target.glob("napari_fbias-*.dist-info")
    return PathDistribution(info)


def test_an_installed_wheel_is_found_and_checked(tmp_path: Path) -> None:
    root = tiny_project(tmp_path / "proj")
    made = built_wheel(root, "9.9.0", tmp_path / "cache")
    local = tmp_path / "downloads" / made.path.name
    local.parent.mkdir()
    shutil.copy(made.path, local)
    dist = _install_target(local, tmp_path / "site")
    assert dist.version == "9.9.0"
    # the file pip recorded in direct_url.json
    found = installed_wheel(dist, folders=[tmp_path / "nowhere"])
    assert found is not None and found.path == local and found.sha256 == made.sha256
    # moved: found in a wheel folder, by the files it holds
    moved = tmp_path / "wheelhouse" / "x" / local.name
    moved.parent.mkdir(parents=True)
    local.rename(moved)
    found = installed_wheel(dist, folders=[tmp_path / "wheelhouse"])
    assert found is not None and found.path == moved
    # a wheel of the same name holding other files is not it
    other_root = tiny_project(tmp_path / "other")
    (other_root / "src" / "napari_fbias" / "extra.py").write_text("Y = 2\n")
    other = built_wheel(other_root, "9.9.0", tmp_path / "cache2")
    assert not matches_installed(other.path, dist)
    moved.unlink()
    shutil.copy(other.path, moved)
    assert installed_wheel(dist, folders=[tmp_path / "wheelhouse"]) is None


def test_readme_without_a_wheel_gives_no_command_that_cannot_work() -> None:
    text = "\n".join(install_lines(PackageSource("1.2.3", why="it runs from a checkout")))
    assert "does not contain napari-fbias 1.2.3 itself" in text
    assert "it runs from a checkout" in text
    assert 'pip install "napari-fbias==' not in text
    assert "pip install wheels/napari_fbias-1.2.3-py3-none-any.whl -r requirements.lock.txt" in (
        text
    )
    published = "\n".join(install_lines(PackageSource("1.2.3", from_index=True)))
    assert "pip install -r requirements.lock.txt" in published
    assert "wheels/" not in published


def record(folder: Path) -> SessionRecorder:
    rec = SessionRecorder.start("wheel", analysts=["Jean"], folder=folder, fsync=False)
    name = rec.add_image(open_image(sample_image()))
    rec.add_approach("recipe", "Jean")
    rec.record_step("segment.nuclei", {}, {"image": name}, "A: nuclei")
    rec.close()
    return rec


def sample_image() -> Path:
    return sample_path("nuclei_batch") / "nuclei_01.ome.tif"


def test_export_without_a_wheel_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(root: Path, out: Path) -> Path:
        raise wheel_mod.WheelError("hatchling is not installed here")

    monkeypatch.setenv("FBIAS_WHEEL_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(wheel_mod, "_hatchling_build", broken)
    rec = record(tmp_path / "s")
    result = export_bundle(rec.folder, tmp_path / "out", figures=False)
    assert not any(f.startswith("wheels/") for f in result.files)
    assert any("is not in the bundle" in n and "hatchling" in n for n in result.notes)
    readme = (result.folder / "README.md").read_text()
    assert f"does not contain napari-fbias {__version__} itself" in readme
    assert f"pip install wheels/{WHEEL} -r requirements.lock.txt" in readme
    lock = (result.folder / "requirements.lock.txt").read_text()
    assert "file:" not in lock


# --- the user's view ---------------------------------------------------------------------
def _fresh_env(root: Path) -> Path:
    """A new virtual environment that sees this one's packages, except napari-fbias.

    The project's dependencies live in its own virtual environment, not in
    the system's site-packages, so ``--system-site-packages`` would not see
    them: the new environment gets a folder of links to every entry of this
    one's site-packages but napari-fbias's (its dist-info and its editable
    hook), added as a site folder. pip sees those packages as installed and
    needs no index.
    """
    here = Path(sysconfig.get_paths()["purelib"])
    view = root / "site-view"
    view.mkdir(parents=True)
    for entry in here.iterdir():
        if "napari_fbias" in entry.name.lower():
            continue
        (view / entry.name).symlink_to(entry)
    env = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(purelib) / "zz_site_view.pth").write_text(
        f"import site; site.addsitedir({str(view)!r})\n"
    )
    return python


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PIP_"))}
    env.update(
        PIP_NO_INDEX="1",  # nothing may be downloaded: the bundle must be enough
        PIP_DISABLE_PIP_VERSION_CHECK="1",
        PIP_CONFIG_FILE=os.devnull,
        PIP_NO_CACHE_DIR="1",
    )
    return env


def _readme_pip_commands(readme: str) -> list[str]:
    """The ``pip install`` lines of the README's first install block."""
    section = readme.split("## Install", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("pip ")]


def test_a_fresh_environment_installs_the_bundle_and_reruns_it(tmp_path: Path) -> None:
    rec = record(tmp_path / "s")
    bundle = export_bundle(rec.folder, tmp_path / "bundle", figures=False).folder
    python = _fresh_env(tmp_path / "env")
    env = _clean_env()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(python), *args], cwd=bundle, env=env, capture_output=True, text=True, timeout=600
        )

    assert run("-c", "import numpy, skimage, dask").returncode == 0
    before = run("-c", "import napari_fbias")
    assert before.returncode != 0 and "No module named 'napari_fbias'" in before.stderr
    commands = _readme_pip_commands((bundle / "README.md").read_text())
    assert commands == ["pip install -r requirements.lock.txt"]
    for command in commands:
        done = run("-m", *shlex.split(command))
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert f"Successfully installed napari-fbias-{__version__}" in done.stdout
    where = run("-c", "import napari_fbias; print(napari_fbias.__file__)")
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(tmp_path / "env" / "venv")
    # the bundle's script, on the sample image, as the README says
    out = tmp_path / "results"
    done = run("run_pipeline.py", str(sample_image()), "-o", str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    results = Pipeline.load(bundle / "pipeline.fbias.yaml").run(open_image(sample_image()))
    expected = {name: results.value(name) for name in results}
    assert expected and compare_folder(expected, out / "nuclei_01") == []


def test_a_tampered_wheel_is_refused(tmp_path: Path) -> None:
    rec = record(tmp_path / "s")
    bundle = export_bundle(rec.folder, tmp_path / "bundle", figures=False).folder
    wheel = bundle / "wheels" / WHEEL
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr("napari_fbias/evil.py", "print('hello')\n")
    python = _fresh_env(tmp_path / "env")
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-r", "requirements.lock.txt"],
        cwd=bundle,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in done.stdout + done.stderr
