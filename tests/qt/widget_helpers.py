"""Helpers shared by the widget tests (plain functions; shared fixtures are in conftest.py)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari_fbias import _sample_data


def add_sample(viewer: Any, name: str) -> list[Any]:
    """Add a bundled sample to ``viewer`` exactly as File > Open Sample does; return its layers."""
    added: list[Any] = []
    for data, kwargs, layer_type in getattr(_sample_data, name)():
        out = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
        added += out if isinstance(out, list) else [out]
    return added


def add_image_file(viewer: Any, path: str | Path) -> list[Any]:
    """Open an image file with our reader's layer data and add it to ``viewer``."""
    from napari_fbias._layers import image_to_layer_data
    from napari_fbias.io.open import open_image

    added: list[Any] = []
    for data, kwargs, layer_type in image_to_layer_data(open_image(str(path))):
        out = getattr(viewer, f"add_{layer_type}")(data, **kwargs)
        added += out if isinstance(out, list) else [out]
    return added


def wait_job(qtbot: Any, worker: Any, timeout: int = 60000) -> Any:
    """Wait until a workspace run is over (recorded, failed or cancelled); return its job."""
    assert worker is not None, "the run did not start"
    job = worker.fbias_job
    qtbot.waitUntil(lambda: job.done, timeout=timeout)
    return job


def wait_widget(qtbot: Any, widget: Any, timeout: int = 60000) -> None:
    """Wait until an op widget is idle again."""
    qtbot.waitUntil(lambda: not widget.running, timeout=timeout)


def click(button: Any) -> None:
    """Click a magicgui push button the way a user does."""
    button.native.click()


def journal(rec: Any, event: str | None = None) -> list[dict]:
    """The journal lines on disk (optionally only events called ``event``)."""
    lines = Path(rec.journal_path).read_text(encoding="utf-8").splitlines()
    out = [json.loads(line) for line in lines]
    return [e for e in out if event is None or e["event"] == event]


@contextlib.contextmanager
def notifications() -> Iterator[list[Any]]:
    """Collect the napari notifications shown inside the block."""
    from napari.utils.notifications import notification_manager

    seen: list[Any] = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        yield seen
    finally:
        notification_manager.notification_ready.disconnect(seen.append)


def errors(seen: list[Any]) -> list[str]:
    """Messages of the error notifications in ``seen``."""
    return [str(n.message) for n in seen if str(n.severity).lower().endswith("error")]
