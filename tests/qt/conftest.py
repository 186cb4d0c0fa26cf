"""Fixtures shared by the widget tests.

Not autouse: a test module opts in, e.g. with
``pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]``; a module
that defines its own ``viewer`` fixture keeps it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from widget_helpers import add_sample


@pytest.fixture
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the session and config folders into ``tmp_path`` (no user files touched)."""
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def viewer(make_napari_viewer: Any) -> Any:
    """A real napari viewer holding the ``nuclei_2d`` sample."""
    v = make_napari_viewer()
    add_sample(v, "nuclei_2d")
    return v
