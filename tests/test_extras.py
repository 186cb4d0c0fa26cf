"""Optional extras: the error that names a missing one, where the I/O code raises it.

tests/test_install_core.py checks the same messages in a real base install.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from napari_fbias import extras
from napari_fbias.extras import MissingExtraError, install_command, require
from napari_fbias.io.open import open_image

ROOT = Path(__file__).resolve().parents[1]


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    with open(ROOT / "pyproject.toml", "rb") as f:
        return tomllib.load(f)["project"]


def test_require_returns_the_module_or_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert require("json", "none") is sys.modules["json"]
    monkeypatch.setitem(sys.modules, "s3fs", None)  # as if it were not installed
    with pytest.raises(MissingExtraError) as info:
        require("s3fs", "s3", what="reading s3:// URLs")
    err = info.value
    assert isinstance(err, ImportError)  # code catching ImportError still does
    assert (err.extra, err.package) == ("s3", "s3fs")
    assert str(err) == (
        "reading s3:// URLs needs s3fs, which is not installed here. "
        "Install the 's3' extra: pip install \"napari-fbias[s3]\""
    )
    with pytest.raises(MissingExtraError, match=r"needs no_such_module, which is not installed"):
        require("no_such_module.sub", "cellpose")


def test_a_broken_install_is_not_called_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(name: str, *args: object, **kwargs: object) -> object:
        raise ImportError("libGL.so.1: cannot open shared object file")

    monkeypatch.setattr(extras.importlib, "import_module", broken)
    with pytest.raises(MissingExtraError, match=r"installed but cannot be imported \(libGL"):
        require("PyQt6.QtWidgets", "qt", what="napari")


def test_the_extras_are_those_of_pyproject() -> None:
    declared = _project()["optional-dependencies"]
    assert set(extras.EXTRAS) <= set(declared)
    assert set(declared) - set(extras.EXTRAS) == {"all", "testing"}
    assert install_command("cellpose") == 'pip install "napari-fbias[cellpose]"'


def test_the_base_install_is_the_headless_core() -> None:
    project = _project()
    base = " ".join(project["dependencies"]).lower()
    for heavy in ("napari", "magicgui", "qtpy", "pyqt", "cellpose", "torch", "s3fs", "omero"):
        assert heavy not in base, heavy
    optional = project["optional-dependencies"]
    assert any(r.startswith("cellpose") for r in optional["cellpose"])
    assert any(r.startswith("napari>") for r in optional["napari"])
    assert "napari-fbias[napari]" in optional["qt"]
    assert optional["all"] == ["napari-fbias[qt,cellpose,s3,slurm,tune]"]
    assert optional["tune"] == ["optuna>=4.0"] and "optuna" not in base


def test_an_s3_source_without_s3fs_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "s3fs", None)
    with pytest.raises(MissingExtraError, match=r'pip install "napari-fbias\[s3\]"'):
        open_image("s3://bucket/image.ome.zarr")


def test_an_omero_source_without_omero_py_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari_fbias.io.omero import connection
    from napari_fbias.io.omero.errors import OmeroNotInstalledError, OmeroNotLoggedInError

    monkeypatch.setattr(connection, "omero_available", lambda: False)
    with pytest.raises(OmeroNotInstalledError, match=r"napari-fbias\[omero\]") as info:
        open_image("omero://omero.example.org/Image:1")
    assert isinstance(info.value, MissingExtraError) and info.value.extra == "omero"
    # with omero-py there, the same source asks to log in first
    monkeypatch.setattr(connection, "omero_available", lambda: True)
    with pytest.raises(OmeroNotLoggedInError, match="log in to omero.example.org first"):
        open_image("omero://omero.example.org/Image:1")
