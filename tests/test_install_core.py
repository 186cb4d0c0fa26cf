"""``pip install napari-fbias`` is the headless core: no napari, Qt or PyTorch; ``fbias run`` works.

The user's view on a cluster node: build the wheel of this checkout, install it
without extras in a new virtual environment (from the package index, with the
tested versions of requirements/constraints.txt and pip's own configuration
and cache), check that no GUI stack and no PyTorch came with it, and run
``fbias run`` on the bundled samples. What needs an extra says which one.

The installation downloads from the package index (about a minute with a
warm pip cache): set ``FBIAS_OFFLINE=1`` to skip these tests on a machine
without one.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from napari_fbias import api
from napari_fbias.io.ome_zarr_read import read_ome_zarr
from napari_fbias.io.samples import sample_path

ROOT = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("FBIAS_OFFLINE", "") not in ("", "0"),
        reason="FBIAS_OFFLINE is set: installing the core needs the package index",
    ),
]

#: Distributions the base install must not bring: the GUI stack, PyTorch, the other extras.
NOT_IN_CORE = {
    "napari",
    "npe2",
    "magicgui",
    "qtpy",
    "pyqt5",
    "pyqt6",
    "pyside2",
    "pyside6",
    "vispy",
    "superqt",
    "torch",
    "cellpose",
    "s3fs",
    "dask-jobqueue",
    "optuna",
    "omero-py",
}

NUCLEI_PIPELINE = """\
fbias_pipeline: 1
name: core-install
inputs:
  image: {kind: image}
steps:
- id: nuclei
  op: segment.nuclei
  inputs: {image: image}
- id: props
  op: measure.regionprops
  inputs: {labels: nuclei, image: image}
outputs:
  nuclei: {from: nuclei}
  props: {from: props}
"""

TRACKS_PIPELINE = """\
fbias_pipeline: 1
name: core-install-tracks
inputs:
  movie: {kind: image}
steps:
- id: tracks
  op: track.track_spots
  inputs: {image: movie}
outputs:
  tracks: {from: tracks}
"""

CELLPOSE_PIPELINE = """\
fbias_pipeline: 1
name: core-install-cellpose
inputs:
  image: {kind: image}
steps:
- id: cells
  op: cellpose.segment
  inputs: {image: image}
outputs:
  cells: {from: cells}
"""


@dataclass(frozen=True)
class CoreEnv:
    """A virtual environment holding the napari-fbias wheel, installed without extras."""

    folder: Path
    python: Path
    environ: dict[str, str]

    def run(self, *args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a command of the environment (``fbias``, ``python``...)."""
        exe = self.python.parent / args[0]
        return subprocess.run(
            [str(exe), *args[1:]],
            cwd=cwd,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _environ(venv: Path) -> dict[str, str]:
    """This process's environment without its Python settings, the new venv first on PATH.

    pip's own settings (index, find-links, cache) are kept: they say where
    packages come from on this machine.
    """
    drop = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV", "PYTHONWARNINGS")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _check(done: subprocess.CompletedProcess[str], what: str) -> None:
    assert done.returncode == 0, f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"


@pytest.fixture(scope="module")
def core_env(tmp_path_factory: pytest.TempPathFactory) -> CoreEnv:
    root = tmp_path_factory.mktemp("core-install")
    built = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(root), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    _check(built, "building the wheel")
    (wheel,) = root.glob("napari_fbias-*.whl")
    venv = root / "venv"
    _check(
        subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True, timeout=300
        ),
        "making the virtual environment",
    )
    python = venv / "bin" / "python"
    environ = _environ(venv)
    installed = subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--no-compile",  # faster; the modules used compile on first import
            "-c",
            str(ROOT / "requirements" / "constraints.txt"),
            str(wheel),
        ],
        env=environ,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=900,
    )
    _check(installed, f"pip install {wheel.name}")
    return CoreEnv(root, python, environ)


def test_the_core_brings_no_gui_and_no_pytorch(core_env: CoreEnv, tmp_path: Path) -> None:
    probe = (
        "import importlib.metadata as m, importlib.util as u, json\n"
        "from packaging.utils import canonicalize_name as c\n"
        "names = sorted({c(d.metadata['Name']) for d in m.distributions()})\n"
        "mods = ['napari', 'qtpy', 'PyQt5', 'PyQt6', 'PySide6', 'torch', 'cellpose', 'magicgui']\n"
        "found = [x for x in mods if u.find_spec(x) is not None]\n"
        "import sys, napari_fbias.cli, napari_fbias.api\n"
        "loaded = sorted({k.split('.')[0] for k in sys.modules})\n"
        "print(json.dumps({'names': names, 'found': found, 'loaded': loaded}))\n"
    )
    done = core_env.run("python", "-c", probe, cwd=tmp_path)
    _check(done, "probing the environment")
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert "napari-fbias" in seen["names"]
    assert set(seen["names"]) & NOT_IN_CORE == set()
    assert seen["found"] == []
    assert "napari_fbias" in seen["loaded"]


def test_fbias_run_works_on_the_samples(core_env: CoreEnv, tmp_path: Path) -> None:
    pipeline = tmp_path / "nuclei.fbias.yaml"
    pipeline.write_text(NUCLEI_PIPELINE)
    image = sample_path("nuclei_2d")
    done = core_env.run("fbias", "run", str(pipeline), str(image), "-o", "out", cwd=tmp_path)
    _check(done, "fbias run")
    assert "1 done" in done.stdout + done.stderr
    folder = tmp_path / "out" / "nuclei_2d"
    record = json.loads((folder / "run.json").read_text())
    assert set(record["files"]) >= {"nuclei", "props"}
    assert (folder / "result.ome.zarr" / "labels" / "nuclei").is_dir()
    # the same results as this (full) environment gives
    here = tmp_path / "here"
    api.run_pipeline(pipeline, str(image), here)
    got = read_ome_zarr(folder / "result.ome.zarr").labels["nuclei"].data.compute()
    want = read_ome_zarr(here / "nuclei_2d" / "result.ome.zarr").labels["nuclei"].data.compute()
    assert got.max() > 10
    np.testing.assert_array_equal(got, want)
    assert (folder / "props.csv").read_text() == (here / "nuclei_2d" / "props.csv").read_text()

    # tracking is part of the core too
    tracks = tmp_path / "tracks.fbias.yaml"
    tracks.write_text(TRACKS_PIPELINE)
    movie = sample_path("spots_timelapse")
    done = core_env.run("fbias", "run", str(tracks), str(movie), "-o", "out", cwd=tmp_path)
    _check(done, "fbias run (tracks)")
    lines = (tmp_path / "out" / "spots_timelapse" / "tracks.csv").read_text().splitlines()
    assert len(lines) > 10

    listing = core_env.run("fbias", "ops", "--json", cwd=tmp_path)
    _check(listing, "fbias ops")
    assert "segment.nuclei" in listing.stdout and "cellpose.segment" in listing.stdout


def test_what_needs_an_extra_names_it(core_env: CoreEnv, tmp_path: Path) -> None:
    pipeline = tmp_path / "nuclei.fbias.yaml"
    pipeline.write_text(NUCLEI_PIPELINE)
    image = str(sample_path("nuclei_2d"))

    def fbias_run(*args: str) -> str:
        done = core_env.run("fbias", "run", str(pipeline), *args, cwd=tmp_path)
        assert done.returncode != 0
        assert "Traceback" not in done.stderr
        return done.stdout + done.stderr

    assert "napari-fbias[slurm]" in fbias_run(image, "-o", "o1", "--cluster", "slurm")
    assert 'pip install "napari-fbias[s3]"' in fbias_run("s3://bucket/a.ome.zarr", "-o", "o2")
    assert "napari-fbias[omero]" in fbias_run("omero://localhost/Image:1", "-o", "o3")
    probe = (
        "from napari_fbias.extras import MissingExtraError, require\n"
        "try:\n"
        "    require('cellpose.models', 'cellpose', what='cellpose')\n"
        "except MissingExtraError as e:\n"
        "    print(e.extra, e)\n"
    )
    done = core_env.run("python", "-c", probe, cwd=tmp_path)
    _check(done, "require('cellpose.models')")
    assert done.stdout.startswith("cellpose ") and 'napari-fbias[cellpose]"' in done.stdout


def test_a_cellpose_step_names_its_extra(core_env: CoreEnv, tmp_path: Path) -> None:
    pipeline = tmp_path / "cellpose.fbias.yaml"
    pipeline.write_text(CELLPOSE_PIPELINE)
    image = str(sample_path("nuclei_2d"))
    done = core_env.run("fbias", "run", str(pipeline), image, "-o", "out", cwd=tmp_path)
    assert done.returncode != 0
    assert 'pip install "napari-fbias[cellpose]"' in done.stdout + done.stderr
