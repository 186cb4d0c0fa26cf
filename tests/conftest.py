"""Shared fixtures. Keep this small: helpers live in ``tests/helpers/``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.http_server import FolderServer


@pytest.fixture
def http_folder(tmp_path: Path) -> Iterator[FolderServer]:
    """A real HTTP server on 127.0.0.1 serving ``tmp_path`` (see ``helpers.http_server``)."""
    with FolderServer(tmp_path) as server:
        yield server


def pytest_unconfigure(config: pytest.Config) -> None:
    """Give ``warnings`` its own printer back before the interpreter exits.

    superqt's thread workers replace ``warnings.showwarning`` with a relay to a
    Qt signal; a warning raised during interpreter shutdown (a temporary folder
    cleaned up late) would then go to a deleted Qt object and print a traceback
    after the test summary.
    """
    import warnings

    warnings.showwarning = warnings._showwarning_orig  # type: ignore[attr-defined]
